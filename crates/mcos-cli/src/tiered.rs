//! `mcos replay --tiers`: the tier-hierarchy comparison (hits per tier, prefill time saved).

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::{Context, Result, bail};
use mcos_brain::{CostModel, Placement};
use mcos_core::{Link, PolicyTable, TierId, TierKind, TierSpec, Topology};
use mcos_workload::AccessSeq;
use mcos_workload::policy::{FastPathPolicy, McosPolicy, MinTiers, by_name};
use mcos_workload::{Simulator, model_preset, replay_tiered};
use serde::Serialize;

use crate::args::{self, ReplayArgs};

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
    let caps = args::parse_capacities(tiers)?;
    if !(2..=3).contains(&caps.len()) {
        bail!("--tiers takes 2 (HBM, DRAM) or 3 (HBM, DRAM, disk) capacities");
    }
    let unique = sim.stats().unique_blocks;
    let blocks: Vec<u32> = caps
        .iter()
        .map(|c| {
            let n = c.blocks(unique)?;
            u32::try_from(n).context("tier too large")
        })
        .collect::<Result<_>>()?;
    let kinds = [TierKind::Hbm, TierKind::HostDram, TierKind::Disk];
    let gbps: Vec<f64> = a
        .link_gbps
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .context("--link-gbps takes numbers such as 50,5")?;
    if gbps.len() + 1 < blocks.len() || gbps.iter().any(|g| !(g.is_finite() && *g > 0.0)) {
        bail!("--link-gbps needs one positive bandwidth per link up the hierarchy");
    }
    let model = model_preset(&a.model)?;
    let tps = a.prefill_tps.unwrap_or(DEFAULT_RECOMPUTE_TPS);
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
    let bar = crate::report::progress_bar((3 + policies.len()) as u64, "tiers", quiet);
    let mut rows = Vec::new();
    let mut prefill_all = 0.0;
    let mut bound = 0.0;
    let mut row = |name: String, scope: &'static str, p: &mut dyn mcos_workload::CachePolicy| {
        let r = replay_tiered(requests, p, a.block_tokens, n, &placement);
        prefill_all = r.prefill_all_s;
        if name == "min" {
            bound = r.hits_recompute_s;
        }
        let hits: u64 = r.hits_per_tier.iter().sum();
        rows.push(TieredRow {
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
        });
        bar.inc(1);
    };
    let mut mcos = McosPolicy::with_topology(topology.clone(), Some(cost));
    row("mcos".into(), "hierarchy", &mut mcos);
    let note = format!(
        "{} after {} switches",
        mcos.brain().knobs().label(),
        mcos.brain().stats().switches
    );
    let mut lru = FastPathPolicy::new("lru", &blocks, PolicyTable::builtin(n));
    row("lru".into(), "hierarchy", &mut lru);
    let future = AccessSeq::from_requests(requests);
    let caps: Vec<usize> = blocks.iter().map(|&b| b as usize).collect();
    let mut min = MinTiers::new(&caps, &future);
    row("min".into(), "hierarchy", &mut min);
    for p in policies {
        if mcos_workload::policy::needs_future(p) {
            continue;
        }
        let mut single = by_name(p, blocks[0] as usize, None)?;
        row(p.clone(), "tier0", single.as_mut());
    }
    bar.finish_and_clear();
    if let Some(r) = rows.first_mut() {
        r.brain = Some(note);
    }
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
        }
        s
    }
}
