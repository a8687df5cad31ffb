//! A shadow of tier 0 under the fast path's aged replacement order (`Replacement::Aged`), run
//! beside the list shadows so the brain can tell whether the hardware-friendly order costs hit
//! ratio on this workload.
//!
//! Like [`crate::shadow`] it follows the fast path's documented rules, not its code (the rules
//! are on `mcos_core::Replacement::Aged`): every frame keeps a 7-bit stamp of the tier's age
//! epoch, written by a hit or a fill; the epoch advances once every
//! `max(1, frames / AGE_EPOCHS_PER_TIER)` stamp writes; a victim scan sweeps the
//! `VICTIM_SCAN_MAX` frames from the hand (stopping at the last frame; the hand then points past
//! the window, or at frame 0) and compares them with one carried candidate, the runner-up of
//! the previous scan: the oldest is the victim (ties: the carried one, then the lowest frame),
//! the oldest of the rest is carried. An LRU-end insert stamps its block half the age range old
//! and carries it. Free frames are taken from the highest down, as the fast path's free list
//! hands them out, so the hand meets the same frames in the same order. The admission history
//! (the "seen before" filter of [`Knobs::history_admit`]) is modelled as in the list shadow;
//! segments do not exist under the aged order (a table with them does not validate), and the
//! sketch window has no effect on it.
//!
//! Tier 0 only: the brain runs this shadow when it models one tier (no placement floor below
//! tier 0). Memory is bounded by the capacity and the history length.

use std::collections::VecDeque;

use mcos_core::limits::VICTIM_SCAN_MAX;
use mcos_core::{AGE_BITS, AGE_EPOCHS_PER_TIER};

use crate::knobs::Knobs;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hasher for key tags, which are already uniform hashes: one multiply spreads them. (The list
/// shadows moved to `tagtable`; this small shadow keeps a `HashMap`, never iterated, so the
/// hasher decides no outcome.)
#[derive(Default, Clone, Copy)]
struct TagHasher(u64);

impl Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x100_0000_01B3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

type TagMap<V> = HashMap<u64, V, BuildHasherDefault<TagHasher>>;

const NIL: u32 = u32::MAX;
const AGE_MASK: u8 = ((1u32 << AGE_BITS) - 1) as u8;

#[derive(Copy, Clone)]
struct Frame {
    tag: u64,
    stamp: u8,
    used: bool,
}

/// FIFO of the last `len` tags evicted or refused, with membership (the fast path's history),
/// as in the list shadow.
#[derive(Clone)]
struct History {
    order: VecDeque<(u64, u64)>,
    stamp: TagMap<u64>,
    clock: u64,
    len: usize,
}

impl History {
    fn contains(&self, tag: u64) -> bool {
        self.stamp
            .get(&tag)
            .is_some_and(|&s| self.clock - s < self.len as u64)
    }

    fn insert(&mut self, tag: u64) {
        if self.len == 0 {
            return;
        }
        self.clock += 1;
        self.stamp.insert(tag, self.clock);
        self.order.push_back((tag, self.clock));
        while self.order.len() > self.len {
            if let Some((old, s)) = self.order.pop_front()
                && self.stamp.get(&old) == Some(&s)
            {
                self.stamp.remove(&old);
            }
        }
    }
}

/// Tier 0 of `capacity` frames under the aged order and the admission of `knobs`.
#[derive(Clone)]
pub struct AgedShadow {
    knobs: Knobs,
    frames: Vec<Frame>,
    index: TagMap<u32>,
    /// Free frames; the last is taken first.
    free: Vec<u32>,
    epoch: u8,
    writes: u32,
    per_epoch: u32,
    hand: u32,
    carry: u32,
    history: History,
    hits: u64,
    accesses: u64,
}

impl AgedShadow {
    /// A shadow of `capacity` frames (at least 1) running the admission of `knobs`.
    pub fn new(knobs: Knobs, capacity: u32) -> AgedShadow {
        let n = capacity.max(1);
        let mut s = AgedShadow {
            knobs,
            frames: vec![
                Frame {
                    tag: 0,
                    stamp: 0,
                    used: false,
                };
                n as usize
            ],
            index: TagMap::with_capacity_and_hasher(n as usize, Default::default()),
            free: (0..n).collect(),
            epoch: 0,
            writes: 0,
            per_epoch: (n / AGE_EPOCHS_PER_TIER).max(1),
            hand: 0,
            carry: NIL,
            history: History {
                order: VecDeque::new(),
                stamp: TagMap::default(),
                clock: 0,
                len: 0,
            },
            hits: 0,
            accesses: 0,
        };
        s.retarget(knobs);
        s
    }

    /// Runs the admission of `knobs` from now on over the blocks held (a table install): the
    /// history keeps its entries, only the last `len` of the new length count.
    pub fn retarget(&mut self, knobs: Knobs) {
        self.history.len =
            (u64::from(self.capacity()) * u64::from(knobs.history_quarters) / 4) as usize;
        self.knobs = knobs;
    }

    /// The knobs whose admission this shadow runs.
    pub fn knobs(&self) -> Knobs {
        self.knobs
    }

    /// Frames of the tier.
    pub fn capacity(&self) -> u32 {
        self.frames.len() as u32
    }

    /// Blocks resident.
    pub fn len(&self) -> u32 {
        self.index.len() as u32
    }

    /// Whether no block is resident.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// (hits, accesses) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits, self.accesses)
    }

    fn stamp(&mut self, i: u32, old: bool) {
        let e = self.epoch;
        self.frames[i as usize].stamp = if old {
            e.wrapping_sub(1 << (AGE_BITS - 1)) & AGE_MASK
        } else {
            e
        };
        self.writes += 1;
        if self.writes >= self.per_epoch {
            self.writes = 0;
            self.epoch = e.wrapping_add(1) & AGE_MASK;
        }
    }

    /// The victim scan: the carried candidate and the window from the hand.
    fn scan(&mut self) -> Option<u32> {
        let n = self.capacity();
        let start = self.hand.min(n - 1);
        let end = (start + VICTIM_SCAN_MAX as u32).min(n);
        let mut best: Option<(u8, u32)> = None;
        let mut second: Option<(u8, u32)> = None;
        let mut offer = |f: &Frame, i: u32| {
            if !f.used {
                return;
            }
            let age = self.epoch.wrapping_sub(f.stamp) & AGE_MASK;
            if best.is_none_or(|(b, _)| age > b) {
                second = best;
                best = Some((age, i));
            } else if second.is_none_or(|(x, _)| age > x) {
                second = Some((age, i));
            }
        };
        let carry = self.carry;
        if carry < n && !(start..end).contains(&carry) {
            offer(&self.frames[carry as usize], carry);
        }
        for i in start..end {
            offer(&self.frames[i as usize], i);
        }
        self.hand = if end >= n { 0 } else { end };
        self.carry = second.map_or(NIL, |(_, i)| i);
        best.map(|(_, i)| i)
    }

    /// One access of `tag`, inserted at the MRU end on a miss unless the admission refuses it.
    /// Returns whether it hit.
    pub fn access(&mut self, tag: u64) -> bool {
        self.access_at(tag, false)
    }

    /// As [`AgedShadow::access`]; a missed block is inserted at the LRU end when `lru_end`
    /// (a class that inserts there: stamped old and carried, the next victim unless hit).
    pub fn access_at(&mut self, tag: u64, lru_end: bool) -> bool {
        self.accesses += 1;
        if let Some(&i) = self.index.get(&tag) {
            self.hits += 1;
            self.stamp(i, false);
            return true;
        }
        let full = self.free.is_empty();
        if self.knobs.history_admit && full && !self.history.contains(tag) {
            self.history.insert(tag);
            return false;
        }
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                let Some(v) = self.scan() else {
                    return false;
                };
                let old = self.frames[v as usize].tag;
                self.index.remove(&old);
                self.history.insert(old);
                v
            }
        };
        if self.history.contains(tag) {
            self.history.stamp.remove(&tag);
        }
        self.frames[i as usize] = Frame {
            tag,
            stamp: 0,
            used: true,
        };
        self.index.insert(tag, i);
        self.stamp(i, lru_end);
        if lru_end {
            self.carry = i;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn fills_then_hits_and_never_exceeds_capacity() {
        let mut s = AgedShadow::new(Knobs::LRU, 40);
        for t in 0..40 {
            assert!(!s.access(t));
        }
        assert_eq!(s.len(), 40);
        for t in 0..40 {
            assert!(s.access(t), "block {t} resident");
        }
        let mut r = xorshift(3);
        for _ in 0..20_000 {
            s.access(r() % 200);
            assert!(s.len() <= 40);
        }
        assert_eq!(s.counts().1, 20_080);
    }

    #[test]
    fn the_oldest_of_the_window_goes_first() {
        // 64 frames, 2 stamp writes per epoch. Fill 0..64 (frames 63 down to 0), then hit
        // every block but 5: block 5 (frame 58) is the only old one. The first scan sweeps
        // frames 0..16 (blocks 63..48, all young): it evicts the oldest of them; block 5 is
        // outside the window, so it survives until the hand reaches frame 58.
        let mut s = AgedShadow::new(Knobs::LRU, 64);
        for t in 0..64 {
            s.access(t);
        }
        for t in (0..64).filter(|&t| t != 5) {
            assert!(s.access(t));
        }
        // Scans of frames 0..16, 16..32, 32..48: block 5 still there.
        for t in 1000..1003 {
            assert!(!s.access(t));
        }
        assert!(s.index.contains_key(&5));
        // The fourth scan covers frames 48..64, where block 5 is the oldest by far.
        assert!(!s.access(1003));
        assert!(!s.index.contains_key(&5), "the stale block was the victim");
    }

    #[test]
    fn lru_end_insert_is_the_next_victim() {
        let mut s = AgedShadow::new(Knobs::LRU, 64);
        for t in 0..64 {
            s.access(t);
        }
        assert!(!s.access_at(500, true));
        assert!(!s.access(501));
        assert!(
            !s.index.contains_key(&500),
            "carried, stamped old: evicted next"
        );
        assert_eq!(s.len(), 64);
    }

    #[test]
    fn history_admission_needs_a_second_miss() {
        let knobs = Knobs {
            history_quarters: 4,
            history_admit: true,
            ..Knobs::LRU
        };
        let mut s = AgedShadow::new(knobs, 4);
        for t in 10..14 {
            assert!(!s.access(t));
        }
        assert!(!s.access(1), "first miss refused");
        assert!(!s.index.contains_key(&1));
        assert!(!s.access(1), "second miss admitted");
        assert!(s.access(1));
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn close_to_exact_lru_on_a_skewed_stream() {
        // The aged order approximates LRU: on a skewed stream its hit ratio is within a
        // small margin of an exact LRU's (the fast path measured 0.005 on KV traces).
        let cap = 512usize;
        let mut aged = AgedShadow::new(Knobs::LRU, cap as u32);
        let mut lru: VecDeque<u64> = VecDeque::new();
        let mut r = xorshift(11);
        let (mut ha, mut hl, n) = (0u64, 0u64, 100_000u64);
        for _ in 0..n {
            let a = r() % 4096;
            let t = a.min(r() % 4096).min(r() % 4096);
            ha += u64::from(aged.access(t));
            if let Some(p) = lru.iter().position(|&x| x == t) {
                lru.remove(p);
                hl += 1;
            } else if lru.len() == cap {
                lru.pop_back();
            }
            lru.push_front(t);
        }
        let gap = (hl as f64 - ha as f64) / n as f64;
        assert!(gap.abs() < 0.01, "aged {ha} vs LRU {hl} of {n}");
    }
}
