// Verilator harness for mcos_hw_pipeline: reads event records (crates/mcos-hw/src/event.rs,
// 40 bytes each), offers them back to back (in_valid high until accepted), and writes one
// 16-byte record per cycle in which out_valid is high: cycle, code, frame.
// Telemetry port: writes SHIFT to the shift register in cycle 0 and runs the consumer of
// crates/mcos-hw/src/telemetry.rs (`Consumer`, one read per PERIOD cycles, 0: none); writes
// every cycle's head, tail and dropped (3 x u32) to REGS and every drained record (cycle u64,
// record as 4 x u32, low word first) to DRAINED. It stops once every event was accepted, the
// consumer has caught up and five cycles passed without a decision, as
// `telemetry::run_model_with_consumer` does.
// Descriptors: one 32-byte record per cycle in which desc_valid is high (cycle u64, tag u64,
// move id, src frame, dst frame, epoch as u32) to DESCS.
// Usage: harness EVENTS.bin OUTPUTS.bin REGS.bin DRAINED.bin SHIFT PERIOD DEPTH_BITS DESCS.bin
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

// The record on the read port as four 32-bit words (Verilator's type depends on its width).
static void words(uint32_t* w, uint64_t v) {
  w[0] = (uint32_t)v;
  w[1] = (uint32_t)(v >> 32);
  w[2] = w[3] = 0;
}
template <std::size_t N>
static void words(uint32_t* w, VlWide<N>& v) {
  for (std::size_t i = 0; i < 4; i++) w[i] = i < N ? (uint32_t)v[i] : 0;
}

static void put32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr,
                 "usage: %s EVENTS.bin OUTPUTS.bin REGS.bin DRAINED.bin SHIFT PERIOD DEPTH_BITS "
                 "DESCS.bin\n",
                 argv[0]);
    return 2;
  }
  const uint32_t shift = (uint32_t)std::strtoul(argv[5], nullptr, 10);
  const uint32_t period = (uint32_t)std::strtoul(argv[6], nullptr, 10);
  const uint32_t depth_bits = (uint32_t)std::strtoul(argv[7], nullptr, 10);
  const uint32_t ptr_mask = (2u << depth_bits) - 1, index_mask = (1u << depth_bits) - 1;
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
  FILE* regs_out = std::fopen(argv[3], "wb");
  if (!regs_out) {
    std::perror(argv[3]);
    return 2;
  }
  FILE* drained_out = std::fopen(argv[4], "wb");
  if (!drained_out) {
    std::perror(argv[4]);
    return 2;
  }
  FILE* descs_out = std::fopen(argv[8], "wb");
  if (!descs_out) {
    std::perror(argv[8]);
    return 2;
  }

  auto ctx = std::make_unique<VerilatedContext>();
  auto top = std::make_unique<Vmcos_hw_pipeline>(ctx.get());
  top->clk = 0;
  top->rst = 1;
  top->in_valid = 0;
  top->tel_we = 0;
  top->tel_re = 0;
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
  // Consumer state (telemetry.rs `Consumer`).
  uint32_t countdown = 0, rd_next = 0, inflight_pos = 0;
  bool inflight = false;
  const uint64_t limit =
      3 * (uint64_t)events + 16 + ((1ull << depth_bits) + 8) * (period > 0 ? period : 1) * 2;
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
    top->in_sz = next < events ? buf[next * REC + 2] : 0;
    // Telemetry: the registers this cycle, then the consumer.
    const uint32_t head = top->tel_head;
    unsigned char rr[12];
    put32(rr, head);
    put32(rr + 4, top->tel_tail);
    put32(rr + 8, top->tel_dropped);
    std::fwrite(rr, 1, 12, regs_out);
    top->tel_we = 0;
    top->tel_waddr = 0;
    top->tel_wdata = 0;
    top->tel_re = 0;
    top->tel_raddr = 0;
    if (inflight) {
      unsigned char dr[24];
      uint32_t w[4];
      words(w, top->tel_rdata);
      for (int i = 0; i < 8; i++) dr[i] = (unsigned char)(cycle >> (8 * i));
      for (int i = 0; i < 4; i++) put32(dr + 8 + 4 * i, w[i]);
      std::fwrite(dr, 1, 24, drained_out);
      top->tel_we = 1;
      top->tel_waddr = 0;
      top->tel_wdata = (inflight_pos + 1) & ptr_mask;
      inflight = false;
    }
    if (period > 0) {
      if (countdown == 0) {
        if (rd_next != head) {
          top->tel_re = 1;
          top->tel_raddr = rd_next & index_mask;
          inflight = true;
          inflight_pos = rd_next;
          rd_next = (rd_next + 1) & ptr_mask;
          countdown = period - 1;
        }
      } else {
        countdown--;
      }
    }
    if (cycle == 0) {
      top->tel_we = 1;
      top->tel_waddr = 1;
      top->tel_wdata = shift;
    }
    const bool caught_up = period == 0 || (!inflight && rd_next == head);
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
    }
    if (top->desc_valid) {
      unsigned char rec[32];
      const uint64_t tag = top->desc_tag;
      const uint32_t w[4] = {(uint32_t)top->desc_move_id, (uint32_t)top->desc_src,
                             (uint32_t)top->desc_dst, (uint32_t)top->desc_epoch};
      for (int i = 0; i < 8; i++) rec[i] = (unsigned char)(cycle >> (8 * i));
      for (int i = 0; i < 8; i++) rec[8 + i] = (unsigned char)(tag >> (8 * i));
      for (int i = 0; i < 4; i++) put32(rec + 16 + 4 * i, w[i]);
      std::fwrite(rec, 1, 32, descs_out);
      idle_cycles = 0;
    } else if (top->out_valid) {
      // Counted above.
    } else if (!caught_up) {
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
  std::fclose(regs_out);
  std::fclose(drained_out);
  std::fclose(descs_out);
  top->final();
  std::fprintf(stderr, "harness: %zu events, %llu outputs, %llu cycles\n", events,
               (unsigned long long)outputs, (unsigned long long)cycle);
  return next == events ? 0 : 1;
}
