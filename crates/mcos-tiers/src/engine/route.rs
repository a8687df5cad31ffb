//! Path choice for the GPU engine: which mover serves a host <-> HBM move.
//!
//! The installed policy table's [`GpuRoutes`] says it: by payload size (gather kernel up to
//! `gather_max_block_bytes`, copy engines above) and by link state (a path whose measured
//! throughput fell below `degraded_below_mb_per_s` hands its moves to the other path). The
//! engine measures each path's throughput per batch ([`LinkMeter`]); the node publishes every
//! newly installed table's routes through a [`RouteCell`], which the engine reads once per batch.
//! Everything here is plain CPU code, tested without a GPU.

use mcos_core::GpuRoutes;
use std::sync::atomic::{AtomicU64, Ordering};

/// The two GPU movement paths over the host link.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum GpuPath {
    /// One kernel launch gathers or scatters a whole batch of scattered blocks.
    Kernel,
    /// Batched copy-engine calls (`cuMemcpyBatchAsync`, else one async copy per block).
    CopyEngine,
}

impl GpuPath {
    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            GpuPath::Kernel => "gather_kernel",
            GpuPath::CopyEngine => "copy_engine",
        }
    }

    fn other(self) -> GpuPath {
        match self {
            GpuPath::Kernel => GpuPath::CopyEngine,
            GpuPath::CopyEngine => GpuPath::Kernel,
        }
    }

    fn index(self) -> usize {
        match self {
            GpuPath::Kernel => 0,
            GpuPath::CopyEngine => 1,
        }
    }
}

/// Every this many batches a degraded path is used anyway, so its throughput is measured again
/// and it can recover (a path that gets no traffic would stay degraded forever).
pub const ROUTE_PROBE_PERIOD: u64 = 64;

/// Measured throughput per path: an exponentially weighted moving average (weight 1/4 for the
/// newest batch) in MB/s, 0 until the first batch. Owned by the engine thread.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkMeter {
    mb_per_s: [u32; 2],
}

impl LinkMeter {
    /// Records one batch of `bytes` that took `ns` on `path` (ignored when either is 0).
    pub fn record(&mut self, path: GpuPath, bytes: u64, ns: u64) {
        if bytes == 0 || ns == 0 {
            return;
        }
        // bytes/ns is GB/s; * 1000 is MB/s. Saturates far above any link.
        let sample = u32::try_from(bytes.saturating_mul(1000) / ns).unwrap_or(u32::MAX);
        let slot = &mut self.mb_per_s[path.index()];
        *slot = if *slot == 0 {
            sample
        } else {
            ((u64::from(*slot) * 3 + u64::from(sample)) / 4) as u32
        };
    }

    /// The path's smoothed throughput in MB/s, `None` before its first batch.
    pub fn mb_per_s(&self, path: GpuPath) -> Option<u32> {
        Some(self.mb_per_s[path.index()]).filter(|&v| v > 0)
    }

    fn degraded(&self, path: GpuPath, below: u32) -> bool {
        below > 0 && self.mb_per_s(path).is_some_and(|v| v < below)
    }
}

/// The path for a move of `payload_len` bytes in batch number `batch_seq`, under `routes` and
/// the measured `link` state.
pub fn choose_path(
    payload_len: u32,
    routes: &GpuRoutes,
    link: &LinkMeter,
    batch_seq: u64,
) -> GpuPath {
    let by_size =
        if payload_len <= routes.gather_max_block_bytes && routes.gather_max_block_bytes > 0 {
            GpuPath::Kernel
        } else {
            GpuPath::CopyEngine
        };
    let below = routes.degraded_below_mb_per_s;
    let probe = batch_seq.is_multiple_of(ROUTE_PROBE_PERIOD);
    if !probe && link.degraded(by_size, below) && !link.degraded(by_size.other(), below) {
        by_size.other()
    } else {
        by_size
    }
}

/// The routes of the installed table, published by the node (writer: `install_policy`, release)
/// and read by the GPU engine once per batch (acquire). Packed in one word so a reader never
/// sees half of an update.
#[derive(Debug)]
pub struct RouteCell {
    word: AtomicU64,
}

impl RouteCell {
    /// A cell holding `routes`.
    pub fn new(routes: GpuRoutes) -> RouteCell {
        RouteCell {
            word: AtomicU64::new(pack(routes)),
        }
    }

    /// Publishes the routes of a newly installed table.
    pub fn publish(&self, routes: GpuRoutes) {
        self.word.store(pack(routes), Ordering::Release);
    }

    /// The routes in force.
    pub fn load(&self) -> GpuRoutes {
        let w = self.word.load(Ordering::Acquire);
        GpuRoutes {
            gather_max_block_bytes: w as u32,
            degraded_below_mb_per_s: (w >> 32) as u32,
        }
    }
}

fn pack(r: GpuRoutes) -> u64 {
    u64::from(r.gather_max_block_bytes) | u64::from(r.degraded_below_mb_per_s) << 32
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: GpuRoutes = GpuRoutes {
        gather_max_block_bytes: 64 << 10,
        degraded_below_mb_per_s: 10_000,
    };

    #[test]
    fn size_picks_the_path() {
        let link = LinkMeter::default();
        assert_eq!(choose_path(16 << 10, &ROUTES, &link, 1), GpuPath::Kernel);
        assert_eq!(choose_path(64 << 10, &ROUTES, &link, 1), GpuPath::Kernel);
        assert_eq!(
            choose_path((64 << 10) + 1, &ROUTES, &link, 1),
            GpuPath::CopyEngine
        );
        let ce_only = GpuRoutes {
            gather_max_block_bytes: 0,
            degraded_below_mb_per_s: 0,
        };
        assert_eq!(choose_path(0, &ce_only, &link, 1), GpuPath::CopyEngine);
        assert_eq!(
            choose_path(1, &GpuRoutes::BUILTIN, &link, 1),
            GpuPath::Kernel
        );
    }

    #[test]
    fn a_degraded_link_reroutes_until_the_probe_and_recovers() {
        let mut link = LinkMeter::default();
        // 1 MiB in 1 ms: about 1 GB/s, far below 10 GB/s.
        link.record(GpuPath::Kernel, 1 << 20, 1_000_000);
        assert_eq!(link.mb_per_s(GpuPath::Kernel), Some(1048));
        assert_eq!(choose_path(4096, &ROUTES, &link, 1), GpuPath::CopyEngine);
        // The probe batch still uses the preferred path, so it is measured again.
        assert_eq!(choose_path(4096, &ROUTES, &link, 0), GpuPath::Kernel);
        assert_eq!(
            choose_path(4096, &ROUTES, &link, ROUTE_PROBE_PERIOD),
            GpuPath::Kernel
        );
        // Both degraded: stay on the size choice.
        link.record(GpuPath::CopyEngine, 1 << 20, 1_000_000);
        assert_eq!(choose_path(4096, &ROUTES, &link, 1), GpuPath::Kernel);
        // Recovery: a few fast batches lift the average over the threshold.
        for _ in 0..8 {
            link.record(GpuPath::Kernel, 50 << 20, 1_000_000);
        }
        assert!(link.mb_per_s(GpuPath::Kernel).unwrap() > 10_000);
        assert_eq!(choose_path(4096, &ROUTES, &link, 1), GpuPath::Kernel);
        // Threshold 0 never reroutes.
        let mut slow = LinkMeter::default();
        slow.record(GpuPath::Kernel, 1, 1_000_000_000);
        let never = GpuRoutes {
            degraded_below_mb_per_s: 0,
            ..ROUTES
        };
        assert_eq!(choose_path(4096, &never, &slow, 1), GpuPath::Kernel);
    }

    #[test]
    fn meter_ignores_empty_samples_and_smooths() {
        let mut m = LinkMeter::default();
        m.record(GpuPath::CopyEngine, 0, 5);
        m.record(GpuPath::CopyEngine, 5, 0);
        assert_eq!(m.mb_per_s(GpuPath::CopyEngine), None);
        m.record(GpuPath::CopyEngine, 4000, 1000); // 4000 MB/s
        m.record(GpuPath::CopyEngine, 8000, 1000); // 8000 MB/s
        assert_eq!(m.mb_per_s(GpuPath::CopyEngine), Some(5000));
        assert_eq!(m.mb_per_s(GpuPath::Kernel), None);
    }

    #[test]
    fn cell_publishes_whole_routes() {
        let cell = RouteCell::new(GpuRoutes::BUILTIN);
        assert_eq!(cell.load(), GpuRoutes::BUILTIN);
        cell.publish(ROUTES);
        assert_eq!(cell.load(), ROUTES);
        let max = GpuRoutes {
            gather_max_block_bytes: u32::MAX,
            degraded_below_mb_per_s: u32::MAX,
        };
        cell.publish(max);
        assert_eq!(cell.load(), max);
    }
}
