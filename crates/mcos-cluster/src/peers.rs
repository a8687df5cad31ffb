//! A daemon's calls to its peers: the pool seen from inside a member.
//!
//! A member that misses a block locally asks the block's other owners (rendezvous order,
//! itself left out) over their TCP path, one batched call per peer per round, with the
//! `LOCAL` flag so the peer answers from its own tiers and never forwards again. Prefix
//! lookups ask each owner involved once (`exists`, answered from its directory), then the
//! second owners for what the first lacked. The re-replication of protected blocks writes
//! through the same connections.
//!
//! Many sessions call at once: connections are checked out of a per (peer, tenant) idle list
//! for one call and checked back in after it (at most [`MAX_IDLE_PER_PEER`] kept), so no lock
//! is held across I/O. Every connect, read and write is bounded by the peer timeout; a peer
//! that refuses or fails is skipped for [`SUSPECT_FOR`], and its keys are misses or go to the
//! next owner, never errors or wrong bytes. A block comes back only whole (the owner verified
//! header and checksum; the inline reply carries all of its bytes or none).

use crate::error::ClusterError;
use crate::member::MemberRecord;
use crate::membership::{MembershipProbe, View};
use crate::placement::{MAX_REPLICAS, owners_seeded, round_batches};
use mcos_client::{Client, ClientOptions, Outcome};
use mcos_core::BlockKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::debug;

/// Idle connections kept per (peer, tenant); more are closed after their call.
pub const MAX_IDLE_PER_PEER: usize = 8;
/// How long a peer that refused or failed a call is skipped (it may stay in the view until
/// its lease expires).
pub const SUSPECT_FOR: Duration = Duration::from_millis(500);

/// One call to a peer, for the link measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerCall {
    /// The peer.
    pub node_id: String,
    /// Payload bytes carried (0 for a lookup or an all-miss get).
    pub payload_bytes: u64,
    /// Wall time of the call.
    pub seconds: f64,
}

/// What a remote get found.
#[derive(Debug, Default)]
pub struct RemoteGet {
    /// Per key: the bytes and the index of the call (in `calls`) that brought them.
    pub blocks: Vec<Option<(Vec<u8>, usize)>>,
    /// Calls made, in order.
    pub calls: Vec<PeerCall>,
    /// Calls that failed (peer unreachable, died, timed out).
    pub failures: u64,
    /// Keys not asked of an owner because `allow` refused that peer.
    pub refused: u64,
}

struct Idle {
    incarnation: u64,
    client: Client,
}

/// A member's connections to its peers.
pub struct Peers {
    probe: MembershipProbe,
    self_id: String,
    timeout: Duration,
    /// Tenant name -> token (the same tenants are configured on every member).
    tokens: HashMap<String, String>,
    /// Idle connections per (peer, tenant); locked only to check out or in.
    idle: Mutex<HashMap<(String, String), Vec<Idle>>>,
    /// Peers skipped until the instant.
    suspects: Mutex<HashMap<String, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Peers {
    /// Peers of the member whose membership is `probe` (a registered member: it has a node
    /// id). `tokens`: tenant name to token.
    pub fn new(
        probe: MembershipProbe,
        tokens: HashMap<String, String>,
        timeout: Duration,
    ) -> Result<Peers, ClusterError> {
        let self_id = probe
            .node_id()
            .ok_or_else(|| ClusterError::Invalid("peers need a registered member".into()))?
            .to_string();
        Ok(Peers {
            probe,
            self_id,
            timeout,
            tokens,
            idle: Mutex::new(HashMap::new()),
            suspects: Mutex::new(HashMap::new()),
        })
    }

    /// This member's id.
    pub fn self_id(&self) -> &str {
        &self.self_id
    }

    /// The current membership view.
    pub fn view(&self) -> Arc<View> {
        self.probe.view()
    }

    /// The owners of `key` other than this member, best first (indexes into `v.members`), up
    /// to [`MAX_REPLICAS`] owners considered.
    pub fn other_owners(&self, v: &View, key: BlockKey) -> Vec<usize> {
        owners_seeded(key, &v.members, &v.seeds, MAX_REPLICAS)
            .into_iter()
            .filter(|&i| v.members[i].node_id != self.self_id)
            .collect()
    }

    fn checkout(&self, m: &MemberRecord, tenant: &str) -> Option<Client> {
        {
            let mut s = lock(&self.suspects);
            if let Some(t) = s.get(&m.node_id) {
                if t.elapsed() < SUSPECT_FOR {
                    return None;
                }
                s.remove(&m.node_id);
            }
        }
        let key = (m.node_id.clone(), tenant.to_string());
        while let Some(c) = lock(&self.idle).get_mut(&key).and_then(Vec::pop) {
            if c.incarnation == m.incarnation {
                return Some(c.client);
            }
        }
        let token = self.tokens.get(tenant)?;
        let opts = ClientOptions {
            tenant: tenant.to_string(),
            token: token.clone(),
            region_bytes: 0,
            // A peer that went away is skipped, not waited for.
            reconnect_timeout: Duration::ZERO,
        };
        match Client::connect_with_timeout(&format!("tcp://{}", m.addr), opts, self.timeout) {
            Ok(mut c) => {
                c.set_local_only(true);
                Some(c)
            }
            Err(e) => {
                debug!(peer = %m.node_id, error = %e, "peer unreachable");
                self.suspect(&m.node_id);
                None
            }
        }
    }

    fn checkin(&self, m: &MemberRecord, tenant: &str, client: Client) {
        let mut idle = lock(&self.idle);
        let list = idle
            .entry((m.node_id.clone(), tenant.to_string()))
            .or_default();
        if list.len() < MAX_IDLE_PER_PEER {
            list.push(Idle {
                incarnation: m.incarnation,
                client,
            });
        }
    }

    fn suspect(&self, node_id: &str) {
        lock(&self.suspects).insert(node_id.to_string(), Instant::now());
    }

    /// Runs `f` on a connection to `m` as `tenant`; None if the peer cannot be reached or the
    /// call failed (the peer is then suspected). Returns the result and the call's seconds.
    fn call<T>(
        &self,
        m: &MemberRecord,
        tenant: &str,
        f: impl FnOnce(&mut Client) -> Result<T, mcos_client::ClientError>,
    ) -> Option<(T, f64)> {
        let mut c = self.checkout(m, tenant)?;
        let t0 = Instant::now();
        match f(&mut c) {
            Ok(r) => {
                let s = t0.elapsed().as_secs_f64();
                self.checkin(m, tenant, c);
                Some((r, s))
            }
            Err(e) => {
                debug!(peer = %m.node_id, error = %e, "peer call failed");
                self.suspect(&m.node_id);
                None
            }
        }
    }

    /// Fetches `keys` (client keys of `tenant`) from their other owners: round `r` asks each
    /// key still missing of its `r`-th other owner, one batched get per peer. `allow(peer)`
    /// may refuse a peer (its keys then stay misses: the caller recomputes). Only members
    /// with this member's `block_bytes` are asked.
    pub fn get(
        &self,
        tenant: &str,
        keys: &[BlockKey],
        block_bytes: u32,
        allow: &dyn Fn(&str) -> bool,
    ) -> RemoteGet {
        let v = self.view();
        let mut out = RemoteGet {
            blocks: vec![None; keys.len()],
            ..RemoteGet::default()
        };
        let lists: Vec<Vec<usize>> = keys.iter().map(|&k| self.other_owners(&v, k)).collect();
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
                if m.block_bytes != block_bytes {
                    continue;
                }
                if !allow(&m.node_id) {
                    out.refused += idx.len() as u64;
                    continue;
                }
                let ks: Vec<BlockKey> = idx.iter().map(|&i| keys[i]).collect();
                let Some((got, seconds)) = self.call(m, tenant, |c| c.get(&ks)) else {
                    out.failures += 1;
                    continue;
                };
                let call = out.calls.len();
                let mut payload_bytes = 0u64;
                for (&i, g) in idx.iter().zip(got) {
                    if let Some(b) = g
                        && b.len() <= block_bytes as usize
                    {
                        payload_bytes += b.len() as u64;
                        out.blocks[i] = Some((b, call));
                    }
                }
                out.calls.push(PeerCall {
                    node_id: m.node_id.clone(),
                    payload_bytes,
                    seconds,
                });
            }
            pending.retain(|&i| out.blocks[i].is_none());
        }
        out
    }

    /// Marks in `found` the keys (client keys of `tenant`) that an owner holds, for a prefix
    /// lookup: from the first key not yet found on, each owner involved is asked once
    /// (`exists`, no access counted), then the second owners for what is still missing.
    /// Returns the calls made.
    pub fn mark_held(&self, tenant: &str, keys: &[BlockKey], found: &mut [bool]) -> Vec<PeerCall> {
        let v = self.view();
        let lists: Vec<Vec<usize>> = keys.iter().map(|&k| self.other_owners(&v, k)).collect();
        let mut calls = Vec::new();
        for round in 0..MAX_REPLICAS {
            let start = found.iter().position(|f| !f).unwrap_or(keys.len());
            if start == keys.len() {
                break;
            }
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
                if let Some((res, seconds)) = self.call(m, tenant, |c| c.exists(&ks)) {
                    for (&i, t) in idx.iter().zip(res) {
                        found[i] |= t.is_some();
                    }
                    calls.push(PeerCall {
                        node_id: m.node_id.clone(),
                        payload_bytes: 0,
                        seconds,
                    });
                }
            }
        }
        calls
    }

    /// Which of `keys` (client keys of `tenant`) `m` holds; None if it cannot be reached.
    pub fn exists_on(
        &self,
        m: &MemberRecord,
        tenant: &str,
        keys: &[BlockKey],
    ) -> Option<(Vec<bool>, PeerCall)> {
        let (res, seconds) = self.call(m, tenant, |c| c.exists(keys))?;
        Some((
            res.iter().map(Option::is_some).collect(),
            PeerCall {
                node_id: m.node_id.clone(),
                payload_bytes: 0,
                seconds,
            },
        ))
    }

    /// Stores `blocks` (client keys of `tenant`) on `m` in `class`: how many it stored now
    /// and how many it holds in all (stored now or already present); None if it cannot be
    /// reached.
    pub fn put_on(
        &self,
        m: &MemberRecord,
        tenant: &str,
        class: u8,
        blocks: &[(BlockKey, &[u8])],
    ) -> Option<(u64, u64, PeerCall)> {
        let (res, seconds) = self.call(m, tenant, |c| c.put_class(class, blocks))?;
        let stored = res
            .iter()
            .filter(|o| matches!(o, Outcome::Stored { .. } | Outcome::Durable { .. }))
            .count() as u64;
        let held = stored + res.iter().filter(|o| matches!(o, Outcome::Present)).count() as u64;
        Some((
            stored,
            held,
            PeerCall {
                node_id: m.node_id.clone(),
                payload_bytes: blocks.iter().map(|(_, b)| b.len() as u64).sum(),
                seconds,
            },
        ))
    }
}
