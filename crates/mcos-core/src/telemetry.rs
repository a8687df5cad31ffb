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

/// Bytes moved and time spent per route (source tier, destination tier), measured by the
/// engines per executed batch and read by the brain and by node statistics.
///
/// Writers: the engine threads, once per batch, for the routes the batch moved bytes on
/// (`Relaxed` `fetch_add`: each counter is a monotonic total that orders no other memory).
/// Readers: the brain thread and `Node::stats`, which take differences between two reads. A
/// reader may see a batch's bytes before its nanoseconds (or the reverse); the skew is one
/// batch and vanishes at the next read.
#[derive(Debug, Default)]
pub struct LinkMeters {
    bytes: [[core::sync::atomic::AtomicU64; crate::limits::MAX_TIERS]; crate::limits::MAX_TIERS],
    nanos: [[core::sync::atomic::AtomicU64; crate::limits::MAX_TIERS]; crate::limits::MAX_TIERS],
}

/// Totals of one route at one moment.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkTotals {
    /// Bytes of completed moves (header + payload).
    pub bytes: u64,
    /// Nanoseconds the engine spent executing the batches that carried them.
    pub nanos: u64,
}

impl LinkTotals {
    /// Bytes per second over these totals (`None` with no time measured).
    pub fn bytes_per_s(&self) -> Option<f64> {
        (self.nanos > 0 && self.bytes > 0).then(|| self.bytes as f64 * 1e9 / self.nanos as f64)
    }
}

impl LinkMeters {
    /// Adds one batch's `bytes` and `nanos` on the route `src -> dst` (ignored for tiers past
    /// `MAX_TIERS`).
    pub fn record(&self, src: u8, dst: u8, bytes: u64, nanos: u64) {
        use core::sync::atomic::Ordering::Relaxed;
        let (s, d) = (usize::from(src), usize::from(dst));
        if s < crate::limits::MAX_TIERS && d < crate::limits::MAX_TIERS {
            self.bytes[s][d].fetch_add(bytes, Relaxed);
            self.nanos[s][d].fetch_add(nanos, Relaxed);
        }
    }

    /// Totals of the route `src -> dst` so far.
    pub fn totals(&self, src: usize, dst: usize) -> LinkTotals {
        use core::sync::atomic::Ordering::Relaxed;
        if src >= crate::limits::MAX_TIERS || dst >= crate::limits::MAX_TIERS {
            return LinkTotals::default();
        }
        LinkTotals {
            bytes: self.bytes[src][dst].load(Relaxed),
            nanos: self.nanos[src][dst].load(Relaxed),
        }
    }
}

#[cfg(test)]
mod link_tests {
    use super::*;

    #[test]
    fn link_meters_add_per_route() {
        let m = LinkMeters::default();
        assert_eq!(m.totals(1, 0), LinkTotals::default());
        assert_eq!(m.totals(1, 0).bytes_per_s(), None);
        m.record(1, 0, 1000, 500);
        m.record(1, 0, 1000, 500);
        m.record(0, 1, 7, 1);
        m.record(9, 0, 1, 1); // out of range: ignored
        assert_eq!(
            m.totals(1, 0),
            LinkTotals {
                bytes: 2000,
                nanos: 1000
            }
        );
        assert_eq!(m.totals(1, 0).bytes_per_s(), Some(2e9));
        assert_eq!(m.totals(0, 1).bytes, 7);
        assert_eq!(m.totals(9, 0), LinkTotals::default());
    }
}
