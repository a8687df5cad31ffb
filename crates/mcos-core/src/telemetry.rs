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

/// The hash that spatial sampling (SHARDS, Waldspurger et al. FAST'15) is decided on: a key is
/// sampled at rate 2^-s when the low `s` bits of this hash are zero. The fast path samples at
/// its configured rate and the brain may sample further on more bits of the same hash, so its
/// samples nest inside the fast path's.
pub const fn sample_hash(key_tag: u64) -> u64 {
    key_tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20
}

/// Whether `key_tag` is in the spatial sample of rate 2^-`shift`.
pub const fn is_sampled(key_tag: u64, shift: u8) -> bool {
    let shift = if shift > 40 { 40 } else { shift };
    sample_hash(key_tag) & ((1u64 << shift) - 1) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_nest_and_have_the_asked_rate() {
        let mut counts = [0u32; 5];
        for i in 0..(1u64 << 16) {
            let tag = i.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ (i >> 7);
            for (s, c) in counts.iter_mut().enumerate() {
                if is_sampled(tag, s as u8) {
                    *c += 1;
                    if s > 0 {
                        assert!(is_sampled(tag, s as u8 - 1), "a finer sample nests");
                    }
                }
            }
        }
        assert_eq!(counts[0], 1 << 16);
        for (s, &c) in counts.iter().enumerate().skip(1) {
            let want = (1u32 << 16) >> s;
            assert!(c.abs_diff(want) < want / 10, "rate 2^-{s}: {c} of {want}");
        }
    }
}
