//! `mcos replay` on an object trace (libCacheSim's formats): byte capacities, object sizes,
//! object and byte miss ratios per policy and capacity, runs in parallel threads.

use std::path::Path;

use anyhow::{Result, bail};
use mcos_workload::objcache::{self, OBJECT_POLICY_NAMES};
use mcos_workload::objsim::{ObjSimResult, ObjSimulator, ObjTraceStats};
use mcos_workload::objtrace::{CsvColumns, ObjFormat};
use mcos_workload::simulate::Capacity;
use serde::Serialize;

use crate::args::{Compat, Format, ReplayArgs};

/// libCacheSim's eviction test set, with that test's parameters (`test/test_evictionAlgo.c`).
pub const LIBCACHESIM_POLICIES: [&str; 14] = [
    "lru",
    "fifo",
    "clock",
    "slru:segments=5",
    "arc",
    "lirs",
    "sieve",
    "s3fifo:small=0.1,ghost=0.9,threshold=2",
    "qdlp:small=0.1,ghost=0.9,threshold=1,bits=2",
    "lfu",
    "gdsf",
    "hyperbolic",
    "belady",
    "beladysize",
];

/// The object format the arguments name, or `None` for a Mooncake-format trace.
pub fn object_format(a: &ReplayArgs) -> Result<Option<ObjFormat>> {
    let csv = a
        .csv_columns
        .as_deref()
        .map(CsvColumns::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--csv-columns: {e}"))?;
    match a.trace_format.as_deref() {
        Some(f) if f.eq_ignore_ascii_case("mooncake") || f.eq_ignore_ascii_case("jsonl") => {
            Ok(None)
        }
        Some(f) => ObjFormat::from_name(f, csv.as_ref())
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--trace-format: {e}")),
        None => match (ObjFormat::from_path(&a.trace, csv.as_ref()), csv) {
            (Some(r), _) => r.map(Some).map_err(|e| anyhow::anyhow!("{e}")),
            // --csv-columns names the format when the extension does not.
            (None, Some(cols)) => Ok(Some(ObjFormat::Csv(cols))),
            (None, None) => Ok(None),
        },
    }
}

/// What `--format json` prints for an object trace.
#[derive(Debug, Serialize)]
pub struct ObjReport {
    /// The trace file.
    pub trace: String,
    /// Its format.
    pub trace_format: String,
    /// One pass's statistics; `null` when the pass was skipped (every capacity absolute and no
    /// `--trace-stats`): each result still counts its requests and bytes.
    pub stats: Option<ObjTraceStats>,
    /// Threads the runs used.
    pub threads: usize,
    /// Whether every object was read as size 1 (`--ignore-obj-size`).
    pub ignore_obj_size: bool,
    /// One row per (policy, capacity), policies outermost.
    pub results: Vec<ObjSimResult>,
}

fn format_name(f: &ObjFormat) -> &'static str {
    match f {
        ObjFormat::OracleGeneral => "oracleGeneral",
        ObjFormat::Csv(_) => "csv",
        ObjFormat::Txt => "txt",
        ObjFormat::Vscsi => "vscsi",
    }
}

fn parse_capacities(text: &str, compat: Option<Compat>) -> Result<Vec<Capacity>> {
    let mut out = Vec::new();
    for piece in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        // libCacheSim's cachesim reads a bare number as bytes.
        if compat == Some(Compat::Libcachesim)
            && let Ok(n) = piece.parse::<u64>()
        {
            if n == 0 {
                bail!("--capacity 0 holds nothing");
            }
            out.push(Capacity::Bytes(n));
            continue;
        }
        out.push(Capacity::parse(piece).map_err(|e| anyhow::anyhow!("--capacity: {e}"))?);
    }
    if out.is_empty() {
        bail!("--capacity needs at least one value");
    }
    Ok(out)
}

/// Runs the sweep and prints the report.
pub fn run(a: &ReplayArgs, format: ObjFormat) -> Result<()> {
    if a.tiers.is_some() || a.shadow.is_some() || a.load.is_some() || a.prefill_tps.is_some() {
        bail!(
            "--tiers, --shadow, --load and --prefill-tps model KV-block traces; an object trace \
             ({}) is replayed at byte capacities only",
            format_name(&format)
        );
    }
    let quiet = a.format == Format::Json;
    let capacities = parse_capacities(&a.capacity, a.compat)?;
    // The statistics pass reads the whole trace once more; only fractional capacities need it.
    let sim = if a.trace_stats || capacities.iter().any(|&c| ObjTraceStats::needs_stats(c)) {
        ObjSimulator::open_with(&a.trace, format.clone(), a.ignore_obj_size)?
    } else {
        ObjSimulator::open_without_stats(&a.trace, format.clone(), a.ignore_obj_size)?
    };
    let stats = sim.stats().cloned();
    let has_next_access = sim.has_next_access();
    let specs: Vec<String> = match &a.policy {
        Some(list) => objcache::split_specs(list),
        None if a.compat == Some(Compat::Libcachesim) => {
            LIBCACHESIM_POLICIES.iter().map(|s| s.to_string()).collect()
        }
        None => OBJECT_POLICY_NAMES.iter().map(|s| s.to_string()).collect(),
    };
    let specs: Vec<String> = if a.policy.is_none() && !has_next_access {
        specs
            .into_iter()
            .filter(|s| !objcache::needs_next_access(s))
            .collect()
    } else {
        specs
    };
    if specs.is_empty() {
        bail!(
            "--policy needs at least one policy ({})",
            OBJECT_POLICY_NAMES.join(", ")
        );
    }
    if let Some(stats) = &stats {
        for &c in &capacities {
            stats.capacity_bytes(c, a.ignore_obj_size)?;
        }
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runs = specs.len() * capacities.len();
    match &stats {
        Some(stats) if !quiet => {
            if stats.size_changes > 0 {
                eprintln!(
                    "warning: {} of {} requests change their object's size; a hit counts the \
                     object at the size it was admitted with (libCacheSim does the same)",
                    stats.size_changes, stats.requests
                );
            }
            eprintln!(
                "{}: {} requests, {} objects, {} working-set bytes; {runs} runs on {threads} \
                 threads",
                a.trace.display(),
                stats.requests,
                stats.unique_objects,
                stats.unique_bytes,
            );
        }
        None if !quiet => eprintln!(
            "{}: {runs} runs on {threads} threads (every capacity absolute: no statistics pass; \
             --trace-stats adds it)",
            a.trace.display()
        ),
        _ => {}
    }
    let names: Vec<&str> = specs.iter().map(String::as_str).collect();
    let results = sim.sweep(&names, &capacities, threads)?;
    let report = ObjReport {
        trace: a.trace.display().to_string(),
        trace_format: format_name(&format).to_owned(),
        stats,
        threads,
        ignore_obj_size: a.ignore_obj_size,
        results,
    };
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", table(&report)),
    }
    Ok(())
}

fn table(r: &ObjReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    match (&r.stats, r.results.first()) {
        (Some(st), _) => {
            let _ = writeln!(
                s,
                "{} ({}): {} requests, {} bytes requested, {} objects, {} working-set bytes",
                Path::new(&r.trace).display(),
                r.trace_format,
                st.requests,
                st.request_bytes,
                st.unique_objects,
                st.unique_bytes
            );
        }
        (None, first) => {
            let _ = writeln!(
                s,
                "{} ({}): {} requests, {} bytes requested (no statistics pass: --trace-stats)",
                Path::new(&r.trace).display(),
                r.trace_format,
                first.map_or(0, |x| x.requests),
                first.map_or(0, |x| x.request_bytes),
            );
        }
    }
    let _ = writeln!(
        s,
        "{:<44} {:>14} {:>8} {:>10} {:>10} {:>10} {:>14} {:>11}",
        "policy", "capacity B", "of WSS", "obj miss", "byte miss", "misses", "miss bytes", "req/s"
    );
    for x in &r.results {
        let _ = writeln!(
            s,
            "{:<44} {:>14} {:>8} {:>10.4} {:>10.4} {:>10} {:>14} {:>11.0}",
            x.policy,
            x.capacity_bytes,
            x.capacity_fraction
                .map_or_else(|| "-".to_owned(), |f| format!("{:.2}%", f * 100.0)),
            x.object_miss_ratio,
            x.byte_miss_ratio,
            x.misses,
            x.miss_bytes,
            x.requests_per_s
        );
    }
    s
}
