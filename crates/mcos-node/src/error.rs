//! Errors of the node API. Each says what went wrong and what to do; none loses stored blocks.

use thiserror::Error;

/// Why a node call failed.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// A tier or engine failed (I/O, no space, allocation).
    #[error(transparent)]
    Tier(#[from] mcos_tiers::TierError),
    /// The key is the reserved empty key.
    #[error("block key 0 is reserved; derive keys with BlockKey::chain or BlockKey::from_trace_id")]
    ReservedKey,
    /// The payload is larger than the node's block size.
    #[error("payload of {len} bytes exceeds the node's block size of {max} bytes")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// Block size.
        max: usize,
    },
    /// The caller's buffer is shorter than the stored payload (`get_into`); nothing was
    /// read and the block stays stored.
    #[error(
        "the block holds {needed} payload bytes but the buffer has room for {len}: pass a buffer of at least the node's block_bytes"
    )]
    BufferTooSmall {
        /// Payload bytes stored.
        needed: usize,
        /// Length of the buffer given.
        len: usize,
    },
    /// The block is not resident (for pin, unpin, class changes).
    #[error("block {0} is not resident; pin and class intents apply to stored blocks")]
    NotResident(mcos_core::BlockKey),
    /// Unpin without a pin.
    #[error("block {0} is not pinned")]
    NotPinned(mcos_core::BlockKey),
    /// Too many nested pins.
    #[error("block {0} already has 255 pins")]
    TooManyPins(mcos_core::BlockKey),
    /// An engine did not finish a move in time.
    #[error(
        "an engine did not complete a move within {0:?}; the disk may be stalled (check dmesg and free space)"
    )]
    Stalled(std::time::Duration),
    /// The policy table was refused.
    #[error(transparent)]
    Policy(#[from] mcos_core::ContractError),
    /// A durable put or sync on a node without a persistent tier.
    #[error(
        "this node has no persistent tier: durable puts need a disk tier with `persist = true`"
    )]
    NotDurable,
    /// The install channel is busy (a shard has not yet seen the previous table).
    #[error("policy install deferred: {0}")]
    InstallBusy(mcos_core::InstallError),
    /// `put_batch_with_parents` with a parent list neither empty nor one per block.
    #[error("{parents} parent keys for {blocks} blocks: give one per block, or none")]
    ParentCount {
        /// Parent keys given.
        parents: usize,
        /// Blocks given.
        blocks: usize,
    },
}
