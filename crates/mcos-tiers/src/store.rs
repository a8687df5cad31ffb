//! The tiers one engine can reach, indexed by `TierId` (the descriptors' `src_tier`/`dst_tier`).

use crate::disk::DiskTier;
use crate::dram::DramTier;
use crate::error::TierError;
use mcos_core::TierId;
use mcos_core::limits::MAX_TIERS;
use std::sync::Arc;

/// One tier's storage, shared with the node and the fast path.
#[derive(Clone, Debug)]
pub enum TierStore {
    /// Host memory (an arena of frames).
    Dram(Arc<DramTier>),
    /// A preallocated file of frames.
    Disk(Arc<DiskTier>),
    /// GPU memory (feature `cuda`). Only the GPU engine moves its frames; the CPU engines
    /// answer a move that touches it with `EOPNOTSUPP`.
    #[cfg(feature = "cuda")]
    Hbm(Arc<crate::cuda::HbmTier>),
}

impl TierStore {
    /// Frames in the tier.
    pub fn frames(&self) -> u32 {
        match self {
            TierStore::Dram(t) => t.frames(),
            TierStore::Disk(t) => t.frames(),
            #[cfg(feature = "cuda")]
            TierStore::Hbm(t) => t.frames(),
        }
    }

    /// Largest payload one frame holds.
    pub fn block_bytes(&self) -> u32 {
        match self {
            TierStore::Dram(t) => t.block_bytes(),
            TierStore::Disk(t) => t.block_bytes(),
            #[cfg(feature = "cuda")]
            TierStore::Hbm(t) => t.block_bytes(),
        }
    }

    /// Bytes from one frame to the next.
    pub fn frame_stride(&self) -> usize {
        match self {
            TierStore::Dram(t) => t.frame_stride(),
            TierStore::Disk(t) => t.frame_stride(),
            #[cfg(feature = "cuda")]
            TierStore::Hbm(t) => t.frame_stride(),
        }
    }
}

/// Tiers by id: position `i` is `TierId(i)`.
#[derive(Clone, Debug)]
pub struct TierSet {
    tiers: Vec<TierStore>,
}

impl TierSet {
    /// A set of 1..=`MAX_TIERS` tiers, fastest first, in topology order.
    pub fn new(tiers: Vec<TierStore>) -> Result<TierSet, TierError> {
        if tiers.is_empty() || tiers.len() > MAX_TIERS {
            return Err(TierError::Config(format!(
                "an engine needs 1..={MAX_TIERS} tiers, {} given",
                tiers.len()
            )));
        }
        Ok(TierSet { tiers })
    }

    /// The tier with id `id`, if the set has it.
    pub fn get(&self, id: TierId) -> Option<&TierStore> {
        self.tiers.get(id.index())
    }

    /// Tiers in the set.
    pub fn len(&self) -> usize {
        self.tiers.len()
    }

    /// Always false: a set holds at least one tier.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_is_bounded_and_indexed_by_tier_id() {
        assert!(TierSet::new(vec![]).is_err());
        let d = TierStore::Dram(Arc::new(DramTier::new(2, 100).unwrap()));
        assert!(TierSet::new(vec![d.clone(); MAX_TIERS + 1]).is_err());
        let set = TierSet::new(vec![d.clone(), d]).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.get(TierId(1)).map(TierStore::frames), Some(2));
        assert!(set.get(TierId(2)).is_none());
        assert!(set.get(TierId::NONE).is_none());
    }
}
