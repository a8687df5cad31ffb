//! One fast-path shard: the policy executor.
//!
//! A shard owns a slice of every tier's frames and the directory entries of the keys that hash
//! to it, so every entry has exactly one writer. Events come in as method calls (ACCESS,
//! INSERT and its fill commit, COMPLETION, INTENT, TICK); each does bounded work over fixed
//! tables, never allocates, locks or makes a system call, and never waits: when something is
//! not possible right now (no free frame until a demotion lands, a full ring) it says so and
//! the caller retries after progress. Moves go out as descriptors on per-engine rings.
//!
//! Degradation order (DESIGN.md): residency correctness first; demand before eviction before
//! prefetch; prefetches are the first thing dropped when rings or frames run short.

use crate::counters::Counters;
use crate::directory::{Directory, Loc, NO_POS};
use crate::frames::{
    FLAG_FILLING, FLAG_FROM_HISTORY, FLAG_MOVING, FLAG_PREFETCHED, FLAG_REFERENCED, ListId, NIL,
    TierFrames,
};
use crate::history::History;
use crate::moves::{Move, MoveTable};
use crate::prefetch::SequenceTable;
use crate::sketch::Sketch;
use mcos_core::limits::{
    CLASSES, HISTORY_QUARTERS_MAX, MAX_TIERS, PREFETCH_FEEDBACK_OUTCOMES, PREFETCH_PROBE_EVERY,
    VICTIM_SCAN_MAX,
};
use mcos_core::{
    AGE_BITS, AGE_EPOCHS_PER_TIER, AdmitFilter, BlockKey, ClassPolicy, InsertPosition, Intent,
    IntentAction, MoveCompletion, MoveDescriptor, MoveOp, MoveStatus, PolicyReader, PolicyTable,
    PrefetchMode, Producer, Replacement, SampleKind, TelemetrySample, TierId, Urgency,
};

/// How a shard is laid out; fixed at start-up.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// Shard id (for telemetry).
    pub shard: u8,
    /// Per tier, fastest first: (first global frame id, frames) owned by this shard.
    pub tiers: Vec<(u32, u32)>,
    /// Payload bytes per block (descriptor length).
    pub block_bytes: u32,
    /// `routes[src][dst]`: index of the engine ring that moves blocks from tier src to dst.
    pub routes: [[u8; MAX_TIERS]; MAX_TIERS],
    /// Per tier, free frames kept ready by demoting early on TICK and after inserts
    /// (0: evict only on demand, exact capacity semantics for simulation).
    pub free_watermark: Vec<u32>,
    /// Sample keys whose hash has this many low zero bits into telemetry (0: every event).
    pub telemetry_shift: u8,
}

/// Result of an ACCESS.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Resident and readable now at `frame` (global id) of `tier`.
    Hit {
        /// Tier holding the block.
        tier: TierId,
        /// Global frame id.
        frame: u32,
    },
    /// Not resident.
    Miss,
    /// The block is moving into a faster tier; wait for move `move_id` and `peek` again.
    Wait {
        /// Move to wait for.
        move_id: u32,
        /// Tier the block was found in (the hit is counted there).
        from: TierId,
    },
}

/// Result of an INSERT.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Insert {
    /// Write the block into `frame` of `tier`, then call `commit_fill`.
    Fill {
        /// Tier chosen.
        tier: TierId,
        /// Global frame id reserved.
        frame: u32,
    },
    /// Already resident (or being filled by someone else).
    Present,
    /// Not admitted.
    Rejected(RejectReason),
    /// Room is being made (a demotion is in flight or a ring is full): retry after progress.
    Retry,
}

/// Why a block was not admitted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The admission sketch has not seen it often enough for its class.
    Admission,
    /// Its class is at its quota.
    Quota,
    /// Every candidate frame is pinned or moving.
    NoRoom,
    /// The directory has no room in either of the key's buckets.
    Directory,
}

/// Why an intent could not be applied.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IntentError {
    /// The block is not resident (pins and classes apply to resident blocks).
    NotResident,
    /// The block has no pin to undo.
    NotPinned,
    /// 255 hard pins already.
    TooManyPins,
}

/// Why `restore` did not record a block.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// The frame is not in this shard's slice of the tier (the shard count changed).
    NotOwned,
    /// The frame already holds a block.
    FrameInUse,
    /// The key is already recorded (an older copy of the same immutable block).
    Duplicate,
    /// The directory has no room in either of the key's buckets.
    DirectoryFull,
}

enum Acquire {
    Frame(u32),
    Wait,
    NoRoom,
}

/// The fast-path shard.
pub struct Shard {
    cfg: ShardConfig,
    policy: PolicyReader,
    builtin: Box<PolicyTable>,
    tiers: Vec<TierFrames>,
    directory: Directory,
    sketch: Sketch,
    sequences: SequenceTable,
    moves: MoveTable,
    engines: Vec<Producer<MoveDescriptor>>,
    telemetry: Option<Producer<TelemetrySample>>,
    /// Resident blocks per (tier, class), for quotas.
    class_count: Box<[[u32; CLASSES]]>,
    protected_target: [u32; MAX_TIERS],
    /// Highest eviction priority the table in force can give a frame (16 with any class TTL):
    /// a victim scan can stop at the first candidate that has it.
    victim_priority_cap: u8,
    /// Tag of the last ACCESS that found no directory entry (0: none since the last INSERT).
    last_miss: u64,
    /// Per tier, frames of the admission window (0: none).
    window_target: [u32; MAX_TIERS],
    /// Recently evicted or refused tags (admission history).
    history: History,
    /// Replacement order of the table in force.
    replacement: Replacement,
    /// Per tier, the CLOCK hand: local index of the frame the next victim scan starts at.
    clock_hand: [u32; MAX_TIERS],
    /// Per tier, under `Replacement::Aged`: the age epoch (`AGE_BITS` bits), the stamp writes
    /// since it last advanced, and the candidate carried from the last victim scan (NIL: none).
    age_epoch: [u8; MAX_TIERS],
    age_writes: [u32; MAX_TIERS],
    age_carry: [u32; MAX_TIERS],
    /// Telemetry kinds the table asks for (bit per `SampleKind`).
    telemetry_kinds: u8,
    /// Demotions in flight out of each tier: frames that will be free when they land.
    demoting: [u32; MAX_TIERS],
    /// Prefetch feedback (this shard only): outcomes of the current window, used and unused.
    prefetch_used_recent: u16,
    prefetch_unused_recent: u16,
    /// Verdict of the last window: prefetches were accurate enough to evict for.
    prefetch_may_evict: bool,
    /// Candidates since the last probe while prefetches are inaccurate.
    prefetch_probe: u8,
    counters: Counters,
    tick: u64,
    install_tick: u64,
    fallback: bool,
    /// Bit per tier: a home tier (persistent) whose blocks are read in place, never moved out,
    /// so their durable copy stays where it was acknowledged.
    home_tiers: u8,
    /// Removal log (KV events): (tag, tier) of every block that left the shard since the
    /// caller last drained it. Allocated once by `enable_removal_log` (empty capacity: off);
    /// never grows: past its capacity removals are only counted in `removals_lost`.
    removed: Vec<(u64, u8)>,
    /// Removals the full log could not hold since the last drain (the caller resyncs).
    removals_lost: u64,
}

impl Shard {
    /// Builds a shard: every table is allocated here, never later.
    pub fn new(
        cfg: ShardConfig,
        policy: PolicyReader,
        engines: Vec<Producer<MoveDescriptor>>,
        telemetry: Option<Producer<TelemetrySample>>,
    ) -> Shard {
        let tiers: Vec<TierFrames> = cfg
            .tiers
            .iter()
            .map(|&(base, count)| TierFrames::new(base, count))
            .collect();
        let blocks: u32 = cfg.tiers.iter().map(|t| t.1).sum();
        let fastest = cfg.tiers.first().map_or(0, |t| t.1 as usize);
        let builtin = Box::new(PolicyTable::builtin(tiers.len()));
        let mut s = Shard {
            directory: Directory::with_capacity(blocks as usize),
            sketch: Sketch::sized_for(0, fastest),
            history: History::new(fastest * usize::from(HISTORY_QUARTERS_MAX) / 4),
            sequences: SequenceTable::new(),
            moves: MoveTable::new(),
            class_count: vec![[0; CLASSES]; tiers.len()].into_boxed_slice(),
            protected_target: [0; MAX_TIERS],
            victim_priority_cap: 0,
            last_miss: 0,
            window_target: [0; MAX_TIERS],
            telemetry_kinds: mcos_core::TELEMETRY_ALL,
            replacement: Replacement::Lru,
            clock_hand: [0; MAX_TIERS],
            age_epoch: [0; MAX_TIERS],
            age_writes: [0; MAX_TIERS],
            age_carry: [NIL; MAX_TIERS],
            demoting: [0; MAX_TIERS],
            prefetch_used_recent: 0,
            prefetch_unused_recent: 0,
            prefetch_may_evict: true,
            prefetch_probe: 0,
            counters: Counters::default(),
            tick: 0,
            install_tick: 0,
            fallback: false,
            home_tiers: 0,
            removed: Vec::new(),
            removals_lost: 0,
            tiers,
            cfg,
            policy,
            builtin,
            engines,
            telemetry,
        };
        s.apply_table_globals();
        s
    }

    /// Turns on the removal log (KV events) with room for `depth` removals between drains.
    /// Allocates here, at start-up, never later.
    pub fn enable_removal_log(&mut self, depth: usize) {
        self.removed = Vec::with_capacity(depth);
    }

    /// Hands every removal logged since the last drain to `f` as (tag, tier) and returns how
    /// many were lost because the log was full (the caller then resyncs from the directory).
    pub fn drain_removals(&mut self, mut f: impl FnMut(u64, TierId)) -> u64 {
        for &(tag, t) in &self.removed {
            f(tag, TierId(t));
        }
        self.removed.clear();
        std::mem::take(&mut self.removals_lost)
    }

    /// Event counters (single writer: this shard).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// (used, capacity) frames of `tier` in this shard.
    pub fn tier_usage(&self, tier: TierId) -> (u32, u32) {
        self.tiers
            .get(tier.index())
            .map(|t| (t.used(), t.capacity()))
            .unwrap_or((0, 0))
    }

    /// Bytes of directory state.
    pub fn directory_bytes(&self) -> usize {
        self.directory.bytes()
    }

    /// Epoch of the policy table in force (0 while on the built-in fallback).
    pub fn policy_epoch(&self) -> u64 {
        if self.fallback {
            0
        } else {
            self.policy.epoch()
        }
    }

    /// A copy of the table in force (the built-in one while on the fallback). For tools such
    /// as `mcos policy show`; it allocates, so never on the event path.
    pub fn policy_table(&self) -> PolicyTable {
        if self.fallback {
            (*self.builtin).clone()
        } else {
            self.policy.with_table(|t| t.clone())
        }
    }

    /// Whether the shard fell back to the built-in table because the installed one expired.
    pub fn on_fallback(&self) -> bool {
        self.fallback
    }

    /// Moves in flight.
    pub fn moves_in_flight(&self) -> usize {
        self.moves.in_flight()
    }

    /// Whether move `move_id` is still in flight.
    pub fn move_pending(&self, move_id: u32) -> bool {
        self.moves.is_pending(move_id)
    }

    /// Starts loading the directory entries of `key` into the cache: a hint for an event that
    /// is queued but not executed yet (no state changes). A caller that holds a batch of events
    /// issues their first reads ahead, as a hardware pipeline keeps several off-chip reads in
    /// flight.
    #[inline]
    pub fn prefetch(&self, key: BlockKey) {
        self.directory.prefetch(key.tag());
    }

    /// Starts loading the frame entry of `key`'s block (and no more: nothing is checked or
    /// changed). Its directory buckets should have been prefetched a few events earlier, so
    /// that they are in cache by now; the caller runs this stage for events a little closer.
    #[inline]
    pub fn prefetch_block(&self, key: BlockKey) {
        // The access will count the key in the sketch (four counters in four rows).
        self.sketch.prefetch(key.tag());
        self.directory.candidates(key.tag(), |loc| {
            if let Some(t) = self.tiers.get(loc.tier().index())
                && let Some(i) = t.local(loc.frame())
            {
                t.prefetch(i);
            }
        });
    }

    /// Current location of a visible resident block, without counting an access.
    pub fn peek(&self, key: BlockKey) -> Option<(TierId, u32)> {
        let loc = self.directory.get(key.tag(), &self.tiers[..])?;
        let f = self.tiers[loc.tier().index()].local(loc.frame())?;
        let frame = self.tiers[loc.tier().index()].get(f);
        if frame.flags & FLAG_FILLING != 0 {
            return None;
        }
        Some((loc.tier(), loc.frame()))
    }

    fn class_policy(&self, class: u8) -> ClassPolicy {
        if self.fallback {
            *self.builtin.class(class)
        } else {
            self.policy.class(class)
        }
    }

    /// Start of every event: pick up a newer table, or fall back when the current one expired.
    fn begin_event(&mut self) {
        if self.policy.refresh() {
            self.install_tick = self.tick;
            self.fallback = false;
            self.counters.policy_installs += 1;
            self.apply_table_globals();
        } else if !self.fallback {
            let ttl = self.policy.with_table(|t| t.ttl_ticks);
            if ttl > 0 && self.tick - self.install_tick > u64::from(ttl) {
                self.fallback = true;
                self.counters.policy_fallbacks += 1;
                self.apply_table_globals();
            }
        }
    }

    fn apply_table_globals(&mut self) {
        let globals = |t: &PolicyTable| {
            let cap = t
                .classes
                .iter()
                .map(|c| {
                    if c.ttl_ticks > 0 {
                        16
                    } else {
                        c.evict_priority
                    }
                })
                .max()
                .unwrap_or(0);
            (
                t.sketch_window,
                t.protected_share,
                t.window_share,
                t.history_quarters,
                t.telemetry_kinds,
                cap,
                t.replacement,
            )
        };
        let (window, shares, windows, history, kinds, cap, replacement) = if self.fallback {
            globals(&self.builtin)
        } else {
            self.policy.with_table(globals)
        };
        self.victim_priority_cap = cap;
        // Switching order keeps every block where it is: list LRU resumes from the lists
        // (which CLOCK keeps linked, unordered by hits), CLOCK from the hand and whatever
        // reference bits the frames carry.
        self.replacement = replacement;
        self.sketch.set_window(window);
        self.telemetry_kinds = kinds;
        for (i, t) in self.tiers.iter().enumerate() {
            self.protected_target[i] =
                (u64::from(t.capacity()) * u64::from(shares[i]) / 256) as u32;
            self.window_target[i] = (u64::from(t.capacity()) * u64::from(windows[i]) / 256) as u32;
        }
        let fastest = self.tiers.first().map_or(0, |t| u64::from(t.capacity()));
        self.history
            .set_len((fastest * u64::from(history) / 4).min(u64::from(u32::MAX)) as u32);
    }

    fn sample(&mut self, kind: SampleKind, key_tag: u64, class: u8, tier: u8, value: u64) {
        if self.telemetry.is_none() || self.telemetry_kinds & (1 << kind as u8) == 0 {
            return;
        }
        // Spatial sampling on the key (SHARDS): a sampled key is sampled on every event, and
        // the brain's own sample nests inside this one (same hash).
        if !mcos_core::telemetry::is_sampled(key_tag, self.cfg.telemetry_shift) {
            return;
        }
        let s = TelemetrySample {
            key_tag,
            tick: self.tick,
            kind,
            class,
            tier,
            shard: self.cfg.shard,
            epoch: self.policy_epoch() as u32,
            value,
        };
        if self
            .telemetry
            .as_mut()
            .is_some_and(|ring| ring.push(s).is_err())
        {
            self.counters.telemetry_dropped += 1;
        }
    }

    /// ACCESS: a lookup of `key`. `hint` is (sequence, position) when the caller knows it.
    pub fn access(&mut self, key: BlockKey, hint: Option<(u32, u32)>) -> Access {
        self.begin_event();
        self.counters.accesses += 1;
        self.sketch.add(key, 1);
        let tag = key.tag();
        if let Some((seq, pos)) = hint {
            self.sequences.record(seq, pos, tag);
        }
        let Some((loc, dir_pos)) = self.directory.get_with_pos(tag, &self.tiers[..]) else {
            // Absent from the directory (a miss on a block being filled is not).
            self.last_miss = tag;
            return self.miss(tag);
        };
        let t = loc.tier().index();
        let Some(i) = self.tiers[t].local(loc.frame()) else {
            return self.miss(tag);
        };
        let frame = *self.tiers[t].get(i);
        if frame.flags & FLAG_FILLING != 0 {
            return self.miss(tag);
        }
        if frame.flags & FLAG_MOVING != 0 {
            let slot = frame.move_slot;
            let move_id = self.moves.id(slot);
            if let Some(m) = self.moves.get_mut(slot)
                && m.op != MoveOp::Demote
            {
                // Moving up: merge this request onto the move under way.
                m.waiters = m.waiters.saturating_add(1);
                self.counters.merged_misses += 1;
                self.sample(SampleKind::Hit, tag, frame.class, t as u8, 0);
                return Access::Wait {
                    move_id,
                    from: loc.tier(),
                };
            }
            // Moving down: still readable where it is until the move lands.
        }
        self.counters.hits[t] += 1;
        self.sample(SampleKind::Hit, tag, frame.class, t as u8, 0);
        let cp = self.class_policy(frame.class);
        let tick = self.tick as u32;
        {
            let f = self.tiers[t].get_mut(i);
            f.last_tick = tick;
            if f.flags & FLAG_PREFETCHED != 0 {
                f.flags &= !FLAG_PREFETCHED;
                self.counters.prefetch_useful += 1;
                self.prefetch_outcome(true);
            }
        }
        if frame.flags & FLAG_MOVING == 0 {
            self.promote_in_list(t, i);
        }
        if cp.prefetch_mode == PrefetchMode::Sequential
            && let Some((seq, pos)) = hint
        {
            self.prefetch_after(seq, pos, cp.prefetch_degree);
        }
        if t > cp.preferred_tier.index() && frame.flags & FLAG_MOVING == 0 && !self.is_home(t) {
            let pt = cp.preferred_tier.index();
            if self.filter_refuses(&cp, tag, pt) {
                // A promotion is an admission into the preferred tier: its filter applies.
                // Read in place this time; the history remembers the block for the next.
                self.history.insert(tag);
            } else if let Some(move_id) = self.start_promotion(t, i, pt, MoveOp::Promote, dir_pos) {
                return Access::Wait {
                    move_id,
                    from: loc.tier(),
                };
            }
        }
        Access::Hit {
            tier: loc.tier(),
            frame: loc.frame(),
        }
    }

    fn miss(&mut self, tag: u64) -> Access {
        self.counters.misses += 1;
        self.sample(SampleKind::Miss, tag, 0, 7, 0);
        Access::Miss
    }

    /// A hit updates recency: probation hits graduate to protected when the table keeps a
    /// protected segment; otherwise the block goes to the MRU end of its list.
    fn promote_in_list(&mut self, t: usize, i: u32) {
        if self.replacement == Replacement::Aged {
            // Aged: a hit stamps the frame with the epoch; nothing moves.
            self.stamp_age(t, i, false);
            return;
        }
        if self.replacement == Replacement::Clock {
            // CLOCK: a hit sets the frame's reference bit; nothing moves.
            self.tiers[t].get_mut(i).flags |= FLAG_REFERENCED;
            return;
        }
        let list = self.tiers[t].get(i).list;
        if list == ListId::Probation && self.protected_target[t] > 0 {
            self.tiers[t].touch(ListId::Protected, i);
            if self.tiers[t].len(ListId::Protected) > self.protected_target[t] {
                let j = self.tiers[t].tail(ListId::Protected);
                if j != NIL {
                    self.tiers[t].touch(ListId::Probation, j);
                }
            }
        } else if list == ListId::Probation || list == ListId::Protected || list == ListId::Window {
            self.tiers[t].touch(list, i);
        }
    }

    fn prefetch_after(&mut self, seq: u32, pos: u32, degree: u8) {
        for d in 1..=u32::from(degree.min(mcos_core::limits::PREFETCH_DEGREE_MAX)) {
            let Some(tag) = self.sequences.lookup(seq, pos.wrapping_add(d)) else {
                continue;
            };
            let Some((loc, dir_pos)) = self.directory.get_with_pos(tag, &self.tiers[..]) else {
                continue;
            };
            let t = loc.tier().index();
            let Some(i) = self.tiers[t].local(loc.frame()) else {
                continue;
            };
            let f = *self.tiers[t].get(i);
            if f.flags & (FLAG_MOVING | FLAG_FILLING) != 0 {
                continue;
            }
            let pt = self.class_policy(f.class).preferred_tier.index();
            if t > pt && !self.is_home(t) {
                // Prefetch takes only free frames. While prefetches prove accurate it may take
                // the tier's reserve (refilled by demoting its LRU block: evicting for a guess
                // that is usually right); otherwise only frames beyond the reserve, so it
                // evicts nothing, but for a probe now and then that keeps measuring.
                let reserve = if self.prefetch_may_evict || self.probe_due() {
                    0
                } else {
                    self.cfg.free_watermark.get(pt).copied().unwrap_or(0)
                };
                if self.tiers[pt].len(ListId::Free) <= reserve {
                    self.counters.prefetch_dropped += 1;
                    continue;
                }
                if self
                    .start_promotion(t, i, pt, MoveOp::Prefetch, dir_pos)
                    .is_some()
                {
                    self.counters.prefetch_issued += 1;
                } else {
                    self.counters.prefetch_dropped += 1;
                }
            }
        }
    }

    /// Whether this inaccurate-mode prefetch candidate is a probe (one in
    /// `PREFETCH_PROBE_EVERY`).
    fn probe_due(&mut self) -> bool {
        self.prefetch_probe += 1;
        if self.prefetch_probe >= PREFETCH_PROBE_EVERY {
            self.prefetch_probe = 0;
            return true;
        }
        false
    }

    /// Counts one prefetch outcome; a full window sets the verdict: accurate when at least
    /// half of its prefetched blocks were used before they left.
    fn prefetch_outcome(&mut self, used: bool) {
        if used {
            self.prefetch_used_recent += 1;
        } else {
            self.prefetch_unused_recent += 1;
            self.counters.prefetch_unused += 1;
        }
        let n = self.prefetch_used_recent + self.prefetch_unused_recent;
        if n >= PREFETCH_FEEDBACK_OUTCOMES {
            self.prefetch_may_evict = 2 * self.prefetch_used_recent >= n;
            self.prefetch_used_recent = 0;
            self.prefetch_unused_recent = 0;
        }
    }

    /// Starts moving the block in local frame `i` of tier `t` up to tier `to`. None when no
    /// frame, slot or ring room is available right now (the block stays readable where it is).
    /// `dir_pos` is where its directory entry sits (from the lookup that found it).
    fn start_promotion(
        &mut self,
        t: usize,
        i: u32,
        to: usize,
        op: MoveOp,
        dir_pos: u32,
    ) -> Option<u32> {
        let urgency = if op == MoveOp::Prefetch {
            Urgency::Prefetch
        } else {
            Urgency::Demand
        };
        // Check that the move can be emitted before taking a frame for it: taking one may
        // drop a victim, which a move that then cannot start would have evicted for nothing.
        if !self.can_emit(t, to) {
            return None;
        }
        // Shield the block from the eviction cascade that makes room for it.
        self.tiers[t].get_mut(i).flags |= FLAG_MOVING;
        let acquired = self.acquire_demand(to);
        self.tiers[t].get_mut(i).flags &= !FLAG_MOVING;
        let dst = match acquired {
            Acquire::Frame(d) => d,
            // No frame ready (a demotion may now be making one): read in place this time.
            Acquire::Wait | Acquire::NoRoom => return None,
        };
        let src = *self.tiers[t].get(i);
        let m = Move {
            tag: src.tag,
            op,
            src_tier: t as u8,
            src: i,
            dst_tier: to as u8,
            dst,
            waiters: 0,
            dir_pos,
        };
        match self.emit(m, src.class, urgency) {
            Some((slot, move_id)) => {
                self.tiers[t].unlink(i);
                let s = self.tiers[t].get_mut(i);
                s.flags |= FLAG_MOVING;
                s.move_slot = slot;
                let d = self.tiers[to].get_mut(dst);
                d.tag = src.tag;
                d.flags = FLAG_MOVING | FLAG_FILLING;
                d.move_slot = slot;
                Some(move_id)
            }
            None => {
                self.tiers[to].release(dst);
                None
            }
        }
    }

    /// Whether a move from tier `src` to `dst` could be emitted now: a route, a free move
    /// slot and room in the engine's ring (counted as `emit` counts them when not).
    fn can_emit(&mut self, src: usize, dst: usize) -> bool {
        let engine = usize::from(self.cfg.routes[src][dst]);
        let Some(ring) = self.engines.get_mut(engine) else {
            self.counters.no_route += 1;
            return false;
        };
        if !ring.has_room() {
            self.counters.ring_full += 1;
            return false;
        }
        !self.moves.is_full()
    }

    /// Records the move and pushes its descriptor; None (nothing changed) when the move table
    /// or the engine's ring is full.
    fn emit(&mut self, m: Move, class: u8, urgency: Urgency) -> Option<(u16, u32)> {
        let engine = usize::from(self.cfg.routes[usize::from(m.src_tier)][usize::from(m.dst_tier)]);
        if engine >= self.engines.len() {
            self.counters.no_route += 1;
            return None;
        }
        let (slot, move_id) = self.moves.start(m)?;
        let d = MoveDescriptor {
            key_tag: m.tag,
            move_id,
            src_frame: self.tiers[usize::from(m.src_tier)].global(m.src),
            dst_frame: self.tiers[usize::from(m.dst_tier)].global(m.dst),
            len: self.cfg.block_bytes,
            op: m.op,
            src_tier: m.src_tier,
            dst_tier: m.dst_tier,
            urgency,
            epoch: self.policy_epoch() as u16,
            class,
            engine: engine as u8,
        };
        if self.engines[engine].push(d).is_err() {
            self.moves.finish(move_id);
            self.counters.ring_full += 1;
            return None;
        }
        self.counters.moves_started += 1;
        Some((slot, move_id))
    }

    /// `acquire` for a caller that needs one frame now: when a demotion out of the tier is
    /// already in flight, wait for it rather than evicting another block per retry.
    fn acquire_demand(&mut self, t: usize) -> Acquire {
        if self.tiers[t].len(ListId::Free) == 0 && self.demoting[t] > 0 {
            return Acquire::Wait;
        }
        self.acquire(t, 0)
    }

    /// Finds a frame in tier `t`: a free one, or one freed by evicting a victim. A victim that
    /// belongs further down is demoted (and the caller must wait for the move); one that does
    /// not, or whose lower tier has no room, is dropped at once.
    fn acquire(&mut self, t: usize, depth: usize) -> Acquire {
        if let Some(i) = self.tiers[t].pop_free() {
            return Acquire::Frame(i);
        }
        self.evict_one(t, depth)
    }

    /// The victim half of `acquire`: frees a frame of tier `t` by demoting or dropping a victim.
    fn evict_one(&mut self, t: usize, depth: usize) -> Acquire {
        let Some(v) = self.find_victim(t) else {
            self.counters.victim_scan_exhausted += 1;
            // Frames off every list are filling or in a move: one will be free or evictable
            // soon, so wait rather than have the caller drop a block that fits further down.
            let tier = &self.tiers[t];
            let listed = tier.len(ListId::Free)
                + tier.len(ListId::Probation)
                + tier.len(ListId::Protected)
                + tier.len(ListId::Window);
            return if listed < tier.capacity() {
                Acquire::Wait
            } else {
                Acquire::NoRoom
            };
        };
        let victim = *self.tiers[t].get(v);
        let cp = self.class_policy(victim.class);
        let lower = t + 1;
        let demote =
            lower < self.tiers.len() && lower <= cp.floor_tier.index() && depth + 1 < MAX_TIERS;
        if demote && !self.can_emit(t, lower) {
            // The demotion could not start: taking a lower frame for it could drop a block
            // there for nothing. The victim stays; wait for the engine or a move slot.
            return Acquire::Wait;
        }
        if t == cp.preferred_tier.index() {
            // Leaving its preferred tier (demoted or dropped): remembered as recently seen,
            // the ghost entry a single tier would make.
            self.history.insert(victim.tag);
        }
        if victim.flags & FLAG_PREFETCHED != 0 {
            self.prefetch_outcome(false);
        }
        if demote {
            match self.acquire(lower, depth + 1) {
                Acquire::Frame(g) => {
                    let m = Move {
                        tag: victim.tag,
                        op: MoveOp::Demote,
                        src_tier: t as u8,
                        src: v,
                        dst_tier: lower as u8,
                        dst: g,
                        waiters: 0,
                        // The victim was found on a list, not looked up: no hint.
                        dir_pos: NO_POS,
                    };
                    match self.emit(m, victim.class, Urgency::Evict) {
                        Some((slot, _)) => {
                            self.tiers[t].unlink(v);
                            let s = self.tiers[t].get_mut(v);
                            s.flags |= FLAG_MOVING;
                            s.move_slot = slot;
                            let d = self.tiers[lower].get_mut(g);
                            d.tag = victim.tag;
                            d.flags = FLAG_MOVING | FLAG_FILLING;
                            d.move_slot = slot;
                            self.demoting[t] += 1;
                            self.counters.demotions_started += 1;
                            self.prefetch_next_victim(t);
                        }
                        None => self.tiers[lower].release(g),
                    }
                    return Acquire::Wait;
                }
                Acquire::Wait => return Acquire::Wait,
                Acquire::NoRoom => {}
            }
        }
        // A block dropped from below its preferred tier was remembered when it left that tier;
        // recording it again would crowd the history with blocks from the far past.
        self.drop_block(t, v);
        self.prefetch_next_victim(t);
        // `drop_block` put the frame at the head of the free list; take it for the caller.
        match self.tiers[t].pop_free() {
            Some(i) => Acquire::Frame(i),
            None => Acquire::NoRoom,
        }
    }

    /// After an eviction from tier `t`: the next victim is the new LRU end of probation. Start
    /// loading its directory buckets (its eviction looks it up) and the frame behind it (the
    /// victim after), so evictions do not wait on memory one after another.
    #[inline]
    fn prefetch_next_victim(&self, t: usize) {
        if self.replacement.is_hardware_friendly() {
            let hand = self.clock_hand[t];
            self.tiers[t].prefetch(hand);
            return;
        }
        let tail = self.tiers[t].tail(ListId::Probation);
        if tail != NIL {
            let f = self.tiers[t].get(tail);
            self.directory.prefetch(f.tag);
            self.tiers[t].prefetch(f.prev);
        }
    }

    /// Evicts the block in local frame `i` of tier `t` for good.
    fn drop_block(&mut self, t: usize, i: u32) {
        let f = *self.tiers[t].get(i);
        self.directory.remove(f.tag, &self.tiers[..]);
        self.uncount(t, f.class);
        self.tiers[t].release(i);
        self.counters.evictions += 1;
        self.sample(SampleKind::Evict, f.tag, f.class, t as u8, 0);
        if self.removed.capacity() > 0 {
            if self.removed.len() < self.removed.capacity() {
                self.removed.push((f.tag, t as u8));
            } else {
                self.removals_lost += 1;
            }
        }
    }

    fn uncount(&mut self, t: usize, class: u8) {
        let c = &mut self.class_count[t][usize::from(class)];
        *c = c.saturating_sub(1);
    }

    fn evictable(&self, t: usize, i: u32) -> Option<u8> {
        let f = self.tiers[t].get(i);
        if f.pins > 0 || f.flags & (FLAG_MOVING | FLAG_FILLING) != 0 {
            return None;
        }
        if u64::from(f.soft_pin_until) > self.tick {
            return None;
        }
        let cp = self.class_policy(f.class);
        if cp.pinned {
            return None;
        }
        let idle = (self.tick as u32).wrapping_sub(f.last_tick);
        if cp.ttl_ticks > 0 && idle > cp.ttl_ticks {
            return Some(16);
        }
        Some(cp.evict_priority)
    }

    /// Bounded victim scan from the LRU end: probation first, then protected. Among the first
    /// `VICTIM_SCAN_MAX` candidates the highest eviction priority wins, ties to the LRU-most, so
    /// a scan stops at the first candidate with the highest priority the table can give (for
    /// plain LRU, the first evictable one). Pinned frames met on the way go to the MRU end so
    /// later scans do not trip on them.
    ///
    /// With an admission window (W-TinyLFU) that is full, the window's victim competes with
    /// the main segments' victim: the one the sketch has counted more often stays (the
    /// window's joining probation), ties evict the window's. Without a full window, the
    /// window is scanned only when the main segments have nothing evictable.
    fn find_victim(&mut self, t: usize) -> Option<u32> {
        if self.replacement == Replacement::Clock {
            return self.clock_scan(t);
        }
        if self.replacement == Replacement::Aged {
            return self.aged_scan(t);
        }
        let window = self.window_target[t];
        if window > 0 && self.tiers[t].len(ListId::Window) >= window {
            let candidate = self.scan_list(t, ListId::Window);
            let main = self.scan_main(t);
            return match (candidate, main) {
                (Some(c), Some(v)) => {
                    let fc = self.sketch.estimate_tag(self.tiers[t].get(c).tag);
                    let fv = self.sketch.estimate_tag(self.tiers[t].get(v).tag);
                    if fc > fv {
                        self.tiers[t].touch(ListId::Probation, c);
                        Some(v)
                    } else {
                        Some(c)
                    }
                }
                (c, v) => c.or(v),
            };
        }
        match self.scan_main(t) {
            Some(v) => Some(v),
            None if window > 0 => self.scan_list(t, ListId::Window),
            None => None,
        }
    }

    /// CLOCK's bounded victim scan (`Replacement` documents the rule; `mcos-hw` implements the
    /// same in its cycle model and RTL): at most `VICTIM_SCAN_MAX` frames from the hand, not
    /// past the last frame.
    fn clock_scan(&mut self, t: usize) -> Option<u32> {
        let n = self.tiers[t].capacity();
        if n == 0 {
            return None;
        }
        let start = self.clock_hand[t].min(n - 1);
        let end = (start + VICTIM_SCAN_MAX as u32).min(n);
        let mut forced = None;
        for i in start..end {
            let listed = matches!(
                self.tiers[t].get(i).list,
                ListId::Probation | ListId::Protected | ListId::Window
            );
            if !listed || self.evictable(t, i).is_none() {
                continue;
            }
            let f = self.tiers[t].get_mut(i);
            if f.flags & FLAG_REFERENCED == 0 {
                self.clock_hand[t] = if i + 1 >= n { 0 } else { i + 1 };
                return Some(i);
            }
            f.flags &= !FLAG_REFERENCED;
            forced.get_or_insert(i);
        }
        match forced {
            Some(v) => {
                self.clock_hand[t] = if v + 1 >= n { 0 } else { v + 1 };
                Some(v)
            }
            None => {
                self.clock_hand[t] = if end >= n { 0 } else { end };
                None
            }
        }
    }

    /// Writes frame `i`'s age stamp (the epoch; with `old`, half the age range older) and
    /// counts the write towards the tier's next epoch (`Replacement::Aged` documents the rule;
    /// `mcos-hw` implements the same in its cycle model and RTL).
    fn stamp_age(&mut self, t: usize, i: u32, old: bool) {
        let mask = ((1u32 << AGE_BITS) - 1) as u8;
        let e = self.age_epoch[t];
        self.tiers[t].get_mut(i).age_stamp = if old {
            e.wrapping_sub(1 << (AGE_BITS - 1)) & mask
        } else {
            e
        };
        let per_epoch = (self.tiers[t].capacity() / AGE_EPOCHS_PER_TIER).max(1);
        self.age_writes[t] += 1;
        if self.age_writes[t] >= per_epoch {
            self.age_writes[t] = 0;
            self.age_epoch[t] = e.wrapping_add(1) & mask;
        }
    }

    /// The aged victim scan: the carried candidate and at most `VICTIM_SCAN_MAX` frames from
    /// the hand, not past the last frame; the oldest evictable one is the victim (ties: the
    /// carried candidate, then the lowest frame), the oldest of the rest is carried.
    fn aged_scan(&mut self, t: usize) -> Option<u32> {
        let n = self.tiers[t].capacity();
        if n == 0 {
            return None;
        }
        let mask = ((1u32 << AGE_BITS) - 1) as u8;
        let epoch = self.age_epoch[t];
        let start = self.clock_hand[t].min(n - 1);
        let end = (start + VICTIM_SCAN_MAX as u32).min(n);
        let carry = self.age_carry[t];
        // (age, frame) of the best and the runner-up, in candidate order. A frame is checked
        // for evictability only when its age would change them (the same result, fewer
        // class-table reads: most frames of a window are younger than both).
        let mut best: Option<(u8, u32)> = None;
        let mut second: Option<(u8, u32)> = None;
        let mut offer = |s: &Self, i: u32| {
            let f = s.tiers[t].get(i);
            let age = epoch.wrapping_sub(f.age_stamp) & mask;
            let beats_best = best.is_none_or(|(b, _)| age > b);
            if !beats_best && second.is_some_and(|(x, _)| age <= x) {
                return;
            }
            let listed = matches!(
                f.list,
                ListId::Probation | ListId::Protected | ListId::Window
            );
            if !listed || s.evictable(t, i).is_none() {
                return;
            }
            if beats_best {
                second = best;
                best = Some((age, i));
            } else {
                second = Some((age, i));
            }
        };
        if carry != NIL && carry < n && !(start..end).contains(&carry) {
            offer(self, carry);
        }
        for i in start..end {
            offer(self, i);
        }
        self.clock_hand[t] = if end >= n { 0 } else { end };
        self.age_carry[t] = second.map_or(NIL, |(_, i)| i);
        best.map(|(_, i)| i)
    }

    fn scan_main(&mut self, t: usize) -> Option<u32> {
        self.scan_list(t, ListId::Probation)
            .or_else(|| self.scan_list(t, ListId::Protected))
    }

    fn scan_list(&mut self, t: usize, list: ListId) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        let mut i = self.tiers[t].tail(list);
        for _ in 0..VICTIM_SCAN_MAX {
            if i == NIL {
                break;
            }
            let prev = self.tiers[t].get(i).prev;
            match self.evictable(t, i) {
                Some(p) if p >= self.victim_priority_cap => return Some(i),
                Some(p) if best.is_none_or(|(bp, _)| p > bp) => best = Some((p, i)),
                Some(_) => {}
                None => self.tiers[t].touch(list, i),
            }
            i = prev;
        }
        best.map(|(_, v)| v)
    }

    /// INSERT: asks for a frame to store `key` (class `class`) in.
    pub fn insert(&mut self, key: BlockKey, class: u8) -> Insert {
        self.insert_where(key, class, None)
    }

    /// INSERT into `tier` only (a durable put into the home tier): no admission filter, since
    /// the caller asked for the block to be kept; the class quota still applies.
    pub fn insert_into(&mut self, key: BlockKey, class: u8, tier: TierId) -> Insert {
        if tier.index() >= self.tiers.len() {
            return self.reject(key.tag(), class, RejectReason::NoRoom);
        }
        self.insert_where(key, class, Some(tier.index()))
    }

    fn insert_where(&mut self, key: BlockKey, class: u8, only: Option<usize>) -> Insert {
        self.begin_event();
        self.counters.inserts += 1;
        let tag = key.tag();
        let hashed = self.directory.hash(tag);
        // An access that just missed this key makes looking again unnecessary: only an insert
        // can make a key present, and every insert clears `last_miss`.
        let known_absent = std::mem::take(&mut self.last_miss) == tag;
        if !known_absent
            && self
                .directory
                .get_hashed(&hashed, &self.tiers[..])
                .is_some()
        {
            return Insert::Present;
        }
        let cp = self.class_policy(class);
        if only.is_none()
            && cp.admit_threshold > 0
            && self.sketch.estimate(key) < cp.admit_threshold
        {
            return self.reject(tag, class, RejectReason::Admission);
        }
        // Removed from the history only once the block has a frame (a retry must find it).
        let in_history = self.history.contains(tag);
        // The filter guards a full tier: while it has free frames beyond its watermark every
        // block is admitted.
        let pt = only.unwrap_or(cp.preferred_tier.index());
        let floor = only.unwrap_or(cp.floor_tier.index().min(self.tiers.len() - 1));
        let mut first = pt;
        if only.is_none() && !in_history && self.filter_refuses(&cp, tag, pt) {
            if floor <= pt {
                self.history.insert(tag);
                return self.reject(tag, class, RejectReason::Admission);
            }
            // Refused by the preferred tier, placed below it where room is cheaper: a second
            // access finds it there and promotes it (the "seen before" test, passed).
            first = pt + 1;
        }
        // Check the directory before evicting anything for a block it could not record.
        // Absent (checked above), so only room for a new entry matters.
        if !self.directory.has_room_for_new(&hashed) {
            return self.reject(tag, class, RejectReason::Directory);
        }
        if cp.quota_blocks > 0 && self.class_count[pt][usize::from(class)] >= cp.quota_blocks {
            return self.reject(tag, class, RejectReason::Quota);
        }
        let mut waiting = false;
        for t in first..=floor {
            match self.acquire_demand(t) {
                Acquire::Frame(i) => {
                    if self
                        .directory
                        .insert_new(&hashed, Loc::new(TierId(t as u8), self.tiers[t].global(i)))
                        .is_err()
                    {
                        self.tiers[t].release(i);
                        return self.reject(tag, class, RejectReason::Directory);
                    }
                    let tick = self.tick as u32;
                    if in_history {
                        self.history.remove(tag);
                    }
                    if first > pt {
                        // Refused above: remembered, so its next access promotes it (the
                        // second miss a single tier would admit).
                        self.counters.admitted_below += 1;
                        self.history.insert(tag);
                    }
                    let f = self.tiers[t].get_mut(i);
                    f.tag = tag;
                    f.class = class;
                    f.flags = FLAG_FILLING | if in_history { FLAG_FROM_HISTORY } else { 0 };
                    f.last_tick = tick;
                    return Insert::Fill {
                        tier: TierId(t as u8),
                        frame: self.tiers[t].global(i),
                    };
                }
                Acquire::Wait => {
                    waiting = true;
                    break;
                }
                Acquire::NoRoom => {}
            }
        }
        if waiting {
            self.counters.insert_retries += 1;
            return Insert::Retry;
        }
        self.reject(tag, class, RejectReason::NoRoom)
    }

    fn reject(&mut self, tag: u64, class: u8, why: RejectReason) -> Insert {
        self.counters.rejected += 1;
        match why {
            RejectReason::Admission => self.counters.rejected_admission += 1,
            RejectReason::Quota => self.counters.rejected_quota += 1,
            RejectReason::NoRoom => self.counters.rejected_no_room += 1,
            RejectReason::Directory => self.counters.rejected_directory += 1,
        }
        self.sample(SampleKind::Reject, tag, class, 7, why as u64);
        Insert::Rejected(why)
    }

    /// The caller finished writing the block into the frame `insert` gave it (`ok`), or gave up
    /// (`!ok`). Only now does the block become visible.
    pub fn commit_fill(&mut self, key: BlockKey, tier: TierId, frame: u32, ok: bool) {
        self.begin_event();
        let t = tier.index();
        let Some(i) = self.tiers.get(t).and_then(|tf| tf.local(frame)) else {
            return;
        };
        let f = *self.tiers[t].get(i);
        if f.tag != key.tag() || f.flags & FLAG_FILLING == 0 || f.flags & FLAG_MOVING != 0 {
            self.counters.bad_commits += 1;
            return;
        }
        if !ok {
            self.directory.remove(f.tag, &self.tiers[..]);
            self.tiers[t].release(i);
            return;
        }
        let cp = self.class_policy(f.class);
        self.tiers[t].get_mut(i).flags = 0;
        let mru = cp.insert_position == InsertPosition::Mru;
        self.place(t, i, f.flags & FLAG_FROM_HISTORY != 0, mru);
        self.class_count[t][usize::from(f.class)] += 1;
        self.counters.admitted += 1;
        self.sample(SampleKind::Admit, f.tag, f.class, t as u8, 0);
        self.keep_free_frames(t, 2);
    }

    /// Whether the history filter of class policy `cp` refuses `tag` entry into tier `pt`:
    /// the class asks for it, the block is not in the history, and the tier is full (no free
    /// frame beyond its watermark).
    fn filter_refuses(&self, cp: &ClassPolicy, tag: u64, pt: usize) -> bool {
        cp.admit_filter == AdmitFilter::History
            && !self.history.contains(tag)
            && self.tiers[pt].len(ListId::Free)
                <= self.cfg.free_watermark.get(pt).copied().unwrap_or(0)
    }

    /// Links a block newly entering tier `t` (a fill or a promotion) where the table puts
    /// new blocks: protected when it came from the history, else the window when there is
    /// one, else probation.
    fn place(&mut self, t: usize, i: u32, from_history: bool, mru: bool) {
        if self.replacement == Replacement::Aged {
            // One unordered list of resident frames (for counts); the order is the ages'.
            // LRU-end insertion stamps the block oldest and carries it: the next victim.
            self.tiers[t].push(ListId::Probation, i, true);
            self.stamp_age(t, i, !mru);
            if !mru {
                self.age_carry[t] = i;
            }
            return;
        }
        if self.replacement == Replacement::Clock {
            // One unordered list of resident frames (for counts); the order is the hand's.
            self.tiers[t].push(ListId::Probation, i, true);
            // A new block starts unreferenced: it lives until the hand comes round unless it
            // is hit (inserting it referenced, a second pass for free, measured worse on the
            // Mooncake trace). LRU-end insertion also points the hand at it: the next victim.
            self.tiers[t].get_mut(i).flags &= !FLAG_REFERENCED;
            if !mru {
                self.clock_hand[t] = i;
            }
            return;
        }
        if from_history && self.protected_target[t] > 0 {
            // Seen recently: skip probation (the ghost hit of ARC and S3-FIFO).
            self.tiers[t].push(ListId::Protected, i, mru);
            if self.tiers[t].len(ListId::Protected) > self.protected_target[t] {
                let j = self.tiers[t].tail(ListId::Protected);
                if j != NIL {
                    self.tiers[t].touch(ListId::Probation, j);
                }
            }
        } else if self.window_target[t] > 0 {
            self.tiers[t].push(ListId::Window, i, mru);
            // While the tier has free frames the window overflows into probation; once it is
            // full, `find_victim` keeps the window at its size.
            if self.tiers[t].len(ListId::Window) > self.window_target[t] {
                let j = self.tiers[t].tail(ListId::Window);
                if j != NIL {
                    self.tiers[t].touch(ListId::Probation, j);
                }
            }
        } else {
            self.tiers[t].push(ListId::Probation, i, mru);
        }
        self.rebalance(t);
    }

    /// After a table shrank the protected segment or the window, moves one frame from the LRU
    /// end of each oversized one to probation per fill, so the old segments drain in bounded
    /// steps instead of freezing their blocks (probation is evicted first).
    fn rebalance(&mut self, t: usize) {
        for (list, target) in [
            (ListId::Protected, self.protected_target[t]),
            (ListId::Window, self.window_target[t]),
        ] {
            if self.tiers[t].len(list) > target {
                let j = self.tiers[t].tail(list);
                if j != NIL {
                    self.tiers[t].touch(ListId::Probation, j);
                }
            }
        }
    }

    /// Demotes early so that tier `t` keeps its free-frame watermark (at most `budget` moves).
    fn keep_free_frames(&mut self, t: usize, budget: usize) {
        let want = self.cfg.free_watermark.get(t).copied().unwrap_or(0);
        for _ in 0..budget {
            if self.tiers[t].len(ListId::Free) + self.demoting[t] >= want {
                return;
            }
            // Evict even while some frames are free (`acquire` would hand out a free one).
            match self.evict_one(t, 0) {
                // A victim was dropped outright: its frame is free again.
                Acquire::Frame(i) => self.tiers[t].release(i),
                // A demotion started (or must wait its turn): the budget bounds the loop.
                Acquire::Wait => {}
                Acquire::NoRoom => return,
            }
        }
    }

    /// COMPLETION: an engine finished a move.
    pub fn complete(&mut self, c: MoveCompletion) {
        self.begin_event();
        let Some(m) = self.moves.finish(c.move_id) else {
            self.counters.stale_completions += 1;
            return;
        };
        let (st, dt) = (usize::from(m.src_tier), usize::from(m.dst_tier));
        if m.op == MoveOp::Demote {
            self.demoting[st] = self.demoting[st].saturating_sub(1);
        }
        let src = *self.tiers[st].get(m.src);
        match c.status {
            MoveStatus::Done => {
                let d = self.tiers[dt].get_mut(m.dst);
                d.tag = m.tag;
                d.class = src.class;
                d.pins = src.pins;
                d.soft_pin_until = src.soft_pin_until;
                d.last_tick = src.last_tick;
                d.flags = if m.op == MoveOp::Prefetch {
                    FLAG_PREFETCHED
                } else {
                    0
                };
                let loc = Loc::new(TierId(dt as u8), self.tiers[dt].global(m.dst));
                let old = Loc::new(TierId(st as u8), self.tiers[st].global(m.src));
                if !self.directory.set_at(m.dir_pos, old, loc) {
                    // The entry exists (the block was resident at the source): an update
                    // never fails.
                    let _ = self.directory.set(m.tag, loc, &self.tiers[..]);
                }
                if m.op == MoveOp::Demote {
                    self.tiers[dt].push(ListId::Probation, m.dst, true);
                } else {
                    // Moving up is entering a tier: placed as a fill would be, and the tier
                    // keeps its free-frame watermark as after a fill; a prefetch only while
                    // prefetches prove accurate (else the next fill or TICK refills it).
                    let from_history = self.history.remove(m.tag);
                    self.place(dt, m.dst, from_history, true);
                    if m.op != MoveOp::Prefetch || self.prefetch_may_evict {
                        self.keep_free_frames(dt, 1);
                    }
                }
                self.uncount(st, src.class);
                self.class_count[dt][usize::from(src.class)] += 1;
                self.tiers[st].release(m.src);
                self.counters.moves_done += 1;
                self.counters.bytes_moved[st][dt] += u64::from(c.bytes);
                if m.op == MoveOp::Demote {
                    self.counters.demotions += 1;
                }
                self.sample(
                    SampleKind::MoveDone,
                    m.tag,
                    src.class,
                    dt as u8,
                    u64::from(c.bytes),
                );
            }
            MoveStatus::Corrupt => {
                // The source bytes are bad: the block is gone from every tier, a miss from now on.
                self.counters.corrupt_blocks += 1;
                self.tiers[dt].release(m.dst);
                self.drop_block(st, m.src);
            }
            MoveStatus::SourceFailed => {
                // The device failed under the source frame: the block there is lost (a miss
                // from now on) and the frame goes out of service.
                self.counters.move_errors += 1;
                self.tiers[dt].release(m.dst);
                self.drop_block(st, m.src);
                self.retire_local(st, m.src);
            }
            MoveStatus::IoError | MoveStatus::NoSpace | MoveStatus::DestinationFailed => {
                self.counters.move_errors += 1;
                self.tiers[dt].release(m.dst);
                if c.status == MoveStatus::DestinationFailed {
                    // The device failed under the destination frame: out of service for good.
                    self.retire_local(dt, m.dst);
                }
                if m.op == MoveOp::Demote {
                    // A victim that could not be written down is dropped, as if evicted.
                    self.drop_block(st, m.src);
                } else {
                    let s = self.tiers[st].get_mut(m.src);
                    s.flags &= !FLAG_MOVING;
                    self.tiers[st].push(ListId::Probation, m.src, true);
                }
            }
        }
    }

    /// Marks `tier` as a home (persistent) tier: blocks there are read in place and never
    /// promoted or prefetched out of it, so the frame that holds a durable block keeps it until
    /// the block is evicted.
    pub fn set_home_tier(&mut self, tier: TierId) {
        if tier.index() < self.tiers.len() {
            self.home_tiers |= 1 << tier.index();
        }
    }

    fn is_home(&self, t: usize) -> bool {
        self.home_tiers & (1 << t) != 0
    }

    /// Takes the free frame `frame` (global id) of `tier` out of service for good: the device
    /// failed under it. It counts as used; nothing is ever placed in it again. Returns whether
    /// it was free and is now retired.
    pub fn retire_frame(&mut self, tier: TierId, frame: u32) -> bool {
        let t = tier.index();
        let Some(i) = self.tiers.get(t).and_then(|tf| tf.local(frame)) else {
            return false;
        };
        self.retire_local(t, i)
    }

    /// `retire_frame` by the shard-local frame index `i` of tier `t`; counted in
    /// `Counters::frames_retired`.
    fn retire_local(&mut self, t: usize, i: u32) -> bool {
        if self.tiers[t].get(i).list != ListId::Free {
            return false;
        }
        self.tiers[t].unlink(i);
        self.counters.frames_retired += 1;
        true
    }

    /// Warm restart: records the block `key`, found intact in `frame` (global id) of `tier`,
    /// as resident there (class `class`, on the probation list). Only at start-up, before any
    /// other event; the frame must be free and owned by this shard, the key not yet recorded.
    pub fn restore(
        &mut self,
        key: BlockKey,
        tier: TierId,
        frame: u32,
        class: u8,
    ) -> Result<(), RestoreError> {
        let t = tier.index();
        let i = self
            .tiers
            .get(t)
            .and_then(|tf| tf.local(frame))
            .ok_or(RestoreError::NotOwned)?;
        if self.tiers[t].get(i).list != ListId::Free {
            return Err(RestoreError::FrameInUse);
        }
        let tag = key.tag();
        let hashed = self.directory.hash(tag);
        if self
            .directory
            .get_hashed(&hashed, &self.tiers[..])
            .is_some()
        {
            return Err(RestoreError::Duplicate);
        }
        self.directory
            .insert_new(&hashed, Loc::new(tier, frame))
            .map_err(|_| RestoreError::DirectoryFull)?;
        self.tiers[t].unlink(i);
        let tick = self.tick as u32;
        let f = self.tiers[t].get_mut(i);
        f.tag = tag;
        f.class = class;
        f.flags = 0;
        f.last_tick = tick;
        self.tiers[t].push(ListId::Probation, i, true);
        self.class_count[t][usize::from(class)] += 1;
        Ok(())
    }

    /// The caller found the block at `key` corrupt where it read it: forget it (a miss from now
    /// on). Returns whether it was dropped (a block in a move is left to the move's own check).
    pub fn invalidate(&mut self, key: BlockKey) -> bool {
        self.begin_event();
        let Some(loc) = self.directory.get(key.tag(), &self.tiers[..]) else {
            return false;
        };
        let t = loc.tier().index();
        let Some(i) = self.tiers[t].local(loc.frame()) else {
            return false;
        };
        if self.tiers[t].get(i).flags & (FLAG_MOVING | FLAG_FILLING) != 0 {
            return false;
        }
        self.counters.corrupt_blocks += 1;
        self.drop_block(t, i);
        true
    }

    /// INTENT: applies one piece of application advice.
    pub fn intent(&mut self, intent: Intent) -> Result<(), IntentError> {
        self.begin_event();
        self.counters.intents += 1;
        let tag = intent.key.tag();
        match intent.action {
            IntentAction::ExpectReuse { uses } => {
                self.sketch.add(intent.key, uses);
                // Announced reuse counts as "seen before" for the history filter too; a
                // resident block needs no admission, so it does not crowd the history.
                if uses > 0 && self.directory.get(tag, &self.tiers[..]).is_none() {
                    self.history.insert(tag);
                }
                return Ok(());
            }
            IntentAction::Sequence { sequence, position } => {
                self.sequences.record(sequence, position, tag);
                return Ok(());
            }
            _ => {}
        }
        let loc = self
            .directory
            .get(tag, &self.tiers[..])
            .ok_or(IntentError::NotResident)?;
        let t = loc.tier().index();
        let i = self.tiers[t]
            .local(loc.frame())
            .ok_or(IntentError::NotResident)?;
        if self.tiers[t].get(i).flags & FLAG_FILLING != 0
            && self.tiers[t].get(i).flags & FLAG_MOVING == 0
        {
            return Err(IntentError::NotResident);
        }
        let tick = self.tick;
        match intent.action {
            IntentAction::Pin { ttl_ticks: 0 } => {
                let f = self.tiers[t].get_mut(i);
                f.pins = f.pins.checked_add(1).ok_or(IntentError::TooManyPins)?;
            }
            IntentAction::Pin { ttl_ticks } => {
                let until = (tick + u64::from(ttl_ticks)).min(u64::from(u32::MAX)) as u32;
                let f = self.tiers[t].get_mut(i);
                f.soft_pin_until = f.soft_pin_until.max(until);
            }
            IntentAction::Unpin => {
                let f = self.tiers[t].get_mut(i);
                f.pins = f.pins.checked_sub(1).ok_or(IntentError::NotPinned)?;
            }
            IntentAction::SetClass(c) => {
                let old = self.tiers[t].get(i).class;
                self.uncount(t, old);
                self.class_count[t][usize::from(c.0)] += 1;
                self.tiers[t].get_mut(i).class = c.0;
                // A class that inserts at the LRU end re-inserts there: advice that a block
                // is done with ("session ended") takes effect now, not when it ages out.
                let list = self.tiers[t].get(i).list;
                if self.class_policy(c.0).insert_position == InsertPosition::Lru
                    && self.replacement == Replacement::Aged
                {
                    if matches!(list, ListId::Probation | ListId::Protected | ListId::Window) {
                        self.stamp_age(t, i, true);
                        self.age_carry[t] = i;
                    }
                } else if self.class_policy(c.0).insert_position == InsertPosition::Lru
                    && self.replacement == Replacement::Clock
                {
                    if matches!(list, ListId::Probation | ListId::Protected | ListId::Window) {
                        self.tiers[t].get_mut(i).flags &= !FLAG_REFERENCED;
                        self.clock_hand[t] = i;
                    }
                } else if self.class_policy(c.0).insert_position == InsertPosition::Lru
                    && matches!(list, ListId::Probation | ListId::Protected | ListId::Window)
                {
                    self.tiers[t].unlink(i);
                    self.tiers[t].push(ListId::Probation, i, false);
                }
            }
            IntentAction::ExpectReuse { .. } | IntentAction::Sequence { .. } => {}
        }
        Ok(())
    }

    /// TICK: advances time; keeps free-frame watermarks; expires the table when its TTL passes.
    pub fn tick(&mut self) {
        self.tick += 1;
        self.begin_event();
        for t in 0..self.tiers.len() {
            self.keep_free_frames(t, 4);
        }
    }

    /// Current tick.
    pub fn now(&self) -> u64 {
        self.tick
    }
}
