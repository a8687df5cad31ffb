//! The per-sequence prefetch table: which block sits at which position of which sequence.
//!
//! A stride prefetcher's reference-prediction table keyed by sequence instead of program
//! counter: the application declares (sequence, position) for blocks it will read in order
//! (a queued request's prefix, a layer-by-layer decode), and an access at position p lets
//! the fast path stage positions p+1..p+degree. Direct-mapped and fixed-size: a newer hint
//! overwrites an older one in the same slot, which only costs a prefetch.

use mcos_core::limits::SEQUENCE_SLOTS;

#[derive(Copy, Clone, Default)]
struct Entry {
    sequence: u32,
    position: u32,
    tag: u64,
}

/// Fixed table of (sequence, position) -> block tag.
pub struct SequenceTable {
    entries: Box<[Entry]>,
}

impl Default for SequenceTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SequenceTable {
    /// An empty table.
    pub fn new() -> SequenceTable {
        SequenceTable {
            entries: vec![Entry::default(); SEQUENCE_SLOTS].into_boxed_slice(),
        }
    }

    fn slot(sequence: u32, position: u32) -> usize {
        let h =
            (u64::from(sequence) << 32 | u64::from(position)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 40) as usize % SEQUENCE_SLOTS
    }

    /// Records that block `tag` is at `position` of `sequence`.
    pub fn record(&mut self, sequence: u32, position: u32, tag: u64) {
        self.entries[Self::slot(sequence, position)] = Entry {
            sequence,
            position,
            tag,
        };
    }

    /// The block at `position` of `sequence`, if still recorded.
    pub fn lookup(&self, sequence: u32, position: u32) -> Option<u64> {
        let e = self.entries[Self::slot(sequence, position)];
        (e.tag != 0 && e.sequence == sequence && e.position == position).then_some(e.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_finds_positions() {
        let mut t = SequenceTable::new();
        t.record(7, 0, 11);
        t.record(7, 1, 12);
        assert_eq!(t.lookup(7, 0), Some(11));
        assert_eq!(t.lookup(7, 1), Some(12));
        assert_eq!(t.lookup(7, 2), None);
        assert_eq!(t.lookup(8, 0), None);
    }
}
