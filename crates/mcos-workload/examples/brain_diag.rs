//! Diagnostics of the brain on one trace and capacity: every candidate of the knob grid run as a
//! fixed table on the real fast path (what it would score installed from the start), next to
//! its shadow's score and the brain's own run (its switches).
//!
//! ```text
//! cargo run --release -p mcos-workload --example brain_diag -- TRACE.jsonl FRACTION
//! WINDOWS=10000 cargo run --release -p mcos-workload --example brain_diag -- TRACE.jsonl FRACTION
//! ```
//!
//! `BRAIN_ONLY=1` prints the brain's run alone (its switches, reverts and mirror score).
//! `WINDOWS=N` prints hit ratios per N accesses of `mcos` and of every candidate fixed from the
//! start: where a switch lands after the phase it was chosen for, `mcos` falls below them all.

use mcos_brain::{Knobs, candidates};
use mcos_core::PolicyTable;
use mcos_workload::policy::{CachePolicy, FastPathPolicy, McosPolicy};
use mcos_workload::{Request, TraceReader};

fn run(p: &mut dyn CachePolicy, reqs: &[Request]) -> f64 {
    let mut n = 0u64;
    let mut h = 0u64;
    for r in reqs {
        for &id in &r.hash_ids {
            if p.access(id, n) {
                h += 1;
            }
            n += 1;
        }
        p.request_done(&r.hash_ids);
    }
    h as f64 / n.max(1) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: brain_diag TRACE FRACTION")?;
    let frac: f64 = args.next().unwrap_or_else(|| "0.01".into()).parse()?;
    let reqs: Vec<Request> = TraceReader::open(&path)?.collect::<Result<_, _>>()?;
    let mut uniq = std::collections::HashSet::new();
    reqs.iter().flat_map(|r| r.hash_ids.iter()).for_each(|&i| {
        uniq.insert(i);
    });
    let cap = ((uniq.len() as f64 * frac).round() as usize).max(1);
    // KNOBS="w,p,h,a,s;...": only score these fixed knob sets on the fast path.
    if let Ok(list) = std::env::var("KNOBS") {
        for item in list.split(';') {
            let v: Vec<u8> = item.split(',').map(str::parse).collect::<Result<_, _>>()?;
            let k = Knobs {
                window_share: v[0],
                protected_share: v[1],
                history_quarters: v[2],
                history_admit: v[3] == 1,
                sketch_window_x: v[4],
            };
            let table = k.compile(&PolicyTable::builtin(1), cap as u64);
            let mut f = FastPathPolicy::new("fixed", &[cap as u32], table);
            println!(
                "{item:<16} {:<16} fixed {:.4}",
                k.label(),
                run(&mut f, &reqs)
            );
        }
        return Ok(());
    }
    // TIERS=f1,f2: a hierarchy below tier 0 (fractions), fast path counters printed.
    if let Ok(list) = std::env::var("TIERS") {
        let mut caps = vec![cap as u32];
        for f in list.split(',') {
            caps.push((uniq.len() as f64 * f.parse::<f64>()?).round() as u32);
        }
        let topo = mcos_core::Topology {
            tiers: caps
                .iter()
                .map(|&n| mcos_core::TierSpec {
                    kind: mcos_core::TierKind::HostDram,
                    capacity_blocks: n,
                    block_bytes: 1,
                })
                .collect(),
            links: vec![],
        };
        for k in candidates() {
            let table = k.compile(&mcos_core::PolicyTable::builtin(caps.len()), cap as u64);
            let mut f = FastPathPolicy::new("fixed", &caps, table);
            let r = run(&mut f, &reqs);
            println!(
                "{:<20} hierarchy {r:.4} tier-0 hits {}",
                k.label(),
                f.shard().counters().hits[0]
            );
        }
        let mut m = McosPolicy::with_topology(topo, None);
        let r = run(&mut m, &reqs);
        println!("hierarchy {caps:?}: {r:.4}");
        println!("{:?}", m.fast_path().shard().counters());
        println!("{:?}", m.brain().stats().switch_log.len());
        return Ok(());
    }
    // WINDOWS=N: hit ratios per N accesses of mcos, fixed LRU and every fixed candidate.
    if let Ok(n) = std::env::var("WINDOWS") {
        let n: usize = n.parse()?;
        let ids: Vec<u64> = reqs
            .iter()
            .flat_map(|r| r.hash_ids.iter().copied())
            .collect();
        let windows = |p: &mut dyn CachePolicy| -> String {
            ids.chunks(n)
                .enumerate()
                .map(|(c, ch)| {
                    let h = ch
                        .iter()
                        .enumerate()
                        .filter(|&(j, &id)| p.access(id, (c * n + j) as u64))
                        .count();
                    format!("{:.3}", h as f64 / ch.len() as f64)
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("{:<18} {}", "mcos", windows(&mut McosPolicy::new(cap)));
        for k in candidates() {
            let table = k.compile(&PolicyTable::builtin(1), cap as u64);
            let mut f = FastPathPolicy::new("fixed", &[cap as u32], table);
            println!("{:<18} {}", k.label(), windows(&mut f));
        }
        return Ok(());
    }
    let mut m = McosPolicy::new(cap);
    let mcos = run(&mut m, &reqs);
    let b = m.brain();
    println!(
        "capacity {cap}: mcos {mcos:.4}, shadow capacity {}, sample shift {}, switches {:?}",
        b.shadow_capacity(),
        b.sample_shift(),
        b.stats().switch_log
    );
    let (mh, ma) = b.mirror_counts();
    println!(
        "mirror {:.4} (the installed knobs on the sampled accesses), reverts {}, trials confirmed {}, held back by forks {}",
        mh as f64 / ma.max(1) as f64,
        b.stats().reverts,
        b.stats().trials_confirmed,
        b.stats().fork_holds
    );
    // BRAIN_ONLY=1: the brain's run alone, without the fixed candidates.
    if std::env::var_os("BRAIN_ONLY").is_some() {
        return Ok(());
    }
    let shadows = b.shadow_scores();
    for (k, (label, sh, sa)) in candidates().into_iter().zip(shadows) {
        let table = k.compile(&PolicyTable::builtin(1), cap as u64);
        let mut f = FastPathPolicy::new("fixed", &[cap as u32], table);
        let fixed = run(&mut f, &reqs);
        println!(
            "{label:<16} fixed {fixed:.4}  shadow {:.4}",
            sh as f64 / sa.max(1) as f64
        );
    }
    // SWITCH=label@access,...: the fixed fast path with tables installed at those points.
    if let Ok(plan) = std::env::var("SWITCH") {
        let grid = candidates();
        let mut steps: Vec<(u64, Knobs)> = Vec::new();
        for item in plan.split(',') {
            let (label, at) = item.split_once('@').ok_or("label@access")?;
            let k = grid
                .iter()
                .find(|k| k.label() == label)
                .ok_or("unknown label")?;
            steps.push((at.parse()?, *k));
        }
        let mut f = FastPathPolicy::new("switched", &[cap as u32], PolicyTable::builtin(1));
        let (mut n, mut h) = (0u64, 0u64);
        let (mut wn, mut wh) = (0u64, 0u64);
        for r in &reqs {
            for &id in &r.hash_ids {
                if let Some(&(_, k)) = steps.iter().find(|(at, _)| *at == n) {
                    println!("  window before {n}: {:.4}", wh as f64 / wn.max(1) as f64);
                    (wn, wh) = (0, 0);
                    f.installer()
                        .try_install(&k.compile(&PolicyTable::builtin(1), cap as u64))
                        .map_err(|e| e.to_string())?;
                }
                if f.access(id, n) {
                    h += 1;
                    wh += 1;
                }
                n += 1;
                wn += 1;
            }
        }
        println!("  last window: {:.4}", wh as f64 / wn.max(1) as f64);
        println!("switched run: {:.4}", h as f64 / n as f64);
    }
    Ok(())
}
