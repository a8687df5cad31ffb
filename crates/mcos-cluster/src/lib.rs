//! Rack scale: MCOS daemons pool their tiers into one memory service.
//!
//! - [`membership`]: each daemon registers in etcd under a lease and every participant watches
//!   the member list; etcd holds membership only, never per-block state.
//! - [`placement`]: rendezvous hashing over the live members gives each key its owners; the
//!   replication factor comes from the block's class in the policy table.
//! - [`pool`]: a client of the whole pool that routes puts and gets to the owners over the
//!   daemons' own TCP path, batched per peer.
//! - [`peers`]: the same calls made by a member itself (a local miss asks the owners; the
//!   re-replication of protected blocks), shared by the daemon's sessions.
//!
//! Dependencies point one way: this crate uses the client, the protocol and the core
//! vocabulary; the daemon (`mcos-server`) uses this crate to register itself. Nothing here
//! knows about the node's internals.

#![warn(missing_docs)]

pub mod error;
mod etcd;
pub mod local;
pub mod member;
pub mod membership;
pub mod peers;
pub mod placement;
pub mod pool;
pub mod repair;

pub use error::ClusterError;
pub use local::{LocalEtcd, etcd_installed};
pub use member::{MemberRecord, TierRecord, new_incarnation};
pub use membership::{Membership, MembershipConfig, MembershipProbe, View};
pub use peers::{PeerCall, Peers, RemoteGet};
pub use placement::{Replication, owners, owners_seeded};
pub use pool::{PoolClient, PoolOptions, PoolStats, PutReport};
pub use repair::{RepairReport, RepairTotals, Repairer};
