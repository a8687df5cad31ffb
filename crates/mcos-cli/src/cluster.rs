//! `mcos cluster up` and `mcos cluster status`: a pool on this host for trying it out, and the
//! pool's members as etcd and the members themselves report them.

use crate::args::Format;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use mcos_cluster::{LocalEtcd, MembershipConfig, PoolClient, PoolOptions};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Most daemons `cluster up` starts on one host.
const MAX_LOCAL_NODES: usize = 64;

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Start etcd (unless --etcd is given) and N daemons on this host, each registered in the
    /// pool; runs until SIGINT or SIGTERM, then stops them all.
    Up(UpArgs),
    /// The pool's members: address, capacity, usage, hit ratio, round trip from here.
    Status(StatusArgs),
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Daemons to start.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Use this etcd (host:port) instead of starting one.
    #[arg(long)]
    pub etcd: Option<String>,
    /// Pool name (the etcd key prefix).
    #[arg(long, default_value = "mcos")]
    pub cluster: String,
    /// Working directory for configs, sockets, logs and etcd's data (default: a fresh
    /// temporary directory, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// DRAM blocks per daemon.
    #[arg(long, default_value_t = 16384)]
    pub dram_blocks: u32,
    /// Payload bytes per block.
    #[arg(long, default_value_t = 16384)]
    pub block_bytes: u32,
    /// Lease TTL in seconds (a killed daemon leaves every view within it).
    #[arg(long, default_value_t = mcos_cluster::membership::DEFAULT_LEASE_TTL_S)]
    pub lease_ttl_s: u64,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// etcd endpoint(s), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub etcd: Vec<String>,
    /// Pool name.
    #[arg(long, default_value = "mcos")]
    pub cluster: String,
    /// Tenant the members are asked as.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(a: ClusterArgs) -> Result<()> {
    match a.command {
        ClusterCommand::Up(u) => up(u),
        ClusterCommand::Status(s) => status(s),
    }
}

/// A daemon started by `cluster up` or `bench cluster`: SIGTERM and reaped on drop.
pub(crate) struct Daemon {
    child: Option<Child>,
    pub(crate) id: String,
    /// Its Unix socket.
    pub(crate) socket: PathBuf,
}

impl Daemon {
    /// Starts `mcos serve` (this binary) with `toml` as its config in `dir`, logging to
    /// `dir/<id>.log`. With PDEATHSIG: it gets SIGTERM if this process dies first.
    pub(crate) fn spawn(dir: &std::path::Path, id: &str, toml: &str) -> Result<Daemon> {
        let exe = std::env::current_exe().context("finding the mcos binary")?;
        let cfg = dir.join(format!("{id}.toml"));
        std::fs::write(&cfg, toml).with_context(|| format!("writing {}", cfg.display()))?;
        let log = dir.join(format!("{id}.log"));
        let socket = dir.join(format!("{id}.sock"));
        let mut cmd = Command::new(&exe);
        // SAFETY: prctl is async-signal-safe and touches no parent memory: a daemon gets
        // SIGTERM (a clean stop) if its parent dies without stopping it.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .with_context(|| format!("creating {}", log.display()))?,
            )
            .spawn()
            .context("starting a daemon")?;
        Ok(Daemon {
            child: Some(child),
            id: id.into(),
            socket,
        })
    }

    /// SIGKILL, no clean-up: what a crash looks like to the pool.
    pub(crate) fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().context("killing a daemon")?;
            c.wait().context("reaping a daemon")?;
        }
        Ok(())
    }

    /// Waits for its socket to accept connections.
    pub(crate) fn wait_socket(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if Instant::now() >= deadline {
                bail!("{} did not start within {timeout:?}", self.id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// A daemon config: one DRAM tier, TCP on a free loopback port, and with `pool` =
/// (etcd, cluster, lease TTL) a pool member.
pub(crate) fn daemon_toml(
    id: &str,
    block_bytes: u32,
    dram_blocks: u32,
    pool: Option<(&str, &str, u64)>,
) -> String {
    let mut t = format!(
        "block_bytes = {block_bytes}\n[[tiers]]\nkind = \"host-dram\"\ncapacity_blocks = {dram_blocks}\n\
         [server]\nlisten = \"127.0.0.1:0\"\n"
    );
    if let Some((etcd, cluster, ttl)) = pool {
        t.push_str(&format!(
            "[server.cluster]\netcd = [{etcd:?}]\nname = {cluster:?}\nnode_id = {id:?}\nlease_ttl_s = {ttl}\n"
        ));
    }
    t
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid; no memory involved.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("{} did not stop on SIGTERM; killing it", self.id);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn up(a: UpArgs) -> Result<()> {
    if a.nodes == 0 || a.nodes > MAX_LOCAL_NODES {
        bail!("--nodes {}: between 1 and {MAX_LOCAL_NODES}", a.nodes);
    }
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("mcos-cluster-")
                .tempdir()
                .context("creating a working directory")?;
            tmp.path().to_path_buf()
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let mut _etcd = None;
    let etcd_addr = match &a.etcd {
        Some(e) => e.clone(),
        None => {
            let e = LocalEtcd::start(&dir.join("etcd")).context("starting etcd")?;
            eprintln!(
                "etcd {} on {} (data and log in {})",
                e.pid().unwrap_or(0),
                e.client_addr,
                dir.join("etcd").display()
            );
            let addr = e.client_addr.clone();
            _etcd = Some(e);
            addr
        }
    };
    let mut daemons = Vec::with_capacity(a.nodes);
    for i in 0..a.nodes {
        let id = format!("n{i}");
        let toml = daemon_toml(
            &id,
            a.block_bytes,
            a.dram_blocks,
            Some((&etcd_addr, &a.cluster, a.lease_ttl_s)),
        );
        daemons.push(Daemon::spawn(&dir, &id, &toml)?);
    }
    let mut cfg = MembershipConfig::new(vec![etcd_addr.clone()], a.cluster.clone());
    cfg.lease_ttl_s = a.lease_ttl_s;
    let mut pool = PoolClient::connect(cfg, PoolOptions::default())?;
    let want = a.nodes;
    let deadline = Duration::from_secs(a.lease_ttl_s + 20);
    if pool
        .membership()
        .wait_for(deadline, |v| v.members.len() >= want)
        .is_none()
    {
        bail!(
            "only {} of {want} daemons registered within {deadline:?}; their logs are in {}",
            pool.membership().view().members.len(),
            dir.display()
        );
    }
    // Up means every daemon sees the whole pool, not only this client: a daemon's view
    // follows its own etcd watch, which can trail the registrations by a moment.
    let started = Instant::now();
    loop {
        let lagging: Vec<String> = pool
            .member_stats()
            .into_iter()
            .filter_map(|(m, stats)| {
                let seen = stats
                    .ok()
                    .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                    .and_then(|j| j["daemon"]["cluster"]["members"].as_u64())
                    .unwrap_or(0);
                (seen < want as u64).then(|| format!("{} sees {seen}", m.node_id))
            })
            .collect();
        if lagging.is_empty() {
            break;
        }
        if started.elapsed() > deadline || stop.load(Ordering::Acquire) {
            bail!(
                "not every daemon sees the {want} members within {deadline:?} ({}); their logs are in {}",
                lagging.join(", "),
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for m in &pool.membership().view().members {
        eprintln!(
            "member {} at {} ({} blocks of {} B)",
            m.node_id,
            m.addr,
            m.capacity_blocks(),
            m.block_bytes
        );
    }
    eprintln!(
        "pool `{}` up: {want} daemons. `mcos cluster status --etcd {etcd_addr} --cluster {}`; Ctrl-C stops it",
        a.cluster, a.cluster
    );
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
        for d in &mut daemons {
            if let Some(c) = d.child.as_mut()
                && let Ok(Some(s)) = c.try_wait()
            {
                eprintln!("{} exited ({s}); the pool carries on without it", d.id);
                d.child = None;
            }
        }
    }
    eprintln!("stopping {} daemons and etcd", daemons.len());
    drop(pool);
    drop(daemons);
    Ok(())
}

fn status(a: StatusArgs) -> Result<()> {
    let cfg = MembershipConfig::new(a.etcd.clone(), a.cluster.clone());
    let mut pool = PoolClient::connect(
        cfg,
        PoolOptions {
            tenant: a.tenant.clone(),
            ..PoolOptions::default()
        },
    )?;
    let view = pool.membership().view();
    let mut rows = Vec::new();
    for (m, stats) in pool.member_stats() {
        let t = Instant::now();
        let mut row = json!({
            "node_id": m.node_id, "addr": m.addr, "incarnation": m.incarnation,
            "protocol_version": m.protocol_version, "block_bytes": m.block_bytes,
            "capacity_blocks": m.capacity_blocks(), "tiers": m.tiers.iter().map(|t| json!({"kind": t.kind, "capacity_blocks": t.capacity_blocks})).collect::<Vec<_>>(),
        });
        match stats.and_then(|s| serde_json::from_str::<Value>(&s).map_err(|e| e.to_string())) {
            Ok(j) => {
                let n = &j["node"];
                let used: u64 = n["tiers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| t["used_blocks"].as_u64().unwrap_or(0))
                    .sum();
                let hits: u64 = n["hits_per_tier"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|h| h.as_u64().unwrap_or(0))
                    .sum();
                let misses = n["misses"].as_u64().unwrap_or(0);
                row["used_blocks"] = json!(used);
                row["registered"] = j["daemon"]["cluster"]["registered"].clone();
                row["members_seen"] = j["daemon"]["cluster"]["members"].clone();
                row["hits"] = json!(hits);
                row["misses"] = json!(misses);
                row["hit_ratio"] = json!(hits as f64 / (hits + misses).max(1) as f64);
                // The stats call's round trip from here: a measured link to the member, not
                // between members.
                row["rtt_us_from_here"] = json!(t.elapsed().as_secs_f64() * 1e6);
                row["reachable"] = json!(true);
                // Links between members, measured by each daemon from its own peer calls, and
                // what it does with them (docs/cluster.md).
                let pool = &j["daemon"]["pool"];
                row["peer_links"] = pool["peer_links"].clone();
                row["remote"] = pool["remote"].clone();
                row["local_copies"] = pool["local_copies"].clone();
                row["rereplication"] = pool["rereplication"].clone();
            }
            Err(e) => {
                row["reachable"] = json!(false);
                row["error"] = json!(e);
            }
        }
        rows.push(row);
    }
    let out =
        json!({"cluster": a.cluster, "etcd": a.etcd, "revision": view.revision, "members": rows});
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        Format::Table => {
            let mut s = String::new();
            let _ = writeln!(
                s,
                "pool `{}`: {} members (etcd {}, revision {})\n",
                a.cluster,
                rows.len(),
                a.etcd.join(","),
                view.revision
            );
            let _ = writeln!(
                s,
                "{:<12} {:<22} {:>10} {:>10} {:>7} {:>8} {:>10} {:>6}",
                "node", "address", "capacity", "used", "used %", "hit %", "rtt us", "sees"
            );
            for r in &rows {
                let cap = r["capacity_blocks"].as_u64().unwrap_or(0);
                if r["reachable"] == json!(true) {
                    let used = r["used_blocks"].as_u64().unwrap_or(0);
                    let _ = writeln!(
                        s,
                        "{:<12} {:<22} {:>10} {:>10} {:>6.1}% {:>7.1}% {:>10.0} {:>6}",
                        r["node_id"].as_str().unwrap_or("?"),
                        r["addr"].as_str().unwrap_or("?"),
                        cap,
                        used,
                        100.0 * used as f64 / cap.max(1) as f64,
                        100.0 * r["hit_ratio"].as_f64().unwrap_or(0.0),
                        r["rtt_us_from_here"].as_f64().unwrap_or(0.0),
                        r["members_seen"]
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "{:<12} {:<22} {:>10}  unreachable: {}",
                        r["node_id"].as_str().unwrap_or("?"),
                        r["addr"].as_str().unwrap_or("?"),
                        cap,
                        r["error"].as_str().unwrap_or("?")
                    );
                }
            }
            let links: Vec<(&str, &Value)> = rows
                .iter()
                .flat_map(|r| {
                    let from = r["node_id"].as_str().unwrap_or("?");
                    r["peer_links"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(move |l| (from, l))
                })
                .collect();
            if !links.is_empty() {
                let _ = writeln!(
                    s,
                    "\npeer links, measured by each daemon from its own calls:\n{:<12} {:<12} {:>8} {:>10} {:>12} {:>14} {:>10}",
                    "from", "to", "calls", "rtt us", "MB/s", "fetch us/blk", "remote hit"
                );
                for (from, l) in links {
                    let _ = writeln!(
                        s,
                        "{:<12} {:<12} {:>8} {:>10.0} {:>12} {:>14.1} {:>10}",
                        from,
                        l["node_id"].as_str().unwrap_or("?"),
                        l["calls"],
                        l["latency_us"].as_f64().unwrap_or(0.0),
                        l["measured_bytes_per_s"]
                            .as_f64()
                            .map_or("-".to_string(), |b| format!("{:.0}", b / 1e6)),
                        l["fetch_us_per_block"].as_f64().unwrap_or(0.0),
                        l["decision"].as_str().unwrap_or("?"),
                    );
                }
            }
            print!("{s}");
        }
    }
    Ok(())
}
