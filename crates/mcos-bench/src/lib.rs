//! MCOS benchmarks that prove the split (DESIGN.md): installed policy executed by the
//! hardware-shaped fast path keeps up with line rate; the same decisions taken the software
//! way, through a policy thread behind a channel, do not.
//!
//! [`run`] measures, in one process and one run:
//!
//! 1. the fast path (`mcos_fastpath::Shard`, one pinned thread per shard, keys routed so every
//!    directory entry has one writer) on a synthetic stream over more than 10 million distinct
//!    blocks, with 1 and 2 shards, and on the block accesses of a real trace replay;
//! 2. the same decisions, on the same shard state and the same stream, through a policy thread
//!    behind a bounded channel, without and with one system call per decision;
//! 3. the fast path while the brain installs a new table every 10 ms, alternating with
//!    stretches without installs, and the commit-to-effect latency of each install;
//! 4. directory bytes per block, from the layout at 100 million blocks and from the
//!    directories built.
//!
//! Modules: [`stream`] (what the shards are fed), [`decide`] (one decision, shared by every
//! mode), [`run`] (the modes and the brain), [`probe`] and [`alloc`] (system calls, context
//! switches and allocations of a thread), [`clock`] and [`histogram`] (timing), [`report`].

pub mod alloc;
pub mod clock;
pub mod decide;
pub mod gpu;
pub mod histogram;
pub mod probe;
pub mod report;
pub mod run;
pub mod stream;

use crate::clock::Clock;
use crate::decide::{Decider, ShardShape, bench_table};
use crate::probe::ThreadCounts;
use crate::report::*;
use crate::run::{Brain, BrainRun, LoopConfig, ShardRun, Timed, fast_path, round_trip, warm};
use crate::stream::{Mix, Stream, SyntheticSpec, SyntheticStream, TraceKeys};
use mcos_core::{PolicyTable, policy_cell};
use mcos_fastpath::directory::Directory;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Barrier, Mutex};
use std::time::Duration;

/// Blocks the directory layout figure is computed for.
pub const LAYOUT_BLOCKS: u64 = 100_000_000;

/// Line-rate budget per decision: 16 KiB blocks at 400 Gb/s.
pub const BUDGET_NS: u64 = 328;

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The configuration cannot be run.
    #[error("invalid benchmark configuration: {0}")]
    Config(String),
    /// The trace could not be read.
    #[error(transparent)]
    Trace(#[from] mcos_workload::TraceError),
    /// A benchmark thread failed.
    #[error("benchmark thread failed: {0}")]
    Thread(String),
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Shard counts to run (each shard on its own thread and core).
    pub shards: Vec<usize>,
    /// Synthetic stream: resident-block capacity over all shards (a quarter in the fast tier).
    pub capacity: u64,
    /// Synthetic stream: timed decisions per run (all shards together).
    pub decisions: u64,
    /// Synthetic stream shape.
    pub synthetic: SyntheticSpec,
    /// A Mooncake-format trace whose block accesses are replayed (none: skipped).
    pub trace: Option<PathBuf>,
    /// Trace replay: capacity as a fraction of the trace's distinct blocks.
    pub trace_capacity: f64,
    /// Trace replay: timed decisions per run (the trace loops).
    pub trace_decisions: u64,
    /// Timed decisions of each round-trip mode.
    pub roundtrip_decisions: u64,
    /// Between table installs while churning.
    pub churn_interval: Duration,
    /// Length of each stretch with and without churn.
    pub churn_segment: Duration,
    /// The fast-path loop.
    pub loop_config: LoopConfig,
    /// Pin shard threads to their own cores.
    pub pin: bool,
}

impl BenchConfig {
    /// The standard run (about a minute on a 2-core VM).
    pub fn standard() -> BenchConfig {
        BenchConfig {
            shards: vec![1, 2],
            capacity: 10_000_000,
            decisions: 20_000_000,
            synthetic: SyntheticSpec {
                distinct: 1 << 40,
                hot_blocks: 100_000,
                mix: Mix::DEFAULT,
                prefetch_degree: 3,
                seed: 0x4D43_4F53,
            },
            trace: None,
            trace_capacity: 0.10,
            trace_decisions: 20_000_000,
            roundtrip_decisions: 20_000,
            churn_interval: Duration::from_millis(10),
            churn_segment: Duration::from_millis(250),
            loop_config: LoopConfig {
                batch: 32,
                sample_every: 16,
                prefetch_ahead: 8,
            },
            pin: true,
        }
    }

    /// A run small enough for a test.
    pub fn tiny() -> BenchConfig {
        let mut c = BenchConfig::standard();
        c.capacity = 20_000;
        c.decisions = 200_000;
        c.synthetic.hot_blocks = 1_000;
        c.trace_decisions = 100_000;
        c.roundtrip_decisions = 500;
        c.churn_segment = Duration::from_millis(20);
        c.churn_interval = Duration::from_millis(2);
        c
    }

    fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::Config(m));
        if self.shards.is_empty() {
            return bad("give at least one shard count".into());
        }
        for &s in &self.shards {
            if s == 0 || s > mcos_core::limits::MAX_SHARDS {
                return bad(format!(
                    "{s} shards: give 1 to {}",
                    mcos_core::limits::MAX_SHARDS
                ));
            }
            if self.capacity / (s as u64) < 64 {
                return bad(format!(
                    "capacity {} is too small for {s} shards (at least 64 blocks each)",
                    self.capacity
                ));
            }
        }
        if self.capacity > u64::from(mcos_core::limits::MAX_FRAMES_PER_TIER) {
            return bad(format!(
                "capacity {} exceeds {} frames per tier",
                self.capacity,
                mcos_core::limits::MAX_FRAMES_PER_TIER
            ));
        }
        if self.decisions == 0 || self.roundtrip_decisions == 0 {
            return bad("decision counts must be positive".into());
        }
        if !(self.trace_capacity > 0.0 && self.trace_capacity <= 1.0) {
            return bad(format!(
                "trace capacity {} must be a fraction in (0, 1]",
                self.trace_capacity
            ));
        }
        if self.synthetic.mix.hit + self.synthetic.mix.miss + self.synthetic.mix.prefetch == 0 {
            return bad("the mix needs at least one positive share".into());
        }
        if self.synthetic.mix.miss == 0 {
            return bad("the mix needs misses (they fill the cache)".into());
        }
        Ok(())
    }
}

/// Shape of each synthetic shard: a quarter of its frames in the fast tier, the rest below; the
/// fast tier keeps 1 % free for prefetch and promotions.
fn synthetic_shape(capacity: u64, shards: usize) -> ShardShape {
    let per = (capacity / shards as u64) as u32;
    let fast = (per / 4).max(8);
    ShardShape {
        tiers: vec![fast, per - fast],
        free_watermark: vec![(fast / 100).max(4), 0],
    }
}

struct FastRun<S> {
    summary: RunSummary,
    shards: Vec<ShardRun<S>>,
    brain: Option<BrainRun>,
    off: Timed,
    on: Timed,
}

/// Runs one fast-path configuration: `shards` threads, each building its shard and stream,
/// warming up, then timing `decisions / shards` decisions; with `churn`, a brain thread
/// alternates stretches with and without installs.
#[allow(clippy::too_many_arguments)]
fn fast_run<S: Stream + 'static>(
    cfg: &BenchConfig,
    name: &str,
    shards: usize,
    shape: &ShardShape,
    table: &PolicyTable,
    decisions: u64,
    churn: bool,
    clock: &Clock,
    make: impl Fn(usize, &mut Decider) -> S + Sync,
) -> Result<FastRun<S>, BenchError> {
    let (installer, readers) = policy_cell(table.clone(), shards);
    let readers: Vec<_> = readers.into_iter().map(|r| Mutex::new(Some(r))).collect();
    let barrier = Barrier::new(shards + usize::from(churn));
    let churn_flag = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_shard = decisions.div_ceil(shards as u64);
    let brain = Brain {
        interval: cfg.churn_interval,
        segment: cfg.churn_segment,
    };
    let mut pinned = cfg.pin;
    let (runs, brain_run) = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for s in 0..shards {
            let (barrier, churn_flag, make, readers) = (&barrier, &churn_flag, &make, &readers);
            let loop_cfg = cfg.loop_config;
            let pin = cfg.pin;
            let h = std::thread::Builder::new()
                .name(format!("mcos-shard-{s}"))
                .spawn_scoped(scope, move || {
                    let ok = !pin || run::pin_to(s % cpus);
                    let reader = readers[s].lock().ok().and_then(|mut r| r.take());
                    let reader = reader.ok_or("policy reader already taken")?;
                    let mut decider = Decider::new(s as u8, shape, reader);
                    let stream = make(s, &mut decider);
                    barrier.wait();
                    Ok::<_, &'static str>((
                        fast_path(decider, stream, per_shard, &loop_cfg, clock, churn_flag),
                        ok,
                    ))
                })
                .map_err(|e| BenchError::Thread(format!("cannot start shard thread: {e}")))?;
            handles.push(h);
        }
        let brain_handle = if churn {
            let (barrier, churn_flag, stop, brain) = (&barrier, &churn_flag, &stop, &brain);
            let t = table.clone();
            let pin = cfg.pin;
            Some(
                std::thread::Builder::new()
                    .name("mcos-brain".into())
                    .spawn_scoped(scope, move || {
                        // The core after the shards' (shared with shard 0 when every core has
                        // a shard).
                        if pin {
                            run::pin_to(shards % cpus);
                        }
                        barrier.wait();
                        brain.run(installer, &t, clock, churn_flag, stop).0
                    })
                    .map_err(|e| BenchError::Thread(format!("cannot start the brain: {e}")))?,
            )
        } else {
            None
        };
        let mut runs = Vec::new();
        let mut failure = None;
        for h in handles {
            match h.join() {
                Ok(Ok((run, ok))) => {
                    pinned &= ok;
                    runs.push(run);
                }
                Ok(Err(e)) => failure = Some(e.to_string()),
                Err(_) => failure = Some("a shard thread panicked".into()),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let brain_run = match brain_handle.map(|h| h.join()) {
            Some(Ok(b)) => Some(b),
            Some(Err(_)) => {
                failure = Some("the brain thread panicked".into());
                None
            }
            None => None,
        };
        match failure {
            Some(f) => Err(BenchError::Thread(f)),
            None => Ok((runs, brain_run)),
        }
    })?;

    let (mut off, mut on) = (Timed::default(), Timed::default());
    let mut threads: Option<ThreadCounts> = None;
    let mut events = EventCounts {
        hits: vec![0; shape.tiers.len()],
        ..EventCounts::default()
    };
    let mut rate = 0.0;
    let mut wall_rate = 0.0;
    let mut decided = 0;
    for r in &runs {
        off.merge(&r.modes[0]);
        on.merge(&r.modes[1]);
        rate += r.modes[0].rate();
        wall_rate += per_shard as f64 * 1e9 / r.wall_ns.max(1) as f64;
        decided += r.modes[0].decisions + r.modes[1].decisions;
        match &mut threads {
            Some(t) => t.add(&r.counts),
            None => threads = Some(r.counts),
        }
        let c = &r.counters;
        events.accesses += c.accesses;
        for (t, h) in events.hits.iter_mut().enumerate() {
            *h += c.hits[t];
        }
        events.misses += c.misses;
        events.evictions += c.evictions;
        events.demotions += c.demotions;
        events.prefetch_issued += c.prefetch_issued;
        events.prefetch_dropped += c.prefetch_dropped;
        events.prefetch_useful += c.prefetch_useful;
        events.prefetch_unused += c.prefetch_unused;
        events.intents += c.intents;
        events.moves_done += c.moves_done;
        events.rejected_directory += c.rejected_directory;
        events.policy_installs += c.policy_installs;
    }
    let churn_summary = brain_run
        .as_ref()
        .map(|b| churn_summary(&off, &on, b, cfg, shards));
    let summary = RunSummary {
        stream: name.into(),
        shards,
        pinned,
        capacity_blocks: shape.capacity() * shards as u64,
        decisions_per_s: rate,
        decisions_per_s_per_core: rate / shards as f64,
        wall_decisions_per_s: wall_rate,
        p50_ns: off.batch.percentile(0.5),
        p99_ns: off.batch.percentile(0.99),
        p999_ns: off.batch.percentile(0.999),
        event_p50_ns: off.event.percentile(0.5),
        event_p99_ns: off.event.percentile(0.99),
        event_p999_ns: off.event.percentile(0.999),
        event_by_kind: ["hit", "miss", "sequence_read"]
            .iter()
            .zip(off.by_kind.iter())
            .map(|(kind, h)| KindLatency {
                kind: (*kind).into(),
                samples: h.count(),
                p50_ns: h.percentile(0.5),
                p99_ns: h.percentile(0.99),
                mean_ns: h.mean(),
            })
            .collect(),
        churn_p99_ns: (on.decisions > 0).then(|| on.batch.percentile(0.99)),
        decisions: decided,
        distinct_blocks: 0,
        events,
        threads: threads.unwrap_or_default(),
        churn: churn_summary,
    };
    Ok(FastRun {
        summary,
        shards: runs,
        brain: brain_run,
        off,
        on,
    })
}

fn churn_summary(
    off: &Timed,
    on: &Timed,
    b: &BrainRun,
    cfg: &BenchConfig,
    shards: usize,
) -> ChurnSummary {
    let with = on.batch.percentile(0.99);
    let without = off.batch.percentile(0.99);
    ChurnSummary {
        p99_ns: with,
        p99_ns_without: without,
        p99_ratio: with as f64 / without.max(1) as f64,
        commit_to_effect_p50_ns: b.commit_to_effect.percentile(0.5),
        commit_to_effect_p99_ns: b.commit_to_effect.percentile(0.99),
        commit_to_effect_max_ns: b.commit_to_effect.max(),
        installs: b.installs,
        unseen: b.unseen,
        interval_ms: cfg.churn_interval.as_millis() as u64,
        shards,
    }
}

fn round_trip_summary(r: &run::RoundTripRun) -> RoundTripSummary {
    RoundTripSummary {
        p50_ns: r.latency.percentile(0.5),
        p99_ns: r.latency.percentile(0.99),
        p999_ns: r.latency.percentile(0.999),
        decisions_per_s: r.decisions as f64 * 1e9 / r.wall_ns.max(1) as f64,
        decisions: r.decisions,
        hit_ratio: r.hits as f64 / r.decisions.max(1) as f64,
        caller: r.caller,
        policy_thread: r.policy,
    }
}

/// Runs the whole benchmark; `progress` hears what is starting.
pub fn run(cfg: &BenchConfig, mut progress: impl FnMut(&str)) -> Result<Report, BenchError> {
    cfg.validate()?;
    let mut shard_counts = cfg.shards.clone();
    shard_counts.sort_unstable();
    shard_counts.dedup();
    let clock = Clock::calibrate(Duration::from_millis(50));
    let clock_overhead_ns = clock.overhead_ns(10_000);
    let table = bench_table(2, cfg.synthetic.prefetch_degree);
    let mut runs = Vec::new();
    let mut headline = None;
    let mut directory_built = (0u64, 0u64);

    for &shards in &shard_counts {
        progress(&format!(
            "fast path, synthetic stream, {shards} shard(s): warming {} blocks, then {} decisions",
            cfg.capacity, cfg.decisions
        ));
        let shape = synthetic_shape(cfg.capacity, shards);
        let spec = cfg.synthetic;
        let fast = u64::from(shape.tiers[0]);
        let per = shape.capacity();
        let warm_extra = (cfg.decisions / shards as u64 / 10).max(1000);
        let run = fast_run(
            cfg,
            "synthetic",
            shards,
            &shape,
            &table,
            cfg.decisions,
            true,
            &clock,
            |s, decider| {
                let mut stream = SyntheticStream::new(spec, s, shards, fast, per);
                // Fill the cache with misses only, then settle into the mix.
                stream.set_warming(true);
                warm(decider, &mut stream, per * 2, |st| st.inserted() >= per);
                stream.set_warming(false);
                warm(decider, &mut stream, warm_extra, |_| false);
                stream
            },
        )?;
        let mut summary = run.summary.clone();
        summary.distinct_blocks = run.shards.iter().map(|r| r.stream.distinct_touched()).sum();
        let built: u64 = run
            .shards
            .iter()
            .map(|r| r.decider.shard().directory_bytes() as u64)
            .sum();
        if summary.capacity_blocks > directory_built.0 {
            directory_built = (summary.capacity_blocks, built);
        }
        runs.push(summary);
        if headline.is_none() {
            headline = Some(run);
        }
    }
    let Some(head) = headline else {
        return Err(BenchError::Config("no shard count to run".into()));
    };

    // The software round trip on the same shard and the same stream, continuing where the
    // fast path stopped.
    progress(&format!(
        "software round trip: {} decisions through a policy thread, then the same with a system call each",
        cfg.roundtrip_decisions
    ));
    let FastRun {
        summary: head_summary,
        shards: mut head_shards,
        brain,
        off,
        on,
    } = head;
    let ShardRun {
        decider,
        mut stream,
        counts,
        syscall_error,
        ..
    } = head_shards.remove(0);
    let warmup = (cfg.roundtrip_decisions / 10).clamp(10, 1000);
    let (rt, decider) = round_trip(
        decider,
        &mut stream,
        cfg.roundtrip_decisions,
        warmup,
        false,
        &clock,
    )
    .map_err(BenchError::Thread)?;
    let (rts, decider) = round_trip(
        decider,
        &mut stream,
        cfg.roundtrip_decisions,
        warmup,
        true,
        &clock,
    )
    .map_err(BenchError::Thread)?;
    drop((decider, stream, head_shards));

    if let Some(path) = &cfg.trace {
        for &shards in &shard_counts {
            let keys = TraceKeys::load(path, shards)?;
            progress(&format!(
                "fast path, trace {} ({} accesses a pass), {shards} shard(s): {} decisions",
                path.display(),
                keys.accesses,
                cfg.trace_decisions
            ));
            let capacity =
                ((keys.unique_blocks as f64 * cfg.trace_capacity) as u64).max(64 * shards as u64);
            let per = (capacity / shards as u64) as u32;
            let shape = ShardShape {
                tiers: vec![per],
                free_watermark: vec![0],
            };
            let run = fast_run(
                cfg,
                "trace",
                shards,
                &shape,
                &PolicyTable::builtin(1),
                cfg.trace_decisions,
                false,
                &clock,
                |s, decider| {
                    let mut stream = keys.stream(s);
                    let pass = stream.pass_len() as u64;
                    warm(decider, &mut stream, pass, |_| false);
                    stream
                },
            )?;
            let mut summary = run.summary;
            summary.distinct_blocks = keys.unique_blocks;
            runs.push(summary);
        }
    }

    let fastpath = FastPathSummary {
        decisions_per_s: off.rate(),
        p50_ns: off.batch.percentile(0.5),
        p99_ns: off.batch.percentile(0.99),
        p999_ns: off.batch.percentile(0.999),
        event_p50_ns: off.event.percentile(0.5),
        event_p99_ns: off.event.percentile(0.99),
        event_p999_ns: off.event.percentile(0.999),
        allocations: counts.allocations,
        syscalls: counts.syscalls,
        voluntary_ctx_switches: counts.voluntary_ctx_switches,
        involuntary_ctx_switches: counts.involuntary_ctx_switches,
        decisions: off.decisions,
        syscall_error,
    };
    let churn = match &brain {
        Some(b) => churn_summary(&off, &on, b, cfg, head_summary.shards),
        None => return Err(BenchError::Thread("the churn run had no brain".into())),
    };
    let roundtrip = round_trip_summary(&rt);
    let roundtrip_syscall = round_trip_summary(&rts);
    let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    let ratios = Ratios {
        roundtrip_p99_over_fastpath_p99: ratio(roundtrip.p99_ns, fastpath.p99_ns),
        roundtrip_syscall_p99_over_fastpath_p99: ratio(roundtrip_syscall.p99_ns, fastpath.p99_ns),
        roundtrip_p99_over_fastpath_event_p99: ratio(roundtrip.p99_ns, fastpath.event_p99_ns),
    };
    let layout = Directory::bytes_for(LAYOUT_BLOCKS as usize) as f64 / LAYOUT_BLOCKS as f64;
    let directory = DirectorySummary {
        layout_blocks: LAYOUT_BLOCKS,
        layout_bytes_per_block: layout,
        built_blocks: directory_built.0,
        built_bytes_per_block: directory_built.1 as f64 / directory_built.0.max(1) as f64,
        frame_bytes_per_block: std::mem::size_of::<mcos_fastpath::frames::Frame>() as f64,
    };
    let targets = targets(&fastpath, &ratios, &churn, layout);
    Ok(Report {
        fastpath,
        roundtrip,
        roundtrip_syscall,
        churn,
        directory_bytes_per_block: layout,
        directory,
        ratios,
        runs,
        targets,
        config: ConfigSummary {
            synthetic: cfg.synthetic,
            capacity_blocks: cfg.capacity,
            decisions: cfg.decisions,
            trace: cfg.trace.as_ref().map(|p| p.display().to_string()),
            roundtrip_decisions: cfg.roundtrip_decisions,
            loop_config: cfg.loop_config,
            clock_ghz: clock.ticks_per_s() / 1e9,
            clock_overhead_ns,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
    })
}

fn targets(f: &FastPathSummary, r: &Ratios, c: &ChurnSummary, layout: f64) -> Vec<Target> {
    let t = |name: &str, bar: &str, value: String, met: bool| Target {
        name: name.into(),
        bar: bar.into(),
        value,
        met,
    };
    let zero = |v: Option<u64>| v == Some(0);
    vec![
        t(
            "fast-path decisions per second per core",
            ">= 10,000,000",
            format!("{:.0}", f.decisions_per_s),
            f.decisions_per_s >= 10e6,
        ),
        t(
            "fast-path p99 per decision",
            &format!("<= {BUDGET_NS} ns"),
            format!("{} ns", f.p99_ns),
            f.p99_ns <= BUDGET_NS,
        ),
        t(
            "fast-path allocations after warm-up",
            "0",
            format!("{:?}", f.allocations),
            zero(f.allocations),
        ),
        t(
            "fast-path system calls",
            "0",
            format!("{:?}", f.syscalls),
            zero(f.syscalls),
        ),
        t(
            "fast-path voluntary context switches",
            "0",
            f.voluntary_ctx_switches.to_string(),
            f.voluntary_ctx_switches == 0,
        ),
        t(
            "round-trip p99 over fast-path p99",
            ">= 20",
            format!("{:.1}", r.roundtrip_p99_over_fastpath_p99),
            r.roundtrip_p99_over_fastpath_p99 >= 20.0,
        ),
        t(
            "fast-path p99 with churn over without",
            "<= 1.10",
            format!("{:.3}", c.p99_ratio),
            c.p99_ratio <= 1.10,
        ),
        t(
            "directory bytes per block at 100 M blocks",
            "<= 16",
            format!("{layout:.2}"),
            layout <= 16.0,
        ),
    ]
}
