//! The brain's cost, measured on one trace at several capacities:
//!
//! - synchronous mode (as `mcos replay` runs it): the brain's own time per million accesses,
//!   its install latency (compile, validate, publish), decisions and switches;
//! - threaded mode (as a node runs it): the fast path's decision rate (accesses per second,
//!   each a lookup and, on a miss, an insert and its commit) in three runs of the same process:
//!   the built-in table with no telemetry; the built-in table with telemetry drained by a
//!   brain thread that may not install (the cost of being observed); and the brain acting
//!   (its tables change the work per access: a table that refuses more blocks does less). Also
//!   the samples the fast path dropped rather than wait.
//!
//! The threaded runs replay the trace's access stream `PASSES` times back to back (about 1.4 M
//! accesses for Mooncake), so that the brain thread's start and its first adjustments of its
//! sampling rate are a small part of the run.
//!
//! ```text
//! cargo run --release -p mcos-workload --example brain_cost -- TRACE [FRACTIONS] [REPEATS]
//! ```

use std::time::{Duration, Instant};

use mcos_brain::{Brain, BrainConfig, BrainThread, Cadence};
use mcos_core::limits::{MAX_TIERS, TELEMETRY_RING_DEPTH};
use mcos_core::{
    BlockKey, Namespace, PolicyTable, TierKind, TierSpec, Topology, policy_cell, ring,
};
use mcos_fastpath::{Access, Insert, Shard, ShardConfig};
use mcos_workload::policy::{CachePolicy, McosPolicy};
use mcos_workload::{Request, TraceReader};

/// Passes over the trace in the threaded runs.
const PASSES: usize = 5;

fn topology(cap: u32) -> Topology {
    Topology {
        tiers: vec![TierSpec {
            kind: TierKind::HostDram,
            capacity_blocks: cap,
            block_bytes: 1,
        }],
        links: vec![],
    }
}

/// Runs `keys` through a one-tier shard; with `brain`, telemetry goes to a brain thread.
/// Returns (seconds, hits, dropped samples, brain busy seconds, brain installs).
fn threaded(keys: &[BlockKey], cap: u32, brain: bool, act: bool) -> (f64, u64, u64, f64, u64) {
    let (mut installer, mut readers) = policy_cell(PolicyTable::builtin(1), 1);
    let (tx, _rx) = ring(1024);
    let mut cfg = BrainConfig::for_node(&topology(cap), 1, 0);
    cfg.table_ttl_ticks = 0;
    let shift = cfg.sample_shift();
    let (ttx, trx) = ring(TELEMETRY_RING_DEPTH);
    let mut shard = Shard::new(
        ShardConfig {
            shard: 0,
            tiers: vec![(0, cap)],
            block_bytes: 0,
            routes: [[0; MAX_TIERS]; MAX_TIERS],
            free_watermark: vec![0],
            telemetry_shift: shift,
        },
        readers.remove(0),
        vec![tx],
        brain.then_some(ttx),
    );
    let thread = brain.then(|| {
        let b = Brain::new(topology(cap), cfg);
        BrainThread::spawn(
            b,
            vec![trx],
            Box::new(move |t| {
                if act {
                    installer.try_install(t)
                } else {
                    // Observe only: every install is refused as if a shard were behind.
                    Err(mcos_core::InstallError::ReadersBehind {
                        reader: 0,
                        seen: 0,
                        current: 1,
                    })
                }
            }),
            Cadence {
                period: Duration::from_micros(200),
                refresh: Duration::from_secs(3600),
            },
        )
    });
    let start = Instant::now();
    let mut hits = 0u64;
    for &k in keys {
        match shard.access(k, None) {
            Access::Hit { .. } | Access::Wait { .. } => hits += 1,
            Access::Miss => {
                if let Insert::Fill { tier, frame } = shard.insert(k, 0) {
                    shard.commit_fill(k, tier, frame, true);
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let dropped = shard.counters().telemetry_dropped;
    let (busy, installs) = match thread.and_then(Result::ok).and_then(BrainThread::stop) {
        Some(b) => (b.stats().busy.as_secs_f64(), b.stats().installs),
        None => (0.0, 0),
    };
    (secs, hits, dropped, busy, installs)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: brain_cost TRACE [FRACTIONS] [REPEATS]")?;
    let fractions: Vec<f64> = args
        .next()
        .unwrap_or_else(|| "0.01,0.05,0.10,0.25".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let repeats: usize = args.next().unwrap_or_else(|| "3".into()).parse()?;
    let reqs: Vec<Request> = TraceReader::open(&path)?.collect::<Result<_, _>>()?;
    let ids: Vec<u64> = reqs
        .iter()
        .flat_map(|r| r.hash_ids.iter().copied())
        .collect();
    let unique = ids.iter().collect::<std::collections::HashSet<_>>().len();
    let root = Namespace::for_model("trace").root();
    let one: Vec<BlockKey> = ids
        .iter()
        .map(|&i| BlockKey::from_trace_id_under(root, i))
        .collect();
    let keys: Vec<BlockKey> = (0..PASSES).flat_map(|_| one.iter().copied()).collect();
    println!(
        "{} accesses ({} per threaded run), {} unique blocks; medians of {repeats} runs\n",
        ids.len(),
        keys.len(),
        unique
    );
    println!(
        "{:>8} | {:>11} {:>10} {:>9} {:>8} | {:>12} {:>12} {:>6} {:>12} {:>6} {:>9} {:>11}",
        "capacity",
        "sync brain",
        "install",
        "decisions",
        "switches",
        "fixed table",
        "observed",
        "ratio",
        "brain acts",
        "ratio",
        "dropped",
        "brain busy"
    );
    println!(
        "{:>8} | {:>11} {:>10} {:>9} {:>8} | {:>12} {:>12} {:>6} {:>12} {:>6} {:>9} {:>11}",
        "",
        "ms/M acc",
        "us each",
        "",
        "",
        "M acc/s",
        "M acc/s",
        "",
        "M acc/s",
        "",
        "samples",
        "ms/M acc"
    );
    for f in fractions {
        let cap = ((unique as f64 * f).round() as u32).max(1);
        // Synchronous mode.
        let mut sync_ms = Vec::new();
        let mut install_us = Vec::new();
        let (mut decisions, mut switches) = (0, 0);
        for _ in 0..repeats {
            let mut m = McosPolicy::new(cap as usize);
            for (n, &id) in ids.iter().enumerate() {
                m.access(id, n as u64);
            }
            let s = m.brain().stats();
            sync_ms.push(s.busy.as_secs_f64() * 1e3 / (ids.len() as f64 / 1e6));
            install_us.push(s.install_time.as_secs_f64() * 1e6 / s.installs.max(1) as f64);
            decisions = s.decisions;
            switches = s.switches;
        }
        // Threaded mode: alternate so both see the same machine state.
        let (mut fixed, mut observed, mut with, mut drops, mut busy) =
            (Vec::new(), Vec::new(), Vec::new(), 0, Vec::new());
        for _ in 0..repeats {
            let (s, _, _, _, _) = threaded(&keys, cap, false, false);
            fixed.push(keys.len() as f64 / s / 1e6);
            let (s, _, _, _, _) = threaded(&keys, cap, true, false);
            observed.push(keys.len() as f64 / s / 1e6);
            let (s, _, d, b, _) = threaded(&keys, cap, true, true);
            with.push(keys.len() as f64 / s / 1e6);
            drops = d;
            busy.push(b * 1e3 / (keys.len() as f64 / 1e6));
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (fx, ob, wb) = (med(&mut fixed), med(&mut observed), med(&mut with));
        println!(
            "{:>7.0}% | {:>11.1} {:>10.1} {:>9} {:>8} | {:>12.2} {:>12.2} {:>6.2} {:>12.2} {:>6.2} {:>9} {:>11.1}",
            f * 100.0,
            med(&mut sync_ms),
            med(&mut install_us),
            decisions,
            switches,
            fx,
            ob,
            ob / fx,
            wb,
            wb / fx,
            drops,
            med(&mut busy)
        );
    }
    Ok(())
}
