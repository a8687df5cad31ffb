//! Telemetry samples: what the fast path tells the brain, one fixed-size record per sampled event.
//!
//! The fast path writes samples into a bounded ring and never waits: when the ring is full the
//! sample is dropped and counted. The brain drains the ring in batches on its own thread.

/// What happened.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SampleKind {
    /// A lookup found the block resident.
    Hit = 0,
    /// A lookup missed.
    Miss = 1,
    /// A block was admitted into a tier.
    Admit = 2,
    /// A block was refused admission.
    Reject = 3,
    /// A block was evicted from a tier (demoted or dropped).
    Evict = 4,
    /// A move completed.
    MoveDone = 5,
}

/// One sampled event (32 bytes).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(C, align(32))]
pub struct TelemetrySample {
    /// Low 64 bits of the block key.
    pub key_tag: u64,
    /// Fast-path tick when it happened.
    pub tick: u64,
    /// Event kind.
    pub kind: SampleKind,
    /// Priority class of the block.
    pub class: u8,
    /// Tier involved (hit tier, admission tier, eviction source), 7 if none.
    pub tier: u8,
    /// Shard that produced the sample.
    pub shard: u8,
    /// Epoch of the policy table in force.
    pub epoch: u32,
    /// Event-specific value: reuse count estimate, bytes moved, or queue depth.
    pub value: u64,
}

const _: () = assert!(core::mem::size_of::<TelemetrySample>() == 32);
