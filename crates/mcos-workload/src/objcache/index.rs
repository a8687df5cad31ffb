//! Open-addressing index from object id to slab slot, for the list policies (LRU, SLRU, ARC).
//!
//! On traces whose working set does not fit in the CPU caches every request's lookup is a
//! memory miss; a general-purpose map hides where an id's entry lives, so the replay cannot ask
//! for it early. This table is linear probing over 16-byte entries (four to a cache line, at
//! most half full, so a lookup usually reads one line), deletes by backward shift (no
//! tombstones), and exposes [`SlotIndex::prefetch`]: the replay names an id some requests before
//! it is accessed and the entry's line is on its way when the policy needs it. Lookups,
//! inserts and removals give the same answers as a `HashMap<u64, u32>`; only the speed differs.

use super::queue::NIL;

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    /// Slab slot; [`NIL`] marks an empty entry (slots are below `u32::MAX`).
    slot: u32,
}

const EMPTY: Entry = Entry { id: 0, slot: NIL };

/// Map from object id to a `u32` slab slot (never `u32::MAX`).
#[derive(Debug, Clone)]
pub(crate) struct SlotIndex {
    entries: Vec<Entry>,
    mask: usize,
    len: usize,
}

/// The SplitMix64 finaliser (the same mixing as `policy::IdHasher`): a full avalanche, so the
/// low bits index the table well whatever the ids look like.
#[inline]
fn mix(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Asks the CPU to bring the line holding `*p` into its caches; no effect on the program's
/// state (and a no-op off x86-64).
#[inline]
pub(crate) fn prefetch_read<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint that never faults and writes nothing; the pointer comes from
    // a live reference.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(p).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl Default for SlotIndex {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl SlotIndex {
    /// An empty index that holds `n` ids before it first grows.
    pub(crate) fn with_capacity(n: usize) -> Self {
        let size = (n.max(8) * 2).next_power_of_two();
        Self {
            entries: vec![EMPTY; size],
            mask: size - 1,
            len: 0,
        }
    }

    /// Ids held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn home(&self, id: u64) -> usize {
        mix(id) as usize & self.mask
    }

    /// Where `id` sits, if present.
    #[inline]
    fn find(&self, id: u64) -> Option<usize> {
        let mut i = self.home(id);
        loop {
            let e = self.entries[i];
            if e.slot == NIL {
                return None;
            }
            if e.id == id {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The slot of `id`.
    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<u32> {
        self.find(id).map(|i| self.entries[i].slot)
    }

    /// Sets `id`'s slot; returns the previous one.
    pub(crate) fn insert(&mut self, id: u64, slot: u32) -> Option<u32> {
        debug_assert_ne!(slot, NIL, "slot u32::MAX marks empty entries");
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        let mut i = self.home(id);
        loop {
            let e = &mut self.entries[i];
            if e.slot == NIL {
                *e = Entry { id, slot };
                self.len += 1;
                return None;
            }
            if e.id == id {
                return Some(std::mem::replace(&mut e.slot, slot));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Removes `id`; returns its slot.
    pub(crate) fn remove(&mut self, id: u64) -> Option<u32> {
        let mut hole = self.find(id)?;
        let slot = self.entries[hole].slot;
        // Backward shift: pull later entries of the probe run into the hole when the hole lies
        // between their home and where they sit, so every entry stays reachable from its home.
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let e = self.entries[j];
            if e.slot == NIL {
                break;
            }
            let home = self.home(e.id);
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.entries[hole] = e;
                hole = j;
            }
        }
        self.entries[hole] = EMPTY;
        self.len -= 1;
        Some(slot)
    }

    fn grow(&mut self) {
        let doubled = vec![EMPTY; self.entries.len() * 2];
        let old = std::mem::replace(&mut self.entries, doubled);
        self.mask = self.entries.len() - 1;
        self.len = 0;
        for e in old.into_iter().filter(|e| e.slot != NIL) {
            let mut i = self.home(e.id);
            while self.entries[i].slot != NIL {
                i = (i + 1) & self.mask;
            }
            self.entries[i] = e;
            self.len += 1;
        }
    }

    /// Starts loading the line where a lookup of `id` begins.
    #[inline]
    pub(crate) fn prefetch(&self, id: u64) {
        prefetch_read(&self.entries[self.home(id)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn agrees_with_a_hash_map_under_random_inserts_and_removes() {
        // Few distinct ids over a small table: long probe runs that wrap, and many removals in
        // the middle of runs, which the backward shift must keep reachable.
        let mut idx = SlotIndex::with_capacity(4);
        let mut reference: HashMap<u64, u32> = HashMap::new();
        let mut x = 7u64;
        for step in 0..200_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Ids that collide in the low bits as well as arbitrary ones (u64::MAX included).
            let id = match (x >> 60) % 3 {
                0 => (x >> 33) % 300,
                1 => u64::MAX - (x >> 33) % 5,
                _ => ((x >> 33) % 300) << 40,
            };
            let slot = step % 1000;
            if (x >> 20).is_multiple_of(3) {
                assert_eq!(idx.remove(id), reference.remove(&id), "remove {id}");
            } else {
                assert_eq!(
                    idx.insert(id, slot),
                    reference.insert(id, slot),
                    "insert {id}"
                );
            }
            idx.prefetch(id);
            assert_eq!(idx.len(), reference.len());
            if step % 997 == 0 {
                for (&k, &v) in &reference {
                    assert_eq!(idx.get(k), Some(v));
                }
            }
            assert_eq!(idx.get(id), reference.get(&id).copied());
        }
        assert!(idx.entries.len() >= 2 * idx.len());
    }
}
