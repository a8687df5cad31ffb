//! The pool client: one memory service over every live member.
//!
//! It watches the membership (never registers), computes each key's owners with rendezvous
//! hashing, and talks to the owners directly over their TCP path with the ordinary mcosd
//! client, one batched call per peer: a put of n blocks that touch k members is k calls, and a
//! get is at most one call per member per replica round. A block is returned only from a
//! member that verified it whole (header and checksum, mcosd's two-phase write), so a reader
//! never sees a partial block; a member that is down or dies mid-call turns its blocks into
//! misses (or into the next owner's hits), never into an error or wrong bytes.

use crate::error::ClusterError;
use crate::member::MemberRecord;
use crate::membership::{Membership, MembershipConfig, View};
use crate::placement::{MAX_REPLICAS, Replication, owners_seeded, round_batches};
use crate::repair::{RepairTotals, Repairer};
use mcos_client::{Client, ClientError, ClientOptions, Outcome};
use mcos_core::BlockKey;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::debug;

/// How long a member that refused a connection is skipped before it is tried again (it may
/// still be in the view until its lease expires).
const SUSPECT_FOR: Duration = Duration::from_millis(500);

/// Pool client settings.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Tenant every member is asked as (each member salts keys per tenant).
    pub tenant: String,
    /// Its token.
    pub token: String,
    /// Replication factor per class.
    pub replication: Replication,
    /// How long to wait for the first membership view.
    pub start_timeout: Duration,
    /// Re-replicate the protected blocks this client stores, in the background, whenever the
    /// membership changes (a [`crate::repair::Repairer`] with its own watch and connections).
    pub repair_protected: bool,
    /// Lazy hand-over on get (see [`PoolClient::get`]): a block found at its second owner
    /// after the first answered a miss is copied to the first.
    pub handover: bool,
    /// Bound on each TCP connect, read and write to a member: a partitioned or hung member
    /// costs at most this per call, then its keys go to the next owner or are misses.
    pub peer_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions {
            tenant: "default".into(),
            token: String::new(),
            replication: Replication::default(),
            start_timeout: Duration::from_secs(5),
            repair_protected: false,
            handover: true,
            peer_timeout: Duration::from_secs(2),
        }
    }
}

/// The result of a pooled put for one block.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PutReport {
    /// Owners the block should be on (its class's factor, at most the live members).
    pub wanted: u8,
    /// Owners that hold it now (stored or already present).
    pub stored: u8,
}

/// Counters of one pool client.
#[derive(Clone, Debug, Default)]
pub struct PoolStats {
    /// Per-peer calls made.
    pub peer_calls: u64,
    /// Payload bytes sent to and received from members.
    pub peer_bytes: u64,
    /// Calls that failed because the member was unreachable or died.
    pub peer_failures: u64,
    /// Blocks served by an owner other than the first (after a miss or a failure).
    pub fallback_hits: u64,
    /// Blocks copied to their first owner after being found at the second (lazy hand-over).
    pub handed_over: u64,
}

struct Conn {
    incarnation: u64,
    client: Client,
}

/// A client of the whole pool.
pub struct PoolClient {
    membership: Membership,
    opts: PoolOptions,
    conns: HashMap<String, Conn>,
    suspects: HashMap<String, Instant>,
    stats: PoolStats,
    repairer: Option<Repairer>,
}

impl PoolClient {
    /// Watches the membership in etcd and routes over it.
    pub fn connect(cfg: MembershipConfig, opts: PoolOptions) -> Result<PoolClient, ClusterError> {
        let repairer = if opts.repair_protected {
            let inner = PoolOptions {
                repair_protected: false,
                ..opts.clone()
            };
            Some(Repairer::start(cfg.clone(), inner)?)
        } else {
            None
        };
        let membership = Membership::watch(cfg, opts.start_timeout)?;
        Ok(PoolClient {
            membership,
            opts,
            conns: HashMap::new(),
            suspects: HashMap::new(),
            stats: PoolStats::default(),
            repairer,
        })
    }

    /// The membership this client routes over.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The background repairer's totals (None without `repair_protected`).
    pub fn repair_totals(&self) -> Option<RepairTotals> {
        self.repairer.as_ref().map(Repairer::totals)
    }

    /// Counters.
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// The owners of `key` for `class`, best first (node ids).
    pub fn owners_of(&self, key: BlockKey, class: u8) -> Vec<String> {
        let v = self.membership.view();
        owners_seeded(
            key,
            &v.members,
            &v.seeds,
            self.opts.replication.factor(class),
        )
        .into_iter()
        .map(|i| v.members[i].node_id.clone())
        .collect()
    }

    pub(crate) fn replication(&self) -> &Replication {
        &self.opts.replication
    }

    pub(crate) fn live_view_for_repair(&self) -> Result<Arc<View>, ClusterError> {
        self.live_view()
    }

    /// `exists` on one member; None if it cannot be reached.
    pub(crate) fn exists_on(
        &mut self,
        m: &MemberRecord,
        keys: &[BlockKey],
    ) -> Option<Vec<Option<u8>>> {
        let c = self.conn(m)?;
        let r = c.exists(keys);
        self.stats.peer_calls += 1;
        match r {
            Ok(r) => Some(r),
            Err(e) => {
                self.failed(&m.node_id, &e);
                None
            }
        }
    }

    /// `get` on one member; None if it cannot be reached.
    pub(crate) fn get_from(
        &mut self,
        m: &MemberRecord,
        keys: &[BlockKey],
    ) -> Option<Vec<Option<Vec<u8>>>> {
        let c = self.conn(m)?;
        let r = c.get(keys);
        self.stats.peer_calls += 1;
        match r {
            Ok(r) => {
                self.stats.peer_bytes += r.iter().flatten().map(|b| b.len() as u64).sum::<u64>();
                Some(r)
            }
            Err(e) => {
                self.failed(&m.node_id, &e);
                None
            }
        }
    }

    /// `put` on one member: how many it holds now; None if it cannot be reached.
    pub(crate) fn put_on(
        &mut self,
        m: &MemberRecord,
        class: u8,
        blocks: &[(BlockKey, &[u8])],
    ) -> Option<u64> {
        let c = self.conn(m)?;
        let r = c.put_class(class, blocks);
        self.stats.peer_calls += 1;
        match r {
            Ok(r) => {
                self.stats.peer_bytes += blocks.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
                Some(
                    r.iter()
                        .filter(|o| {
                            matches!(
                                o,
                                Outcome::Stored { .. } | Outcome::Present | Outcome::Durable { .. }
                            )
                        })
                        .count() as u64,
                )
            }
            Err(e) => {
                self.failed(&m.node_id, &e);
                None
            }
        }
    }

    fn live_view(&self) -> Result<Arc<View>, ClusterError> {
        let v = self.membership.view();
        if v.members.is_empty() {
            return Err(ClusterError::NoMembers {
                cluster: self.membership.config().cluster.clone(),
            });
        }
        Ok(v)
    }

    /// A connection to `m`, opened if needed; None if it cannot be reached now.
    fn conn(&mut self, m: &MemberRecord) -> Option<&mut Client> {
        if let Some(t) = self.suspects.get(&m.node_id) {
            if t.elapsed() < SUSPECT_FOR {
                return None;
            }
            self.suspects.remove(&m.node_id);
        }
        let stale = self
            .conns
            .get(&m.node_id)
            .is_some_and(|c| c.incarnation != m.incarnation);
        if stale {
            self.conns.remove(&m.node_id);
        }
        if !self.conns.contains_key(&m.node_id) {
            let opts = ClientOptions {
                tenant: self.opts.tenant.clone(),
                token: self.opts.token.clone(),
                region_bytes: 0,
                // A peer that went away is skipped, not waited for: the next owner serves.
                reconnect_timeout: Duration::ZERO,
            };
            match Client::connect_with_timeout(
                &format!("tcp://{}", m.addr),
                opts,
                self.opts.peer_timeout,
            ) {
                Ok(mut client) => {
                    // This client routes to the owners itself: a member must not forward.
                    client.set_local_only(true);
                    self.conns.insert(
                        m.node_id.clone(),
                        Conn {
                            incarnation: m.incarnation,
                            client,
                        },
                    );
                }
                Err(e) => {
                    debug!(node = %m.node_id, error = %e, "pool: member unreachable");
                    self.stats.peer_failures += 1;
                    self.suspects.insert(m.node_id.clone(), Instant::now());
                    return None;
                }
            }
        }
        self.conns.get_mut(&m.node_id).map(|c| &mut c.client)
    }

    fn failed(&mut self, node_id: &str, e: &ClientError) {
        debug!(node = %node_id, error = %e, "pool: call to member failed");
        self.stats.peer_failures += 1;
        self.conns.remove(node_id);
        self.suspects.insert(node_id.to_string(), Instant::now());
    }

    /// Stores blocks of priority `class` on their owners (one batched call per owner). Per
    /// block: how many owners should hold it and how many do. A member that cannot be reached
    /// lowers `stored`; only a pool with no member at all is an error.
    pub fn put_class(
        &mut self,
        class: u8,
        blocks: &[(BlockKey, &[u8])],
    ) -> Result<Vec<PutReport>, ClusterError> {
        self.put_inner(class, blocks, &[])
    }

    /// As [`PoolClient::put_class`], naming each block's parent key (`parents[i]` for
    /// `blocks[i]`; `BlockKey::NONE` for none): every owner's BlockStored event carries it, so a
    /// router can chain the pool's blocks into prefixes. A list of another length is refused
    /// before anything is sent.
    pub fn put_with_parents(
        &mut self,
        class: u8,
        blocks: &[(BlockKey, &[u8])],
        parents: &[BlockKey],
    ) -> Result<Vec<PutReport>, ClusterError> {
        if parents.len() != blocks.len() {
            return Err(ClusterError::Invalid(format!(
                "put_with_parents: {} parents for {} blocks (one per block; BlockKey::NONE for none)",
                parents.len(),
                blocks.len()
            )));
        }
        self.put_inner(class, blocks, parents)
    }

    /// The put: `parents` empty, or one per block.
    fn put_inner(
        &mut self,
        class: u8,
        blocks: &[(BlockKey, &[u8])],
        parents: &[BlockKey],
    ) -> Result<Vec<PutReport>, ClusterError> {
        let v = self.live_view()?;
        let r = self.opts.replication.factor(class);
        let mut out: Vec<PutReport> = Vec::with_capacity(blocks.len());
        let mut per_member: Vec<Vec<usize>> = vec![Vec::new(); v.members.len()];
        for (i, (k, _)) in blocks.iter().enumerate() {
            let os = owners_seeded(*k, &v.members, &v.seeds, r);
            out.push(PutReport {
                wanted: os.len() as u8,
                stored: 0,
            });
            for o in os {
                per_member[o].push(i);
            }
        }
        for (mi, idx) in per_member.iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let m = &v.members[mi];
            let batch: Vec<(BlockKey, &[u8])> = idx.iter().map(|&i| blocks[i]).collect();
            let bytes: u64 = batch.iter().map(|(_, b)| b.len() as u64).sum();
            let Some(c) = self.conn(m) else { continue };
            let res = if parents.is_empty() {
                c.put_class(class, &batch)
            } else {
                let ps: Vec<BlockKey> = idx.iter().map(|&i| parents[i]).collect();
                c.put_with_parents(class, &batch, &ps)
            };
            self.stats.peer_calls += 1;
            match res {
                Ok(res) => {
                    self.stats.peer_bytes += bytes;
                    for (&i, o) in idx.iter().zip(res) {
                        if matches!(
                            o,
                            Outcome::Stored { .. } | Outcome::Present | Outcome::Durable { .. }
                        ) {
                            out[i].stored += 1;
                        }
                    }
                }
                Err(e) => {
                    let id = m.node_id.clone();
                    self.failed(&id, &e);
                }
            }
        }
        // Tracked once stored: the repairer keeps them at the factor from now on.
        if r > 1
            && let Some(rep) = &self.repairer
        {
            let keys: Vec<BlockKey> = blocks.iter().map(|(k, _)| *k).collect();
            rep.track(&keys, class);
        }
        Ok(out)
    }

    /// Stores blocks in the default class.
    pub fn put(&mut self, blocks: &[(BlockKey, &[u8])]) -> Result<Vec<PutReport>, ClusterError> {
        self.put_class(0, blocks)
    }

    /// Fetches blocks from the pool: each from its first owner that has it whole (`None`: a
    /// miss; recompute it). Round `r` asks every key still missing of its `r`-th owner, one
    /// batched call per member, up to the largest replication factor. After a join the
    /// previous owner of a key is its second owner, so a miss at the new owner asks the
    /// previous one before the caller recomputes, and the block is handed over.
    pub fn get(&mut self, keys: &[BlockKey]) -> Result<Vec<Option<Vec<u8>>>, ClusterError> {
        let v = self.live_view()?;
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let lists: Vec<Vec<usize>> = keys
            .iter()
            .map(|&k| owners_seeded(k, &v.members, &v.seeds, MAX_REPLICAS))
            .collect();
        // Keys whose first owner answered (a miss), as opposed to being unreachable.
        let mut first_missed = vec![false; keys.len()];
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        for round in 0..MAX_REPLICAS {
            if pending.is_empty() {
                break;
            }
            let per_member = round_batches(v.members.len(), &lists, round, pending.iter().copied());
            for (mi, idx) in per_member.iter().enumerate() {
                if idx.is_empty() {
                    continue;
                }
                let m = &v.members[mi];
                let ks: Vec<BlockKey> = idx.iter().map(|&i| keys[i]).collect();
                let Some(c) = self.conn(m) else { continue };
                let res = c.get(&ks);
                self.stats.peer_calls += 1;
                match res {
                    Ok(res) => {
                        for (&i, got) in idx.iter().zip(res) {
                            match got {
                                Some(b) => {
                                    self.stats.peer_bytes += b.len() as u64;
                                    if round > 0 {
                                        self.stats.fallback_hits += 1;
                                    }
                                    out[i] = Some(b);
                                }
                                None if round == 0 => first_missed[i] = true,
                                None => {}
                            }
                        }
                    }
                    Err(e) => {
                        let id = m.node_id.clone();
                        self.failed(&id, &e);
                    }
                }
            }
            pending.retain(|&i| out[i].is_none());
        }
        if self.opts.handover {
            self.hand_over(&v, keys, &lists, &first_missed, &out);
        }
        Ok(out)
    }

    /// Lazy hand-over: a block found at its second owner after its first owner answered a miss
    /// (the first owner joined after the block was stored, or evicted it) is written to the
    /// first owner, one batched put per owner, so the next read is one call. Best effort: a
    /// failure here changes nothing the caller got.
    fn hand_over(
        &mut self,
        v: &View,
        keys: &[BlockKey],
        lists: &[Vec<usize>],
        first_missed: &[bool],
        got: &[Option<Vec<u8>>],
    ) {
        let mut per_member: Vec<Vec<(BlockKey, &[u8])>> = vec![Vec::new(); v.members.len()];
        for (i, g) in got.iter().enumerate() {
            if let (true, Some(b), Some(&o)) = (first_missed[i], g, lists[i].first()) {
                per_member[o].push((keys[i], b.as_slice()));
            }
        }
        for (mi, batch) in per_member.iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            if let Some(n) = self.put_on(&v.members[mi], 0, batch) {
                self.stats.handed_over += n;
            }
        }
    }

    /// The longest prefix of `keys` stored in the pool (no access counted): each member
    /// involved is asked once about all of its keys (`exists`, answered from its directory),
    /// then the second owners once for keys whose first owner lacked them or was unreachable.
    pub fn longest_prefix(&mut self, keys: &[BlockKey]) -> Result<usize, ClusterError> {
        let v = self.live_view()?;
        let lists: Vec<Vec<usize>> = keys
            .iter()
            .map(|&k| owners_seeded(k, &v.members, &v.seeds, MAX_REPLICAS))
            .collect();
        let mut found = vec![false; keys.len()];
        let mut bound = keys.len();
        for round in 0..MAX_REPLICAS {
            // From the first key not found on: anything before it is known present.
            let start = found.iter().position(|f| !f).unwrap_or(keys.len());
            let per_member = round_batches(
                v.members.len(),
                &lists,
                round,
                (start..lists.len()).filter(|&i| !found[i]),
            );
            for (mi, idx) in per_member.iter().enumerate() {
                if idx.is_empty() {
                    continue;
                }
                let m = &v.members[mi];
                let ks: Vec<BlockKey> = idx.iter().map(|&i| keys[i]).collect();
                let Some(c) = self.conn(m) else { continue };
                let res = c.exists(&ks);
                self.stats.peer_calls += 1;
                match res {
                    Ok(res) => {
                        for (&i, t) in idx.iter().zip(res) {
                            found[i] |= t.is_some();
                        }
                    }
                    Err(e) => {
                        let id = m.node_id.clone();
                        self.failed(&id, &e);
                    }
                }
            }
            bound = found.iter().position(|f| !f).unwrap_or(keys.len());
            if bound == keys.len() {
                break;
            }
        }
        Ok(bound)
    }

    /// Per member in the view: its stats JSON (`{"node", "daemon"}`) or why it could not be
    /// read.
    pub fn member_stats(&mut self) -> Vec<(MemberRecord, Result<String, String>)> {
        let v = self.membership.view();
        let mut out = Vec::with_capacity(v.members.len());
        for m in &v.members {
            let r = match self.conn(m) {
                Some(c) => c.stats_json().map_err(|e| e.to_string()),
                None => Err(format!("{} is unreachable", m.addr)),
            };
            if r.is_err() {
                self.conns.remove(&m.node_id);
            }
            out.push((m.clone(), r));
        }
        out
    }
}
