//! Count-min admission sketch with 4-bit saturating counters (TinyLFU, Einziger et al. 2017).
//!
//! Rows x width counters, conservative update (only the rows at the minimum grow), and aging
//! by halving: instead of TinyLFU's stop-the-world reset, each access halves a fixed number of
//! counters under a moving cursor, so a full pass takes `window` accesses and the work per
//! event stays bounded.

use mcos_core::BlockKey;
use mcos_core::limits::{SKETCH_COUNTER_MAX, SKETCH_ROWS, SKETCH_WIDTH};

const CELLS: usize = SKETCH_ROWS * SKETCH_WIDTH;

/// The admission sketch of one shard.
pub struct Sketch {
    /// One byte per counter (only the low 4 bits used) for simple indexing; 16 KiB.
    counters: Box<[u8]>,
    /// Next counter to halve.
    cursor: usize,
    /// Counters halved per access (0: no aging).
    halve_per_access: usize,
    /// Fractional carry so that `window` accesses halve exactly one full pass.
    carry: usize,
    window: usize,
}

impl Sketch {
    /// A zeroed sketch; `window` accesses age every counter once (0: never).
    pub fn new(window: u32) -> Sketch {
        let mut s = Sketch {
            counters: vec![0u8; CELLS].into_boxed_slice(),
            cursor: 0,
            halve_per_access: 0,
            carry: 0,
            window: 0,
        };
        s.set_window(window);
        s
    }

    /// Changes the aging window (a new policy table may ask for another).
    pub fn set_window(&mut self, window: u32) {
        self.window = window as usize;
        self.halve_per_access = if window == 0 { 0 } else { CELLS / self.window };
    }

    fn index(key: BlockKey, row: usize) -> usize {
        let h = key.hash_hi() ^ key.tag().rotate_left(17);
        row * SKETCH_WIDTH + ((h >> (row * 16)) as usize & (SKETCH_WIDTH - 1))
    }

    /// Estimated access count of `key`, 0..=15.
    pub fn estimate(&self, key: BlockKey) -> u8 {
        (0..SKETCH_ROWS)
            .map(|r| self.counters[Self::index(key, r)])
            .min()
            .unwrap_or(0)
    }

    /// Counts `n` accesses of `key` (conservative update), then ages a bounded slice.
    pub fn add(&mut self, key: BlockKey, n: u8) {
        let min = self.estimate(key);
        let target = min.saturating_add(n).min(SKETCH_COUNTER_MAX);
        for r in 0..SKETCH_ROWS {
            let c = &mut self.counters[Self::index(key, r)];
            if *c < target {
                *c = target;
            }
        }
        self.age();
    }

    fn age(&mut self) {
        if self.window == 0 {
            return;
        }
        let mut n = self.halve_per_access;
        // Spread the remainder of CELLS / window over the window.
        self.carry += CELLS % self.window;
        if self.carry >= self.window {
            self.carry -= self.window;
            n += 1;
        }
        for _ in 0..n {
            self.counters[self.cursor] >>= 1;
            self.cursor = (self.cursor + 1) % CELLS;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcos_core::Namespace;

    #[test]
    fn counts_saturate_and_age() {
        let ns = Namespace::for_model("t");
        let k = BlockKey::from_trace_id(&ns, 1);
        let mut s = Sketch::new(0);
        assert_eq!(s.estimate(k), 0);
        s.add(k, 1);
        s.add(k, 1);
        assert_eq!(s.estimate(k), 2);
        s.add(k, 200);
        assert_eq!(s.estimate(k), 15, "4-bit counters saturate");
        let other = BlockKey::from_trace_id(&ns, 2);
        assert!(s.estimate(other) <= 1, "count-min over-estimates rarely");

        let mut aging = Sketch::new(CELLS as u32);
        aging.add(k, 8);
        for i in 0..CELLS as u64 {
            aging.add(BlockKey::from_trace_id(&ns, 1000 + i), 0);
        }
        assert!(
            aging.estimate(k) <= 4,
            "a full window halves every counter once"
        );
    }
}
