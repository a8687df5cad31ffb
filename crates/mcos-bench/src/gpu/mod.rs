//! `mcos bench gpu`: the GPU tiers and movers of `mcos-tiers` (feature `cuda`) checked and
//! measured on a real device, and the decode-loop model the benchmark replays.
//!
//! - [`config`]: what a run measures (block sizes, batch, repetitions, the disk path), always
//!   built so the command line parses without CUDA.
//! - [`decode_plan`]: a Llama-shaped decode loop's layout and what the link predicts for it.
//! - [`bench`] (feature `cuda`): every check and benchmark in one run, JSON results.

#[cfg(feature = "cuda")]
pub mod bench;
pub mod config;
pub mod decode_plan;
