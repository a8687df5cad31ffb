//! `mcos stats --connect ADDR`: a running daemon's statistics, as a table or its JSON.

use crate::args::Format;
use anyhow::{Context, Result};
use clap::Args;
use mcos_client::Client;
use serde_json::Value;
use std::fmt::Write;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The daemon: its socket path, or host:port of its TCP listener.
    #[arg(long)]
    pub connect: String,
    /// Tenant name.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Tenant token (default: $MCOS_TOKEN, else none).
    #[arg(long)]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(a: StatsArgs) -> Result<()> {
    let token = a
        .token
        .clone()
        .or_else(|| std::env::var("MCOS_TOKEN").ok())
        .unwrap_or_default();
    let mut c = Client::connect(&a.connect, &a.tenant, &token)?;
    let text = c.stats_json()?;
    let j: Value = serde_json::from_str(&text).context("the daemon's stats are not JSON")?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&j)?),
        Format::Table => print!("{}", table(&j)),
    }
    Ok(())
}

fn table(j: &Value) -> String {
    let (n, d) = (&j["node"], &j["daemon"]);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mcosd {} (protocol {}), up {:.0} s, {} clients connected, {} connections served, {} pins held",
        d["version"].as_str().unwrap_or("?"),
        d["protocol_version"],
        d["uptime_seconds"].as_f64().unwrap_or(0.0),
        d["clients_connected"],
        d["connections"],
        d["pins_held"],
    );
    let _ = writeln!(
        s,
        "\n{:<6} {:<10} {:>12} {:>12} {:>8} {:>12}",
        "tier", "kind", "used", "capacity", "used %", "hits"
    );
    let hits = n["hits_per_tier"].as_array().cloned().unwrap_or_default();
    for (i, t) in n["tiers"].as_array().into_iter().flatten().enumerate() {
        let (u, c) = (
            t["used_blocks"].as_u64().unwrap_or(0),
            t["capacity_blocks"].as_u64().unwrap_or(0),
        );
        let _ = writeln!(
            s,
            "{:<6} {:<10} {:>12} {:>12} {:>7.1}% {:>12}",
            i,
            t["kind"].as_str().unwrap_or("?"),
            u,
            c,
            100.0 * u as f64 / c.max(1) as f64,
            hits.get(i).and_then(Value::as_u64).unwrap_or(0)
        );
    }
    let _ = writeln!(
        s,
        "\nmisses {}  admitted {}  rejected {}  evictions {}  corrupt dropped {}  policy epoch {}",
        n["misses"],
        n["admitted"],
        n["rejected"],
        n["evictions"],
        n["corrupt_blocks"],
        n["policy_epoch"]
    );
    if let Some(b) = n["brain"].as_object() {
        let _ = writeln!(
            s,
            "brain: knobs {}, {} switches, {} installs",
            b["knobs"], b["switches"], b["installs"]
        );
    }
    let _ = writeln!(
        s,
        "\n{:<14} {:>12} {:>14} {:>14}",
        "op", "requests", "p50 us <=", "p99 us <="
    );
    for (op, v) in d["requests"].as_object().into_iter().flatten() {
        let v = v.as_u64().unwrap_or(0);
        if v == 0 {
            continue;
        }
        let l = &d["latency"][op];
        let q = |k: &str| l[k].as_f64().map_or("> 1 s".into(), |x| format!("{x:.0}"));
        let _ = writeln!(
            s,
            "{op:<14} {v:>12} {:>14} {:>14}",
            q("p50_us_at_most"),
            q("p99_us_at_most")
        );
    }
    s
}
