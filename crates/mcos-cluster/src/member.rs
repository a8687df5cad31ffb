//! What a daemon publishes about itself in etcd: one small JSON record per member, under a
//! lease, so that a member that stops renewing disappears from every view on its own.

use serde::{Deserialize, Serialize};

/// One tier of a member, as registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierRecord {
    /// Tier kind (`host-dram`, `disk`, ...).
    pub kind: String,
    /// Capacity in blocks.
    pub capacity_blocks: u64,
}

/// A member's registration record (the value of `/<cluster>/members/<node_id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Stable name of the node: placement hashes it, so a restarted node gets its keys back.
    pub node_id: String,
    /// `host:port` of the daemon's TCP listener, where peers and pool clients connect.
    pub addr: String,
    /// mcosd wire protocol version the member speaks.
    pub protocol_version: u16,
    /// Changes at every start of the daemon: tells a restart from a member that never left.
    pub incarnation: u64,
    /// Payload bytes per block.
    pub block_bytes: u32,
    /// The member's tiers, fastest first.
    pub tiers: Vec<TierRecord>,
    /// When this incarnation started (ms since the Unix epoch).
    pub started_unix_ms: u64,
}

impl MemberRecord {
    /// Total capacity over the member's tiers, in blocks.
    pub fn capacity_blocks(&self) -> u64 {
        self.tiers.iter().map(|t| t.capacity_blocks).sum()
    }
}

/// A fresh incarnation number: start time in ns mixed with the pid (unique per start on a host,
/// and different across hosts with overwhelming probability).
pub fn new_incarnation() -> u64 {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    xxhash_rust::xxh3::xxh3_64_with_seed(&ns.to_le_bytes(), u64::from(std::process::id()))
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
