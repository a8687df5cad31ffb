//! The daemon as a pool member: a local miss is asked of the key's owners, remote blocks read
//! often are kept as local cache entries, and peer links are measured and priced.
//!
//! A client of this daemon (local shared region or TCP) that misses a block gets it from the
//! block's live owners when the daemon is a pool member: the missed keys of one request are
//! fetched with one batched call per owner per replica round (`mcos_cluster::Peers`, flag
//! `LOCAL` so the owner never forwards again), each owner asked under the client's tenant. A
//! dead or hung owner is a miss after at most one peer timeout; a block is copied to the
//! client only whole. Before asking a peer the brain's pricing (`mcos_brain::remote`) compares
//! a fetch over that peer's measured link with recomputing the block: a link that loses is
//! not asked, and the block is a miss the engine recomputes. After
//! `copy_after_remote_reads` remote reads of one block the daemon offers it to its own node
//! as an ordinary insert in the default class (the fast path admits it or not): a cache
//! entry, evicted like any other, never an owner (it is not tracked for re-replication).

use crate::Shared;
use crate::rereplicate::Tracker;
use crate::tenants::Tenant;
use mcos_brain::{CostModel, PeerLink, RemoteChoice, RemotePricing};
use mcos_cluster::{PeerCall, Peers, Replication};
use mcos_core::{BlockKey, PriorityClass};
use mcos_node::PutOutcome;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Duration;
use tracing::warn;

/// Blocks whose remote reads are counted at once; when full the counts restart (an aging
/// step: a block must be read again to earn its copy).
pub(crate) const MAX_READ_COUNTS: usize = 1 << 16;
/// Bound on each connect, read and write to a peer.
pub(crate) const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters of the pool side. Written by sessions and the re-replication thread, read by
/// stats and metrics (relaxed: independent totals).
#[derive(Default)]
pub(crate) struct PoolCounters {
    /// Blocks missed locally and asked of their owners.
    pub(crate) remote_asked: AtomicU64,
    /// Of those, found at an owner and returned.
    pub(crate) remote_hits: AtomicU64,
    /// Blocks not asked because the pricing chose recompute for the owner's link.
    pub(crate) priced_out: AtomicU64,
    /// Calls to peers (gets, lookups, re-replication).
    pub(crate) peer_calls: AtomicU64,
    /// Calls that failed or could not connect.
    pub(crate) peer_failures: AtomicU64,
    /// Payload bytes moved to and from peers.
    pub(crate) peer_bytes: AtomicU64,
    /// Remote blocks kept as local cache entries.
    pub(crate) local_copies: AtomicU64,
    /// Local copies the node's admission refused (or the tenant's quota).
    pub(crate) local_copies_refused: AtomicU64,
    /// Prefix lookups that asked owners.
    pub(crate) prefix_forwarded: AtomicU64,
}

/// The pool side of a daemon (present when it is a member).
pub(crate) struct PoolSide {
    pub(crate) peers: Peers,
    pricing: RemotePricing,
    pub(crate) fetch_from_owners: bool,
    /// Per peer: its link as measured from this daemon's calls.
    links: Mutex<HashMap<String, PeerLink>>,
    /// Node key -> remote reads since counting (re)started.
    reads: Mutex<HashMap<BlockKey, u32>>,
    /// Replication factor per class (from the policy table; refreshed by re-replication).
    pub(crate) replication: RwLock<Replication>,
    /// Tenant names, index = the tenant index the tracker stores.
    pub(crate) tenant_names: Vec<String>,
    pub(crate) tracker: Tracker,
    pub(crate) counters: PoolCounters,
    pub(crate) block_bytes: u32,
    pub(crate) rereplicate_blocks_per_s: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PoolSide {
    pub(crate) fn new(
        peers: Peers,
        cluster: &crate::ClusterSection,
        cost: Option<CostModel>,
        replication: Replication,
        tenant_names: Vec<String>,
        block_bytes: u32,
    ) -> PoolSide {
        PoolSide {
            peers,
            pricing: RemotePricing {
                cost,
                copy_after_reads: cluster.copy_after_remote_reads,
            },
            fetch_from_owners: cluster.fetch_from_owners,
            links: Mutex::new(HashMap::new()),
            reads: Mutex::new(HashMap::new()),
            replication: RwLock::new(replication),
            tenant_names,
            tracker: Tracker::default(),
            counters: PoolCounters::default(),
            block_bytes,
            rereplicate_blocks_per_s: cluster.rereplicate_blocks_per_s,
        }
    }

    /// Feeds measured calls into the peer links and the counters.
    pub(crate) fn record_calls(&self, calls: &[PeerCall]) {
        let c = &self.counters;
        c.peer_calls
            .fetch_add(calls.len() as u64, Ordering::Relaxed);
        let bytes: u64 = calls.iter().map(|x| x.payload_bytes).sum();
        c.peer_bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut links = lock(&self.links);
        for call in calls {
            links
                .entry(call.node_id.clone())
                .or_default()
                .observe_call(call.payload_bytes, call.seconds);
        }
    }

    fn choice(&self, peer: &str) -> RemoteChoice {
        let link = lock(&self.links).get(peer).copied().unwrap_or_default();
        self.pricing
            .price(&link, u64::from(self.block_bytes))
            .choice
    }

    /// Fetches the blocks this node missed from their owners: per key, whole bytes or None.
    /// `client_keys[i]` is the tenant's key, `node_keys[i]` the salted key this node stores
    /// it under (for the local copy).
    pub(crate) fn fetch_missing(
        &self,
        sh: &Shared,
        tenant: &Tenant,
        client_keys: &[BlockKey],
        node_keys: &[BlockKey],
    ) -> Vec<Option<Vec<u8>>> {
        let c = &self.counters;
        let allow = |peer: &str| self.choice(peer) == RemoteChoice::Fetch;
        let r = self
            .peers
            .get(&tenant.name, client_keys, self.block_bytes, &allow);
        self.record_calls(&r.calls);
        c.peer_failures.fetch_add(r.failures, Ordering::Relaxed);
        c.priced_out.fetch_add(r.refused, Ordering::Relaxed);
        c.remote_asked
            .fetch_add(client_keys.len() as u64, Ordering::Relaxed);
        let out: Vec<Option<Vec<u8>>> = r.blocks.into_iter().map(|b| b.map(|(b, _)| b)).collect();
        let hits = out.iter().flatten().count() as u64;
        c.remote_hits.fetch_add(hits, Ordering::Relaxed);
        if hits > 0 && self.pricing.copy_after_reads > 0 {
            self.keep_copies(sh, tenant, node_keys, &out);
        }
        out
    }

    /// Counts remote reads and offers the blocks read often enough to the node.
    fn keep_copies(
        &self,
        sh: &Shared,
        tenant: &Tenant,
        node_keys: &[BlockKey],
        got: &[Option<Vec<u8>>],
    ) {
        let mut copy: Vec<(BlockKey, &[u8])> = Vec::new();
        {
            let mut reads = lock(&self.reads);
            for (&k, g) in node_keys.iter().zip(got) {
                let Some(b) = g else { continue };
                if reads.len() >= MAX_READ_COUNTS && !reads.contains_key(&k) {
                    reads.clear();
                }
                let n = reads.entry(k).or_insert(0);
                *n += 1;
                if self.pricing.keep_local_copy(*n) {
                    reads.remove(&k);
                    copy.push((k, b.as_slice()));
                }
            }
        }
        if copy.is_empty() {
            return;
        }
        let room = tenant.quota_room(&sh.node);
        let refused_by_quota = copy
            .len()
            .saturating_sub(room.min(usize::MAX as u64) as usize);
        copy.truncate(copy.len() - refused_by_quota);
        let mut stored = 0u64;
        let mut refused = refused_by_quota as u64;
        for ((k, _), r) in copy
            .iter()
            .zip(sh.node.put_batch(PriorityClass::DEFAULT, &copy))
        {
            match r {
                Ok(PutOutcome::Stored(_)) => {
                    tenant.record_stored(*k);
                    stored += 1;
                }
                Ok(PutOutcome::Present) => {}
                Ok(PutOutcome::Rejected(_)) => refused += 1,
                Err(e) => {
                    warn!("keeping a local copy of a remote block failed: {e}");
                    refused += 1;
                }
            }
        }
        let c = &self.counters;
        c.local_copies.fetch_add(stored, Ordering::Relaxed);
        c.local_copies_refused.fetch_add(refused, Ordering::Relaxed);
    }

    /// The longest prefix of `client_keys` held by this node or the keys' owners, given that
    /// the first `local` are held here: the other keys are checked here first, then each
    /// owner involved is asked once (then the second owners).
    pub(crate) fn prefix(
        &self,
        sh: &Shared,
        tenant: &Tenant,
        client_keys: &[BlockKey],
        node_keys: &[BlockKey],
        local: usize,
    ) -> usize {
        let mut found: Vec<bool> = node_keys
            .iter()
            .enumerate()
            .map(|(i, &k)| i < local || (k != BlockKey::NONE && sh.node.locate(k).is_some()))
            .collect();
        if found.iter().all(|&f| f) {
            return found.len();
        }
        self.counters
            .prefix_forwarded
            .fetch_add(1, Ordering::Relaxed);
        let calls = self.peers.mark_held(&tenant.name, client_keys, &mut found);
        self.record_calls(&calls);
        found.iter().position(|f| !f).unwrap_or(found.len())
    }

    /// Records a stored block of `class` for re-replication when its class is protected.
    pub(crate) fn track_put(
        &self,
        tenant: &Tenant,
        client_key: BlockKey,
        node_key: BlockKey,
        class: u8,
    ) {
        let factor = self
            .replication
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .factor(class);
        if factor < 2 {
            return;
        }
        let Some(t) = self.tenant_names.iter().position(|n| *n == tenant.name) else {
            return;
        };
        self.tracker.track(node_key, client_key, t as u16, class);
    }

    /// The `daemon.pool` object of the stats reply.
    pub(crate) fn stats_json(&self) -> Value {
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut links: Vec<(String, PeerLink)> = lock(&self.links)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        links.sort_by(|a, b| a.0.cmp(&b.0));
        let peer_links: Vec<Value> = links
            .iter()
            .map(|(id, l)| {
                let p = self.pricing.price(l, u64::from(self.block_bytes));
                json!({
                    "node_id": id,
                    "calls": l.calls,
                    "bytes": l.bytes,
                    "latency_us": l.latency_s() * 1e6,
                    "measured_bytes_per_s": l.measured_bytes_per_s(),
                    "trusted": l.trusted(),
                    "fetch_us_per_block": p.fetch_s * 1e6,
                    "recompute_us_per_block": p.recompute_s.map(|s| s * 1e6),
                    "decision": p.choice.name(),
                })
            })
            .collect();
        json!({
            "fetch_from_owners": self.fetch_from_owners,
            "remote": {
                "asked": n(&c.remote_asked),
                "hits": n(&c.remote_hits),
                "priced_out": n(&c.priced_out),
                "peer_calls": n(&c.peer_calls),
                "peer_failures": n(&c.peer_failures),
                "peer_bytes": n(&c.peer_bytes),
                "prefix_forwarded": n(&c.prefix_forwarded),
            },
            "local_copies": {
                "after_remote_reads": self.pricing.copy_after_reads,
                "stored": n(&c.local_copies),
                "refused": n(&c.local_copies_refused),
            },
            "peer_links": peer_links,
            "rereplication": self.tracker.stats_json(),
        })
    }

    /// Prometheus text of the pool side.
    pub(crate) fn render_metrics(&self, o: &mut String) {
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters: [(&str, &str, u64); 9] = [
            (
                "mcos_pool_remote_asked_total",
                "Blocks missed locally and asked of their owners.",
                n(&c.remote_asked),
            ),
            (
                "mcos_pool_remote_hits_total",
                "Blocks missed locally and served by an owner.",
                n(&c.remote_hits),
            ),
            (
                "mcos_pool_remote_priced_out_total",
                "Blocks not asked of an owner: recompute beats the fetch over its measured link.",
                n(&c.priced_out),
            ),
            (
                "mcos_pool_peer_calls_total",
                "Calls to peers.",
                n(&c.peer_calls),
            ),
            (
                "mcos_pool_peer_failures_total",
                "Calls to peers that failed or could not connect.",
                n(&c.peer_failures),
            ),
            (
                "mcos_pool_peer_bytes_total",
                "Payload bytes moved to and from peers.",
                n(&c.peer_bytes),
            ),
            (
                "mcos_pool_local_copies_total",
                "Remote blocks kept as local cache entries.",
                n(&c.local_copies),
            ),
            (
                "mcos_pool_local_copies_refused_total",
                "Local copies the node's admission or the tenant's quota refused.",
                n(&c.local_copies_refused),
            ),
            (
                "mcos_pool_prefix_forwarded_total",
                "Prefix lookups that asked owners.",
                n(&c.prefix_forwarded),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let links: Vec<(String, PeerLink)> = lock(&self.links)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let _ = writeln!(
            o,
            "# HELP mcos_pool_peer_latency_seconds Round trip of payload-less calls to a peer (exponential mean).\n# TYPE mcos_pool_peer_latency_seconds gauge"
        );
        for (id, l) in &links {
            let _ = writeln!(
                o,
                "mcos_pool_peer_latency_seconds{{peer=\"{id}\"}} {}",
                l.latency_s()
            );
        }
        let _ = writeln!(
            o,
            "# HELP mcos_pool_peer_bytes_per_second Measured bandwidth of payload calls to a peer.\n# TYPE mcos_pool_peer_bytes_per_second gauge"
        );
        for (id, l) in &links {
            if let Some(bw) = l.measured_bytes_per_s() {
                let _ = writeln!(o, "mcos_pool_peer_bytes_per_second{{peer=\"{id}\"}} {bw}");
            }
        }
        let _ = writeln!(
            o,
            "# HELP mcos_pool_remote_fetch_chosen 1 when a remote hit from the peer is fetched, 0 when recompute is cheaper.\n# TYPE mcos_pool_remote_fetch_chosen gauge"
        );
        for (id, l) in &links {
            let fetch =
                self.pricing.price(l, u64::from(self.block_bytes)).choice == RemoteChoice::Fetch;
            let _ = writeln!(
                o,
                "mcos_pool_remote_fetch_chosen{{peer=\"{id}\"}} {}",
                u8::from(fetch)
            );
        }
        self.tracker.render_metrics(o);
    }
}
