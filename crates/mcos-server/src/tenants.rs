//! Tenants: who may connect, the salt that keeps their keys apart, and their quotas.
//!
//! A client's keys are stored under `key.salted(tenant.salt)`, so no operation of one tenant
//! can name a block of another: a get, exists, prefix lookup, pin or intent of tenant A only
//! ever reaches keys salted with A's salt. The salt is derived from the tenant's name, so it is
//! the same across restarts.

use crate::config::TenantConfig;
use mcos_core::BlockKey;
use mcos_node::Node;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// While a tenant is at its quota, re-count its resident blocks at most this often.
const QUOTA_RECOUNT: Duration = Duration::from_millis(100);

/// One configured tenant.
pub struct Tenant {
    /// Name.
    pub name: String,
    token: Vec<u8>,
    /// Key salt.
    pub salt: u64,
    quota_blocks: Option<u64>,
    stored: Mutex<QuotaSet>,
}

/// The keys a tenant with a quota stored, pruned of evicted ones when the quota fills.
struct QuotaSet {
    keys: HashSet<BlockKey>,
    last_recount: Option<Instant>,
}

impl Tenant {
    fn new(c: &TenantConfig) -> Tenant {
        Tenant {
            name: c.name.clone(),
            token: c.token.as_bytes().to_vec(),
            salt: mcos_core::tenant_salt(&c.name),
            quota_blocks: c.quota_blocks,
            stored: Mutex::new(QuotaSet {
                keys: HashSet::new(),
                last_recount: None,
            }),
        }
    }

    /// The node key for a client key (client key 0 is reserved: `None`).
    pub fn key(&self, client_key: BlockKey) -> Option<BlockKey> {
        (client_key != BlockKey::NONE).then(|| client_key.salted(self.salt))
    }

    /// Whether `token` is this tenant's (constant time in the token's length).
    fn token_matches(&self, token: &[u8]) -> bool {
        let mut diff = u8::from(self.token.len() != token.len());
        for (i, &b) in token.iter().enumerate() {
            diff |= b ^ self.token.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }

    /// How many more blocks fit the quota (`u64::MAX` without one). When the recorded set is
    /// full, blocks the node has since evicted are pruned (at most every `QUOTA_RECOUNT`).
    pub fn quota_room(&self, node: &Node) -> u64 {
        let Some(quota) = self.quota_blocks else {
            return u64::MAX;
        };
        let mut s = self.stored.lock().unwrap_or_else(|e| e.into_inner());
        if (s.keys.len() as u64) >= quota {
            let now = Instant::now();
            if s.last_recount.is_none_or(|t| now - t >= QUOTA_RECOUNT) {
                s.keys.retain(|&k| node.locate(k).is_some());
                s.last_recount = Some(now);
            }
        }
        quota.saturating_sub(s.keys.len() as u64)
    }

    /// Records a block stored for this tenant (quota accounting).
    pub fn record_stored(&self, key: BlockKey) {
        if self.quota_blocks.is_some() {
            self.stored
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys
                .insert(key);
        }
    }
}

/// The tenant table.
pub struct Tenants {
    list: Vec<Tenant>,
    /// Whether any tenant needs a token (else TCP is open to anyone who can connect).
    pub authenticated: bool,
}

impl Tenants {
    /// From the configured tenants.
    pub fn new(cfg: &[TenantConfig]) -> Tenants {
        Tenants {
            list: cfg.iter().map(Tenant::new).collect(),
            authenticated: cfg.iter().all(|t| !t.token.is_empty()),
        }
    }

    /// The tenant named `name` if `token` is its token. Unknown names and wrong tokens give
    /// the same answer.
    pub fn authenticate(&self, name: &str, token: &[u8]) -> Option<&Tenant> {
        self.list
            .iter()
            .find(|t| t.name == name)
            .filter(|t| t.token_matches(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, token: &str) -> TenantConfig {
        TenantConfig {
            name: name.into(),
            token: token.into(),
            quota_blocks: None,
        }
    }

    #[test]
    fn tokens_and_salts() {
        let t = Tenants::new(&[cfg("a", "secret"), cfg("b", "other")]);
        assert!(t.authenticate("a", b"secret").is_some());
        assert!(t.authenticate("a", b"secreT").is_none());
        assert!(t.authenticate("a", b"secret2").is_none());
        assert!(t.authenticate("a", b"").is_none());
        assert!(t.authenticate("c", b"secret").is_none());
        let (a, b) = (
            t.authenticate("a", b"secret").unwrap(),
            t.authenticate("b", b"other").unwrap(),
        );
        let k = BlockKey(12345);
        assert_ne!(a.key(k), b.key(k), "tenants never share a key");
        assert_eq!(
            a.key(k),
            Tenants::new(&[cfg("a", "x")])
                .authenticate("a", b"x")
                .unwrap()
                .key(k)
        );
        assert_eq!(a.key(BlockKey::NONE), None);
    }

    #[test]
    fn empty_token_tenant() {
        let t = Tenants::new(&[cfg("default", "")]);
        assert!(!t.authenticated);
        assert!(t.authenticate("default", b"").is_some());
        assert!(t.authenticate("default", b"x").is_none());
    }
}
