//! The benchmark's report: the stable JSON fields the issue names at the top level
//! (`fastpath`, `roundtrip`, `roundtrip_syscall`, `churn`, `directory_bytes_per_block`), and the
//! detail behind them.

use crate::probe::ThreadCounts;
use crate::run::LoopConfig;
use crate::stream::SyntheticSpec;
use serde::Serialize;

/// Everything one run of `mcos bench fastpath` measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The fast path, one shard, synthetic stream, without churn (per core).
    pub fastpath: FastPathSummary,
    /// The same decisions through a policy thread behind a channel.
    pub roundtrip: RoundTripSummary,
    /// The same, plus one system call per decision on the policy thread.
    pub roundtrip_syscall: RoundTripSummary,
    /// The fast path while the brain installs a table every `interval_ms`.
    pub churn: ChurnSummary,
    /// Directory bytes per resident block at 100 million blocks (from the layout).
    pub directory_bytes_per_block: f64,
    /// Directory sizes: the layout at 100 M blocks and the directories actually built.
    pub directory: DirectorySummary,
    /// Round-trip p99 over fast-path p99, from the same run.
    pub ratios: Ratios,
    /// Every fast-path run: synthetic and trace streams, 1 and 2 shards.
    pub runs: Vec<RunSummary>,
    /// Each target and whether this run met it.
    pub targets: Vec<Target>,
    /// The configuration.
    pub config: ConfigSummary,
}

/// Headline fast-path figures.
#[derive(Clone, Debug, Serialize)]
pub struct FastPathSummary {
    /// Decisions per second per core (decisions / time in timed batches).
    pub decisions_per_s: f64,
    /// Per-decision latency of a batch (batch time / decisions in it): p50.
    pub p50_ns: u64,
    /// p99 of the same.
    pub p99_ns: u64,
    /// p99.9 of the same.
    pub p999_ns: u64,
    /// Sampled per-event latency p50 (each sample includes one clock read, `clock_overhead_ns`).
    pub event_p50_ns: u64,
    /// Sampled per-event p99.
    pub event_p99_ns: u64,
    /// Sampled per-event p99.9.
    pub event_p999_ns: u64,
    /// Heap allocations on the fast-path thread during the timed run (null: not counted).
    pub allocations: Option<u64>,
    /// System calls entered by the fast-path thread during the timed run (null: not counted).
    pub syscalls: Option<u64>,
    /// Voluntary context switches of the fast-path thread during the timed run.
    pub voluntary_ctx_switches: u64,
    /// Involuntary context switches (preemptions by other load).
    pub involuntary_ctx_switches: u64,
    /// Decisions in the batch figures.
    pub decisions: u64,
    /// Why system calls were not counted, if they were not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syscall_error: Option<String>,
}

/// Headline round-trip figures.
#[derive(Clone, Debug, Serialize)]
pub struct RoundTripSummary {
    /// Latency of one decision as the caller sees it: p50.
    pub p50_ns: u64,
    /// p99.
    pub p99_ns: u64,
    /// p99.9.
    pub p999_ns: u64,
    /// Decisions per second (one caller, one policy thread).
    pub decisions_per_s: f64,
    /// Decisions timed.
    pub decisions: u64,
    /// Hit ratio of the timed decisions (the same stream as the fast path's).
    pub hit_ratio: f64,
    /// The caller's counts during the timed window.
    pub caller: ThreadCounts,
    /// The policy thread's counts during the timed window.
    pub policy_thread: ThreadCounts,
}

/// Churn figures.
#[derive(Clone, Debug, Serialize)]
pub struct ChurnSummary {
    /// Fast-path batch p99 while tables are being installed.
    pub p99_ns: u64,
    /// The same run's batch p99 while no table is installed.
    pub p99_ns_without: u64,
    /// p99_ns / p99_ns_without.
    pub p99_ratio: f64,
    /// Commit to effect (install start until every shard runs on the new epoch): p50.
    pub commit_to_effect_p50_ns: u64,
    /// p99.
    pub commit_to_effect_p99_ns: u64,
    /// Largest.
    pub commit_to_effect_max_ns: u64,
    /// Tables installed.
    pub installs: u64,
    /// Installs not seen by every shard within 100 ms.
    pub unseen: u64,
    /// Between installs.
    pub interval_ms: u64,
    /// Shards in the run these figures come from.
    pub shards: usize,
}

/// Directory state per block.
#[derive(Clone, Debug, Serialize)]
pub struct DirectorySummary {
    /// Blocks the layout figure is for.
    pub layout_blocks: u64,
    /// Bytes per block at `layout_blocks`.
    pub layout_bytes_per_block: f64,
    /// Resident-block capacity of the largest directory built in this run (all shards).
    pub built_blocks: u64,
    /// Its bytes per block.
    pub built_bytes_per_block: f64,
    /// For comparison: frame-table bytes per block (the frame records the block's tag, which
    /// the directory checks fingerprint matches against).
    pub frame_bytes_per_block: f64,
}

/// Ratios within the run.
#[derive(Clone, Debug, Serialize)]
pub struct Ratios {
    /// roundtrip.p99_ns / fastpath.p99_ns.
    pub roundtrip_p99_over_fastpath_p99: f64,
    /// roundtrip_syscall.p99_ns / fastpath.p99_ns.
    pub roundtrip_syscall_p99_over_fastpath_p99: f64,
    /// roundtrip.p99_ns / fastpath.event_p99_ns (per event against per event).
    pub roundtrip_p99_over_fastpath_event_p99: f64,
}

/// One fast-path run.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// "synthetic" or "trace".
    pub stream: String,
    /// Shards (threads, one per core).
    pub shards: usize,
    /// Whether the shard threads were pinned to their cores.
    pub pinned: bool,
    /// Resident-block capacity over all shards.
    pub capacity_blocks: u64,
    /// Decisions per second, all shards together (churn-off batches).
    pub decisions_per_s: f64,
    /// The same per shard (= per core).
    pub decisions_per_s_per_core: f64,
    /// Decisions per second of wall time, including the untimed queue refills (stream
    /// generation) and the sampled batches.
    pub wall_decisions_per_s: f64,
    /// Batch per-decision latency without churn: p50.
    pub p50_ns: u64,
    /// p99.
    pub p99_ns: u64,
    /// p99.9.
    pub p999_ns: u64,
    /// Sampled per-event p50.
    pub event_p50_ns: u64,
    /// Sampled per-event p99.
    pub event_p99_ns: u64,
    /// Sampled per-event p99.9.
    pub event_p999_ns: u64,
    /// Sampled per-event latency by kind of decision (hit, miss, sequence read).
    pub event_by_kind: Vec<KindLatency>,
    /// Batch p99 with churn (null when the run had none).
    pub churn_p99_ns: Option<u64>,
    /// Decisions timed (all modes).
    pub decisions: u64,
    /// Blocks the stream touched, warm-up included (synthetic: distinct keys handed out).
    pub distinct_blocks: u64,
    /// Fast-path events during the timed window, summed over shards.
    pub events: EventCounts,
    /// Counts summed over shard threads.
    pub threads: ThreadCounts,
    /// Churn measurements of this run, if it churned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<ChurnSummary>,
}

/// Sampled per-event latency of one kind of decision.
#[derive(Clone, Debug, Serialize)]
pub struct KindLatency {
    /// "hit", "miss" or "sequence_read".
    pub kind: String,
    /// Samples.
    pub samples: u64,
    /// p50.
    pub p50_ns: u64,
    /// p99.
    pub p99_ns: u64,
    /// Mean.
    pub mean_ns: f64,
}

/// What the decisions did (from the shards' counters).
#[derive(Clone, Debug, Default, Serialize)]
pub struct EventCounts {
    /// ACCESS events.
    pub accesses: u64,
    /// Hits per tier, fastest first.
    pub hits: Vec<u64>,
    /// Misses (each inserted).
    pub misses: u64,
    /// Blocks dropped from their last tier.
    pub evictions: u64,
    /// Blocks moved down a tier.
    pub demotions: u64,
    /// Prefetch moves issued.
    pub prefetch_issued: u64,
    /// Prefetches dropped (no free frame or slot, or none beyond the reserve while
    /// prefetches are inaccurate).
    pub prefetch_dropped: u64,
    /// Prefetched blocks read before they left the tier.
    pub prefetch_useful: u64,
    /// Prefetched blocks evicted or demoted unread.
    pub prefetch_unused: u64,
    /// Sequence intents.
    pub intents: u64,
    /// Moves completed.
    pub moves_done: u64,
    /// Inserts refused by the directory.
    pub rejected_directory: u64,
    /// Tables picked up.
    pub policy_installs: u64,
}

/// One target.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// What.
    pub name: String,
    /// The bar.
    pub bar: String,
    /// This run's figure.
    pub value: String,
    /// Met?
    pub met: bool,
}

/// The configuration that produced the report.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigSummary {
    /// Synthetic stream.
    pub synthetic: SyntheticSpec,
    /// Synthetic capacity (blocks, all shards).
    pub capacity_blocks: u64,
    /// Timed synthetic decisions per run.
    pub decisions: u64,
    /// Trace file, if any.
    pub trace: Option<String>,
    /// Timed decisions of each round-trip mode.
    pub roundtrip_decisions: u64,
    /// Fast-path loop.
    pub loop_config: LoopConfig,
    /// Clock rate, GHz.
    pub clock_ghz: f64,
    /// Cost of one clock read pair, ns.
    pub clock_overhead_ns: u64,
    /// CPUs online.
    pub cpus: usize,
}
