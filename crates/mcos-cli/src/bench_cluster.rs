//! `mcos bench cluster`: the pool against isolated daemons and one big daemon, with real
//! bytes, then a `kill -9` of one member.
//!
//! The Mooncake conversation trace is replayed through three systems of the same total
//! capacity, requests spread round-robin (a router that knows nothing of the cache):
//! - pooled: three daemons registered in a real etcd, each with a third of the capacity, used
//!   through the pool client (rendezvous owners, batched per peer);
//! - isolated: three daemons of the same size, request i served by daemon i mod 3 alone;
//! - single: one daemon with all the capacity;
//! - via the local daemon: three fresh pool daemons; request i asks daemon i mod 3 over its
//!   Unix socket, which serves what it holds and fetches its misses from the owners (keeping
//!   a local copy of a block after its eighth remote read by default); the missing blocks are stored on
//!   their owners by a pool client, as an engine that writes to the pool would.
//!
//! Per request: get its blocks, count the hits of the longest cached prefix (verifying every
//! byte), put the rest. Then protected (`PRECIOUS`, two copies) and plain blocks are stored in
//! the pool, one member is SIGKILLed, and the time until the others' views drop it and the
//! blocks lost of each class are measured.

use crate::args::Format;
use crate::cluster::{Daemon, daemon_toml};
use anyhow::{Context, Result, bail};
use clap::Args;
use mcos_client::Client;
use mcos_cluster::{LocalEtcd, MembershipConfig, PoolClient, PoolOptions};
use mcos_core::{BlockKey, PriorityClass};
use mcos_workload::TraceReader;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct ClusterBenchArgs {
    /// Mooncake-format trace.
    #[arg(
        long,
        default_value = "../shared/traces/mooncake-conversation/conversation_trace.jsonl"
    )]
    pub trace: PathBuf,
    /// Total capacity of each system, as a share of the trace's unique blocks.
    #[arg(long, default_value_t = 0.10)]
    pub capacity: f64,
    /// Payload bytes per block.
    #[arg(long, default_value_t = 4096)]
    pub block_bytes: u32,
    /// Replay only the first N requests.
    #[arg(long)]
    pub requests: Option<usize>,
    /// Lease TTL of the pool's members, seconds.
    #[arg(long, default_value_t = mcos_cluster::membership::DEFAULT_LEASE_TTL_S)]
    pub lease_ttl_s: u64,
    /// `copy_after_remote_reads` of the daemons gets go through (0: they keep no copies).
    #[arg(long, default_value_t = 8)]
    pub copy_after_remote_reads: u32,
    /// Blocks of each class stored before the kill.
    #[arg(long, default_value_t = 600)]
    pub probe_blocks: usize,
    /// Exit 1 when a target is missed.
    #[arg(long)]
    pub check: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Serialize, Debug)]
struct Report {
    trace: String,
    requests: usize,
    block_accesses: u64,
    unique_blocks: usize,
    block_bytes: u32,
    capacity_blocks_total: u32,
    pooled_hit_ratio: f64,
    isolated_hit_ratio: f64,
    single_node_hit_ratio: f64,
    detect_seconds: f64,
    lease_ttl_s: u64,
    replicated_lost: u64,
    replicated_blocks: u64,
    unreplicated_lost: u64,
    unreplicated_blocks: u64,
    wrong_bytes: u64,
    peer_bytes: u64,
    peer_calls: u64,
    remote_get_p50_us: f64,
    remote_get_p99_us: f64,
    /// Hit ratio with every get through the request's local daemon (round-robin).
    via_local_daemon_hit_ratio: f64,
    /// Their `copy_after_remote_reads`.
    via_local_daemon_copy_after_remote_reads: u32,
    /// Blocks those daemons served from other members, and copies they kept.
    via_local_daemon_remote_hits: u64,
    via_local_daemon_local_copies: u64,
    /// Get of one request's blocks through the local daemon, p50 and p99.
    via_local_daemon_get_p50_us: f64,
    via_local_daemon_get_p99_us: f64,
    /// CPU time of `owners()` per key (2 owners) with 3, 100 and 1,000 members in the view.
    placement_ns_per_key: Vec<(usize, f64)>,
    seconds: Seconds,
}

#[derive(Serialize, Debug, Default)]
struct Seconds {
    pooled: f64,
    isolated: f64,
    single: f64,
    via_local_daemon: f64,
}

/// The block payload of `key`: 8-byte words derived from the key and the position, so a block
/// read back under another key, or torn, does not compare equal.
fn payload(key: BlockKey, block_bytes: usize) -> Vec<u8> {
    let seed = (key.0 as u64) ^ ((key.0 >> 64) as u64).rotate_left(17);
    let mut v = Vec::with_capacity(block_bytes);
    let mut w = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while v.len() < block_bytes {
        w ^= w << 13;
        w ^= w >> 7;
        w ^= w << 17;
        v.extend_from_slice(&w.to_le_bytes());
    }
    v.truncate(block_bytes);
    v
}

/// A system under test: get a request's blocks, put the missing ones.
trait System {
    fn get(&mut self, req: usize, keys: &[BlockKey]) -> Result<Vec<Option<Vec<u8>>>>;
    fn put(&mut self, req: usize, blocks: &[(BlockKey, &[u8])]) -> Result<()>;
}

struct Pooled {
    pool: PoolClient,
    get_us: Vec<f64>,
}

impl System for Pooled {
    fn get(&mut self, _: usize, keys: &[BlockKey]) -> Result<Vec<Option<Vec<u8>>>> {
        let t = Instant::now();
        let r = self.pool.get(keys)?;
        self.get_us.push(t.elapsed().as_secs_f64() * 1e6);
        Ok(r)
    }
    fn put(&mut self, _: usize, blocks: &[(BlockKey, &[u8])]) -> Result<()> {
        self.pool.put(blocks)?;
        Ok(())
    }
}

struct Direct(Vec<Client>);

/// Gets through the request's local daemon (which asks the owners), puts to the owners.
struct ViaLocal {
    daemons: Vec<Client>,
    pool: PoolClient,
    get_us: Vec<f64>,
}

impl System for ViaLocal {
    fn get(&mut self, req: usize, keys: &[BlockKey]) -> Result<Vec<Option<Vec<u8>>>> {
        let n = self.daemons.len();
        let t = Instant::now();
        let r = self.daemons[req % n].get(keys)?;
        self.get_us.push(t.elapsed().as_secs_f64() * 1e6);
        Ok(r)
    }
    fn put(&mut self, _: usize, blocks: &[(BlockKey, &[u8])]) -> Result<()> {
        self.pool.put(blocks)?;
        Ok(())
    }
}

impl System for Direct {
    fn get(&mut self, req: usize, keys: &[BlockKey]) -> Result<Vec<Option<Vec<u8>>>> {
        let n = self.0.len();
        Ok(self.0[req % n].get(keys)?)
    }
    fn put(&mut self, req: usize, blocks: &[(BlockKey, &[u8])]) -> Result<()> {
        let n = self.0.len();
        self.0[req % n].put(blocks)?;
        Ok(())
    }
}

/// Replays `reqs`; returns (prefix hits, accesses, wrong blocks).
fn replay(sys: &mut dyn System, reqs: &[Vec<BlockKey>], bb: usize) -> Result<(u64, u64, u64)> {
    let (mut hits, mut acc, mut wrong) = (0u64, 0u64, 0u64);
    for (i, keys) in reqs.iter().enumerate() {
        acc += keys.len() as u64;
        let got = sys.get(i, keys)?;
        let mut prefix = 0;
        for (k, g) in keys.iter().zip(&got) {
            match g {
                Some(b) if *b == payload(*k, bb) => prefix += 1,
                Some(_) => {
                    wrong += 1;
                    break;
                }
                None => break,
            }
        }
        hits += prefix as u64;
        let missing: Vec<(BlockKey, Vec<u8>)> = keys[prefix..]
            .iter()
            .zip(&got[prefix..])
            .filter(|(_, g)| g.is_none())
            .map(|(k, _)| (*k, payload(*k, bb)))
            .collect();
        if !missing.is_empty() {
            let view: Vec<(BlockKey, &[u8])> =
                missing.iter().map(|(k, b)| (*k, b.as_slice())).collect();
            sys.put(i, &view)?;
        }
    }
    Ok((hits, acc, wrong))
}

/// Measures the rendezvous placement's cost per key at several pool sizes (the members are
/// synthetic records: only their ids matter to placement).
fn placement_cost() -> Vec<(usize, f64)> {
    [3usize, 100, 1000]
        .iter()
        .map(|&n| {
            let members: Vec<mcos_cluster::MemberRecord> = (0..n)
                .map(|i| mcos_cluster::MemberRecord {
                    node_id: format!("rack{}-host{}", i / 40, i % 40),
                    addr: String::new(),
                    protocol_version: 1,
                    incarnation: 0,
                    block_bytes: 0,
                    tiers: Vec::new(),
                    started_unix_ms: 0,
                })
                .collect();
            let seeds: Vec<u64> = members
                .iter()
                .map(|m| mcos_cluster::placement::member_seed(&m.node_id))
                .collect();
            let keys = (200_000 / n).max(200);
            let t = Instant::now();
            let mut sink = 0usize;
            for k in 0..keys as u128 {
                sink ^= mcos_cluster::owners_seeded(BlockKey(k + 1), &members, &seeds, 2)[0];
            }
            std::hint::black_box(sink);
            (n, t.elapsed().as_nanos() as f64 / keys as f64)
        })
        .collect()
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

pub fn run(a: ClusterBenchArgs) -> Result<()> {
    if !(a.capacity > 0.0 && a.capacity <= 1.0) {
        bail!(
            "--capacity {}: a share of the unique blocks in (0, 1]",
            a.capacity
        );
    }
    let mut reqs: Vec<Vec<BlockKey>> = Vec::new();
    let mut unique = std::collections::HashSet::new();
    let mut accesses = 0u64;
    let reader = TraceReader::open(&a.trace)
        .with_context(|| format!("opening the trace {}", a.trace.display()))?;
    for r in reader {
        if a.requests.is_some_and(|n| reqs.len() >= n) {
            break;
        }
        let r = r?;
        // Key 0 is reserved: shift the ids by one; ids never reach 2^64 - 1 here.
        let keys: Vec<BlockKey> = r
            .hash_ids
            .iter()
            .map(|&h| BlockKey(u128::from(h) + 1))
            .collect();
        accesses += keys.len() as u64;
        unique.extend(keys.iter().copied());
        reqs.push(keys);
    }
    if accesses == 0 {
        bail!("the trace {} has no blocks", a.trace.display());
    }
    let total = ((unique.len() as f64 * a.capacity).round() as u32).max(3);
    let per = total.div_ceil(3);
    let bb = a.block_bytes as usize;
    let probes = a.probe_blocks.min(per as usize / 4);

    let dir = tempfile::Builder::new()
        .prefix("mcos-bench-cluster-")
        .tempdir()
        .context("creating a working directory")?;
    let etcd = LocalEtcd::start(&dir.path().join("etcd")).context("starting etcd")?;
    let cluster = format!("bench{}", std::process::id());
    let mut pooled_d = Vec::new();
    for i in 0..3 {
        let id = format!("p{i}");
        let t = daemon_toml(
            &id,
            a.block_bytes,
            per,
            Some((&etcd.client_addr, &cluster, a.lease_ttl_s)),
        );
        pooled_d.push(Daemon::spawn(dir.path(), &id, &t)?);
    }
    let mut others = Vec::new();
    for i in 0..3 {
        let id = format!("i{i}");
        others.push(Daemon::spawn(
            dir.path(),
            &id,
            &daemon_toml(&id, a.block_bytes, per, None),
        )?);
    }
    let single = Daemon::spawn(
        dir.path(),
        "s",
        &daemon_toml("s", a.block_bytes, total, None),
    )?;
    for d in others.iter().chain([&single]) {
        d.wait_socket(Duration::from_secs(30))?;
    }
    let mut cfg = MembershipConfig::new(vec![etcd.client_addr.clone()], cluster);
    cfg.lease_ttl_s = a.lease_ttl_s;
    let pool = PoolClient::connect(cfg, PoolOptions::default())?;
    if pool
        .membership()
        .wait_for(Duration::from_secs(30), |v| v.members.len() == 3)
        .is_none()
    {
        bail!("the three pool daemons did not register within 30 s");
    }

    let mut secs = Seconds::default();
    let t = Instant::now();
    let mut pooled = Pooled {
        pool,
        get_us: Vec::with_capacity(reqs.len()),
    };
    let (ph, pa, pw) = replay(&mut pooled, &reqs, bb)?;
    secs.pooled = t.elapsed().as_secs_f64();
    let connect = |d: &Daemon| {
        Client::connect(d.socket.to_string_lossy().as_ref(), "default", "")
            .with_context(|| format!("connecting to {}", d.id))
    };
    let t = Instant::now();
    let mut iso = Direct(others.iter().map(connect).collect::<Result<_>>()?);
    let (ih, _, iw) = replay(&mut iso, &reqs, bb)?;
    secs.isolated = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut one = Direct(vec![connect(&single)?]);
    let (sh, _, sw) = replay(&mut one, &reqs, bb)?;
    secs.single = t.elapsed().as_secs_f64();
    drop((iso, one, others, single));

    // Through the local daemon: three fresh members of a second pool on the same etcd.
    let local_cluster = format!("bench{}l", std::process::id());
    let mut local_d = Vec::new();
    for i in 0..3 {
        let id = format!("l{i}");
        let mut t = daemon_toml(
            &id,
            a.block_bytes,
            per,
            Some((&etcd.client_addr, &local_cluster, a.lease_ttl_s)),
        );
        t.push_str(&format!(
            "copy_after_remote_reads = {}\n",
            a.copy_after_remote_reads
        ));
        local_d.push(Daemon::spawn(dir.path(), &id, &t)?);
    }
    let mut lcfg = MembershipConfig::new(vec![etcd.client_addr.clone()], local_cluster);
    lcfg.lease_ttl_s = a.lease_ttl_s;
    let lpool = PoolClient::connect(lcfg, PoolOptions::default())?;
    if lpool
        .membership()
        .wait_for(Duration::from_secs(30), |v| v.members.len() == 3)
        .is_none()
    {
        bail!("the three local-path daemons did not register within 30 s");
    }
    let mut daemons = Vec::new();
    for d in &local_d {
        d.wait_socket(Duration::from_secs(30))?;
        let mut c = connect(d)?;
        // Each daemon routes over its own view: wait until it sees all three.
        let deadline = Instant::now() + Duration::from_secs(30);
        while member_count(&mut c)? != 3 {
            if Instant::now() > deadline {
                bail!("{} does not see the 3 members after 30 s", d.id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        daemons.push(c);
    }
    let t = Instant::now();
    let mut via = ViaLocal {
        daemons,
        pool: lpool,
        get_us: Vec::with_capacity(reqs.len()),
    };
    let (lh, _, lw) = replay(&mut via, &reqs, bb)?;
    secs.via_local_daemon = t.elapsed().as_secs_f64();
    let (mut remote_hits, mut local_copies) = (0u64, 0u64);
    for c in &mut via.daemons {
        let j: serde_json::Value = serde_json::from_str(&c.stats_json()?)?;
        let p = &j["daemon"]["pool"];
        remote_hits += p["remote"]["hits"].as_u64().unwrap_or(0);
        local_copies += p["local_copies"]["stored"].as_u64().unwrap_or(0);
    }
    let mut via_us = std::mem::take(&mut via.get_us);
    drop(via);
    drop(local_d);

    // Failure: protected and plain blocks, then kill -9 one member.
    let mut pool = pooled.pool;
    let prot: Vec<BlockKey> = (0..probes as u128)
        .map(|i| BlockKey((1u128 << 100) + i))
        .collect();
    let plain: Vec<BlockKey> = (0..probes as u128)
        .map(|i| BlockKey((1u128 << 101) + i))
        .collect();
    let store = |pool: &mut PoolClient, keys: &[BlockKey], class: u8| -> Result<()> {
        let data: Vec<(BlockKey, Vec<u8>)> = keys.iter().map(|k| (*k, payload(*k, bb))).collect();
        let view: Vec<(BlockKey, &[u8])> = data.iter().map(|(k, b)| (*k, b.as_slice())).collect();
        let r = pool.put_class(class, &view)?;
        if let Some(x) = r.iter().find(|x| x.stored < x.wanted) {
            bail!(
                "a block was stored on {} of {} owners before the kill",
                x.stored,
                x.wanted
            );
        }
        Ok(())
    };
    store(&mut pool, &prot, PriorityClass::PRECIOUS.0)?;
    store(&mut pool, &plain, 0)?;
    let killed_at = Instant::now();
    pooled_d[1].kill9()?;
    let victim = pooled_d[1].id.clone();
    let gone = pool
        .membership()
        .wait_for(Duration::from_secs(a.lease_ttl_s + 10), |v| {
            v.member(&victim).is_none()
        });
    let detect = killed_at.elapsed().as_secs_f64();
    if gone.is_none() {
        bail!("{victim} was still a member {detect:.1} s after kill -9");
    }
    let mut wrong = pw + iw + sw + lw;
    let mut lost = |pool: &mut PoolClient, keys: &[BlockKey]| -> Result<u64> {
        let got = pool.get(keys)?;
        let mut n = 0;
        for (k, g) in keys.iter().zip(got) {
            match g {
                Some(b) if b == payload(*k, bb) => {}
                Some(_) => wrong += 1,
                None => n += 1,
            }
        }
        Ok(n)
    };
    let replicated_lost = lost(&mut pool, &prot)?;
    let unreplicated_lost = lost(&mut pool, &plain)?;

    let mut us = pooled.get_us;
    let report = Report {
        trace: a.trace.display().to_string(),
        requests: reqs.len(),
        block_accesses: accesses,
        unique_blocks: unique.len(),
        block_bytes: a.block_bytes,
        capacity_blocks_total: per * 3,
        pooled_hit_ratio: ph as f64 / pa as f64,
        isolated_hit_ratio: ih as f64 / pa as f64,
        single_node_hit_ratio: sh as f64 / pa as f64,
        detect_seconds: detect,
        lease_ttl_s: a.lease_ttl_s,
        replicated_lost,
        replicated_blocks: prot.len() as u64,
        unreplicated_lost,
        unreplicated_blocks: plain.len() as u64,
        wrong_bytes: wrong,
        peer_bytes: pool.stats().peer_bytes,
        peer_calls: pool.stats().peer_calls,
        remote_get_p50_us: quantile(&mut us, 0.5),
        remote_get_p99_us: quantile(&mut us, 0.99),
        via_local_daemon_hit_ratio: lh as f64 / pa as f64,
        via_local_daemon_copy_after_remote_reads: a.copy_after_remote_reads,
        via_local_daemon_remote_hits: remote_hits,
        via_local_daemon_local_copies: local_copies,
        via_local_daemon_get_p50_us: quantile(&mut via_us, 0.5),
        via_local_daemon_get_p99_us: quantile(&mut via_us, 0.99),
        placement_ns_per_key: placement_cost(),
        seconds: secs,
    };
    drop(pool);
    drop(pooled_d);
    drop(etcd);
    let missed = targets_missed(&report);
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", table(&report, &missed)),
    }
    if a.check && !missed.is_empty() {
        bail!("targets missed: {}", missed.join("; "));
    }
    Ok(())
}

/// Members in a daemon's own view (its stats reply).
fn member_count(c: &mut Client) -> Result<u64> {
    let j: serde_json::Value = serde_json::from_str(&c.stats_json()?)?;
    Ok(j["daemon"]["cluster"]["members"].as_u64().unwrap_or(0))
}

fn targets_missed(r: &Report) -> Vec<String> {
    let mut m = Vec::new();
    if r.pooled_hit_ratio < r.single_node_hit_ratio - 0.005 {
        m.push(format!(
            "pooled hit ratio {:.4} below single node {:.4} - 0.005",
            r.pooled_hit_ratio, r.single_node_hit_ratio
        ));
    }
    if r.pooled_hit_ratio <= r.isolated_hit_ratio {
        m.push(format!(
            "pooled hit ratio {:.4} not above isolated {:.4}",
            r.pooled_hit_ratio, r.isolated_hit_ratio
        ));
    }
    if r.replicated_lost > 0 {
        m.push(format!("{} replicated blocks lost", r.replicated_lost));
    }
    if r.wrong_bytes > 0 {
        m.push(format!("{} blocks with wrong bytes", r.wrong_bytes));
    }
    if r.detect_seconds > r.lease_ttl_s as f64 + 1.0 {
        m.push(format!(
            "kill detected after {:.2} s (TTL {} s + 1 s)",
            r.detect_seconds, r.lease_ttl_s
        ));
    }
    m
}

fn table(r: &Report, missed: &[String]) -> String {
    let mut s = format!(
        "trace {}: {} requests, {} block accesses, {} unique blocks; {} blocks of {} B in total per system\n\n",
        r.trace,
        r.requests,
        r.block_accesses,
        r.unique_blocks,
        r.capacity_blocks_total,
        r.block_bytes
    );
    s += &format!(
        "hit ratio   pooled {:.4}   isolated {:.4}   single node {:.4}\n",
        r.pooled_hit_ratio, r.isolated_hit_ratio, r.single_node_hit_ratio
    );
    s += &format!(
        "kill -9     detected after {:.2} s (lease TTL {} s); lost: replicated {}/{}, unreplicated {}/{}; wrong bytes {}\n",
        r.detect_seconds,
        r.lease_ttl_s,
        r.replicated_lost,
        r.replicated_blocks,
        r.unreplicated_lost,
        r.unreplicated_blocks,
        r.wrong_bytes
    );
    s += &format!(
        "peers       {:.1} MiB in {} calls; pooled get per request p50 {:.0} us, p99 {:.0} us (loopback)\n",
        r.peer_bytes as f64 / (1 << 20) as f64,
        r.peer_calls,
        r.remote_get_p50_us,
        r.remote_get_p99_us
    );
    s += &format!(
        "via local   hit ratio {:.4}; {} blocks fetched from owners, {} local copies kept; get per request p50 {:.0} us, p99 {:.0} us\n",
        r.via_local_daemon_hit_ratio,
        r.via_local_daemon_remote_hits,
        r.via_local_daemon_local_copies,
        r.via_local_daemon_get_p50_us,
        r.via_local_daemon_get_p99_us
    );
    s += "placement   ";
    for (n, ns) in &r.placement_ns_per_key {
        s += &format!("{n} members {:.2} us/key   ", ns / 1e3);
    }
    s += "\n";
    s += &format!(
        "wall        pooled {:.1} s, isolated {:.1} s, single {:.1} s, via local daemon {:.1} s\n",
        r.seconds.pooled, r.seconds.isolated, r.seconds.single, r.seconds.via_local_daemon
    );
    if missed.is_empty() {
        s += "targets     all met\n";
    } else {
        s += &format!("targets     missed: {}\n", missed.join("; "));
    }
    s
}
