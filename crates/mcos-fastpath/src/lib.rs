//! The MCOS fast path: the hardware-shaped data plane.
//!
//! It executes the policy table the brain installed on every event, with bounded work over
//! fixed-size tables allocated at start-up: no allocation, no lock, no system call and no wait
//! on the brain per event (tests/no_alloc.rs counts allocations). It decides placement,
//! admission, eviction, demotion and prefetch, and hands movement descriptors to engines
//! through bounded rings; the bytes themselves never pass through here.
//!
//! Structure, one file each: the directory (`directory`), per-tier frame tables with their
//! recency lists (`frames`), the admission sketch (`sketch`) and history (`history`), the per-sequence prefetch table
//! (`prefetch`), the in-flight move table (`moves`), counters (`counters`), and the executor
//! that ties them together per shard (`shard`).

#![warn(missing_docs)]

pub mod counters;
pub mod directory;
pub mod frames;
pub mod history;
pub mod moves;
pub mod prefetch;
pub mod shard;
pub mod sketch;
mod table;

pub use counters::Counters;
pub use shard::{Access, Insert, IntentError, RejectReason, RestoreError, Shard, ShardConfig};
