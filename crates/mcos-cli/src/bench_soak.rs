//! `mcos bench soak`: K clients run mixed operations against mcosd for N seconds, every get
//! verified, while the daemon's resident memory and open descriptors are sampled.
//!
//! The daemon serves a DRAM tier over a persistent disk tier sized for the whole key space, so
//! nothing durable is ever evicted. A warm-up fills both tiers first (the DRAM arena's pages are
//! touched as frames fill; counting that as growth would be wrong), then RSS and fds are
//! sampled every 250 ms. Operations: gets of random keys (verified byte for byte), volatile and
//! durable puts, pins with and without an unpin (a lease ends them), exists and prefix, and a
//! client that reconnects now and then (its leases are released at close). At the end every
//! key acknowledged durable is read back and the daemon must hold no pin.

use crate::args::Format;
use crate::bench_serve::{Proc, fill, key_of, wait_for, wrong_bytes};
use anyhow::{Context, Result, bail};
use clap::Args;
use mcos_client::{Client, ClientIntent, Outcome};
use mcos_core::BlockKey;
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;
const BATCH: usize = 8;
/// Distinct keys (the DRAM tier holds a quarter of them).
const KEYS: u64 = 8192;
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// Seconds of mixed load after the warm-up.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Client threads (each its own connection).
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Directory for the tier file and socket (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Exit 1 when RSS grew over 5 %, any byte was wrong, a durable block was lost or a pin
    /// leaked.
    #[arg(long)]
    pub check: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Serialize, Debug)]
struct Report {
    seconds: f64,
    clients: usize,
    operations: u64,
    verified_gets: u64,
    wrong_bytes: u64,
    durable_acknowledged: u64,
    durable_lost: u64,
    pins_held_end: u64,
    rss_kib_after_warmup: u64,
    rss_kib_max: u64,
    rss_kib_end: u64,
    rss_growth_pct: f64,
    fds_after_warmup: u64,
    fds_max: u64,
    samples: usize,
    client_errors: u64,
}

#[derive(Default)]
struct Totals {
    ops: AtomicU64,
    verified: AtomicU64,
    wrong: AtomicU64,
    errors: AtomicU64,
}

fn proc_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn proc_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

fn connect(sock: &Path) -> Result<Client> {
    Ok(Client::connect(&sock.to_string_lossy(), "default", "")?)
}

fn put_ids(c: &mut Client, ids: &[u64], durable: bool) -> Result<Vec<Outcome>> {
    let bufs: Vec<Vec<u8>> = ids
        .iter()
        .map(|&i| {
            let mut b = vec![0u8; BLOCK];
            fill(i, &mut b);
            b
        })
        .collect();
    let blocks: Vec<(BlockKey, &[u8])> = ids
        .iter()
        .zip(&bufs)
        .map(|(&i, b)| (key_of(i), &b[..]))
        .collect();
    Ok(if durable {
        c.put_durable(0, &blocks)?
    } else {
        c.put(&blocks)?
    })
}

/// One client's loop until `stop`.
fn client_loop(
    sock: &Path,
    seed: u64,
    stop: &AtomicBool,
    t: &Totals,
    durable: &Mutex<HashSet<u64>>,
) -> Result<()> {
    let mut c = connect(sock)?;
    let mut rng = seed | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    while !stop.load(Ordering::Relaxed) {
        let ids: Vec<u64> = (0..BATCH).map(|_| next() % KEYS + 1).collect();
        let keys: Vec<BlockKey> = ids.iter().map(|&i| key_of(i)).collect();
        match next() % 20 {
            0..=9 => {
                for (g, &i) in c.get(&keys)?.iter().zip(&ids) {
                    if let Some(b) = g {
                        t.verified.fetch_add(1, Ordering::Relaxed);
                        let w = wrong_bytes(i, b) + BLOCK.abs_diff(b.len()) as u64;
                        t.wrong.fetch_add(w, Ordering::Relaxed);
                    }
                }
            }
            10..=12 => {
                put_ids(&mut c, &ids, false)?;
            }
            13..=14 => {
                let out = put_ids(&mut c, &ids, true)?;
                let mut d = durable
                    .lock()
                    .map_err(|_| anyhow::anyhow!("durable set poisoned"))?;
                for (o, &i) in out.iter().zip(&ids) {
                    if o.is_durable() {
                        d.insert(i);
                    }
                }
            }
            15 => {
                c.pin(&keys, None)?;
                c.unpin(&keys)?;
            }
            // A pin left to its lease (200 ms).
            16 => {
                c.pin(&keys[..1], Some(Duration::from_millis(200)))?;
            }
            17 => {
                c.exists(&keys)?;
                c.longest_prefix(&keys)?;
            }
            18 => {
                c.intents(&[(keys[0], ClientIntent::ExpectReuse(2))])?;
            }
            _ => {
                // Pins held by a connection that goes away are released with it.
                c.pin(&keys[..2], None)?;
                c = connect(sock)?;
            }
        }
        t.ops.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

pub fn run(a: SoakArgs) -> Result<()> {
    if !(1.0..=86_400.0).contains(&a.seconds) || a.clients == 0 || a.clients > 64 {
        bail!("--seconds must be 1..=86400 and --clients 1..=64");
    }
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("mcos-soak-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let cfg = dir.join("soak.toml");
    std::fs::write(
        &cfg,
        format!(
            "block_bytes = {BLOCK}\nshards = 2\n[server]\nlease_default_ms = 1000\n\
             [[tiers]]\nkind = \"host-dram\"\ncapacity_blocks = {}\n\
             [[tiers]]\nkind = \"disk\"\ncapacity_blocks = {}\npath = \"{}/soak.tier\"\npersist = true\n",
            KEYS / 4,
            KEYS + 1024,
            dir.display()
        ),
    )?;
    let sock = dir.join("mcosd-soak.sock");
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--socket")
        .arg(&sock)
        .args(["--log", "warn"])
        .stdout(Stdio::null())
        .spawn()
        .context("starting mcosd (mcos serve)")?;
    wait_for("mcosd", &mut child, || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    })?;
    let daemon = Proc(child, "mcosd");
    let pid = daemon.0.id();
    // Warm-up: every key stored once (fills DRAM, demotes the rest), and a first mixed second.
    {
        let mut c = connect(&sock)?;
        let ids: Vec<u64> = (1..=KEYS).collect();
        for chunk in ids.chunks(64) {
            put_ids(&mut c, chunk, false)?;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals::default());
    let durable = Arc::new(Mutex::new(HashSet::new()));
    let warmup = Duration::from_secs_f64((a.seconds * 0.1).clamp(1.0, 10.0));
    let handles: Vec<_> = (0..a.clients)
        .map(|i| {
            let (s, st, t, d) = (sock.clone(), stop.clone(), totals.clone(), durable.clone());
            std::thread::spawn(move || {
                if let Err(e) = client_loop(&s, 0x5eed + i as u64 * 7919, &st, &t, &d) {
                    eprintln!("soak client {i}: {e:#}");
                    t.errors.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(warmup);
    let rss0 = proc_rss_kib(pid).context("reading the daemon's RSS")?;
    let fds0 = proc_fds(pid).context("reading the daemon's fds")?;
    let (mut rss_max, mut fds_max, mut samples) = (rss0, fds0, 1usize);
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < a.seconds {
        std::thread::sleep(SAMPLE_EVERY);
        rss_max = rss_max.max(proc_rss_kib(pid).unwrap_or(0));
        fds_max = fds_max.max(proc_fds(pid).unwrap_or(0));
        samples += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let rss_end = proc_rss_kib(pid).unwrap_or(0);
    // Every durable key read back; then the pins: leases of 200 ms, the default 1 s.
    let durable = durable
        .lock()
        .map_err(|_| anyhow::anyhow!("durable set poisoned"))?
        .clone();
    let mut c = connect(&sock)?;
    let ids: Vec<u64> = durable.iter().copied().collect();
    let (mut lost, mut wrong_end) = (0u64, 0u64);
    for chunk in ids.chunks(64) {
        let keys: Vec<BlockKey> = chunk.iter().map(|&i| key_of(i)).collect();
        for (g, &i) in c.get(&keys)?.iter().zip(chunk) {
            match g {
                Some(b) => wrong_end += wrong_bytes(i, b) + BLOCK.abs_diff(b.len()) as u64,
                None => lost += 1,
            }
        }
    }
    std::thread::sleep(Duration::from_millis(1300));
    let v: serde_json::Value = serde_json::from_str(&c.stats_json()?)?;
    let pins = v["daemon"]["pins_held"].as_u64().unwrap_or(u64::MAX);
    drop(c);
    drop(daemon);
    let growth = (rss_max.max(rss_end) as f64 - rss0 as f64) / rss0 as f64 * 100.0;
    let report = Report {
        seconds,
        clients: a.clients,
        operations: totals.ops.load(Ordering::Relaxed),
        verified_gets: totals.verified.load(Ordering::Relaxed),
        wrong_bytes: totals.wrong.load(Ordering::Relaxed) + wrong_end,
        durable_acknowledged: durable.len() as u64,
        durable_lost: lost,
        pins_held_end: pins,
        rss_kib_after_warmup: rss0,
        rss_kib_max: rss_max,
        rss_kib_end: rss_end,
        rss_growth_pct: growth,
        fds_after_warmup: fds0,
        fds_max,
        samples,
        client_errors: totals.errors.load(Ordering::Relaxed),
    };
    match a.format {
        Format::Json => println!("{}", serde_json::to_string(&report)?),
        Format::Table => println!(
            "soak: {:.0} s, {} clients, {} batches ({} verified gets, {} wrong bytes); {} durable \
             acknowledged, {} lost; {} pins held at the end; daemon RSS {} KiB after warm-up, max \
             {} KiB ({:+.2} %), fds {} -> max {}; {} client errors",
            report.seconds,
            report.clients,
            report.operations,
            report.verified_gets,
            report.wrong_bytes,
            report.durable_acknowledged,
            report.durable_lost,
            report.pins_held_end,
            report.rss_kib_after_warmup,
            report.rss_kib_max,
            report.rss_growth_pct,
            report.fds_after_warmup,
            report.fds_max,
            report.client_errors
        ),
    }
    let failed = report.rss_growth_pct > 5.0
        || report.wrong_bytes > 0
        || report.durable_lost > 0
        || report.pins_held_end > 0
        || report.client_errors > 0
        || report.fds_max > report.fds_after_warmup + 2 * a.clients as u64 + 8;
    if a.check && failed {
        bail!(
            "soak check failed (limits: RSS growth <= 5 %, no wrong byte, no durable block lost, no pin held, no client error, fds bounded)"
        );
    }
    Ok(())
}
