//! `mcos bench serve`: the memory service against what users attach today, in one run on one
//! machine.
//!
//! K client processes (this binary, `mcos bench serve-client`) each loop for a fixed time:
//! 90 % of batches get 32 random blocks of the working set, 10 % put 32 new blocks; every get
//! is checked against the bytes its key must hold. Systems, same blocks, same loop:
//! - `mcos-local`: mcosd (`mcos serve`, a separate process) over its Unix socket, blocks landing
//!   in the client's shared region (the zero-bounce path), in direct slots
//!   (`Client::get_into_slots`: a block the daemon reads from disk goes straight into the
//!   region) unless `--local-layout packed` (`get_into_region`, blocks back to back);
//! - `mcos-tcp`: the same daemon over loopback TCP, payloads in the frames;
//! - `redis-unix`, `redis-tcp`: redis-server (persistence off, allkeys-LRU with the memory of
//!   the node's DRAM tier), pipelined MGET/MSET of the same 32 keys;
//! - `node`: the in-process Node (client threads, no daemon): the service's ceiling;
//! - `memcpy`: one core copying the same 32 blocks from a resident arena: the physical limit.
//!
//! Working sets: `fits` (half the DRAM tier) and `spills` (twice the DRAM tier: the node keeps
//! the rest on its disk tier, redis evicts it and misses; `get_hit_ratio` says how often each
//! found the block, and GB/s counts only bytes delivered).

use crate::args::Format;
use anyhow::{Context, Result, bail};
use clap::Args;
use mcos_client::{Client, ClientOptions, Outcome, SlotLayout, direct_slot_layout};
use mcos_core::BlockKey;
use mcos_node::{Fetched, Node, NodeConfig};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Blocks per batch (one request per batch on every system).
const BATCH: usize = 32;
/// Share of batches that put, in tenths.
const PUT_TENTHS: u64 = 1;
const SYSTEMS: [&str; 6] = [
    "mcos-local",
    "mcos-tcp",
    "redis-unix",
    "redis-tcp",
    "node",
    "memcpy",
];

#[derive(Args, Debug)]
pub struct ServeBenchArgs {
    /// Short runs on a smaller node (0.5 s per point, 64 MiB DRAM tier).
    #[arg(long)]
    pub quick: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Client counts.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 4])]
    pub clients: Vec<usize>,
    /// Block sizes, KiB.
    #[arg(long, value_delimiter = ',', default_values_t = [16u32, 256])]
    pub block_kib: Vec<u32>,
    /// Systems to run (default: all six).
    #[arg(long, value_delimiter = ',')]
    pub systems: Vec<String>,
    /// Working sets to run: fits, spills.
    #[arg(long, value_delimiter = ',', default_values_t = ["fits".to_string(), "spills".to_string()])]
    pub working_sets: Vec<String>,
    /// Seconds per point (default 2; 0.5 with --quick).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// DRAM tier of the node, MiB (default 256; 64 with --quick).
    #[arg(long)]
    pub dram_mib: Option<u64>,
    /// Directory for the node's disk tier and the daemon's socket (default: a new directory
    /// under /var/tmp, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// redis-server binary.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: String,
    /// How `mcos-local` clients lay out their region for gets: `direct` (slots per
    /// `direct_slot_layout`, so disk reads land in the region with O_DIRECT) or `packed`
    /// (blocks back to back, every disk read through the daemon's bounce buffer).
    #[arg(long, default_value = "direct")]
    pub local_layout: String,
    /// Make the node's disk tier persistent (`persist = true`): blocks there are read in place
    /// and never promoted, so every spilled get is a disk read into the client's region (the
    /// case direct slots serve without a bounce buffer).
    #[arg(long)]
    pub persist_disk: bool,
}

/// One client process's work (`mcos bench serve-client`; not for direct use).
#[derive(Args, Debug)]
pub struct ServeClientArgs {
    #[arg(long)]
    pub system: String,
    #[arg(long)]
    pub addr: String,
    #[arg(long)]
    pub block_bytes: usize,
    #[arg(long)]
    pub keys: u64,
    #[arg(long)]
    pub seconds: f64,
    #[arg(long)]
    pub client_id: u64,
    /// Namespace of this point's fresh put keys.
    #[arg(long)]
    pub run_id: u64,
    /// Start time, ms since the epoch (clients start together).
    #[arg(long)]
    pub start_ms: u64,
    /// `mcos-local` region layout for gets: direct or packed.
    #[arg(long, default_value = "direct")]
    pub local_layout: String,
}

/// What one client measured.
#[derive(Serialize, Deserialize, Debug, Default)]
struct ClientResult {
    batches: u64,
    bytes: u64,
    verified_gets: u64,
    hits: u64,
    wrong_bytes: u64,
    seconds: f64,
    latencies_ns: Vec<u64>,
}

/// One row of the report.
#[derive(Serialize, Debug, Clone)]
struct Row {
    system: String,
    block_bytes: usize,
    clients: usize,
    working_set: String,
    working_set_blocks: u64,
    gb_per_s: f64,
    batches_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    verified_gets: u64,
    get_hit_ratio: f64,
    wrong_bytes: u64,
    /// mcos rows: disk-tier blocks the daemon read in place straight into a client's region
    /// (direct slots) during the point.
    #[serde(skip_serializing_if = "Option::is_none")]
    disk_direct_reads: Option<u64>,
    /// mcos rows: disk-tier blocks read in place through the daemon's bounce buffer.
    #[serde(skip_serializing_if = "Option::is_none")]
    disk_bounce_reads: Option<u64>,
}

#[derive(Serialize)]
struct Report {
    machine: String,
    seconds_per_point: f64,
    batch_blocks: usize,
    dram_tier_bytes: u64,
    /// How `mcos-local` clients laid out their gets (`--local-layout`).
    local_layout: String,
    /// Whether the node's disk tier was persistent (`--persist-disk`).
    persist_disk: bool,
    results: Vec<Row>,
}

/// Key of block `id` (stable across processes and systems).
pub(crate) fn key_of(id: u64) -> BlockKey {
    let mix = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x4d43_4f53;
    BlockKey((u128::from(id) << 64) | u128::from(mix | 1))
}

/// Longest block the pattern table covers (the benchmark refuses larger blocks).
const MAX_BLOCK_WORDS: usize = 4096 * 1024 / 8;

/// Random words shared by every block; block `id` holds them XOR its own nonzero mask, so
/// every word of a block differs from the same word of any other block.
fn pattern() -> &'static [u64] {
    static P: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let mut r = Rng(0x4d43_4f53_5345_5256);
        (0..MAX_BLOCK_WORDS).map(|_| r.next()).collect()
    })
}

fn mask(id: u64) -> u64 {
    (id.wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

fn word(id: u64, j: usize) -> u64 {
    pattern()[j] ^ mask(id)
}

/// The bytes block `id` holds.
pub(crate) fn fill(id: u64, buf: &mut [u8]) {
    let m = mask(id);
    let mut words = buf.chunks_exact_mut(8);
    for (c, p) in (&mut words).zip(pattern()) {
        c.copy_from_slice(&(p ^ m).to_le_bytes());
    }
    let (j, tail) = (buf.len() / 8, buf.len() % 8);
    if tail > 0 {
        let w = word(id, j).to_le_bytes();
        buf[j * 8..].copy_from_slice(&w[..tail]);
    }
}

/// Bytes of `buf` that differ from block `id`'s. The whole-word comparison runs first (a load,
/// an XOR and an OR per word, vectorised); only a block that differs is counted byte by byte.
pub(crate) fn wrong_bytes(id: u64, buf: &[u8]) -> u64 {
    let m = mask(id);
    let words = buf.chunks_exact(8);
    let rest = words.remainder();
    let diff = words.zip(pattern()).fold(0u64, |acc, (c, p)| {
        acc | (u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ p ^ m)
    });
    let tail_ok = rest.is_empty() || rest == &word(id, buf.len() / 8).to_le_bytes()[..rest.len()];
    if diff == 0 && tail_ok {
        return 0;
    }
    let count =
        |got: &[u8], want: &[u8]| got.iter().zip(want).filter(|(a, b)| a != b).count() as u64;
    let mut wrong = 0;
    for (j, c) in buf.chunks(8).enumerate().take(MAX_BLOCK_WORDS) {
        wrong += count(c, &word(id, j).to_le_bytes());
    }
    wrong
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What a client does per batch, whatever the system.
trait Store {
    /// Gets `ids`; returns (hits, wrong bytes).
    fn get(&mut self, ids: &[u64], block: usize) -> Result<(u64, u64)>;
    /// Puts `ids` with their bytes.
    fn put(&mut self, ids: &[u64], block: usize) -> Result<()>;
}

struct McosLocal {
    c: Client,
    /// Direct slots (`get_into_slots`): the layout; None: blocks packed (`get_into_region`).
    slots: Option<SlotLayout>,
}

impl McosLocal {
    /// Bytes of the get area at the start of the region.
    fn get_area(slots: Option<SlotLayout>, block: usize) -> usize {
        match slots {
            Some(l) => l.region_bytes(BATCH) as usize,
            None => BATCH * block,
        }
    }
}

impl Store for McosLocal {
    fn get(&mut self, ids: &[u64], block: usize) -> Result<(u64, u64)> {
        // (slot offset, slot bytes, payload offset) of get i.
        let at = |i: usize| match self.slots {
            Some(l) => {
                let o = l.slot_offset(0, i);
                (o, l.slot_bytes, l.payload_at(o))
            }
            None => ((i * block) as u64, block as u32, (i * block) as u64),
        };
        let descs: Vec<(BlockKey, u64, u32)> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (key_of(id), at(i).0, at(i).1))
            .collect();
        let res = if self.slots.is_some() {
            self.c.get_into_slots(&descs)?
        } else {
            self.c.get_into_region(&descs)?
        };
        let r = self.c.region().context("no region")?;
        let (mut hits, mut wrong) = (0, 0);
        for (i, (o, &id)) in res.iter().zip(ids).enumerate() {
            if let Outcome::Hit { len, .. } = *o {
                hits += 1;
                // SAFETY: the reply arrived; nothing writes the region until the next call.
                let got = unsafe { r.slice(at(i).2, len as usize) }.context("range")?;
                wrong += wrong_bytes(id, got) + (block - len as usize) as u64;
            }
        }
        Ok((hits, wrong))
    }

    fn put(&mut self, ids: &[u64], block: usize) -> Result<()> {
        let r = self.c.region().context("no region")?;
        let base = McosLocal::get_area(self.slots, block);
        let mut descs = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            let off = (base + i * block) as u64;
            // SAFETY: no request in flight; this client owns its region between calls.
            fill(id, unsafe { r.slice_mut(off, block) }.context("range")?);
            descs.push((key_of(id), off, block as u32));
        }
        self.c.put_from_region(0, &descs)?;
        Ok(())
    }
}

struct McosTcp {
    c: Client,
    bufs: Vec<Vec<u8>>,
}

impl Store for McosTcp {
    fn get(&mut self, ids: &[u64], _block: usize) -> Result<(u64, u64)> {
        let keys: Vec<BlockKey> = ids.iter().map(|&i| key_of(i)).collect();
        let mut views: Vec<&mut [u8]> = self.bufs.iter_mut().map(|b| &mut b[..]).collect();
        let res = self.c.get_into(&keys, &mut views[..ids.len()])?;
        let (mut hits, mut wrong) = (0, 0);
        for ((o, &id), b) in res.iter().zip(ids).zip(&self.bufs) {
            if let Outcome::Hit { len, .. } = *o {
                hits += 1;
                wrong += wrong_bytes(id, &b[..len as usize]) + (b.len() - len as usize) as u64;
            }
        }
        Ok((hits, wrong))
    }

    fn put(&mut self, ids: &[u64], _block: usize) -> Result<()> {
        for (b, &id) in self.bufs.iter_mut().zip(ids) {
            fill(id, b);
        }
        let blocks: Vec<(BlockKey, &[u8])> = ids
            .iter()
            .zip(&self.bufs)
            .map(|(&id, b)| (key_of(id), &b[..]))
            .collect();
        self.c.put(&blocks)?;
        Ok(())
    }
}

struct Redis {
    c: redis::Connection,
    bufs: Vec<Vec<u8>>,
}

fn redis_key(id: u64) -> [u8; 16] {
    key_of(id).0.to_le_bytes()
}

impl Store for Redis {
    fn get(&mut self, ids: &[u64], block: usize) -> Result<(u64, u64)> {
        let mut cmd = redis::cmd("MGET");
        for &id in ids {
            cmd.arg(&redis_key(id)[..]);
        }
        let vals: Vec<Option<Vec<u8>>> = cmd.query(&mut self.c)?;
        let (mut hits, mut wrong) = (0, 0);
        for (v, &id) in vals.iter().zip(ids) {
            if let Some(b) = v {
                hits += 1;
                wrong += wrong_bytes(id, b) + block.abs_diff(b.len()) as u64;
            }
        }
        Ok((hits, wrong))
    }

    fn put(&mut self, ids: &[u64], _block: usize) -> Result<()> {
        let mut cmd = redis::cmd("MSET");
        for (b, &id) in self.bufs.iter_mut().zip(ids) {
            fill(id, b);
        }
        for (b, &id) in self.bufs.iter().zip(ids) {
            cmd.arg(&redis_key(id)[..]).arg(&b[..]);
        }
        let () = cmd.query(&mut self.c)?;
        Ok(())
    }
}

struct InProcess<'a> {
    node: &'a Node,
    bufs: Vec<Vec<u8>>,
}

impl Store for InProcess<'_> {
    fn get(&mut self, ids: &[u64], _block: usize) -> Result<(u64, u64)> {
        let keys: Vec<BlockKey> = ids.iter().map(|&i| key_of(i)).collect();
        let mut views: Vec<&mut [u8]> = self.bufs.iter_mut().map(|b| &mut b[..]).collect();
        let res = self.node.get_batch_into(&keys, &mut views);
        let (mut hits, mut wrong) = (0, 0);
        for ((r, &id), b) in res.into_iter().zip(ids).zip(&self.bufs) {
            if let Fetched::Hit { len, .. } = r? {
                hits += 1;
                wrong += wrong_bytes(id, &b[..len]) + (b.len() - len) as u64;
            }
        }
        Ok((hits, wrong))
    }

    fn put(&mut self, ids: &[u64], _block: usize) -> Result<()> {
        for (b, &id) in self.bufs.iter_mut().zip(ids) {
            fill(id, b);
        }
        let blocks: Vec<(BlockKey, &[u8])> = ids
            .iter()
            .zip(&self.bufs)
            .map(|(&id, b)| (key_of(id), &b[..]))
            .collect();
        for r in self
            .node
            .put_batch(mcos_core::PriorityClass::DEFAULT, &blocks)
        {
            r?;
        }
        Ok(())
    }
}

/// The client loop: runs until `seconds` pass, from `start`.
fn client_loop(
    store: &mut dyn Store,
    block: usize,
    keys: u64,
    seconds: f64,
    client_id: u64,
    run_id: u64,
    start: SystemTime,
) -> Result<ClientResult> {
    if let Ok(wait) = start.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
    let mut rng = Rng((client_id + 1).wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let mut r = ClientResult::default();
    let mut fresh = (run_id << 48) | (client_id << 40) | (1 << 62);
    let mut ids = [0u64; BATCH];
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        let is_put = rng.next() % 10 < PUT_TENTHS;
        let b0 = Instant::now();
        if is_put {
            for id in ids.iter_mut() {
                *id = fresh;
                fresh += 1;
            }
            store.put(&ids, block)?;
            r.bytes += (BATCH * block) as u64;
        } else {
            for id in ids.iter_mut() {
                *id = rng.next() % keys;
            }
            let (hits, wrong) = store.get(&ids, block)?;
            r.hits += hits;
            r.wrong_bytes += wrong;
            r.verified_gets += BATCH as u64;
            r.bytes += hits * block as u64;
        }
        r.latencies_ns.push(b0.elapsed().as_nanos() as u64);
        r.batches += 1;
    }
    r.seconds = t0.elapsed().as_secs_f64();
    Ok(r)
}

/// `mcos bench serve-client`: one client process; prints its result as one JSON line.
pub fn run_client(a: ServeClientArgs) -> Result<()> {
    let start = UNIX_EPOCH + Duration::from_millis(a.start_ms);
    let block = a.block_bytes;
    let mut store: Box<dyn Store> = match a.system.as_str() {
        "mcos-local" => {
            let slots = match a.local_layout.as_str() {
                "direct" => Some(direct_slot_layout(block as u32)),
                "packed" => None,
                l => bail!("serve-client: unknown --local-layout `{l}` (direct or packed)"),
            };
            Box::new(McosLocal {
                c: Client::connect_with(
                    &a.addr,
                    ClientOptions {
                        region_bytes: McosLocal::get_area(slots, block) + BATCH * block,
                        ..ClientOptions::default()
                    },
                )?,
                slots,
            })
        }
        "mcos-tcp" => Box::new(McosTcp {
            c: Client::connect(&a.addr, "default", "")?,
            bufs: vec![vec![0u8; block]; BATCH],
        }),
        "redis-unix" | "redis-tcp" => Box::new(Redis {
            c: redis::Client::open(a.addr.as_str())?.get_connection()?,
            bufs: vec![vec![0u8; block]; BATCH],
        }),
        s => bail!("serve-client: unknown system `{s}`"),
    };
    let r = client_loop(
        store.as_mut(),
        block,
        a.keys,
        a.seconds,
        a.client_id,
        a.run_id,
        start,
    )?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn row(
    system: &str,
    block: usize,
    clients: usize,
    ws: &str,
    ws_blocks: u64,
    rs: &[ClientResult],
) -> Row {
    let mut lat: Vec<u64> = rs
        .iter()
        .flat_map(|r| r.latencies_ns.iter().copied())
        .collect();
    lat.sort_unstable();
    let secs = rs.iter().map(|r| r.seconds).fold(0.0, f64::max).max(1e-9);
    let bytes: u64 = rs.iter().map(|r| r.bytes).sum();
    let batches: u64 = rs.iter().map(|r| r.batches).sum();
    let verified: u64 = rs.iter().map(|r| r.verified_gets).sum();
    let hits: u64 = rs.iter().map(|r| r.hits).sum();
    Row {
        system: system.into(),
        block_bytes: block,
        clients,
        working_set: ws.into(),
        working_set_blocks: ws_blocks,
        gb_per_s: bytes as f64 / secs / 1e9,
        batches_per_s: batches as f64 / secs,
        p50_us: percentile(&lat, 0.5),
        p99_us: percentile(&lat, 0.99),
        p999_us: percentile(&lat, 0.999),
        verified_gets: verified,
        get_hit_ratio: hits as f64 / verified.max(1) as f64,
        wrong_bytes: rs.iter().map(|r| r.wrong_bytes).sum(),
        disk_direct_reads: None,
        disk_bounce_reads: None,
    }
}

/// A child process stopped (killed if needed) when dropped.
pub(crate) struct Proc(pub(crate) Child, pub(crate) &'static str);

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.1);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn wait_for(what: &str, child: &mut Child, ready: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if let Some(st) = child.try_wait()? {
            bail!("{what} exited during start-up ({st})");
        }
        if Instant::now() > deadline {
            bail!("{what} did not start within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Point<'a> {
    block: usize,
    ws_blocks: u64,
    seconds: f64,
    run_id: u64,
    local_layout: &'a str,
}

/// The daemon's (disk direct reads, disk bounce reads) so far (`node` in its stats reply).
fn disk_reads(sock: &Path) -> Result<(u64, u64)> {
    let mut c = Client::connect(sock.to_str().context("path")?, "default", "")?;
    let v: serde_json::Value = serde_json::from_str(&c.stats_json()?)?;
    let n = |f: &str| v["node"][f].as_u64().unwrap_or(0);
    Ok((n("disk_direct_reads"), n("disk_bounce_reads")))
}

/// Runs K client processes of `system` against `addr`; returns their results.
fn run_clients(system: &str, addr: &str, k: usize, p: &Point) -> Result<Vec<ClientResult>> {
    let exe = std::env::current_exe()?;
    let start_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64 + 300;
    let mut kids = Vec::new();
    for i in 0..k {
        let child = Command::new(&exe)
            .args(["bench", "serve-client", "--system", system, "--addr", addr])
            .args([
                "--block-bytes",
                &p.block.to_string(),
                "--keys",
                &p.ws_blocks.to_string(),
            ])
            .args([
                "--seconds",
                &p.seconds.to_string(),
                "--client-id",
                &i.to_string(),
            ])
            .args([
                "--run-id",
                &p.run_id.to_string(),
                "--start-ms",
                &start_ms.to_string(),
                "--local-layout",
                p.local_layout,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a client process")?;
        kids.push(child);
    }
    let mut out = Vec::new();
    for mut c in kids {
        let stdout = c.stdout.take().context("client stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let st = c.wait()?;
        if !st.success() {
            bail!("a {system} client failed ({st})");
        }
        out.push(serde_json::from_str(&line).with_context(|| format!("client output `{line}`"))?);
    }
    Ok(out)
}

fn node_toml(block: usize, dram_bytes: u64, dir: &Path, persist: bool) -> String {
    let dram = dram_bytes / block as u64;
    format!(
        "block_bytes = {block}\nremove_files_on_close = true\nfree_watermark = 0.1\n[[tiers]]\nkind = \"host-dram\"\ncapacity_blocks = {dram}\n\
         [[tiers]]\nkind = \"disk\"\ncapacity_blocks = {}\npath = \"{}/bench-{block}.tier\"\n{}",
        dram * 4,
        dir.display(),
        if persist { "persist = true\n" } else { "" }
    )
}

/// Populates ids `from..to` through `store`, in batches.
fn populate(store: &mut dyn Store, block: usize, from: u64, to: u64) -> Result<()> {
    let ids: Vec<u64> = (from..to).collect();
    for chunk in ids.chunks(BATCH) {
        store.put(chunk, block)?;
    }
    Ok(())
}

pub fn run(a: ServeBenchArgs) -> Result<()> {
    if !matches!(a.local_layout.as_str(), "direct" | "packed") {
        bail!(
            "--local-layout: unknown layout `{}` (direct or packed)",
            a.local_layout
        );
    }
    let seconds = a.seconds.unwrap_or(if a.quick { 0.5 } else { 2.0 });
    let dram_bytes = a.dram_mib.unwrap_or(if a.quick { 64 } else { 256 }) << 20;
    let systems: Vec<String> = if a.systems.is_empty() {
        SYSTEMS.iter().map(|s| s.to_string()).collect()
    } else {
        a.systems.clone()
    };
    for s in &systems {
        if !SYSTEMS.contains(&s.as_str()) {
            bail!(
                "--systems: unknown system `{s}` (known: {})",
                SYSTEMS.join(", ")
            );
        }
    }
    for w in &a.working_sets {
        if w != "fits" && w != "spills" {
            bail!("--working-sets: `{w}` is neither `fits` nor `spills`");
        }
    }
    if a.clients.iter().any(|&k| k == 0 || k > 64)
        || a.block_kib.iter().any(|&b| b == 0 || b > 4096)
    {
        bail!("--clients must be 1..=64 and --block-kib 1..=4096");
    }
    let wants_redis = systems.iter().any(|s| s.starts_with("redis"));
    if wants_redis
        && Command::new(&a.redis_server)
            .arg("--version")
            .output()
            .is_err()
    {
        bail!(
            "`{}` not found: install redis-server (Debian: apt-get install redis-server) or leave the redis systems out with --systems",
            a.redis_server
        );
    }
    let (dir, _tmp) = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (d.clone(), None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("mcos-bench-serve")
                .tempdir_in("/var/tmp")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    let mut run_id = 0u64;
    let total_points = a.block_kib.len() * a.working_sets.len() * systems.len() * a.clients.len();
    let mut done = 0usize;
    for &kib in &a.block_kib {
        let block = kib as usize * 1024;
        let dram_blocks = dram_bytes / block as u64;
        let node_cfg = node_toml(block, dram_bytes, &dir, a.persist_disk);
        // The daemon, over this block size.
        let mut daemon = None;
        let (sock, tcp) = (
            dir.join(format!("mcosd-{kib}.sock")),
            format!("127.0.0.1:{}", free_port()?),
        );
        if systems.iter().any(|s| s.starts_with("mcos")) {
            let cfg = dir.join(format!("mcosd-{kib}.toml"));
            std::fs::write(&cfg, &node_cfg)?;
            let mut child = Command::new(&exe)
                .args(["serve", "--config"])
                .arg(&cfg)
                .arg("--socket")
                .arg(&sock)
                .args(["--listen", &tcp, "--log", "warn"])
                .spawn()
                .context("starting mcosd (mcos serve)")?;
            wait_for("mcosd", &mut child, || {
                std::os::unix::net::UnixStream::connect(&sock).is_ok()
            })?;
            daemon = Some(Proc(child, "mcosd"));
        }
        let mut redis = None;
        let (rsock, rport) = (dir.join(format!("redis-{kib}.sock")), free_port()?);
        if wants_redis {
            // The same memory as the node's DRAM tier, evicting LRU like a cache (the node also
            // has a disk tier four times that size; redis has none).
            let maxmem = dram_bytes;
            let mut child = Command::new(&a.redis_server)
                .args([
                    "--port",
                    &rport.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--unixsocket",
                ])
                .arg(&rsock)
                .args([
                    "--unixsocketperm",
                    "700",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args([
                    "--maxmemory",
                    &maxmem.to_string(),
                    "--maxmemory-policy",
                    "allkeys-lru",
                ])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .spawn()
                .context("starting redis-server")?;
            wait_for("redis-server", &mut child, || rsock.exists())?;
            redis = Some(Proc(child, "redis-server"));
        }
        let mut node = None;
        if systems.iter().any(|s| s == "node") {
            // The daemon's node exactly (same tiers, same shards), in this process.
            let cfg = NodeConfig::from_toml(
                &node_toml(block, dram_bytes, &dir, a.persist_disk).replace(
                    &format!("bench-{block}.tier"),
                    &format!("bench-node-{block}.tier"),
                ),
            )?;
            node = Some(Node::open(cfg)?);
        }
        let mut populated = 0u64;
        for ws in &a.working_sets {
            let ws_blocks = if ws == "fits" {
                dram_blocks / 2
            } else {
                dram_blocks * 2
            };
            // Populate every system to this working set (ids 0..ws_blocks).
            if ws_blocks > populated {
                if daemon.is_some() {
                    let mut s = McosLocal {
                        c: Client::connect_with(
                            sock.to_str().context("socket path")?,
                            ClientOptions {
                                region_bytes: 2 * BATCH * block,
                                ..Default::default()
                            },
                        )?,
                        slots: None,
                    };
                    populate(&mut s, block, populated, ws_blocks)?;
                }
                if redis.is_some() {
                    let mut s = Redis {
                        c: redis::Client::open(format!("redis+unix://{}", rsock.display()))?
                            .get_connection()?,
                        bufs: vec![vec![0u8; block]; BATCH],
                    };
                    populate(&mut s, block, populated, ws_blocks)?;
                }
                if let Some(n) = &node {
                    let mut s = InProcess {
                        node: n,
                        bufs: vec![vec![0u8; block]; BATCH],
                    };
                    populate(&mut s, block, populated, ws_blocks)?;
                }
                populated = ws_blocks;
            }
            for system in &systems {
                for &k in &a.clients {
                    if system == "memcpy" && k > 1 {
                        continue;
                    }
                    run_id += 1;
                    done += 1;
                    eprintln!(
                        "[{done}/{total_points}] {system} {kib} KiB {ws} ({ws_blocks} blocks) x{k}"
                    );
                    let p = Point {
                        block,
                        ws_blocks,
                        seconds,
                        run_id,
                        local_layout: &a.local_layout,
                    };
                    let mcos = system.starts_with("mcos-");
                    let reads0 = if mcos { disk_reads(&sock)? } else { (0, 0) };
                    let results = match system.as_str() {
                        "mcos-local" => run_clients(system, sock.to_str().context("path")?, k, &p)?,
                        "mcos-tcp" => run_clients(system, &tcp, k, &p)?,
                        "redis-unix" => run_clients(
                            system,
                            &format!("redis+unix://{}", rsock.display()),
                            k,
                            &p,
                        )?,
                        "redis-tcp" => {
                            run_clients(system, &format!("redis://127.0.0.1:{rport}/"), k, &p)?
                        }
                        "node" => {
                            let n = node.as_ref().context("node")?;
                            let start = SystemTime::now() + Duration::from_millis(50);
                            std::thread::scope(|sc| -> Result<Vec<ClientResult>> {
                                let hs: Vec<_> = (0..k as u64)
                                    .map(|i| {
                                        sc.spawn(move || {
                                            let mut s = InProcess {
                                                node: n,
                                                bufs: vec![vec![0u8; block]; BATCH],
                                            };
                                            client_loop(
                                                &mut s, block, ws_blocks, seconds, i, run_id, start,
                                            )
                                        })
                                    })
                                    .collect();
                                hs.into_iter()
                                    .map(|h| {
                                        h.join().map_err(|_| {
                                            anyhow::anyhow!("client thread panicked")
                                        })?
                                    })
                                    .collect()
                            })?
                        }
                        "memcpy" => {
                            vec![memcpy_point(block, ws_blocks.min(dram_blocks * 2), seconds)]
                        }
                        _ => unreachable!("checked above"),
                    };
                    let mut r = row(system, block, k, ws, ws_blocks, &results);
                    if mcos {
                        let reads1 = disk_reads(&sock)?;
                        r.disk_direct_reads = Some(reads1.0 - reads0.0);
                        r.disk_bounce_reads = Some(reads1.1 - reads0.1);
                    }
                    rows.push(r);
                }
            }
        }
        drop(daemon);
        drop(redis);
        if let Some(n) = node {
            n.close()?;
        }
    }
    let report = Report {
        machine: machine(),
        seconds_per_point: seconds,
        batch_blocks: BATCH,
        dram_tier_bytes: dram_bytes,
        local_layout: a.local_layout.clone(),
        persist_disk: a.persist_disk,
        results: rows,
    };
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => println!("{}", table(&report)),
    }
    if report.results.iter().any(|r| r.wrong_bytes > 0) {
        bail!("wrong bytes were returned (see wrong_bytes)");
    }
    Ok(())
}

/// One core copying 32 random blocks of a resident arena per batch: the physical limit.
fn memcpy_point(block: usize, blocks: u64, seconds: f64) -> ClientResult {
    let mut arena = vec![0u8; block * blocks as usize];
    for (i, b) in arena.chunks_mut(block).enumerate() {
        fill(i as u64, b);
    }
    let mut dst = vec![0u8; block * BATCH];
    let mut rng = Rng(0x9e37_79b9);
    let mut r = ClientResult::default();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        let b0 = Instant::now();
        for d in dst.chunks_mut(block) {
            let i = (rng.next() % blocks) as usize;
            d.copy_from_slice(&arena[i * block..(i + 1) * block]);
        }
        std::hint::black_box(&dst);
        r.latencies_ns.push(b0.elapsed().as_nanos() as u64);
        r.batches += 1;
        r.bytes += (BATCH * block) as u64;
    }
    r.seconds = t0.elapsed().as_secs_f64();
    r
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "machine: {}; {} s per point; batches of {} blocks; DRAM tier {} MiB\n",
        r.machine,
        r.seconds_per_point,
        r.batch_blocks,
        r.dram_tier_bytes >> 20
    );
    let _ = writeln!(
        s,
        "{:<11} {:>6} {:>7} {:>3} {:>8} {:>10} {:>9} {:>9} {:>9} {:>6} {:>9} {:>5}",
        "system",
        "block",
        "ws",
        "K",
        "GB/s",
        "batches/s",
        "p50 us",
        "p99 us",
        "p999 us",
        "hit",
        "verified",
        "wrong"
    );
    for x in &r.results {
        let _ = writeln!(
            s,
            "{:<11} {:>5}K {:>7} {:>3} {:>8.3} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>6.3} {:>9} {:>5}",
            x.system,
            x.block_bytes / 1024,
            x.working_set,
            x.clients,
            x.gb_per_s,
            x.batches_per_s,
            x.p50_us,
            x.p99_us,
            x.p999_us,
            x.get_hit_ratio,
            x.verified_gets,
            x.wrong_bytes
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_verification_catches_wrong_bytes() {
        for len in [1usize, 7, 8, 100, 16384] {
            let mut b = vec![0u8; len];
            fill(5, &mut b);
            assert_eq!(wrong_bytes(5, &b), 0);
            assert!(wrong_bytes(6, &b) > 0, "another key's bytes are wrong");
            b[len - 1] ^= 1;
            assert_eq!(wrong_bytes(5, &b), 1);
        }
    }
}
