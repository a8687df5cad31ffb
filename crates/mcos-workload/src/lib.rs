//! MCOS workload evaluation: "how good is a KV-block cache policy on this traffic?" without a
//! GPU. The traffic itself (trace formats and generators) is `mcos-trace`, re-exported here
//! under the same module names ([`trace`], [`generator`], [`azure`], [`objtrace`]).
//!
//! - [`policy`]: one [`CachePolicy`] trait over unit-size blocks and the baseline policies, one file
//!   each: LRU, vLLM's tail-first LRU, S3-FIFO, SIEVE, ARC and the offline Belady MIN oracle.
//! - [`simulate`]: the capacity-sweep simulator that replays every block access of a trace against a
//!   policy and reports block and token hit ratios.
//!
//! - [`objcache`], [`objsim`]: policies over variable-size objects under byte capacities (the
//!   cache community's traces, read by [`objtrace`]), and the sweep that reports object and byte
//!   miss ratios.
//!
//! - [`serve`]: a serving-engine model (FCFS prefill at a given throughput, arrivals from the
//!   trace) that gives policies the queue a real engine would have, as intents.
//!
//! - [`tiered`]: replays over a tier hierarchy with hits per tier and modelled prefill time
//!   saved (fetch versus recompute).
//!
//! - [`mrc`]: miss-ratio curves: LRU exact in one pass by stack distances, the other policies
//!   by spatial sampling (SHARDS) with the sampling error stated.
//!
//! - [`real`]: the same replay through a running node, with real bytes in real tiers, every hit
//!   checked byte for byte.

#![warn(missing_docs)]

pub mod mrc;
pub mod objcache;
pub mod objsim;
pub mod policy;
pub mod real;
pub mod serve;
pub mod simulate;
pub mod tiered;

pub use mcos_trace::{azure, generator, objtrace, trace};

pub use mcos_trace::{AzureSynthesis, read_azure};
pub use mcos_trace::{DEFAULT_BLOCK_TOKENS, Request, TraceError, TraceReader, TraceWriter};
pub use mcos_trace::{GeneratorConfig, GeneratorError, Mixture, generate, write_trace};
pub use mrc::{MrcConfig, MrcCurve, MrcMethod, MrcPoint, MrcReport, miss_ratio_curves};
pub use policy::{AccessSeq, CachePolicy, POLICY_NAMES, PolicyError, PolicyStats, by_name};
pub use real::{LinkMeasured, RealError, RealResult, block_payload, replay_real};
pub use serve::{ServeConfig, ServeStats, StageConfig, serve, serve_tiered};
pub use simulate::{Capacity, ReplayCounts, SimError, SimResult, Simulator, TraceStats, replay};
pub use tiered::{MODEL_PRESETS, ModelPreset, TieredResult, model_preset, replay_tiered};
