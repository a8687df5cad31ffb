//! The MCOS brain: the software control plane.
//!
//! It observes the workload through the fast path's sampled telemetry, models candidate
//! policies on a spatial sample of the keys (miniature shadow caches, SHARDS-style), and
//! installs the policy table the evidence favours through the epoch-swapped policy cell. It
//! talks to the fast path only through mcos-core's contract types (telemetry samples, policy
//! tables, the installer) and never through the fast path's internals.
//!
//! - [`knobs`]: the points of the policy space the brain chooses among, and how they compile
//!   into a policy table.
//! - [`shadow`]: the miniature cache model that scores one set of knobs.
//! - [`aged`]: the same for tier 0 under the fast path's aged replacement order (the order the
//!   hardware pipeline executes), run beside the list shadows under `replacement = "auto"`.
//! - [`placement`]: placement across tiers by time saved (fetch versus recompute).
//! - [`remote`]: a remote hit over the measured peer link, priced against recompute.
//! - [`brain`]: the learner: evidence, decisions, compile, validate, install.
//! - [`thread`]: the brain on its own thread, as a node runs it.
//!
//! In simulation the brain can also be stepped synchronously every N accesses on the caller's
//! thread ([`Brain::step`]), which keeps runs deterministic.

#![warn(missing_docs)]

pub mod aged;
pub mod brain;
pub mod knobs;
pub mod placement;
pub mod remote;
pub mod shadow;
mod tagtable;
pub mod thread;

pub use brain::{
    AGED_TOLERANCE, Brain, BrainConfig, BrainStats, EMPTY_SAMPLE, LinkReport, ReplacementChoice,
};
pub use knobs::{Knobs, base_table, candidates};
pub use placement::{CostModel, LinkModel, Placement};
pub use remote::{PeerLink, RemoteChoice, RemotePrice, RemotePricing};
pub use thread::{BrainHealth, BrainSnapshot, BrainThread, Cadence, InstallFn};
