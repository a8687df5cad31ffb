// Place-and-route wrapper for an iCE40 HX8K: the pipeline's event port is 200+ bits wide,
// more than the package has pins, so events are shifted in 8 bits per cycle into a register
// that drives the port (a stand-in for the host link: the fmax measured is the pipeline's
// register-to-register paths, which the wrapper does not lengthen). The telemetry port is
// driven from the same register (write, read address) and its read data and registers are
// loaded into a register shifted out one bit per cycle, so synthesis keeps the ring and its
// registers. With two tiers (FRAMES1 > 0) each descriptor is loaded into a register shifted
// out on desc_out one bit per cycle (desc_valid starts it), so synthesis keeps the descriptor
// path. Not used in simulation.
module mcos_hw_ice40_top #(
    parameter int FRAMES     = 256,
    parameter int FRAMES1    = 0,
    parameter int FRAME_BITS = 8,
    parameter int SET_BITS   = 5,
    parameter int SK_BITS    = 8,
    parameter int TAG_BITS   = 12,
    parameter int WAYS       = 8,
    parameter int WAY_BITS   = 3,
    parameter bit AGED       = 1'b0,
    parameter int TEL_DEPTH_BITS = 6
) (
    input  logic                  clk,
    input  logic                  rst,
    input  logic                  shift_en,
    input  logic [7:0]            shift_in,
    input  logic                  in_valid,
    output logic                  in_ready,
    output logic                  out_valid,
    output logic [3:0]            out_code,
    output logic [FRAME_BITS-1:0] out_frame,
    input  logic                  tel_we,
    input  logic                  tel_re,
    input  logic                  tel_load,
    output logic                  tel_out,
    output logic                  desc_out
);
  localparam int EV_BITS = 3 + 8 + TAG_BITS + 64 + 128 + 6 + 1 + 16 + TEL_DEPTH_BITS;
  localparam int TEL_REC_BITS = 21 + FRAME_BITS + TAG_BITS;
  localparam int TEL_OUT_BITS = TEL_REC_BITS + 2 * (TEL_DEPTH_BITS + 1) + 32;
  logic [TEL_REC_BITS-1:0] tel_rdata;
  logic [TEL_DEPTH_BITS:0] tel_head, tel_tail;
  logic [31:0] tel_dropped;
  logic [TEL_OUT_BITS-1:0] tel_sr;
  always_ff @(posedge clk) begin
    if (tel_load) tel_sr <= {tel_rdata, tel_head, tel_tail, tel_dropped};
    else tel_sr <= {tel_sr[TEL_OUT_BITS-2:0], 1'b0};
  end
  assign tel_out = tel_sr[TEL_OUT_BITS-1];
  localparam int DESC_BITS = 32 + TAG_BITS + 2 * FRAME_BITS + 16;
  logic desc_valid;
  logic [31:0] desc_move_id;
  logic [TAG_BITS-1:0] desc_tag;
  logic [FRAME_BITS-1:0] desc_src, desc_dst;
  logic [15:0] desc_epoch;
  logic [DESC_BITS-1:0] desc_sr;
  always_ff @(posedge clk) begin
    if (desc_valid) desc_sr <= {desc_move_id, desc_tag, desc_src, desc_dst, desc_epoch};
    else desc_sr <= {desc_sr[DESC_BITS-2:0], 1'b0};
  end
  assign desc_out = desc_sr[DESC_BITS-1];
  localparam int SHIFT_BITS = (EV_BITS + 7) / 8 * 8;
  logic [SHIFT_BITS-1:0] ev;
  always_ff @(posedge clk) begin
    if (shift_en) ev <= {ev[SHIFT_BITS-9:0], shift_in};
  end
  mcos_hw_pipeline #(
      .FRAMES(FRAMES),
      .FRAMES1(FRAMES1),
      .FRAME_BITS(FRAME_BITS),
      .SET_BITS(SET_BITS),
      .SK_BITS(SK_BITS),
      .TAG_BITS(TAG_BITS),
      .WAYS(WAYS),
      .WAY_BITS(WAY_BITS),
      .AGED(AGED),
      .TEL_DEPTH_BITS(TEL_DEPTH_BITS)
  ) core (
      .clk(clk),
      .rst(rst),
      .in_valid(in_valid),
      .in_ready(in_ready),
      .in_op(ev[2:0]),
      .in_class(ev[10:3]),
      .in_tag(ev[11+:TAG_BITS]),
      .in_skh(ev[11+TAG_BITS+:64]),
      .in_entry(ev[75+TAG_BITS+:128]),
      .in_sz(ev[203+TAG_BITS+:6]),
      .tel_waddr(ev[209+TAG_BITS]),
      .tel_wdata(ev[210+TAG_BITS+:16]),
      .tel_raddr(ev[226+TAG_BITS+:TEL_DEPTH_BITS]),
      .tel_we(tel_we),
      .tel_re(tel_re),
      .tel_rdata(tel_rdata),
      .tel_head(tel_head),
      .tel_tail(tel_tail),
      .tel_dropped(tel_dropped),
      .out_valid(out_valid),
      .out_code(out_code),
      .out_frame(out_frame),
      .desc_valid(desc_valid),
      .desc_move_id(desc_move_id),
      .desc_tag(desc_tag),
      .desc_src(desc_src),
      .desc_dst(desc_dst),
      .desc_epoch(desc_epoch)
  );
endmodule
