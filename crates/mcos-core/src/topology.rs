//! Tiers and the links between them: what memory a node has and how fast bytes cross.
//!
//! Tier ids are positions in `Topology::tiers`, fastest first. The fast path only sees ids and
//! frame counts; engines and the brain read kinds, bandwidths and latencies.

use crate::error::ContractError;
use crate::limits;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Index of a tier in its node's topology (0 = fastest).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TierId(pub u8);

impl TierId {
    /// Marker for "no tier" in packed fields (a block that is not resident anywhere).
    pub const NONE: TierId = TierId(7);

    /// Position in per-tier arrays.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for TierId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tier{}", self.0)
    }
}

/// What kind of memory a tier is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TierKind {
    /// GPU high-bandwidth memory.
    Hbm,
    /// Page-locked host DRAM that a GPU can DMA from.
    HostPinned,
    /// Ordinary host DRAM.
    HostDram,
    /// A local disk or NVMe device (a preallocated file).
    Disk,
    /// Memory of another node.
    Remote,
}

impl TierKind {
    /// Short lowercase name used in reports and JSON (`dram`, `disk`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TierKind::Hbm => "hbm",
            TierKind::HostPinned => "pinned",
            TierKind::HostDram => "dram",
            TierKind::Disk => "disk",
            TierKind::Remote => "remote",
        }
    }
}

impl fmt::Display for TierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tier: its kind and how many fixed-size frames it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TierSpec {
    /// Kind of memory.
    pub kind: TierKind,
    /// Frames (block slots) in the tier.
    pub capacity_blocks: u32,
    /// Payload bytes per frame (the block size this tier stores).
    pub block_bytes: u32,
}

/// A directed link between two tiers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Source tier.
    pub from: TierId,
    /// Destination tier.
    pub to: TierId,
    /// Sustained bandwidth in bytes per second.
    pub bandwidth_bytes_per_s: u64,
    /// Latency of one transfer in nanoseconds.
    pub latency_ns: u64,
}

/// A node's memory: tiers fastest first, and the links between them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// Tiers, fastest first.
    pub tiers: Vec<TierSpec>,
    /// Links between tiers.
    pub links: Vec<Link>,
}

impl Topology {
    /// Checks sizes against the limits and that every link names existing tiers.
    pub fn validate(&self) -> Result<(), ContractError> {
        if self.tiers.is_empty() {
            return Err(ContractError::Topology(
                "a node needs at least one tier".into(),
            ));
        }
        if self.tiers.len() > limits::MAX_TIERS {
            return Err(ContractError::Topology(format!(
                "{} tiers configured, at most {} are supported",
                self.tiers.len(),
                limits::MAX_TIERS
            )));
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if t.capacity_blocks == 0 {
                return Err(ContractError::Topology(format!(
                    "tier {i} ({}) has capacity 0: give it at least one block",
                    t.kind
                )));
            }
            if t.capacity_blocks >= limits::MAX_FRAMES_PER_TIER {
                return Err(ContractError::Topology(format!(
                    "tier {i} ({}) has {} blocks, at most {} are supported",
                    t.kind,
                    t.capacity_blocks,
                    limits::MAX_FRAMES_PER_TIER - 1
                )));
            }
            if t.block_bytes == 0 || t.block_bytes as usize > limits::MAX_BLOCK_BYTES {
                return Err(ContractError::Topology(format!(
                    "tier {i} ({}) block size {} bytes is outside 1..={}",
                    t.kind,
                    t.block_bytes,
                    limits::MAX_BLOCK_BYTES
                )));
            }
        }
        for l in &self.links {
            if l.from.index() >= self.tiers.len() || l.to.index() >= self.tiers.len() {
                return Err(ContractError::Topology(format!(
                    "link {} -> {} names a tier that does not exist",
                    l.from, l.to
                )));
            }
        }
        Ok(())
    }

    /// The link from `from` to `to`, if configured.
    pub fn link(&self, from: TierId, to: TierId) -> Option<&Link> {
        self.links.iter().find(|l| l.from == from && l.to == to)
    }

    /// Tier spec by id.
    pub fn tier(&self, id: TierId) -> Option<&TierSpec> {
        self.tiers.get(id.index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_tiers() -> Topology {
        Topology {
            tiers: vec![
                TierSpec {
                    kind: TierKind::HostDram,
                    capacity_blocks: 10,
                    block_bytes: 4096,
                },
                TierSpec {
                    kind: TierKind::Disk,
                    capacity_blocks: 100,
                    block_bytes: 4096,
                },
            ],
            links: vec![Link {
                from: TierId(0),
                to: TierId(1),
                bandwidth_bytes_per_s: 1 << 30,
                latency_ns: 100_000,
            }],
        }
    }

    #[test]
    fn validates_capacities_and_links() {
        let t = two_tiers();
        assert!(t.validate().is_ok());
        assert!(t.link(TierId(0), TierId(1)).is_some());
        assert!(t.link(TierId(1), TierId(0)).is_none());
        let mut zero = t.clone();
        zero.tiers[0].capacity_blocks = 0;
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.contains("capacity 0"), "{err}");
        let mut bad_link = t.clone();
        bad_link.links[0].to = TierId(5);
        assert!(bad_link.validate().is_err());
        let empty = Topology {
            tiers: vec![],
            links: vec![],
        };
        assert!(empty.validate().is_err());
    }
}
