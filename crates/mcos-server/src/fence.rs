//! Fencing: a pool member whose etcd lease may be gone (renewals failing for a whole TTL, as
//! in a network partition) is no member for its peers and pool clients any more: every key's
//! owners are computed without it. Until it registers again it serves no pooled key: gets
//! miss, exists and prefix find nothing, puts are refused (`rejected`, reason 5). Blocks are
//! immutable and checksummed, so serving them would never give wrong bytes; fencing keeps a
//! node outside the membership from answering for keys the pool has given to others (its
//! capacity accounting, and any future mutable namespace). The daemon logs each change and
//! exports `mcos_fenced` and `mcos_fenced_blocks_total`.

use crate::Shared;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tracing::{info, warn};

/// Fencing state (written by the acceptor and session threads, read by the renderer).
#[derive(Default)]
pub(crate) struct Fence {
    fenced: AtomicBool,
    /// Blocks missed or refused because the member was fenced.
    pub blocks: AtomicU64,
    /// Times the member became fenced.
    episodes: AtomicU64,
}

/// Whether the daemon is fenced now (a pool member whose lease may be gone); logs a change.
pub(crate) fn check(sh: &Shared) -> bool {
    let Some(p) = sh.cluster.get() else {
        return false;
    };
    let lost = p.lease_lost();
    let f = &sh.fence;
    if f.fenced.load(Ordering::Relaxed) != lost && f.fenced.swap(lost, Ordering::AcqRel) != lost {
        if lost {
            f.episodes.fetch_add(1, Ordering::Relaxed);
            warn!(
                node = p.node_id().unwrap_or(""),
                last_error = p.last_error().unwrap_or_default(),
                "fenced: the etcd lease was not renewed for a whole TTL, so this member is out \
                 of the pool; serving no pooled key (gets miss, puts refused) until it registers again"
            );
        } else {
            info!(
                node = p.node_id().unwrap_or(""),
                "unfenced: registered in etcd again; serving pooled keys"
            );
        }
    }
    lost
}

/// Counts `n` blocks refused while fenced.
pub(crate) fn refused(sh: &Shared, n: usize) {
    sh.fence.blocks.fetch_add(n as u64, Ordering::Relaxed);
}

/// Appends the fencing metrics to a `/metrics` page (pool members only).
pub(crate) fn render_metrics(sh: &Shared, o: &mut String) {
    use std::fmt::Write;
    if sh.cluster.get().is_none() {
        return;
    }
    let f = &sh.fence;
    for (name, kind, help, v) in [
        (
            "mcos_fenced",
            "gauge",
            "1 while this pool member's etcd lease may be gone and it serves no pooled key.",
            u64::from(f.fenced.load(Ordering::Relaxed)),
        ),
        (
            "mcos_fenced_total",
            "counter",
            "Times this member was fenced (lease not renewed for a whole TTL).",
            f.episodes.load(Ordering::Relaxed),
        ),
        (
            "mcos_fenced_blocks_total",
            "counter",
            "Blocks missed (get, exists, prefix) or refused (put) while fenced.",
            f.blocks.load(Ordering::Relaxed),
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    }
}

/// Whether the daemon is fenced now, for stats.
pub(crate) fn is_fenced(sh: &Shared) -> bool {
    sh.fence.fenced.load(Ordering::Relaxed)
}
