//! Count-min admission sketch with 4-bit saturating counters (TinyLFU, Einziger et al. 2017).
//!
//! Rows x width counters, conservative update (only the rows at the minimum grow), and aging
//! by halving: instead of TinyLFU's stop-the-world reset, each access halves a fixed number of
//! counters under a moving cursor, so a full pass takes `window` accesses and the work per
//! event stays bounded.
//!
//! Rows are `SKETCH_WIDTH..=SKETCH_WIDTH_MAX` counters wide, sized at start-up to the frames
//! they count for, and indexed by the directory tag alone, so a frame's resident block can be
//! estimated as well as an arriving key (W-TinyLFU's window-versus-victim comparison).

use mcos_core::BlockKey;
use mcos_core::limits::{SKETCH_COUNTER_MAX, SKETCH_ROWS, SKETCH_WIDTH, SKETCH_WIDTH_MAX};

#[cfg(test)]
const CELLS: usize = SKETCH_ROWS * SKETCH_WIDTH;

/// Most counters one access halves, whatever window a table asks for (bounded work).
const HALVE_PER_ACCESS_MAX: usize = 16;

/// The hash the sketch indexes with: SplitMix64's finaliser of the directory tag; row `r` takes
/// bits `16r..16r + log2(width)`. Public because the hardware pipeline (`mcos-hw`) receives it
/// with each event instead of spending two 64x64 multipliers on it.
pub fn sketch_hash(tag: u64) -> u64 {
    let mut h = tag ^ (tag >> 30);
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// The admission sketch of one shard.
pub struct Sketch {
    /// One byte per counter (only the low 4 bits used) for simple indexing.
    counters: Box<[u8]>,
    /// Counters per row (power of two).
    width: usize,
    /// Next counter to halve.
    cursor: usize,
    /// Counters halved per access (0: no aging).
    halve_per_access: usize,
    /// Fractional carry so that `window` accesses halve exactly one full pass.
    carry: usize,
    window: usize,
}

impl Sketch {
    /// A zeroed sketch of the minimum width; `window` accesses age every counter once (0: never).
    pub fn new(window: u32) -> Sketch {
        Sketch::sized_for(window, 0)
    }

    /// A zeroed sketch whose rows hold about one counter per frame of `frames`
    /// (`SKETCH_WIDTH..=SKETCH_WIDTH_MAX`, a power of two).
    pub fn sized_for(window: u32, frames: usize) -> Sketch {
        let width = frames
            .next_power_of_two()
            .clamp(SKETCH_WIDTH, SKETCH_WIDTH_MAX);
        let mut s = Sketch {
            counters: vec![0u8; SKETCH_ROWS * width].into_boxed_slice(),
            width,
            cursor: 0,
            halve_per_access: 0,
            carry: 0,
            window: 0,
        };
        s.set_window(window);
        s
    }

    /// Counters per row.
    pub fn width(&self) -> usize {
        self.width
    }

    fn cells(&self) -> usize {
        self.counters.len()
    }

    /// Changes the aging window (a new policy table may ask for another). A window shorter
    /// than a pass of `HALVE_PER_ACCESS_MAX` counters per access is lengthened to one.
    pub fn set_window(&mut self, window: u32) {
        let cells = self.cells();
        self.window = if window == 0 {
            0
        } else {
            (window as usize).max(cells.div_ceil(HALVE_PER_ACCESS_MAX))
        };
        self.halve_per_access = cells.checked_div(self.window).unwrap_or(0);
        self.carry = 0;
    }

    fn index(&self, tag: u64, row: usize) -> usize {
        let h = sketch_hash(tag);
        row * self.width + ((h >> (row * 16)) as usize & (self.width - 1))
    }

    /// Starts loading the counters of the block with tag `tag` into the cache (a hint: no
    /// state change), for an access that is queued but not executed yet.
    #[inline]
    pub fn prefetch(&self, tag: u64) {
        for r in 0..SKETCH_ROWS {
            crate::table::prefetch_line(&self.counters[self.index(tag, r)]);
        }
    }

    /// Estimated access count of `key`, 0..=15.
    pub fn estimate(&self, key: BlockKey) -> u8 {
        self.estimate_tag(key.tag())
    }

    /// Estimated access count of the block with directory tag `tag`, 0..=15.
    pub fn estimate_tag(&self, tag: u64) -> u8 {
        let mut min = SKETCH_COUNTER_MAX;
        for r in 0..SKETCH_ROWS {
            min = min.min(self.counters[self.index(tag, r)]);
        }
        min
    }

    /// Counts `n` accesses of `key` (conservative update), then ages a bounded slice.
    pub fn add(&mut self, key: BlockKey, n: u8) {
        self.add_tag(key.tag(), n);
    }

    /// Counts `n` accesses of the block with tag `tag`, then ages a bounded slice.
    pub fn add_tag(&mut self, tag: u64, n: u8) {
        let min = self.estimate_tag(tag);
        let target = min.saturating_add(n).min(SKETCH_COUNTER_MAX);
        for r in 0..SKETCH_ROWS {
            let i = self.index(tag, r);
            let c = &mut self.counters[i];
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
        let cells = self.cells();
        let mut n = self.halve_per_access;
        // Spread the remainder of cells / window over the window.
        self.carry += cells % self.window;
        if self.carry >= self.window {
            self.carry -= self.window;
            n += 1;
        }
        for _ in 0..n {
            self.counters[self.cursor] >>= 1;
            self.cursor = (self.cursor + 1) % cells;
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

    #[test]
    fn rows_are_sized_to_the_frames_and_bounded() {
        assert_eq!(Sketch::sized_for(0, 10).width(), SKETCH_WIDTH);
        assert_eq!(Sketch::sized_for(0, 20_000).width(), 32_768);
        assert_eq!(Sketch::sized_for(0, 1 << 30).width(), SKETCH_WIDTH_MAX);
        let ns = Namespace::for_model("t");
        let mut s = Sketch::sized_for(1, 20_000);
        // A window of one access would halve every counter per access: it is lengthened.
        assert!(s.halve_per_access <= HALVE_PER_ACCESS_MAX);
        let k = BlockKey::from_trace_id(&ns, 9);
        s.add(k, 3);
        let before = s.estimate(k);
        s.prefetch(k.tag());
        assert_eq!(s.estimate(k), before, "a prefetch is only a hint");
        assert_eq!(s.estimate_tag(k.tag()), s.estimate(k));
        assert!(s.estimate(k) >= 2, "one access ages at most a few counters");
    }
}
