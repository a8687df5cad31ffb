//! The daemon's counters and their Prometheus text exposition (format 0.0.4).
//!
//! Names follow Prometheus conventions: `mcos_` prefix, `_total` on counters, base units in the
//! name (`_bytes`, `_seconds`). Labels have small fixed sets (op, tier, route, transport,
//! status): no label ever carries a key, tenant secret or client address.

use mcos_node::NodeStats;
use mcos_proto::Op;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Ops with their own request counters and latency histograms.
pub const OPS: [Op; 13] = [
    Op::Hello,
    Op::AttachRegion,
    Op::Put,
    Op::Get,
    Op::Exists,
    Op::Prefix,
    Op::Pin,
    Op::Unpin,
    Op::Intent,
    Op::Stats,
    Op::Policy,
    Op::Subscribe,
    Op::KvSnapshot,
];

/// Upper bounds of the latency buckets, seconds.
const BUCKETS_S: [f64; 17] = [
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1,
    0.25, 0.5, 1.0,
];

/// Per-block results, as the `status` label of `mcos_blocks_total`.
pub const BLOCK_RESULTS: [&str; 12] = [
    "ok",
    "present",
    "miss",
    "rejected",
    "too_large",
    "quota",
    "not_resident",
    "not_pinned",
    "limit",
    "region",
    "failed",
    "invalid",
];

/// One op's request count, block results and latency histogram. Written by session threads
/// (relaxed adds), read by the metrics renderer.
#[derive(Default)]
struct OpMetrics {
    requests: AtomicU64,
    buckets: [AtomicU64; BUCKETS_S.len()],
    sum_ns: AtomicU64,
    blocks: [AtomicU64; BLOCK_RESULTS.len()],
}

/// Transports, as the `transport` label.
pub const TRANSPORTS: [&str; 2] = ["unix", "tcp"];

/// Daemon-level counters. Every field is written by session threads or the acceptor with
/// relaxed atomics and read by the renderer; exact cross-field consistency is not needed.
#[derive(Default)]
pub struct Metrics {
    ops: [OpMetrics; OPS.len()],
    /// Connections currently served.
    pub clients_connected: AtomicI64,
    /// Connections accepted since start.
    pub connections: AtomicU64,
    /// Connections refused because `max_clients` were connected.
    pub connections_refused: AtomicU64,
    /// Error replies sent (each closes its connection), by code 1..=10.
    protocol_errors: [AtomicU64; 11],
    /// Bytes received, by transport.
    pub received_bytes: [AtomicU64; 2],
    /// Bytes sent, by transport.
    pub sent_bytes: [AtomicU64; 2],
    /// Pin leases ended by their deadline.
    pub leases_expired: AtomicU64,
    /// Pins released because their session ended.
    pub leases_released_at_close: AtomicU64,
    /// Regions attached since start.
    pub regions_attached: AtomicU64,
    /// Blocks acknowledged durable (put with the durable flag, after the batch's sync).
    pub durable_puts: AtomicU64,
}

fn op_index(op: Op) -> Option<usize> {
    OPS.iter().position(|&o| o == op)
}

impl Metrics {
    /// Counts one request of `op` that took `elapsed`.
    pub fn request(&self, op: Op, elapsed: Duration) {
        let Some(i) = op_index(op) else { return };
        let m = &self.ops[i];
        m.requests.fetch_add(1, Ordering::Relaxed);
        let s = elapsed.as_secs_f64();
        if let Some(b) = BUCKETS_S.iter().position(|&ub| s <= ub) {
            m.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        m.sum_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Counts `n` blocks of `op` that ended with wire status `code`.
    pub fn blocks(&self, op: Op, code: u8, n: u64) {
        if let Some(slot) = op_index(op).and_then(|i| self.ops[i].blocks.get(code as usize)) {
            slot.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts an error reply.
    pub fn protocol_error(&self, code: mcos_proto::ErrorCode) {
        if let Some(c) = self.protocol_errors.get(code as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Upper bound of the bucket holding quantile `q` of `op`'s latencies, seconds (None
    /// before any request; `f64::INFINITY` past the last bucket).
    pub fn latency_quantile(&self, op: Op, q: f64) -> Option<f64> {
        let m = &self.ops[op_index(op)?];
        let n = m.requests.load(Ordering::Relaxed);
        if n == 0 {
            return None;
        }
        let rank = ((n as f64) * q).ceil().max(1.0) as u64;
        let mut cum = 0;
        for (b, ub) in BUCKETS_S.iter().enumerate() {
            cum += m.buckets[b].load(Ordering::Relaxed);
            if cum >= rank {
                return Some(*ub);
            }
        }
        Some(f64::INFINITY)
    }

    /// Requests of `op` so far.
    pub fn requests_of(&self, op: Op) -> u64 {
        op_index(op).map_or(0, |i| self.ops[i].requests.load(Ordering::Relaxed))
    }

    /// The Prometheus text of the daemon and its node.
    pub fn render(
        &self,
        node: &NodeStats,
        brain: Option<mcos_brain::BrainHealth>,
        pins_held: usize,
    ) -> String {
        let mut o = String::with_capacity(16 << 10);
        let c = &node.counters;
        let head = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(&mut o, "mcos_up", "gauge", "1 while the daemon serves.");
        let _ = writeln!(o, "mcos_up 1");

        head(
            &mut o,
            "mcos_hits_total",
            "counter",
            "Block accesses found in a tier, by tier (0 = fastest).",
        );
        for (t, u) in node.tiers.iter().enumerate() {
            let _ = writeln!(
                o,
                "mcos_hits_total{{tier=\"{t}\",kind=\"{}\"}} {}",
                u.kind, c.hits[t]
            );
        }
        let counters: [(&str, &str, u64); 11] = [
            ("mcos_misses_total", "Block accesses not found.", c.misses),
            (
                "mcos_inserts_total",
                "Blocks offered for storing.",
                c.inserts,
            ),
            (
                "mcos_admitted_total",
                "Blocks admitted and stored.",
                c.admitted,
            ),
            (
                "mcos_evictions_total",
                "Blocks evicted from the node.",
                c.evictions,
            ),
            (
                "mcos_demotions_total",
                "Blocks moved down a tier.",
                c.demotions,
            ),
            (
                "mcos_corrupt_blocks_total",
                "Blocks found corrupt on read or move, dropped and counted as misses.",
                c.corrupt_blocks,
            ),
            (
                "mcos_move_errors_total",
                "Engine moves that failed.",
                c.move_errors,
            ),
            (
                "mcos_prefetch_issued_total",
                "Prefetches started.",
                c.prefetch_issued,
            ),
            (
                "mcos_prefetch_dropped_total",
                "Prefetches dropped (rings or frames short).",
                c.prefetch_dropped,
            ),
            (
                "mcos_telemetry_dropped_total",
                "Telemetry samples dropped on a full ring.",
                c.telemetry_dropped,
            ),
            (
                "mcos_telemetry_samples_total",
                "Telemetry samples delivered to the brain's side.",
                node.telemetry_samples,
            ),
        ];
        for (name, help, v) in counters {
            head(&mut o, name, "counter", help);
            let _ = writeln!(o, "{name} {v}");
        }
        head(
            &mut o,
            "mcos_admissions_refused_total",
            "counter",
            "Blocks the policy did not admit, by reason.",
        );
        for (reason, v) in [
            ("admission", c.rejected_admission),
            ("quota", c.rejected_quota),
            ("no_room", c.rejected_no_room),
            ("directory", c.rejected_directory),
        ] {
            let _ = writeln!(
                o,
                "mcos_admissions_refused_total{{reason=\"{reason}\"}} {v}"
            );
        }
        head(
            &mut o,
            "mcos_tier_used_blocks",
            "gauge",
            "Frames holding or reserved for a block, by tier.",
        );
        for (t, u) in node.tiers.iter().enumerate() {
            let _ = writeln!(o, "mcos_tier_used_blocks{{tier=\"{t}\"}} {}", u.used_blocks);
        }
        head(
            &mut o,
            "mcos_tier_capacity_blocks",
            "gauge",
            "Frames per tier.",
        );
        for (t, u) in node.tiers.iter().enumerate() {
            let _ = writeln!(
                o,
                "mcos_tier_capacity_blocks{{tier=\"{t}\"}} {}",
                u.capacity_blocks
            );
        }
        head(
            &mut o,
            "mcos_link_moved_bytes_total",
            "counter",
            "Bytes of completed moves per route between adjacent tiers.",
        );
        for l in &node.links {
            let _ = writeln!(
                o,
                "mcos_link_moved_bytes_total{{from=\"{}\",to=\"{}\"}} {}",
                l.from.0, l.to.0, l.bytes
            );
        }
        head(
            &mut o,
            "mcos_link_busy_seconds_total",
            "counter",
            "Seconds engines spent on the batches of each route.",
        );
        for l in &node.links {
            let _ = writeln!(
                o,
                "mcos_link_busy_seconds_total{{from=\"{}\",to=\"{}\"}} {}",
                l.from.0, l.to.0, l.seconds
            );
        }
        head(
            &mut o,
            "mcos_policy_fallbacks_total",
            "counter",
            "Times a policy table lapsed after its TTL and the fast path fell back to the built-in one.",
        );
        let _ = writeln!(o, "mcos_policy_fallbacks_total {}", c.policy_fallbacks);
        if let Some(h) = brain {
            head(
                &mut o,
                "mcos_brain_up",
                "gauge",
                "1 while the brain thread runs (0 after it panicked or stopped).",
            );
            let _ = writeln!(o, "mcos_brain_up {}", u8::from(h.alive));
            head(
                &mut o,
                "mcos_brain_silent_seconds",
                "gauge",
                "Seconds since the brain thread last woke up (a stall grows it).",
            );
            let _ = writeln!(o, "mcos_brain_silent_seconds {}", h.silent.as_secs_f64());
        }
        head(
            &mut o,
            "mcos_durable_acknowledged_total",
            "counter",
            "Blocks acknowledged durable (in the persistent tier, fdatasync'd when it syncs).",
        );
        let _ = writeln!(
            o,
            "mcos_durable_acknowledged_total {}",
            self.durable_puts.load(Ordering::Relaxed)
        );
        head(
            &mut o,
            "mcos_durable_syncs_total",
            "counter",
            "fdatasync calls made for durable puts (one per batch).",
        );
        let _ = writeln!(o, "mcos_durable_syncs_total {}", node.durable_syncs);
        for (name, help, v) in [
            (
                "mcos_device_io_errors_total",
                "Reads or writes the device failed: reads are counted misses, writes retried elsewhere.",
                node.io_errors,
            ),
            (
                "mcos_frames_retired_total",
                "Frames taken out of service because the device failed under them.",
                node.frames_retired,
            ),
            (
                "mcos_disk_direct_reads_total",
                "Disk-tier blocks read by gets straight into a client's direct slot (O_DIRECT into the shared region, verified there).",
                node.disk_direct_reads,
            ),
            (
                "mcos_disk_bounce_reads_total",
                "Disk-tier blocks read by gets in place through a bounce buffer, then copied.",
                node.disk_bounce_reads,
            ),
            (
                "mcos_move_wait_microseconds_max",
                "Longest time a get waited for an engine (a slow or stalled device shows here).",
                node.move_wait_us_max,
            ),
            (
                "mcos_puts_refused_no_space_total",
                "Durable puts refused because the device reported no space (backpressure).",
                node.puts_refused_no_space,
            ),
        ] {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            head(&mut o, name, kind, help);
            let _ = writeln!(o, "{name} {v}");
        }
        if let Some(r) = &node.rebuild {
            head(
                &mut o,
                "mcos_rebuild_seconds",
                "gauge",
                "Wall time of the warm restart's directory rebuild at start.",
            );
            let _ = writeln!(o, "mcos_rebuild_seconds {}", r.seconds);
            head(
                &mut o,
                "mcos_rebuild_frames",
                "gauge",
                "Frames of the persistent tier at the warm restart, by what they held.",
            );
            for (what, v) in [
                ("scanned", r.frames_scanned),
                ("restored", r.blocks_restored),
                ("empty", r.empty_frames),
                ("discarded_corrupt", r.discarded_corrupt),
                ("discarded_misplaced", r.discarded_misplaced),
                ("duplicate", r.duplicates),
            ] {
                let _ = writeln!(o, "mcos_rebuild_frames{{result=\"{what}\"}} {v}");
            }
        }
        head(
            &mut o,
            "mcos_policy_epoch",
            "gauge",
            "Epoch of the policy table in force (0: built-in).",
        );
        let _ = writeln!(o, "mcos_policy_epoch {}", node.policy_epoch);
        let (installs, switches) = node
            .brain
            .as_ref()
            .map_or((0, 0), |b| (b.stats.installs, b.stats.switches));
        head(
            &mut o,
            "mcos_policy_installs_total",
            "counter",
            "Policy tables the brain installed.",
        );
        let _ = writeln!(o, "mcos_policy_installs_total {installs}");
        head(
            &mut o,
            "mcos_brain_switches_total",
            "counter",
            "Times the brain switched its chosen knob set.",
        );
        let _ = writeln!(o, "mcos_brain_switches_total {switches}");

        head(
            &mut o,
            "mcos_requests_total",
            "counter",
            "Requests served, by op.",
        );
        for (i, op) in OPS.iter().enumerate() {
            let _ = writeln!(
                o,
                "mcos_requests_total{{op=\"{}\"}} {}",
                op.name(),
                self.ops[i].requests.load(Ordering::Relaxed)
            );
        }
        head(
            &mut o,
            "mcos_blocks_total",
            "counter",
            "Blocks in batch requests, by op and result.",
        );
        for (i, op) in OPS.iter().enumerate() {
            for (s, name) in BLOCK_RESULTS.iter().enumerate() {
                let v = self.ops[i].blocks[s].load(Ordering::Relaxed);
                if v > 0 {
                    let _ = writeln!(
                        o,
                        "mcos_blocks_total{{op=\"{}\",status=\"{name}\"}} {v}",
                        op.name()
                    );
                }
            }
        }
        head(
            &mut o,
            "mcos_request_duration_seconds",
            "histogram",
            "Time from a request's last byte received to its reply ready to send, by op.",
        );
        for (i, op) in OPS.iter().enumerate() {
            let m = &self.ops[i];
            let mut cum = 0;
            for (b, ub) in BUCKETS_S.iter().enumerate() {
                cum += m.buckets[b].load(Ordering::Relaxed);
                let _ = writeln!(
                    o,
                    "mcos_request_duration_seconds_bucket{{op=\"{}\",le=\"{ub}\"}} {cum}",
                    op.name()
                );
            }
            let n = m.requests.load(Ordering::Relaxed);
            let _ = writeln!(
                o,
                "mcos_request_duration_seconds_bucket{{op=\"{}\",le=\"+Inf\"}} {n}",
                op.name()
            );
            let _ = writeln!(
                o,
                "mcos_request_duration_seconds_sum{{op=\"{}\"}} {}",
                op.name(),
                m.sum_ns.load(Ordering::Relaxed) as f64 * 1e-9
            );
            let _ = writeln!(
                o,
                "mcos_request_duration_seconds_count{{op=\"{}\"}} {n}",
                op.name()
            );
        }
        head(
            &mut o,
            "mcos_clients_connected",
            "gauge",
            "Clients connected now.",
        );
        let _ = writeln!(
            o,
            "mcos_clients_connected {}",
            self.clients_connected.load(Ordering::Relaxed)
        );
        head(
            &mut o,
            "mcos_connections_total",
            "counter",
            "Connections accepted.",
        );
        let _ = writeln!(
            o,
            "mcos_connections_total {}",
            self.connections.load(Ordering::Relaxed)
        );
        head(
            &mut o,
            "mcos_connections_refused_total",
            "counter",
            "Connections refused at max_clients.",
        );
        let _ = writeln!(
            o,
            "mcos_connections_refused_total {}",
            self.connections_refused.load(Ordering::Relaxed)
        );
        head(
            &mut o,
            "mcos_protocol_errors_total",
            "counter",
            "Error replies sent (the connection is then closed), by code.",
        );
        for (code, v) in self.protocol_errors.iter().enumerate().skip(1) {
            let _ = writeln!(
                o,
                "mcos_protocol_errors_total{{code=\"{code}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        head(
            &mut o,
            "mcos_network_received_bytes_total",
            "counter",
            "Bytes received from clients, by transport.",
        );
        for (i, t) in TRANSPORTS.iter().enumerate() {
            let _ = writeln!(
                o,
                "mcos_network_received_bytes_total{{transport=\"{t}\"}} {}",
                self.received_bytes[i].load(Ordering::Relaxed)
            );
        }
        head(
            &mut o,
            "mcos_network_sent_bytes_total",
            "counter",
            "Bytes sent to clients, by transport.",
        );
        for (i, t) in TRANSPORTS.iter().enumerate() {
            let _ = writeln!(
                o,
                "mcos_network_sent_bytes_total{{transport=\"{t}\"}} {}",
                self.sent_bytes[i].load(Ordering::Relaxed)
            );
        }
        head(
            &mut o,
            "mcos_pins_held",
            "gauge",
            "Pin leases held by clients now.",
        );
        let _ = writeln!(o, "mcos_pins_held {pins_held}");
        head(
            &mut o,
            "mcos_pin_leases_expired_total",
            "counter",
            "Pin leases ended by their deadline.",
        );
        let _ = writeln!(
            o,
            "mcos_pin_leases_expired_total {}",
            self.leases_expired.load(Ordering::Relaxed)
        );
        head(
            &mut o,
            "mcos_pin_leases_released_at_close_total",
            "counter",
            "Pins released because their client's session ended.",
        );
        let _ = writeln!(
            o,
            "mcos_pin_leases_released_at_close_total {}",
            self.leases_released_at_close.load(Ordering::Relaxed)
        );
        head(
            &mut o,
            "mcos_regions_attached_total",
            "counter",
            "Shared regions local clients attached.",
        );
        let _ = writeln!(
            o,
            "mcos_regions_attached_total {}",
            self.regions_attached.load(Ordering::Relaxed)
        );
        o
    }
}
