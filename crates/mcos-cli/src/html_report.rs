//! `mcos report`: one self-contained HTML page about a trace (inline SVG charts drawn by
//! `mcos-report`, no script, no network): miss-ratio curves per policy with MIN; the brain's
//! knob switches and installed tables over the trace; tiered results (hits per tier, prefill
//! time saved against LRU over the tiers and the bound); the served replay's queue and
//! utilisation. Also the one chart `mcos replay --plot` writes.

use crate::args::{Cli, Command, ReplayArgs};
use crate::mrc::{CurveArgs, describe, method_name};
use crate::report::ResultRow;
use crate::tiered::TieredReport;
use anyhow::{Context, Result, bail};
use clap::{Args, Parser};
use mcos_report::{
    BarChart, LineChart, Marker, Page, Section, Series, Table, bar_chart, line_chart,
};
use mcos_workload::policy::McosPolicy;
use mcos_workload::{CachePolicy, Capacity, MrcReport, Simulator};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub curves: CurveArgs,
    /// Where to write the page.
    #[arg(long, default_value = "report.html")]
    pub out: PathBuf,
    /// Cache capacity of the brain's timeline (as --from).
    #[arg(long, default_value = "5%", value_parser = crate::args::parse_capacity, allow_hyphen_values = true)]
    pub capacity: Capacity,
    /// The tier hierarchy of the tiered section (as `mcos replay --tiers`).
    #[arg(long, default_value = "1%,5%,25%")]
    pub tiers: String,
    /// The served section's engine load (as `mcos replay --load`).
    #[arg(long, default_value_t = 0.8)]
    pub load: f64,
    /// Capacities of the served section (as `mcos replay --capacity`).
    #[arg(long, default_value = "1%,5%,10%,25%")]
    pub served_capacity: String,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: ReportArgs) -> Result<()> {
    if a.out.is_dir() {
        bail!(
            "--out {} is a directory: give a file name such as report.html",
            a.out.display()
        );
    }
    check_dir_of(&a.out, "--out")?;
    let quiet = a.quiet;
    let say = |s: &str| {
        if !quiet {
            eprintln!("{s}");
        }
    };
    let trace = a.curves.trace.display().to_string();
    let (sim, mrc) = a.curves.compute(quiet)?;
    let mut page = Page {
        title: format!("MCOS report: {}", file_name(&a.curves.trace)),
        subtitle: vec![
            format!("trace {trace}"),
            format!(
                "{} requests, {} block accesses, {} unique blocks, infinite-cache hit ratio {:.4}",
                mrc.stats.requests,
                mrc.stats.block_accesses,
                mrc.stats.unique_blocks,
                mrc.stats.infinite_cache_hit_ratio()
            ),
            format!("made by mcos {} (`mcos report`)", env!("CARGO_PKG_VERSION")),
        ],
        sections: Vec::new(),
    };
    page.sections.push(mrc_section(&mrc)?);

    say("replaying the brain's timeline...");
    page.sections
        .push(brain_section(&sim, a.capacity, a.curves.block_bytes)?);

    say("replaying over the tiers...");
    let replay_args = |extra: &[&str]| -> Result<ReplayArgs> {
        let mut argv = vec!["mcos", "replay", "--trace", trace.as_str()];
        let bt = a.curves.block_tokens.to_string();
        argv.extend(["--block-tokens", bt.as_str()]);
        argv.extend(extra);
        match Cli::try_parse_from(argv)
            .context("building the replay's arguments")?
            .command
        {
            Command::Replay(r) => Ok(r),
            _ => bail!("internal: not a replay"),
        }
    };
    let policies: Vec<String> = mrc.curves.iter().map(|c| c.policy.clone()).collect();
    let tiered_args = replay_args(&["--tiers", &a.tiers])?;
    let tiered = crate::tiered::run(&sim, &tiered_args, &a.tiers, &policies, quiet)?;
    page.sections.push(tiered_section(&tiered)?);

    say("serving the trace through the prefill engine...");
    let load = a.load.to_string();
    let served_args = replay_args(&["--load", &load, "--capacity", &a.served_capacity])?;
    let caps = crate::args::parse_capacities(
        "--served-capacity",
        &a.served_capacity,
        a.curves.block_bytes,
    )?;
    let tps = sim.prefill_rate_for_load(a.load)?;
    let names: Vec<&str> = ["mcos", "lru", "min"]
        .into_iter()
        .filter(|p| policies.iter().any(|q| q == p))
        .collect();
    let names = if names.is_empty() { vec!["lru"] } else { names };
    let intents = crate::args::parse_intents(served_args.intents())?;
    let rows = crate::sweep::serve(
        &sim,
        &names,
        &caps,
        &intents,
        tps,
        a.curves.block_tokens,
        a.curves.block_bytes,
        quiet,
    )?;
    page.sections.push(served_section(&rows, a.load, tps)?);

    let html = page.render();
    std::fs::write(&a.out, html).with_context(|| format!("cannot write {}", a.out.display()))?;
    say(&format!("wrote {}", a.out.display()));
    Ok(())
}

/// Refuses an output path whose directory does not exist, before any work is done.
pub fn check_dir_of(path: &Path, flag: &str) -> Result<()> {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() && !d.is_dir() => bail!(
            "{flag} {}: directory {} does not exist",
            path.display(),
            d.display()
        ),
        _ => Ok(()),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The miss-ratio curves (hit ratio against capacity, log scale) with MIN as the bound.
pub fn mrc_chart(mrc: &MrcReport) -> Result<String> {
    let series = mrc
        .curves
        .iter()
        .map(|c| Series {
            name: if c.policy == "min" {
                "min (bound)".into()
            } else {
                c.policy.clone()
            },
            points: c
                .points
                .iter()
                .map(|p| (p.capacity_fraction * 100.0, p.hit_ratio))
                .collect(),
            bound: c.policy == "min",
        })
        .collect();
    Ok(line_chart(&LineChart {
        title: "Block hit ratio by cache capacity".into(),
        x_label: "capacity (% of unique blocks, log scale)".into(),
        y_label: "block hit ratio".into(),
        log_x: true,
        y_range: None,
        series,
        markers: Vec::new(),
    })?)
}

fn mrc_section(mrc: &MrcReport) -> Result<Section> {
    let mut table = Table {
        header: vec!["policy".into(), "method".into()],
        rows: Vec::new(),
    };
    let picks: Vec<usize> = {
        let n = mrc.curves.first().map_or(0, |c| c.points.len());
        let mut v: Vec<usize> = [0, n / 4, n / 2, 3 * n / 4, n.saturating_sub(1)].to_vec();
        v.dedup();
        v.into_iter().filter(|&i| i < n).collect()
    };
    if let Some(c) = mrc.curves.first() {
        for &i in &picks {
            table
                .header
                .push(format!("{:.1} %", 100.0 * c.points[i].capacity_fraction));
        }
    }
    for c in &mrc.curves {
        let mut row = vec![c.policy.clone(), method_name(c.method)];
        row.extend(
            picks
                .iter()
                .map(|&i| format!("{:.4}", c.points[i].hit_ratio)),
        );
        table.rows.push(row);
    }
    Ok(Section {
        heading: "Miss-ratio curves".into(),
        paragraphs: vec![
            "Block hit ratio of each policy over cache capacities (miss ratio = 1 - hit ratio). \
             LRU is exact at every capacity from one pass over its stack distances; sampled \
             policies replay a spatial sample of the blocks (SHARDS) scaled to each capacity; \
             MIN (Belady, with bypass) is the offline bound."
                .into(),
            describe(mrc).replace('\n', "; "),
        ],
        charts: vec![mrc_chart(mrc)?],
        tables: vec![table],
    })
}

/// The brain over the trace: the hit ratio of `mcos` and LRU per window of accesses, the
/// installed table's version, and the knob switches as markers.
fn brain_section(sim: &Simulator, capacity: Capacity, block_bytes: u32) -> Result<Section> {
    let unique = sim.stats().unique_blocks;
    let cap = capacity.in_blocks_of(block_bytes).blocks(unique)?;
    crate::limits::check_sim_blocks("--capacity", cap)?;
    let cap_usize = usize::try_from(cap)?;
    let mut mcos = McosPolicy::new(cap_usize);
    let mut lru = mcos_workload::by_name("lru", cap_usize, None)?;
    let window = (sim.stats().block_accesses / 120).max(512);
    let (mut n, mut w_mcos, mut w_lru, mut w_n) = (0u64, 0u64, 0u64, 0u64);
    let (mut mcos_pts, mut lru_pts, mut version_pts) = (Vec::new(), Vec::new(), Vec::new());
    let mut markers = Vec::new();
    let mut switches_seen = 0u64;
    let mut switch_rows = Vec::new();
    for r in sim.requests()? {
        for &id in &r.hash_ids {
            w_mcos += u64::from(mcos.access(id, n));
            w_lru += u64::from(lru.access(id, n));
            n += 1;
            w_n += 1;
            if w_n == window {
                let x = n as f64;
                mcos_pts.push((x, w_mcos as f64 / w_n as f64));
                lru_pts.push((x, w_lru as f64 / w_n as f64));
                version_pts.push((x, f64::from(mcos.brain().table().version)));
                (w_mcos, w_lru, w_n) = (0, 0, 0);
            }
            let b = mcos.brain();
            if b.stats().switches > switches_seen {
                switches_seen = b.stats().switches;
                let label = b.knobs().label();
                switch_rows.push(vec![
                    n.to_string(),
                    label.clone(),
                    b.table().version.to_string(),
                ]);
                markers.push(Marker { x: n as f64, label });
            }
        }
        mcos.request_done(&r.hash_ids);
        lru.request_done(&r.hash_ids);
    }
    let b = mcos.brain();
    let hit_chart = line_chart(&LineChart {
        title: format!("Hit ratio per {window} accesses at {cap} blocks, brain switches marked"),
        x_label: "block accesses into the trace".into(),
        y_label: "block hit ratio (window)".into(),
        log_x: false,
        y_range: None,
        // LRU first, as on the curves, so each policy keeps its colour across the charts.
        series: vec![
            Series {
                name: "lru".into(),
                points: lru_pts,
                bound: false,
            },
            Series {
                name: "mcos (brain)".into(),
                points: mcos_pts,
                bound: false,
            },
        ],
        markers: markers.clone(),
    })?;
    let version_chart = line_chart(&LineChart {
        title: "Installed policy table version".into(),
        x_label: "block accesses into the trace".into(),
        y_label: "table version".into(),
        log_x: false,
        y_range: None,
        series: vec![Series {
            name: "table version".into(),
            points: version_pts,
            bound: false,
        }],
        markers,
    })?;
    Ok(Section {
        heading: "The brain over the trace".into(),
        paragraphs: vec![format!(
            "`mcos` (the real fast path under the tables the brain installs, stepped every 512 \
             accesses) beside LRU at {cap} blocks. The brain switched knobs {} times and \
             installed {} tables; knobs in force at the end: {}.",
            b.stats().switches,
            b.stats().installs,
            b.knobs().label()
        )],
        charts: vec![hit_chart, version_chart],
        tables: vec![Table {
            header: vec![
                "at access".into(),
                "switched to".into(),
                "table version".into(),
            ],
            rows: switch_rows,
        }],
    })
}

fn tiered_section(t: &TieredReport) -> Result<Section> {
    let rows: Vec<&crate::tiered::TieredRow> = t
        .results
        .iter()
        .filter(|r| r.scope == "hierarchy")
        .collect();
    let cats: Vec<String> = rows.iter().map(|r| r.policy.clone()).collect();
    let hits = bar_chart(&BarChart {
        title: "Hits per tier over the hierarchy".into(),
        y_label: "block hits".into(),
        categories: cats.clone(),
        series: t
            .tiers
            .iter()
            .map(|tier| {
                (
                    tier.clone(),
                    rows.iter()
                        .map(|r| r.hits_per_tier.get(tier).copied().unwrap_or(0) as f64)
                        .collect(),
                )
            })
            .collect(),
        reference: None,
    })?;
    let all: Vec<&crate::tiered::TieredRow> = t.results.iter().collect();
    let saved = bar_chart(&BarChart {
        title: "Prefill seconds saved (modelled)".into(),
        y_label: "seconds saved".into(),
        categories: all
            .iter()
            .map(|r| {
                if r.scope == "hierarchy" {
                    r.policy.clone()
                } else {
                    format!("{} t0", r.policy)
                }
            })
            .collect(),
        series: vec![("saved".into(), all.iter().map(|r| r.saved_s).collect())],
        reference: Some(("bound".into(), t.bound_s)),
    })?;
    let lru = rows
        .iter()
        .find(|r| r.policy == "lru")
        .map_or(0.0, |r| r.saved_s);
    let table = Table {
        header: vec![
            "policy".into(),
            "scope".into(),
            "hit ratio".into(),
            "saved s".into(),
            "vs lru s".into(),
            "of bound".into(),
        ],
        rows: t
            .results
            .iter()
            .map(|r| {
                vec![
                    r.policy.clone(),
                    r.scope.into(),
                    format!("{:.4}", r.block_hit_ratio),
                    format!("{:.1}", r.saved_s),
                    format!("{:+.1}", r.saved_s - lru),
                    format!("{:.1} %", 100.0 * r.of_bound),
                ]
            })
            .collect(),
    };
    Ok(Section {
        heading: "Over the tiers".into(),
        paragraphs: vec![format!(
            "Tiers {} of {:?} blocks, {} ({} bytes of KV per token), links {:?} GB/s, recompute \
             at {:.0} tokens/s. Prefill without a cache: {:.1} s; the bound (every hit MIN gets \
             at the total capacity, served from tier 0): {:.1} s saved.",
            t.tiers.join(" + "),
            t.tier_blocks,
            t.model,
            t.kv_bytes_per_token,
            t.link_gbps,
            t.recompute_tokens_per_s,
            t.prefill_all_s,
            t.bound_s
        )],
        charts: vec![hits, saved],
        tables: vec![table],
    })
}

fn served_section(rows: &[ResultRow], load: f64, tps: f64) -> Result<Section> {
    let mut names: Vec<String> = rows.iter().map(|r| r.policy.clone()).collect();
    names.dedup();
    let series_of = |f: &dyn Fn(&crate::report::ServingRow) -> f64| -> Vec<Series> {
        names
            .iter()
            .map(|n| Series {
                name: n.clone(),
                points: rows
                    .iter()
                    .filter(|r| &r.policy == n)
                    .filter_map(|r| {
                        r.serving
                            .as_ref()
                            .map(|s| (100.0 * r.capacity_fraction, f(s)))
                    })
                    .collect(),
                bound: n == "min",
            })
            .collect()
    };
    let util = line_chart(&LineChart {
        title: "Prefill engine utilisation".into(),
        x_label: "capacity (% of unique blocks)".into(),
        y_label: "utilisation".into(),
        log_x: false,
        y_range: Some((0.0, 1.0)),
        series: series_of(&|s| s.utilisation),
        markers: Vec::new(),
    })?;
    let queue = line_chart(&LineChart {
        title: "Requests waiting (time average)".into(),
        x_label: "capacity (% of unique blocks)".into(),
        y_label: "mean queue length".into(),
        log_x: false,
        y_range: None,
        series: series_of(&|s| s.mean_queue_len),
        markers: Vec::new(),
    })?;
    let table = Table {
        header: [
            "policy",
            "capacity",
            "hit ratio",
            "utilisation",
            "mean queue",
            "max queue",
            "mean wait s",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows
            .iter()
            .filter_map(|r| {
                r.serving.as_ref().map(|s| {
                    vec![
                        r.policy.clone(),
                        format!("{:.1} %", 100.0 * r.capacity_fraction),
                        format!("{:.4}", r.block_hit_ratio),
                        format!("{:.3}", s.utilisation),
                        format!("{:.2}", s.mean_queue_len),
                        s.max_queue_len.to_string(),
                        format!("{:.2}", s.mean_wait_s),
                    ]
                })
            })
            .collect(),
    };
    Ok(Section {
        heading: "Served replay".into(),
        paragraphs: vec![format!(
            "One FCFS prefill engine at {tps:.0} tokens/s (load {load}: prefilling every prompt \
             token would keep it busy that share of the trace's span), arrivals at the trace's \
             timestamps; hits lower the work, the queue and the utilisation."
        )],
        charts: vec![util, queue],
        tables: vec![table],
    })
}

/// `mcos replay --plot FILE`: the run's one chart, as SVG.
pub fn replay_plot(path: &Path, rows: &[ResultRow], title: &str) -> Result<()> {
    let mut names: Vec<String> = Vec::new();
    for r in rows {
        if !names.contains(&r.policy) {
            names.push(r.policy.clone());
        }
    }
    let series = names
        .iter()
        .map(|n| Series {
            name: n.clone(),
            points: rows
                .iter()
                .filter(|r| &r.policy == n)
                .map(|r| (100.0 * r.capacity_fraction, r.block_hit_ratio))
                .collect(),
            bound: n == "min",
        })
        .collect();
    let svg = line_chart(&LineChart {
        title: format!("Block hit ratio by capacity: {title}"),
        x_label: "capacity (% of unique blocks, log scale)".into(),
        y_label: "block hit ratio".into(),
        log_x: true,
        y_range: None,
        series,
        markers: Vec::new(),
    })?;
    write_svg(path, &svg)
}

/// `mcos replay --tiers ... --plot FILE`: seconds saved per policy against the bound.
pub fn tiered_plot(path: &Path, t: &TieredReport) -> Result<()> {
    let s = tiered_section(t)?;
    let svg = s
        .charts
        .into_iter()
        .nth(1)
        .context("the saved-seconds chart")?;
    write_svg(path, &svg)
}

fn write_svg(path: &Path, svg: &str) -> Result<()> {
    std::fs::write(path, svg)
        .with_context(|| format!("cannot write the plot {}", path.display()))?;
    eprintln!("wrote the chart to {}", path.display());
    Ok(())
}
