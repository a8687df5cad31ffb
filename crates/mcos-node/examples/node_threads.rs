//! How the Node API scales with caller threads and shards.
//!
//! Each caller thread owns its own keys (the model's namespace, then its thread id), puts them
//! once (all fit in the DRAM tier), then reads them back in a scrambled order: every `get` is a
//! DRAM hit whose 4 KiB payload is copied out (the node checks its header and checksum; the
//! caller compares the bytes on one get in 16). The node routes a key to its shard
//! by hash, and callers on one shard take turns on that shard's lock (the driver-hook stage),
//! so this measures what the lock costs when threads share a shard and what more shards buy.
//!
//! ```sh
//! cargo run --release -p mcos-node --example node_threads -- [THREADS 1,2] [SHARDS 1,2] [GETS 400000] [RUNS 3] [same-bytes]
//! ```
//!
//! By default each thread has 2,048 keys of its own, so two threads touch twice the bytes of
//! one. With `same-bytes` the 2,048 keys are shared out among the threads (1,024 each for two),
//! so every configuration touches the same bytes and the ratio shows what threads and shards
//! buy without the cost of a working set twice the size.
//!
//! Prints, per (threads, shards), the median of RUNS runs of total gets per second and its
//! ratio to one thread on one shard, measured in the same invocation (round-robin: each round
//! runs every configuration once). Then the same reads
//! straight from a `DramTier` without the node (same keys per thread, same copy and checks, no
//! lock, no fast path), per thread count: what the memory system allows two threads that
//! touch twice the bytes, the ceiling of the node's ratio on this machine.

use std::process::ExitCode;
use std::time::Instant;

use mcos_core::{BlockKey, Namespace};
use mcos_node::{GetOutcome, Node, NodeConfig};
use mcos_tiers::DramTier;

const BLOCK_BYTES: u32 = 4096;
const KEYS: u64 = 2048;
/// Every this many gets, the caller checks the bytes (the node itself verifies every read's
/// header and checksum); checking each one would time the caller more than the node.
const VERIFY_EVERY: u64 = 16;

fn list(arg: Option<&String>, default: &[usize]) -> Result<Vec<usize>, String> {
    match arg {
        None => Ok(default.to_vec()),
        Some(s) => s
            .split(',')
            .map(|x| {
                x.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("`{x}` is not a positive whole number"))
            })
            .collect(),
    }
}

/// A block's bytes: its key's tag, repeated (so a read is checked against the key alone).
fn payload(key: BlockKey) -> Vec<u8> {
    key.tag().to_le_bytes().repeat(BLOCK_BYTES as usize / 8)
}

fn holds(key: BlockKey, bytes: &[u8]) -> bool {
    let tag = key.tag().to_le_bytes();
    bytes.len() == BLOCK_BYTES as usize && bytes.chunks_exact(8).all(|c| c == tag)
}

/// One run: `threads` callers on a node of `shards` shards, `gets` reads each of `per_thread`
/// keys of its own (a power of two). Gets per second.
fn run(
    threads: usize,
    shards: usize,
    gets: u64,
    per_thread: u64,
    dir: &std::path::Path,
) -> Result<f64, String> {
    let keys = per_thread * threads as u64;
    let dram = u32::try_from(keys + keys / 4).map_err(|_| "too many keys".to_string())?;
    let mut cfg = NodeConfig::dram_and_disk(BLOCK_BYTES, dram, dram, dir);
    cfg.shards = shards;
    let node = Node::open(cfg).map_err(|e| format!("opening the node: {e}"))?;
    let ns = Namespace::for_model("node-threads");
    let key = |t: usize, i: u64| BlockKey::from_trace_id(&ns, ((t as u64) << 32) | i);
    for t in 0..threads {
        for i in 0..per_thread {
            let k = key(t, i);
            node.put(k, &payload(k)).map_err(|e| format!("put: {e}"))?;
        }
    }
    node.quiesce().map_err(|e| format!("quiesce: {e}"))?;
    let start = Instant::now();
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let node = &node;
                s.spawn(move || -> Result<(), String> {
                    let mut out = Vec::with_capacity(BLOCK_BYTES as usize);
                    for n in 0..gets {
                        // An odd multiplier modulo a power of two visits every key in turn.
                        let i = n.wrapping_mul(0x9E37_79B9) % per_thread;
                        let k = key(t, i);
                        match node.get(k, &mut out).map_err(|e| format!("get: {e}"))? {
                            GetOutcome::Hit(_) if n % VERIFY_EVERY == 0 && !holds(k, &out) => {
                                return Err(format!("thread {t}: wrong bytes for key {i}"));
                            }
                            GetOutcome::Hit(_) => {}
                            GetOutcome::Miss => {
                                return Err(format!("thread {t}: key {i} missed; it was put"));
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a caller panicked".into())))
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    node.close().map_err(|e| format!("close: {e}"))?;
    Ok((gets * threads as u64) as f64 / seconds.max(1e-9))
}

/// One run without the node: `threads` callers read their own blocks straight from a DRAM tier
/// of the node's size, in the node run's order, with the same checks. Gets per second.
fn run_tier_only(threads: usize, gets: u64, per_thread: u64) -> Result<f64, String> {
    let keys = per_thread * threads as u64;
    let frames = u32::try_from(keys + keys / 4).map_err(|_| "too many keys".to_string())?;
    let tier = DramTier::new(frames, BLOCK_BYTES).map_err(|e| format!("DRAM tier: {e}"))?;
    let ns = Namespace::for_model("node-threads");
    let key = |t: usize, i: u64| BlockKey::from_trace_id(&ns, ((t as u64) << 32) | i);
    let frame = |t: usize, i: u64| (t as u64 * per_thread + i) as u32;
    for t in 0..threads {
        for i in 0..per_thread {
            let k = key(t, i);
            tier.write_block(frame(t, i), k, &payload(k))
                .map_err(|e| format!("write: {e}"))?;
        }
    }
    let start = Instant::now();
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let tier = &tier;
                s.spawn(move || -> Result<(), String> {
                    let mut out = vec![0u8; BLOCK_BYTES as usize];
                    for n in 0..gets {
                        let i = n.wrapping_mul(0x9E37_79B9) % per_thread;
                        let k = key(t, i);
                        let len = tier
                            .read_block(frame(t, i), k, &mut out)
                            .map_err(|e| format!("read: {e}"))?;
                        if n % VERIFY_EVERY == 0 && !holds(k, &out[..len]) {
                            return Err(format!("thread {t}: wrong bytes for key {i}"));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a reader panicked".into())))
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    Ok((gets * threads as u64) as f64 / seconds.max(1e-9))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Thread counts, shard counts, gets per thread, runs, same-bytes mode.
type Args = (Vec<usize>, Vec<usize>, u64, usize, bool);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (|| -> Result<Args, String> {
        let threads = list(args.first(), &[1, 2])?;
        let shards = list(args.get(1), &[1, 2])?;
        let gets = list(args.get(2), &[400_000])?[0] as u64;
        let runs = list(args.get(3), &[3])?[0];
        let same_bytes = match args.get(4).map(String::as_str) {
            None => false,
            Some("same-bytes") => true,
            Some(x) => return Err(format!("`{x}` is not `same-bytes`")),
        };
        if same_bytes
            && threads
                .iter()
                .any(|&t| !t.is_power_of_two() || t as u64 > KEYS)
        {
            return Err(format!(
                "same-bytes shares {KEYS} keys out: thread counts must be powers of two"
            ));
        }
        Ok((threads, shards, gets, runs, same_bytes))
    })();
    let (threads, shards, gets, runs, same_bytes) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "node_threads: {e}\nusage: node_threads [THREADS 1,2] [SHARDS 1,2] [GETS 400000] [RUNS 3] [same-bytes]"
            );
            return ExitCode::from(2);
        }
    };
    let dir = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("node_threads: {e}");
            return ExitCode::FAILURE;
        }
    };
    let per_thread = |t: usize| if same_bytes { KEYS / t as u64 } else { KEYS };
    println!(
        "{gets} DRAM-hit gets of {BLOCK_BYTES} B per thread (bytes compared on 1 in {VERIFY_EVERY}), medians of {runs} runs; {}",
        if same_bytes {
            format!("{KEYS} keys shared out among the threads")
        } else {
            format!("{KEYS} keys per thread")
        }
    );
    println!("threads  shards   gets/s (runs)                          vs 1 thread, 1 shard");
    // Node runs (threads, Some(shards)), then the tier alone (threads, None). Every round runs
    // each configuration once, so a slow spell of a shared machine hits them all alike.
    let configs: Vec<(usize, Option<usize>)> = threads
        .iter()
        .flat_map(|&t| shards.iter().map(move |&s| (t, Some(s))))
        .chain(threads.iter().map(|&t| (t, None)))
        .collect();
    let mut rates = vec![Vec::new(); configs.len()];
    for _ in 0..runs {
        for (&(t, s), rates) in configs.iter().zip(rates.iter_mut()) {
            let rate = match s {
                Some(s) => run(t, s, gets, per_thread(t), &dir),
                None => run_tier_only(t, gets, per_thread(t)),
            };
            match rate {
                Ok(r) => rates.push(r),
                Err(e) => {
                    let what = s.map_or("the tier alone".to_string(), |s| format!("{s} shards"));
                    eprintln!("node_threads: {t} threads, {what}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (mut base, mut tier_base) = (None, None);
    for (&(t, s), rates) in configs.iter().zip(&rates) {
        let m = median(rates.clone());
        if s.is_none() && tier_base.is_none() {
            println!("tier alone (no node): the same reads straight from a DramTier");
        }
        let base = match s {
            Some(1) if t == 1 => base.get_or_insert(m),
            Some(_) => base.get_or_insert(f64::NAN),
            None if t == 1 => tier_base.get_or_insert(m),
            None => tier_base.get_or_insert(f64::NAN),
        };
        let runs_text: Vec<String> = rates.iter().map(|r| format!("{:.0}", r)).collect();
        let shards_text = s.map_or("-".to_string(), |s| s.to_string());
        let ratio = if base.is_nan() {
            "-".to_string()
        } else {
            format!("{:.2}x", m / *base)
        };
        println!(
            "{t:>7}  {shards_text:>6}   {m:>10.0} ({})   {ratio}",
            runs_text.join(", ")
        );
    }
    ExitCode::SUCCESS
}

fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("mcos-node-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}
