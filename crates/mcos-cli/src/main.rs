//! `mcos`: the MCOS command line.
//!
//! - `mcos run`: the main job on the built-in workload (no external data): a policy sweep in
//!   simulation, then a replay through a real node with real bytes in DRAM and disk tiers.
//! - `mcos replay`: a trace through the simulator (capacity sweeps over every policy) or a real
//!   node.
//! - `mcos mrc`: miss-ratio curves per policy over a range of capacities, MIN as the bound.
//! - `mcos report`: one self-contained HTML page of a trace's curves, brain, tiers and serving.
//! - `mcos generate`: writes the built-in workload as a Mooncake-format trace.
//! - `mcos bench fastpath`: the fast path against the software round trip.
//! - `mcos bench hw`: the fast path as hardware (model, RTL, synthesis) against the software.
//! - `mcos bench gpu`: every GPU check and benchmark (feature `cuda`, on a GPU machine).
//! - `mcos serve`: the mcosd daemon; `mcos stats --connect`: a running daemon's statistics;
//!   `mcos top --connect`: a live view of it;
//!   `mcos bench serve`: the daemon against redis, the in-process node and memcpy.
//! - `mcos cluster up|status`: the rack-scale pool on this host, and its members.

mod args;
mod bench;
mod bench_cluster;
mod bench_crash;
mod bench_fastpath;
mod bench_gpu;
mod bench_hw;
mod bench_serve;
mod bench_soak;
mod cluster;
mod html_report;
mod interrupt;
mod limits;
mod mrc;
mod objreplay;
mod report;
mod show;
mod stats;
mod sweep;
mod tiered;
mod top;

use anyhow::{Context, Result, bail};
use args::{Cli, Command, DiskCapacity, Format, GenerateArgs, Mode, ReplayArgs, RunArgs};
use clap::Parser;
use interrupt::{Interrupted, RunDir};
use mcos_node::{Node, NodeConfig};
use mcos_workload::{
    Capacity, GeneratorConfig, Mixture, Request, Simulator, TraceReader, generate, replay_real,
    write_trace,
};
use report::{ReplayReport, ResultRow};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Counts allocations per thread, so `mcos bench fastpath` can show the fast path makes none
/// (one thread-local increment per allocation; no other effect).
#[global_allocator]
static ALLOC: mcos_bench::alloc::CountingAlloc = mcos_bench::alloc::CountingAlloc;

fn main() {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(a) => run(a),
        Command::Replay(a) => replay(a),
        Command::Generate(a) => generate_cmd(a),
        Command::Bench(t) => bench::run(t),
        Command::Policy(p) => match p.command {
            args::PolicyCommand::Show(a) => show::show(a),
        },
        Command::Serve(a) => mcos_server::serve_main(&a),
        Command::Stats(a) => stats::run(a),
        Command::Mrc(a) => mrc::run(a),
        Command::Report(a) => html_report::run(a),
        Command::Top(a) => top::run(a),
        Command::Cluster(a) => cluster::run(a),
    };
    if let Err(e) = outcome {
        if let Some(i) = e.downcast_ref::<Interrupted>() {
            eprintln!("{i}");
            std::process::exit(interrupt::exit_code(i.signal));
        }
        eprintln!("error: {}", error_text(&e));
        std::process::exit(1);
    }
}

/// An error and its causes on one line, each cause once: a cause whose text the line already
/// holds (an error that prints its source, or a transparent wrapper) is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Prints the trace's warnings (questionable input, with counts) and refuses a trace with
/// nothing to replay.
fn check_trace(stats: &mcos_workload::TraceStats, name: &str) -> Result<()> {
    stats
        .check_usable()
        .with_context(|| format!("trace {name}"))?;
    for w in stats.warnings() {
        eprintln!("warning: trace {name}: {w}");
    }
    Ok(())
}

/// The built-in workload of `mcos run` and `mcos generate`.
/// Prints a report: JSON alone, or its table followed by the per-run summaries.
fn print_report(
    format: Format,
    report: &impl serde::Serialize,
    table: impl FnOnce() -> String,
    summaries: &[String],
) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(report)?),
        Format::Table => {
            print!("{}", table());
            for s in summaries {
                print!("{s}");
            }
        }
    }
    Ok(())
}

fn builtin_config(requests: usize, seed: u64, preset: &str) -> Result<GeneratorConfig> {
    let mixture = Mixture::from_name(preset).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut cfg = GeneratorConfig::preset(mixture);
    cfg.requests = requests;
    cfg.seed = seed;
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(cfg)
}

fn generate_cmd(a: GenerateArgs) -> Result<()> {
    if let Some(csv) = &a.azure {
        let syn = mcos_workload::AzureSynthesis {
            block_tokens: a.block_tokens,
            ..Default::default()
        };
        let requests = mcos_workload::read_azure(csv, &syn)?;
        let mut out = mcos_workload::TraceWriter::create(&a.out)?;
        for r in &requests {
            out.write(r)?;
        }
        out.finish()?;
        eprintln!(
            "wrote {} requests from {} (synthesised block ids, {} tokens per block) to {}",
            requests.len(),
            csv.display(),
            a.block_tokens,
            a.out.display()
        );
        return Ok(());
    }
    let cfg = builtin_config(a.requests, a.seed, &a.preset)?;
    let n = write_trace(&cfg, &a.out).map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!(
        "wrote {n} requests ({} preset, seed {}) to {}",
        a.preset,
        a.seed,
        a.out.display()
    );
    Ok(())
}

/// Node configuration for a real replay: from `--config`, or DRAM (+ disk) sized from the
/// trace's unique blocks.
fn node_config(
    config: Option<&Path>,
    block_bytes: u32,
    dram_blocks: u64,
    disk_blocks: u64,
    dir: &Path,
    psync: bool,
) -> Result<NodeConfig> {
    if let Some(path) = config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read node config {}", path.display()))?;
        return NodeConfig::from_toml(&text).with_context(|| format!("in {}", path.display()));
    }
    let stride = mcos_tiers::layout::frame_stride(block_bytes) as u64;
    limits::check_memory_tier("the DRAM tier", dram_blocks, stride)?;
    limits::check_disk_tier("the disk tier", disk_blocks, stride)?;
    let to_u32 = |n: u64, what: &str| {
        u32::try_from(n).with_context(|| format!("{what} capacity of {n} blocks is too large"))
    };
    let mut cfg = NodeConfig::dram_and_disk(
        block_bytes,
        to_u32(dram_blocks, "DRAM")?,
        to_u32(disk_blocks.max(1), "disk")?,
        dir,
    );
    if disk_blocks == 0 {
        cfg.tiers.truncate(1);
    }
    if psync {
        cfg.disk_io = mcos_node::DiskIo::Psync;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn default_dir(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| std::env::temp_dir().join(format!("mcos-{}", std::process::id())))
}

/// Replays `requests` through a real node built from `cfg`, with a progress bar. A SIGINT or
/// SIGTERM stops it at the next request: the node closes (removing its tier file) and the
/// error is [`Interrupted`], saying what was done. A failure to remove the tier file at close
/// is a warning: the replay's results stand.
fn real_replay(
    cfg: NodeConfig,
    requests: impl IntoIterator<Item = Result<Request, mcos_workload::TraceError>>,
    total_requests: u64,
    block_tokens: u32,
    quiet: bool,
    what: &str,
) -> Result<(mcos_workload::RealResult, mcos_node::NodeStats)> {
    interrupt::node_open(true)?;
    let tier_file = cfg.tiers.iter().find_map(|t| t.path.clone());
    let node = match Node::open(cfg) {
        Ok(n) => n,
        Err(e) => {
            interrupt::node_open(false)?;
            return Err(e).context("cannot open the node");
        }
    };
    let bar = report::progress_bar(total_requests, "real replay", quiet);
    let result = replay_real(requests, &node, block_tokens, |n| {
        bar.set_position(n);
        if interrupt::received().is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    bar.finish_and_clear();
    let stats = node.stats();
    let closed = node.close();
    interrupt::doing(format!("between real runs, after {what} (its node closed)"));
    interrupt::node_open(false)?;
    if let Err(mcos_workload::RealError::Interrupted { requests }) = &result {
        let sig = interrupt::received().unwrap_or(libc_sigint());
        let removed = match (&closed, &tier_file) {
            (Ok(()), Some(p)) if !p.exists() => format!("; removed {}", p.display()),
            (Err(e), _) => format!("; closing the node failed: {e}"),
            _ => String::new(),
        };
        anyhow::bail!(Interrupted {
            signal: sig,
            message: format!(
                "interrupted by {} during {what}: {requests} of {total_requests} requests \
                 replayed, results discarded{removed}",
                interrupt::signal_name(sig)
            ),
        });
    }
    if let Err(e) = closed {
        eprintln!("warning: closing the node: {e} (the replay's results are kept)");
    }
    Ok((result?, stats))
}

/// SIGINT's number, for an interruption whose signal was not recorded.
fn libc_sigint() -> i32 {
    2
}

fn run(a: RunArgs) -> Result<()> {
    a.check_flags()?;
    limits::check_run_requests(a.requests)?;
    let quiet = a.format == Format::Json;
    let cfg = builtin_config(a.requests, a.seed, &a.preset)?;
    let real_policies = args::parse_policies(&Some(a.policy.clone()), Mode::Real)?;
    interrupt::install()?;
    let run_dir = RunDir::open(&default_dir(a.dir.clone()))?;
    let dir = run_dir.path().to_path_buf();
    if !quiet {
        eprintln!(
            "generating the built-in workload ({} preset, {} requests, seed {})...",
            a.preset, a.requests, a.seed
        );
    }
    interrupt::doing("generating the built-in workload (nothing written yet)");
    let requests = generate(&cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sim = Simulator::from_requests(requests.clone(), cfg.block_tokens)?;
    let stats = sim.stats().clone();

    // 1. Every policy at the standard capacities, in simulation (fast path without payloads).
    interrupt::doing("simulating the policy sweep (no files written)");
    let capacities = [0.01, 0.05, 0.10, 0.25].map(Capacity::Fraction);
    let mut rows = sweep::simulate(
        &sim,
        &args::DEFAULT_POLICIES,
        &capacities,
        a.block_bytes.unwrap_or(args::DEFAULT_BLOCK_BYTES),
        quiet,
    )?;

    // 2. The same workload through a real node: real bytes, DRAM over a disk file.
    let block_bytes = a.block_bytes.unwrap_or(args::DEFAULT_BLOCK_BYTES);
    let dram = a
        .dram
        .unwrap_or(Capacity::Fraction(0.05))
        .in_blocks_of(block_bytes)
        .blocks(stats.unique_blocks)
        .context("--dram")?;
    let disk = match a
        .disk
        .unwrap_or(DiskCapacity::Some(Capacity::Fraction(0.25)))
    {
        DiskCapacity::None => 0,
        DiskCapacity::Some(c) => c
            .in_blocks_of(block_bytes)
            .blocks(stats.unique_blocks)
            .context("--disk")?,
    };
    let mut summaries = Vec::new();
    for (done, policy) in real_policies.iter().enumerate() {
        let mut node_cfg =
            node_config(a.config.as_deref(), block_bytes, dram, disk, &dir, a.psync)?;
        node_cfg.brain.enabled = policy == "mcos";
        if !quiet {
            eprintln!(
                "replaying through a real node ({policy}): {} in {}...",
                report::describe_tiers(&node_cfg),
                dir.display()
            );
        }
        let what = format!(
            "the real replay of {policy} ({done} of {} real runs finished before it)",
            real_policies.len()
        );
        let (real, node_stats) = real_replay(
            node_cfg.clone(),
            requests.iter().cloned().map(Ok),
            stats.requests,
            cfg.block_tokens,
            quiet,
            &what,
        )?;
        rows.push(ResultRow::real(
            &real,
            &node_cfg,
            stats.unique_blocks,
            policy,
        ));
        summaries.push(report::real_summary(&real, &node_stats, &node_cfg, policy));
    }
    interrupt::doing("printing the report");
    drop(run_dir);
    let report = ReplayReport::new("built-in workload".into(), &stats, rows);
    print_report(a.format, &report, || report.table(), &summaries)?;
    Ok(())
}

fn replay(a: ReplayArgs) -> Result<()> {
    let quiet = a.format == Format::Json;
    a.check_flags()?;
    if let Some(plot) = &a.plot {
        html_report::check_dir_of(plot, "--plot")?;
    }
    if !a.trace.exists() {
        bail!("trace file {} does not exist", a.trace.display());
    }
    if let Some(format) = objreplay::object_format(&a)? {
        if a.mode == Mode::Real {
            bail!("--mode real replays KV-block (Mooncake) traces; an object trace is simulated");
        }
        return objreplay::run(&a, format);
    }
    if a.compat.is_some()
        || a.threads.is_some()
        || a.csv_columns.is_some()
        || a.ignore_obj_size
        || a.trace_stats
    {
        bail!(
            "--compat, --threads, --csv-columns, --ignore-obj-size and --trace-stats apply to \
             object traces (libCacheSim formats)"
        );
    }
    let policies = args::parse_policies(&a.policy, a.mode)?;
    let capacities = args::parse_capacities("--capacity", &a.capacity, a.block_bytes)?;
    let disk_capacity = a.disk_capacity.map(|c| c.in_blocks_of(a.block_bytes));
    args::parse_intents(a.intents())?;
    interrupt::install()?;
    interrupt::doing("reading the trace (nothing written yet)");
    let sim = Simulator::open(&a.trace, a.block_tokens)?;
    let stats = sim.stats().clone();
    check_trace(&stats, &a.trace.display().to_string())?;
    for c in &capacities {
        let blocks = c.blocks(stats.unique_blocks)?;
        match a.mode {
            Mode::Simulate => limits::check_sim_blocks("--capacity", blocks)?,
            Mode::Real if a.config.is_none() => {
                let stride = mcos_tiers::layout::frame_stride(a.block_bytes) as u64;
                limits::check_memory_tier("--capacity", blocks, stride)?;
            }
            Mode::Real => {}
        }
    }
    interrupt::doing("simulating (no files written)");
    if let Some(tiers) = &a.tiers {
        if a.mode == Mode::Real {
            bail!("--tiers models a hierarchy in simulate mode; real mode takes --disk-capacity");
        }
        let report = tiered::run(&sim, &a, tiers, &policies, quiet)?;
        if let Some(plot) = &a.plot {
            html_report::tiered_plot(plot, &report)?;
        }
        print_report(a.format, &report, || report.table(), &[])?;
        return Ok(());
    }
    let served = a.prefill_tps.is_some() || a.load.is_some();
    if served && a.mode == Mode::Real {
        bail!("--prefill-tps and --load model a prefill engine in simulate mode only");
    }
    let rows = match a.mode {
        Mode::Simulate if served => {
            let tps = match a.prefill_tps {
                Some(t) if t.is_finite() && t > 0.0 => t,
                Some(t) => bail!("--prefill-tps {t} must be a positive number of tokens/s"),
                None => sim.prefill_rate_for_load(a.load.unwrap_or(0.8))?,
            };
            let intents = args::parse_intents(a.intents())?;
            if intents.iter().any(|i| i.stage) {
                bail!("--intents stage moves blocks up a tier hierarchy: give --tiers");
            }
            let names: Vec<&str> = policies.iter().map(String::as_str).collect();
            sweep::serve(
                &sim,
                &names,
                &capacities,
                &intents,
                tps,
                a.block_tokens,
                a.block_bytes,
                quiet,
            )?
        }
        Mode::Simulate if a.shadow.is_some() && a.plot.is_some() => {
            bail!("--plot draws a replay's hit ratios; --shadow reports a comparison table only")
        }
        Mode::Simulate if a.shadow.is_some() => {
            let names: Vec<&str> = policies.iter().map(String::as_str).collect();
            let candidate = a.shadow.clone().unwrap_or_default();
            let report = show::shadow(&sim, &names, &capacities, &candidate, &a.trace, quiet)?;
            print_report(a.format, &report, || report.table(), &[])?;
            return Ok(());
        }
        Mode::Simulate => {
            let names: Vec<&str> = policies.iter().map(String::as_str).collect();
            sweep::simulate(&sim, &names, &capacities, a.block_bytes, quiet)?
        }
        Mode::Real => {
            let run_dir = RunDir::open(&default_dir(a.dir.clone()))?;
            let dir = run_dir.path().to_path_buf();
            let mut rows = Vec::new();
            let mut summaries = Vec::new();
            let runs = policies.len() * capacities.len();
            for policy in &policies {
                for &c in &capacities {
                    let dram = c.blocks(stats.unique_blocks)?;
                    let disk = disk_capacity
                        .map(|d| d.blocks(stats.unique_blocks))
                        .transpose()?
                        .unwrap_or(0);
                    let mut cfg = node_config(
                        a.config.as_deref(),
                        a.block_bytes,
                        dram,
                        disk,
                        &dir,
                        a.psync,
                    )?;
                    cfg.brain.enabled = policy == "mcos";
                    if !quiet {
                        eprintln!("real replay ({policy}): {}", report::describe_tiers(&cfg));
                    }
                    let reader = TraceReader::open(&a.trace)?;
                    let what = format!(
                        "the real replay of {policy} ({} of {runs} real runs finished before it)",
                        rows.len()
                    );
                    let (real, node_stats) = real_replay(
                        cfg.clone(),
                        reader,
                        stats.requests,
                        a.block_tokens,
                        quiet,
                        &what,
                    )?;
                    rows.push(ResultRow::real(&real, &cfg, stats.unique_blocks, policy));
                    summaries.push(report::real_summary(&real, &node_stats, &cfg, policy));
                }
            }
            drop(run_dir);
            if let Some(plot) = &a.plot {
                html_report::replay_plot(plot, &rows, "real replay")?;
            }
            let report = ReplayReport::new(a.trace.display().to_string(), &stats, rows);
            print_report(a.format, &report, || report.table(), &summaries)?;
            return Ok(());
        }
    };
    if let Some(plot) = &a.plot {
        let what = if served {
            "served replay"
        } else {
            "simulated replay"
        };
        html_report::replay_plot(plot, &rows, what)?;
    }
    let report = ReplayReport::new(a.trace.display().to_string(), &stats, rows);
    print_report(a.format, &report, || report.table(), &[])?;
    Ok(())
}
