//! Real replay: every block access of a trace goes through a running `mcos_node::Node`, with
//! real bytes in real tiers (a DRAM arena and a preallocated O_DIRECT disk file).
//!
//! Each block's payload is derived from its key, so every hit is checked byte for byte against
//! what was stored: a replay that returned a wrong byte fails, it does not report a hit. The
//! accounting is the simulator's (each block access counts on its own; a miss is stored), so
//! with a single DRAM tier and no free-frame watermark the real node's hit ratio equals the
//! simulated `lru` exactly (tested).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Instant;

use mcos_core::{BlockKey, Namespace};
use mcos_node::{GetOutcome, Node, NodeError, PutOutcome};
use serde::Serialize;
use thiserror::Error;

use crate::trace::{Request, TraceError};

/// Why a real replay stopped.
#[derive(Debug, Error)]
pub enum RealError {
    /// The trace could not be read.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The node failed (I/O, configuration).
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The caller stopped the replay (`progress` returned `Break`).
    #[error("the real replay was stopped after {requests} requests")]
    Interrupted {
        /// Requests replayed before the stop.
        requests: u64,
    },
    /// A hit returned bytes other than those stored: a data-integrity bug, never expected.
    #[error("block {key} (trace id {id}) read back different bytes than were stored")]
    WrongBytes {
        /// Block key.
        key: BlockKey,
        /// Trace id.
        id: u64,
    },
}

/// Outcome of a real replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RealResult {
    /// Requests replayed.
    pub requests: u64,
    /// Block accesses replayed.
    pub block_accesses: u64,
    /// Accesses served from some tier (bytes verified).
    pub block_hits: u64,
    /// `block_hits / block_accesses`.
    pub block_hit_ratio: f64,
    /// Tokens in hit blocks over prompt tokens.
    pub token_hit_ratio: f64,
    /// Hits by tier kind name (`dram`, `disk`).
    pub hits_per_tier: BTreeMap<String, u64>,
    /// Bytes moved: `stored` (puts), `read` (gets), and tier to tier (`dram->disk`, ...).
    pub bytes_moved: BTreeMap<String, u64>,
    /// What the engines measured per route that moved bytes (`disk->dram`, ...).
    pub links: BTreeMap<String, LinkMeasured>,
    /// Blocks evicted for good.
    pub evictions: u64,
    /// Blocks the policy did not admit.
    pub admissions_rejected: u64,
    /// Blocks found corrupt and dropped.
    pub corrupt_blocks: u64,
    /// Wall-clock seconds of the replay.
    pub wall_seconds: f64,
    /// Node operations (gets and puts) per second.
    pub ops_per_second: f64,
}

/// One route's measured transfer figures over a real replay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinkMeasured {
    /// Bytes of completed moves (header + payload).
    pub bytes: u64,
    /// Seconds the engine spent executing the batches that carried them.
    pub seconds: f64,
    /// `bytes / seconds`.
    pub measured_bytes_per_s: f64,
    /// The configured bandwidth of the link (the brain's prior).
    pub configured_bytes_per_s: u64,
}

/// Fills `out` with the payload a block's key determines (xorshift64* seeded by the key).
pub fn block_payload(key: BlockKey, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(len);
    let mut x = (key.0 as u64) ^ ((key.0 >> 64) as u64) | 1;
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let word = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&word[..take]);
    }
}

/// Replays `requests` through `node`, calling `progress(requests_done)` after each request;
/// `ControlFlow::Break` stops the replay there ([`RealError::Interrupted`]; a signal handler
/// uses it to stop cleanly).
pub fn replay_real(
    requests: impl IntoIterator<Item = Result<Request, TraceError>>,
    node: &Node,
    block_tokens: u32,
    mut progress: impl FnMut(u64) -> ControlFlow<()>,
) -> Result<RealResult, RealError> {
    let root = Namespace::for_model("trace").root();
    let block_bytes = node.config().block_bytes as usize;
    let start = Instant::now();
    let (mut requests_done, mut accesses, mut hits) = (0u64, 0u64, 0u64);
    let (mut prompt_tokens, mut hit_tokens) = (0u64, 0u64);
    let (mut stored_bytes, mut read_bytes, mut ops) = (0u64, 0u64, 0u64);
    let kinds: Vec<String> = node
        .config()
        .tiers
        .iter()
        .map(|t| t.kind.name().to_owned())
        .collect();
    let mut hits_per_tier: BTreeMap<String, u64> = kinds.iter().map(|k| (k.clone(), 0)).collect();
    let mut out = Vec::with_capacity(block_bytes);
    let mut expect = Vec::with_capacity(block_bytes);
    for request in requests {
        let request = request?;
        // Sequence hints let prefetch-enabled tables stage a request's next blocks.
        let sequence = requests_done as u32;
        for (position, &id) in request.hash_ids.iter().enumerate() {
            let key = BlockKey::from_trace_id_under(root, id);
            let tokens = u64::from(request.tokens_in_block(position, block_tokens));
            accesses += 1;
            prompt_tokens += tokens;
            ops += 1;
            match node.get_hinted(key, sequence, position as u32, &mut out)? {
                GetOutcome::Hit(tier) => {
                    block_payload(key, block_bytes, &mut expect);
                    if out != expect {
                        return Err(RealError::WrongBytes { key, id });
                    }
                    hits += 1;
                    hit_tokens += tokens;
                    read_bytes += out.len() as u64;
                    if let Some(k) = kinds.get(tier.index()) {
                        *hits_per_tier.entry(k.clone()).or_default() += 1;
                    }
                }
                GetOutcome::Miss => {
                    block_payload(key, block_bytes, &mut expect);
                    ops += 1;
                    if let PutOutcome::Stored(_) = node.put(key, &expect)? {
                        stored_bytes += expect.len() as u64;
                    }
                }
            }
        }
        requests_done += 1;
        if progress(requests_done).is_break() {
            return Err(RealError::Interrupted {
                requests: requests_done,
            });
        }
    }
    node.quiesce()?;
    let wall_seconds = start.elapsed().as_secs_f64();
    let stats = node.stats();
    let mut bytes_moved = BTreeMap::new();
    bytes_moved.insert("stored".to_owned(), stored_bytes);
    bytes_moved.insert("read".to_owned(), read_bytes);
    for (s, src) in kinds.iter().enumerate() {
        for (d, dst) in kinds.iter().enumerate() {
            if s != d {
                bytes_moved.insert(format!("{src}->{dst}"), stats.counters.bytes_moved[s][d]);
            }
        }
    }
    let links = stats
        .links
        .iter()
        .filter_map(|l| {
            let measured_bytes_per_s = l.bytes_per_s()?;
            let name = |t: mcos_core::TierId| kinds.get(t.index()).map_or("?", |k| k.as_str());
            Some((
                format!("{}->{}", name(l.from), name(l.to)),
                LinkMeasured {
                    bytes: l.bytes,
                    seconds: l.seconds,
                    measured_bytes_per_s,
                    configured_bytes_per_s: l.configured_bytes_per_s,
                },
            ))
        })
        .collect();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(RealResult {
        requests: requests_done,
        block_accesses: accesses,
        block_hits: hits,
        block_hit_ratio: ratio(hits, accesses),
        token_hit_ratio: ratio(hit_tokens, prompt_tokens),
        hits_per_tier,
        bytes_moved,
        links,
        evictions: stats.counters.evictions,
        admissions_rejected: stats.counters.rejected,
        corrupt_blocks: stats.counters.corrupt_blocks,
        wall_seconds,
        ops_per_second: ops as f64 / wall_seconds.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::{GeneratorConfig, generate};
    use crate::simulate::{Capacity, Simulator};
    use mcos_node::NodeConfig;

    #[test]
    fn payload_is_deterministic_and_key_specific() {
        let ns = Namespace::for_model("t");
        let (a, b) = (
            BlockKey::from_trace_id(&ns, 1),
            BlockKey::from_trace_id(&ns, 2),
        );
        let (mut x, mut y, mut z) = (Vec::new(), Vec::new(), Vec::new());
        block_payload(a, 100, &mut x);
        block_payload(a, 100, &mut y);
        block_payload(b, 100, &mut z);
        assert_eq!(x.len(), 100);
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    /// One DRAM tier, no watermark: the real node and the simulated fast-path LRU agree to the
    /// hit. With a disk tier below, the node hits at least as often (demoted blocks still hit).
    #[test]
    fn real_single_tier_equals_simulated_lru() {
        let g = GeneratorConfig {
            requests: 400,
            ..GeneratorConfig::default()
        };
        let requests = generate(&g).unwrap();
        let sim = Simulator::from_requests(requests.clone(), g.block_tokens).unwrap();
        let cap = Capacity::Fraction(0.05)
            .blocks(sim.stats().unique_blocks)
            .unwrap() as u32;
        let simulated = sim.run("lru", Capacity::Blocks(u64::from(cap))).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let mut cfg = NodeConfig::dram_and_disk(1024, cap, cap * 4, dir.path());
        cfg.tiers.truncate(1);
        cfg.free_watermark = 0.0;
        let node = Node::open(cfg).unwrap();
        let real = replay_real(
            requests.iter().cloned().map(Ok),
            &node,
            g.block_tokens,
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
        node.close().unwrap();
        assert_eq!(real.block_accesses, simulated.block_accesses);
        assert_eq!(real.block_hits, simulated.block_hits);
        assert!(real.block_hits > 0);

        let cfg = NodeConfig::dram_and_disk(1024, cap, cap * 4, dir.path());
        let node = Node::open(cfg).unwrap();
        let two = replay_real(
            requests.iter().cloned().map(Ok),
            &node,
            g.block_tokens,
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
        node.close().unwrap();
        // A stop asked for by `progress` ends the replay there, and the node still closes.
        let node = Node::open(NodeConfig::dram_and_disk(1024, cap, cap * 4, dir.path())).unwrap();
        let stopped = replay_real(
            requests.iter().cloned().map(Ok),
            &node,
            g.block_tokens,
            |n| {
                if n == 7 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert!(matches!(
            stopped,
            Err(RealError::Interrupted { requests: 7 })
        ));
        node.close().unwrap();
        assert!(two.block_hits > real.block_hits, "{two:?}");
        assert!(two.hits_per_tier["disk"] > 0);
        assert!(two.bytes_moved["dram->disk"] > 0);
        let demoted = two.links["dram->disk"];
        assert_eq!(demoted.bytes, two.bytes_moved["dram->disk"]);
        assert!(demoted.seconds > 0.0 && demoted.measured_bytes_per_s > 0.0);
        assert_eq!(two.corrupt_blocks, 0);
    }
}
