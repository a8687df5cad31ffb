//! `mcos policy show` (a policy table, readably) and `mcos replay --shadow` (a candidate scored
//! on the same stream without acting).

use std::fmt::Write;

use anyhow::{Result, bail};
use mcos_brain::{Knobs, candidates};
use mcos_core::{AdmitFilter, ClassPolicy, InsertPosition, PolicyTable, PrefetchMode};
use mcos_workload::policy::{CachePolicy, FastPathPolicy, McosPolicy, by_name};
use mcos_workload::{Capacity, Simulator};
use serde::Serialize;

use crate::args::{Format, ShowArgs};

fn class_name(c: usize) -> &'static str {
    match c {
        0 => " (default)",
        1 => " (queued)",
        2 => " (ended)",
        3 => " (precious)",
        _ => "",
    }
}

fn describe_class(e: &ClassPolicy) -> String {
    let mut parts = vec![format!("tiers {}..{}", e.preferred_tier.0, e.floor_tier.0)];
    let mut admit = Vec::new();
    if e.admit_threshold > 0 {
        admit.push(format!("sketch >= {}", e.admit_threshold));
    }
    if e.admit_filter == AdmitFilter::History {
        admit.push("seen before (history)".into());
    }
    parts.push(format!(
        "admit {}",
        if admit.is_empty() {
            "all".into()
        } else {
            admit.join(" and ")
        }
    ));
    parts.push(format!("evict priority {}", e.evict_priority));
    parts.push(format!(
        "insert {}",
        match e.insert_position {
            InsertPosition::Mru => "MRU",
            InsertPosition::Lru => "LRU",
        }
    ));
    if e.pinned {
        parts.push("pinned".into());
    }
    if e.prefetch_mode == PrefetchMode::Sequential {
        parts.push(format!("prefetch next {}", e.prefetch_degree));
    }
    if e.quota_blocks > 0 {
        parts.push(format!("quota {} blocks/shard", e.quota_blocks));
    }
    if e.ttl_ticks > 0 {
        parts.push(format!("idle ttl {} ticks", e.ttl_ticks));
    }
    parts.join(", ")
}

/// The table, readably: table-wide fields, then the classes that differ from class 0.
pub fn render(t: &PolicyTable, tiers: usize) -> String {
    let mut s = String::new();
    let pct = |x: u8| f64::from(x) * 100.0 / 256.0;
    let _ = writeln!(
        s,
        "policy table version {}, {}",
        t.version,
        if t.ttl_ticks == 0 {
            "never expires".to_owned()
        } else {
            format!(
                "expires {} ticks after its install unless refreshed",
                t.ttl_ticks
            )
        }
    );
    let _ = writeln!(
        s,
        "  admission sketch: {}",
        if t.sketch_window == 0 {
            "never aged".to_owned()
        } else {
            format!("halved over every {} accesses", t.sketch_window)
        }
    );
    let _ = writeln!(
        s,
        "  history (ghost) of evicted and refused blocks: {}",
        if t.history_quarters == 0 {
            "off".to_owned()
        } else {
            format!("{} x tier 0's frames", f64::from(t.history_quarters) / 4.0)
        }
    );
    for tier in 0..tiers {
        let _ = writeln!(
            s,
            "  tier {tier}: protected segment {:.0} %, admission window {:.1} %{}",
            pct(t.protected_share[tier]),
            pct(t.window_share[tier]),
            if t.protected_share[tier] == 0 && t.window_share[tier] == 0 {
                " (plain LRU order)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        s,
        "  class 0{}: {}",
        class_name(0),
        describe_class(&t.classes[0])
    );
    let mut same = Vec::new();
    for (c, e) in t.classes.iter().enumerate().skip(1) {
        if e == &t.classes[0] {
            same.push(c);
        } else {
            let _ = writeln!(s, "  class {c}{}: {}", class_name(c), describe_class(e));
        }
    }
    if !same.is_empty() {
        let _ = writeln!(
            s,
            "  {} other classes ({}..={}): as class 0",
            same.len(),
            same[0],
            same[same.len() - 1]
        );
    }
    s
}

#[derive(Serialize)]
struct ShowJson {
    source: String,
    knobs: Option<String>,
    switches: Vec<(u64, String)>,
    version: u32,
    ttl_ticks: u32,
    sketch_window: u32,
    history_quarters: u8,
    protected_share: Vec<u8>,
    window_share: Vec<u8>,
    /// Each class entry in its 128-bit hardware layout, as hex.
    class_bits: Vec<String>,
}

pub fn show(a: ShowArgs) -> anyhow::Result<()> {
    let (source, table, knobs, switches, extra) = match &a.trace {
        None => (
            "built-in table".to_owned(),
            PolicyTable::builtin(1),
            None,
            Vec::new(),
            String::new(),
        ),
        Some(path) => {
            if !path.exists() {
                bail!("trace file {} does not exist", path.display());
            }
            let sim = Simulator::open(path, a.block_tokens)?;
            let cap = a
                .capacity
                .in_blocks_of(crate::args::DEFAULT_BLOCK_BYTES)
                .blocks(sim.stats().unique_blocks)?;
            crate::limits::check_sim_blocks("--capacity", cap)?;
            let mut p = McosPolicy::new(usize::try_from(cap)?);
            let mut n = 0u64;
            let mut hits = 0u64;
            for r in sim.requests()? {
                for &id in &r.hash_ids {
                    hits += u64::from(p.access(id, n));
                    n += 1;
                }
                p.request_done(&r.hash_ids);
            }
            let b = p.brain();
            let mut extra = String::new();
            let _ = writeln!(
                extra,
                "brain after {n} accesses (hit ratio {:.4}): {} samples, shadows of {} blocks at 1/{} of the keys, {} switches, {} installs",
                hits as f64 / n.max(1) as f64,
                b.stats().samples,
                b.shadow_capacity(),
                1u64 << b.sample_shift(),
                b.stats().switches,
                b.stats().installs
            );
            let _ = writeln!(extra, "shadow hit ratios (sampled):");
            for (label, h, acc) in b.shadow_scores() {
                let _ = writeln!(extra, "  {label:<20} {:.4}", h as f64 / acc.max(1) as f64);
            }
            (
                format!("{} at {cap} blocks", path.display()),
                b.table().clone(),
                Some(b.knobs().label()),
                b.stats().switch_log.clone(),
                extra,
            )
        }
    };
    match a.format {
        Format::Json => {
            let j = ShowJson {
                source,
                knobs,
                switches,
                version: table.version,
                ttl_ticks: table.ttl_ticks,
                sketch_window: table.sketch_window,
                history_quarters: table.history_quarters,
                protected_share: table.protected_share.to_vec(),
                window_share: table.window_share.to_vec(),
                class_bits: table
                    .classes
                    .iter()
                    .map(|c| format!("{:032x}", c.to_bits()))
                    .collect(),
            };
            println!("{}", serde_json::to_string_pretty(&j)?);
        }
        Format::Table => {
            println!("source: {source}");
            if let Some(k) = &knobs {
                print!("{extra}");
                let log: Vec<String> = switches.iter().map(|(at, l)| format!("{l}@{at}")).collect();
                println!("switches (label@sampled access): {}", log.join(", "));
                println!("knobs in force: {k}");
            }
            print!("{}", render(&table, 1));
        }
    }
    Ok(())
}

/// A candidate for `--shadow`: a policy name, or a knob label of the brain's grid.
fn candidate(name: &str, cap: usize) -> Result<Box<dyn CachePolicy>> {
    if let Ok(p) = by_name(name, cap, None) {
        return Ok(p);
    }
    let grid = candidates();
    let Some(k) = grid.iter().find(|k| k.label() == name) else {
        let labels: Vec<String> = grid.iter().map(Knobs::label).collect();
        bail!(
            "unknown shadow candidate `{name}`: give an online policy ({}) or a knob label ({})",
            mcos_workload::POLICY_NAMES.join(", "),
            labels.join(", ")
        );
    };
    let table = k.compile(&PolicyTable::builtin(1), cap as u64);
    Ok(Box::new(FastPathPolicy::new(
        "shadow",
        &[u32::try_from(cap)?],
        table,
    )))
}

/// One row of `--shadow`.
#[derive(Serialize, Debug)]
pub struct ShadowRow {
    pub acting: String,
    pub capacity_fraction: f64,
    pub capacity_blocks: u64,
    pub acting_hit_ratio: f64,
    pub shadow_hit_ratio: f64,
    /// Accesses the shadow would have hit and the acting policy missed.
    pub would_gain: u64,
    /// Accesses the acting policy hit and the shadow would have missed.
    pub would_lose: u64,
}

#[derive(Serialize, Debug)]
pub struct ShadowReport {
    pub trace: String,
    pub shadow: String,
    pub block_accesses: u64,
    pub results: Vec<ShadowRow>,
}

pub fn shadow(
    sim: &Simulator,
    acting: &[&str],
    capacities: &[Capacity],
    name: &str,
    trace: &std::path::Path,
    quiet: bool,
) -> Result<ShadowReport> {
    let unique = sim.stats().unique_blocks;
    let reqs = sim.requests()?;
    let bar =
        crate::report::progress_bar((acting.len() * capacities.len()) as u64, "shadow", quiet);
    let mut rows = Vec::new();
    for &p in acting {
        if mcos_workload::policy::needs_future(p) {
            continue;
        }
        for &c in capacities {
            let cap = c.blocks(unique)?;
            let capz = usize::try_from(cap)?;
            let mut act = by_name(p, capz, None)?;
            let mut cand = candidate(name, capz)?;
            let (mut n, mut ha, mut hs, mut gain, mut lose) = (0u64, 0u64, 0u64, 0u64, 0u64);
            for r in reqs {
                for &id in &r.hash_ids {
                    let a = act.access(id, n);
                    let b = cand.access(id, n);
                    n += 1;
                    ha += u64::from(a);
                    hs += u64::from(b);
                    gain += u64::from(b && !a);
                    lose += u64::from(a && !b);
                }
                act.request_done(&r.hash_ids);
                cand.request_done(&r.hash_ids);
            }
            rows.push(ShadowRow {
                acting: p.to_owned(),
                capacity_fraction: cap as f64 / unique.max(1) as f64,
                capacity_blocks: cap,
                acting_hit_ratio: ha as f64 / n.max(1) as f64,
                shadow_hit_ratio: hs as f64 / n.max(1) as f64,
                would_gain: gain,
                would_lose: lose,
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(ShadowReport {
        trace: trace.display().to_string(),
        shadow: name.to_owned(),
        block_accesses: sim.stats().block_accesses,
        results: rows,
    })
}

impl ShadowReport {
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\ntrace: {}; shadow candidate `{}` scored on the same {} accesses without acting\n",
            self.trace, self.shadow, self.block_accesses
        );
        let _ = writeln!(
            s,
            "{:<10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "acting", "capacity", "acting", "shadow", "would gain", "would lose", "net"
        );
        for r in &self.results {
            let _ = writeln!(
                s,
                "{:<10} {:>7.1}% {:>10.4} {:>10.4} {:>10} {:>10} {:>+10}",
                r.acting,
                r.capacity_fraction * 100.0,
                r.acting_hit_ratio,
                r.shadow_hit_ratio,
                r.would_gain,
                r.would_lose,
                r.would_gain as i64 - r.would_lose as i64
            );
        }
        s
    }
}
