//! `mcos bench fastpath`: crates/mcos-bench behind the command line, with a table or the JSON
//! report (field names stable).

use crate::args::Format;
use anyhow::{Context, Result, bail};
use clap::Args;
use mcos_bench::report::Report;
use mcos_bench::stream::Mix;
use mcos_bench::{BenchConfig, run as run_bench};
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct FastpathArgs {
    /// A Mooncake-format trace whose block accesses are also replayed through the fast path
    /// (e.g. ../shared/traces/mooncake-conversation/conversation_trace.jsonl).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Comma-separated shard counts (one thread and core each).
    #[arg(long, default_value = "1,2")]
    pub shards: String,
    /// Synthetic stream: resident blocks over all shards (a quarter in the fast tier).
    #[arg(long, default_value_t = 10_000_000, value_parser = crate::args::parse_positive_u64, allow_hyphen_values = true)]
    pub capacity: u64,
    /// Synthetic stream: timed decisions per run.
    #[arg(long, default_value_t = 20_000_000, value_parser = crate::args::parse_positive_u64, allow_hyphen_values = true)]
    pub decisions: u64,
    /// Synthetic stream: hits go to one of this many most recently inserted blocks per shard.
    #[arg(long, default_value_t = 100_000, value_parser = crate::args::parse_positive_u64, allow_hyphen_values = true)]
    pub hot_blocks: u64,
    /// Synthetic stream: shares of hit, miss and prefetching decisions, in percent.
    #[arg(long, default_value = "70,20,10")]
    pub mix: String,
    /// Synthetic stream: seed.
    #[arg(long, default_value_t = 0x4D43_4F53)]
    pub seed: u64,
    /// Trace replay: capacity as a fraction of the trace's distinct blocks.
    #[arg(long, default_value_t = 0.10, allow_negative_numbers = true)]
    pub trace_capacity: f64,
    /// Trace replay: timed decisions per run (the trace loops).
    #[arg(long, default_value_t = 20_000_000, value_parser = crate::args::parse_positive_u64, allow_hyphen_values = true)]
    pub trace_decisions: u64,
    /// Timed decisions of each round-trip mode.
    #[arg(long, default_value_t = 20_000, value_parser = crate::args::parse_positive_u64, allow_hyphen_values = true)]
    pub roundtrip_decisions: u64,
    /// Ops ahead whose directory entries the fast path prefetches (0: none).
    #[arg(long, default_value_t = 8)]
    pub prefetch_ahead: usize,
    /// Decisions per timed batch.
    #[arg(long, default_value_t = 32, value_parser = crate::args::parse_positive_u64, allow_hyphen_values = true)]
    pub batch: u64,
    /// Milliseconds between policy installs while churning.
    #[arg(long, default_value_t = 10)]
    pub churn_interval_ms: u64,
    /// Milliseconds of each stretch with and without churn (they alternate during a run).
    #[arg(long, default_value_t = 250)]
    pub churn_segment_ms: u64,
    /// Do not pin shard threads to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit non-zero (status 1, after the report) when any target is missed, so scripts can
    /// rely on the exit status.
    #[arg(long)]
    pub check: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn parse_list(s: &str, what: &str) -> Result<Vec<u64>> {
    let v = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u64>()
                .with_context(|| format!("`{p}` is not a valid {what}"))
        })
        .collect::<Result<Vec<_>>>()?;
    if v.is_empty() {
        bail!("give at least one {what}");
    }
    Ok(v)
}

fn config(a: &FastpathArgs) -> Result<BenchConfig> {
    let mut c = BenchConfig::standard();
    c.shards = parse_list(&a.shards, "shard count")?
        .into_iter()
        .map(|s| s as usize)
        .collect();
    let mix = parse_list(&a.mix, "mix share (hit,miss,prefetch in percent)")?;
    let [hit, miss, prefetch] = mix[..] else {
        bail!("--mix takes three shares: hit,miss,prefetch (e.g. 70,20,10)");
    };
    let share = |v: u64| u32::try_from(v).context("mix shares are percentages");
    c.synthetic.mix = Mix {
        hit: share(hit)?,
        miss: share(miss)?,
        prefetch: share(prefetch)?,
    };
    c.capacity = a.capacity;
    c.decisions = a.decisions;
    c.synthetic.hot_blocks = a.hot_blocks;
    c.synthetic.seed = a.seed;
    c.trace = a.trace.clone();
    if let Some(t) = &c.trace
        && !t.is_file()
    {
        bail!("trace file {} does not exist", t.display());
    }
    c.trace_capacity = a.trace_capacity;
    c.trace_decisions = a.trace_decisions;
    c.roundtrip_decisions = a.roundtrip_decisions;
    c.loop_config.prefetch_ahead = a.prefetch_ahead;
    c.loop_config.batch = a.batch.max(1);
    c.churn_interval = Duration::from_millis(a.churn_interval_ms.max(1));
    c.churn_segment = Duration::from_millis(a.churn_segment_ms.max(1));
    c.pin = !a.no_pin;
    Ok(c)
}

pub fn run(a: FastpathArgs) -> Result<()> {
    let cfg = config(&a)?;
    let quiet = a.format == Format::Json;
    let report = run_bench(&cfg, |what| {
        if !quiet {
            eprintln!("{what}...");
        }
    })?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(out) = &a.out {
        std::fs::write(out, &json).with_context(|| format!("cannot write {}", out.display()))?;
    }
    match a.format {
        Format::Json => println!("{json}"),
        Format::Table => print!("{}", table(&report)),
    }
    if a.check {
        let missed: Vec<&str> = report
            .targets
            .iter()
            .filter(|t| !t.met)
            .map(|t| t.name.as_str())
            .collect();
        if !missed.is_empty() {
            bail!(
                "--check: {} of {} targets missed: {}",
                missed.len(),
                report.targets.len(),
                missed.join(", ")
            );
        }
    }
    Ok(())
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "not measured".into(), |n| n.to_string())
}

fn table(r: &Report) -> String {
    let mut s = String::new();
    let f = &r.fastpath;
    let _ = writeln!(s, "fast path (1 shard, synthetic stream, no churn)");
    let _ = writeln!(
        s,
        "  {:.2} M decisions/s per core; per decision (batch) p50 {} ns, p99 {} ns, p99.9 {} ns",
        f.decisions_per_s / 1e6,
        f.p50_ns,
        f.p99_ns,
        f.p999_ns
    );
    let _ = writeln!(
        s,
        "  sampled per event: p50 {} ns, p99 {} ns, p99.9 {} ns (clock read {} ns included)",
        f.event_p50_ns, f.event_p99_ns, f.event_p999_ns, r.config.clock_overhead_ns
    );
    let _ = writeln!(
        s,
        "  fast-path thread during the run: {} allocations, {} system calls, {} voluntary / {} involuntary context switches",
        opt(f.allocations),
        opt(f.syscalls),
        f.voluntary_ctx_switches,
        f.involuntary_ctx_switches
    );
    for (name, rt) in [
        ("software round trip", &r.roundtrip),
        ("round trip + syscall", &r.roundtrip_syscall),
    ] {
        let _ = writeln!(
            s,
            "{name}: p50 {} ns, p99 {} ns, p99.9 {} ns, {:.0} decisions/s ({} decisions)",
            rt.p50_ns, rt.p99_ns, rt.p999_ns, rt.decisions_per_s, rt.decisions
        );
    }
    let _ = writeln!(
        s,
        "round-trip p99 / fast-path p99: {:.0}x (with syscall {:.0}x)",
        r.ratios.roundtrip_p99_over_fastpath_p99, r.ratios.roundtrip_syscall_p99_over_fastpath_p99
    );
    let c = &r.churn;
    let _ = writeln!(
        s,
        "policy churn every {} ms: p99 {} ns with, {} ns without ({:.3}x); commit to effect p50 {} ns, p99 {} ns, max {} ns over {} installs",
        c.interval_ms,
        c.p99_ns,
        c.p99_ns_without,
        c.p99_ratio,
        c.commit_to_effect_p50_ns,
        c.commit_to_effect_p99_ns,
        c.commit_to_effect_max_ns,
        c.installs
    );
    let _ = writeln!(
        s,
        "directory: {:.2} bytes per block at {} blocks (layout); {:.2} built for {} blocks",
        r.directory.layout_bytes_per_block,
        r.directory.layout_blocks,
        r.directory.built_bytes_per_block,
        r.directory.built_blocks
    );
    let _ = writeln!(
        s,
        "\n{:<10} {:>6} {:>11} {:>13} {:>8} {:>8} {:>9} {:>10} {:>12}",
        "stream",
        "shards",
        "capacity",
        "M dec/s/core",
        "p50 ns",
        "p99 ns",
        "p99.9 ns",
        "hit ratio",
        "distinct"
    );
    for run in &r.runs {
        let hits: u64 = run.events.hits.iter().sum();
        let _ = writeln!(
            s,
            "{:<10} {:>6} {:>11} {:>13.2} {:>8} {:>8} {:>9} {:>10.3} {:>12}",
            run.stream,
            run.shards,
            run.capacity_blocks,
            run.decisions_per_s_per_core / 1e6,
            run.p50_ns,
            run.p99_ns,
            run.p999_ns,
            hits as f64 / run.events.accesses.max(1) as f64,
            run.distinct_blocks
        );
    }
    let _ = writeln!(
        s,
        "\nsampled per-event latency by kind (p50 / p99 ns, samples):"
    );
    for run in &r.runs {
        let kinds: Vec<String> = run
            .event_by_kind
            .iter()
            .filter(|k| k.samples > 0)
            .map(|k| format!("{} {} / {} ({})", k.kind, k.p50_ns, k.p99_ns, k.samples))
            .collect();
        let _ = writeln!(s, "  {} x{}: {}", run.stream, run.shards, kinds.join(", "));
    }
    let _ = writeln!(s, "\ntargets:");
    for t in &r.targets {
        let _ = writeln!(
            s,
            "  [{}] {}: {} (bar {})",
            if t.met { "met" } else { "MISSED" },
            t.name,
            t.value,
            t.bar
        );
    }
    s
}
