//! `mcos replay --tiers`: the tier-hierarchy comparison (hits per tier, prefill time saved).

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::{Context, Result, bail};
use mcos_brain::{CostModel, Placement};
use mcos_core::{Link, PolicyTable, TierId, TierKind, TierSpec, Topology};
use mcos_workload::AccessSeq;
use mcos_workload::policy::{FastPathPolicy, McosPolicy, MinTiers, by_name};
use mcos_workload::{
    ServeConfig, Simulator, StageConfig, model_preset, replay_tiered, serve_tiered,
};
use serde::Serialize;

use crate::args::{self, IntentSet, ReplayArgs};

/// Recompute rate when --prefill-tps is not given.
pub const DEFAULT_RECOMPUTE_TPS: f64 = 20_000.0;

/// One row. Field names are stable.
#[derive(Serialize, Debug)]
pub struct TieredRow {
    pub policy: String,
    /// `hierarchy` (every tier) or `tier0` (the fast tier alone).
    pub scope: &'static str,
    pub block_hit_ratio: f64,
    pub hits_per_tier: BTreeMap<String, u64>,
    pub hits_recomputed: u64,
    pub saved_s: f64,
    pub saved_fraction: f64,
    /// `saved_s` as a share of the report's `bound_s`.
    pub of_bound: f64,
    /// `mcos` only: the knobs in force at the end and how many times the brain switched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brain: Option<String>,
    /// Served replays only: the engine's queue and staging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<ServedRow>,
}

/// The prefill engine's side of a served tiered replay. Field names are stable.
#[derive(Serialize, Debug, Clone, Copy)]
pub struct ServedRow {
    pub utilisation: f64,
    pub mean_queue_len: f64,
    pub mean_wait_s: f64,
    /// Blocks moved up for queued requests.
    pub staged: u64,
    /// Staged blocks read before their move landed (counted at the tier they came from).
    pub staged_late: u64,
}

/// The whole report. Field names are stable.
#[derive(Serialize, Debug)]
pub struct TieredReport {
    pub trace: String,
    pub block_accesses: u64,
    pub unique_blocks: u64,
    pub tiers: Vec<String>,
    pub tier_blocks: Vec<u32>,
    pub model: String,
    pub kv_bytes_per_token: u64,
    pub recompute_tokens_per_s: f64,
    pub link_gbps: Vec<f64>,
    /// Served replays only: the prefill engine's throughput, tokens/s (also the recompute
    /// rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serve_tokens_per_s: Option<f64>,
    /// Slowest tier worth keeping a block in, by the brain's time model.
    pub floor_tier: u8,
    pub prefill_all_s: f64,
    /// Upper bound on any policy's saving over these tiers: every hit MIN gets at the total
    /// capacity (the most hits possible), each served from tier 0 (no fetch cost).
    pub bound_s: f64,
    pub results: Vec<TieredRow>,
}

pub fn run(
    sim: &Simulator,
    a: &ReplayArgs,
    tiers: &str,
    policies: &[String],
    quiet: bool,
) -> Result<TieredReport> {
    let caps = args::parse_capacities("--tiers", tiers, a.block_bytes)?;
    if !(2..=3).contains(&caps.len()) {
        bail!("--tiers takes 2 (HBM, DRAM) or 3 (HBM, DRAM, disk) capacities");
    }
    let unique = sim.stats().unique_blocks;
    let blocks: Vec<u32> = caps
        .iter()
        .map(|c| {
            let n = c.blocks(unique)?;
            crate::limits::check_sim_blocks("--tiers", n)?;
            u32::try_from(n).context("tier too large")
        })
        .collect::<Result<_>>()?;
    let kinds = [TierKind::Hbm, TierKind::HostDram, TierKind::Disk];
    let gbps: Vec<f64> = a
        .link_gbps()
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .context("--link-gbps takes numbers such as 50,5")?;
    if gbps.len() + 1 < blocks.len() || gbps.iter().any(|g| !(g.is_finite() && *g > 0.0)) {
        bail!("--link-gbps needs one positive bandwidth per link up the hierarchy");
    }
    let model = model_preset(a.model())?;
    let intents = args::parse_intents(a.intents())?;
    // Served (a prefill engine, FCFS, arrivals from the trace) with --load or any intents;
    // the engine's rate is then also the recompute rate fetches are weighed against.
    let served = a.load.is_some() || intents.iter().any(|i| i.queue || i.sessions || i.stage);
    let serve_tps = if served {
        Some(match a.prefill_tps {
            Some(t) => t,
            None => sim.prefill_rate_for_load(a.load.unwrap_or(0.8))?,
        })
    } else {
        None
    };
    let tps = serve_tps.unwrap_or(a.prefill_tps.unwrap_or(DEFAULT_RECOMPUTE_TPS));
    if !(tps.is_finite() && tps > 0.0) {
        bail!("--prefill-tps must be a positive number of tokens/s");
    }
    let topology = Topology {
        tiers: blocks
            .iter()
            .zip(kinds)
            .map(|(&n, kind)| TierSpec {
                kind,
                capacity_blocks: n,
                block_bytes: 1,
            })
            .collect(),
        links: (1..blocks.len())
            .map(|t| Link {
                from: TierId(t as u8),
                to: TierId(t as u8 - 1),
                bandwidth_bytes_per_s: (gbps[t - 1] * 1e9) as u64,
                latency_ns: if kinds[t] == TierKind::Disk {
                    100_000
                } else {
                    10_000
                },
            })
            .collect(),
    };
    topology.validate()?;
    let cost = CostModel {
        prefill_tokens_per_s: tps,
        kv_bytes_per_token: model.kv_bytes_per_token,
        block_tokens: a.block_tokens,
    };
    let placement = Placement::new(&topology, cost);
    let requests = sim.requests()?;
    let n = blocks.len();
    let names: Vec<String> = blocks
        .iter()
        .zip(kinds)
        .map(|(b, k)| format!("{k} {b}"))
        .collect();
    let tier_names: Vec<&str> = kinds[..n].iter().map(|k| k.name()).collect();
    let stage_cfg = |enabled: bool| StageConfig {
        enabled,
        budget_blocks: (blocks[0] / 4).max(1) as usize,
    };
    let mcos_runs = if serve_tps.is_some() {
        intents.len()
    } else {
        1
    };
    let lru_runs = if serve_tps.is_some() && intents.iter().any(|i| i.stage) {
        2
    } else {
        1
    };
    let bar = crate::report::progress_bar(
        (mcos_runs + lru_runs + 1 + policies.len()) as u64,
        "tiers",
        quiet,
    );
    let mut prefill_all = 0.0;
    let mut bound = 0.0;
    // One replay: plain (as fast as the trace's order allows) or served with `set`'s intents.
    let mut replay = |name: String,
                      scope: &'static str,
                      p: &mut dyn mcos_workload::CachePolicy,
                      set: Option<IntentSet>| {
        let (r, st) = match (set, serve_tps) {
            (Some(set), Some(tps)) => {
                let cfg = ServeConfig {
                    prefill_tokens_per_s: tps,
                    block_tokens: a.block_tokens,
                    queue_intents: set.queue,
                    session_intents: set.sessions,
                };
                let (r, st) = serve_tiered(requests, p, &cfg, n, &placement, &stage_cfg(set.stage));
                (r, Some(st))
            }
            _ => (
                replay_tiered(requests, p, a.block_tokens, n, &placement),
                None,
            ),
        };
        prefill_all = r.prefill_all_s;
        if name == "min" {
            bound = r.hits_recompute_s;
        }
        let hits: u64 = r.hits_per_tier.iter().sum();
        bar.inc(1);
        TieredRow {
            policy: name,
            scope,
            block_hit_ratio: hits as f64 / r.block_accesses.max(1) as f64,
            hits_per_tier: tier_names
                .iter()
                .zip(&r.hits_per_tier)
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            hits_recomputed: r.hits_recomputed,
            saved_s: r.saved_s,
            saved_fraction: r.saved_s / r.prefill_all_s.max(1e-9),
            of_bound: 0.0,
            brain: None,
            serving: st.map(|st| ServedRow {
                utilisation: st.utilisation,
                mean_queue_len: st.mean_queue_len,
                mean_wait_s: st.mean_wait_s,
                staged: r.staged,
                staged_late: r.staged_late,
            }),
        }
    };
    let mut rows = Vec::new();
    let plain = IntentSet {
        queue: false,
        sessions: false,
        stage: false,
    };
    // Unserved: mcos as before; served: one mcos per intent variant.
    let mcos_sets = if serve_tps.is_some() {
        intents.clone()
    } else {
        vec![plain]
    };
    for set in &mcos_sets {
        // Staged, a block below tier 0 is read at tier-0 cost when its request waits long
        // enough: the per-hit fetch cost that sets the placement floor overstates the slow
        // tiers, so the brain keeps blocks in every tier (no time model).
        let placed = (!set.stage).then_some(cost);
        let mut mcos = McosPolicy::with_topology(topology.clone(), placed);
        let mut row = replay(
            format!("mcos{}", set.suffix()),
            "hierarchy",
            &mut mcos,
            Some(*set),
        );
        row.brain = Some(format!(
            "{} after {} switches",
            mcos.brain().knobs().label(),
            mcos.brain().stats().switches
        ));
        rows.push(row);
    }
    let mut lru = FastPathPolicy::new("lru", &blocks, PolicyTable::builtin(n));
    rows.push(replay("lru".into(), "hierarchy", &mut lru, Some(plain)));
    if serve_tps.is_some() && intents.iter().any(|i| i.stage) {
        // HiCache's design: LRU over the tiers, queued requests' blocks staged up.
        let staging = IntentSet {
            stage: true,
            ..plain
        };
        let mut lru = FastPathPolicy::new("lru", &blocks, PolicyTable::builtin(n));
        rows.push(replay(
            "lru+stage".into(),
            "hierarchy",
            &mut lru,
            Some(staging),
        ));
    }
    let future = AccessSeq::from_requests(requests);
    let caps: Vec<usize> = blocks.iter().map(|&b| b as usize).collect();
    let mut min = MinTiers::new(&caps, &future);
    // The bound is the trace's, not the queue's: MIN replays unserved.
    rows.push(replay("min".into(), "hierarchy", &mut min, None));
    for p in policies {
        if mcos_workload::policy::needs_future(p) {
            continue;
        }
        let mut single = by_name(p, blocks[0] as usize, None)?;
        rows.push(replay(p.clone(), "tier0", single.as_mut(), Some(plain)));
    }
    bar.finish_and_clear();
    for r in &mut rows {
        r.of_bound = r.saved_s / bound.max(1e-9);
    }
    Ok(TieredReport {
        trace: a.trace.display().to_string(),
        block_accesses: sim.stats().block_accesses,
        unique_blocks: unique,
        tiers: names,
        tier_blocks: blocks,
        model: model.name.into(),
        kv_bytes_per_token: model.kv_bytes_per_token,
        recompute_tokens_per_s: tps,
        link_gbps: gbps,
        serve_tokens_per_s: serve_tps,
        floor_tier: placement.floor_tier().0,
        prefill_all_s: prefill_all,
        bound_s: bound,
        results: rows,
    })
}

impl TieredReport {
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\ntrace: {}\n{} block accesses, {} unique blocks; tiers {}; {} ({} KiB/token), recompute at {:.0} tokens/s, links {:?} GB/s; keep blocks down to tier {}\nprefill of every prompt token: {:.0} s; upper bound on the saving (every hit MIN gets at the total capacity, served from tier 0): {:.0} s\n(min over the hierarchy: Belady's MIN per tier with demand promotion, a hindsight reference)\n",
            self.trace,
            self.block_accesses,
            self.unique_blocks,
            self.tiers.join(" + "),
            self.model,
            self.kv_bytes_per_token >> 10,
            self.recompute_tokens_per_s,
            self.link_gbps,
            self.floor_tier,
            self.prefill_all_s,
            self.bound_s
        );
        if let Some(tps) = self.serve_tokens_per_s {
            let _ = writeln!(
                s,
                "served: one prefill engine at {tps:.0} tokens/s, FCFS, arrivals from the trace; a hit below tier 0 adds its fetch to the service time; staging moves queued requests' blocks up over serial links (min replays unserved)\n"
            );
        }
        let _ = writeln!(
            s,
            "{:<10} {:<10} {:>9} {:>10} {:>8} {:>9}  hits per tier (recomputed instead)",
            "policy", "tiers", "block hit", "saved s", "saved", "of bound"
        );
        for r in &self.results {
            let hits: Vec<String> = r
                .hits_per_tier
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(
                s,
                "{:<10} {:<10} {:>9.4} {:>10.1} {:>7.1}% {:>8.1}%  {} ({}){}",
                r.policy,
                r.scope,
                r.block_hit_ratio,
                r.saved_s,
                r.saved_fraction * 100.0,
                r.of_bound * 100.0,
                hits.join(", "),
                r.hits_recomputed,
                r.brain
                    .as_ref()
                    .map(|b| format!("  [{b}]"))
                    .unwrap_or_default()
            );
            if let Some(v) = &r.serving {
                let _ = writeln!(
                    s,
                    "{:<21} utilisation {:.3}, mean queue {:.2}, mean wait {:.3} s, staged {} (late {})",
                    "", v.utilisation, v.mean_queue_len, v.mean_wait_s, v.staged, v.staged_late
                );
            }
        }
        s
    }
}
