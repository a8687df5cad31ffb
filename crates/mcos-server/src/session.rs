//! One client connection: hello, then requests answered in order until the client leaves, a
//! request is refused (error reply, connection closed), or the daemon shuts down (the request
//! in flight is finished first).
//!
//! Each connection has its own thread. The node is `Sync` and decides per shard; a session
//! only parses frames, maps client keys into its tenant's key space and copies bytes between
//! the node and the client: straight into or out of the shared region on the local path, into
//! one reply buffer sent with a vectored write on TCP.

use crate::Shared;
use crate::tenants::Tenant;
use mcos_core::{BlockKey, Intent, IntentAction, PriorityClass};
use mcos_node::{Fetched, NodeError, PutOutcome};
use mcos_proto::local::{Region, recv_with_fds, write_all_vectored};
use mcos_proto::{
    DIRECT_PAYLOAD_OFFSET, ErrorCode, FLAG_LOCAL, FrameHeader, GetBatch, GetTarget, HEADER_BYTES,
    Op, PROTOCOL_VERSION, PUT_DURABLE, Payload, PutBatch, Request, STATUS_BYTES, Status,
    TIER_REMOTE, Welcome, WireIntent, Writer, intent_kind, reply, status,
};
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Reject reason of a put refused by a fenced pool member (docs/protocol.md).
const REJECT_FENCED: u32 = 5;
/// How often a blocked read wakes to check for shutdown.
const POLL: Duration = Duration::from_millis(100);
/// Read buffer kept between requests (grows to a frame's size while one is read).
const INBUF_BYTES: usize = 64 << 10;

/// A client's byte stream.
pub(crate) enum Stream {
    /// Same host: descriptors on the socket, bytes in the shared region.
    Unix(UnixStream),
    /// Another host (or a client without a region): payloads in the frames.
    Tcp(TcpStream),
}

impl Stream {
    /// Metric label index (see `metrics::TRANSPORTS`).
    pub(crate) fn transport(&self) -> usize {
        match self {
            Stream::Unix(_) => 0,
            Stream::Tcp(_) => 1,
        }
    }

    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(Some(t)),
            Stream::Tcp(s) => s.set_read_timeout(Some(t)),
        }
    }

    fn recv(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => recv_with_fds(s, buf, fds),
            Stream::Tcp(s) => (&*s).read(buf),
        }
    }

    pub(crate) fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(Some(t)),
            Stream::Tcp(s) => s.set_write_timeout(Some(t)),
        }
    }

    /// Writes every part, in order, with vectored writes.
    pub(crate) fn send_all(&self, parts: &[&[u8]]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => write_all_vectored(s, parts),
            Stream::Tcp(s) => write_all_vectored(s, parts),
        }
    }
}

/// Why a connection's loop ends.
pub(crate) enum End {
    /// The client closed its end between frames.
    Eof,
    /// The daemon is shutting down.
    Shutdown,
}

/// A request refused: the reply is an error frame and the connection closes.
pub(crate) struct Refusal {
    code: ErrorCode,
    message: String,
}

pub(crate) fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// Bytes read from the socket and not yet consumed.
struct InBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl InBuf {
    fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Makes room for `need` contiguous bytes from `start`.
    fn reserve(&mut self, need: usize) {
        if self.buf.len() - self.start < need {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
        }
    }

    /// After a large frame, give the memory back.
    fn shrink(&mut self) {
        if self.buf.len() > INBUF_BYTES && self.buffered() <= INBUF_BYTES {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            self.buf.truncate(INBUF_BYTES);
            self.buf.shrink_to(INBUF_BYTES);
        }
    }
}

/// Per-connection state.
struct Session<'a> {
    sh: &'a Shared,
    stream: Stream,
    id: u64,
    tenant: Option<&'a Tenant>,
    region: Option<Region>,
    /// Fds received and not yet claimed by an `AttachRegion` (closed when replaced).
    fds: Vec<OwnedFd>,
    /// Reply head (header and status table).
    out: Vec<u8>,
    /// Inline get payloads (`payload_len` of them are this reply's).
    payload: Vec<u8>,
    payload_len: usize,
    /// (offset, length) in `payload` of each inline hit, in reply order.
    hit_ranges: Vec<(usize, usize)>,
    keys: Vec<BlockKey>,
    /// When the daemon's shutdown was first seen (a client stuck mid-frame gets the grace).
    shutdown_seen: Option<Instant>,
    /// After a subscribe: the cursor of the KV event stream this connection has become, and
    /// whether its events carry parent keys.
    subscribed: Option<(u64, bool)>,
}

/// Serves one connection to its end, then releases everything it held.
pub(crate) fn serve(sh: &Shared, stream: Stream, id: u64) {
    let transport = stream.transport();
    let mut s = Session {
        sh,
        stream,
        id,
        tenant: None,
        region: None,
        fds: Vec::new(),
        out: Vec::with_capacity(4096),
        payload: Vec::new(),
        payload_len: 0,
        hit_ranges: Vec::new(),
        keys: Vec::new(),
        shutdown_seen: None,
        subscribed: None,
    };
    if let Err(e) = s.stream.set_read_timeout(POLL) {
        warn!(session = id, "cannot set a read timeout: {e}");
        return;
    }
    let mut inb = InBuf {
        buf: vec![0; INBUF_BYTES],
        start: 0,
        end: 0,
    };
    let how = s.run(&mut inb, transport);
    let released = sh.leases.release_session(id);
    for &k in &released {
        let _ = sh.node.unpin(k);
    }
    sh.metrics
        .leases_released_at_close
        .fetch_add(released.len() as u64, Ordering::Relaxed);
    match how {
        Ok(End::Eof) => debug!(session = id, released_pins = released.len(), "client left"),
        Ok(End::Shutdown) => debug!(session = id, "closed for shutdown"),
        Err(e) => debug!(
            session = id,
            released_pins = released.len(),
            "connection ended: {e}"
        ),
    }
}

impl<'a> Session<'a> {
    fn run(&mut self, inb: &mut InBuf, transport: usize) -> io::Result<End> {
        let max_body = self.sh.cfg.max_inflight_bytes;
        loop {
            if let Some(end) = self.fill(inb, HEADER_BYTES, transport)? {
                return Ok(end);
            }
            let mut hb = [0u8; HEADER_BYTES];
            hb.copy_from_slice(&inb.buf[inb.start..inb.start + HEADER_BYTES]);
            if self.tenant.is_none()
                && let Some(r) = not_a_hello(&hb)
            {
                self.send_error(0, r);
                return Ok(End::Eof);
            }
            let header = match FrameHeader::decode(&hb, max_body) {
                Ok(h) => h,
                Err(e) => {
                    self.send_error(0, refuse(e.code(), e.to_string()));
                    return Ok(End::Eof);
                }
            };
            let frame = HEADER_BYTES + header.body_len as usize;
            if let Some(end) = self.fill(inb, frame, transport)? {
                // A client that stops mid-frame is gone; at shutdown it had its grace.
                return Ok(end);
            }
            let t0 = Instant::now();
            let body_at = inb.start + HEADER_BYTES;
            let result = self.handle(&header, &inb.buf[body_at..inb.start + frame]);
            inb.start += frame;
            if inb.start == inb.end {
                inb.start = 0;
                inb.end = 0;
            }
            inb.shrink();
            match result {
                Ok(op) => {
                    // Counted before the reply leaves, so a client that reads its reply and then
                    // the metrics sees its request counted.
                    let sent = self.out.len() + self.payload_len;
                    self.sh.metrics.request(op, t0.elapsed());
                    self.sh.metrics.sent_bytes[transport].fetch_add(sent as u64, Ordering::Relaxed);
                    let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + self.hit_ranges.len());
                    parts.push(&self.out);
                    parts.extend(
                        self.hit_ranges
                            .iter()
                            .map(|&(at, len)| &self.payload[at..at + len]),
                    );
                    self.stream.send_all(&parts)?;
                    if let Some((cursor, parents)) = self.subscribed.take() {
                        return crate::events::stream(
                            self.sh,
                            &self.stream,
                            self.id,
                            header.req_id,
                            cursor,
                            parents,
                        );
                    }
                }
                Err(r) => {
                    self.send_error(header.req_id, r);
                    return Ok(End::Eof);
                }
            }
            if self.sh.shutdown.load(Ordering::Acquire) {
                return Ok(End::Shutdown);
            }
        }
    }

    /// Reads until `need` bytes are buffered. `Some(end)` when the connection should end.
    fn fill(&mut self, inb: &mut InBuf, need: usize, transport: usize) -> io::Result<Option<End>> {
        inb.reserve(need);
        while inb.buffered() < need {
            match self.stream.recv(&mut inb.buf[inb.end..], &mut self.fds) {
                Ok(0) => {
                    return if inb.buffered() == 0 {
                        Ok(Some(End::Eof))
                    } else {
                        Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "client closed the connection mid-frame",
                        ))
                    };
                }
                Ok(n) => {
                    inb.end += n;
                    self.sh.metrics.received_bytes[transport]
                        .fetch_add(n as u64, Ordering::Relaxed);
                    if self.fds.len() > 1 {
                        // Only the newest fd can belong to an AttachRegion; close the others.
                        let last = self.fds.len() - 1;
                        self.fds.drain(..last);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    if self.sh.shutdown.load(Ordering::Acquire) {
                        if inb.buffered() == 0 {
                            return Ok(Some(End::Shutdown));
                        }
                        let seen = *self.shutdown_seen.get_or_insert_with(Instant::now);
                        if seen.elapsed() > Duration::from_millis(self.sh.cfg.shutdown_grace_ms) {
                            return Ok(Some(End::Shutdown));
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    fn send_error(&mut self, req_id: u32, r: Refusal) {
        self.sh.metrics.protocol_error(r.code);
        info!(session = self.id, code = ?r.code, "request refused, closing the connection: {}", r.message);
        reply::error(&mut self.out, req_id, r.code, &r.message);
        let _ = self.stream.send_all(&[&self.out]);
    }

    fn tenant(&self) -> Result<&'a Tenant, Refusal> {
        self.tenant.ok_or_else(|| {
            refuse(
                ErrorCode::NotAuthenticated,
                "the first frame of a connection must be a hello",
            )
        })
    }

    /// Handles one request; the reply is left in `out` (and `payload[..payload_len]`).
    fn handle(&mut self, h: &FrameHeader, body: &[u8]) -> Result<Op, Refusal> {
        self.payload_len = 0;
        self.hit_ranges.clear();
        let req = Request::decode(h, body, self.sh.cfg.max_batch_blocks)
            .map_err(|e| refuse(e.code(), e.to_string()))?;
        let op = Op::from_u8(h.op).unwrap_or(Op::Error);
        if !matches!(req, Request::Hello(_)) {
            self.tenant()?;
        }
        reply::begin(&mut self.out, op, h.req_id);
        if matches!(
            req,
            Request::Put(_) | Request::Get(_) | Request::Exists(_) | Request::Prefix(_)
        ) && crate::fence::check(self.sh)
        {
            self.fenced_reply(&req);
            mcos_proto::end_frame(&mut self.out, 0);
            return Ok(op);
        }
        match req {
            Request::Hello(hello) => self.hello(hello.version, hello.tenant, hello.token)?,
            Request::AttachRegion { bytes } => self.attach(bytes)?,
            Request::Put(batch) => {
                let tenant = self.tenant()?;
                let n = batch.len();
                if batch.region && self.region.is_none() {
                    return Err(no_region());
                }
                Writer::new(&mut self.out).u32(n as u32);
                let mut counts = [0u64; 12];
                let durable = batch.durable;
                let mut statuses = self.put_batch(tenant, &batch);
                if durable {
                    // Group commit: one fdatasync covers the batch, before any block of it is
                    // acknowledged durable.
                    let any = statuses.iter().any(|s| s.value & PUT_DURABLE != 0);
                    let synced = if any {
                        self.sh.node.sync_durable().map_err(|e| {
                            warn!(session = self.id, "durable put: sync failed: {e}");
                        })
                    } else {
                        Ok(())
                    };
                    for st in statuses.iter_mut() {
                        if synced.is_err() && st.value & PUT_DURABLE != 0 {
                            *st = Status::code(status::FAILED);
                        }
                        if st.value & PUT_DURABLE != 0 {
                            self.sh.metrics.durable_puts.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                for st in statuses {
                    count(&mut counts, st.code);
                    reply::status(&mut self.out, st);
                }
                self.count_blocks(Op::Put, &counts);
            }
            Request::Get(batch) => {
                let tenant = self.tenant()?;
                let n = batch.len();
                let bb = self.sh.block_bytes as usize;
                if !batch.region {
                    let reply_bytes = 4 + n * (STATUS_BYTES + bb);
                    if reply_bytes as u64 > self.sh.cfg.max_inflight_bytes {
                        return Err(refuse(
                            ErrorCode::LimitExceeded,
                            format!(
                                "an inline get of {n} blocks may need a {reply_bytes}-byte reply, over the limit of {} bytes: send smaller batches or use the shared region",
                                self.sh.cfg.max_inflight_bytes
                            ),
                        ));
                    }
                    if self.payload.len() < n * bb {
                        self.payload.resize(n * bb, 0);
                    }
                } else if self.region.is_none() {
                    return Err(no_region());
                }
                Writer::new(&mut self.out).u32(n as u32);
                let mut counts = [0u64; 12];
                let forward = h.flags & FLAG_LOCAL == 0;
                for st in self.get_batch(tenant, &batch, forward) {
                    count(&mut counts, st.code);
                    reply::status(&mut self.out, st);
                }
                self.count_blocks(Op::Get, &counts);
            }
            Request::Exists(keys) => {
                let tenant = self.tenant()?;
                let mut w = Writer::new(&mut self.out);
                w.u32(keys.len() as u32);
                for k in keys.iter() {
                    let tier = tenant
                        .key(k)
                        .and_then(|k| self.sh.node.locate(k))
                        .map_or(0xff, |(t, _)| t.0);
                    w.u8(tier);
                }
            }
            Request::Prefix(keys) => {
                let tenant = self.tenant()?;
                self.keys.clear();
                // Key 0 never matches: the prefix stops there.
                self.keys
                    .extend(keys.iter().map(|k| tenant.key(k).unwrap_or(BlockKey::NONE)));
                let mut n = self.sh.node.longest_cached_prefix(&self.keys);
                if n < self.keys.len()
                    && h.flags & FLAG_LOCAL == 0
                    && let Some(pool) = self.sh.pool.get().filter(|p| p.fetch_from_owners)
                {
                    let client: Vec<BlockKey> = keys.iter().collect();
                    n = pool.prefix(self.sh, tenant, &client, &self.keys, n);
                }
                Writer::new(&mut self.out).u32(n as u32);
            }
            Request::Pin { ttl_ms, keys } => {
                let tenant = self.tenant()?;
                let cfg = &self.sh.cfg;
                let ttl = if ttl_ms == 0 {
                    cfg.lease_default_ms
                } else {
                    ttl_ms.min(cfg.lease_max_ms)
                };
                let deadline = Instant::now() + Duration::from_millis(u64::from(ttl));
                Writer::new(&mut self.out).u32(keys.len() as u32);
                let mut counts = [0u64; 12];
                for k in keys.iter() {
                    let st = match tenant.key(k) {
                        None => status::INVALID,
                        Some(_) if self.sh.leases.held_by(self.id) >= cfg.max_pins_per_session => {
                            status::LIMIT
                        }
                        Some(k) => match self.sh.node.pin(k) {
                            Ok(()) => {
                                self.sh.leases.add(self.id, k, deadline);
                                status::OK
                            }
                            Err(NodeError::NotResident(_)) => status::NOT_RESIDENT,
                            Err(NodeError::TooManyPins(_)) => status::LIMIT,
                            Err(e) => {
                                warn!(session = self.id, "pin failed: {e}");
                                status::FAILED
                            }
                        },
                    };
                    count(&mut counts, st);
                    reply::status(&mut self.out, Status::code(st));
                }
                self.count_blocks(Op::Pin, &counts);
            }
            Request::Unpin(keys) => {
                let tenant = self.tenant()?;
                Writer::new(&mut self.out).u32(keys.len() as u32);
                let mut counts = [0u64; 12];
                for k in keys.iter() {
                    let st = match tenant.key(k) {
                        None => status::INVALID,
                        Some(k) if self.sh.leases.release_one(self.id, k) => {
                            match self.sh.node.unpin(k) {
                                Ok(()) => status::OK,
                                Err(e) => {
                                    warn!(session = self.id, "unpin of a held lease failed: {e}");
                                    status::FAILED
                                }
                            }
                        }
                        Some(_) => status::NOT_PINNED,
                    };
                    count(&mut counts, st);
                    reply::status(&mut self.out, Status::code(st));
                }
                self.count_blocks(Op::Unpin, &counts);
            }
            Request::Intent(batch) => {
                let tenant = self.tenant()?;
                Writer::new(&mut self.out).u32(batch.len() as u32);
                let mut counts = [0u64; 12];
                for i in batch.iter() {
                    let st = intent_one(self.sh, tenant, i);
                    count(&mut counts, st);
                    reply::status(&mut self.out, Status::code(st));
                }
                self.count_blocks(Op::Intent, &counts);
            }
            Request::Stats => {
                let j = crate::stats_json(self.sh);
                self.out.extend_from_slice(j.to_string().as_bytes());
            }
            Request::Policy => {
                let j = crate::policy_json(self.sh);
                self.out.extend_from_slice(j.to_string().as_bytes());
            }
            Request::Subscribe { parents } => {
                let log = crate::events::log(self.sh)?;
                let next = log.next_seq();
                reply::subscribed(&mut self.out, next, &crate::events::node_id(self.sh));
                self.subscribed = Some((next, parents));
            }
            Request::KvSnapshot { parents } => {
                crate::events::snapshot(self.sh, &mut self.out, parents)?
            }
        }
        mcos_proto::end_frame(&mut self.out, self.payload_len);
        Ok(op)
    }

    /// The reply of a fenced member (see `fence`): every get a miss, nothing exists, no
    /// prefix, every put refused (`rejected`, reason 5).
    fn fenced_reply(&mut self, req: &Request<'_>) {
        let mut w = Writer::new(&mut self.out);
        let n = match req {
            Request::Put(b) => {
                w.u32(b.len() as u32);
                for _ in 0..b.len() {
                    reply::status(
                        &mut self.out,
                        Status {
                            code: status::REJECTED,
                            tier: 0,
                            value: REJECT_FENCED,
                        },
                    );
                }
                b.len()
            }
            Request::Get(b) => {
                w.u32(b.len() as u32);
                for _ in 0..b.len() {
                    reply::status(&mut self.out, Status::code(status::MISS));
                }
                b.len()
            }
            Request::Exists(keys) => {
                w.u32(keys.len() as u32);
                for _ in 0..keys.len() {
                    w.u8(0xff);
                }
                keys.len()
            }
            Request::Prefix(keys) => {
                w.u32(0);
                keys.len()
            }
            _ => 0,
        };
        crate::fence::refused(self.sh, n);
    }

    fn hello(&mut self, version: u16, tenant: &str, token: &[u8]) -> Result<(), Refusal> {
        if self.tenant.is_some() {
            return Err(refuse(
                ErrorCode::Malformed,
                "a second hello on one connection",
            ));
        }
        if version != PROTOCOL_VERSION {
            return Err(refuse(
                ErrorCode::VersionMismatch,
                format!(
                    "this daemon speaks protocol version {PROTOCOL_VERSION}, the client {version}: use a client of the daemon's release"
                ),
            ));
        }
        let Some(t) = self.sh.tenants.authenticate(tenant, token) else {
            warn!(session = self.id, tenant, "authentication refused");
            return Err(refuse(
                ErrorCode::AuthRefused,
                format!("unknown tenant `{tenant}` or wrong token"),
            ));
        };
        self.tenant = Some(t);
        debug!(session = self.id, tenant, "hello");
        let cfg = &self.sh.cfg;
        reply::welcome(
            &mut self.out,
            &Welcome {
                version: PROTOCOL_VERSION,
                session_id: self.id,
                block_bytes: self.sh.block_bytes,
                max_batch_blocks: cfg.max_batch_blocks,
                max_inflight_bytes: cfg.max_inflight_bytes,
                lease_default_ms: cfg.lease_default_ms,
                lease_max_ms: cfg.lease_max_ms,
                server: format!("mcosd {}", env!("CARGO_PKG_VERSION")),
            },
        );
        Ok(())
    }

    fn attach(&mut self, bytes: u64) -> Result<(), Refusal> {
        if !matches!(self.stream, Stream::Unix(_)) {
            return Err(refuse(
                ErrorCode::Region,
                "shared regions attach over the Unix socket only (TCP carries payloads inline)",
            ));
        }
        let fd = self.fds.pop().ok_or_else(|| {
            refuse(
                ErrorCode::Region,
                "attach_region arrived without a file descriptor (SCM_RIGHTS)",
            )
        })?;
        let max = self.sh.cfg.max_region_bytes;
        let len = usize::try_from(bytes).unwrap_or(usize::MAX);
        let region = Region::attach(fd, len, usize::try_from(max).unwrap_or(usize::MAX))
            .map_err(|e| refuse(ErrorCode::Region, format!("region refused: {e}")))?;
        debug!(session = self.id, bytes, "region attached");
        self.sh
            .metrics
            .regions_attached
            .fetch_add(1, Ordering::Relaxed);
        self.region = Some(region);
        Ok(())
    }

    /// Statuses of a batch get. Every key is decided before any move is waited for (the
    /// node's `get_batch_into`), so blocks found on disk come up in shared engine batches.
    /// Inline: hit `i` lands at `payload[i * block_bytes..]` and its range is recorded for the
    /// reply's vectored write. Region: each block lands at its own range; a batch whose ranges
    /// overlap is served one key at a time (two writers may not share bytes). Direct slots
    /// (`FLAG_DIRECT`): each payload lands `DIRECT_PAYLOAD_OFFSET` bytes into its range, and a
    /// disk-tier block is read straight into the range when its alignment allows (the node's
    /// `get_batch_into_slots`).
    ///
    /// With `forward` on a pool member, the keys missed here are fetched from their owners
    /// (`crate::pool`) into the same destinations, whole or not at all (status tier
    /// `TIER_REMOTE`).
    fn get_batch(&mut self, tenant: &Tenant, batch: &GetBatch<'_>, forward: bool) -> Vec<Status> {
        let n = batch.len();
        let bb = self.sh.block_bytes as usize;
        let mut statuses = vec![Status::code(status::INVALID); n];
        self.keys.clear();
        let mut slots = Vec::with_capacity(n); // request index of each key sent to the node
        let mut dsts: Vec<&mut [u8]> = Vec::with_capacity(n);
        if batch.region {
            let Some(region) = self.region.as_ref() else {
                return statuses; // checked by the caller
            };
            let mut ranges: Vec<(u64, u64)> = Vec::with_capacity(n);
            for (i, (key, target)) in batch.iter().enumerate() {
                let GetTarget::Region { offset, capacity } = target else {
                    continue;
                };
                let Some(k) = tenant.key(key) else { continue };
                if region.range(offset, capacity as usize).is_none()
                    || (batch.direct && capacity < DIRECT_PAYLOAD_OFFSET)
                {
                    statuses[i] = Status::code(status::REGION);
                    continue;
                }
                ranges.push((offset, offset + u64::from(capacity)));
                self.keys.push(k);
                slots.push(i);
            }
            ranges.sort_unstable();
            if ranges.windows(2).any(|w| w[1].0 < w[0].1) {
                for (i, (key, target)) in batch.iter().enumerate() {
                    if let GetTarget::Region { offset, capacity } = target {
                        // SAFETY: one range at a time: no two live slices share bytes; the
                        // client leaves its ranges alone until the reply (protocol contract).
                        if statuses[i].code == status::REGION {
                            continue;
                        }
                        if let Some(dst) = unsafe { region.slice_mut(offset, capacity as usize) } {
                            statuses[i] = get_one(self.sh, tenant, key, dst, batch.direct);
                        }
                    }
                }
                return statuses;
            }
            let mut selected = vec![false; n];
            for &i in &slots {
                selected[i] = true;
            }
            for (i, (_, target)) in batch.iter().enumerate() {
                if let (GetTarget::Region { offset, capacity }, true) = (target, selected[i]) {
                    // SAFETY: the ranges were checked in the region and pairwise disjoint
                    // above, so these slices never alias; the client leaves them alone until
                    // the reply (protocol contract); the node writes verified bytes only.
                    let dst = unsafe { region.slice_mut(offset, capacity as usize) };
                    dsts.push(dst.unwrap_or(&mut []));
                }
            }
        } else {
            for (i, (key, _)) in batch.iter().enumerate() {
                if let Some(k) = tenant.key(key) {
                    self.keys.push(k);
                    slots.push(i);
                }
            }
            let mut chunks = self.payload.chunks_mut(bb);
            let mut next = 0;
            for &i in &slots {
                // Slot i of the payload buffer belongs to request entry i.
                let Some(c) = chunks.nth(i - next) else { break };
                next = i + 1;
                dsts.push(c);
            }
        }
        let results = if batch.direct {
            self.sh.node.get_batch_into_slots(&self.keys, &mut dsts)
        } else {
            self.sh.node.get_batch_into(&self.keys, &mut dsts)
        };
        for (&i, r) in slots.iter().zip(results) {
            statuses[i] = fetched_status(r, batch.direct);
        }
        if forward && let Some(pool) = self.sh.pool.get().filter(|p| p.fetch_from_owners) {
            // j: position in `slots`/`dsts`/`keys` of each missed key.
            let missed: Vec<usize> = (0..slots.len())
                .filter(|&j| statuses[slots[j]].code == status::MISS)
                .collect();
            if !missed.is_empty() {
                let client: Vec<BlockKey> = batch.iter().map(|(k, _)| k).collect();
                let ck: Vec<BlockKey> = missed.iter().map(|&j| client[slots[j]]).collect();
                let nk: Vec<BlockKey> = missed.iter().map(|&j| self.keys[j]).collect();
                let got = pool.fetch_missing(self.sh, tenant, &ck, &nk);
                for (&j, g) in missed.iter().zip(got) {
                    let Some(b) = g else { continue };
                    let i = slots[j];
                    let room = if batch.direct {
                        DIRECT_PAYLOAD_OFFSET as usize
                    } else {
                        0
                    };
                    statuses[i] = match dsts[j].get_mut(room..room + b.len()) {
                        Some(d) => {
                            d.copy_from_slice(&b);
                            Status {
                                code: status::OK,
                                tier: TIER_REMOTE,
                                value: b.len() as u32,
                            }
                        }
                        None => Status {
                            code: status::TOO_LARGE,
                            tier: 0,
                            value: (room + b.len()) as u32,
                        },
                    };
                }
            }
        }
        for &i in &slots {
            if !batch.region && statuses[i].code == status::OK {
                self.hit_ranges.push((i * bb, statuses[i].value as usize));
                self.payload_len += statuses[i].value as usize;
            }
        }
        statuses
    }

    /// Statuses of a batch put: checked per block (key, size, region range, tenant quota),
    /// then stored with the node's `put_batch`, so blocks that wait for room wait together.
    fn put_batch(&self, tenant: &Tenant, batch: &PutBatch<'_>) -> Vec<Status> {
        let node = &self.sh.node;
        let mut statuses = vec![Status::code(status::INVALID); batch.len()];
        let mut room = tenant.quota_room(node);
        // Client keys, for the pool's re-replication of protected blocks (placement hashes
        // the client key; the node holds the salted one).
        let client_keys: Vec<BlockKey> = match self.sh.pool.get() {
            Some(_) => batch.iter().map(|(k, _)| k).collect(),
            None => Vec::new(),
        };
        let mut blocks: Vec<(BlockKey, &[u8])> = Vec::with_capacity(batch.len());
        // Parent keys named by the put, salted like the keys (a parent is a key of the same
        // tenant); empty when the put names none.
        let mut parents: Vec<BlockKey> = Vec::new();
        let mut slots = Vec::with_capacity(batch.len());
        for (i, (key, payload)) in batch.iter().enumerate() {
            let Some(k) = tenant.key(key) else { continue };
            let parent = tenant.key(batch.parent(i)).unwrap_or(BlockKey::NONE);
            let p = match payload {
                Payload::Inline(p) => p,
                // SAFETY: the client does not write this range while its put is in flight
                // (protocol contract); a client that does only garbles its own block, whose
                // checksum is computed from what was copied, so it reads back as a miss.
                Payload::Region { offset, len } => match self
                    .region
                    .as_ref()
                    .and_then(|r| unsafe { r.slice(offset, len as usize) })
                {
                    Some(p) => p,
                    None => {
                        statuses[i] = Status::code(status::REGION);
                        continue;
                    }
                },
            };
            if p.len() > self.sh.block_bytes as usize {
                statuses[i] = Status {
                    code: status::TOO_LARGE,
                    tier: 0,
                    value: self.sh.block_bytes,
                };
                continue;
            }
            if room != u64::MAX {
                if node.locate(k).is_some() {
                    statuses[i] = Status::code(status::PRESENT);
                    continue;
                }
                if room == 0 {
                    statuses[i] = Status::code(status::QUOTA);
                    continue;
                }
                room -= 1;
            }
            blocks.push((k, p));
            if batch.has_parents() {
                parents.push(parent);
            }
            slots.push(i);
        }
        let class = PriorityClass(batch.class);
        // Durable puts go one by one into the persistent tier (the caller syncs the batch once);
        // the others go through the node's batch put.
        let results: Vec<_> = if batch.durable {
            blocks
                .iter()
                .enumerate()
                .map(|(j, &(k, p))| {
                    let parent = parents.get(j).copied().unwrap_or(BlockKey::NONE);
                    node.put_durable_with_parent(k, parent, class, p)
                })
                .collect()
        } else {
            node.put_batch_with_parents(class, &blocks, &parents)
        };
        let durable_value = if batch.durable { PUT_DURABLE } else { 0 };
        for ((&i, r), &(k, _)) in slots.iter().zip(results).zip(&blocks) {
            if let (Some(pool), Ok(PutOutcome::Stored(_) | PutOutcome::Present)) =
                (self.sh.pool.get(), &r)
            {
                pool.track_put(tenant, client_keys[i], k, batch.class);
            }
            statuses[i] = match r {
                Ok(PutOutcome::Stored(t)) => {
                    tenant.record_stored(k);
                    Status {
                        code: status::OK,
                        tier: t.0,
                        value: durable_value,
                    }
                }
                Ok(PutOutcome::Present) => match node.locate(k) {
                    // Already durable where it is; a copy in a volatile tier is not.
                    Some((t, _)) if batch.durable && Some(t) == node.persist_tier() => Status {
                        code: status::PRESENT,
                        tier: t.0,
                        value: PUT_DURABLE,
                    },
                    _ => Status::code(status::PRESENT),
                },
                Ok(PutOutcome::Rejected(r)) => Status {
                    code: status::REJECTED,
                    tier: 0,
                    value: r as u32 + 1,
                },
                Err(e) => {
                    warn!(session = self.id, "put failed: {e}");
                    Status::code(status::FAILED)
                }
            };
        }
        statuses
    }

    fn count_blocks(&self, op: Op, counts: &[u64; 12]) {
        for (code, &n) in counts.iter().enumerate() {
            if n > 0 {
                self.sh.metrics.blocks(op, code as u8, n);
            }
        }
    }
}

/// Before hello, a frame is refused from its first bytes if it cannot be a hello (so a stray
/// HTTP or text client gets a clear answer rather than "frame too large").
fn not_a_hello(h: &[u8; HEADER_BYTES]) -> Option<Refusal> {
    if [&b"GET "[..], b"POST", b"HEAD", b"PUT "].contains(&&h[..4]) {
        return Some(refuse(
            ErrorCode::Malformed,
            "this is mcosd's binary protocol socket, not HTTP (metrics and health are served on server.metrics)",
        ));
    }
    (h[4] != Op::Hello as u8).then(|| {
        refuse(
            ErrorCode::NotAuthenticated,
            "the first frame of a connection must be a hello",
        )
    })
}

fn no_region() -> Refusal {
    refuse(
        ErrorCode::Region,
        "a region request before attach_region: attach a shared region first",
    )
}

fn count(counts: &mut [u64; 12], code: u8) {
    if let Some(c) = counts.get_mut(code as usize) {
        *c += 1;
    }
}

/// One key's get into `dst` (a direct slot when `direct`).
fn get_one(sh: &Shared, tenant: &Tenant, key: BlockKey, dst: &mut [u8], direct: bool) -> Status {
    let Some(k) = tenant.key(key) else {
        return Status::code(status::INVALID);
    };
    if direct {
        let r = sh.node.get_batch_into_slots(&[k], &mut [dst]).pop();
        fetched_status(r.unwrap_or(Ok(Fetched::Miss)), true)
    } else {
        fetched_status(sh.node.get_into(k, None, dst), false)
    }
}

/// A get's status. `direct`: the range was a direct slot, so `too_large`'s needed bytes count
/// the header room before the payload.
fn fetched_status(r: Result<Fetched, NodeError>, direct: bool) -> Status {
    match r {
        Ok(Fetched::Hit { tier, len }) => Status {
            code: status::OK,
            tier: tier.0,
            value: len as u32,
        },
        Ok(Fetched::Miss) => Status::code(status::MISS),
        Err(NodeError::BufferTooSmall { needed, .. }) => Status {
            code: status::TOO_LARGE,
            tier: 0,
            value: needed as u32 + if direct { DIRECT_PAYLOAD_OFFSET } else { 0 },
        },
        Err(e) => {
            warn!("get failed: {e}");
            Status::code(status::FAILED)
        }
    }
}

fn intent_one(sh: &Shared, tenant: &Tenant, i: WireIntent) -> u8 {
    let Some(key) = tenant.key(i.key) else {
        return status::INVALID;
    };
    let action = match i.kind {
        intent_kind::SET_CLASS => match u8::try_from(i.a) {
            Ok(c) => IntentAction::SetClass(PriorityClass(c)),
            Err(_) => return status::INVALID,
        },
        intent_kind::EXPECT_REUSE => IntentAction::ExpectReuse {
            uses: i.a.min(255) as u8,
        },
        intent_kind::SEQUENCE => IntentAction::Sequence {
            sequence: i.a,
            position: i.b,
        },
        intent_kind::QUEUED => IntentAction::SetClass(PriorityClass::QUEUED),
        _ => return status::INVALID,
    };
    match sh.node.intent(Intent { key, action }) {
        Ok(()) => status::OK,
        Err(NodeError::NotResident(_)) => status::NOT_RESIDENT,
        Err(e) => {
            warn!("intent failed: {e}");
            status::FAILED
        }
    }
}
