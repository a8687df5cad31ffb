// Verilator harness for mcos_hw_pipeline: reads event records (crates/mcos-hw/src/event.rs,
// 40 bytes each), offers them back to back (in_valid high until accepted), and writes one
// 16-byte record per cycle in which out_valid is high: cycle, code, frame.
// Usage: harness EVENTS.bin OUTPUTS.bin
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "Vmcos_hw_pipeline.h"
#include "verilated.h"

static uint64_t le64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s EVENTS.bin OUTPUTS.bin\n", argv[0]);
    return 2;
  }
  FILE* in = std::fopen(argv[1], "rb");
  if (!in) {
    std::perror(argv[1]);
    return 2;
  }
  std::vector<unsigned char> buf;
  unsigned char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, in)) > 0) buf.insert(buf.end(), chunk, chunk + n);
  std::fclose(in);
  const size_t REC = 40;
  if (buf.size() % REC != 0) {
    std::fprintf(stderr, "%s: %zu bytes is not a whole number of records\n", argv[1], buf.size());
    return 2;
  }
  const size_t events = buf.size() / REC;
  FILE* out = std::fopen(argv[2], "wb");
  if (!out) {
    std::perror(argv[2]);
    return 2;
  }

  auto ctx = std::make_unique<VerilatedContext>();
  auto top = std::make_unique<Vmcos_hw_pipeline>(ctx.get());
  top->clk = 0;
  top->rst = 1;
  top->in_valid = 0;
  for (int i = 0; i < 4; i++) {
    top->eval();
    top->clk = 1;
    top->eval();
    top->clk = 0;
  }
  top->rst = 0;
  top->eval();

  size_t next = 0;
  uint64_t cycle = 0, outputs = 0, idle_cycles = 0;
  const uint64_t limit = 2 * (uint64_t)events + 16;
  for (; cycle < limit; cycle++) {
    if (next < events) {
      const unsigned char* r = &buf[next * REC];
      top->in_valid = 1;
      top->in_op = r[0];
      top->in_class = r[1];
      top->in_tag = le64(r + 8);
      top->in_skh = le64(r + 16);
      uint64_t lo = le64(r + 24), hi = le64(r + 32);
      top->in_entry[0] = (uint32_t)lo;
      top->in_entry[1] = (uint32_t)(lo >> 32);
      top->in_entry[2] = (uint32_t)hi;
      top->in_entry[3] = (uint32_t)(hi >> 32);
    } else {
      top->in_valid = 0;
      top->in_op = 0;
      top->in_class = 0;
      top->in_tag = 0;
      top->in_skh = 0;
      for (int i = 0; i < 4; i++) top->in_entry[i] = 0;
    }
    top->eval();
    const bool accepted = top->in_valid && top->in_ready;
    if (top->out_valid) {
      unsigned char rec[16];
      uint64_t c = cycle;
      uint32_t code = top->out_code, frame = top->out_frame;
      for (int i = 0; i < 8; i++) rec[i] = (unsigned char)(c >> (8 * i));
      for (int i = 0; i < 4; i++) rec[8 + i] = (unsigned char)(code >> (8 * i));
      for (int i = 0; i < 4; i++) rec[12 + i] = (unsigned char)(frame >> (8 * i));
      std::fwrite(rec, 1, 16, out);
      outputs++;
      idle_cycles = 0;
    } else if (next >= events) {
      // Drained: nothing in flight shows for a few cycles.
      if (++idle_cycles > 4) break;
    }
    top->clk = 1;
    top->eval();
    top->clk = 0;
    top->eval();
    if (accepted) next++;
  }
  std::fclose(out);
  top->final();
  std::fprintf(stderr, "harness: %zu events, %llu outputs, %llu cycles\n", events,
               (unsigned long long)outputs, (unsigned long long)cycle);
  return next == events ? 0 : 1;
}
