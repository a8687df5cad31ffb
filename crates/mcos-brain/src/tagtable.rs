//! Open-addressing table from key tag to a small value, for the shadows' indexes and histories.
//!
//! Every sampled access runs through some twenty shadows, each with its own index and history;
//! together they outgrow the CPU's private caches, so each lookup is likely a memory miss. A
//! general-purpose map hides where a tag's entry lives and leaves tombstones behind removals
//! (the histories remove as often as they insert); this table is linear probing over 16-byte
//! entries (four to a cache line, at most half full, so a lookup usually reads one line),
//! deletes by backward shift (no tombstones), and exposes [`TagTable::prefetch`], so the brain
//! can ask for every shadow's line at once before it walks them (memory-level parallelism).
//! Lookups, inserts and removals give the same answers as a `HashMap<u64, V>`; only the speed
//! differs. The same design as mcos-workload's `objcache::index::SlotIndex` (the brain may not
//! depend on the workload crate), generic over the value.

/// A value the table can hold: one value is reserved to mark empty entries.
pub(crate) trait Value: Copy + Eq {
    /// Marks an empty entry; never stored.
    const VACANT: Self;
}

impl Value for u32 {
    const VACANT: u32 = u32::MAX;
}

impl Value for u64 {
    const VACANT: u64 = u64::MAX;
}

#[derive(Clone, Copy)]
struct Entry<V> {
    tag: u64,
    val: V,
}

/// Map from a key tag (any `u64`) to a `V` (never `V::VACANT`).
#[derive(Clone)]
pub(crate) struct TagTable<V: Value> {
    entries: Vec<Entry<V>>,
    mask: usize,
    /// 64 minus log2 of the table's size: a multiplicative hash's top bits pick the home.
    shift: u32,
    len: usize,
}

impl<V: Value> TagTable<V> {
    /// An empty table that holds `n` tags before it first grows.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self::sized((n.max(8) * 2).next_power_of_two())
    }

    fn sized(size: usize) -> Self {
        Self {
            entries: vec![
                Entry {
                    tag: 0,
                    val: V::VACANT
                };
                size
            ],
            mask: size - 1,
            shift: 64 - size.trailing_zeros(),
            len: 0,
        }
    }

    /// Tags held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Fibonacci hashing: the top bits of the tag times 2^64 / phi depend on every bit of the
    /// tag, so tags that share their low bits (a spatial sample's, small integers in tests)
    /// still spread.
    #[inline]
    fn home(&self, tag: u64) -> usize {
        (tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn find(&self, tag: u64) -> Option<usize> {
        let mut i = self.home(tag);
        loop {
            let e = self.entries[i];
            if e.val == V::VACANT {
                return None;
            }
            if e.tag == tag {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The value of `tag`.
    #[inline]
    pub(crate) fn get(&self, tag: u64) -> Option<V> {
        self.find(tag).map(|i| self.entries[i].val)
    }

    /// Whether `tag` is held.
    #[cfg(test)]
    pub(crate) fn contains_key(&self, tag: u64) -> bool {
        self.find(tag).is_some()
    }

    /// Sets `tag`'s value; returns the previous one.
    pub(crate) fn insert(&mut self, tag: u64, val: V) -> Option<V> {
        debug_assert!(val != V::VACANT, "the vacant value marks empty entries");
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        let mut i = self.home(tag);
        loop {
            let e = &mut self.entries[i];
            if e.val == V::VACANT {
                *e = Entry { tag, val };
                self.len += 1;
                return None;
            }
            if e.tag == tag {
                return Some(std::mem::replace(&mut e.val, val));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Removes `tag`; returns its value.
    pub(crate) fn remove(&mut self, tag: u64) -> Option<V> {
        let i = self.find(tag)?;
        Some(self.take(i))
    }

    /// Removes `tag` if its value is `val` (one probe where a get and a remove take two);
    /// returns whether it did.
    pub(crate) fn remove_if(&mut self, tag: u64, val: V) -> bool {
        match self.find(tag) {
            Some(i) if self.entries[i].val == val => {
                self.take(i);
                true
            }
            _ => false,
        }
    }

    /// Empties entry `hole` and returns its value. Backward shift: later entries of the probe
    /// run move into the hole when it lies between their home and where they sit, so every
    /// entry stays reachable from its home.
    fn take(&mut self, mut hole: usize) -> V {
        let val = self.entries[hole].val;
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let e = self.entries[j];
            if e.val == V::VACANT {
                break;
            }
            let home = self.home(e.tag);
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.entries[hole] = e;
                hole = j;
            }
        }
        self.entries[hole].val = V::VACANT;
        self.len -= 1;
        val
    }

    fn grow(&mut self) {
        let old = std::mem::replace(self, Self::sized(self.entries.len() * 2));
        for e in old.entries.into_iter().filter(|e| e.val != V::VACANT) {
            let mut i = self.home(e.tag);
            while self.entries[i].val != V::VACANT {
                i = (i + 1) & self.mask;
            }
            self.entries[i] = e;
            self.len += 1;
        }
    }

    /// Starts loading the line where a lookup of `tag` begins; changes nothing.
    #[inline]
    pub(crate) fn prefetch(&self, tag: u64) {
        prefetch_read(&self.entries[self.home(tag)]);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn agrees<V: Value + std::fmt::Debug>(val: impl Fn(u32) -> V) {
        // Few distinct tags over a small table: long probe runs that wrap, and many removals in
        // the middle of runs, which the backward shift must keep reachable.
        let mut t: TagTable<V> = TagTable::with_capacity(4);
        let mut reference: HashMap<u64, V> = HashMap::new();
        let mut x = 7u64;
        for step in 0..200_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Tags that share their low bits or their high bits, and arbitrary ones.
            let tag = match (x >> 60) % 3 {
                0 => (x >> 33) % 300,
                1 => u64::MAX - (x >> 33) % 5,
                _ => ((x >> 33) % 300) << 40,
            };
            let v = val(step % 1000);
            match (x >> 20) % 4 {
                0 => assert_eq!(t.remove(tag), reference.remove(&tag), "remove {tag}"),
                1 => {
                    let hit = reference.get(&tag) == Some(&v);
                    if hit {
                        reference.remove(&tag);
                    }
                    assert_eq!(t.remove_if(tag, v), hit, "remove_if {tag}");
                }
                _ => assert_eq!(t.insert(tag, v), reference.insert(tag, v), "insert {tag}"),
            }
            t.prefetch(tag);
            assert_eq!(t.len(), reference.len());
            if step % 997 == 0 {
                for (&k, &v) in &reference {
                    assert_eq!(t.get(k), Some(v));
                }
            }
            assert_eq!(t.get(tag), reference.get(&tag).copied());
            assert_eq!(t.contains_key(tag), reference.contains_key(&tag));
        }
        assert!(t.entries.len() >= 2 * t.len());
    }

    #[test]
    fn agrees_with_a_hash_map_under_random_inserts_and_removes() {
        agrees(|i| i);
        agrees(|i| u64::from(i % 7) + 1);
    }
}
