//! The MCOS fast path itself as a simulator policy: a real `mcos_fastpath::Shard` executing a
//! policy table over frame tables without payloads, with a zero-latency engine that completes
//! every move at once.
//!
//! `lru` in simulate mode is this policy under the built-in table (one tier, admit all, MRU
//! insertion): the sweep exercises the production decision code, and its agreement with the
//! reference list LRU (`lru-ref`) to the last hit is tested on the Mooncake trace.

use mcos_core::limits::MAX_TIERS;
use mcos_core::{
    BlockKey, Consumer, MoveCompletion, MoveDescriptor, Namespace, PolicyInstaller, PolicyTable,
    Producer, TelemetrySample, policy_cell, ring,
};
use mcos_fastpath::{Access, Insert, Shard, ShardConfig};

use super::{CachePolicy, PolicyStats};

/// A fast-path shard over one or more payload-less tiers.
pub struct FastPathPolicy {
    name: &'static str,
    shard: Shard,
    engine: Consumer<MoveDescriptor>,
    /// Kept so a caller (the brain, a test) can install tables; unused by the plain replay.
    installer: PolicyInstaller,
    root: BlockKey,
    capacity: usize,
    batch: Box<[MoveDescriptor]>,
    last_hit_tier: usize,
}

impl FastPathPolicy {
    /// A shard with `tier_blocks` frames per tier (fastest first) running `table`.
    pub fn new(name: &'static str, tier_blocks: &[u32], table: PolicyTable) -> FastPathPolicy {
        FastPathPolicy::build(name, tier_blocks, table, None, 0)
    }

    /// As [`FastPathPolicy::new`], with telemetry sampled at rate 2^-`shift` into a ring of
    /// `limits::TELEMETRY_RING_DEPTH` samples; returns the ring's reading end (for a brain).
    pub fn with_telemetry(
        name: &'static str,
        tier_blocks: &[u32],
        table: PolicyTable,
        shift: u8,
    ) -> (FastPathPolicy, Consumer<TelemetrySample>) {
        let (tx, rx) = ring(mcos_core::limits::TELEMETRY_RING_DEPTH);
        (
            FastPathPolicy::build(name, tier_blocks, table, Some(tx), shift),
            rx,
        )
    }

    fn build(
        name: &'static str,
        tier_blocks: &[u32],
        table: PolicyTable,
        telemetry: Option<Producer<TelemetrySample>>,
        telemetry_shift: u8,
    ) -> FastPathPolicy {
        let (installer, mut readers) = policy_cell(table, 1);
        let (tx, rx) = ring(mcos_core::limits::DESCRIPTOR_RING_DEPTH);
        let cfg = ShardConfig {
            shard: 0,
            tiers: tier_blocks.iter().map(|&n| (0, n)).collect(),
            block_bytes: 0,
            routes: [[0; MAX_TIERS]; MAX_TIERS],
            // Several tiers: every tier but the last keeps 2 % of its frames free (at least
            // one), as a node does by default, so that hits below find room to be promoted
            // into; one tier: exact capacity semantics.
            free_watermark: tier_blocks
                .iter()
                .enumerate()
                .map(|(t, &n)| {
                    if t + 1 < tier_blocks.len() {
                        (n / 50).max(1).min(n.saturating_sub(1))
                    } else {
                        0
                    }
                })
                .collect(),
            telemetry_shift,
        };
        let reader = readers.remove(0);
        FastPathPolicy {
            name,
            shard: Shard::new(cfg, reader, vec![tx], telemetry),
            engine: rx,
            installer,
            root: Namespace::for_model("trace").root(),
            capacity: tier_blocks.iter().map(|&n| n as usize).sum(),
            batch: vec![MoveDescriptor::EMPTY; 64].into_boxed_slice(),
            last_hit_tier: 0,
        }
    }

    /// Exact LRU over one tier of `capacity` blocks: the built-in table.
    pub fn lru(capacity: usize) -> FastPathPolicy {
        let cap = u32::try_from(capacity).unwrap_or(u32::MAX);
        FastPathPolicy::new("lru", &[cap], PolicyTable::builtin(1))
    }

    /// Bounded-scan CLOCK over one tier of `capacity` blocks: the built-in table (admit all,
    /// MRU insertion) with `Replacement::Clock`.
    pub fn clock(capacity: usize) -> FastPathPolicy {
        let cap = u32::try_from(capacity).unwrap_or(u32::MAX);
        let mut table = PolicyTable::builtin(1);
        table.replacement = mcos_core::Replacement::Clock;
        FastPathPolicy::new("clock", &[cap], table)
    }

    /// Aged replacement (sampled LRU by 7-bit age stamps) over one tier of `capacity` blocks:
    /// the built-in table with `Replacement::Aged`.
    pub fn aged(capacity: usize) -> FastPathPolicy {
        let cap = u32::try_from(capacity).unwrap_or(u32::MAX);
        let mut table = PolicyTable::builtin(1);
        table.replacement = mcos_core::Replacement::Aged;
        FastPathPolicy::new("aged", &[cap], table)
    }

    /// The shard (counters, usage).
    pub fn shard(&self) -> &Shard {
        &self.shard
    }

    /// The install side of the shard's policy cell.
    pub fn installer(&mut self) -> &mut PolicyInstaller {
        &mut self.installer
    }

    /// The block key a trace id maps to.
    pub fn key(&self, id: u64) -> BlockKey {
        BlockKey::from_trace_id_under(self.root, id)
    }

    /// Completes every descriptor the shard emitted (zero-latency engine).
    fn pump(&mut self) {
        loop {
            let n = self.engine.pop_batch(&mut self.batch);
            if n == 0 {
                return;
            }
            for i in 0..n {
                self.shard.complete(MoveCompletion::done(&self.batch[i]));
            }
        }
    }
}

impl CachePolicy for FastPathPolicy {
    fn name(&self) -> &'static str {
        self.name
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn len(&self) -> usize {
        (0..MAX_TIERS)
            .map(|t| self.shard.tier_usage(mcos_core::TierId(t as u8)).0 as usize)
            .sum()
    }

    fn contains(&self, id: u64) -> bool {
        self.shard.peek(self.key(id)).is_some()
    }

    fn access(&mut self, id: u64, _now: u64) -> bool {
        self.access_class(id, 0)
    }

    fn stage(&mut self, id: u64) -> Option<(usize, usize)> {
        // The shard's own promotion on a hit below the preferred tier is the up-move: a read
        // that the shard counts as an access (recency, sketch) like the request's later one.
        let key = self.key(id);
        let from = self.shard.peek(key)?.0.index();
        if from == 0 {
            return None;
        }
        let last = self.last_hit_tier;
        // The first read may only start the demotion that frees a frame above (the block is
        // read in place): once it has landed, the next read promotes. Bounded as in an insert.
        let mut to = from;
        for _ in 0..MAX_TIERS {
            let _ = self.shard.access(key, None);
            self.pump();
            to = self.shard.peek(key)?.0.index();
            if to < from {
                break;
            }
        }
        self.last_hit_tier = last;
        (to < from).then_some((from, to))
    }

    fn hit_tier(&self) -> usize {
        self.last_hit_tier
    }

    fn stats(&self) -> PolicyStats {
        let c = self.shard.counters();
        PolicyStats {
            insertions: c.admitted,
            evictions: c.evictions,
            admissions_rejected: c.rejected,
        }
    }
}

impl FastPathPolicy {
    /// An access whose block, when inserted on a miss, joins `class`.
    pub fn access_class(&mut self, id: u64, class: u8) -> bool {
        let key = self.key(id);
        match self.shard.access(key, None) {
            Access::Hit { tier, .. } => {
                self.last_hit_tier = tier.index();
                // A hit below may have started a demotion to make room for its promotion:
                // the zero-latency engine lands it now.
                self.pump();
                return true;
            }
            Access::Wait { from, .. } => {
                self.last_hit_tier = from.index();
                self.pump();
                return true;
            }
            Access::Miss => {}
        }
        // Insert on miss; a multi-tier shard may need a demotion to land first. Each retry
        // follows a completed move, so the loop ends; the bound guards against a logic error.
        for _ in 0..=MAX_TIERS * 2 {
            match self.shard.insert(key, class) {
                Insert::Fill { tier, frame } => {
                    self.shard.commit_fill(key, tier, frame, true);
                    break;
                }
                Insert::Retry => self.pump(),
                Insert::Present | Insert::Rejected(_) => break,
            }
        }
        self.pump();
        false
    }

    /// Delivers an intent to the shard; advice about a block that is not resident is dropped
    /// (returns false), as an application's would be.
    pub fn intent(&mut self, id: u64, action: mcos_core::IntentAction) -> bool {
        let key = self.key(id);
        self.shard.intent(mcos_core::Intent { key, action }).is_ok()
    }
}
