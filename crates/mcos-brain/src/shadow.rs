//! Miniature shadow caches: a model of one fast-path tier under one set of knobs, run on a
//! spatial sample of the keys (SHARDS, Waldspurger et al., FAST'15: a cache of `C * R` blocks
//! fed the keys whose hash falls in a fraction `R` of the hash space behaves like a cache of `C`
//! blocks fed every key).
//!
//! The model follows the fast path's documented rules (mcos-fastpath `shard` and `frames`), not
//! its code: an admission window, probation and a protected segment in tier 0; a history of
//! keys that recently left tier 0 or were refused; a model of the count-min sketch. With tiers
//! below (`Shadow::with_lower`), each is an LRU list fed by tier 0's victims and by the blocks
//! tier 0's filter refused, its own victims going one tier down and out of the last one; a hit
//! below promotes the block into tier 0 when tier 0's filter admits it, else it is read in
//! place. `Shadow::access` reports the tier of a hit, so the brain can weigh hits by the time
//! they save. Lists are intrusive over one slab allocated at start-up; the index and the
//! frequency table are bounded by the slab and the history, so memory is bounded by the shadow
//! capacity, whatever the trace.

use std::collections::VecDeque;

use crate::knobs::Knobs;
use crate::tagtable::{TagTable, Value, prefetch_read};

const NIL: u32 = u32::MAX;

/// Segments of tier 0; tier `k >= 1` below it is list `LOWER + k - 1`.
const WINDOW: u8 = 0;
const PROBATION: u8 = 1;
const PROTECTED: u8 = 2;
const LOWER: u8 = 3;

#[derive(Copy, Clone)]
struct Node {
    tag: u64,
    prev: u32,
    next: u32,
    seg: u8,
}

#[derive(Copy, Clone)]
struct Lst {
    head: u32,
    tail: u32,
    len: u32,
}

const EMPTY: Lst = Lst {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// A model of the fast path's admission sketch, shared by every shadow with the same sketch
/// window: a count-min of 4-bit counters, four rows, conservative update, aged by halving the
/// counters under a moving cursor so that one pass takes `window` accesses (the behaviour the
/// fast path documents; its own hash functions are not copied, so collisions differ in detail
/// but not in rate). Rows are sized like the fast path's: about one counter per block of the
/// cache modelled, 4096 to 65536.
#[derive(Clone)]
pub struct Frequency {
    counters: Vec<u8>,
    width: usize,
    window: u64,
    halve_per_access: u64,
    carry: u64,
    cursor: usize,
}

const ROWS: usize = 4;

impl Frequency {
    /// A sketch for a cache of `blocks` blocks, aged over `window` accesses (0: never).
    pub fn new(blocks: u64, window: u64) -> Frequency {
        let width = (blocks.max(1) as usize)
            .next_power_of_two()
            .clamp(4096, 1 << 16);
        let cells = (ROWS * width) as u64;
        let window = if window == 0 {
            0
        } else {
            window.max(cells.div_ceil(16))
        };
        Frequency {
            counters: vec![0; ROWS * width],
            width,
            window,
            halve_per_access: cells.checked_div(window).unwrap_or(0),
            carry: 0,
            cursor: 0,
        }
    }

    /// Changes the aging window (0: never), keeping the counters, as the fast path's sketch
    /// does when a table with another `sketch_window` is installed.
    pub fn set_window(&mut self, window: u64) {
        let cells = self.counters.len() as u64;
        self.window = if window == 0 {
            0
        } else {
            window.max(cells.div_ceil(16))
        };
        self.halve_per_access = cells.checked_div(self.window).unwrap_or(0);
        self.carry = 0;
    }

    fn index(&self, tag: u64, row: usize) -> usize {
        let mut h = tag.wrapping_add(0xA076_1D64_78BD_642F);
        h = (h ^ (h >> 32)).wrapping_mul(0xE703_7ED1_A0B4_28DB);
        h ^= h >> 29;
        row * self.width + ((h >> (row * 16)) as usize & (self.width - 1))
    }

    /// Counts one access of `tag`.
    pub fn add(&mut self, tag: u64) {
        let target = self.get(tag).saturating_add(1).min(15);
        for r in 0..ROWS {
            let i = self.index(tag, r);
            if self.counters[i] < target {
                self.counters[i] = target;
            }
        }
        if self.window == 0 {
            return;
        }
        let cells = self.counters.len();
        let mut n = self.halve_per_access;
        self.carry += cells as u64 % self.window;
        if self.carry >= self.window {
            self.carry -= self.window;
            n += 1;
        }
        for _ in 0..n {
            self.counters[self.cursor] >>= 1;
            self.cursor = (self.cursor + 1) % cells;
        }
    }

    /// Estimated count of `tag`, 0..=15.
    pub fn get(&self, tag: u64) -> u8 {
        (0..ROWS)
            .map(|r| self.counters[self.index(tag, r)])
            .min()
            .unwrap_or(0)
    }
}

/// Longest history a shadow keeps (records): its stamps are kept modulo `2^32 - 1`, exact while
/// the history holds fewer records (a longer one would need 32 GiB for its order alone).
const HISTORY_MAX: usize = u32::MAX as usize - 1;

/// `STAMP_MOD`: history stamps are kept as `(s - 1) % STAMP_MOD + 1` (never 0, which marks a
/// tag not in the history).
const STAMP_MOD: u64 = u32::MAX as u64;

/// A tag's entry: where it is resident, and its history record.
#[derive(Copy, Clone, PartialEq, Eq)]
struct Tag {
    /// Slab slot; [`NIL`] when not resident.
    slot: u32,
    /// Coded stamp of its latest history record ([`Keys::code`]); 0 when not in the history.
    stamp: u32,
}

impl Value for Tag {
    const VACANT: Tag = Tag {
        slot: NIL,
        stamp: 0,
    };
}

/// The shadow's index of resident blocks and its history (the FIFO of the last `len` tags
/// evicted or refused, with membership: the fast path's history) in one table, so that an
/// access reads one entry for both questions and an eviction writes one entry for both
/// changes.
#[derive(Clone)]
struct Keys {
    table: TagTable<Tag>,
    /// Tags recorded in the history, oldest first; their stamps run consecutively up to
    /// `clock` (one tick per record), so the `i`-th has stamp `clock + 1 - order.len() + i`.
    order: VecDeque<u64>,
    clock: u64,
    len: usize,
}

impl Keys {
    fn new(blocks: usize, len: usize) -> Keys {
        let len = len.min(HISTORY_MAX);
        Keys {
            table: TagTable::with_capacity(blocks + len),
            order: VecDeque::with_capacity(len + 1),
            clock: 0,
            len,
        }
    }

    /// A stamp `s >= 1` as kept in the table: `(s - 1) % STAMP_MOD + 1`. Every stamp in the
    /// table is one of the last `order.len() < STAMP_MOD` records', so two coded stamps are
    /// equal exactly when the stamps are, and their difference modulo `STAMP_MOD` is the
    /// stamps' difference.
    fn code(s: u64) -> u32 {
        ((s - 1) % STAMP_MOD + 1) as u32
    }

    fn set_len(&mut self, len: usize) {
        self.len = len.min(HISTORY_MAX);
    }

    /// The slot of resident `tag`.
    fn slot(&self, tag: u64) -> Option<u32> {
        self.table.get(tag).map(|t| t.slot).filter(|&i| i != NIL)
    }

    fn set_slot(&mut self, tag: u64, slot: u32) {
        self.table.update(tag, |t| Tag { slot, ..t });
    }

    fn clear_slot(&mut self, tag: u64) {
        self.table.update(tag, |t| Tag { slot: NIL, ..t });
    }

    /// Whether `tag` is among the last `len` records of the history.
    fn in_history(&self, tag: u64) -> bool {
        self.table.get(tag).is_some_and(|t| {
            if t.stamp == 0 {
                return false;
            }
            let now = u64::from(Self::code(self.clock.max(1)));
            let then = u64::from(t.stamp);
            let age = if now >= then {
                now - then
            } else {
                now + STAMP_MOD - then
            };
            age < self.len as u64
        })
    }

    fn history_remove(&mut self, tag: u64) {
        self.table.update(tag, |t| Tag { stamp: 0, ..t });
    }

    fn history_insert(&mut self, tag: u64) {
        if self.len == 0 {
            return;
        }
        self.clock += 1;
        let stamp = Self::code(self.clock);
        self.table.update(tag, |t| Tag { stamp, ..t });
        self.order.push_back(tag);
        while self.order.len() > self.len {
            let s = Self::code(self.clock + 1 - self.order.len() as u64);
            if let Some(old) = self.order.pop_front() {
                self.table.update(old, |t| {
                    if t.stamp == s {
                        Tag { stamp: 0, ..t }
                    } else {
                        t
                    }
                });
            }
        }
    }

    fn prefetch(&self, tag: u64) {
        self.table.prefetch(tag);
    }
}

/// One shadow cache: tier 0 under `knobs`, and optionally LRU tiers below it.
#[derive(Clone)]
pub struct Shadow {
    knobs: Knobs,
    capacity: u32,
    window_target: u32,
    protected_target: u32,
    /// Capacities of the tiers below tier 0, fastest first.
    lower: Vec<u32>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    lists: Vec<Lst>,
    keys: Keys,
    hits: u64,
    accesses: u64,
}

impl Shadow {
    /// A shadow of one tier of `capacity` blocks (at least 1) under `knobs`.
    pub fn new(knobs: Knobs, capacity: u32) -> Shadow {
        Shadow::with_lower(knobs, capacity, &[])
    }

    /// A shadow of tier 0 (`capacity` blocks under `knobs`) over LRU tiers of `lower` blocks.
    pub fn with_lower(knobs: Knobs, capacity: u32, lower: &[u32]) -> Shadow {
        let capacity = capacity.max(1);
        let share = |s: u8| (u64::from(capacity) * u64::from(s) / 256) as u32;
        let ghost_len = (u64::from(capacity) * u64::from(knobs.history_quarters) / 4) as usize;
        let lower: Vec<u32> = lower.iter().map(|&n| n.max(1)).collect();
        let total = capacity as usize + lower.iter().map(|&n| n as usize).sum::<usize>();
        Shadow {
            knobs,
            capacity,
            window_target: share(knobs.window_share),
            protected_target: share(knobs.protected_share),
            nodes: Vec::with_capacity(total),
            free: Vec::new(),
            lists: vec![EMPTY; usize::from(LOWER) + lower.len()],
            lower,
            keys: Keys::new(total, ghost_len),
            hits: 0,
            accesses: 0,
        }
    }

    /// Runs `knobs` from now on over the blocks already held, as the fast path does when a new
    /// table is installed: every block stays in its segment, the segments' targets change
    /// (a segment over its new target shrinks as blocks pass through it), and the history
    /// keeps its entries but only the last `len` of the new length count (none are recorded
    /// while it is off).
    pub fn retarget(&mut self, knobs: Knobs) {
        let share = |s: u8| (u64::from(self.capacity) * u64::from(s) / 256) as u32;
        self.window_target = share(knobs.window_share);
        self.protected_target = share(knobs.protected_share);
        self.keys
            .set_len((u64::from(self.capacity) * u64::from(knobs.history_quarters) / 4) as usize);
        self.knobs = knobs;
    }

    /// Blocks tier 0 holds when full.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The knobs this shadow runs.
    pub fn knobs(&self) -> Knobs {
        self.knobs
    }

    /// (hits in any tier, accesses) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits, self.accesses)
    }

    /// Blocks resident in tier 0.
    pub fn len(&self) -> u32 {
        self.lists[..usize::from(LOWER)].iter().map(|l| l.len).sum()
    }

    /// Whether tier 0 is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn unlink(&mut self, i: u32) {
        let n = self.nodes[i as usize];
        let l = &mut self.lists[usize::from(n.seg)];
        if n.prev != NIL {
            self.nodes[n.prev as usize].next = n.next;
        } else {
            l.head = n.next;
        }
        if n.next != NIL {
            self.nodes[n.next as usize].prev = n.prev;
        } else {
            l.tail = n.prev;
        }
        l.len -= 1;
    }

    /// Links `i` at the MRU end of `seg`.
    fn push(&mut self, seg: u8, i: u32) {
        let l = self.lists[usize::from(seg)];
        {
            let n = &mut self.nodes[i as usize];
            n.seg = seg;
            n.prev = NIL;
            n.next = l.head;
        }
        if l.head != NIL {
            self.nodes[l.head as usize].prev = i;
        }
        let lm = &mut self.lists[usize::from(seg)];
        lm.head = i;
        if lm.tail == NIL {
            lm.tail = i;
        }
        lm.len += 1;
    }

    fn touch(&mut self, seg: u8, i: u32) {
        self.unlink(i);
        self.push(seg, i);
    }

    fn tail(&self, seg: u8) -> Option<u32> {
        let t = self.lists[usize::from(seg)].tail;
        (t != NIL).then_some(t)
    }

    fn len_of(&self, seg: u8) -> u32 {
        self.lists[usize::from(seg)].len
    }

    fn alloc(&mut self, tag: u64) -> u32 {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.nodes.push(Node {
                    tag,
                    prev: NIL,
                    next: NIL,
                    seg: PROBATION,
                });
                (self.nodes.len() - 1) as u32
            }
        };
        self.nodes[i as usize].tag = tag;
        self.keys.set_slot(tag, i);
        i
    }

    fn forget(&mut self, i: u32) {
        let tag = self.nodes[i as usize].tag;
        self.keys.clear_slot(tag);
        self.free.push(i);
    }

    /// Puts unlinked `i` at the MRU end of tier `k >= 1`; the tier's overflow goes one tier
    /// down, out of the last one.
    fn push_lower(&mut self, k: usize, i: u32) {
        let mut k = k;
        let mut i = i;
        loop {
            let seg = LOWER + (k - 1) as u8;
            self.push(seg, i);
            if self.len_of(seg) <= self.lower[k - 1] {
                return;
            }
            let Some(t) = self.tail(seg) else { return };
            self.unlink(t);
            if k < self.lower.len() {
                k += 1;
                i = t;
            } else {
                self.forget(t);
                return;
            }
        }
    }

    fn protected_overflow(&mut self) {
        if self.len_of(PROTECTED) > self.protected_target
            && let Some(j) = self.tail(PROTECTED)
        {
            self.touch(PROBATION, j);
        }
    }

    fn victim(&mut self, freq: &Frequency) -> Option<u32> {
        let main = self.tail(PROBATION).or_else(|| self.tail(PROTECTED));
        if self.window_target > 0 && self.len_of(WINDOW) >= self.window_target {
            return match (self.tail(WINDOW), main) {
                (Some(c), Some(v)) => {
                    let fc = freq.get(self.nodes[c as usize].tag);
                    let fv = freq.get(self.nodes[v as usize].tag);
                    if fc > fv {
                        self.touch(PROBATION, c);
                        Some(v)
                    } else {
                        Some(c)
                    }
                }
                (c, v) => c.or(v),
            };
        }
        main.or_else(|| self.tail(WINDOW))
    }

    /// Makes room for one block in a full tier 0: its victim leaves for the tier below (or
    /// out) and is remembered in the history.
    fn make_room(&mut self, freq: &Frequency) {
        if self.len() < self.capacity {
            return;
        }
        let Some(v) = self.victim(freq) else { return };
        self.unlink(v);
        let tag = self.nodes[v as usize].tag;
        self.keys.history_insert(tag);
        if self.lower.is_empty() {
            self.forget(v);
        } else {
            self.push_lower(1, v);
        }
    }

    /// Links unlinked `i` into tier 0 as a new block (the fast path's `place`).
    fn place(&mut self, i: u32, from_history: bool) {
        if from_history && self.protected_target > 0 {
            self.push(PROTECTED, i);
            self.protected_overflow();
        } else if self.window_target > 0 {
            self.push(WINDOW, i);
            if self.len_of(WINDOW) > self.window_target
                && let Some(j) = self.tail(WINDOW)
            {
                self.touch(PROBATION, j);
            }
        } else {
            self.push(PROBATION, i);
        }
        // After a retarget shrank a segment: one block from its LRU end to probation per
        // placement, as the fast path's `rebalance` drains it (never true under fixed knobs).
        for (seg, target) in [
            (PROTECTED, self.protected_target),
            (WINDOW, self.window_target),
        ] {
            if self.len_of(seg) > target
                && let Some(j) = self.tail(seg)
            {
                self.touch(PROBATION, j);
            }
        }
    }

    fn refuses(&self, tag: u64) -> bool {
        self.knobs.history_admit && !self.keys.in_history(tag) && self.len() >= self.capacity
    }

    /// Starts loading the lines an access of `tag` reads first (its index entry and, with a
    /// history, its history entry); changes nothing. The brain calls it an access ahead, so
    /// the lines are close when the access runs.
    pub fn prefetch(&self, tag: u64) {
        self.keys.prefetch(tag);
    }

    /// After an access: asks for the first lines of the next one (`next`, if known) and for
    /// what its miss would read to evict (see [`Shadow::prefetch_victim`]); changes nothing.
    pub fn prefetch_next(&self, next: Option<u64>) {
        if let Some(tag) = next {
            self.prefetch(tag);
        }
        self.prefetch_victim();
    }

    /// The blocks a miss would evict from a full tier 0 now: the tail of probation (or of the
    /// protected segment), and the window's tail when the window is full (the two duel).
    fn likely_victims(&self) -> [Option<u32>; 2] {
        if self.len() < self.capacity {
            return [None, None];
        }
        let main = self.tail(PROBATION).or_else(|| self.tail(PROTECTED));
        if self.window_target > 0 && self.len_of(WINDOW) >= self.window_target {
            [self.tail(WINDOW), main]
        } else {
            [main.or_else(|| self.tail(WINDOW)), None]
        }
    }

    /// Starts loading what the next eviction reads: the index and history entry of each block
    /// it may evict (the segments' last blocks, usually in cache: the last eviction or move
    /// wrote them), the block before it, and the history entry its record pushes out;
    /// changes nothing.
    pub fn prefetch_victim(&self) {
        let mut any = false;
        for v in self.likely_victims().into_iter().flatten() {
            any = true;
            let n = &self.nodes[v as usize];
            self.keys.table.prefetch_run(n.tag);
            if n.prev != NIL {
                prefetch_read(&self.nodes[n.prev as usize]);
            }
        }
        if any
            && self.keys.len > 0
            && self.keys.order.len() >= self.keys.len
            && let Some(&old) = self.keys.order.front()
        {
            self.keys.table.prefetch_run(old);
        }
    }

    /// One access of `tag`; `freq` must already count it. Returns the tier it hit in (0 for
    /// tier 0), or None on a miss.
    pub fn access(&mut self, tag: u64, freq: &Frequency) -> Option<u8> {
        self.accesses += 1;
        if let Some(i) = self.keys.slot(tag) {
            self.hits += 1;
            let seg = self.nodes[i as usize].seg;
            if seg < LOWER {
                if seg == PROBATION && self.protected_target > 0 {
                    self.touch(PROTECTED, i);
                    self.protected_overflow();
                } else {
                    self.touch(seg, i);
                }
                return Some(0);
            }
            let k = seg - LOWER + 1;
            if self.refuses(tag) {
                self.keys.history_insert(tag);
                self.touch(seg, i);
                return Some(k);
            }
            let from_history = self.keys.in_history(tag);
            self.unlink(i);
            self.make_room(freq);
            if from_history {
                self.keys.history_remove(tag);
            }
            self.place(i, from_history);
            return Some(k);
        }
        if self.refuses(tag) {
            self.keys.history_insert(tag);
            if !self.lower.is_empty() {
                let i = self.alloc(tag);
                self.push_lower(1, i);
            }
            return None;
        }
        let from_history = self.keys.in_history(tag);
        self.make_room(freq);
        let i = self.alloc(tag);
        if from_history {
            self.keys.history_remove(tag);
        }
        self.place(i, from_history);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lru_model(seq: &[u64], cap: usize) -> Vec<bool> {
        let mut v: Vec<u64> = Vec::new();
        seq.iter()
            .map(|&x| {
                if let Some(p) = v.iter().position(|&y| y == x) {
                    v.remove(p);
                    v.insert(0, x);
                    true
                } else {
                    v.insert(0, x);
                    v.truncate(cap);
                    false
                }
            })
            .collect()
    }

    #[test]
    fn lru_knobs_are_exact_lru() {
        let mut x = 7u64;
        let seq: Vec<u64> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 50).min(x % 300)
            })
            .collect();
        for cap in [1u32, 3, 17, 64] {
            let mut s = Shadow::new(Knobs::LRU, cap);
            let mut f = Frequency::new(64, 0);
            let got: Vec<bool> = seq
                .iter()
                .map(|&t| {
                    f.add(t);
                    s.access(t, &f).is_some()
                })
                .collect();
            assert_eq!(got, lru_model(&seq, cap as usize), "capacity {cap}");
            assert!(s.len() <= cap);
        }
    }

    #[test]
    fn history_admission_needs_a_second_miss() {
        let knobs = Knobs {
            history_quarters: 4,
            history_admit: true,
            ..Knobs::LRU
        };
        let mut s = Shadow::new(knobs, 4);
        let f = Frequency::new(64, 0);
        for t in 10..14 {
            assert_eq!(s.access(t, &f), None, "admitted while there is room");
        }
        assert_eq!(s.len(), 4);
        assert_eq!(s.access(1, &f), None, "first miss refused");
        assert_eq!(s.access(1, &f), None, "second miss admitted");
        assert_eq!(s.access(1, &f), Some(0), "then it hits");
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn window_duel_keeps_the_frequent_block() {
        let knobs = Knobs {
            window_share: 64,
            ..Knobs::LRU
        };
        let mut s = Shadow::new(knobs, 8);
        let mut f = Frequency::new(64, 0);
        let mut acc = |s: &mut Shadow, t: u64| {
            f.add(t);
            s.access(t, &f).is_some()
        };
        for _ in 0..4 {
            for t in 0..6 {
                acc(&mut s, t);
            }
        }
        for t in 100..200 {
            acc(&mut s, t);
        }
        let kept = (0..6).filter(|t| s.keys.slot(*t).is_some()).count();
        let _ = WINDOW;
        assert!(kept >= 5, "the scan displaced the frequent blocks: {kept}");
        assert!(s.len() <= 8);
    }
}

#[cfg(test)]
mod keys_tests {
    use super::*;
    use std::collections::HashMap;

    /// The history as it was kept before [`Keys`]: full stamps in a map beside the order.
    struct Reference {
        order: VecDeque<(u64, u64)>,
        stamp: HashMap<u64, u64>,
        clock: u64,
        len: usize,
    }

    impl Reference {
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

    /// The coded stamps answer as full ones, across the code's wrap at `2^32 - 1` records,
    /// with the history's length changing (a retarget) and residents sharing the entries.
    #[test]
    fn history_with_coded_stamps_answers_as_with_full_ones() {
        for start in [0, STAMP_MOD - 40, 2 * STAMP_MOD - 7, 5 * STAMP_MOD + 3] {
            let mut k = Keys::new(16, 24);
            k.clock = start;
            let mut r = Reference {
                order: VecDeque::new(),
                stamp: HashMap::new(),
                clock: start,
                len: 24,
            };
            let mut resident: HashMap<u64, u32> = HashMap::new();
            let mut x = start | 1;
            for step in 0..20_000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let tag = x % 64;
                match (x >> 40) % 16 {
                    0..=6 => {
                        k.history_insert(tag);
                        r.insert(tag);
                    }
                    7..=8 => {
                        k.history_remove(tag);
                        r.stamp.remove(&tag);
                    }
                    9..=10 => {
                        k.set_slot(tag, step);
                        resident.insert(tag, step);
                    }
                    11..=12 => {
                        k.clear_slot(tag);
                        resident.remove(&tag);
                    }
                    13 => {
                        let len = ((x >> 50) % 40) as usize;
                        k.set_len(len);
                        r.len = len;
                    }
                    _ => {}
                }
                for t in 0..64 {
                    assert_eq!(
                        k.in_history(t),
                        r.contains(t),
                        "start {start} step {step} tag {t}"
                    );
                    assert_eq!(k.slot(t), resident.get(&t).copied());
                }
            }
        }
    }
}

#[cfg(test)]
mod behaviour_tests {
    use super::*;
    use crate::knobs::candidates;

    /// The brain runs one shadow for candidates with the same [`Knobs::behaviour`]: their
    /// shadows must answer alike on every access (with and without a tier below), under the
    /// sketch of either's window.
    #[test]
    fn knobs_with_the_same_behaviour_hit_alike() {
        let mut grid = candidates();
        grid.push(Knobs {
            history_quarters: 8,
            sketch_window_x: 10,
            ..Knobs::LRU
        });
        grid.push(Knobs {
            window_share: 20,
            history_quarters: 16,
            sketch_window_x: 10,
            ..Knobs::LRU
        });
        let mut x = 11u64;
        let seq: Vec<u64> = (0..40_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 400).min(x % 3000)
            })
            .collect();
        let mut pairs = 0;
        for (i, &a) in grid.iter().enumerate() {
            for &b in &grid[i + 1..] {
                if a.behaviour() != b.behaviour() {
                    continue;
                }
                pairs += 1;
                for lower in [&[][..], &[150u32][..]] {
                    let mut sa = Shadow::with_lower(a, 100, lower);
                    let mut sb = Shadow::with_lower(b, 100, lower);
                    let window = u64::from(a.sketch_window_x) * 100;
                    let mut f = Frequency::new(100, window);
                    for (n, &t) in seq.iter().enumerate() {
                        f.add(t);
                        assert_eq!(
                            sa.access(t, &f),
                            sb.access(t, &f),
                            "{} and {} at access {n}",
                            a.label(),
                            b.label()
                        );
                    }
                }
            }
        }
        assert!(
            pairs >= 3,
            "the grid has knobs that differ only in effect: {pairs}"
        );
    }
}

#[cfg(test)]
mod retarget_tests {
    use super::*;

    #[test]
    fn retarget_keeps_the_blocks_and_drains_a_shrunk_segment() {
        let f = Frequency::new(64, 0);
        let slru = Knobs {
            protected_share: 128,
            ..Knobs::LRU
        };
        let mut s = Shadow::new(slru, 8);
        for t in 0..8 {
            assert_eq!(s.access(t, &f), None);
        }
        for t in 0..4 {
            assert_eq!(s.access(t, &f), Some(0));
        }
        assert_eq!(s.len_of(PROTECTED), 4);
        s.retarget(Knobs::LRU);
        assert_eq!(s.knobs(), Knobs::LRU);
        for t in 0..8 {
            assert_eq!(
                s.access(t, &f),
                Some(0),
                "block {t} kept across the retarget"
            );
        }
        assert_eq!(s.len_of(PROTECTED), 4, "hits alone do not drain it");
        for t in 100..104 {
            assert_eq!(s.access(t, &f), None);
        }
        assert_eq!(s.len_of(PROTECTED), 0, "one block a placement drained it");
        assert_eq!(s.len(), 8);
        // A history switched on starts empty (none recorded while it was off), then records.
        let hadm = Knobs {
            history_quarters: 4,
            history_admit: true,
            ..Knobs::LRU
        };
        s.retarget(hadm);
        assert_eq!(s.access(200, &f), None, "refused: not seen before");
        assert_eq!(s.access(200, &f), None, "admitted on the second miss");
        assert_eq!(s.access(200, &f), Some(0));
    }

    #[test]
    fn a_sketch_window_set_later_ages_the_counts_kept() {
        let mut f = Frequency::new(16, 0);
        for _ in 0..20 {
            f.add(7);
        }
        assert_eq!(f.get(7), 15, "never aged: saturated");
        f.set_window(4096);
        for t in 1000..1000 + 2 * 4096 {
            f.add(t);
        }
        assert!(f.get(7) < 4, "aged once the window is set: {}", f.get(7));
    }
}

#[cfg(test)]
mod hierarchy_tests {
    use super::*;

    #[test]
    fn lower_tiers_catch_victims_and_refusals_and_promote_on_reuse() {
        let f = Frequency::new(64, 0);
        // LRU tier 0 of 2 over a tier of 3: an exclusive hierarchy of 5.
        let mut s = Shadow::with_lower(Knobs::LRU, 2, &[3]);
        for t in 1..=5 {
            assert_eq!(s.access(t, &f), None);
        }
        // 1, 2, 3 were pushed down in that order; tier 0 holds 4 and 5.
        assert_eq!(s.access(5, &f), Some(0));
        assert_eq!(s.access(1, &f), Some(1), "found below");
        assert_eq!(s.access(1, &f), Some(0), "and promoted");
        assert_eq!(s.access(6, &f), None);
        assert_eq!(s.access(7, &f), None);
        assert_eq!(s.access(2, &f), None, "2 fell out of the hierarchy");
        // History admission: a refused block waits below and is promoted on its next use.
        let knobs = Knobs {
            history_quarters: 4,
            history_admit: true,
            ..Knobs::LRU
        };
        let mut h = Shadow::with_lower(knobs, 2, &[4]);
        h.access(10, &f);
        h.access(11, &f);
        assert_eq!(h.access(12, &f), None, "refused above");
        assert_eq!(h.access(12, &f), Some(1), "kept below");
        assert_eq!(h.access(12, &f), Some(0), "promoted: it was seen before");
        assert_eq!(h.len(), 2);
    }
}
