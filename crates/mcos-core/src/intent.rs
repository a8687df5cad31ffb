//! Intents: what the application knows and tells MCOS about its blocks.
//!
//! An intent is advice with a contract: a pin is honoured until its TTL or an unpin; a class
//! selects the policy-table entry that governs the block; expected reuse and sequence hints feed
//! admission and prefetch. The fast path receives intents as fixed-size events.

use crate::key::BlockKey;
use serde::{Deserialize, Serialize};

/// A priority class: index into the policy table (0 is the default class).
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct PriorityClass(pub u8);

impl PriorityClass {
    /// The class every block has unless told otherwise.
    pub const DEFAULT: PriorityClass = PriorityClass(0);
    /// Conventional class of a block that a queued request will read: the brain's tables
    /// evict it after the default class among the victim candidates (a finite, honest
    /// future).
    pub const QUEUED: PriorityClass = PriorityClass(1);
    /// Conventional class of a block whose session ended: the brain's tables evict it first
    /// and re-insert it at the LRU end when it is moved into the class.
    pub const ENDED: PriorityClass = PriorityClass(2);
    /// Conventional high-priority class (for example a tenant's shared prompt): never evicted
    /// while the table is in force, within its quota.
    pub const PRECIOUS: PriorityClass = PriorityClass(3);
}

/// One piece of advice about one block.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The block the advice is about.
    pub key: BlockKey,
    /// The advice.
    pub action: IntentAction,
}

/// The advice an intent carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntentAction {
    /// Never evict the block (from any tier it is in) until unpinned or `ttl_ticks` pass
    /// (0: until unpinned). Pins nest: each pin needs its own unpin.
    Pin {
        /// Ticks after which the pin lapses; 0 means no expiry.
        ttl_ticks: u32,
    },
    /// Undo one pin.
    Unpin,
    /// Govern the block by this class's policy entry from now on.
    SetClass(PriorityClass),
    /// The application expects this many more uses: counted into the admission sketch, so a
    /// block announced as reused is admitted on its first miss.
    ExpectReuse {
        /// Expected further uses (saturates at the sketch's counter width).
        uses: u8,
    },
    /// The block is at `position` in sequence `sequence`: the prefetch table follows sequences.
    Sequence {
        /// Sequence (request or conversation) id, hashed by the caller.
        sequence: u32,
        /// Block index within the sequence.
        position: u32,
    },
}
