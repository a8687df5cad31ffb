// Place-and-route wrapper for an iCE40 HX8K: the pipeline's event port is 200+ bits wide,
// more than the package has pins, so events are shifted in 8 bits per cycle into a register
// that drives the port (a stand-in for the host link: the fmax measured is the pipeline's
// register-to-register paths, which the wrapper does not lengthen). Not used in simulation.
module mcos_hw_ice40_top #(
    parameter int FRAMES     = 256,
    parameter int FRAME_BITS = 8,
    parameter int SET_BITS   = 5,
    parameter int SK_BITS    = 8,
    parameter int TAG_BITS   = 12,
    parameter int WAYS       = 8,
    parameter int WAY_BITS   = 3,
    parameter bit AGED       = 1'b0
) (
    input  logic                  clk,
    input  logic                  rst,
    input  logic                  shift_en,
    input  logic [7:0]            shift_in,
    input  logic                  in_valid,
    output logic                  in_ready,
    output logic                  out_valid,
    output logic [2:0]            out_code,
    output logic [FRAME_BITS-1:0] out_frame
);
  localparam int EV_BITS = 2 + 8 + TAG_BITS + 64 + 128;
  localparam int SHIFT_BITS = (EV_BITS + 7) / 8 * 8;
  logic [SHIFT_BITS-1:0] ev;
  always_ff @(posedge clk) begin
    if (shift_en) ev <= {ev[SHIFT_BITS-9:0], shift_in};
  end
  mcos_hw_pipeline #(
      .FRAMES(FRAMES),
      .FRAME_BITS(FRAME_BITS),
      .SET_BITS(SET_BITS),
      .SK_BITS(SK_BITS),
      .TAG_BITS(TAG_BITS),
      .WAYS(WAYS),
      .WAY_BITS(WAY_BITS),
      .AGED(AGED)
  ) core (
      .clk(clk),
      .rst(rst),
      .in_valid(in_valid),
      .in_ready(in_ready),
      .in_op(ev[1:0]),
      .in_class(ev[9:2]),
      .in_tag(ev[10+:TAG_BITS]),
      .in_skh(ev[10+TAG_BITS+:64]),
      .in_entry(ev[74+TAG_BITS+:128]),
      .out_valid(out_valid),
      .out_code(out_code),
      .out_frame(out_frame)
  );
endmodule
