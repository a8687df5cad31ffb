//! Block identity: 128-bit keys chained over the token prefix and namespaced.
//!
//! A KV block's bytes depend on every token before it, so its key hashes its parent's key with
//! its own tokens (vLLM's and Dynamo's chaining). The root of every chain is the namespace
//! (model, layout, shard, tenant salt), so two tenants or two models never share a block by
//! accident. Hashing is xxh3-128 with fixed seeds: keys are stable across processes, nodes and
//! versions, and may be persisted (they are, in every block header).

use serde::{Deserialize, Serialize};
use std::fmt;
use xxhash_rust::xxh3::xxh3_128_with_seed;

/// Seed of the namespace hash. Changing it changes every key: never do.
const NAMESPACE_SEED: u64 = 0x4d43_4f53_6e73_0001; // "MCOSns" v1
/// Seed of the chain hash.
const CHAIN_SEED: u64 = 0x4d43_4f53_6b65_0001; // "MCOSke" v1
/// Seed for keys derived from external trace ids.
const TRACE_SEED: u64 = 0x4d43_4f53_7472_0001; // "MCOStr" v1
/// Seed of the per-tenant salting a shared node applies to its clients' keys.
const TENANT_SEED: u64 = 0x4d43_4f53_746e_0001; // "MCOStn" v1
/// Seed of the tenant-name hash that gives a tenant its salt.
const TENANT_NAME_SEED: u64 = 0x4d43_4f53_746e_6d31; // "MCOStnm1"

/// The salt of tenant `name`: a daemon stores a client key `k` of that tenant as
/// `k.salted(tenant_salt(name))`, the key its KV events and snapshots name. Derived from the
/// name only, so it is the same across restarts and daemons.
pub fn tenant_salt(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), TENANT_NAME_SEED)
}

/// Identity of one block of AI state. Zero is reserved as "no key".
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlockKey(pub u128);

impl BlockKey {
    /// The reserved empty key (never produced by hashing in practice; rejected by the node).
    pub const NONE: BlockKey = BlockKey(0);

    /// Key of the block holding `tokens`, whose prefix is the block `parent` (or the namespace
    /// root for the first block of a sequence).
    pub fn chain(namespace: &Namespace, parent: Option<BlockKey>, tokens: &[u32]) -> BlockKey {
        let parent = parent.unwrap_or_else(|| namespace.root());
        let mut buf = Vec::with_capacity(16 + tokens.len() * 4);
        buf.extend_from_slice(&parent.0.to_le_bytes());
        for t in tokens {
            buf.extend_from_slice(&t.to_le_bytes());
        }
        BlockKey(nonzero(xxh3_128_with_seed(&buf, CHAIN_SEED)))
    }

    /// Keys for a whole token sequence cut into blocks of `block_tokens` (a trailing partial
    /// block gets a key too: the caller decides whether partial blocks are cached).
    pub fn chain_all(namespace: &Namespace, tokens: &[u32], block_tokens: usize) -> Vec<BlockKey> {
        let mut parent = None;
        tokens
            .chunks(block_tokens.max(1))
            .map(|chunk| {
                let key = BlockKey::chain(namespace, parent, chunk);
                parent = Some(key);
                key
            })
            .collect()
    }

    /// Key for a block named by an external trace id that already stands for its whole prefix
    /// (Mooncake's `hash_ids`).
    pub fn from_trace_id(namespace: &Namespace, id: u64) -> BlockKey {
        BlockKey::from_trace_id_under(namespace.root(), id)
    }

    /// `from_trace_id` with the namespace root computed once by the caller (no allocation).
    pub fn from_trace_id_under(root: BlockKey, id: u64) -> BlockKey {
        let mut buf = [0u8; 24];
        buf[..16].copy_from_slice(&root.0.to_le_bytes());
        buf[16..].copy_from_slice(&id.to_le_bytes());
        BlockKey(nonzero(xxh3_128_with_seed(&buf, TRACE_SEED)))
    }

    /// The key as tenant `salt` sees it in a shared node: a daemon stores every client key
    /// under its tenant's salted key, so no tenant can name (read, detect, pin) another's
    /// blocks. Different salts give unrelated keys; the same salt always gives the same key.
    pub fn salted(self, salt: u64) -> BlockKey {
        let mut buf = [0u8; 24];
        buf[..16].copy_from_slice(&self.0.to_le_bytes());
        buf[16..].copy_from_slice(&salt.to_le_bytes());
        BlockKey(nonzero(xxh3_128_with_seed(&buf, TENANT_SEED)))
    }

    /// The low 64 bits: the directory's tag and the descriptor's verification field. Never 0
    /// for a key made by this module.
    pub fn tag(self) -> u64 {
        self.0 as u64
    }

    /// The high 64 bits: used to pick the directory bucket and the shard.
    pub fn hash_hi(self) -> u64 {
        (self.0 >> 64) as u64
    }

    /// Shard that owns this key among `shards` shards.
    pub fn shard(self, shards: usize) -> usize {
        // Multiply-shift maps the hash uniformly onto 0..shards without a division.
        ((u128::from(self.hash_hi()) * shards as u128) >> 64) as usize
    }
}

/// Keys never have zero low 64 bits: the directory and descriptors use 0 as "no block".
fn nonzero(h: u128) -> u128 {
    if h as u64 == 0 { h | 1 } else { h }
}

impl fmt::Debug for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockKey({:032x})", self.0)
    }
}

impl fmt::Display for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Where a chain of keys lives: blocks of different models, layouts, tensor-parallel shards or
/// tenants never share keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Namespace {
    /// Model name, e.g. "llama-3-8b".
    pub model: String,
    /// Memory layout of a block, e.g. "bf16/layer-major/16tok".
    pub layout: String,
    /// Tensor-parallel shard (rank) the block belongs to.
    pub shard: u32,
    /// Tenant salt (vLLM's `cache_salt`): isolates tenants that must not share cached prefixes.
    pub tenant_salt: u64,
}

impl Namespace {
    /// A namespace for `model` with default layout, shard 0 and no tenant salt.
    pub fn for_model(model: &str) -> Namespace {
        Namespace {
            model: model.to_string(),
            layout: "default".to_string(),
            shard: 0,
            tenant_salt: 0,
        }
    }

    /// The chain root: a key that stands for "empty prefix in this namespace".
    pub fn root(&self) -> BlockKey {
        let mut buf = Vec::with_capacity(self.model.len() + self.layout.len() + 14);
        buf.extend_from_slice(self.model.as_bytes());
        buf.push(0);
        buf.extend_from_slice(self.layout.as_bytes());
        buf.push(0);
        buf.extend_from_slice(&self.shard.to_le_bytes());
        buf.extend_from_slice(&self.tenant_salt.to_le_bytes());
        BlockKey(nonzero(xxh3_128_with_seed(&buf, NAMESPACE_SEED)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_salts_are_pinned() {
        // Daemons of every release salt keys with these: a change would orphan every stored
        // block and every router's index.
        assert_eq!(tenant_salt("default"), 3_042_895_591_867_624_798);
        assert_ne!(tenant_salt("a"), tenant_salt("b"));
    }

    #[test]
    fn chaining_depends_on_prefix_tokens_and_namespace() {
        let ns = Namespace::for_model("llama-3-8b");
        let a = BlockKey::chain_all(&ns, &[1, 2, 3, 4, 5, 6], 2);
        let b = BlockKey::chain_all(&ns, &[1, 2, 3, 4, 9, 9], 2);
        assert_eq!(a.len(), 3);
        assert_eq!(a[..2], b[..2], "equal prefixes give equal keys");
        assert_ne!(a[2], b[2]);
        // Same tokens after a different prefix: different key.
        let c = BlockKey::chain_all(&ns, &[7, 7, 3, 4], 2);
        assert_ne!(a[1], c[1]);
        let mut salted = ns.clone();
        salted.tenant_salt = 42;
        assert_ne!(BlockKey::chain_all(&salted, &[1, 2], 2)[0], a[0]);
        let mut other_shard = ns.clone();
        other_shard.shard = 1;
        assert_ne!(other_shard.root(), ns.root());
    }

    #[test]
    fn keys_are_stable_across_versions() {
        // Keys are persisted in block headers: this value must never change.
        let ns = Namespace::for_model("m");
        let k = BlockKey::chain(&ns, None, &[1, 2, 3]);
        assert_eq!(k, BlockKey::chain(&ns, None, &[1, 2, 3]));
        assert_ne!(k, BlockKey::NONE);
        let t = BlockKey::from_trace_id(&ns, 7);
        assert_ne!(t, BlockKey::from_trace_id(&ns, 8));
    }

    #[test]
    fn shard_is_in_range_and_spread() {
        let ns = Namespace::for_model("m");
        let mut counts = [0usize; 4];
        for id in 0..4000 {
            let s = BlockKey::from_trace_id(&ns, id).shard(4);
            counts[s] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "uneven shard spread: {counts:?}");
        }
    }
}
