//! One MCOS node: the fast path, the tiers and the engines assembled behind the Node API.
//!
//! ```no_run
//! use mcos_core::{BlockKey, Namespace};
//! use mcos_node::{GetOutcome, Node, NodeConfig};
//!
//! let dir = std::env::temp_dir().join("mcos-doc");
//! let node = Node::open(NodeConfig::dram_and_disk(16 << 10, 1024, 8192, &dir))?;
//! let ns = Namespace::for_model("llama-3-8b");
//! let keys = BlockKey::chain_all(&ns, &[1, 2, 3, 4], 2);
//! node.put(keys[0], &[7u8; 1024])?;
//! let mut out = Vec::new();
//! assert_eq!(node.get(keys[0], &mut out)?, GetOutcome::Hit(mcos_core::TierId(0)));
//! assert_eq!(node.longest_cached_prefix(&keys), 1);
//! node.close()?;
//! # Ok::<(), mcos_node::NodeError>(())
//! ```

#![warn(missing_docs)]

mod config;
mod error;
mod events;
mod node;
mod rebuild;

pub use config::{BrainReplacement, BrainSettings, DiskIo, NodeConfig, TierConfig};
pub use error::NodeError;
pub use events::{
    KV_EVENT_RING_DEPTH, KvEvent, KvEventKind, KvEventLog, KvSnapshot, REMOVAL_LOG_DEPTH,
};
pub use node::{Fetched, GetOutcome, LinkStat, Node, NodeStats, PutOutcome, TierUsage};
pub use rebuild::RebuildStats;
