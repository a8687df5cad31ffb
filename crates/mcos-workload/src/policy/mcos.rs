//! `mcos`: the real fast path executing the tables the real brain installs.
//!
//! Intents (when a replay delivers them): the requests at the head of the queue, as many as
//! fit in the brain's lookahead budget of blocks (a quarter of tier 0), form the lookahead
//! window. Their resident blocks are held in `PriorityClass::QUEUED` (passed over by the victim
//! scan, admitted whatever the learned filter says) until the last windowed request that reads
//! them has started; a block inserted while a windowed request still needs it joins that class
//! at once, so a block computed now and re-read soon is admitted and kept. The budget keeps a
//! long queue from pinning the cache: a block needed only after more than a cache's worth of
//! other work is one Belady would evict anyway. A block only its own request reads is not
//! announced: its first read is not a reuse. A session-ended hint
//! moves the session's blocks that no queued request needs into `PriorityClass::ENDED`
//! (evicted first). The bookkeeping of which queued requests read which blocks is the
//! serving engine's (the application's) side, here in this wrapper. Staging
//! ([`CachePolicy::stage`]) moves a queued request's block up by the shard's own promotion; the
//! room it makes passes over the queued class, so it does not evict blocks of the windowed
//! requests ahead of it.
//!
//! A [`FastPathPolicy`] (an `mcos_fastpath::Shard` over payload-less tiers) with telemetry on,
//! sampled into a bounded ring, and an `mcos_brain::Brain` that drains that ring and installs
//! tables through the shard's policy cell. In simulation the brain steps synchronously on the
//! caller's thread every `STEP_EVERY` accesses, which keeps runs deterministic; a node runs the
//! same brain on its own thread (`mcos_brain::BrainThread`).

use std::collections::{HashMap, VecDeque};

use mcos_brain::{Brain, BrainConfig, CostModel, EMPTY_SAMPLE, Placement, ReplacementChoice};
use mcos_core::{
    Consumer, IntentAction, PolicyTable, PriorityClass, TelemetrySample, TierKind, TierSpec,
    Topology,
};

use super::{CachePolicy, FastPathPolicy, PolicyStats};

/// Accesses between synchronous brain steps. With every event sampled the shard emits at most
/// about three samples per access (hit or miss, admit, evict): 512 accesses stay well inside
/// the telemetry ring.
pub const STEP_EVERY: u64 = 512;

/// The fast path driven by the brain, one tier.
pub struct McosPolicy {
    /// `mcos`, or `mcos-hw` when the brain chooses the replacement order (`auto`).
    name: &'static str,
    fast: FastPathPolicy,
    brain: Brain,
    ring: Consumer<TelemetrySample>,
    batch: Box<[TelemetrySample]>,
    accesses: u64,
    /// Per block, how many windowed queued requests will read it (intents only).
    queued: HashMap<u64, u32>,
    /// Queued requests beyond the lookahead window, oldest first.
    pending: VecDeque<Vec<u64>>,
    /// Queued requests inside the window, oldest first.
    windowed: VecDeque<Vec<u64>>,
    /// Most distinct blocks the window may mark.
    lookahead_blocks: usize,
    /// Blocks of the request being served whose last queued reader it was.
    released: Vec<u64>,
    /// Accesses between synchronous brain steps ([`STEP_EVERY`] unless sampled).
    step_every: u64,
}

impl McosPolicy {
    /// One tier of `capacity` blocks under the brain's default configuration.
    pub fn new(capacity: usize) -> McosPolicy {
        McosPolicy::with_replacement(capacity, ReplacementChoice::List)
    }

    /// As [`McosPolicy::new`], with the brain's replacement order set to `replacement`
    /// (`auto`: the policy `mcos-hw`, the brain installs the aged order the hardware pipeline
    /// executes wherever its shadow scores within the tolerance of the list).
    pub fn with_replacement(capacity: usize, replacement: ReplacementChoice) -> McosPolicy {
        let cap = u32::try_from(capacity).unwrap_or(u32::MAX).max(1);
        let topology = Topology {
            tiers: vec![TierSpec {
                kind: TierKind::HostDram,
                capacity_blocks: cap,
                block_bytes: 1,
            }],
            links: vec![],
        };
        let mut cfg = BrainConfig::for_node(&topology, 1, 0);
        cfg.replacement = replacement;
        McosPolicy::build(topology, cfg, None)
    }

    /// One tier of `capacity` blocks replaying a spatial sample holding `rate` of a trace's
    /// blocks, standing for a cache of `full_capacity` blocks over the whole trace (a
    /// miss-ratio curve's scaled replay, `crate::mrc`). The brain keeps the cadence it has on
    /// the whole trace at `full_capacity`, counted in the trace's accesses: it steps every
    /// `rate * STEP_EVERY` accesses of the sample, and since it samples the smaller cache at
    /// its own shift `k` (shadows of at least `SHADOW_BLOCKS` where the cache allows) where the
    /// full cache's is `K`, its sampled accesses are `s = rate * 2^(K - k)` of the full run's:
    /// decisions come every `s * decide_every` sampled accesses and evidence halves every `s`
    /// times the default half-life. Without that a sample stretches each of them over `1 / s`
    /// times as much of the trace. A rate of 1 (or outside (0, 1)) is [`McosPolicy::new`].
    pub fn sampled(capacity: usize, full_capacity: usize, rate: f64) -> McosPolicy {
        McosPolicy::sampled_with(capacity, full_capacity, rate, ReplacementChoice::List)
    }

    /// [`McosPolicy::sampled`] with the brain's replacement order set to `replacement`.
    pub fn sampled_with(
        capacity: usize,
        full_capacity: usize,
        rate: f64,
        replacement: ReplacementChoice,
    ) -> McosPolicy {
        if !(rate > 0.0 && rate < 1.0) {
            return McosPolicy::with_replacement(capacity, replacement);
        }
        let tier = |blocks: usize| Topology {
            tiers: vec![TierSpec {
                kind: TierKind::HostDram,
                capacity_blocks: u32::try_from(blocks).unwrap_or(u32::MAX).max(1),
                block_bytes: 1,
            }],
            links: vec![],
        };
        let full_cfg = BrainConfig::for_node(&tier(full_capacity.max(capacity)), 1, 0);
        let topology = tier(capacity);
        let mut cfg = BrainConfig::for_node(&topology, 1, 0);
        cfg.replacement = replacement;
        let (full_shift, shift) = (full_cfg.sample_shift(), cfg.sample_shift());
        let share = rate * 2f64.powi(i32::from(full_shift) - i32::from(shift));
        let scale = |n: f64| (n * share).round().clamp(1.0, f64::from(u32::MAX)) as u32;
        cfg.decide_every = scale(f64::from(full_cfg.decide_every));
        cfg.half_life = scale(if full_cfg.half_life > 0 {
            f64::from(full_cfg.half_life)
        } else {
            2.0 * f64::from(full_cfg.shadow_blocks.max(1))
        });
        let mut policy = McosPolicy::build(topology, cfg, None);
        policy.step_every = ((STEP_EVERY as f64 * rate).round() as u64).max(1);
        policy
    }

    /// The tiers of `topology` (fastest first, payload-less), with the brain placing blocks by
    /// time saved under `cost` when given.
    pub fn with_topology(topology: Topology, cost: Option<CostModel>) -> McosPolicy {
        let mut cfg = BrainConfig::for_node(&topology, 1, 0);
        if topology.tiers.len() > 1 {
            // The fast path below keeps 2 % of every tier but the last free (see
            // `FastPathPolicy`).
            cfg.free_watermark = 0.02;
        }
        McosPolicy::build(topology, cfg, cost)
    }

    fn build(topology: Topology, cfg: BrainConfig, cost: Option<CostModel>) -> McosPolicy {
        let caps: Vec<u32> = topology.tiers.iter().map(|t| t.capacity_blocks).collect();
        let cap = caps.first().copied().unwrap_or(1);
        let brain_replacement = cfg.replacement;
        let mut brain = Brain::new(topology.clone(), cfg);
        if let Some(cost) = cost {
            brain.set_placement(Placement::new(&topology, cost));
        }
        // The fast path samples exactly what the brain models: no sample crosses the ring in
        // vain.
        let (fast, ring) = FastPathPolicy::with_telemetry(
            "mcos",
            &caps,
            PolicyTable::builtin(caps.len()),
            brain.sample_shift(),
        );
        let name = if brain_replacement == ReplacementChoice::Auto {
            "mcos-hw"
        } else {
            "mcos"
        };
        McosPolicy {
            name,
            fast,
            brain,
            ring,
            batch: vec![EMPTY_SAMPLE; 512].into_boxed_slice(),
            accesses: 0,
            queued: HashMap::new(),
            pending: VecDeque::new(),
            windowed: VecDeque::new(),
            lookahead_blocks: (cap / 4).max(1) as usize,
            released: Vec::new(),
            step_every: STEP_EVERY,
        }
    }

    /// The brain (statistics, knobs in force).
    pub fn brain(&self) -> &Brain {
        &self.brain
    }

    /// The fast-path side (counters).
    pub fn fast_path(&self) -> &FastPathPolicy {
        &self.fast
    }

    /// Moves queued requests into the lookahead window while their blocks fit its budget,
    /// marking their resident blocks as queued.
    fn fill_window(&mut self) {
        while let Some(front) = self.pending.front() {
            if !self.windowed.is_empty() && self.queued.len() + front.len() > self.lookahead_blocks
            {
                return;
            }
            let Some(ids) = self.pending.pop_front() else {
                return;
            };
            for &id in &ids {
                let n = self.queued.entry(id).or_insert(0);
                *n += 1;
                if *n == 1 {
                    self.fast
                        .intent(id, IntentAction::SetClass(PriorityClass::QUEUED));
                }
            }
            self.windowed.push_back(ids);
        }
    }

    fn step(&mut self) {
        let installer = self.fast.installer();
        self.brain.step(
            std::slice::from_mut(&mut self.ring),
            installer,
            &mut self.batch,
        );
    }
}

impl CachePolicy for McosPolicy {
    fn name(&self) -> &'static str {
        self.name
    }

    fn capacity(&self) -> usize {
        self.fast.capacity()
    }

    fn len(&self) -> usize {
        self.fast.len()
    }

    fn contains(&self, id: u64) -> bool {
        self.fast.contains(id)
    }

    fn access(&mut self, id: u64, now: u64) -> bool {
        let _ = now;
        // A block a windowed request will read again joins the queued class when inserted.
        let class = if self.queued.contains_key(&id) {
            PriorityClass::QUEUED
        } else {
            PriorityClass::DEFAULT
        };
        let hit = self.fast.access_class(id, class.0);
        self.accesses += 1;
        // Every `step_every` accesses, or sooner when a burst of moves (several tiers) has
        // filled half the ring: the brain must see every sample to model the stream.
        if self.accesses.is_multiple_of(self.step_every)
            || 2 * self.ring.len() > self.ring.capacity()
        {
            self.step();
        }
        hit
    }

    fn request_done(&mut self, ids: &[u64]) {
        // Blocks no windowed request needs any more go back to the default class.
        for id in std::mem::take(&mut self.released) {
            if !self.queued.contains_key(&id) {
                self.fast
                    .intent(id, IntentAction::SetClass(PriorityClass::DEFAULT));
            }
        }
        self.fill_window();
        self.fast.request_done(ids);
    }

    fn request_queued(&mut self, ids: &[u64]) {
        self.pending.push_back(ids.to_vec());
        self.fill_window();
    }

    fn request_started(&mut self, ids: &[u64]) {
        // Requests start in queue order: the starting one heads the window, or, when the
        // window was empty, the pending queue.
        if self.windowed.front().is_some_and(|w| w.as_slice() == ids) {
            self.windowed.pop_front();
            for &id in ids {
                if let Some(n) = self.queued.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        self.queued.remove(&id);
                        self.released.push(id);
                    }
                }
            }
        } else if self.pending.front().is_some_and(|p| p.as_slice() == ids) {
            self.pending.pop_front();
        }
    }

    fn session_ended(&mut self, ids: &[u64]) {
        for &id in ids {
            if !self.queued.contains_key(&id) {
                self.fast
                    .intent(id, IntentAction::SetClass(PriorityClass::ENDED));
            }
        }
    }

    fn stage(&mut self, id: u64) -> Option<(usize, usize)> {
        // The up-move evicts by the installed table; blocks of windowed requests ahead are
        // in the queued class, which the victim scan passes over.
        let moved = self.fast.stage(id);
        if 2 * self.ring.len() > self.ring.capacity() {
            self.step();
        }
        moved
    }

    fn hit_tier(&self) -> usize {
        self.fast.hit_tier()
    }

    fn stats(&self) -> PolicyStats {
        self.fast.stats()
    }
}
