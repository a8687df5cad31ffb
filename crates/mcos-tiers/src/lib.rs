//! MCOS tiers and engines: where block bytes live and how they move.
//!
//! The fast path (`mcos-fastpath`) owns every placement decision and the frame state machine;
//! this crate only stores bytes in frames by index and executes movement descriptors.
//!
//! - [`header`]: the 64-byte header in front of every block (key, length, checksums) and its
//!   verification. Corruption is a value.
//! - [`layout`]: the frame layout every tier shares (4096-aligned stride).
//! - [`dram`]: [`DramTier`], a preallocated aligned arena of frames with per-frame claims.
//! - [`disk`]: [`DiskTier`], a preallocated file of frames opened with O_DIRECT, behind a
//!   [`superblock`] that marks it as an MCOS tier file.
//! - [`lock`]: one owner per tier file and run directory (`flock`, holder pid recorded).
//! - [`store`]: [`TierSet`], the tiers an engine reaches, by `TierId`.
//! - [`engine`]: the movers: io_uring and pread/pwrite disk backends behind one trait, memcpy
//!   between DRAM tiers, batch execution with verification, and the engine thread fed by the
//!   fast path's descriptor rings.
//! - [`error`]: the one error type, [`TierError`], whose messages say what to do.

#![warn(missing_docs)]

mod aligned;
mod claims;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod disk;
pub mod dram;
pub mod engine;
pub mod error;
pub mod fold;
pub mod header;
pub mod layout;
pub mod lock;
pub mod rebuild;
pub mod store;
pub mod superblock;

#[cfg(feature = "fault-injection")]
pub use disk::FaultPlan;
pub use disk::{DirectRead, DiskTier};
pub use dram::{DramTier, FrameRead, FrameWrite};
pub use engine::thread::{
    Doorbell, EngineConfig, EngineCounters, EngineHandle, EngineStats, EngineThread, ShardRings,
};
pub use engine::{BackendChoice, IoBackend, IoKind, IoOp, Outcome};
pub use error::TierError;
pub use header::{BlockHeader, CorruptBlock, CorruptReason, KeyCheck, verify};
pub use store::{TierSet, TierStore};
