//! Planning the decode-loop benchmark, and what the host link predicts for it.
//!
//! A decode step of a Llama-3-8B-shaped model runs 32 layers; each layer reads every KV block
//! of the sequence for that layer (64 KiB per 16-token block in bf16) and its weights. When the
//! KV cache does not fit the HBM budget, part of every layer's blocks lives in pinned host
//! memory and crosses the link on every step. Three ways to run it:
//!
//! - **all in HBM**: no transfer (needs the whole cache in HBM: the reference);
//! - **on demand**: before layer `l` computes, its host blocks are fetched, then it computes;
//! - **prefetch** (MCOS): layer `l + 1`'s host blocks move while layer `l` computes, into the
//!   other half of a double-buffered staging area.
//!
//! Per step, with `c` the compute time of one layer and `x` the transfer time of one layer's
//! host blocks: all-in-HBM takes `L * c`, on demand `L * (c + x)`, prefetch `L * max(c, x)`.
//! The link carries the per-step working set, and prefetch can approach all-in-HBM, exactly
//! when `x <= c`. All of this is arithmetic, tested on the CPU; the GPU benchmark measures `c`
//! and the link bandwidth and reports the prediction next to what it measured.

use mcos_tiers::layout::{frame_stride, gpu_transfer_len};
use std::fmt;

/// The shape of one decode step's KV working set.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DecodeShape {
    /// Transformer layers.
    pub layers: u32,
    /// Tokens per KV block.
    pub block_tokens: u32,
    /// Payload bytes of one layer's K and V for one block.
    pub block_payload_bytes: u32,
    /// Tokens of context whose KV every step reads.
    pub context_tokens: u32,
}

impl DecodeShape {
    /// Llama-3-8B in bf16: 32 layers, 8 KV heads x 128 dims x (K + V) x 2 bytes x 16 tokens
    /// = 64 KiB per layer per block, at `context_tokens` of context.
    pub const fn llama3_8b(context_tokens: u32) -> DecodeShape {
        DecodeShape {
            layers: 32,
            block_tokens: 16,
            block_payload_bytes: 64 << 10,
            context_tokens,
        }
    }

    /// KV blocks per layer (the last one may be partly filled).
    pub fn blocks_per_layer(&self) -> u32 {
        self.context_tokens.div_ceil(self.block_tokens)
    }

    /// Bytes one GPU move of a block transfers (header + payload).
    pub fn transfer_bytes(&self) -> u64 {
        gpu_transfer_len(self.block_payload_bytes) as u64
    }

    /// Bytes of one arena frame.
    pub fn frame_bytes(&self) -> u64 {
        frame_stride(self.block_payload_bytes) as u64
    }
}

/// A decode plan that cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError(pub String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

/// How one layer's blocks are placed under an HBM budget.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DecodePlan {
    /// The working set.
    pub shape: DecodeShape,
    /// KV blocks of each layer.
    pub blocks_per_layer: u32,
    /// Blocks of each layer that stay in HBM.
    pub resident_per_layer: u32,
    /// Blocks of each layer that live in pinned host memory and cross the link every step.
    pub streamed_per_layer: u32,
    /// HBM frames for staging streamed blocks (two layers' worth: double buffering).
    pub staging_frames: u32,
    /// HBM frames used: resident plus staging.
    pub hbm_frames: u32,
}

impl DecodePlan {
    /// Places `shape` in an HBM budget of `hbm_budget_frames` frames for KV: as many blocks per
    /// layer resident as fit next to a double-buffered staging area for the rest. With room for
    /// everything, nothing is streamed and there is no staging.
    pub fn new(shape: DecodeShape, hbm_budget_frames: u32) -> Result<DecodePlan, PlanError> {
        if shape.layers == 0 || shape.block_tokens == 0 || shape.context_tokens == 0 {
            return Err(PlanError(
                "a decode shape needs at least one layer, one token per block and one token of \
                 context"
                    .into(),
            ));
        }
        if shape.block_payload_bytes == 0 {
            return Err(PlanError("KV blocks of 0 bytes hold nothing".into()));
        }
        let bpl = shape.blocks_per_layer();
        let total = u64::from(shape.layers) * u64::from(bpl);
        let budget = u64::from(hbm_budget_frames);
        if budget >= total {
            return Ok(DecodePlan {
                shape,
                blocks_per_layer: bpl,
                resident_per_layer: bpl,
                streamed_per_layer: 0,
                staging_frames: 0,
                hbm_frames: total as u32,
            });
        }
        // layers * r + 2 * (bpl - r) <= budget, so r <= (budget - 2 bpl) / (layers - 2).
        let staging_all = 2 * u64::from(bpl);
        if budget < staging_all.min(total) || shape.layers <= 2 {
            return Err(PlanError(format!(
                "an HBM budget of {hbm_budget_frames} frames cannot hold a {}-layer KV cache of \
                 {total} blocks, nor the {staging_all}-frame double buffer that streams one \
                 layer while another computes: give at least {staging_all} frames",
                shape.layers
            )));
        }
        let r = ((budget - staging_all) / u64::from(shape.layers - 2)).min(u64::from(bpl)) as u32;
        let streamed = bpl - r;
        let plan = DecodePlan {
            shape,
            blocks_per_layer: bpl,
            resident_per_layer: r,
            streamed_per_layer: streamed,
            staging_frames: 2 * streamed,
            hbm_frames: shape.layers * r + 2 * streamed,
        };
        debug_assert!(u64::from(plan.hbm_frames) <= budget);
        Ok(plan)
    }

    /// A plan that keeps `resident_fraction` of every layer's blocks in HBM (rounded down) and
    /// streams the rest: what a benchmark sweep asks for.
    pub fn with_resident_fraction(
        shape: DecodeShape,
        resident_fraction: f64,
    ) -> Result<DecodePlan, PlanError> {
        if !(0.0..=1.0).contains(&resident_fraction) {
            return Err(PlanError(format!(
                "resident fraction {resident_fraction} is outside 0..=1"
            )));
        }
        let bpl = shape.blocks_per_layer();
        let r = (f64::from(bpl) * resident_fraction).floor() as u32;
        let budget = shape.layers * r + 2 * (bpl - r);
        let plan = DecodePlan::new(shape, budget)?;
        debug_assert!(plan.resident_per_layer >= r);
        Ok(plan)
    }

    /// Frames of KV in HBM if everything were resident.
    pub fn all_resident_frames(&self) -> u64 {
        u64::from(self.shape.layers) * u64::from(self.blocks_per_layer)
    }

    /// Bytes that cross the link per decode step.
    pub fn streamed_bytes_per_step(&self) -> u64 {
        u64::from(self.shape.layers)
            * u64::from(self.streamed_per_layer)
            * self.shape.transfer_bytes()
    }

    /// Bytes that cross the link per layer.
    pub fn streamed_bytes_per_layer(&self) -> u64 {
        u64::from(self.streamed_per_layer) * self.shape.transfer_bytes()
    }
}

/// What the link predicts for one plan, given the measured compute time of a layer and the
/// measured link bandwidth.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct LinkPrediction {
    /// Compute time of one layer (measured all-in-HBM), seconds.
    pub compute_layer_s: f64,
    /// Transfer time of one layer's streamed blocks at the link bandwidth, seconds.
    pub transfer_layer_s: f64,
    /// Predicted step time with everything in HBM, seconds.
    pub all_hbm_step_s: f64,
    /// Predicted step time fetching on demand, seconds.
    pub on_demand_step_s: f64,
    /// Predicted step time prefetching one layer ahead, seconds.
    pub prefetch_step_s: f64,
    /// Whether the link carries the per-step working set (transfer hidden behind compute).
    pub link_carries: bool,
    /// Most streamed blocks per layer the link can hide behind one layer's compute.
    pub max_hidden_blocks_per_layer: u64,
}

impl LinkPrediction {
    /// Predicted prefetch tokens/s over all-in-HBM tokens/s (1.0: fully hidden).
    pub fn prefetch_ratio(&self) -> f64 {
        self.all_hbm_step_s / self.prefetch_step_s
    }
}

/// The link-limit prediction for `plan` (see the module docs). Bandwidth in bytes/s; both
/// inputs must be positive and finite.
pub fn predict(plan: &DecodePlan, compute_layer_s: f64, link_bytes_per_s: f64) -> LinkPrediction {
    assert!(compute_layer_s.is_finite() && compute_layer_s > 0.0);
    assert!(link_bytes_per_s.is_finite() && link_bytes_per_s > 0.0);
    let layers = f64::from(plan.shape.layers);
    let x = plan.streamed_bytes_per_layer() as f64 / link_bytes_per_s;
    let c = compute_layer_s;
    LinkPrediction {
        compute_layer_s: c,
        transfer_layer_s: x,
        all_hbm_step_s: layers * c,
        on_demand_step_s: layers * (c + x),
        prefetch_step_s: layers * c.max(x),
        link_carries: x <= c,
        max_hidden_blocks_per_layer: (c * link_bytes_per_s / plan.shape.transfer_bytes() as f64)
            .floor() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_shape_matches_the_model_card_arithmetic() {
        let s = DecodeShape::llama3_8b(8192);
        assert_eq!(s.blocks_per_layer(), 512);
        assert_eq!(s.transfer_bytes(), 65600);
        assert_eq!(s.frame_bytes(), 69632);
        // 128 KiB of KV per token over all layers.
        assert_eq!(
            u64::from(s.layers) * u64::from(s.block_payload_bytes) / u64::from(s.block_tokens),
            128 << 10
        );
        assert_eq!(DecodeShape::llama3_8b(17).blocks_per_layer(), 2);
    }

    #[test]
    fn a_budget_that_holds_everything_streams_nothing() {
        let s = DecodeShape::llama3_8b(1024);
        let p = DecodePlan::new(s, 32 * 64).unwrap();
        assert_eq!((p.resident_per_layer, p.streamed_per_layer), (64, 0));
        assert_eq!(p.staging_frames, 0);
        assert_eq!(p.streamed_bytes_per_step(), 0);
    }

    #[test]
    fn a_short_budget_keeps_what_fits_beside_the_double_buffer() {
        let s = DecodeShape::llama3_8b(1024); // 64 blocks per layer, 2048 in all
        let p = DecodePlan::new(s, 1024).unwrap();
        // 32 r + 2 (64 - r) <= 1024  =>  r <= 29.86
        assert_eq!(p.resident_per_layer, 29);
        assert_eq!(p.streamed_per_layer, 35);
        assert_eq!(p.staging_frames, 70);
        assert_eq!(p.hbm_frames, 32 * 29 + 70);
        assert!(p.hbm_frames <= 1024);
        assert!(u64::from(p.hbm_frames) < p.all_resident_frames());
        assert_eq!(p.streamed_bytes_per_step(), 32 * 35 * 65600);
        let err = DecodePlan::new(s, 127).unwrap_err().to_string();
        assert!(err.contains("128"), "{err}");
    }

    #[test]
    fn resident_fraction_sweeps_and_bad_inputs() {
        let s = DecodeShape::llama3_8b(8192);
        let p = DecodePlan::with_resident_fraction(s, 0.75).unwrap();
        assert_eq!(p.resident_per_layer, 384);
        assert_eq!(p.streamed_per_layer, 128);
        let none = DecodePlan::with_resident_fraction(s, 0.0).unwrap();
        assert_eq!(none.streamed_per_layer, 512);
        let all = DecodePlan::with_resident_fraction(s, 1.0).unwrap();
        assert_eq!(all.streamed_per_layer, 0);
        assert!(DecodePlan::with_resident_fraction(s, 1.5).is_err());
        assert!(DecodePlan::with_resident_fraction(s, f64::NAN).is_err());
        let mut bad = s;
        bad.layers = 0;
        assert!(DecodePlan::new(bad, 10).is_err());
    }

    #[test]
    fn the_link_limit_decides_where_prefetch_can_hide_transfers() {
        let s = DecodeShape::llama3_8b(8192);
        let link = 50e9;
        // 0.17 ms of compute per layer (416 MiB of weights at about 2.5 TB/s).
        let c = 170e-6;
        let p = DecodePlan::with_resident_fraction(s, 0.875).unwrap(); // 64 streamed
        let pr = predict(&p, c, link);
        assert!(pr.link_carries);
        assert!((pr.transfer_layer_s - 64.0 * 65600.0 / link).abs() < 1e-12);
        assert_eq!(pr.prefetch_step_s, pr.all_hbm_step_s);
        assert!((pr.prefetch_ratio() - 1.0).abs() < 1e-12);
        assert!(pr.on_demand_step_s > pr.prefetch_step_s);
        assert_eq!(pr.max_hidden_blocks_per_layer, 129);

        let p = DecodePlan::with_resident_fraction(s, 0.5).unwrap(); // 256 streamed
        let pr = predict(&p, c, link);
        assert!(!pr.link_carries);
        assert!(pr.prefetch_ratio() < 0.55, "{}", pr.prefetch_ratio());
        assert!((pr.prefetch_step_s - 32.0 * pr.transfer_layer_s).abs() < 1e-12);
    }
}
