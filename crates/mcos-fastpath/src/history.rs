//! Admission history: tags of blocks recently evicted from the node or refused admission (the
//! ghost queue of 2Q, ARC and S3-FIFO, kept as a fixed table).
//!
//! A set-associative table of 8-byte entries, `HISTORY_WAYS` per set (one cache line): a 32-bit
//! fingerprint and the 32-bit insertion stamp. An entry is live while fewer than `len`
//! insertions have happened since it was made, so the table behaves as a FIFO of the last
//! `len` tags without a list; a set that is full replaces its oldest entry. Lookup and insert
//! touch one set: bounded work, no allocation. The table is sized at start-up to the longest
//! history a policy table may ask for (`limits::HISTORY_QUARTERS_MAX`); a table's
//! `history_quarters` only changes `len`.

use mcos_core::limits::HISTORY_WAYS;

/// The history of one shard.
pub struct History {
    /// `fingerprint << 32 | stamp`; fingerprint 0 marks an empty way.
    entries: Box<[u64]>,
    set_mask: usize,
    /// Insertions so far (wrapping).
    clock: u32,
    /// Live length in insertions; 0: the history is off.
    len: u32,
}

fn mix(tag: u64) -> u64 {
    let mut h = tag ^ (tag >> 33);
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^ (h >> 33)
}

impl History {
    /// A table that can hold a history of `max_len` tags (rounded up to whole sets, twice over
    /// so set conflicts rarely shorten it).
    pub fn new(max_len: usize) -> History {
        let entries = (max_len.max(1) * 2).next_power_of_two().max(HISTORY_WAYS);
        History {
            entries: vec![0u64; entries].into_boxed_slice(),
            set_mask: entries / HISTORY_WAYS - 1,
            clock: 0,
            len: 0,
        }
    }

    /// Entries the table holds.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Sets the live length (clamped to the table); 0 turns the history off.
    pub fn set_len(&mut self, len: u32) {
        self.len = len.min(u32::try_from(self.entries.len()).unwrap_or(u32::MAX));
    }

    /// Live length in insertions.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the history is off.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn set_and_fp(&self, tag: u64) -> (usize, u64) {
        let h = mix(tag);
        let set = (h as usize) & self.set_mask;
        let fp = (h >> 32) | 1;
        (set * HISTORY_WAYS, fp & 0xFFFF_FFFF)
    }

    fn live(&self, e: u64) -> bool {
        e >> 32 != 0 && self.clock.wrapping_sub(e as u32) < self.len
    }

    fn find(&self, tag: u64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let (base, fp) = self.set_and_fp(tag);
        (base..base + HISTORY_WAYS).find(|&i| {
            let e = self.entries[i];
            e >> 32 == fp && self.live(e)
        })
    }

    /// Whether `tag` is in the live history.
    pub fn contains(&self, tag: u64) -> bool {
        self.find(tag).is_some()
    }

    /// Removes `tag`; returns whether it was in the live history.
    pub fn remove(&mut self, tag: u64) -> bool {
        match self.find(tag) {
            Some(i) => {
                self.entries[i] = 0;
                true
            }
            None => false,
        }
    }

    /// Records `tag` as the newest entry (refreshing it when already present).
    pub fn insert(&mut self, tag: u64) {
        if self.len == 0 {
            return;
        }
        self.clock = self.clock.wrapping_add(1);
        let (base, fp) = self.set_and_fp(tag);
        let mut slot = base;
        let mut oldest_age = 0u32;
        for i in base..base + HISTORY_WAYS {
            let e = self.entries[i];
            if e >> 32 == fp {
                slot = i;
                break;
            }
            if !self.live(e) {
                // Empty or expired: as good as the oldest.
                slot = i;
                oldest_age = u32::MAX;
                continue;
            }
            let age = self.clock.wrapping_sub(e as u32);
            if age > oldest_age {
                oldest_age = age;
                slot = i;
            }
        }
        self.entries[slot] = fp << 32 | u64::from(self.clock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555
    }

    #[test]
    fn remembers_the_last_len_insertions_only() {
        let mut h = History::new(1000);
        assert!(!h.contains(tag(1)), "off until given a length");
        h.insert(tag(1));
        assert!(!h.contains(tag(1)));
        h.set_len(100);
        for i in 0..100 {
            h.insert(tag(i));
        }
        let live = (0..100).filter(|&i| h.contains(tag(i))).count();
        assert!(
            live >= 95,
            "nearly all of the last 100 are remembered: {live}"
        );
        for i in 100..200 {
            h.insert(tag(i));
        }
        let old = (0..100).filter(|&i| h.contains(tag(i))).count();
        assert_eq!(old, 0, "entries older than the length expire");
        assert!(h.remove(tag(150)));
        assert!(!h.contains(tag(150)), "removed");
        assert!(!h.remove(tag(150)));
        h.set_len(0);
        assert!(!h.contains(tag(199)), "length 0 turns it off");
    }

    #[test]
    fn length_is_clamped_to_the_table() {
        let mut h = History::new(10);
        h.set_len(u32::MAX);
        assert_eq!(h.len() as usize, h.capacity());
    }
}
