//! `mcos`: the real fast path executing the tables the real brain installs.
//!
//! A [`FastPathPolicy`] (an `mcos_fastpath::Shard` over payload-less tiers) with telemetry on,
//! sampled into a bounded ring, and an `mcos_brain::Brain` that drains that ring and installs
//! tables through the shard's policy cell. In simulation the brain steps synchronously on the
//! caller's thread every `STEP_EVERY` accesses, which keeps runs deterministic; a node runs the
//! same brain on its own thread (`mcos_brain::BrainThread`).

use mcos_brain::{Brain, BrainConfig, EMPTY_SAMPLE};
use mcos_core::{Consumer, PolicyTable, TelemetrySample, TierKind, TierSpec, Topology};

use super::{CachePolicy, FastPathPolicy, PolicyStats};

/// Accesses between synchronous brain steps. With every event sampled the shard emits at most
/// about three samples per access (hit or miss, admit, evict): 512 accesses stay well inside
/// the telemetry ring.
pub const STEP_EVERY: u64 = 512;

/// The fast path driven by the brain, one tier.
pub struct McosPolicy {
    fast: FastPathPolicy,
    brain: Brain,
    ring: Consumer<TelemetrySample>,
    batch: Box<[TelemetrySample]>,
    accesses: u64,
}

impl McosPolicy {
    /// One tier of `capacity` blocks under the brain's default configuration.
    pub fn new(capacity: usize) -> McosPolicy {
        let cap = u32::try_from(capacity).unwrap_or(u32::MAX).max(1);
        let topology = Topology {
            tiers: vec![TierSpec {
                kind: TierKind::HostDram,
                capacity_blocks: cap,
                block_bytes: 0,
            }],
            links: vec![],
        };
        let cfg = BrainConfig::for_node(&topology, 1, 0);
        let brain = Brain::new(topology, cfg);
        // The fast path samples exactly what the brain models: no sample crosses the ring in
        // vain.
        let (fast, ring) = FastPathPolicy::with_telemetry(
            "mcos",
            &[cap],
            PolicyTable::builtin(1),
            brain.sample_shift(),
        );
        McosPolicy {
            fast,
            brain,
            ring,
            batch: vec![EMPTY_SAMPLE; 512].into_boxed_slice(),
            accesses: 0,
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
        "mcos"
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
        let hit = self.fast.access(id, now);
        self.accesses += 1;
        if self.accesses % STEP_EVERY == 0 {
            self.step();
        }
        hit
    }

    fn request_done(&mut self, ids: &[u64]) {
        self.fast.request_done(ids);
    }

    fn stats(&self) -> PolicyStats {
        self.fast.stats()
    }
}
