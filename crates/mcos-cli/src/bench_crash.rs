//! `mcos bench crash`: SIGKILL the daemon at random moments while a client writes, restart
//! it, and check every key ever written.
//!
//! A writer client puts verifiable blocks (each id's bytes are a function of the id) through
//! mcosd over its Unix socket, alternating durable batches (the put's durable flag: the blocks
//! go to the persistent tier, fdatasync'd once per batch) and volatile ones (landing in DRAM,
//! demoted to the persistent tier only on eviction). A random 20-200 ms into each iteration the
//! daemon is killed with SIGKILL, restarted over the same tier file (warm restart: the directory
//! is rebuilt from the block headers), and every key written so far is read back: found with
//! exactly its bytes, or missing, never wrong; every key acknowledged durable must be found.

use crate::args::Format;
use crate::bench_serve::{Proc, fill, key_of, wait_for, wrong_bytes};
use anyhow::{Context, Result, bail};
use clap::Args;
use mcos_client::{Client, ClientOptions};
use mcos_core::BlockKey;
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Payload bytes per block (small: the test is about what survives, not bandwidth).
const BLOCK: usize = 1024;
/// Blocks per put batch.
const BATCH: usize = 16;
/// Most keys the writer puts per iteration (bounds the tier file).
const KEYS_PER_ITERATION_MAX: u64 = 1500;

#[derive(Args, Debug)]
pub struct CrashArgs {
    /// Kill-restart-verify rounds.
    #[arg(long, default_value_t = 20)]
    pub iterations: u32,
    /// Seed of the kill timing.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory for the tier file and the socket (default: a new temporary directory,
    /// removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// `fdatasync` durable batches (`sync = true`, the default) or not (durable against a
    /// process crash only).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sync: bool,
    /// Exit 1 after the report if any key was wrong or any durable key lost.
    #[arg(long)]
    pub check: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Serialize, Debug)]
struct Report {
    iterations: u32,
    keys_written: u64,
    durable_acknowledged: u64,
    durable_lost: u64,
    found_after_restart: u64,
    wrong_bytes: u64,
    rebuild_seconds_p50: f64,
    rebuild_seconds_max: f64,
    keys_checked: u64,
    discarded_corrupt_frames: u64,
    seconds: f64,
}

#[derive(Default)]
struct Written {
    /// Every id sent in a put (acknowledged or in flight at the kill).
    sent: Vec<u64>,
    /// Ids acknowledged durable.
    durable: HashSet<u64>,
}

fn node_toml(dir: &Path, frames: u64, sync: bool) -> String {
    format!(
        "block_bytes = {BLOCK}\nshards = 2\n\
         [[tiers]]\nkind = \"host-dram\"\ncapacity_blocks = 512\n\
         [[tiers]]\nkind = \"disk\"\ncapacity_blocks = {frames}\npath = \"{}/crash.tier\"\n\
         persist = true\nsync = {sync}\n",
        dir.display()
    )
}

fn start_daemon(cfg: &Path, sock: &Path) -> Result<Proc> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["serve", "--config"])
        .arg(cfg)
        .arg("--socket")
        .arg(sock)
        .args(["--log", "warn"])
        .stdout(Stdio::null())
        .spawn()
        .context("starting mcosd (mcos serve)")?;
    wait_for("mcosd", &mut child, || {
        std::os::unix::net::UnixStream::connect(sock).is_ok()
    })?;
    Ok(Proc(child, "mcosd"))
}

/// Puts new ids until the daemon goes away (or the per-iteration cap); records what it sent
/// and what came back durable.
fn writer(sock: PathBuf, first_id: u64, written: Arc<Mutex<Written>>) -> u64 {
    // No reconnect: the writer of an iteration stops when its daemon dies.
    let opts = ClientOptions {
        reconnect_timeout: Duration::ZERO,
        ..ClientOptions::default()
    };
    let Ok(mut c) = Client::connect_with(&sock.to_string_lossy(), opts) else {
        return first_id;
    };
    let mut id = first_id;
    let mut bufs = vec![vec![0u8; BLOCK]; BATCH];
    let mut durable_batch = true;
    while id - first_id < KEYS_PER_ITERATION_MAX {
        let ids: Vec<u64> = (id..id + BATCH as u64).collect();
        id += BATCH as u64;
        for (b, &i) in bufs.iter_mut().zip(&ids) {
            fill(i, b);
        }
        let blocks: Vec<(BlockKey, &[u8])> = ids
            .iter()
            .zip(&bufs)
            .map(|(&i, b)| (key_of(i), &b[..]))
            .collect();
        if let Ok(mut w) = written.lock() {
            w.sent.extend(&ids);
        }
        let res = if durable_batch {
            c.put_durable(0, &blocks)
        } else {
            c.put(&blocks)
        };
        match res {
            Ok(outcomes) => {
                if let Ok(mut w) = written.lock() {
                    for (o, &i) in outcomes.iter().zip(&ids) {
                        if o.is_durable() {
                            w.durable.insert(i);
                        }
                    }
                }
            }
            Err(_) => break,
        }
        durable_batch = !durable_batch;
    }
    id
}

struct Check {
    found: u64,
    wrong_bytes: u64,
    durable_lost: Vec<u64>,
}

fn verify(sock: &Path, written: &Written) -> Result<Check> {
    let mut c = Client::connect(&sock.to_string_lossy(), "default", "")
        .context("connecting to the restarted daemon")?;
    let mut out = Check {
        found: 0,
        wrong_bytes: 0,
        durable_lost: Vec::new(),
    };
    for chunk in written.sent.chunks(64) {
        let keys: Vec<BlockKey> = chunk.iter().map(|&i| key_of(i)).collect();
        let got = c.get(&keys)?;
        for (g, &i) in got.iter().zip(chunk) {
            match g {
                Some(bytes) => {
                    out.found += 1;
                    out.wrong_bytes += wrong_bytes(i, bytes) + BLOCK.abs_diff(bytes.len()) as u64;
                }
                None if written.durable.contains(&i) => out.durable_lost.push(i),
                None => {}
            }
        }
    }
    Ok(out)
}

/// The rebuild figures of a freshly started daemon: (seconds, discarded corrupt frames).
fn rebuild_of(sock: &Path) -> Result<(f64, u64)> {
    let mut c = Client::connect(&sock.to_string_lossy(), "default", "")?;
    let v: serde_json::Value = serde_json::from_str(&c.stats_json()?)?;
    let r = &v["node"]["rebuild"];
    let secs = r["seconds"]
        .as_f64()
        .context("the daemon reports no rebuild: is its disk tier persistent?")?;
    Ok((secs, r["discarded_corrupt"].as_u64().unwrap_or(0)))
}

pub fn run(a: CrashArgs) -> Result<()> {
    if a.iterations == 0 || a.iterations > 1000 {
        bail!("--iterations {} is outside 1..=1000", a.iterations);
    }
    let started = Instant::now();
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("mcos-crash-")
                .tempdir_in(std::env::temp_dir())?;
            tmp.path().to_path_buf()
        }
    };
    let frames = u64::from(a.iterations) * KEYS_PER_ITERATION_MAX + 1024;
    let cfg = dir.join("crash.toml");
    std::fs::write(&cfg, node_toml(&dir, frames, a.sync))?;
    let sock = dir.join("mcosd-crash.sock");
    let written = Arc::new(Mutex::new(Written::default()));
    let mut daemon = start_daemon(&cfg, &sock)?;
    let mut rng = a.seed.max(1);
    let mut next_id = 1u64;
    let mut rebuilds = Vec::new();
    let (mut wrong, mut found, mut checked, mut discarded) = (0u64, 0u64, 0u64, 0u64);
    let mut lost: HashSet<u64> = HashSet::new();
    for it in 0..a.iterations {
        let w = written.clone();
        let s = sock.clone();
        let first = next_id;
        let writer = std::thread::spawn(move || writer(s, first, w));
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(20 + rng % 180));
        // SIGKILL: no chance to flush, close or clean up.
        daemon.0.kill().context("killing mcosd")?;
        daemon.0.wait()?;
        next_id = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
        daemon = start_daemon(&cfg, &sock)?;
        let (secs, bad) = rebuild_of(&sock)?;
        rebuilds.push(secs);
        discarded += bad;
        let snapshot = {
            let w = written
                .lock()
                .map_err(|_| anyhow::anyhow!("writer state poisoned"))?;
            Written {
                sent: w.sent.clone(),
                durable: w.durable.clone(),
            }
        };
        let c = verify(&sock, &snapshot)?;
        wrong += c.wrong_bytes;
        checked += snapshot.sent.len() as u64;
        found = c.found;
        lost.extend(c.durable_lost);
        if a.format == Format::Table {
            eprintln!(
                "iteration {}: {} keys written, {} durable, {} found after restart, rebuild {:.4} s",
                it + 1,
                snapshot.sent.len(),
                snapshot.durable.len(),
                c.found,
                secs
            );
        }
    }
    drop(daemon);
    let w = written
        .lock()
        .map_err(|_| anyhow::anyhow!("writer state poisoned"))?;
    rebuilds.sort_by(f64::total_cmp);
    let report = Report {
        iterations: a.iterations,
        keys_written: w.sent.len() as u64,
        durable_acknowledged: w.durable.len() as u64,
        durable_lost: lost.len() as u64,
        found_after_restart: found,
        wrong_bytes: wrong,
        rebuild_seconds_p50: rebuilds.get(rebuilds.len() / 2).copied().unwrap_or(0.0),
        rebuild_seconds_max: rebuilds.last().copied().unwrap_or(0.0),
        keys_checked: checked,
        discarded_corrupt_frames: discarded,
        seconds: started.elapsed().as_secs_f64(),
    };
    match a.format {
        Format::Json => println!("{}", serde_json::to_string(&report)?),
        Format::Table => println!(
            "crash: {} SIGKILLs survived; {} keys written, {} acknowledged durable, {} durable lost, \
             {} found after the last restart, {} wrong bytes over {} key checks; rebuild p50 {:.4} s \
             (max {:.4} s), {} torn frames discarded; {:.1} s",
            report.iterations,
            report.keys_written,
            report.durable_acknowledged,
            report.durable_lost,
            report.found_after_restart,
            report.wrong_bytes,
            report.keys_checked,
            report.rebuild_seconds_p50,
            report.rebuild_seconds_max,
            report.discarded_corrupt_frames,
            report.seconds
        ),
    }
    if a.check && (report.wrong_bytes > 0 || report.durable_lost > 0) {
        bail!(
            "crash check failed: {} wrong bytes, {} durable keys lost",
            report.wrong_bytes,
            report.durable_lost
        );
    }
    Ok(())
}
