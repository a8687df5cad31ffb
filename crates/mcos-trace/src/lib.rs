//! MCOS trace I/O and workload generators: everything that turns traffic into a stream of
//! requests, and nothing that evaluates a policy on it (that is `mcos-workload`).
//!
//! - [`trace`]: streaming reader and writer for Mooncake-format JSONL traces (one request per line,
//!   one prefix-chained block id per `block_tokens` tokens of the prompt).
//! - [`generator`]: a seeded, self-contained workload generator (multi-turn chat, shared system
//!   prompts, agent loops, RAG over Zipf-popular documents, modulated Poisson arrivals) that writes
//!   the same format.
//! - [`azure`]: the Azure LLM inference traces (real arrivals and prompt sizes) with
//!   synthesised, deterministic prefix-sharing block ids.
//! - [`objtrace`]: the cache community's object traces in libCacheSim's formats (oracleGeneral,
//!   also `.zst`-compressed, CSV with a column spec, txt, vscsi): one (time, key, size) record at
//!   a time.
//!
//! Block ids are plain `u64` as they appear in traces; they become `BlockKey`s under a fixed
//! namespace when they enter the fast path or a node.

#![warn(missing_docs)]

pub mod azure;
pub mod generator;
pub mod objtrace;
pub mod trace;

pub use azure::{AzureSynthesis, read_azure};
pub use generator::{GeneratorConfig, GeneratorError, Mixture, generate, write_trace};
pub use trace::{DEFAULT_BLOCK_TOKENS, Request, TraceError, TraceReader, TraceWriter};
