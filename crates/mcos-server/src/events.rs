//! KV events on the wire (docs/protocol.md, ops 0x30-0x32): a subscribed connection becomes a
//! stream of the node's BlockStored / BlockRemoved events, batched per frame; a snapshot
//! request lists every block the node holds with the last event it reflects, for a router that
//! starts or lost events (a jump in the sequence numbers) to resync.
//!
//! The session thread reads the node's event ring with its own cursor, so a slow subscriber
//! slows nobody: it loses the oldest events, and the next frame says how many.

use crate::Shared;
use crate::session::{End, Refusal, Stream, refuse};
use mcos_node::{KvEventKind, KvEventLog};
use mcos_proto::{
    ErrorCode, FLAG_PARENTS, KV_EVENT_ENTRY, KV_EVENT_PARENT_ENTRY, KV_SNAPSHOT_ENTRY,
    KV_SNAPSHOT_PARENT_ENTRY, Op, REPLY, WireKvBlock, WireKvEvent, begin_frame, end_frame,
    kv_event_kind, reply,
};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Most events per frame.
const BATCH_EVENTS: usize = 1024;
/// How long a read of the ring waits before the stream checks for shutdown.
const WAIT: Duration = Duration::from_millis(100);
/// An empty frame after this long without events: the subscriber knows the daemon lives, and
/// the daemon finds a subscriber that left.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A subscriber that does not take a frame for this long is dropped (it resubscribes).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters of the event streams (relaxed adds by session threads, read by the renderer).
#[derive(Default)]
pub(crate) struct EventMetrics {
    /// Events sent to subscribers.
    pub sent: AtomicU64,
    /// Events subscribers lost (fell behind the ring, or removals lost at the source).
    pub lost: AtomicU64,
    /// Subscribed connections now.
    pub subscribers: AtomicU64,
}

/// The node's event ring, or the refusal a daemon without KV events answers.
pub(crate) fn log(sh: &Shared) -> Result<&Arc<KvEventLog>, Refusal> {
    sh.node.kv_events().ok_or_else(|| {
        refuse(
            ErrorCode::UnknownOp,
            "this daemon does not publish KV events: set `kv_events = true` in its config",
        )
    })
}

/// The id a subscriber gets for this daemon: its pool member id, else its advertised or TCP
/// address, else its socket path.
pub(crate) fn node_id(sh: &Shared) -> String {
    if let Some(id) = sh
        .cluster
        .get()
        .and_then(|p| p.node_id().map(str::to_string))
    {
        return id;
    }
    if let Some(a) = sh.cfg.cluster.as_ref().and_then(|c| c.advertise.clone()) {
        return a;
    }
    match sh.cfg.listen {
        Some(a) => a.to_string(),
        None => sh.cfg.socket_path().display().to_string(),
    }
}

/// A snapshot reply body in `out` (after its header; with each block's parent key when
/// `parents`, and the reply's header then flags it), or a refusal if it does not fit a frame.
pub(crate) fn snapshot(sh: &Shared, out: &mut Vec<u8>, parents: bool) -> Result<(), Refusal> {
    log(sh)?;
    let snap = sh
        .node
        .kv_snapshot()
        .ok_or_else(|| refuse(ErrorCode::Internal, "KV events are off"))?;
    let entry = if parents {
        KV_SNAPSHOT_PARENT_ENTRY
    } else {
        KV_SNAPSHOT_ENTRY
    };
    let bytes = 12 + snap.blocks.len() * entry;
    if bytes as u64 > sh.cfg.max_inflight_bytes {
        return Err(refuse(
            ErrorCode::LimitExceeded,
            format!(
                "a snapshot of {} blocks needs {bytes} bytes, over max_inflight_bytes ({}): raise it",
                snap.blocks.len(),
                sh.cfg.max_inflight_bytes
            ),
        ));
    }
    let blocks: Vec<WireKvBlock> = snap
        .blocks
        .iter()
        .zip(&snap.parents)
        .map(|(&(key, tier), &parent)| WireKvBlock {
            key,
            tier: tier.0,
            parent,
        })
        .collect();
    if parents {
        out[5] |= FLAG_PARENTS;
    }
    reply::kv_snapshot(out, snap.seq, &blocks, parents);
    Ok(())
}

/// Streams events from `cursor` on until the subscriber leaves or the daemon stops; with
/// `parents` (a subscribe with `FLAG_PARENTS`), each event carries its parent key and each
/// frame's header the flag.
pub(crate) fn stream(
    sh: &Shared,
    out: &Stream,
    session: u64,
    req_id: u32,
    mut cursor: u64,
    parents: bool,
) -> io::Result<End> {
    let Ok(log) = log(sh) else {
        return Ok(End::Eof);
    };
    out.set_write_timeout(WRITE_TIMEOUT)?;
    let m = &sh.event_metrics;
    m.subscribers.fetch_add(1, Ordering::Relaxed);
    debug!(session, cursor, "KV event subscriber");
    let mut events = Vec::with_capacity(BATCH_EVENTS);
    let mut wire = Vec::with_capacity(BATCH_EVENTS);
    let (flags, entry) = if parents {
        (FLAG_PARENTS, KV_EVENT_PARENT_ENTRY)
    } else {
        (0, KV_EVENT_ENTRY)
    };
    let mut buf = Vec::with_capacity(64 + BATCH_EVENTS * entry);
    let mut last_sent = Instant::now();
    let end = loop {
        if sh.shutdown.load(Ordering::Acquire) {
            break Ok(End::Shutdown);
        }
        events.clear();
        let lost = log.read(&mut cursor, &mut events, BATCH_EVENTS, WAIT);
        if events.is_empty() && lost == 0 && last_sent.elapsed() < HEARTBEAT {
            continue;
        }
        wire.clear();
        wire.extend(events.iter().map(|e| WireKvEvent {
            seq: e.seq,
            kind: match e.kind {
                KvEventKind::Stored => kv_event_kind::STORED,
                KvEventKind::Removed => kv_event_kind::REMOVED,
            },
            tier: e.tier.0,
            key: e.key,
            parent: e.parent,
        }));
        begin_frame(&mut buf, Op::KvEvents as u8 | REPLY, flags, req_id);
        reply::kv_events(&mut buf, lost, &wire, parents);
        end_frame(&mut buf, 0);
        if let Err(e) = out.send_all(&[&buf]) {
            break Err(e);
        }
        last_sent = Instant::now();
        m.sent.fetch_add(wire.len() as u64, Ordering::Relaxed);
        if lost > 0 {
            m.lost.fetch_add(lost, Ordering::Relaxed);
            warn!(
                session,
                lost, "a KV event subscriber fell behind and lost events"
            );
        }
        sh.metrics.sent_bytes[out.transport()].fetch_add(buf.len() as u64, Ordering::Relaxed);
    };
    m.subscribers.fetch_sub(1, Ordering::Relaxed);
    end
}

/// Appends the event streams' metrics to a `/metrics` page.
pub(crate) fn render_metrics(sh: &Shared, o: &mut String) {
    use std::fmt::Write;
    let Some(log) = sh.node.kv_events() else {
        return;
    };
    let m = &sh.event_metrics;
    for (name, kind, help, v) in [
        (
            "mcos_kv_events_published_total",
            "counter",
            "KV events (BlockStored, BlockRemoved) the node published.",
            log.next_seq() - 1,
        ),
        (
            "mcos_kv_events_sent_total",
            "counter",
            "KV events sent to subscribers.",
            m.sent.load(Ordering::Relaxed),
        ),
        (
            "mcos_kv_events_lost_total",
            "counter",
            "KV events subscribers lost by falling behind (they resync from a snapshot).",
            m.lost.load(Ordering::Relaxed),
        ),
        (
            "mcos_kv_event_subscribers",
            "gauge",
            "Connections subscribed to KV events now.",
            m.subscribers.load(Ordering::Relaxed),
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    }
}
