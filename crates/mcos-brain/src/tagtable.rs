//! Open-addressing table from key tag to a small value: each shadow's index and history.
//!
//! Every sampled access runs through some twenty shadows, each with its own index and history;
//! together they outgrow the CPU's private caches, so each lookup is likely a memory miss. A
//! general-purpose map hides where a tag's entry lives and leaves tombstones behind removals
//! (the histories remove as often as they insert); this table is linear probing over 16-byte
//! entries (four to a cache line, at most half full, so a lookup usually reads one line),
//! deletes by backward shift (no tombstones), and exposes [`TagTable::prefetch`], so the brain
//! can ask for the lines of a shadow's next access while the other shadows run (memory-level
//! parallelism). Lookups and updates give the same answers as a `HashMap<u64, V>`; only the
//! speed differs. The same design as mcos-workload's `objcache::index::SlotIndex` (the brain
//! may not depend on the workload crate), generic over the value and with one probe for a
//! read-modify-write ([`TagTable::update`]).

/// A value the table can hold: one value is reserved to mark empty entries.
pub(crate) trait Value: Copy + Eq {
    /// Marks an empty entry; never stored.
    const VACANT: Self;
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

    /// Sets `tag`'s value to `f` of its current one (`V::VACANT` when absent); a result of
    /// `V::VACANT` removes it. Returns the previous value (`V::VACANT` when absent). One probe
    /// where a lookup and then an insert or a removal take two.
    pub(crate) fn update(&mut self, tag: u64, f: impl FnOnce(V) -> V) -> V {
        let mut i = self.home(tag);
        loop {
            let e = self.entries[i];
            if e.val == V::VACANT {
                let val = f(V::VACANT);
                if val != V::VACANT {
                    if (self.len + 1) * 2 > self.entries.len() {
                        self.grow();
                        self.put(tag, val);
                    } else {
                        self.entries[i] = Entry { tag, val };
                        self.len += 1;
                    }
                }
                return V::VACANT;
            }
            if e.tag == tag {
                let val = f(e.val);
                if val == V::VACANT {
                    self.take(i);
                } else {
                    self.entries[i].val = val;
                }
                return e.val;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Stores absent `tag` in a table with room.
    fn put(&mut self, tag: u64, val: V) {
        let mut i = self.home(tag);
        while self.entries[i].val != V::VACANT {
            i = (i + 1) & self.mask;
        }
        self.entries[i] = Entry { tag, val };
        self.len += 1;
    }

    /// Empties entry `hole`. Backward shift: later entries of the probe
    /// run move into the hole when it lies between their home and where they sit, so every
    /// entry stays reachable from its home.
    fn take(&mut self, mut hole: usize) {
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
    }

    fn grow(&mut self) {
        let old = std::mem::replace(self, Self::sized(self.entries.len() * 2));
        for e in old.entries.into_iter().filter(|e| e.val != V::VACANT) {
            self.put(e.tag, e.val);
        }
    }

    /// Starts loading the line where a lookup of `tag` begins; changes nothing.
    #[inline]
    pub(crate) fn prefetch(&self, tag: u64) {
        prefetch_read(&self.entries[self.home(tag)]);
    }

    /// As [`TagTable::prefetch`], and the next line too: a removal shifts the entries after
    /// the one removed back, reading on to the end of its probe run.
    #[inline]
    pub(crate) fn prefetch_run(&self, tag: u64) {
        let home = self.home(tag);
        prefetch_read(&self.entries[home]);
        prefetch_read(&self.entries[((home | 3) + 1) & self.mask]);
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

    impl Value for u32 {
        const VACANT: u32 = u32::MAX;
    }

    #[test]
    fn agrees_with_a_hash_map_under_random_updates() {
        // Few distinct tags over a small table: long probe runs that wrap, and many removals in
        // the middle of runs, which the backward shift must keep reachable.
        let mut t: TagTable<u32> = TagTable::with_capacity(4);
        let mut reference: HashMap<u64, u32> = HashMap::new();
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
            let v = step % 7;
            let before = reference.get(&tag).copied().unwrap_or(u32::MAX);
            // Set, remove, remove when it holds `v`, or leave as it is.
            let (got, after) = match (x >> 20) % 4 {
                0 => (t.update(tag, |_| v), v),
                1 => (t.update(tag, |_| u32::MAX), u32::MAX),
                2 => {
                    let a = if before == v { u32::MAX } else { before };
                    (t.update(tag, |o| if o == v { u32::MAX } else { o }), a)
                }
                _ => (t.update(tag, |o| o), before),
            };
            assert_eq!(got, before, "previous value of {tag}");
            if after == u32::MAX {
                reference.remove(&tag);
            } else {
                reference.insert(tag, after);
            }
            t.prefetch(tag);
            assert_eq!(t.len(), reference.len());
            if step % 997 == 0 {
                for (&k, &v) in &reference {
                    assert_eq!(t.get(k), Some(v));
                }
            }
            assert_eq!(t.get(tag), reference.get(&tag).copied());
        }
        assert!(t.entries.len() >= 2 * t.len());
    }
}
