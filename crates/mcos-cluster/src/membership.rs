//! Membership on etcd: register under a lease, keep it alive, watch the member list.
//!
//! Each daemon puts its [`MemberRecord`] at `/<cluster>/members/<node_id>` with a lease of
//! `lease_ttl` and renews it every third of that; a daemon that dies (even `kill -9`) stops
//! renewing, etcd revokes the lease within the TTL, deletes the record and every watcher sees
//! the delete. Pool clients only watch. etcd carries membership and nothing per block or per
//! request: its load is one lease renewal per member per `ttl/3` and one watch event per join
//! or leave, whatever the traffic (docs/cluster.md has the arithmetic).
//!
//! etcd is reached through its JSON gateway (`/v3/...` on the client port) by the small HTTP/1.1
//! client in [`crate::etcd`]: no gRPC, so nothing to generate with `protoc` at build time. One
//! thread of its own runs the session (blocking calls with timeouts, the watch read with a
//! short timeout) and publishes each new view as an immutable snapshot the synchronous data
//! path reads without waiting on the network.

use crate::error::ClusterError;
use crate::etcd::{self, Client};
use crate::member::MemberRecord;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Default lease TTL: a killed member disappears from every view within this (plus etcd's
/// expiry check, 500 ms).
pub const DEFAULT_LEASE_TTL_S: u64 = 3;
/// etcd refuses leases much shorter than its election timeout; 2 s is safe with defaults.
pub const MIN_LEASE_TTL_S: u64 = 2;
/// Longest lease accepted.
pub const MAX_LEASE_TTL_S: u64 = 60;
/// Connect and per-request timeout towards etcd.
const ETCD_TIMEOUT: Duration = Duration::from_secs(2);
/// Wait between attempts to reach etcd again after losing it.
const RETRY_BACKOFF: Duration = Duration::from_millis(300);
/// Most members a view holds: registrations beyond it are ignored (and logged).
pub const MAX_MEMBERS: usize = 4096;
/// Largest member record accepted from etcd.
const MAX_RECORD_BYTES: usize = 16 << 10;
/// Largest answer read for a small call (lease grant, keep-alive, revoke, put).
const SMALL_ANSWER: usize = 64 << 10;
/// Largest answer read for the registration transaction (it may carry the holder's record,
/// base64, in JSON).
const RECORD_ANSWER: usize = 2 * MAX_RECORD_BYTES + SMALL_ANSWER;
/// Largest member listing or watch response read: `MAX_MEMBERS` records of at most
/// `MAX_RECORD_BYTES`, base64 (4/3) with their JSON framing. A larger one is refused and the
/// session starts again.
const MAX_ANSWER_BYTES: usize = MAX_MEMBERS * (MAX_RECORD_BYTES / 3 * 4 + 2048);
/// How long one read of the watch stream waits: the session also notices `stop` and renews
/// within this.
const POLL: Duration = Duration::from_millis(20);

/// Where the membership lives.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// etcd endpoints (`host:port` or `http://host:port`).
    pub etcd: Vec<String>,
    /// Cluster name: the key prefix `/<cluster>/`; daemons of different clusters can share one
    /// etcd.
    pub cluster: String,
    /// Lease TTL in seconds.
    pub lease_ttl_s: u64,
}

impl MembershipConfig {
    /// A config with the default TTL.
    pub fn new(etcd: Vec<String>, cluster: impl Into<String>) -> MembershipConfig {
        MembershipConfig {
            etcd,
            cluster: cluster.into(),
            lease_ttl_s: DEFAULT_LEASE_TTL_S,
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ClusterError> {
        if self.etcd.is_empty() {
            return Err(ClusterError::Invalid(
                "cluster: no etcd endpoint given (etcd = [\"127.0.0.1:2379\"])".into(),
            ));
        }
        if self.cluster.is_empty()
            || !self
                .cluster
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ClusterError::Invalid(format!(
                "cluster name {:?}: use letters, digits, '-' and '_'",
                self.cluster
            )));
        }
        if !(MIN_LEASE_TTL_S..=MAX_LEASE_TTL_S).contains(&self.lease_ttl_s) {
            return Err(ClusterError::Invalid(format!(
                "cluster lease_ttl_s {}: between {MIN_LEASE_TTL_S} and {MAX_LEASE_TTL_S}",
                self.lease_ttl_s
            )));
        }
        Ok(())
    }

    fn members_prefix(&self) -> String {
        format!("/{}/members/", self.cluster)
    }

    fn endpoints(&self) -> String {
        self.etcd.join(",")
    }
}

/// Checks a node id: it is part of an etcd key and of placement.
pub fn validate_node_id(id: &str) -> Result<(), ClusterError> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(ClusterError::Invalid(format!(
            "node id {id:?}: 1-128 of letters, digits, '-', '_', '.', ':'"
        )));
    }
    Ok(())
}

/// One snapshot of the membership.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Live members, sorted by node id.
    pub members: Vec<MemberRecord>,
    /// etcd revision this view reflects (0: never reached etcd).
    pub revision: i64,
    /// Whether the watch is connected now (false: the view may be stale).
    pub connected: bool,
    /// Bumped on every change of `members`.
    pub generation: u64,
    /// Placement seed of each member (`placement::member_seed` of its id), same order.
    pub seeds: Vec<u64>,
}

impl View {
    /// The member named `node_id`, if live.
    pub fn member(&self, node_id: &str) -> Option<&MemberRecord> {
        self.members
            .binary_search_by(|m| m.node_id.as_str().cmp(node_id))
            .ok()
            .map(|i| &self.members[i])
    }
}

/// State shared by the membership thread (writer) and readers.
struct Shared {
    /// Written by the membership thread, read by anyone (cloned Arc, no lock held across I/O).
    view: RwLock<Arc<View>>,
    /// Set by `Drop`/`leave`; read by the membership thread.
    stop: AtomicBool,
    /// Set by the membership thread once this member's record is in etcd; cleared when the
    /// lease is lost.
    registered: AtomicBool,
    /// Last error the thread met (cleared on success); for status and for a start that fails.
    last_error: Mutex<Option<String>>,
    /// Origin of `lease_valid_until_ms`.
    epoch: Instant,
    /// Until when (ms after `epoch`) this member's lease is certainly alive in etcd: the time
    /// the last successful grant or renewal was *sent*, plus the TTL (etcd counts from its
    /// receipt, later), so the member stops serving no later than etcd drops its record.
    /// 0: no lease. Written by the membership thread, read by `lease_lost`.
    lease_valid_until_ms: AtomicU64,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Records a grant or renewal sent at `sent_ms` that etcd accepted.
    fn lease_renewed(&self, sent_ms: u64, ttl_s: u64) {
        self.lease_valid_until_ms
            .store(sent_ms + ttl_s * 1000, Ordering::Release);
    }

    fn lease_lost(&self) -> bool {
        self.now_ms() >= self.lease_valid_until_ms.load(Ordering::Acquire)
    }
}

/// A running membership: a watch, and for a daemon its registration.
pub struct Membership {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    node_id: Option<String>,
    cfg: MembershipConfig,
}

impl Membership {
    /// Registers `record` and watches the membership. Returns once the record is in etcd and
    /// the first view is loaded, or fails after `timeout` with what went wrong (etcd
    /// unreachable, node id taken by a live member).
    pub fn join(
        cfg: MembershipConfig,
        record: MemberRecord,
        timeout: Duration,
    ) -> Result<Membership, ClusterError> {
        cfg.validate()?;
        validate_node_id(&record.node_id)?;
        let node_id = record.node_id.clone();
        let mut m = Membership::spawn(cfg, Some(record))?;
        m.node_id = Some(node_id);
        m.wait_ready(timeout, true)?;
        Ok(m)
    }

    /// Watches the membership without registering (a pool client, `mcos cluster status`).
    pub fn watch(cfg: MembershipConfig, timeout: Duration) -> Result<Membership, ClusterError> {
        cfg.validate()?;
        let m = Membership::spawn(cfg, None)?;
        m.wait_ready(timeout, false)?;
        Ok(m)
    }

    fn spawn(
        cfg: MembershipConfig,
        record: Option<MemberRecord>,
    ) -> Result<Membership, ClusterError> {
        let shared = Arc::new(Shared {
            view: RwLock::new(Arc::new(View::default())),
            stop: AtomicBool::new(false),
            registered: AtomicBool::new(false),
            last_error: Mutex::new(None),
            epoch: Instant::now(),
            lease_valid_until_ms: AtomicU64::new(0),
        });
        let sh = shared.clone();
        let c = cfg.clone();
        let thread = std::thread::Builder::new()
            .name("mcos-membership".into())
            .spawn(move || run_thread(c, record, sh))
            .map_err(|e| ClusterError::Thread(e.to_string()))?;
        Ok(Membership {
            shared,
            thread: Some(thread),
            node_id: None,
            cfg,
        })
    }

    fn wait_ready(&self, timeout: Duration, registered: bool) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.view();
            let reg_ok = !registered || self.shared.registered.load(Ordering::Acquire);
            if v.connected && v.revision > 0 && reg_ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let err = self.last_error();
                return Err(match err {
                    Some(e) if e.starts_with("duplicate:") => {
                        ClusterError::Invalid(e["duplicate:".len()..].to_string())
                    }
                    Some(e) => ClusterError::EtcdUnreachable {
                        endpoints: self.cfg.endpoints(),
                        message: e,
                    },
                    None => ClusterError::Timeout(format!(
                        "no membership view from etcd at {} within {timeout:?}",
                        self.cfg.endpoints()
                    )),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A read-only handle on this membership's state, for reporting (stats, health) from
    /// other threads; it does not keep the membership running.
    pub fn probe(&self) -> MembershipProbe {
        MembershipProbe {
            shared: self.shared.clone(),
            node_id: self.node_id.clone(),
        }
    }

    /// The current view (cheap: an Arc clone).
    pub fn view(&self) -> Arc<View> {
        match self.shared.view.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Whether this member's record is in etcd now (always false for a watcher).
    pub fn registered(&self) -> bool {
        self.shared.registered.load(Ordering::Acquire)
    }

    /// The last error the membership thread met, if it has not recovered since.
    pub fn last_error(&self) -> Option<String> {
        match self.shared.last_error.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// This member's node id (None for a watcher).
    pub fn node_id(&self) -> Option<&str> {
        self.node_id.as_deref()
    }

    /// The settings.
    pub fn config(&self) -> &MembershipConfig {
        &self.cfg
    }

    /// Waits until `pred` holds for the view, or `timeout`; returns the view that satisfied
    /// it, or None.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&View) -> bool,
    ) -> Option<Arc<View>> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.view();
            if pred(&v) {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Leaves: revokes the lease (the record disappears at once for everyone) and stops the
    /// thread.
    pub fn leave(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Read-only state of a [`Membership`] (see [`Membership::probe`]).
#[derive(Clone)]
pub struct MembershipProbe {
    shared: Arc<Shared>,
    node_id: Option<String>,
}

impl MembershipProbe {
    /// The member's id (None for a watcher).
    pub fn node_id(&self) -> Option<&str> {
        self.node_id.as_deref()
    }

    /// The current view.
    pub fn view(&self) -> Arc<View> {
        match self.shared.view.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Whether the member's record is in etcd now.
    pub fn registered(&self) -> bool {
        self.shared.registered.load(Ordering::Acquire)
    }

    /// Whether the member's lease may be gone from etcd (see [`Membership::lease_lost`]).
    pub fn lease_lost(&self) -> bool {
        self.node_id.is_some() && self.shared.lease_lost()
    }

    /// The last error of the membership thread, if it has not recovered since.
    pub fn last_error(&self) -> Option<String> {
        match self.shared.last_error.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop();
    }
}

fn set_error(sh: &Shared, e: Option<String>) {
    match sh.last_error.lock() {
        Ok(mut g) => *g = e,
        Err(p) => *p.into_inner() = e,
    }
}

fn publish(sh: &Shared, f: impl FnOnce(&mut View)) {
    let mut w = match sh.view.write() {
        Ok(w) => w,
        Err(p) => p.into_inner(),
    };
    let mut v = (**w).clone();
    f(&mut v);
    *w = Arc::new(v);
}

fn run_thread(cfg: MembershipConfig, record: Option<MemberRecord>, sh: Arc<Shared>) {
    let mut lease: Option<i64> = None;
    let mut attempt = 0usize;
    while !sh.stop.load(Ordering::Acquire) {
        let r = session(&cfg, record.as_ref(), &sh, &mut lease, attempt);
        attempt = attempt.wrapping_add(1);
        match r {
            Ok(()) => break,
            Err(e) => {
                sh.registered.store(false, Ordering::Release);
                publish(&sh, |v| v.connected = false);
                warn!(error = %e, "membership: etcd session ended; retrying");
                set_error(&sh, Some(e));
                let until = Instant::now() + RETRY_BACKOFF;
                while Instant::now() < until && !sh.stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

fn parse_record(key: &[u8], value: &[u8], prefix: &str) -> Option<MemberRecord> {
    if value.len() > MAX_RECORD_BYTES {
        return None;
    }
    let rec: MemberRecord = serde_json::from_slice(value).ok()?;
    let id = std::str::from_utf8(key).ok()?.strip_prefix(prefix)?;
    (id == rec.node_id && validate_node_id(id).is_ok()).then_some(rec)
}

/// A key-value of a gateway answer (`{"key": b64, "value": b64, ...}`) as a member record.
fn kv_record(kv: &Value, prefix: &str) -> Option<MemberRecord> {
    let key = etcd::bytes(kv, "key").ok()?;
    let value = etcd::bytes(kv, "value").ok()?;
    parse_record(&key, &value, prefix)
}

/// One connected session: (re)register, load the list, then renew and watch until stopped or
/// until etcd fails. Err carries the reason; the caller retries.
///
/// Two connections to one endpoint: a kept-alive one for the unary calls (grant, register,
/// list, renewals, revoke) and the watch stream, read with a short timeout so the thread also
/// renews on time and notices `stop` within [`POLL`].
fn session(
    cfg: &MembershipConfig,
    record: Option<&MemberRecord>,
    sh: &Shared,
    lease: &mut Option<i64>,
    attempt: usize,
) -> Result<(), String> {
    let mut client =
        Client::connect(&cfg.etcd, attempt, ETCD_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let prefix = cfg.members_prefix();
    let ttl = cfg.lease_ttl_s;
    if let Some(rec) = record {
        let key = format!("{prefix}{}", rec.node_id);
        let value = serde_json::to_vec(rec).map_err(|e| format!("encoding the record: {e}"))?;
        let (key64, value64) = (etcd::b64encode(key.as_bytes()), etcd::b64encode(&value));
        let granted_at = sh.now_ms();
        let granted = client
            .call(
                "/v3/lease/grant",
                &json!({"TTL": ttl.to_string()}),
                SMALL_ANSWER,
            )
            .map_err(|e| format!("lease grant: {e}"))?;
        let id = etcd::int(&granted, "ID").map_err(|e| format!("lease grant: {e}"))?;
        if id == 0 {
            return Err(format!("lease grant: etcd granted no lease ({granted})"));
        }
        let put = json!({"key": key64, "value": value64, "lease": id.to_string()});
        // Put only if no live member holds the id, or it is our own earlier registration
        // (a lease lost to a partition, same incarnation).
        let txn = json!({
            "compare": [{"key": key64, "target": "VERSION", "result": "EQUAL", "version": "0"}],
            "success": [{"request_put": put}],
            "failure": [{"request_range": {"key": key64}}],
        });
        let resp = client
            .call("/v3/kv/txn", &txn, RECORD_ANSWER)
            .map_err(|e| format!("registering: {e}"))?;
        if !etcd::flag(&resp, "succeeded") {
            let holder = etcd::list(&resp, "responses").iter().find_map(|r| {
                etcd::list(r.get("response_range")?, "kvs")
                    .first()
                    .and_then(|kv| kv_record(kv, &prefix))
            });
            match holder {
                Some(h) if h.incarnation == rec.incarnation => {
                    client
                        .call("/v3/kv/put", &put, SMALL_ANSWER)
                        .map_err(|e| format!("re-registering: {e}"))?;
                }
                Some(h) => {
                    let _ = client.call(
                        "/v3/lease/revoke",
                        &json!({"ID": id.to_string()}),
                        SMALL_ANSWER,
                    );
                    return Err(format!(
                        "duplicate:{}",
                        ClusterError::DuplicateNode {
                            node_id: rec.node_id.clone(),
                            incarnation: h.incarnation,
                            addr: h.addr,
                        }
                    ));
                }
                None => {
                    let _ = client.call(
                        "/v3/lease/revoke",
                        &json!({"ID": id.to_string()}),
                        SMALL_ANSWER,
                    );
                    return Err("the registration raced with another writer".into());
                }
            }
        }
        *lease = Some(id);
        sh.lease_renewed(granted_at, ttl);
        sh.registered.store(true, Ordering::Release);
        info!(node = %rec.node_id, addr = %rec.addr, lease = id, ttl_s = ttl, "registered in etcd");
    }

    let (key64, end) = (prefix.as_bytes(), etcd::prefix_end(prefix.as_bytes()));
    let resp = client
        .call(
            "/v3/kv/range",
            &json!({
                "key": etcd::b64encode(key64),
                "range_end": etcd::b64encode(&end),
                "limit": MAX_MEMBERS.to_string(),
            }),
            MAX_ANSWER_BYTES,
        )
        .map_err(|e| format!("listing members: {e}"))?;
    let rev = etcd::header_revision(&resp).map_err(|e| format!("listing members: {e}"))?;
    if etcd::flag(&resp, "more") {
        warn!("membership: more than {MAX_MEMBERS} members; ignoring the rest");
    }
    let mut members: BTreeMap<String, MemberRecord> = BTreeMap::new();
    for kv in etcd::list(&resp, "kvs") {
        if members.len() >= MAX_MEMBERS {
            warn!("membership: more than {MAX_MEMBERS} members; ignoring the rest");
            break;
        }
        if let Some(r) = kv_record(kv, &prefix) {
            members.insert(r.node_id.clone(), r);
        }
    }
    let install = |members: &BTreeMap<String, MemberRecord>, rev: i64| {
        publish(sh, |v| {
            let list: Vec<MemberRecord> = members.values().cloned().collect();
            if list != v.members {
                v.generation += 1;
                v.seeds = list
                    .iter()
                    .map(|m| crate::placement::member_seed(&m.node_id))
                    .collect();
                v.members = list;
            }
            v.revision = rev.max(v.revision);
            v.connected = true;
        })
    };
    let mut watch = client
        .watch(key64, &end, rev + 1, MAX_ANSWER_BYTES)
        .map_err(|e| format!("watching members: {e}"))?;
    install(&members, rev);
    set_error(sh, None);

    let period = Duration::from_millis(ttl * 1000 / 3);
    let mut next_renew = Instant::now() + period;
    loop {
        if sh.stop.load(Ordering::Acquire) {
            if let Some(id) = lease.take() {
                let _ = client.call(
                    "/v3/lease/revoke",
                    &json!({"ID": id.to_string()}),
                    SMALL_ANSWER,
                );
                sh.registered.store(false, Ordering::Release);
                sh.lease_valid_until_ms.store(0, Ordering::Release);
            }
            return Ok(());
        }
        if let Some(id) = *lease
            && Instant::now() >= next_renew
        {
            next_renew = Instant::now() + period;
            let sent = sh.now_ms();
            let r = client
                .call(
                    "/v3/lease/keepalive",
                    &json!({"ID": id.to_string()}),
                    SMALL_ANSWER,
                )
                .map_err(|e| format!("renewing the lease: {e}"))?;
            // Each renewal is answered before the next (or fails the session within
            // ETCD_TIMEOUT), so an unrenewed lease shows as TTL 0 or as an error here.
            if etcd::int(&r, "TTL").map_err(|e| format!("renewing the lease: {e}"))? <= 0 {
                return Err("the lease expired (etcd answered ttl 0)".into());
            }
            sh.lease_renewed(sent, ttl);
        }
        let Some(w) = watch.next(POLL).map_err(|e| format!("watch: {e}"))? else {
            continue;
        };
        if etcd::flag(&w, "canceled") {
            let reason = w.get("cancel_reason").and_then(Value::as_str).unwrap_or("");
            let compacted = etcd::int(&w, "compact_revision").unwrap_or(0);
            return Err(format!(
                "the watch was cancelled: {reason} (compact revision {compacted})"
            ));
        }
        let rev = etcd::header_revision(&w).map_err(|e| format!("watch: {e}"))?;
        for ev in etcd::list(&w, "events") {
            let Some(kv) = ev.get("kv") else { continue };
            let Ok(key) = etcd::bytes(kv, "key") else {
                continue;
            };
            let Some(id) = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| k.strip_prefix(&prefix))
            else {
                continue;
            };
            // proto3 JSON omits the default enum value: no "type" is a PUT.
            if ev.get("type").and_then(Value::as_str) == Some("DELETE") {
                members.remove(id);
            } else if let Some(r) = kv_record(kv, &prefix)
                && (members.len() < MAX_MEMBERS || members.contains_key(id))
            {
                members.insert(r.node_id.clone(), r);
            }
        }
        install(&members, rev);
        // Our own record deleted while the lease lives (someone ran etcdctl del):
        // register again.
        if let Some(rec) = record
            && !members.contains_key(&rec.node_id)
        {
            return Err("our member record was deleted; registering again".into());
        }
    }
}
