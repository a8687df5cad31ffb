// MCOS fast path, one shard's per-event decision pipeline (DESIGN.md stage 3).
//
// Executes the events ACCESS, INSERT (admission + CLOCK victim selection), CLASS_WRITE (the
// table-install port writes one 128-bit PolicyTable class entry into the shadow bank) and
// SWAP (the shadow bank becomes active at this event boundary). The Rust cycle model in
// crates/mcos-hw/src/model.rs is the executable specification of this file, register for
// register; cargo test compares the two cycle for cycle under Verilator.
//
// Stages (one event per stage):
//   A  accept; index the directory banks, the sketch rows and the class table (RAM reads).
//   B  compare tags (hit / present), count-min estimate, admission, directory way choice,
//      bounded CLOCK scan; write the new directory entry, the sketch, the reference bits;
//      register the decision (out_* valid the next cycle: latency 2).
//   C  (INSERT that fills only) read-back of the victim's directory location from the frame
//      table (read issued in B); invalidate that entry; record the new block's location.
// Hazards: an INSERT holds A for one extra cycle (in_ready low), so its C never overlaps
// another event's B; the one read that can see a stale directory way (the next event's A,
// in the cycle of C's invalidation) is corrected by a forward register in B. Sketch counters
// written in B are forwarded to the next event's B. Reference bits are flip-flops in 16
// banks (FRAMES >= 32); the bits an eviction's scan clears are cleared the cycle after its B
// (no event is in B then) and forwarded to the window read in that cycle.
// Telemetry-sample port (CHMU-shaped; crates/mcos-hw/src/telemetry.rs states the record and
// the registers): a record decided in B (hit, miss, reject, evict) or C (admit) is staged and
// written into the ring the next cycle at the head, or dropped and counted when the ring is
// full (head - tail = depth); the consumer writes the tail and the sample shift through
// tel_we/tel_waddr/tel_wdata and reads a ring entry through tel_re/tel_raddr (data the next
// cycle). A SWAP carries the installed table's kinds mask in in_entry[4:0] and advances the
// table epoch. A side effect only: nothing waits on the ring, II and latency are unchanged.
// Two tiers (FRAMES1 > 0; 0 is the one-tier design): one directory holds both tiers' blocks
// (an entry's frame is a global id, tier 1's after tier 0's); tier 1 has its own frame table,
// reference bits or stamps, hand, free count (aged: epoch, carried candidate), scanned in B
// by a plain combinational loop (it is small). An INSERT that finds tier 0 full decides
// DEMOTE: tier 0's victim moves to a tier-1 frame (never used, else tier 1's victim, dropped);
// the block is not inserted (retry after the completion). C invalidates the tier-1 victim's
// entry and reads the demoted block's entry through A's directory port (in_ready low: II 3);
// D drives desc_* (move id, tag rebuilt from that entry and its set, frames, table epoch),
// one cycle after the DEMOTE decision. One move in flight: an INSERT that finds tier 0 full
// meanwhile decides WAIT; a hit on the block being demoted touches no reference bit or
// stamp. COMPLETE (in_op 4, in_entry[31:0] the move id) of the move in flight rewrites its
// entry to the tier-1 frame in B (in_ready low: II 2) and frees the tier-0 frame for the next
// fill; any other id is STALE. No promotion; the telemetry port samples no tier-1 event.
// Timing-only registers (not in the model, no effect on any output): the CLOCK window read in
// A, the forward comparisons made in A, the deferred clears, the aged fill's deferred stamp
// write. Datapath registers have no reset.
//
// Memories are written so that yosys infers RAM (synchronous read, one write port each).
// They start at zero (initial blocks: FPGA bitstream init / Verilator); an ASIC would add a
// reset sweep of the directory valid bits.

module mcos_hw_pipeline #(
    parameter int FRAMES     = 2000,
    parameter int FRAMES1    = 0,     // tier 1's frames (0: one tier)
    parameter int FRAME_BITS = 11,    // global frame ids: FRAMES + FRAMES1
    parameter int SET_BITS   = 9,
    parameter int SK_BITS    = 12,
    parameter int TAG_BITS   = 64,
    parameter int WAYS       = 8,
    parameter int WAY_BITS   = 3,
    parameter bit AGED       = 1'b0,  // replacement: 0 CLOCK (reference bits), 1 aged stamps
    parameter int TEL_DEPTH_BITS = 6  // telemetry ring: 2^TEL_DEPTH_BITS records
) (
    input  logic                  clk,
    input  logic                  rst,
    input  logic                  in_valid,
    output logic                  in_ready,
    input  logic [2:0]            in_op,
    input  logic [7:0]            in_class,
    input  logic [TAG_BITS-1:0]   in_tag,
    /* verilator lint_off UNUSEDSIGNAL */
    input  logic [63:0]           in_skh,    // sketch hash: rows use bits 16r +: SK_BITS
    input  logic [127:0]          in_entry,  // a PolicyTable class entry (to_bits layout)
    input  logic [15:0]           tel_wdata,
    /* verilator lint_on UNUSEDSIGNAL */
    input  logic [5:0]            in_sz,     // trailing zeros of the key's sample hash
    output logic                  out_valid,
    output logic [3:0]            out_code,
    output logic [FRAME_BITS-1:0] out_frame,
    // Movement descriptors (two tiers), valid one cycle after their DEMOTE decision.
    output logic                  desc_valid,
    output logic [31:0]           desc_move_id,
    output logic [TAG_BITS-1:0]   desc_tag,
    output logic [FRAME_BITS-1:0] desc_src,
    output logic [FRAME_BITS-1:0] desc_dst,
    output logic [15:0]           desc_epoch,
    // Telemetry port: register writes (address 0 tail, 1 shift), ring reads, registers.
    input  logic                      tel_we,
    input  logic                      tel_waddr,
    input  logic                      tel_re,
    input  logic [TEL_DEPTH_BITS-1:0] tel_raddr,
    output logic [21+FRAME_BITS+TAG_BITS-1:0] tel_rdata,  // {kind 3, class 8, epoch 8, value 2, frame, tag}
    output logic [TEL_DEPTH_BITS:0]   tel_head,
    output logic [TEL_DEPTH_BITS:0]   tel_tail,
    output logic [31:0]               tel_dropped
);
  localparam int REM_BITS = TAG_BITS - SET_BITS;
  localparam int ENTRY_BITS = 1 + REM_BITS + FRAME_BITS;
  localparam int SETS = 1 << SET_BITS;
  localparam int SKW = 1 << SK_BITS;
  localparam int SCAN = 16;
  localparam int LOC_BITS = 1 + WAY_BITS + SET_BITS;
  localparam int CNT_BITS = WAY_BITS + 1;

  localparam bit TWO = FRAMES1 > 0;
  localparam int F1 = FRAMES1 > 0 ? FRAMES1 : 1;  // array size of tier-1 state

  localparam logic [2:0] OP_ACCESS = 3'd0, OP_INSERT = 3'd1, OP_CLASS_WRITE = 3'd2;
  localparam logic [2:0] OP_SWAP = 3'd3, OP_COMPLETE = 3'd4;
  localparam logic [3:0] C_MISS = 4'd0, C_HIT = 4'd1, C_PRESENT = 4'd2, C_FILL = 4'd3;
  localparam logic [3:0] C_FILL_EVICT = 4'd4, C_REJECT_ADMIT = 4'd5, C_REJECT_DIR = 4'd6;
  localparam logic [3:0] C_ACK = 4'd7, C_DEMOTE = 4'd8, C_WAIT = 4'd9, C_STALE = 4'd10;

  // ---------------------------------------------------------------- stage A
  logic accept;
  logic b_valid;
  logic [2:0] b_op;
  logic c_demote;
  assign in_ready = !(c_demote || (b_valid && (b_op == OP_INSERT || b_op == OP_COMPLETE)));
  assign accept = in_valid && in_ready;

  logic [SET_BITS-1:0] a_set[2];
  assign a_set[0] = in_tag[SET_BITS-1:0];
  assign a_set[1] = in_tag[TAG_BITS-1-:SET_BITS];
  logic [SK_BITS-1:0] a_sk[4];
  for (genvar r = 0; r < 4; r++) begin : g_sk_idx
    assign a_sk[r] = in_skh[16*r+:SK_BITS];
  end

  // Class table: two banks x 256 classes x {admit_threshold 4, insert at LRU end 1}.
  // Zero is the built-in entry (admit all, MRU insertion).
  logic active_bank;
  logic [4:0] cls_mem[512];
  logic [4:0] cls_q;
  initial for (int i = 0; i < 512; i++) cls_mem[i] = '0;
  always_ff @(posedge clk) begin
    if (accept && in_op == OP_CLASS_WRITE)
      cls_mem[{~active_bank, in_class}] <= {in_entry[16:15] != 2'd0, in_entry[9:6]};
    cls_q <= cls_mem[{active_bank, in_class}];
  end

  // ---------------------------------------------------------------- B/C registers
  logic [TAG_BITS-1:0] b_tag;
  logic [5:0] b_sz;
  logic [7:0] b_class;
  logic [SET_BITS-1:0] b_set[2];
  logic [SK_BITS-1:0] b_sk[4];
  logic [31:0] b_move_id;

  logic c_valid, c_evict;
  logic [FRAME_BITS-1:0] c_frame;
  logic [LOC_BITS-1:0] c_loc;

  // Forward registers: the directory invalidation C wrote in the cycle the event in B was in
  // A, compared with its sets there (inv_hit_q[b]: bank b's set matched).
  logic inv_hit_q[2];
  logic [WAY_BITS-1:0] inv_way_q;

  // ---------------------------------------------------------------- directory RAMs
  // 2 banks (two-choice hashing) x WAYS ways, one RAM per way: {valid, tag remainder, frame}.
  logic [ENTRY_BITS-1:0] dir_q[2][WAYS];
  logic dir_we[2][WAYS];
  logic [SET_BITS-1:0] dir_wa[2];
  logic [ENTRY_BITS-1:0] dir_wd[2];
  // A demotion's C reads the demoted block's set (its location from tier 0's frame table)
  // through A's port; no event is accepted then.
  logic [SET_BITS-1:0] dir_ra[2];
  logic [LOC_BITS-1:0] ft_q;
  assign dir_ra[0] = c_demote ? ft_q[SET_BITS-1:0] : a_set[0];
  assign dir_ra[1] = c_demote ? ft_q[SET_BITS-1:0] : a_set[1];
  for (genvar b = 0; b < 2; b++) begin : g_bank
    for (genvar w = 0; w < WAYS; w++) begin : g_way
      logic [ENTRY_BITS-1:0] mem[SETS];
      initial for (int i = 0; i < SETS; i++) mem[i] = '0;
      always_ff @(posedge clk) begin
        if (dir_we[b][w]) mem[dir_wa[b]] <= dir_wd[b];
        dir_q[b][w] <= mem[dir_ra[b]];
      end
    end
  end

  // ---------------------------------------------------------------- sketch RAMs
  logic [3:0] sk_q[4];
  logic sk_we;
  logic [3:0] sk_wd[4];
  // The counters B wrote in the cycle the event now in B was in A, where each row's address
  // was compared with the one B wrote (skw_hit_q).
  logic skw_hit_q[4];
  logic [3:0] skw_data_q[4];
  for (genvar r = 0; r < 4; r++) begin : g_row
    logic [3:0] mem[SKW];
    initial for (int i = 0; i < SKW; i++) mem[i] = '0;
    always_ff @(posedge clk) begin
      if (sk_we) mem[b_sk[r]] <= sk_wd[r];
      sk_q[r] <= mem[a_sk[r]];
    end
  end

  // ---------------------------------------------------------------- stage B logic
  localparam int ROWS = (FRAMES + SCAN - 1) / SCAN;
  localparam int ROW_BITS = FRAME_BITS - 4;
  logic [ROWS-1:0] refb[SCAN];  // refb[j][r]: reference bit of frame 16 r + j
  logic [FRAME_BITS-1:0] hand;
  logic [FRAME_BITS:0] free_cnt;

  logic valid_bw[2][WAYS];
  logic match_bw[2][WAYS];
  logic [REM_BITS-1:0] rem[2];
  assign rem[0] = b_tag[TAG_BITS-1:SET_BITS];
  assign rem[1] = b_tag[REM_BITS-1:0];

  logic hit;
  logic [FRAME_BITS-1:0] hit_frame;
  logic [CNT_BITS-1:0] cnt[2];
  always_comb begin
    hit = 1'b0;
    hit_frame = '0;
    for (int b = 0; b < 2; b++) begin
      cnt[b] = '0;
      for (int w = 0; w < WAYS; w++) begin
        valid_bw[b][w] = dir_q[b][w][ENTRY_BITS-1] &&
            !(inv_hit_q[b] && inv_way_q == w[WAY_BITS-1:0]);
        match_bw[b][w] = valid_bw[b][w] && dir_q[b][w][ENTRY_BITS-2-:REM_BITS] == rem[b];
        if (match_bw[b][w]) begin
          hit = 1'b1;
          hit_frame = hit_frame | dir_q[b][w][FRAME_BITS-1:0];
        end
        cnt[b] = cnt[b] + CNT_BITS'(valid_bw[b][w]);
      end
    end
  end

  // Count-min estimate with the last cycle's write forwarded. Admission compares every
  // counter with the threshold in parallel (min >= t iff each >= t) rather than after the
  // minimum; the minimum (a tree) only feeds the counters' write-back.
  logic [3:0] sk_c[4];
  logic [3:0] est, target, est01, est23;
  logic all_ge;
  always_comb begin
    for (int r = 0; r < 4; r++) sk_c[r] = skw_hit_q[r] ? skw_data_q[r] : sk_q[r];
    est01 = (sk_c[1] < sk_c[0]) ? sk_c[1] : sk_c[0];
    est23 = (sk_c[3] < sk_c[2]) ? sk_c[3] : sk_c[2];
    est = (est23 < est01) ? est23 : est01;
    target = (est == 4'd15) ? 4'd15 : est + 4'd1;
    for (int r = 0; r < 4; r++) sk_wd[r] = (sk_c[r] < target) ? target : sk_c[r];
  end

  // Directory way choice: the less loaded bank (ties: bank 0), its lowest free way.
  logic bank_n;
  logic [WAY_BITS-1:0] way_n;
  logic dir_full;
  always_comb begin
    bank_n = (cnt[0] <= cnt[1]) ? 1'b0 : 1'b1;
    // The less loaded bank is full only when both are: an AND of the 16 valid bits, not
    // after the counts and their comparison.
    dir_full = 1'b1;
    for (int b = 0; b < 2; b++) for (int w = 0; w < WAYS; w++) if (!valid_bw[b][w]) dir_full = 1'b0;
    way_n = '0;
    for (int w = WAYS - 1; w >= 0; w--) if (!valid_bw[bank_n][w]) way_n = w[WAY_BITS-1:0];
  end

  // Bounded CLOCK scan: the window [hand, min(hand + 16, FRAMES)). Reference bits sit in 16
  // banks by frame index mod 16, so the 16 frames of any window fall one in each bank: bank j
  // reads (and clears) one bit, at row hand/16 or the row after. Per bank that is one read
  // and one write per cycle, the shape of a small RAM, instead of 16 FRAMES-to-1 multiplexers.
  //
  // The window is read in A (the hand only moves in an INSERT's B, and an INSERT is never in
  // B while the next event is in A), registered, and completed in B with the one bit A could
  // not see: the reference bit the ACCESS in B during that cycle set (hs_q).
  logic [3:0] hl;
  logic [ROW_BITS-1:0] hr;
  assign hl = hand[3:0];
  assign hr = hand[FRAME_BITS-1:4];
  logic [3:0] kj[SCAN];  // window position of bank j's frame
  logic [ROW_BITS-1:0] rowj[SCAN];
  logic [ROW_BITS:0] rowx[SCAN];
  // The scanned bits an eviction clears are cleared the cycle after its B (B is empty then:
  // an INSERT holds A one cycle), so the fill decision does not drive 16 x rows enables.
  logic clr_en_q;
  logic clr_q[SCAN];
  logic [ROW_BITS-1:0] clr_row_q[SCAN];
  logic bitj[SCAN], winj[SCAN];
  logic wbit[SCAN], wvalid[SCAN];  // by window position k
  logic [3:0] lastk;
  logic last_in;
  always_comb begin
    for (int j = 0; j < SCAN; j++) begin
      // Bank j's window frame is {row, j}: row hr, or the next one for banks below hl. (Not
      // written hand + kj: that adds hand's low bits to themselves, a carry cell with one net
      // on both inputs, which nextpnr-ice40 0.4's router1 cannot route.)
      kj[j] = 4'(j) - hl;
      rowx[j] = {1'b0, hr} + (ROW_BITS + 1)'(4'(j) < hl);
      rowj[j] = rowx[j][ROW_BITS-1:0];
      // A clear the last INSERT's scan deferred to this cycle (clr_*) is forwarded. (At
      // FRAMES >= 32 the new window never overlaps the cleared frames, which lie before the
      // victim in a window that does not wrap, so no test can exercise it; it is there so that
      // the clear's timing cannot matter for any geometry.)
      bitj[j] = refb[j][rowj[j]] && !(clr_en_q && clr_q[j] && clr_row_q[j] == rowj[j]);
      winj[j] = {rowx[j], 4'(j)} < FRAMES[FRAME_BITS:0];
    end
    for (int k = 0; k < SCAN; k++) begin
      wbit[k] = bitj[4'(k)+hl];
      wvalid[k] = winj[4'(k)+hl];
    end
    // Position of the last frame, when it is in the window (the hand wraps after it).
    last_in = (FRAME_BITS + 1)'(FRAMES - 1) - {1'b0, hand} < (FRAME_BITS + 1)'(SCAN);
    lastk = 4'(FRAME_BITS'(FRAMES - 1) - hand);
  end

  // Frame table RAM: per frame, where its block's directory entry sits: {bank, way, set}.
  // B reads the victim's (address: the frame B chose), C uses it.
  logic [LOC_BITS-1:0] ft_mem[FRAMES];
  logic [FRAME_BITS-1:0] ft_ra;
  initial for (int i = 0; i < FRAMES; i++) ft_mem[i] = '0;
  always_ff @(posedge clk) begin
    if (c_valid) ft_mem[c_frame] <= c_loc;
    ft_q <= ft_mem[ft_ra];
  end

  // Registered in A, used in B.
  logic wbit_q[SCAN], wvalid_q[SCAN], winj_q[SCAN];
  logic [3:0] kj_q[SCAN];
  logic [ROW_BITS-1:0] rowj_q[SCAN];
  logic [3:0] lastk_q;
  logic last_in_q;
  logic hs_q;  // the ACCESS in B last cycle set the reference bit of hs_frame_q
  logic [FRAME_BITS-1:0] hs_frame_q;
  logic [FRAME_BITS-1:0] winf_q[SCAN];  // frame at window position k (hand + k)

  logic found;
  logic [3:0] kf;
  logic [FRAME_BITS-1:0] victim, victim_next;
  logic wb[SCAN];
  always_comb begin
    for (int k = 0; k < SCAN; k++) wb[k] = wbit_q[k] || (hs_q && hs_frame_q == winf_q[k]);
    found = 1'b0;
    kf = 4'd0;
    for (int k = SCAN - 1; k >= 0; k--) begin
      if (wvalid_q[k] && !wb[k]) begin
        found = 1'b1;
        kf = k[3:0];
      end
    end
    victim = hand + FRAME_BITS'(kf);
    victim_next = (last_in_q && kf == lastk_q) ? '0 : victim + 1'b1;
  end


  // Aged replacement (AGED, Replacement::Aged): a 7-bit stamp per frame (the epoch at its
  // last hit or fill) in the reference bits' 16-bank layout, read in A with the window;
  // in B the window's 16 stamps and the candidate carried from the last scan are compared
  // (ages epoch - stamp, mod 128): the oldest is the victim (ties: the carried one, then
  // the lowest frame), the oldest of the rest is carried on. The hand sweeps: it moves past
  // the window. The carried candidate's stamp is kept in a register that follows the hits.
  localparam int AGE_BITS = 7;
  localparam int PER_EPOCH = (FRAMES / 32) > 1 ? FRAMES / 32 : 1;
  localparam int NC = SCAN + 1;  // candidates: the carried one, then window positions
  logic [AGE_BITS-1:0] stp[SCAN][ROWS];  // stp[j][r]: stamp of frame 16 r + j
  initial for (int j = 0; j < SCAN; j++) for (int r = 0; r < ROWS; r++) stp[j][r] = '0;
  logic [AGE_BITS-1:0] epoch;
  logic [FRAME_BITS:0] age_writes;
  logic carry_v;
  logic [FRAME_BITS-1:0] carry_f;
  // The carried candidate's age is kept as carry_age + carry_dl (mod 128): carry_age its age
  // when it was carried (or 0 after a hit, 64 for an LRU-end insertion), carry_dl the epochs
  // since. That is epoch minus its stamp, so the root's runner-up age is stored as it is,
  // with no subtract after the tree.
  logic [AGE_BITS-1:0] carry_age, carry_dl;
  logic ep_inc;  // the epoch advances at this clock edge
  logic [AGE_BITS-1:0] stj[SCAN], wst[SCAN], wst_q[SCAN];
  logic [AGE_BITS-1:0] hs_st_q;  // the stamp the ACCESS in B wrote last cycle
  // A fill's stamp is written the cycle after its B (B is empty then: an INSERT holds A one
  // cycle), so the victim choice does not drive the stamps' write enables; the window read
  // in A that cycle gets it forwarded.
  logic stw_q;
  logic [FRAME_BITS-1:0] stw_f_q;
  logic [AGE_BITS-1:0] stw_v_q;
  logic [FRAME_BITS-1:0] stw_a;
  assign stw_a = stw_q ? stw_f_q : hit_frame;
  always_comb begin
    for (int j = 0; j < SCAN; j++)
      stj[j] = (stw_q && stw_f_q[3:0] == 4'(j) && stw_f_q[FRAME_BITS-1:4] == rowj[j]) ?
          stw_v_q : stp[j][rowj[j]];
    for (int k = 0; k < SCAN; k++) wst[k] = stj[4'(k)+hl];
  end
  // Top two of the 17 candidates as a tournament tree (depth 5: 17 -> 9 -> 5 -> 3 -> 2 -> 1;
  // an odd node passes up unpaired). Each node keeps the best and the second best of its
  // subtree under one total order: valid first, then the larger age, then the lower index.
  // The left child always holds the lower indices, so a tie goes left; the best of the root
  // is then the first oldest candidate (the carried one, then the lowest window position)
  // and its second the first oldest of the rest, exactly what a linear scan picks. With no
  // valid candidate the best is the carried one (invalid loses to valid only; left wins
  // among invalid); a runner-up that is not valid leaves the carried frame and stamp as they
  // were. Each node carries its winners' frames; the runner-up is carried on as its age
  // (carry_age, carry_dl above), so no 17-way multiplexer of stamps follows the root.
  // Carrying the stamps through the tree instead cost 138 LUTs and no longer fit the HX8K.
  localparam int LV = $clog2(NC) + 1;  // tree levels, leaves included
  logic cv[NC];
  logic [AGE_BITS-1:0] cage[NC], wage[SCAN], hage;
  logic [FRAME_BITS-1:0] cf[NC];
  logic carry_in, sv;
  logic t1v[LV][NC], t2v[LV][NC];
  logic [AGE_BITS-1:0] t1a[LV][NC], t2a[LV][NC];
  logic [FRAME_BITS-1:0] t1f[LV][NC], t2f[LV][NC];
  // Left wins: its best against the right's best, its best against the right's second, its
  // second against the right's best.
  logic l1r1, l1r2, l2r1;
  always_comb begin
    carry_in = carry_f >= hand &&
        ({1'b0, carry_f} - {1'b0, hand}) < (FRAME_BITS + 1)'(SCAN);
    cv[0] = carry_v && !carry_in;
    cf[0] = carry_f;
    cage[0] = carry_age + carry_dl;
    // The ages are subtracted in parallel with the forward's compare, then selected.
    hage = epoch - hs_st_q;
    for (int k = 0; k < SCAN; k++) begin
      cv[k+1] = wvalid_q[k];
      wage[k] = epoch - wst_q[k];
      cage[k+1] = (hs_q && hs_frame_q == winf_q[k]) ? hage : wage[k];
      cf[k+1] = winf_q[k];
    end
    for (int l = 0; l < LV; l++)
      for (int i = 0; i < NC; i++) begin
        t1v[l][i] = 1'b0;
        t1a[l][i] = '0;
        t1f[l][i] = '0;
        t2v[l][i] = 1'b0;
        t2a[l][i] = '0;
        t2f[l][i] = '0;
      end
    for (int i = 0; i < NC; i++) begin
      t1v[0][i] = cv[i];
      t1a[0][i] = cage[i];
      t1f[0][i] = cf[i];
    end
    // Level l - 1 has ceil(NC / 2^(l-1)) = ((NC - 1) >> (l - 1)) + 1 nodes (constants once
    // the loops unroll).
    for (int l = 1; l < LV; l++) begin
      for (int i = 0; i < NC; i++) begin
        if (i < (((NC - 1) >> (l - 1)) + 1) / 2) begin
          // Node i merges children 2i (left, lower indices) and 2i + 1.
          l1r1 = t1v[l-1][2*i] ? (!t1v[l-1][2*i+1] || t1a[l-1][2*i] >= t1a[l-1][2*i+1])
                               : !t1v[l-1][2*i+1];
          l1r2 = t1v[l-1][2*i] ? (!t2v[l-1][2*i+1] || t1a[l-1][2*i] >= t2a[l-1][2*i+1])
                               : !t2v[l-1][2*i+1];
          l2r1 = t2v[l-1][2*i] ? (!t1v[l-1][2*i+1] || t2a[l-1][2*i] >= t1a[l-1][2*i+1])
                               : !t1v[l-1][2*i+1];
          if (l1r1) begin
            t1v[l][i] = t1v[l-1][2*i];
            t1a[l][i] = t1a[l-1][2*i];
            t1f[l][i] = t1f[l-1][2*i];
            if (l2r1) begin
              t2v[l][i] = t2v[l-1][2*i];
              t2a[l][i] = t2a[l-1][2*i];
              t2f[l][i] = t2f[l-1][2*i];
            end else begin
              t2v[l][i] = t1v[l-1][2*i+1];
              t2a[l][i] = t1a[l-1][2*i+1];
              t2f[l][i] = t1f[l-1][2*i+1];
            end
          end else begin
            t1v[l][i] = t1v[l-1][2*i+1];
            t1a[l][i] = t1a[l-1][2*i+1];
            t1f[l][i] = t1f[l-1][2*i+1];
            if (l1r2) begin
              t2v[l][i] = t1v[l-1][2*i];
              t2a[l][i] = t1a[l-1][2*i];
              t2f[l][i] = t1f[l-1][2*i];
            end else begin
              t2v[l][i] = t2v[l-1][2*i+1];
              t2a[l][i] = t2a[l-1][2*i+1];
              t2f[l][i] = t2f[l-1][2*i+1];
            end
          end
        end else if (i == (((NC - 1) >> (l - 1)) + 1) / 2 && (((NC - 1) >> (l - 1)) % 2) == 0) begin
          // The odd one out (the last child) passes up.
          t1v[l][i] = t1v[l-1][((NC - 1) >> (l - 1))];
          t1a[l][i] = t1a[l-1][((NC - 1) >> (l - 1))];
          t1f[l][i] = t1f[l-1][((NC - 1) >> (l - 1))];
          t2v[l][i] = t2v[l-1][((NC - 1) >> (l - 1))];
          t2a[l][i] = t2a[l-1][((NC - 1) >> (l - 1))];
          t2f[l][i] = t2f[l-1][((NC - 1) >> (l - 1))];
        end
      end
    end
    sv = t2v[LV-1][0];
  end
  logic [FRAME_BITS-1:0] victim_sel;
  assign victim_sel = AGED ? t1f[LV-1][0] : victim;

  // ---------------------------------------------------------------- two tiers
  // The move in flight: busy, generation (move id {gen, 16'd0}), frames, the demoted block's
  // directory location (C) and tag remainder (D), the table epoch when decided.
  logic mv_busy;
  logic [15:0] mv_gen;
  logic [FRAME_BITS-1:0] mv_src, mv_dst;
  logic [LOC_BITS-1:0] mv_loc;
  logic [REM_BITS-1:0] mv_rem;
  logic [15:0] mv_epoch, table_epoch;
  // Tier 0's frame the last completion freed (the next fill's).
  logic rel_v;
  logic [FRAME_BITS-1:0] rel_f;
  logic c_evict1, d_valid;
  logic [LOC_BITS-1:0] ft1_q;
  // Tier 1: reference bits or stamps (flip-flops), hand, never-used frames left, aged epoch,
  // writes towards the next, carried candidate (local indices).
  localparam int PER_EPOCH1 = (F1 / 32) > 1 ? F1 / 32 : 1;
  logic [F1-1:0] refb1;
  logic [AGE_BITS-1:0] stp1[F1];
  initial for (int i = 0; i < F1; i++) stp1[i] = '0;
  logic [FRAME_BITS-1:0] hand1;
  logic [FRAME_BITS:0] free1;
  logic [AGE_BITS-1:0] epoch1;
  logic [FRAME_BITS:0] age_writes1;
  logic carry1_v;
  logic [FRAME_BITS-1:0] carry1_f;
  // Tier 1's scan (CLOCK: the first unreferenced frame of the window, else the hand's; aged:
  // the carried candidate and the window, oldest first, ties to the carried one and then the
  // lowest frame, the runner-up carried), a linear loop.
  logic found1;
  logic [3:0] kf1;
  // CLOCK: the window is the reference bits shifted down by the hand (a barrel shifter, not
  // 16 multiplexers over the tier), padded with set bits past the last frame so no position
  // there is found; the bits a scan clears are a range compare per frame.
  localparam int H1B = F1 > 1 ? $clog2(F1) : 1;
  logic [F1+SCAN-1:0] win1;
  logic [4:0] stop1;
  logic [F1-1:0] clr1;
  logic [SCAN-1:0] clr1_win;
  logic [F1+SCAN-1:0] clr1_sh;
  assign win1 = {{SCAN{1'b1}}, refb1} >> hand1[H1B-1:0];
  assign stop1 = found1 ? {1'b0, kf1} : 5'd16;
  // The window positions below stop1, shifted up to the hand (past the last frame: dropped).
  assign clr1_win = (stop1 == 5'd16) ? '1 : (SCAN'(1) << stop1[3:0]) - 1'b1;
  assign clr1_sh = {{F1{1'b0}}, clr1_win} << hand1[H1B-1:0];
  assign clr1 = clr1_sh[F1-1:0];
  logic [FRAME_BITS:0] we1, idx1;
  logic [FRAME_BITS-1:0] victim1, dst1, best1_f, sec1_f;
  logic best1_v, sec1_v;
  logic [AGE_BITS-1:0] best1_a, sec1_a, age1;
  always_comb begin
    we1 = ({1'b0, hand1} + (FRAME_BITS + 1)'(SCAN) < (FRAME_BITS + 1)'(FRAMES1)) ?
        {1'b0, hand1} + (FRAME_BITS + 1)'(SCAN) : (FRAME_BITS + 1)'(FRAMES1);
    found1 = 1'b0;
    kf1 = '0;
    for (int k = SCAN - 1; k >= 0; k--) begin
      if (!win1[k]) begin
        found1 = 1'b1;
        kf1 = 4'(k);
      end
    end
    best1_v = 1'b0;
    best1_a = '0;
    best1_f = '0;
    sec1_v = 1'b0;
    sec1_a = '0;
    sec1_f = '0;
    for (int k = -1; k < SCAN; k++) begin
      if (k < 0) idx1 = {1'b0, carry1_f};
      else idx1 = {1'b0, hand1} + (FRAME_BITS + 1)'(k);
      age1 = epoch1 - stp1[idx1[H1B-1:0]];
      if ((k < 0) ? (carry1_v && !(idx1 >= {1'b0, hand1} && idx1 < we1)) : idx1 < we1) begin
        if (best1_v && age1 <= best1_a) begin
          if (!sec1_v || age1 > sec1_a) begin
            sec1_v = 1'b1;
            sec1_a = age1;
            sec1_f = idx1[FRAME_BITS-1:0];
          end
        end else begin
          sec1_v = best1_v;
          sec1_a = best1_a;
          sec1_f = best1_f;
          best1_v = 1'b1;
          best1_a = age1;
          best1_f = idx1[FRAME_BITS-1:0];
        end
      end
    end
    if (AGED) victim1 = best1_v ? best1_f : hand1;
    else victim1 = hand1 + FRAME_BITS'(kf1);
    dst1 = (free1 == '0) ? victim1 : free1[FRAME_BITS-1:0] - 1'b1;
  end

  // Tier 1's frame table: B reads the destination's (its victim's location), a completion
  // writes the moved block's.
  logic [LOC_BITS-1:0] ft1_mem[F1];
  initial for (int i = 0; i < F1; i++) ft1_mem[i] = '0;
  logic completes;
  logic [FRAME_BITS-1:0] dst1_c;  // the completing move's destination, local to tier 1
  assign dst1_c = mv_dst - FRAME_BITS'(FRAMES);
  always_ff @(posedge clk) begin
    if (completes) ft1_mem[dst1_c[H1B-1:0]] <= mv_loc;
    ft1_q <= ft1_mem[dst1[H1B-1:0]];
  end

  // A hit on tier 0 touches its frame unless the block is the one being demoted; a hit on
  // tier 1 touches tier 1's.
  logic hit_acc, hit0_touch, hit1_touch;
  assign hit_acc = b_valid && b_op == OP_ACCESS && hit;
  assign hit0_touch = hit_acc && (!TWO || (hit_frame < FRAME_BITS'(FRAMES) &&
      !(mv_busy && hit_frame == mv_src)));
  assign hit1_touch = TWO && hit_acc && hit_frame >= FRAME_BITS'(FRAMES);
  logic [FRAME_BITS-1:0] hit1_f;
  assign hit1_f = hit_frame - FRAME_BITS'(FRAMES);

  logic need_scan, admit_ok, is_lru;
  logic [3:0] thresh;
  logic [3:0] code;
  logic [FRAME_BITS-1:0] frame;
  logic fill, demote;
  assign ep_inc = (hit0_touch || fill) && age_writes == (FRAME_BITS + 1)'(PER_EPOCH - 1);
  assign thresh = cls_q[3:0];
  assign is_lru = cls_q[4];
  assign need_scan = free_cnt == '0 && !rel_v;
  always_comb begin
    all_ge = 1'b1;
    for (int r = 0; r < 4; r++) if (sk_c[r] < thresh) all_ge = 1'b0;
  end
  assign admit_ok = thresh == 4'd0 || all_ge;
  always_comb begin
    frame = need_scan ? victim_sel : rel_v ? rel_f : free_cnt[FRAME_BITS-1:0] - 1'b1;
    fill = 1'b0;
    demote = 1'b0;
    completes = 1'b0;
    case (b_op)
      OP_ACCESS: begin
        code = hit ? C_HIT : C_MISS;
        frame = hit ? hit_frame : '0;
      end
      OP_INSERT: begin
        if (hit) code = C_PRESENT;
        else if (!admit_ok) code = C_REJECT_ADMIT;
        else if (dir_full) code = C_REJECT_DIR;
        else if (TWO && need_scan && mv_busy) code = C_WAIT;
        else if (TWO && need_scan) begin
          code = C_DEMOTE;
          demote = 1'b1;
        end else begin
          code = need_scan ? C_FILL_EVICT : C_FILL;
          fill = 1'b1;
        end
        if (!fill && !demote) frame = hit ? hit_frame : '0;
      end
      OP_COMPLETE: begin
        completes = TWO && mv_busy && b_move_id == {mv_gen, 16'd0};
        code = completes ? C_ACK : C_STALE;
        frame = completes ? mv_dst : '0;
      end
      default: begin
        code = C_ACK;
        frame = '0;
      end
    endcase
    fill = fill && b_valid;
    demote = demote && b_valid;
    completes = completes && b_valid;
  end

  // Directory write port per bank: B writes the new entry, C invalidates the victim's.
  logic c_bank_v, c_inv;
  logic [WAY_BITS-1:0] c_way_v;
  logic [SET_BITS-1:0] c_set_v;
  logic [LOC_BITS-1:0] c_inv_loc;
  assign c_inv = (c_valid && c_evict) || (c_demote && c_evict1);
  assign c_inv_loc = c_demote ? ft1_q : ft_q;
  assign c_bank_v = c_inv_loc[LOC_BITS-1];
  assign c_way_v = c_inv_loc[LOC_BITS-2-:WAY_BITS];
  assign c_set_v = c_inv_loc[SET_BITS-1:0];
  assign ft_ra = frame;
  always_comb begin
    for (int b = 0; b < 2; b++) begin
      dir_wa[b] = b_set[b];
      dir_wd[b] = {1'b1, rem[b], frame};
      for (int w = 0; w < WAYS; w++)
        dir_we[b][w] = fill && bank_n == b[0] && way_n == w[WAY_BITS-1:0];
      if (completes && mv_loc[LOC_BITS-1] == b[0]) begin
        dir_wa[b] = mv_loc[SET_BITS-1:0];
        dir_wd[b] = {1'b1, mv_rem, mv_dst};
        for (int w = 0; w < WAYS; w++)
          dir_we[b][w] = mv_loc[LOC_BITS-2-:WAY_BITS] == w[WAY_BITS-1:0];
      end
      if (c_inv && c_bank_v == b[0]) begin
        dir_wa[b] = c_set_v;
        dir_wd[b] = '0;
        for (int w = 0; w < WAYS; w++) dir_we[b][w] = c_way_v == w[WAY_BITS-1:0];
      end
    end
  end
  assign sk_we = b_valid && b_op == OP_ACCESS;

  // D: the descriptor, from the entry C read (its tag: the remainder and the set).
  logic [ENTRY_BITS-1:0] d_ent;
  logic [REM_BITS-1:0] d_rem;
  assign d_ent = dir_q[mv_loc[LOC_BITS-1]][mv_loc[LOC_BITS-2-:WAY_BITS]];
  assign d_rem = d_ent[ENTRY_BITS-2-:REM_BITS];
  assign desc_valid = d_valid;
  assign desc_move_id = {mv_gen, 16'd0};
  assign desc_tag = mv_loc[LOC_BITS-1] ? {mv_loc[SET_BITS-1:0], d_rem} :
      {d_rem, mv_loc[SET_BITS-1:0]};
  assign desc_src = mv_src;
  assign desc_dst = mv_dst;
  assign desc_epoch = mv_epoch;

  always_ff @(posedge clk) begin
    if (rst) begin
      mv_busy <= 1'b0;
      mv_gen <= '0;
      rel_v <= 1'b0;
      c_demote <= 1'b0;
      c_evict1 <= 1'b0;
      d_valid <= 1'b0;
      table_epoch <= 16'd1;
      refb1 <= '0;
      hand1 <= '0;
      free1 <= FRAMES1[FRAME_BITS:0];
      epoch1 <= '0;
      age_writes1 <= '0;
      carry1_v <= 1'b0;
    end else begin
      if (accept && in_op == OP_SWAP) table_epoch <= table_epoch + 1'b1;
      c_demote <= demote;
      c_evict1 <= demote && free1 == '0;
      d_valid <= c_demote;
      if (c_demote) mv_loc <= ft_q;
      if (d_valid) mv_rem <= d_rem;
      if (fill && !need_scan && rel_v) rel_v <= 1'b0;
      if (hit1_touch) begin
        if (AGED) begin
          stp1[hit1_f[H1B-1:0]] <= epoch1;
          if (age_writes1 == (FRAME_BITS + 1)'(PER_EPOCH1 - 1)) begin
            age_writes1 <= '0;
            epoch1 <= epoch1 + 1'b1;
          end else begin
            age_writes1 <= age_writes1 + 1'b1;
          end
        end else begin
          refb1[hit1_f[H1B-1:0]] <= 1'b1;
        end
      end
      if (demote) begin
        mv_busy <= 1'b1;
        mv_src <= frame;
        mv_dst <= dst1 + FRAME_BITS'(FRAMES);
        mv_epoch <= table_epoch;
        if (free1 == '0) begin
          if (AGED) begin
            hand1 <= (we1 >= (FRAME_BITS + 1)'(FRAMES1)) ? '0 : we1[FRAME_BITS-1:0];
            carry1_v <= sec1_v;
            carry1_f <= sec1_f;
          end else begin
            refb1 <= refb1 & ~clr1;
            hand1 <= (victim1 == FRAME_BITS'(FRAMES1 - 1)) ? '0 : victim1 + 1'b1;
          end
          // The dropped block's stamp is cleared (the software's release). Its reference
          // bit needs no write: clear (found) or cleared with its window (forced).
          if (AGED) stp1[dst1[H1B-1:0]] <= '0;
        end else begin
          free1 <= free1 - 1'b1;
        end
      end
      if (completes) begin
        // The destination's reference bit is clear already (a demotion's victim or a frame
        // never used; no directory entry led a hit to it meanwhile): no write.
        rel_v <= 1'b1;
        rel_f <= mv_src;
        mv_busy <= 1'b0;
        mv_gen <= mv_gen + 1'b1;
      end
    end
  end

  // ---------------------------------------------------------------- sequential state
  // Control state is reset; the datapath registers below are not (each is read only with a
  // valid bit that is), so they need no reset or enable fan-out.
  always_ff @(posedge clk) begin
    if (rst) begin
      b_valid <= 1'b0;
      c_valid <= 1'b0;
      out_valid <= 1'b0;
      for (int j = 0; j < SCAN; j++) refb[j] <= '0;
      clr_en_q <= 1'b0;
      hand <= '0;
      free_cnt <= FRAMES[FRAME_BITS:0];
      active_bank <= 1'b0;
      hs_q <= 1'b0;
      epoch <= '0;
      stw_q <= 1'b0;
      age_writes <= '0;
      carry_v <= 1'b0;
    end else if (AGED) begin
      b_valid <= accept;
      if (accept && in_op == OP_SWAP) active_bank <= ~active_bank;
      out_valid <= b_valid;
      if (hit0_touch || fill) begin
        if (age_writes == (FRAME_BITS + 1)'(PER_EPOCH - 1)) begin
          age_writes <= '0;
          epoch <= epoch + 1'b1;
        end else begin
          age_writes <= age_writes + 1'b1;
        end
      end
      // One stamp write port: the deferred fill stamp (B is empty that cycle) or a hit's.
      stw_q <= fill;
      if (stw_q || hit0_touch)
        stp[stw_a[3:0]][stw_a[FRAME_BITS-1:4]] <= stw_q ? stw_v_q : epoch;
      carry_dl <= carry_dl + AGE_BITS'(ep_inc);
      if (hit0_touch && carry_f == hit_frame) begin
        carry_age <= '0;
        carry_dl <= AGE_BITS'(ep_inc);
      end
      // A demotion moves the hand as an eviction does; the victim keeps its stamp.
      if ((fill && need_scan) || demote) begin
        hand <= last_in_q ? '0 : hand + FRAME_BITS'(SCAN);
        carry_v <= sv;
        carry_f <= sv ? t2f[LV-1][0] : cf[0];
        if (sv) begin
          carry_age <= t2a[LV-1][0];
          carry_dl <= AGE_BITS'(ep_inc);
        end else begin
          // Kept as it was (a hit's update above is overridden; the candidate is invalid).
          carry_age <= carry_age;
          carry_dl <= carry_dl + AGE_BITS'(ep_inc);
        end
      end
      if (fill) begin
        if (!need_scan && !rel_v) begin
          free_cnt <= free_cnt - 1'b1;
        end
        // LRU-end insertion: stamped 64 epochs old and carried (the next victim).
        stw_f_q <= frame;
        stw_v_q <= is_lru ? epoch - 7'd64 : epoch;
        if (is_lru) begin
          carry_v <= 1'b1;
          carry_f <= frame;
          carry_age <= 7'd64;
          carry_dl <= AGE_BITS'(ep_inc);
        end
      end
      c_valid <= fill;
      hs_q <= hit0_touch;
    end else begin
      b_valid <= accept;
      if (accept && in_op == OP_SWAP) active_bank <= ~active_bank;
      out_valid <= b_valid;
      if (hit0_touch) refb[hit_frame[3:0]][hit_frame[FRAME_BITS-1:4]] <= 1'b1;
      // The new block's own bit needs no write: a victim's bit is clear (found) or cleared
      // with its window (forced), and a free frame's was never set.
      clr_en_q <= (fill && need_scan) || demote;
      if (clr_en_q) for (int j = 0; j < SCAN; j++) if (clr_q[j]) refb[j][clr_row_q[j]] <= 1'b0;
      // A demotion moves the hand as an eviction does.
      if ((fill && need_scan) || demote) hand <= victim_next;
      if (fill) begin
        if (!need_scan && !rel_v) begin
          free_cnt <= free_cnt - 1'b1;
        end
        // LRU-end insertion makes the new block the next victim.
        if (is_lru) hand <= frame;
      end
      c_valid <= fill;
      hs_q <= hit0_touch;
    end
  end

  always_ff @(posedge clk) begin
    // A -> B
    if (accept) begin
      b_op <= in_op;
      b_tag <= in_tag;
      b_sz <= in_sz;
      b_class <= in_class;
      b_set[0] <= a_set[0];
      b_set[1] <= a_set[1];
      for (int r = 0; r < 4; r++) b_sk[r] <= a_sk[r];
    end
    if (accept) b_move_id <= in_entry[31:0];
    // B: decision out.
    out_code <= code;
    out_frame <= frame;
    for (int r = 0; r < 4; r++) begin
      skw_hit_q[r] <= sk_we && a_sk[r] == b_sk[r];
      skw_data_q[r] <= sk_wd[r];
    end
    // B -> C
    c_evict <= need_scan;
    c_frame <= frame;
    c_loc <= {bank_n, way_n, b_set[bank_n]};
    // A -> B: the pre-scan, and the writes A's reads could not see.
    hs_st_q <= epoch;
    for (int k = 0; k < SCAN; k++) begin
      wst_q[k] <= wst[k];
      wbit_q[k] <= wbit[k];
      wvalid_q[k] <= wvalid[k];
      winf_q[k] <= hand + FRAME_BITS'(k);
    end
    for (int j = 0; j < SCAN; j++) begin
      clr_q[j] <= winj_q[j] && (!found || kj_q[j] < kf);
      clr_row_q[j] <= rowj_q[j];
      winj_q[j] <= winj[j];
      kj_q[j] <= kj[j];
      rowj_q[j] <= rowj[j];
    end
    lastk_q <= lastk;
    last_in_q <= last_in;
    hs_frame_q <= hit_frame;
    // C: the invalidation written this cycle, forwarded to the event entering B (only an
    // event accepted this cycle enters it; otherwise B is empty next cycle).
    for (int b = 0; b < 2; b++)
      inv_hit_q[b] <= c_inv && c_bank_v == b[0] && c_set_v == a_set[b];
    inv_way_q <= c_way_v;
  end

  // ---------------------------------------------------------------- telemetry port
  // Sampling, as the software shard: the kind's bit in the mask and the key in the spatial
  // sample (its hash's trailing zeros >= the shift, clamped to 40). An eviction is sampled on
  // the bit the victim's frame kept from its fill (samp: one flip-flop per frame; a frame is
  // evicted only after it was filled, so the bits need no reset). Both samp paths start at
  // registers, not at the victim choice: the bit is read for the staged eviction record (its
  // frame field) and written in C (c_frame, c_samp), as the frame table is; C's write lands
  // at the end of the cycle the staged record reads the victim's old bit.
  localparam int TEL_DEPTH = 1 << TEL_DEPTH_BITS;
  localparam int TEL_REC_BITS = 21 + FRAME_BITS + TAG_BITS;
  logic [4:0] tel_kinds;
  logic [5:0] tel_shift;
  logic [7:0] tel_epoch;
  logic [FRAMES-1:0] samp;
  logic c_samp;
  logic tel_sampled;
  assign tel_sampled = b_sz >= ((tel_shift > 6'd40) ? 6'd40 : tel_shift);
  logic tr_v, tr_ev;
  logic [TEL_REC_BITS-1:0] tr;
  always_comb begin
    tr_v = 1'b0;
    tr_ev = 1'b0;
    tr = '0;
    if (b_valid && b_op == OP_ACCESS) begin
      tr_v = tel_sampled && (hit ? tel_kinds[0] : tel_kinds[1]);
      tr = {hit ? 3'd0 : 3'd1, 8'd0, tel_epoch, 2'd0, hit ? hit_frame : FRAME_BITS'(0), b_tag};
    end else if (b_valid && b_op == OP_INSERT && (code == C_REJECT_ADMIT || code == C_REJECT_DIR)) begin
      tr_v = tel_sampled && tel_kinds[3];
      tr = {3'd3, b_class, tel_epoch, (code == C_REJECT_DIR) ? 2'd3 : 2'd0, FRAME_BITS'(0), b_tag};
    end else if (b_valid && b_op == OP_INSERT && code == C_FILL_EVICT) begin
      tr_v = tel_kinds[4];
      tr_ev = 1'b1;
      tr = {3'd4, 8'd0, tel_epoch, 2'd0, frame, TAG_BITS'(0)};
    end
    // C (an admission, after its INSERT's eviction) never shares a cycle with B.
    if (c_valid && c_samp && tel_kinds[2]) begin
      tr_v = 1'b1;
      tr = {3'd2, b_class, tel_epoch, 2'd0, c_frame, b_tag};
    end
  end

  // The staged record is written at the head unless the ring is full (an eviction only when
  // its victim's key was sampled).
  logic ts_v, ts_ev, ts_go;
  logic [TEL_REC_BITS-1:0] ts;
  logic [TEL_DEPTH_BITS:0] tel_occ;
  assign tel_occ = tel_head - tel_tail;
  assign ts_go = ts_v && (!ts_ev || samp[ts[TAG_BITS+:FRAME_BITS]]);
  logic [TEL_REC_BITS-1:0] ring[TEL_DEPTH];
  initial for (int i = 0; i < TEL_DEPTH; i++) ring[i] = '0;
  always_ff @(posedge clk) begin
    if (ts_go && !tel_occ[TEL_DEPTH_BITS]) ring[tel_head[TEL_DEPTH_BITS-1:0]] <= ts;
    if (tel_re) tel_rdata <= ring[tel_raddr];
  end
  always_ff @(posedge clk) begin
    if (rst) begin
      ts_v <= 1'b0;
      tel_head <= '0;
      tel_tail <= '0;
      tel_dropped <= '0;
      tel_shift <= '0;
      tel_kinds <= 5'h1f;
      tel_epoch <= 8'd1;
    end else begin
      ts_v <= tr_v;
      if (ts_go) begin
        if (tel_occ[TEL_DEPTH_BITS]) tel_dropped <= tel_dropped + 1'b1;
        else tel_head <= tel_head + 1'b1;
      end
      if (tel_we && !tel_waddr) tel_tail <= tel_wdata[TEL_DEPTH_BITS:0];
      if (tel_we && tel_waddr) tel_shift <= tel_wdata[5:0];
      if (accept && in_op == OP_SWAP) begin
        tel_kinds <= in_entry[4:0];
        tel_epoch <= tel_epoch + 1'b1;
      end
    end
  end
  always_ff @(posedge clk) begin
    ts <= tr;
    ts_ev <= tr_ev;
    c_samp <= tel_sampled;
    if (c_valid) samp[c_frame] <= c_samp;
  end
endmodule
