//! `mcos mrc`: miss-ratio curves of a trace per policy (LRU exact in one pass, the others
//! sampled or in parallel exact runs, MIN as the bound), as a table, JSON or CSV; and
//! `mcos bench mrc`: the same curves timed against one replay per point.

use crate::args::{Mode, parse_capacity, parse_policies};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use mcos_workload::mrc::{MRC_DEFAULT_POLICIES, MrcConfig, MrcMethod, MrcReport, log_spaced};
use mcos_workload::{Capacity, Simulator};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum MrcFormat {
    /// A readable table: one row per capacity, one column per policy (hit ratio).
    Table,
    /// One JSON object on stdout (field names are stable).
    Json,
    /// One line per (policy, capacity): policy,method,capacity_blocks,capacity_fraction,
    /// hit_ratio,miss_ratio.
    Csv,
}

/// Which curves, over which capacities: shared by `mcos mrc`, `mcos report` and `mcos bench mrc`.
#[derive(Args, Debug, Clone)]
pub struct CurveArgs {
    /// Trace file (Mooncake JSONL).
    #[arg(long)]
    pub trace: PathBuf,
    /// Comma-separated policies (default: lru,mcos,s3fifo,sieve,arc,wtinylfu,min).
    #[arg(long)]
    pub policy: Option<String>,
    /// Capacities on the curve, log-spaced from --from to --to.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub points: u16,
    /// Smallest capacity: a percentage of the trace's unique blocks (1%), a fraction, a
    /// block count or a size (in --block-bytes blocks). Below 1 % the sampled policies need
    /// denser samples (slower) to stay within 0.005.
    #[arg(long, default_value = "1%", value_parser = parse_capacity, allow_hyphen_values = true)]
    pub from: Capacity,
    /// Largest capacity, as --from.
    #[arg(long, default_value = "100%", value_parser = parse_capacity, allow_hyphen_values = true)]
    pub to: Capacity,
    /// Share of the blocks the sampled policies replay, in (0, 1]; 1 runs them exactly.
    /// Default: 0.1, raised to keep at least 16,384 sampled blocks, 1 for small traces.
    #[arg(long)]
    pub sample_rate: Option<f64>,
    /// Tokens per block in the trace (Mooncake: 512).
    #[arg(long, default_value_t = 512)]
    pub block_tokens: u32,
    /// Bytes per block, for capacities given as sizes.
    #[arg(long, default_value_t = crate::args::DEFAULT_BLOCK_BYTES)]
    pub block_bytes: u32,
    /// Worker threads for the per-capacity replays (default: every core).
    #[arg(long, value_parser = crate::args::parse_positive_usize)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct MrcArgs {
    #[command(flatten)]
    pub curves: CurveArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = MrcFormat::Table)]
    pub format: MrcFormat,
}

#[derive(Args, Debug)]
pub struct MrcBenchArgs {
    #[command(flatten)]
    pub curves: CurveArgs,
    /// Exit 1 when the curves are less than 10x faster than one replay per point, or a
    /// sampled point is more than 0.005 from its exact run.
    #[arg(long)]
    pub check: bool,
    /// Output format (table or json).
    #[arg(long, value_enum, default_value_t = crate::args::Format::Table)]
    pub format: crate::args::Format,
}

impl CurveArgs {
    fn policies(&self) -> Result<Vec<String>> {
        match &self.policy {
            None => Ok(MRC_DEFAULT_POLICIES.iter().map(|p| p.to_string()).collect()),
            some => parse_policies(some, Mode::Simulate),
        }
    }

    /// Reads the trace and computes the curves, with a progress bar unless `quiet`.
    pub fn compute(&self, quiet: bool) -> Result<(Simulator, MrcReport)> {
        if !self.trace.exists() {
            bail!("trace file {} does not exist", self.trace.display());
        }
        if self.block_tokens == 0 {
            bail!("--block-tokens must be at least 1 (Mooncake traces use 512)");
        }
        if let Some(r) = self.sample_rate
            && !(r > 0.0 && r <= 1.0)
        {
            bail!("--sample-rate {r}: give a share of the blocks in (0, 1], such as 0.1");
        }
        let policies = self.policies()?;
        if !quiet {
            eprintln!("reading {}...", self.trace.display());
        }
        let sim = Simulator::open(&self.trace, self.block_tokens)?;
        crate::check_trace(sim.stats(), &self.trace.display().to_string())?;
        let unique = sim.stats().unique_blocks;
        let blocks = |c: Capacity, flag: &str| {
            c.in_blocks_of(self.block_bytes)
                .blocks(unique)
                .with_context(|| flag.to_owned())
        };
        let (from, to) = (blocks(self.from, "--from")?, blocks(self.to, "--to")?);
        if from > to {
            bail!("--from ({from} blocks) is above --to ({to} blocks)");
        }
        crate::limits::check_sim_blocks("--to", to)?;
        let cfg = MrcConfig {
            policies,
            capacities: log_spaced(from, to, usize::from(self.points)),
            sample_rate: self.sample_rate,
            salt: 0,
            threads: self.threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            }),
        };
        let requests = sim.requests()?;
        let bar = crate::report::progress_bar(0, "curves", quiet);
        let report =
            mcos_workload::miss_ratio_curves(requests, self.block_tokens, &cfg, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
        bar.finish_and_clear();
        Ok((sim, report))
    }
}

pub fn run(a: MrcArgs) -> Result<()> {
    let (_, report) = a.curves.compute(a.format != MrcFormat::Table)?;
    let trace = a.curves.trace.display().to_string();
    match a.format {
        MrcFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&JsonReport::new(&trace, &report))?
        ),
        MrcFormat::Csv => print!("{}", csv(&report)),
        MrcFormat::Table => print!("{}", table(&trace, &report)),
    }
    Ok(())
}

/// `mcos mrc --format json`.
#[derive(Serialize)]
struct JsonReport<'a> {
    trace: &'a str,
    requests: u64,
    block_accesses: u64,
    unique_blocks: u64,
    infinite_cache_hit_ratio: f64,
    sample_rate: f64,
    sampled_blocks: u64,
    sampling_error: Option<mcos_workload::mrc::SamplingError>,
    curves: &'a [mcos_workload::MrcCurve],
}

impl<'a> JsonReport<'a> {
    fn new(trace: &'a str, r: &'a MrcReport) -> Self {
        Self {
            trace,
            requests: r.stats.requests,
            block_accesses: r.stats.block_accesses,
            unique_blocks: r.stats.unique_blocks,
            infinite_cache_hit_ratio: r.stats.infinite_cache_hit_ratio(),
            sample_rate: r.sample_rate,
            sampled_blocks: r.sampled_blocks,
            sampling_error: r.sampling_error,
            curves: &r.curves,
        }
    }
}

pub fn method_name(m: MrcMethod) -> String {
    match m {
        MrcMethod::StackDistance => "stack-distance".into(),
        MrcMethod::Exact => "exact".into(),
        MrcMethod::Sampled { rate } => format!("sampled@{rate:.4}"),
    }
}

fn csv(r: &MrcReport) -> String {
    let mut s =
        String::from("policy,method,capacity_blocks,capacity_fraction,hit_ratio,miss_ratio\n");
    for c in &r.curves {
        for p in &c.points {
            let _ = writeln!(
                s,
                "{},{},{},{:.6},{:.6},{:.6}",
                c.policy,
                method_name(c.method),
                p.capacity_blocks,
                p.capacity_fraction,
                p.hit_ratio,
                p.miss_ratio
            );
        }
    }
    s
}

/// What the table's header says about how the curves were made and how far to trust them.
pub fn describe(r: &MrcReport) -> String {
    let mut s = String::new();
    for c in &r.curves {
        let _ = write!(s, "{} {}; ", c.policy, method_name(c.method));
    }
    let mut out = format!("methods: {}", s.trim_end_matches("; "));
    if let Some(e) = r.sampling_error {
        let _ = write!(
            out,
            "\nsampling error (LRU on the same {} sampled blocks against its exact curve): \
             max {:.4}, mean {:.4} in hit ratio",
            r.sampled_blocks, e.lru_max_abs, e.lru_mean_abs
        );
    }
    out
}

fn table(trace: &str, r: &MrcReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "miss-ratio curves of {trace}: {} requests, {} block accesses, {} unique blocks \
         (infinite cache hit ratio {:.4})",
        r.stats.requests,
        r.stats.block_accesses,
        r.stats.unique_blocks,
        r.stats.infinite_cache_hit_ratio()
    );
    let _ = writeln!(s, "{}\n\nblock hit ratio per capacity:", describe(r));
    let _ = write!(s, "{:>10} {:>8}", "blocks", "share");
    for c in &r.curves {
        let _ = write!(s, " {:>9}", c.policy);
    }
    s.push('\n');
    let n = r.curves.first().map_or(0, |c| c.points.len());
    for i in 0..n {
        let p = r.curves[0].points[i];
        let _ = write!(
            s,
            "{:>10} {:>7.2}%",
            p.capacity_blocks,
            100.0 * p.capacity_fraction
        );
        for c in &r.curves {
            let _ = write!(s, " {:>9.4}", c.points[i].hit_ratio);
        }
        s.push('\n');
    }
    s
}

/// `mcos bench mrc`'s outcome.
#[derive(Serialize)]
struct BenchReport {
    trace: String,
    points: usize,
    policies: Vec<String>,
    threads: usize,
    curves_seconds: f64,
    per_point_seconds: f64,
    speedup: f64,
    max_abs_gap: f64,
    worst: String,
    per_policy: Vec<PolicyBench>,
}

#[derive(Serialize)]
struct PolicyBench {
    policy: String,
    method: String,
    per_point_seconds: f64,
    max_abs_gap: f64,
}

/// The curves against the baseline a user has without them: one `Simulator::run` per
/// (policy, capacity), sequentially, each streaming the trace as `mcos replay` does; then
/// every point of the curves checked against its exact run.
pub fn bench(a: MrcBenchArgs) -> Result<()> {
    let quiet = a.format == crate::args::Format::Json;
    let started = Instant::now();
    let (sim, report) = a.curves.compute(quiet)?;
    let curves_seconds = started.elapsed().as_secs_f64();
    let threads = a
        .curves
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let total: usize = report.curves.iter().map(|c| c.points.len()).sum();
    let bar = crate::report::progress_bar(total as u64, "per point", quiet);
    let mut per_policy = Vec::new();
    let (mut per_point_seconds, mut max_gap, mut worst) = (0.0, 0.0f64, String::new());
    // Re-open the trace so the baseline pays what `mcos replay` pays: stats and a stream.
    let baseline_started = Instant::now();
    let base = Simulator::open(&a.curves.trace, a.curves.block_tokens)?;
    let mut open_seconds = baseline_started.elapsed().as_secs_f64();
    drop(sim);
    for c in &report.curves {
        let t = Instant::now();
        let mut gap = 0.0f64;
        for p in &c.points {
            let exact = base
                .run(&c.policy, Capacity::Blocks(p.capacity_blocks))?
                .block_hit_ratio;
            let g = (p.hit_ratio - exact).abs();
            if g > max_gap {
                max_gap = g;
                worst = format!(
                    "{} at {} blocks: curve {:.4}, exact {exact:.4}",
                    c.policy, p.capacity_blocks, p.hit_ratio
                );
            }
            gap = gap.max(g);
            bar.inc(1);
        }
        let secs = t.elapsed().as_secs_f64() + open_seconds;
        open_seconds = 0.0;
        per_point_seconds += secs;
        per_policy.push(PolicyBench {
            policy: c.policy.clone(),
            method: method_name(c.method),
            per_point_seconds: secs,
            max_abs_gap: gap,
        });
    }
    bar.finish_and_clear();
    let out = BenchReport {
        trace: a.curves.trace.display().to_string(),
        points: report.curves.first().map_or(0, |c| c.points.len()),
        policies: report.curves.iter().map(|c| c.policy.clone()).collect(),
        threads,
        curves_seconds,
        per_point_seconds,
        speedup: per_point_seconds / curves_seconds.max(1e-9),
        max_abs_gap: max_gap,
        worst,
        per_policy,
    };
    match a.format {
        crate::args::Format::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        crate::args::Format::Table => {
            println!(
                "miss-ratio curves of {}: {} policies x {} points",
                out.trace,
                out.policies.len(),
                out.points
            );
            println!("{}", describe(&report));
            println!(
                "curves (read once, {} threads): {:.2} s; one replay per point: {:.2} s; \
                 speedup {:.1}x",
                out.threads, out.curves_seconds, out.per_point_seconds, out.speedup
            );
            println!(
                "{:<10} {:<18} {:>16} {:>12}",
                "policy", "method", "per point (s)", "max |gap|"
            );
            for p in &out.per_policy {
                println!(
                    "{:<10} {:<18} {:>16.2} {:>12.4}",
                    p.policy, p.method, p.per_point_seconds, p.max_abs_gap
                );
            }
            if out.worst.is_empty() {
                println!("every point equals its exact run");
            } else {
                println!(
                    "largest gap to an exact run: {:.4} ({})",
                    out.max_abs_gap, out.worst
                );
            }
        }
    }
    if a.check && (out.speedup < 10.0 || out.max_abs_gap > 0.005) {
        eprintln!(
            "check failed: speedup {:.1}x (target 10x), largest gap {:.4} (target 0.005)",
            out.speedup, out.max_abs_gap
        );
        std::process::exit(1);
    }
    Ok(())
}
