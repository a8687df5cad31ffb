//! Remote hits: fetch a block from another member of the pool, or recompute it.
//!
//! A daemon that misses a block locally can ask the block's owner over the peer link. That is
//! one more link for [`crate::placement`]'s comparison: a remote hit is worth fetching only when
//! `bytes / bandwidth + latency` over the link beats recomputing the block's tokens. The link's
//! figures are measured from the daemon's own peer calls, as the engines measure the local
//! links: the round trip of calls that carry no payload (lookups, all-miss gets) is the
//! latency (exponential mean), and the payload-carrying calls, less that latency, give the
//! byte-weighted bandwidth of [`LinkModel`] (trusted after
//! [`crate::placement::MEASURE_TRUST_BYTES`]). Before
//! anything is measured a link is taken as free, so an unmeasured peer never turns a hit into
//! a recompute (the placement model's rule for unknown links).
//!
//! A block read remotely again and again is cheaper kept locally: after `copy_after_reads`
//! remote reads the daemon offers it to its own node as an ordinary insert (the fast path's
//! admission decides), a cache entry, never an owner.

use crate::placement::{CostModel, LinkModel};

/// Weight of a new latency sample in the exponential mean.
const LATENCY_WEIGHT: f64 = 0.2;
/// Share of a payload call's time always credited to the transfer (a latency estimate above
/// the call's own time is noise, not a free transfer).
const MIN_TRANSFER_SHARE: f64 = 0.1;

/// One peer link as measured from this daemon's calls.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct PeerLink {
    /// Transfer figures (configured: infinite, so only measurements count).
    transfer: LinkModel,
    /// Exponential mean of the round trip of payload-less calls, seconds (0: none yet).
    latency_s: f64,
    /// Calls measured.
    pub calls: u64,
    /// Payload bytes measured.
    pub bytes: u64,
}

impl Default for PeerLink {
    fn default() -> PeerLink {
        PeerLink {
            transfer: LinkModel::new(f64::INFINITY, 0.0),
            latency_s: 0.0,
            calls: 0,
            bytes: 0,
        }
    }
}

impl PeerLink {
    /// A call that moved `payload_bytes` (0: a lookup or an all-miss get) in `seconds`.
    pub fn observe_call(&mut self, payload_bytes: u64, seconds: f64) {
        if !seconds.is_finite() || seconds <= 0.0 {
            return;
        }
        self.calls += 1;
        if payload_bytes == 0 {
            self.latency_s = if self.latency_s == 0.0 {
                seconds
            } else {
                self.latency_s * (1.0 - LATENCY_WEIGHT) + seconds * LATENCY_WEIGHT
            };
            return;
        }
        let transfer = (seconds - self.latency_s).max(seconds * MIN_TRANSFER_SHARE);
        self.transfer.observe(payload_bytes, transfer);
        self.bytes = self.bytes.saturating_add(payload_bytes);
    }

    /// Round trip of a call, seconds (0 before any payload-less call).
    pub fn latency_s(&self) -> f64 {
        self.latency_s
    }

    /// Measured bandwidth, bytes per second, once any payload was measured.
    pub fn measured_bytes_per_s(&self) -> Option<f64> {
        self.transfer.measured_bytes_per_s()
    }

    /// Whether the measured bandwidth is in use (at least
    /// [`crate::placement::MEASURE_TRUST_BYTES`] seen).
    pub fn trusted(&self) -> bool {
        self.transfer.trusted()
    }

    /// Seconds to fetch one block of `bytes` over this link (transfer, once trusted, plus
    /// the round trip).
    pub fn fetch_seconds(&self, bytes: u64) -> f64 {
        bytes as f64 / self.transfer.bytes_per_s() + self.latency_s
    }
}

/// Fetch a remote hit, or report a miss so the engine recomputes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RemoteChoice {
    /// The remote fetch beats recompute (or nothing says otherwise).
    Fetch,
    /// Recompute is faster than the fetch over this link.
    Recompute,
}

impl RemoteChoice {
    /// Lower-case name, for stats.
    pub fn name(self) -> &'static str {
        match self {
            RemoteChoice::Fetch => "fetch",
            RemoteChoice::Recompute => "recompute",
        }
    }
}

/// The price of a remote hit over one link.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct RemotePrice {
    /// Seconds to fetch one block over the link.
    pub fetch_s: f64,
    /// Seconds to recompute one block (None: no cost model configured).
    pub recompute_s: Option<f64>,
    /// The decision.
    pub choice: RemoteChoice,
}

/// Prices remote hits and decides local copies.
#[derive(Copy, Clone, Debug)]
pub struct RemotePricing {
    /// The model's recompute figures (None: every remote hit is fetched).
    pub cost: Option<CostModel>,
    /// Remote reads of one block after which a local copy is offered (0: never).
    pub copy_after_reads: u32,
}

impl RemotePricing {
    /// The price of fetching one block of `block_bytes` over `link`.
    pub fn price(&self, link: &PeerLink, block_bytes: u64) -> RemotePrice {
        let fetch_s = link.fetch_seconds(block_bytes);
        let recompute_s = self
            .cost
            .map(|c| f64::from(c.block_tokens) / c.prefill_tokens_per_s.max(1e-9));
        let choice = match recompute_s {
            Some(r) if fetch_s >= r => RemoteChoice::Recompute,
            _ => RemoteChoice::Fetch,
        };
        RemotePrice {
            fetch_s,
            recompute_s,
            choice,
        }
    }

    /// Whether a block fetched remotely for the `reads`-th time is worth a local copy: every
    /// further read then costs a local hit instead of the link's round trip.
    pub fn keep_local_copy(&self, reads: u32) -> bool {
        self.copy_after_reads > 0 && reads >= self.copy_after_reads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::MEASURE_TRUST_BYTES;

    fn llama_cost() -> CostModel {
        // Llama-3-8B blocks of 512 tokens at 20k tokens/s: 25.6 ms to recompute.
        CostModel {
            prefill_tokens_per_s: 20_000.0,
            kv_bytes_per_token: 128 << 10,
            block_tokens: 512,
        }
    }

    #[test]
    fn an_unmeasured_link_is_free_and_fetched() {
        let p = RemotePricing {
            cost: Some(llama_cost()),
            copy_after_reads: 2,
        };
        let price = p.price(&PeerLink::default(), 64 << 20);
        assert_eq!(price.fetch_s, 0.0);
        assert_eq!(price.choice, RemoteChoice::Fetch);
    }

    #[test]
    fn measured_latency_and_bandwidth_price_the_fetch() {
        let mut l = PeerLink::default();
        // 100 us round trips, then 1 MiB payloads at 1 GB/s plus the round trip.
        for _ in 0..20 {
            l.observe_call(0, 100e-6);
        }
        assert!((l.latency_s() - 100e-6).abs() < 1e-9);
        for _ in 0..16 {
            l.observe_call(1 << 20, 100e-6 + (1 << 20) as f64 / 1e9);
        }
        assert!(l.trusted(), "16 MiB measured");
        let bw = l.measured_bytes_per_s().unwrap();
        assert!((bw - 1e9).abs() / 1e9 < 1e-6, "{bw}");
        // A 64 MiB block: 67 ms over this link, recompute 25.6 ms: recompute.
        let p = RemotePricing {
            cost: Some(llama_cost()),
            copy_after_reads: 2,
        };
        let price = p.price(&l, 64 << 20);
        assert!((price.fetch_s - (100e-6 + (64u64 << 20) as f64 / 1e9)).abs() < 1e-6);
        assert_eq!(price.choice, RemoteChoice::Recompute);
        // A 4 MiB block: 4.3 ms: fetch.
        assert_eq!(p.price(&l, 4 << 20).choice, RemoteChoice::Fetch);
        // Without a cost model nothing is recomputed.
        let no_model = RemotePricing {
            cost: None,
            copy_after_reads: 2,
        };
        assert_eq!(no_model.price(&l, 64 << 20).choice, RemoteChoice::Fetch);
    }

    #[test]
    fn bad_samples_are_ignored_and_latency_never_swallows_a_transfer() {
        let mut l = PeerLink::default();
        l.observe_call(4096, 0.0);
        l.observe_call(4096, f64::NAN);
        assert_eq!(l.calls, 0);
        l.observe_call(0, 1e-3);
        // A payload call faster than the latency estimate still counts as a transfer.
        l.observe_call(MEASURE_TRUST_BYTES, 0.5e-3);
        assert!(l.trusted());
        assert!(l.measured_bytes_per_s().unwrap().is_finite());
    }

    #[test]
    fn copies_after_enough_reads_only() {
        let p = RemotePricing {
            cost: None,
            copy_after_reads: 3,
        };
        assert!(!p.keep_local_copy(2));
        assert!(p.keep_local_copy(3));
        let never = RemotePricing {
            cost: None,
            copy_after_reads: 0,
        };
        assert!(!never.keep_local_copy(100));
    }
}
