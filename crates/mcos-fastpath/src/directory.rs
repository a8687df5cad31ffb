//! The directory: block key -> current location (tier, frame), fixed size, preallocated.
//!
//! A bucketized cuckoo table with partial keys (Fan et al., "MemC3", NSDI 2013; the bucket
//! layout of cuckoo filters, CoNEXT 2014): buckets of `DIRECTORY_BUCKET_SLOTS` 8-byte entries,
//! one 64-byte cache line each. An entry is a 32-bit fingerprint of the key and the block's
//! 32-bit location; a bucket keeps its eight fingerprints side by side, then the eight
//! locations, so one lookup compares all fingerprints of a bucket in two vector compares. A key may live in one of two buckets; the second is computed from
//! the first and the fingerprint alone (an involution, so an entry can be moved to its other
//! bucket without its key). Inserts go to the emptier bucket; when both are full, one entry of
//! either bucket moves to its other bucket (one step, bounded), else the insert is refused and
//! counted. Sized for `DIRECTORY_LOAD_PERCENT` load: 8 bytes x 100/75 = 10.7 bytes per block.
//!
//! A fingerprint match is only a candidate: the full 64-bit tag is checked against the frame
//! the entry points to (every frame records the tag of the block it holds, and the directory
//! only ever points at a frame holding that block), through [`Resolve`]. So a fingerprint
//! collision costs one extra frame read, never a wrong answer: the directory answers exactly
//! as a map keyed by the 64-bit tag would. Bounded work: a lookup reads two buckets and checks
//! at most `2 x DIRECTORY_BUCKET_SLOTS` fingerprints; an insert reads at most
//! `2 + 2 x DIRECTORY_BUCKET_SLOTS` buckets.

use crate::table::prefetch_line;
use mcos_core::limits::{DIRECTORY_BUCKET_SLOTS, DIRECTORY_LOAD_PERCENT};
use mcos_core::{BlockKey, TierId};

/// A block's location, packed: tier in the top 4 bits, frame in the low 28.
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
    /// Both buckets of the key are full and no entry of them can move to its other bucket.
    Conflict,
}

/// Where the directory checks a fingerprint match: the tag of the block held at a location
/// (0 when nothing is held there or the location is not this shard's).
pub trait Resolve {
    /// Tag of the block at `loc`.
    fn tag_at(&self, loc: Loc) -> u64;
}

const SLOTS: usize = DIRECTORY_BUCKET_SLOTS;

/// A `set_at` hint that names no entry.
pub const NO_POS: u32 = u32::MAX;

/// One bucket: one cache line of entries, fingerprints first. A fingerprint of 0 marks an empty
/// slot (fingerprints of keys are never 0).
#[derive(Copy, Clone)]
#[repr(C, align(64))]
struct Bucket {
    fps: [u32; SLOTS],
    locs: [u32; SLOTS],
}

const EMPTY_BUCKET: Bucket = Bucket {
    fps: [0; SLOTS],
    locs: [0; SLOTS],
};

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

/// A tag's fingerprint and buckets.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Hashed {
    tag: u64,
    fp: u32,
    b1: usize,
    b2: usize,
}

/// A slot for a new entry: (bucket, slot), and where its current entry moves first, if any.
struct Room {
    slot: (usize, usize),
    moved_to: Option<(usize, usize)>,
}

/// The directory of one shard.
pub struct Directory {
    buckets: Box<[Bucket]>,
    /// Buckets (any count, not only powers of two: bucket indices come from multiply-shift).
    count: u64,
    len: usize,
}

/// The tag a key is stored under (never 0).
pub fn tag_of(key: BlockKey) -> u64 {
    key.tag().max(1)
}

/// A folded multiply (one 64x64->128 multiply, halves xored, as in foldhash and wyhash):
/// tags of real keys are already hashes, but tags in tests may be small integers, so the
/// directory mixes them itself, cheaply.
#[inline]
fn mix(tag: u64) -> u64 {
    let p = u128::from(tag ^ 0x243F_6A88_85A3_08D3) * 0x9E37_79B9_7F4A_7C15;
    (p >> 64) as u64 ^ p as u64
}

/// Fewest buckets a directory has (4 KiB). With a handful of buckets a key's two buckets are
/// often the same one, and a few keys could fill it; 64 make that vanishingly rare (nine of
/// thirteen keys in one bucket pair: about 1e-12).
const MIN_BUCKETS: usize = 64;

/// Buckets for `blocks` resident blocks at the design load.
fn buckets_for(blocks: usize) -> usize {
    let per_bucket = SLOTS * DIRECTORY_LOAD_PERCENT / 100;
    blocks.div_ceil(per_bucket).max(MIN_BUCKETS)
}

impl Directory {
    /// A directory for up to `blocks` resident blocks.
    pub fn with_capacity(blocks: usize) -> Directory {
        Directory::with_buckets(buckets_for(blocks))
    }

    fn with_buckets(count: usize) -> Directory {
        Directory {
            buckets: crate::table::table(count, EMPTY_BUCKET),
            count: count as u64,
            len: 0,
        }
    }

    /// Bytes of directory state a shard of `blocks` blocks holds (the layout, without building
    /// it).
    pub fn bytes_for(blocks: usize) -> usize {
        buckets_for(blocks) * std::mem::size_of::<Bucket>()
    }

    /// Bytes of directory state.
    pub fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }

    /// Entries stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the directory is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where `tag` lives: its fingerprint and two buckets. Computed once and reused by the
    /// several operations an event makes on one key.
    #[inline]
    pub fn hash(&self, tag: u64) -> Hashed {
        let h = mix(tag);
        let fp = (h >> 32) as u32;
        let fp = if fp == 0 { 1 } else { fp };
        let b1 = ((u64::from(h as u32) * self.count) >> 32) as usize;
        Hashed {
            tag,
            fp,
            b1,
            b2: self.other(b1, fp),
        }
    }

    /// The other bucket of an entry in bucket `b` with fingerprint `fp`: `(H(fp) - b) mod n`,
    /// its own inverse, so either bucket leads to the other.
    #[inline]
    fn other(&self, b: usize, fp: u32) -> usize {
        let hf = ((u64::from(fp.wrapping_mul(0x9E37_79B1)) * self.count) >> 32) as usize;
        if hf >= b {
            hf - b
        } else {
            hf + self.count as usize - b
        }
    }

    /// Slots of bucket `b` whose fingerprint is `fp`, as a bit mask (branch-free, so the eight
    /// compares run side by side).
    #[inline]
    fn matches(&self, b: usize, fp: u32) -> u32 {
        let mut m = 0;
        for (s, &f) in self.buckets[b].fps.iter().enumerate() {
            m |= u32::from(f == fp) << s;
        }
        m
    }

    /// Empty slots of bucket `b`, as a bit mask.
    #[inline]
    fn empties(&self, b: usize) -> u32 {
        self.matches(b, 0)
    }

    /// The slot among `candidates` of bucket `b` whose frame holds `tag`.
    #[inline]
    fn verify(
        &self,
        b: usize,
        mut candidates: u32,
        tag: u64,
        r: &(impl Resolve + ?Sized),
    ) -> Option<usize> {
        while candidates != 0 {
            let s = candidates.trailing_zeros() as usize;
            if r.tag_at(Loc(self.buckets[b].locs[s])) == tag {
                return Some(s);
            }
            candidates &= candidates - 1;
        }
        None
    }

    /// (bucket, slot) of the entry for `h`'s tag, checked against the frame it points to.
    #[inline]
    fn find(&self, h: &Hashed, r: &(impl Resolve + ?Sized)) -> Option<(usize, usize)> {
        if let Some(s) = self.verify(h.b1, self.matches(h.b1, h.fp), h.tag, r) {
            return Some((h.b1, s));
        }
        if h.b2 == h.b1 {
            return None;
        }
        self.verify(h.b2, self.matches(h.b2, h.fp), h.tag, r)
            .map(|s| (h.b2, s))
    }

    fn free_slot(&self, b: usize) -> Option<usize> {
        let e = self.empties(b);
        (e != 0).then(|| e.trailing_zeros() as usize)
    }

    /// Where a new entry for (b1, b2) can go: a free slot, or a slot freed by moving one entry
    /// to its other bucket.
    fn room(&self, b1: usize, b2: usize) -> Option<Room> {
        // The emptier bucket (fewer entries: more empty slots), the first one on a tie.
        let (e1, e2) = (self.empties(b1), self.empties(b2));
        let (b, e) = if e2.count_ones() > e1.count_ones() {
            (b2, e2)
        } else {
            (b1, e1)
        };
        if e != 0 {
            return Some(Room {
                slot: (b, e.trailing_zeros() as usize),
                moved_to: None,
            });
        }
        for b in [b1, b2] {
            for (s, &fp) in self.buckets[b].fps.iter().enumerate() {
                let alt = self.other(b, fp);
                if alt == b1 || alt == b2 {
                    continue;
                }
                if let Some(t) = self.free_slot(alt) {
                    return Some(Room {
                        slot: (b, s),
                        moved_to: Some((alt, t)),
                    });
                }
            }
        }
        None
    }

    /// Starts loading the buckets of `tag` into the cache (a hint: no state changes). The
    /// fast path calls it for queued events ahead of executing them.
    #[inline]
    pub fn prefetch(&self, tag: u64) {
        let h = self.hash(tag);
        prefetch_line(&self.buckets[h.b1]);
        prefetch_line(&self.buckets[h.b2]);
    }

    /// Calls `f` with the location of every entry whose fingerprint matches `tag`'s, without
    /// checking the frames (for prefetching the frame a lookup is about to read).
    #[inline]
    pub fn candidates(&self, tag: u64, mut f: impl FnMut(Loc)) {
        let h = self.hash(tag);
        for b in [h.b1, h.b2] {
            let mut m = self.matches(b, h.fp);
            while m != 0 {
                f(Loc(self.buckets[b].locs[m.trailing_zeros() as usize]));
                m &= m - 1;
            }
        }
    }

    /// Whether `set(tag, ..)` would succeed (the tag is present or there is room for it).
    pub fn has_room(&self, tag: u64, r: &(impl Resolve + ?Sized)) -> bool {
        let h = self.hash(tag);
        self.find(&h, r).is_some() || self.has_room_for_new(&h)
    }

    /// Whether `insert_new(h, ..)` would succeed, for a tag the caller knows is absent.
    #[inline]
    pub fn has_room_for_new(&self, h: &Hashed) -> bool {
        self.room(h.b1, h.b2).is_some()
    }

    /// Location of the block with tag `tag`.
    #[inline]
    pub fn get(&self, tag: u64, r: &(impl Resolve + ?Sized)) -> Option<Loc> {
        self.get_hashed(&self.hash(tag), r)
    }

    /// `get`, and where the entry sits (`bucket * slots + slot`): a hint for `set_at`.
    #[inline]
    pub fn get_with_pos(&self, tag: u64, r: &(impl Resolve + ?Sized)) -> Option<(Loc, u32)> {
        let (b, s) = self.find(&self.hash(tag), r)?;
        let pos = u32::try_from(b * SLOTS + s).unwrap_or(NO_POS);
        Some((Loc(self.buckets[b].locs[s]), pos))
    }

    /// Repoints the entry at hint `pos` from `old` to `new`, if it is still there: no other
    /// entry points at `old` while its block holds that frame, so a matching location is the
    /// entry itself. False (nothing changed) when the hint is stale (the entry moved to its
    /// other bucket since) or `NO_POS`; the caller then uses `set`.
    #[inline]
    pub fn set_at(&mut self, pos: u32, old: Loc, new: Loc) -> bool {
        let (b, s) = (pos as usize / SLOTS, pos as usize % SLOTS);
        match self.buckets.get_mut(b) {
            Some(bucket) if bucket.fps[s] != 0 && bucket.locs[s] == old.0 => {
                bucket.locs[s] = new.0;
                true
            }
            _ => false,
        }
    }

    /// `get` with the hash computed already.
    #[inline]
    pub fn get_hashed(&self, h: &Hashed, r: &(impl Resolve + ?Sized)) -> Option<Loc> {
        self.find(h, r).map(|(b, s)| Loc(self.buckets[b].locs[s]))
    }

    /// Inserts or updates. A new entry is looked up through the frame it points to, so the
    /// caller records `tag` in that frame before the next lookup.
    pub fn set(
        &mut self,
        tag: u64,
        loc: Loc,
        r: &(impl Resolve + ?Sized),
    ) -> Result<(), DirectoryFull> {
        let h = self.hash(tag);
        if let Some((b, s)) = self.find(&h, r) {
            self.buckets[b].locs[s] = loc.0;
            return Ok(());
        }
        self.insert_new(&h, loc)
    }

    /// Inserts an entry for a tag the caller knows is absent (it just looked), without looking
    /// again.
    pub fn insert_new(&mut self, h: &Hashed, loc: Loc) -> Result<(), DirectoryFull> {
        let room = self.room(h.b1, h.b2).ok_or(DirectoryFull::Conflict)?;
        let (b, s) = room.slot;
        if let Some((alt, t)) = room.moved_to {
            self.buckets[alt].fps[t] = self.buckets[b].fps[s];
            self.buckets[alt].locs[t] = self.buckets[b].locs[s];
        }
        self.buckets[b].fps[s] = h.fp;
        self.buckets[b].locs[s] = loc.0;
        self.len += 1;
        Ok(())
    }

    /// Removes the entry; returns whether it was there.
    pub fn remove(&mut self, tag: u64, r: &(impl Resolve + ?Sized)) -> bool {
        let Some((b, s)) = self.find(&self.hash(tag), r) else {
            return false;
        };
        self.buckets[b].fps[s] = 0;
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Frames as a test sees them: frame i holds `tags[i]`.
    struct Frames(Vec<u64>);

    impl Resolve for Frames {
        fn tag_at(&self, loc: Loc) -> u64 {
            self.0.get(loc.frame() as usize).copied().unwrap_or(0)
        }
    }

    proptest! {
        #[test]
        fn matches_a_hashmap_model(ops in proptest::collection::vec((0u8..3, 1u64..96), 1..400)) {
            // Tag t lives in frame t (the frame table records it), at most 64 at a time.
            let mut d = Directory::with_capacity(64);
            let mut frames = Frames(vec![0; 96]);
            let mut model: HashMap<u64, ()> = HashMap::new();
            for (op, tag) in ops {
                let loc = Loc::new(TierId(1), tag as u32);
                match op {
                    0 if model.len() < 64 || model.contains_key(&tag) => {
                        let room = d.has_room(tag, &frames);
                        match d.set(tag, loc, &frames) {
                            Ok(()) => {
                                prop_assert!(room);
                                frames.0[tag as usize] = tag;
                                model.insert(tag, ());
                            }
                            Err(DirectoryFull::Conflict) => prop_assert!(!room),
                        }
                    }
                    1 => {
                        let removed = d.remove(tag, &frames);
                        prop_assert_eq!(removed, model.remove(&tag).is_some());
                        frames.0[tag as usize] = 0;
                    }
                    _ => {}
                }
                prop_assert_eq!(d.len(), model.len());
                for &t in model.keys() {
                    prop_assert_eq!(d.get(t, &frames), Some(Loc::new(TierId(1), t as u32)));
                }
                prop_assert_eq!(d.get(tag, &frames).is_some(), model.contains_key(&tag));
            }
        }
    }

    #[test]
    fn a_position_hint_repoints_its_entry_or_refuses_when_stale() {
        let mut d = Directory::with_capacity(64);
        let mut frames = Frames(vec![0; 96]);
        for t in 1..40u64 {
            d.set(t, Loc::new(TierId(1), t as u32), &frames).unwrap();
            frames.0[t as usize] = t;
        }
        let (loc, pos) = d.get_with_pos(7, &frames).unwrap();
        assert_eq!(loc, Loc::new(TierId(1), 7));
        let new = Loc::new(TierId(0), 50);
        assert!(
            !d.set_at(pos, Loc::new(TierId(1), 8), new),
            "the slot points elsewhere: stale"
        );
        assert!(!d.set_at(NO_POS, loc, new));
        assert!(d.set_at(pos, loc, new));
        frames.0[50] = 7;
        frames.0[7] = 0;
        assert_eq!(d.get(7, &frames), Some(new));
        assert_eq!(d.get(8, &frames), Some(Loc::new(TierId(1), 8)));
        assert!(d.remove(7, &frames));
        assert!(!d.set_at(pos, new, loc), "a removed entry's slot is empty");
        assert_eq!(d.len(), 38);
    }

    #[test]
    fn a_fingerprint_collision_is_never_a_hit() {
        // Two tags with the same fingerprint and the same buckets: a one-bucket directory
        // makes every tag share its buckets; search random tags (keys are hashes) for a
        // fingerprint collision (a birthday search: about 2^16 tags).
        let d = Directory::with_buckets(1);
        let mut seen: HashMap<u32, u64> = HashMap::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let (a, b) = (0..1u32 << 24)
            .find_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let fp = d.hash(x).fp;
                seen.insert(fp, x).map(|other| (other, x))
            })
            .unwrap();
        assert_eq!((d.hash(a).fp, d.hash(a).b1), (d.hash(b).fp, d.hash(b).b1));
        let mut d = d;
        let mut frames = Frames(vec![0; 4]);
        d.set(a, Loc::new(TierId(0), 1), &frames).unwrap();
        frames.0[1] = a;
        assert_eq!(
            d.get(b, &frames),
            None,
            "same fingerprint, other tag: a miss"
        );
        assert!(!d.remove(b, &frames));
        d.set(b, Loc::new(TierId(0), 2), &frames).unwrap();
        frames.0[2] = b;
        assert_eq!(d.get(a, &frames), Some(Loc::new(TierId(0), 1)));
        assert_eq!(d.get(b, &frames), Some(Loc::new(TierId(0), 2)));
        assert!(d.remove(a, &frames));
        frames.0[1] = 0;
        assert_eq!(d.get(b, &frames), Some(Loc::new(TierId(0), 2)));
    }

    #[test]
    fn the_other_bucket_is_an_involution() {
        for blocks in [1, 6, 7, 100, 12_345, 1 << 20] {
            let d = Directory::with_capacity(blocks);
            for t in 1..2_000u64 {
                let h = d.hash(t.wrapping_mul(0x2545_F491_4F6C_DD1D));
                let (b, fp) = (h.b1, h.fp);
                let o = d.other(b, fp);
                assert_eq!(o, h.b2);
                assert!(o < d.count as usize);
                assert_eq!(d.other(o, fp), b, "blocks {blocks}");
            }
        }
    }

    /// At capacity under steady insert/remove churn (a full cache evicting one block per
    /// insert), no insert is ever refused.
    #[test]
    fn full_at_capacity_under_churn_without_conflicts() {
        let blocks = 60_000;
        let mut d = Directory::with_capacity(blocks);
        let mut frames = Frames(vec![0; blocks]);
        // Frame i holds tag ring[i]; each step evicts a random frame and refills it.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next_tag = 1u64;
        for i in 0..blocks {
            d.set(next_tag, Loc::new(TierId(0), i as u32), &frames)
                .unwrap();
            frames.0[i] = next_tag;
            next_tag += 1;
        }
        assert_eq!(d.len(), blocks);
        for _ in 0..600_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % blocks as u64) as usize;
            assert!(d.remove(frames.0[i], &frames));
            frames.0[i] = 0;
            d.set(next_tag, Loc::new(TierId(0), i as u32), &frames)
                .expect("no conflict at design load");
            frames.0[i] = next_tag;
            next_tag += 1;
        }
        assert_eq!(d.len(), blocks);
        let per_block = d.bytes() as f64 / blocks as f64;
        assert!(per_block <= 11.0, "{per_block} bytes per block");
    }
}
