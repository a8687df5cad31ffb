//! mcosd: one MCOS node served to many processes.
//!
//! The daemon owns one node (tiers, engines, brain) and serves it over a Unix socket (same
//! host: a shared memory region per client, so a block moves with one copy between a tier and
//! the client's memory and the socket carries only descriptors) and optionally TCP (payloads in
//! the frames, batched, vectored writes). The protocol is `mcos-proto` (docs/protocol.md).
//! Tenants authenticate at hello and see only their own key space; pins are leases released
//! with the session or at their deadline; `/metrics` and `/health` serve Prometheus text.
//!
//! Threads: one acceptor (listeners, lease expiry, shutdown), one per connected client, one per
//! metrics request. Shutdown (SIGTERM/SIGINT in `mcosd`): stop accepting, let each client
//! finish its request in flight, release every lease, close the node, exit 0.

#![warn(missing_docs)]

pub mod config;
mod events;
mod fence;
mod http;
mod leases;
mod metrics;
mod pool;
mod rereplicate;
mod session;
mod tenants;

pub use config::{ClusterSection, ConfigError, DaemonConfig, ServerConfig, TenantConfig};

use anyhow::{Context, Result, bail};
use leases::Leases;
use mcos_node::Node;
use metrics::Metrics;
use serde_json::{Value, json};
use session::Stream;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tenants::Tenants;
use tracing::{error, info, warn};

/// Acceptor wake-up period: lease expiry and the stop flag are checked this often.
const ACCEPT_POLL_MS: i32 = 50;
/// Most metrics requests served at once (each on its own short thread).
const MAX_HTTP_IN_FLIGHT: usize = 8;

/// State every session shares.
pub(crate) struct Shared {
    pub(crate) node: Node,
    pub(crate) cfg: ServerConfig,
    pub(crate) block_bytes: u32,
    pub(crate) tenants: Tenants,
    pub(crate) leases: Leases,
    pub(crate) metrics: Metrics,
    /// Set once by the acceptor at shutdown; read by sessions between requests.
    pub(crate) shutdown: AtomicBool,
    /// The pool membership's state, for stats (set once at start when `[server.cluster]`).
    pub(crate) cluster: std::sync::OnceLock<mcos_cluster::MembershipProbe>,
    /// KV event streams' counters.
    pub(crate) event_metrics: events::EventMetrics,
    /// Whether this pool member is fenced (its lease may be gone).
    pub(crate) fence: fence::Fence,
    /// The pool side (peer fetches, local copies, re-replication), set once at start with
    /// `cluster`.
    pub(crate) pool: std::sync::OnceLock<pool::PoolSide>,
    started: Instant,
}

/// A started daemon: its node is open and its listeners are bound.
pub struct Daemon {
    shared: Arc<Shared>,
    unix: UnixListener,
    socket_path: PathBuf,
    tcp: Option<TcpListener>,
    http: Option<TcpListener>,
    /// The pool membership (`[server.cluster]`): registered in etcd while this daemon runs.
    membership: Option<mcos_cluster::Membership>,
}

/// Where a started daemon listens.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// Unix socket.
    pub socket: PathBuf,
    /// TCP address, if listening.
    pub tcp: Option<SocketAddr>,
    /// Metrics address, if serving.
    pub metrics: Option<SocketAddr>,
}

impl Daemon {
    /// Opens the node and binds every listener.
    pub fn start(cfg: DaemonConfig) -> Result<Daemon> {
        cfg.validate()?;
        let socket_path = cfg.server.socket_path();
        prepare_socket_path(&socket_path)?;
        let block_bytes = cfg.node.block_bytes;
        let tiers: Vec<String> = cfg
            .node
            .tiers
            .iter()
            .map(|t| format!("{} x {} blocks", t.kind, t.capacity_blocks))
            .collect();
        let tier_records: Vec<mcos_cluster::TierRecord> = cfg
            .node
            .tiers
            .iter()
            .map(|t| mcos_cluster::TierRecord {
                kind: t.kind.to_string(),
                capacity_blocks: t.capacity_blocks as u64,
            })
            .collect();
        let node = Node::open(cfg.node.clone()).context("opening the node")?;
        if let Some(r) = node.stats().rebuild {
            info!(
                tier = r.tier.0,
                restored = r.blocks_restored,
                frames = r.frames_scanned,
                empty = r.empty_frames,
                discarded_corrupt = r.discarded_corrupt,
                discarded_misplaced = r.discarded_misplaced,
                duplicates = r.duplicates,
                seconds = r.seconds,
                gb_per_s = r.bytes_per_s() / 1e9,
                headers_per_s = r.headers_per_s(),
                "warm restart: directory rebuilt from the persistent tier's block headers"
            );
        }
        let tenants = Tenants::new(&cfg.server.effective_tenants());
        let unix = bind_unix(&socket_path, &cfg.server)?;
        let tcp = match cfg.server.listen {
            Some(a) => Some(TcpListener::bind(a).with_context(|| format!("binding TCP {a}"))?),
            None => None,
        };
        let http = match cfg.server.metrics {
            Some(a) => Some(
                TcpListener::bind(a).with_context(|| format!("binding the metrics address {a}"))?,
            ),
            None => None,
        };
        for l in tcp.iter().chain(http.iter()) {
            l.set_nonblocking(true)?;
        }
        unix.set_nonblocking(true)?;
        if tcp.is_some() && !tenants.authenticated {
            warn!(
                "TCP is open and a tenant has no token: anyone who reaches the port can use the node"
            );
        }
        let shared = Arc::new(Shared {
            node,
            block_bytes,
            tenants,
            leases: Leases::default(),
            metrics: Metrics::default(),
            shutdown: AtomicBool::new(false),
            cluster: std::sync::OnceLock::new(),
            event_metrics: events::EventMetrics::default(),
            fence: fence::Fence::default(),
            pool: std::sync::OnceLock::new(),
            started: Instant::now(),
            cfg: cfg.server,
        });
        let mut d = Daemon {
            shared,
            unix,
            socket_path,
            tcp,
            http,
            membership: None,
        };
        let e = d.endpoints();
        if let Some(c) = &d.shared.cfg.cluster {
            let m = join_cluster(c, &e, block_bytes, tier_records)?;
            let _ = d.shared.cluster.set(m.probe());
            let side = pool_side(&d.shared, c, m.probe(), &cfg.node)?;
            let _ = d.shared.pool.set(side);
            d.membership = Some(m);
        }
        info!(
            socket = %e.socket.display(),
            tcp = ?e.tcp,
            metrics = ?e.metrics,
            block_bytes,
            tiers = %tiers.join(", "),
            brain = cfg.node.brain.enabled,
            "mcosd serving"
        );
        Ok(d)
    }

    /// Where it listens (with the ports the system picked for `:0` addresses).
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            socket: self.socket_path.clone(),
            tcp: self.tcp.as_ref().and_then(|l| l.local_addr().ok()),
            metrics: self.http.as_ref().and_then(|l| l.local_addr().ok()),
        }
    }

    /// Serves until `stop` is set, then shuts down cleanly: no new connections, requests in
    /// flight finished, leases released, node closed (engines drained, files closed).
    pub fn run(self, stop: &AtomicBool) -> Result<()> {
        let Daemon {
            shared,
            unix,
            socket_path,
            tcp,
            http,
            membership,
        } = self;
        let mut sessions: Vec<JoinHandle<()>> = Vec::new();
        let next_session = AtomicU64::new(1);
        let http_in_flight = Arc::new(AtomicUsize::new(0));
        let mut fds = vec![libc::pollfd {
            fd: unix.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        for l in tcp.iter().chain(http.iter()) {
            fds.push(libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let rereplicate_stop = Arc::new(AtomicBool::new(false));
        let rereplicate = match shared.pool.get() {
            Some(_) => Some(
                rereplicate::spawn(shared.clone(), rereplicate_stop.clone())
                    .context("starting the re-replication thread")?,
            ),
            None => None,
        };
        let mut brain_watch = BrainWatch::default();
        let mut last_watch = Instant::now();
        while !stop.load(Ordering::Acquire) {
            // SAFETY: `fds` is a live array of initialised pollfd; the listeners outlive the call.
            let n =
                unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ACCEPT_POLL_MS) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e).context("waiting for connections");
                }
            }
            loop {
                match unix.accept() {
                    Ok((s, _)) => admit(&shared, Stream::Unix(s), &next_session, &mut sessions),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        warn!("accept on the Unix socket failed: {e}");
                        break;
                    }
                }
            }
            if let Some(l) = &tcp {
                loop {
                    match l.accept() {
                        Ok((s, _)) => {
                            let _ = s.set_nodelay(true);
                            let _ = s.set_nonblocking(false);
                            admit(&shared, Stream::Tcp(s), &next_session, &mut sessions)
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            warn!("accept on TCP failed: {e}");
                            break;
                        }
                    }
                }
            }
            if let Some(l) = &http {
                while let Ok((s, _)) = l.accept() {
                    if http_in_flight.load(Ordering::Relaxed) >= MAX_HTTP_IN_FLIGHT {
                        continue; // dropped: a scraper retries
                    }
                    http_in_flight.fetch_add(1, Ordering::Relaxed);
                    let sh = shared.clone();
                    let busy = http_in_flight.clone();
                    let spawned =
                        std::thread::Builder::new()
                            .name("mcosd-http".into())
                            .spawn(move || {
                                http::serve(&sh, s);
                                busy.fetch_sub(1, Ordering::Relaxed);
                            });
                    if spawned.is_err() {
                        http_in_flight.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
            if last_watch.elapsed() >= BRAIN_WATCH_PERIOD {
                last_watch = Instant::now();
                brain_watch.check(&shared);
            }
            // Fencing is decided per request; checked here too, so it is logged and exported
            // when it happens, not at the next request.
            fence::check(&shared);
            let expired = shared.leases.expire(Instant::now());
            for &k in &expired {
                let _ = shared.node.unpin(k);
            }
            shared
                .metrics
                .leases_expired
                .fetch_add(expired.len() as u64, Ordering::Relaxed);
            sessions.retain(|h| !h.is_finished());
        }

        info!(
            clients = sessions.len(),
            "shutting down: no new connections, finishing requests in flight"
        );
        rereplicate_stop.store(true, Ordering::Release);
        if let Some(t) = rereplicate {
            let _ = t.join();
        }
        // Leave the pool first: the lease is revoked, so peers and pool clients stop routing
        // here at once instead of after the TTL.
        if let Some(m) = membership {
            m.leave();
            info!("left the pool (lease revoked)");
        }
        drop(unix);
        drop(tcp);
        drop(http);
        if let Err(e) = std::fs::remove_file(&socket_path) {
            warn!("cannot remove the socket {}: {e}", socket_path.display());
        }
        shared.shutdown.store(true, Ordering::Release);
        let grace = Duration::from_millis(shared.cfg.shutdown_grace_ms) + Duration::from_secs(1);
        let deadline = Instant::now() + grace;
        while sessions.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stuck = sessions.iter().filter(|h| !h.is_finished()).count();
        for h in sessions.into_iter().filter(|h| h.is_finished()) {
            let _ = h.join();
        }
        if stuck > 0 {
            bail!(
                "{stuck} client sessions did not finish within {grace:?}; the node was not closed cleanly"
            );
        }
        // Sessions released their own leases; anything left (none expected) goes now.
        for k in shared
            .leases
            .expire(Instant::now() + Duration::from_secs(u64::from(u32::MAX)))
        {
            let _ = shared.node.unpin(k);
        }
        // Metrics threads may still hold a reference for a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut shared = shared;
        let shared = loop {
            match Arc::try_unwrap(shared) {
                Ok(s) => break s,
                Err(again) if Instant::now() < deadline => {
                    shared = again;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => bail!("the node is still referenced at shutdown; not closed cleanly"),
            }
        };
        let served = shared.metrics.connections.load(Ordering::Relaxed);
        shared.node.close().context("closing the node")?;
        info!(connections_served = served, "mcosd stopped cleanly");
        Ok(())
    }
}

/// Registers this daemon in the pool's etcd; waits for the registration (a daemon that
/// cannot join is an error at start, not a silent single node).
fn join_cluster(
    c: &ClusterSection,
    e: &Endpoints,
    block_bytes: u32,
    tiers: Vec<mcos_cluster::TierRecord>,
) -> Result<mcos_cluster::Membership> {
    let Some(tcp) = e.tcp else {
        bail!("server.cluster needs server.listen (peers and pool clients use TCP)");
    };
    let addr = c.advertise.clone().unwrap_or_else(|| tcp.to_string());
    let node_id = c.node_id.clone().unwrap_or_else(|| addr.clone());
    let record = mcos_cluster::MemberRecord {
        node_id,
        addr,
        protocol_version: mcos_proto::PROTOCOL_VERSION,
        incarnation: mcos_cluster::new_incarnation(),
        block_bytes,
        tiers,
        started_unix_ms: mcos_cluster::member::unix_ms(),
    };
    let cfg = mcos_cluster::MembershipConfig {
        etcd: c.etcd.clone(),
        cluster: c.name.clone(),
        lease_ttl_s: c.lease_ttl_s,
    };
    // A restarted node may find its previous incarnation's record until that lease expires.
    let wait = Duration::from_secs(c.lease_ttl_s + 3);
    let (id, inc) = (record.node_id.clone(), record.incarnation);
    let m = mcos_cluster::Membership::join(cfg, record, wait)
        .with_context(|| format!("joining cluster `{}` through etcd", c.name))?;
    info!(node = %id, incarnation = inc, members = m.view().members.len(), "joined the pool");
    Ok(m)
}

/// The daemon's pool side: peers reached as each configured tenant, the brain's cost model
/// for pricing remote hits, the replication factors of the policy table in force.
fn pool_side(
    sh: &Shared,
    c: &ClusterSection,
    probe: mcos_cluster::MembershipProbe,
    node: &mcos_node::NodeConfig,
) -> Result<pool::PoolSide> {
    let tenants = sh.cfg.effective_tenants();
    let tokens = tenants
        .iter()
        .map(|t| (t.name.clone(), t.token.clone()))
        .collect();
    let peers = mcos_cluster::Peers::new(probe, tokens, pool::PEER_TIMEOUT)?;
    let b = &node.brain;
    let cost = match (b.prefill_tokens_per_s, b.kv_bytes_per_token, b.block_tokens) {
        (Some(tps), Some(kvb), Some(bt)) => Some(mcos_brain::CostModel {
            prefill_tokens_per_s: tps,
            kv_bytes_per_token: kvb,
            block_tokens: bt,
        }),
        _ => None,
    };
    let replication = mcos_cluster::Replication::from_table(&sh.node.policy_table().1);
    Ok(pool::PoolSide::new(
        peers,
        c,
        cost,
        replication,
        tenants.into_iter().map(|t| t.name).collect(),
        sh.block_bytes,
    ))
}

fn admit(
    shared: &Arc<Shared>,
    stream: Stream,
    next: &AtomicU64,
    sessions: &mut Vec<JoinHandle<()>>,
) {
    let m = &shared.metrics;
    if m.clients_connected.load(Ordering::Relaxed) as usize >= shared.cfg.max_clients {
        m.connections_refused.fetch_add(1, Ordering::Relaxed);
        let mut buf = Vec::new();
        mcos_proto::reply::error(
            &mut buf,
            0,
            mcos_proto::ErrorCode::Busy,
            &format!(
                "the daemon serves {} clients already (server.max_clients)",
                shared.cfg.max_clients
            ),
        );
        let _ = match &stream {
            Stream::Unix(s) => std::io::Write::write_all(&mut &*s, &buf),
            Stream::Tcp(s) => std::io::Write::write_all(&mut &*s, &buf),
        };
        return;
    }
    let id = next.fetch_add(1, Ordering::Relaxed);
    m.connections.fetch_add(1, Ordering::Relaxed);
    m.clients_connected.fetch_add(1, Ordering::Relaxed);
    let sh = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("mcosd-s{id}"))
        .spawn(move || {
            session::serve(&sh, stream, id);
            sh.metrics.clients_connected.fetch_sub(1, Ordering::Relaxed);
        });
    match spawned {
        Ok(h) => sessions.push(h),
        Err(e) => {
            m.clients_connected.fetch_sub(1, Ordering::Relaxed);
            error!("cannot start a session thread: {e}");
        }
    }
}

/// Refuses to replace anything but a stale socket of ours.
fn prepare_socket_path(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                bail!(
                    "another daemon is serving on {} (stop it, or give this one another socket with --socket)",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale socket {}", path.display()))?;
            Ok(())
        }
        Ok(_) => bail!(
            "refusing to replace {}: it exists and is not a socket",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("creating the socket's directory {}", dir.display())
                })?;
            }
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("checking {}", path.display())),
    }
}

/// Binds the socket with no access beyond the owner until its mode and group are set.
fn bind_unix(path: &Path, cfg: &ServerConfig) -> Result<UnixListener> {
    // SAFETY: umask has no preconditions; it is restored right after the bind.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let l = bound.with_context(|| format!("binding the Unix socket {}", path.display()))?;
    if let Some(group) = &cfg.socket_group {
        let gid = group_id(group)?;
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("giving {} to group {group}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.socket_mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(l)
}

fn group_id(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).context("group name")?;
    // SAFETY: `c` is a valid C string; getgrnam returns null or a pointer to static storage
    // read before any other getgr* call (the acceptor is the only caller, at start).
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    if g.is_null() {
        bail!("server.socket_group: no group named `{name}`");
    }
    // SAFETY: non-null result of getgrnam.
    Ok(unsafe { (*g).gr_gid })
}

/// Test-only (feature `fault-injection`): reads `MCOS_FAULT_BRAIN` (`panic:MS` or `stall:MS`)
/// and injects that brain fault MS ms after start.
#[cfg(feature = "fault-injection")]
fn inject_brain_fault() -> Result<()> {
    use mcos_brain::thread::fault;
    let Ok(spec) = std::env::var("MCOS_FAULT_BRAIN") else {
        return Ok(());
    };
    let (kind, ms) = spec
        .split_once(':')
        .and_then(|(k, ms)| Some((k.to_string(), ms.parse::<u64>().ok()?)))
        .with_context(|| format!("MCOS_FAULT_BRAIN=`{spec}`: expected panic:MS or stall:MS"))?;
    if kind != "panic" && kind != "stall" {
        bail!("MCOS_FAULT_BRAIN=`{spec}`: expected panic:MS or stall:MS");
    }
    warn!(%spec, "fault injection: the brain thread will fail");
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(ms));
        if kind == "panic" {
            fault::PANIC.store(true, Ordering::Relaxed);
        } else {
            fault::STALL_MS.store(10_000, Ordering::Relaxed);
        }
    });
    Ok(())
}

/// How often the daemon looks at its brain and policy table.
const BRAIN_WATCH_PERIOD: Duration = Duration::from_secs(1);
/// A brain silent this long is reported as stalled.
const BRAIN_STALL: Duration = Duration::from_secs(2);

/// Reports, once per event, a brain thread that died or stalled and a policy table that lapsed
/// to the built-in one (logs; the same state is on /metrics as `mcos_brain_up`,
/// `mcos_brain_silent_seconds` and `mcos_policy_fallbacks_total`).
#[derive(Default)]
struct BrainWatch {
    dead_reported: bool,
    stall_reported: bool,
    fallbacks_seen: u64,
}

impl BrainWatch {
    fn check(&mut self, sh: &Shared) {
        if let Some(h) = sh.node.brain_health() {
            if !h.alive && !self.dead_reported {
                self.dead_reported = true;
                warn!(
                    "the brain thread has stopped (panicked): the fast path keeps its last table \
                     until the table's TTL, then runs the built-in one"
                );
            }
            let stalled = h.alive && h.silent >= BRAIN_STALL;
            if stalled && !self.stall_reported {
                warn!(
                    silent_seconds = h.silent.as_secs_f64(),
                    "the brain thread is stalled: the fast path keeps its last table until the \
                     table's TTL, then runs the built-in one"
                );
            } else if !stalled && self.stall_reported && h.alive {
                info!("the brain thread is running again");
            }
            self.stall_reported = stalled;
        }
        let stats = sh.node.stats();
        let fallbacks = stats.counters.policy_fallbacks;
        if fallbacks > self.fallbacks_seen {
            warn!(
                fallbacks,
                "the policy table lapsed after its TTL without a refresh: the fast path runs the \
                 built-in table"
            );
            self.fallbacks_seen = fallbacks;
        }
    }
}

/// The stats reply: the node's counters and the daemon's.
pub(crate) fn stats_json(sh: &Shared) -> Value {
    let m = &sh.metrics;
    let requests: serde_json::Map<String, Value> = metrics::OPS
        .iter()
        .map(|&op| (op.name().to_string(), json!(m.requests_of(op))))
        .collect();
    // Bucket upper bounds (the histogram's resolution), microseconds; null past the last.
    let latency: serde_json::Map<String, Value> = metrics::OPS
        .iter()
        .filter(|&&op| m.requests_of(op) > 0)
        .map(|&op| {
            let us = |q| {
                m.latency_quantile(op, q)
                    .filter(|s| s.is_finite())
                    .map(|s| s * 1e6)
            };
            (
                op.name().to_string(),
                json!({"p50_us_at_most": us(0.5), "p99_us_at_most": us(0.99)}),
            )
        })
        .collect();
    json!({
        "node": sh.node.stats().to_json(),
        "daemon": {
            "version": env!("CARGO_PKG_VERSION"),
            "protocol_version": mcos_proto::PROTOCOL_VERSION,
            "uptime_seconds": sh.started.elapsed().as_secs_f64(),
            "clients_connected": m.clients_connected.load(Ordering::Relaxed),
            "connections": m.connections.load(Ordering::Relaxed),
            "pins_held": sh.leases.total(),
            "requests": requests,
            "latency": latency,
            "cluster": sh.cluster.get().map(|p| {
                let v = p.view();
                json!({
                    "node_id": p.node_id(),
                    "registered": p.registered(),
                    "fenced": fence::is_fenced(sh),
                    "etcd_connected": v.connected,
                    "members": v.members.len(),
                    "revision": v.revision,
                    "last_error": p.last_error(),
                })
            }),
            "pool": sh.pool.get().map(pool::PoolSide::stats_json),
        },
    })
}

/// The policy reply: the table in force.
pub(crate) fn policy_json(sh: &Shared) -> Value {
    let (epoch, t) = sh.node.policy_table();
    json!({
        "epoch": epoch,
        "version": t.version,
        "ttl_ticks": t.ttl_ticks,
        "knobs": sh.node.brain_snapshot().map(|b| b.knobs),
        "class_bits": t.classes.iter().map(|c| format!("{:032x}", c.to_bits())).collect::<Vec<_>>(),
    })
}

/// Command-line options of `mcosd` (and `mcos serve`).
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "mcosd",
    version,
    about = "The MCOS memory service: one node served to many processes"
)]
pub struct ServeArgs {
    /// Node config (TOML) with an optional [server] section; default: 256 MiB of DRAM in
    /// 16 KiB blocks.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Unix socket path (overrides server.socket).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// TCP listen address, e.g. 127.0.0.1:7070 (overrides server.listen; off by default).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Metrics and health HTTP address, e.g. 127.0.0.1:9464 (overrides server.metrics).
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// Log filter (tracing's syntax: error, warn, info, debug, or per module); MCOS_LOG too.
    #[arg(long)]
    pub log: Option<String>,
    /// Join a pool: etcd endpoints, comma-separated (sets server.cluster.etcd; needs --listen
    /// or server.listen).
    #[arg(long, value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Pool member id (server.cluster.node_id; default: the advertised address).
    #[arg(long)]
    pub node_id: Option<String>,
    /// Pool name (server.cluster.name; default `mcos`).
    #[arg(long)]
    pub cluster: Option<String>,
}

/// Runs the daemon until SIGTERM or SIGINT, then stops cleanly.
pub fn serve_main(args: &ServeArgs) -> Result<()> {
    let filter = args
        .log
        .clone()
        .or_else(|| std::env::var("MCOS_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter)
                .with_context(|| format!("--log `{filter}` is not a log filter"))?,
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a log file or journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let mut cfg = match &args.config {
        Some(p) => DaemonConfig::load(p)?,
        None => DaemonConfig::from_toml("")?,
    };
    if let Some(s) = &args.socket {
        cfg.server.socket = Some(s.clone());
    }
    if let Some(a) = args.listen {
        cfg.server.listen = Some(a);
    }
    if let Some(a) = args.metrics {
        cfg.server.metrics = Some(a);
    }
    if !args.etcd.is_empty() || args.node_id.is_some() || args.cluster.is_some() {
        let c = match cfg.server.cluster.take() {
            Some(c) => c,
            None if args.etcd.is_empty() => {
                bail!("--node-id and --cluster need --etcd or a [server.cluster] section")
            }
            None => ClusterSection::with_etcd(Vec::new()),
        };
        let mut c = c;
        if !args.etcd.is_empty() {
            c.etcd = args.etcd.clone();
        }
        if let Some(id) = &args.node_id {
            c.node_id = Some(id.clone());
        }
        if let Some(n) = &args.cluster {
            c.name = n.clone();
        }
        cfg.server.cluster = Some(c);
        cfg.validate()?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let daemon = Daemon::start(cfg)?;
    #[cfg(feature = "fault-injection")]
    inject_brain_fault()?;
    daemon.run(&stop)
}
