//! MCOS vocabulary and contract.
//!
//! Everything the brain, the fast path, the engines and the tiers agree on lives here and
//! nowhere else: block keys, tiers and topology, intents, limits, the policy table the brain
//! installs, the movement descriptors the fast path emits, telemetry samples, and the lock-free
//! channels that carry them. This crate depends on no other MCOS crate.

#![warn(missing_docs)]

pub mod descriptor;
pub mod error;
pub mod intent;
pub mod key;
pub mod limits;
pub mod policy;
pub mod sync;
pub mod telemetry;
pub mod topology;

pub use descriptor::{MoveCompletion, MoveDescriptor, MoveOp, MoveStatus, Urgency};
pub use error::ContractError;
pub use intent::{Intent, IntentAction, PriorityClass};
pub use key::{BlockKey, Namespace, tenant_salt};
pub use policy::{
    AGE_BITS, AGE_EPOCHS_PER_TIER, AdmitFilter, ClassPolicy, GpuRoutes, InsertPosition,
    PolicyTable, PrefetchMode, Replacement, TELEMETRY_ALL,
};
pub use sync::policy_cell::{InstallError, PolicyInstaller, PolicyReader, policy_cell};
pub use sync::ring::{Consumer, Producer, ring};
pub use telemetry::{LinkMeters, LinkTotals, SampleKind, TelemetrySample, is_sampled, sample_hash};
pub use topology::{Link, TierId, TierKind, TierSpec, Topology};
