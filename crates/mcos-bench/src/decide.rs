//! One decision, executed by a real `mcos_fastpath::Shard`: the policy logic both execution
//! modes share.
//!
//! A decision is the work the fast path does for one access of the stream: the sequence
//! intents declared for it (INTENT), the ACCESS, on a miss the INSERT and its fill commit
//! (retried after a move lands when room is being made), and the COMPLETION of every move the
//! decision started. Engines here have zero latency and carry no bytes: each descriptor the
//! shard emits is completed at once, in the same thread, so the figure is the decision logic's
//! own cost. Every 4096 decisions the decision also carries a TICK (watermark demotions, TTLs).

use crate::stream::{Op, OpKind};
use mcos_core::limits::{DESCRIPTOR_RING_DEPTH, MAX_TIERS};
use mcos_core::{
    Consumer, Intent, IntentAction, MoveCompletion, MoveDescriptor, PolicyReader, PolicyTable,
    TierId, ring,
};
use mcos_fastpath::{Access, Counters, Insert, Shard, ShardConfig};

/// Decisions between two TICK events.
pub const TICK_EVERY: u64 = 4096;

/// How one decision ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Found resident (in any tier; a lower-tier hit may have started a promotion).
    Hit,
    /// Not resident: inserted (or refused by the policy).
    Miss,
}

/// Shape of one shard: frames per tier, fastest first, and the free frames kept per tier.
#[derive(Clone, Debug)]
pub struct ShardShape {
    /// Frames per tier.
    pub tiers: Vec<u32>,
    /// Free frames kept ready per tier (demoted early).
    pub free_watermark: Vec<u32>,
}

impl ShardShape {
    /// Total frames.
    pub fn capacity(&self) -> u64 {
        self.tiers.iter().map(|&n| u64::from(n)).sum()
    }
}

/// A shard, its engine ring and the zero-latency engine that completes its moves.
pub struct Decider {
    shard: Shard,
    engine: Consumer<MoveDescriptor>,
    batch: Box<[MoveDescriptor]>,
    decisions: u64,
}

/// The table the synthetic stream runs: the built-in one (LRU per tier, demote on evict, promote
/// on a lower-tier hit, admit all) with sequential prefetch of `degree` positions for class 0.
pub fn bench_table(tiers: usize, degree: u8) -> PolicyTable {
    let mut t = PolicyTable::builtin(tiers);
    if tiers > 1 && degree > 0 {
        let c = &mut t.classes[0];
        c.prefetch_mode = mcos_core::PrefetchMode::Sequential;
        c.prefetch_degree = degree.min(mcos_core::limits::PREFETCH_DEGREE_MAX);
    }
    t
}

impl Decider {
    /// A shard of shape `shape` reading its table through `policy`.
    pub fn new(shard_id: u8, shape: &ShardShape, policy: PolicyReader) -> Decider {
        let (tx, rx) = ring(DESCRIPTOR_RING_DEPTH);
        let cfg = ShardConfig {
            shard: shard_id,
            tiers: shape.tiers.iter().map(|&n| (0, n)).collect(),
            block_bytes: 16 << 10,
            routes: [[0; MAX_TIERS]; MAX_TIERS],
            free_watermark: shape.free_watermark.clone(),
            telemetry_shift: 0,
        };
        Decider {
            shard: Shard::new(cfg, policy, vec![tx], None),
            engine: rx,
            batch: vec![MoveDescriptor::EMPTY; 64].into_boxed_slice(),
            decisions: 0,
        }
    }

    /// The shard.
    pub fn shard(&self) -> &Shard {
        &self.shard
    }

    /// Counters of the shard.
    pub fn counters(&self) -> Counters {
        *self.shard.counters()
    }

    /// Frames in use per tier.
    pub fn usage(&self) -> Vec<(u32, u32)> {
        (0..MAX_TIERS)
            .map(|t| self.shard.tier_usage(TierId(t as u8)))
            .collect()
    }

    /// First prefetch stage for an upcoming op: its directory buckets (no state changes).
    #[inline]
    pub fn prefetch(&self, op: &Op) {
        self.shard.prefetch(op.key);
    }

    /// Second stage, for an op closer ahead: the frame its directory entry points to.
    #[inline]
    pub fn prefetch_block(&self, op: &Op) {
        self.shard.prefetch_block(op.key);
    }

    /// Completes every descriptor the shard emitted.
    fn pump(&mut self) {
        // Each completion frees a move slot; the ring holds at most INFLIGHT_MOVES entries.
        for _ in 0..DESCRIPTOR_RING_DEPTH {
            let n = self.engine.pop_batch(&mut self.batch);
            if n == 0 {
                return;
            }
            for i in 0..n {
                self.shard.complete(MoveCompletion::done(&self.batch[i]));
            }
        }
    }

    /// Executes one op. Returns the outcome when the op ends a decision (an access).
    #[inline]
    pub fn apply(&mut self, op: &Op) -> Option<Outcome> {
        match op.kind {
            OpKind::Declare => {
                let _ = self.shard.intent(Intent {
                    key: op.key,
                    action: IntentAction::Sequence {
                        sequence: op.hint.0,
                        position: op.hint.1,
                    },
                });
                None
            }
            OpKind::Access => Some(self.access(op)),
        }
    }

    fn access(&mut self, op: &Op) -> Outcome {
        let outcome = match self.shard.access(op.key, op.hint()) {
            Access::Hit { .. } | Access::Wait { .. } => Outcome::Hit,
            Access::Miss => {
                // Each retry follows completed moves, so room appears; the bound guards
                // against a logic error.
                for _ in 0..=MAX_TIERS * 2 {
                    match self.shard.insert(op.key, op.class) {
                        Insert::Fill { tier, frame } => {
                            self.shard.commit_fill(op.key, tier, frame, true);
                            break;
                        }
                        Insert::Retry => self.pump(),
                        Insert::Present | Insert::Rejected(_) => break,
                    }
                }
                Outcome::Miss
            }
        };
        self.pump();
        self.decisions += 1;
        if self.decisions.is_multiple_of(TICK_EVERY) {
            self.shard.tick();
            self.pump();
        }
        outcome
    }

    /// Executes a whole decision (its declares and its access).
    pub fn decide(&mut self, ops: &[Op]) -> Option<Outcome> {
        let mut last = None;
        for op in ops {
            last = self.apply(op);
        }
        last
    }
}
