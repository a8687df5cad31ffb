//! The directory: block key -> current location (tier, frame), fixed size, preallocated.
//!
//! Open addressing with linear probing over parallel arrays of 64-bit tags and 32-bit
//! locations, sized to at most half full; deletion shifts later entries back (Knuth's
//! Algorithm R), so there are no tombstones and probe runs stay short. Every operation looks at
//! no more than `DIRECTORY_PROBE_MAX` slots. The tag is the key's low 64 bits; the full key is
//! checked against the block header whenever bytes are read, so a tag collision can only cost
//! a miss, never wrong bytes.

use mcos_core::limits::DIRECTORY_PROBE_MAX;
use mcos_core::{BlockKey, TierId};

/// A block's location, packed: tier in the top 3 bits, frame in the low 28.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Loc(u32);

impl Loc {
    /// Packs a tier and a frame.
    pub fn new(tier: TierId, frame: u32) -> Loc {
        debug_assert!(frame < 1 << 28);
        Loc(u32::from(tier.0) << 28 | frame)
    }
    /// The tier.
    pub fn tier(self) -> TierId {
        TierId((self.0 >> 28) as u8)
    }
    /// The frame within the tier.
    pub fn frame(self) -> u32 {
        self.0 & ((1 << 28) - 1)
    }
}

/// Why an insert was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DirectoryFull {
    /// No free slot within the probe bound.
    Conflict,
}

/// The directory of one shard.
pub struct Directory {
    tags: Box<[u64]>,
    locs: Box<[u32]>,
    mask: usize,
    /// 64 - log2(slots): the home slot is the top bits of the hashed tag.
    shift: u32,
    len: usize,
}

/// The tag a key is stored under (never 0, which marks an empty slot).
pub fn tag_of(key: BlockKey) -> u64 {
    key.tag().max(1)
}

impl Directory {
    /// A directory for up to `blocks` resident blocks (slots: next power of two >= 4 x blocks,
    /// so that a probe run longer than `DIRECTORY_PROBE_MAX` is vanishingly rare: at half load
    /// the Mooncake replay met five in 273k inserts).
    pub fn with_capacity(blocks: usize) -> Directory {
        let slots = (blocks.max(1) * 4).next_power_of_two().max(2);
        Directory {
            tags: vec![0; slots].into_boxed_slice(),
            locs: vec![0; slots].into_boxed_slice(),
            mask: slots - 1,
            shift: 64 - slots.trailing_zeros(),
            len: 0,
        }
    }

    /// Bytes of directory state (both arrays).
    pub fn bytes(&self) -> usize {
        self.tags.len() * (8 + 4)
    }

    /// Entries stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the directory is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn home(&self, tag: u64) -> usize {
        // Fibonacci hashing: the top bits of the product are the well-mixed ones.
        (tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize & self.mask
    }

    fn find(&self, tag: u64) -> Option<usize> {
        let mut i = self.home(tag);
        for _ in 0..DIRECTORY_PROBE_MAX {
            match self.tags[i] {
                0 => return None,
                t if t == tag => return Some(i),
                _ => i = (i + 1) & self.mask,
            }
        }
        None
    }

    /// Whether `set(tag, ..)` would succeed (the tag is present or a free slot is in reach).
    pub fn has_room(&self, tag: u64) -> bool {
        let mut i = self.home(tag);
        for _ in 0..DIRECTORY_PROBE_MAX {
            if self.tags[i] == 0 || self.tags[i] == tag {
                return true;
            }
            i = (i + 1) & self.mask;
        }
        false
    }

    /// Location of the block with tag `tag`.
    pub fn get(&self, tag: u64) -> Option<Loc> {
        self.find(tag).map(|i| Loc(self.locs[i]))
    }

    /// Inserts or updates.
    pub fn set(&mut self, tag: u64, loc: Loc) -> Result<(), DirectoryFull> {
        let mut i = self.home(tag);
        for _ in 0..DIRECTORY_PROBE_MAX {
            if self.tags[i] == tag {
                self.locs[i] = loc.0;
                return Ok(());
            }
            if self.tags[i] == 0 {
                self.tags[i] = tag;
                self.locs[i] = loc.0;
                self.len += 1;
                return Ok(());
            }
            i = (i + 1) & self.mask;
        }
        Err(DirectoryFull::Conflict)
    }

    /// Removes the entry; returns whether it was there.
    pub fn remove(&mut self, tag: u64) -> bool {
        let Some(mut hole) = self.find(tag) else {
            return false;
        };
        self.tags[hole] = 0;
        self.len -= 1;
        // Shift back later entries of the run whose home lies at or before the hole. An entry
        // more than DIRECTORY_PROBE_MAX past the hole has its home after the hole, so the scan
        // from each new hole is bounded; the total is bounded by the run's length, short at
        // half load.
        let mut dist = 1;
        while dist < DIRECTORY_PROBE_MAX {
            let i = (hole + dist) & self.mask;
            let t = self.tags[i];
            if t == 0 {
                break;
            }
            let home = self.home(t);
            // Distance from home to i and from hole to i, cyclically.
            if (i.wrapping_sub(home) & self.mask) >= dist {
                self.tags[hole] = t;
                self.locs[hole] = self.locs[i];
                self.tags[i] = 0;
                hole = i;
                dist = 1;
            } else {
                dist += 1;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #[test]
        fn matches_a_hashmap_model(ops in proptest::collection::vec((0u8..3, 1u64..64, 0u32..1000), 1..400)) {
            let mut d = Directory::with_capacity(64);
            let mut model: HashMap<u64, u32> = HashMap::new();
            for (op, tag, frame) in ops {
                match op {
                    0 if model.len() < 64 || model.contains_key(&tag) => {
                        d.set(tag, Loc::new(TierId(1), frame)).unwrap();
                        model.insert(tag, frame);
                    }
                    1 => prop_assert_eq!(d.remove(tag), model.remove(&tag).is_some()),
                    _ => {}
                }
                prop_assert_eq!(d.len(), model.len());
                for (&t, &f) in &model {
                    prop_assert_eq!(d.get(t), Some(Loc::new(TierId(1), f)));
                }
                prop_assert_eq!(d.get(tag).map(|l| l.frame()), model.get(&tag).copied());
            }
        }
    }

    #[test]
    fn colliding_tags_survive_removal_of_their_neighbours() {
        let mut d = Directory::with_capacity(8);
        // Tags that share a home slot (search for them).
        let home = d.home(1);
        let same: Vec<u64> = (1..100_000u64)
            .filter(|&t| d.home(t) == home)
            .take(4)
            .collect();
        for (i, &t) in same.iter().enumerate() {
            d.set(t, Loc::new(TierId(0), i as u32)).unwrap();
        }
        assert!(d.remove(same[0]));
        for (i, &t) in same.iter().enumerate().skip(1) {
            assert_eq!(d.get(t).map(|l| l.frame()), Some(i as u32));
        }
    }
}
