//! MCOS workloads and evaluation.
//!
//! Everything needed to ask "how good is a KV-block cache policy on this traffic?" without a GPU:
//!
//! - [`trace`]: streaming reader and writer for Mooncake-format JSONL traces (one request per line,
//!   one prefix-chained block id per `block_tokens` tokens of the prompt).
//! - [`generator`]: a seeded, self-contained workload generator (multi-turn chat, shared system
//!   prompts, agent loops, RAG over Zipf-popular documents, modulated Poisson arrivals) that writes
//!   the same format.
//! - [`policy`]: one [`CachePolicy`] trait over unit-size blocks and the baseline policies, one file
//!   each: LRU, vLLM's tail-first LRU, S3-FIFO, SIEVE, ARC and the offline Belady MIN oracle.
//! - [`simulate`]: the capacity-sweep simulator that replays every block access of a trace against a
//!   policy and reports block and token hit ratios.
//!
//! - [`azure`]: the Azure LLM inference traces (real arrivals and prompt sizes) with
//!   synthesised, deterministic prefix-sharing block ids.
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
//!
//! Block ids are plain `u64` as they appear in traces; they become `BlockKey`s under a fixed
//! namespace when they enter the fast path or a node.

#![warn(missing_docs)]

pub mod azure;
pub mod generator;
pub mod mrc;
pub mod policy;
pub mod real;
pub mod serve;
pub mod simulate;
pub mod tiered;
pub mod trace;

pub use azure::{AzureSynthesis, read_azure};
pub use generator::{GeneratorConfig, GeneratorError, Mixture, generate, write_trace};
pub use mrc::{MrcConfig, MrcCurve, MrcMethod, MrcPoint, MrcReport, miss_ratio_curves};
pub use policy::{AccessSeq, CachePolicy, POLICY_NAMES, PolicyError, PolicyStats, by_name};
pub use real::{LinkMeasured, RealError, RealResult, block_payload, replay_real};
pub use serve::{ServeConfig, ServeStats, StageConfig, serve, serve_tiered};
pub use simulate::{Capacity, ReplayCounts, SimError, SimResult, Simulator, TraceStats, replay};
pub use tiered::{MODEL_PRESETS, ModelPreset, TieredResult, model_preset, replay_tiered};
pub use trace::{DEFAULT_BLOCK_TOKENS, Request, TraceError, TraceReader, TraceWriter};
