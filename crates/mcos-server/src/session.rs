//! One client connection: hello, then requests answered in order until the client leaves, a
//! request is refused (error reply, connection closed), or the daemon shuts down (the request
//! in flight is finished first).
//!
//! Each connection has its own thread. The node is `Sync` and decides per shard; a session
//! only parses frames, maps client keys into its tenant's key space and copies bytes between
//! the node and the client: straight into or out of the shared region on the local path, into
//! one reply buffer sent with a vectored write on TCP.

use crate::Shared;
use crate::tenants::{QuotaCheck, Tenant};
use mcos_core::{BlockKey, Intent, IntentAction, PriorityClass};
use mcos_node::{Fetched, NodeError, PutOutcome};
use mcos_proto::local::{Region, recv_with_fds};
use mcos_proto::{
    ErrorCode, FrameHeader, GetTarget, HEADER_BYTES, Op, PROTOCOL_VERSION, PUT_DURABLE, Payload,
    Request, STATUS_BYTES, Status, Welcome, WireIntent, Writer, intent_kind, reply, status,
};
use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

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
    fn transport(&self) -> usize {
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

    /// Writes every part, in order, with vectored writes.
    fn send_all(&self, parts: &[&[u8]]) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            let n = match self {
                Stream::Unix(s) => (&*s).write_vectored(slices),
                Stream::Tcp(s) => (&*s).write_vectored(slices),
            };
            match n {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Why a connection's loop ends.
enum End {
    /// The client closed its end between frames.
    Eof,
    /// The daemon is shutting down.
    Shutdown,
}

/// A request refused: the reply is an error frame and the connection closes.
struct Refusal {
    code: ErrorCode,
    message: String,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
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
    keys: Vec<BlockKey>,
    /// When the daemon's shutdown was first seen (a client stuck mid-frame gets the grace).
    shutdown_seen: Option<Instant>,
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
        keys: Vec::new(),
        shutdown_seen: None,
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
            if self.tenant.is_none() {
                if let Some(r) = not_a_hello(&hb) {
                    self.send_error(0, r);
                    return Ok(End::Eof);
                }
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
                    let sent = self.out.len() + self.payload_len;
                    let parts: [&[u8]; 2] = [&self.out, &self.payload[..self.payload_len]];
                    self.stream.send_all(&parts)?;
                    self.sh.metrics.sent_bytes[transport].fetch_add(sent as u64, Ordering::Relaxed);
                    self.sh.metrics.request(op, t0.elapsed());
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
        let req = Request::decode(h, body, self.sh.cfg.max_batch_blocks)
            .map_err(|e| refuse(e.code(), e.to_string()))?;
        let op = Op::from_u8(h.op).unwrap_or(Op::Error);
        if !matches!(req, Request::Hello(_)) {
            self.tenant()?;
        }
        reply::begin(&mut self.out, op, h.req_id);
        match req {
            Request::Hello(hello) => self.hello(hello.version, hello.tenant, hello.token)?,
            Request::AttachRegion { bytes } => self.attach(bytes)?,
            Request::Put(batch) => {
                let tenant = self.tenant()?;
                let n = batch.len();
                Writer::new(&mut self.out).u32(n as u32);
                let mut counts = [0u64; 12];
                let durable = batch.durable;
                let mut statuses = Vec::with_capacity(if durable { n } else { 0 });
                for (key, payload) in batch.iter() {
                    let st = match payload {
                        Payload::Inline(p) => self.put_one(tenant, key, batch.class, p, durable),
                        Payload::Region { offset, len } => match self.region.as_ref() {
                            // SAFETY: the client does not write this range while its put is in
                            // flight (protocol contract); a client that does only garbles its
                            // own block, whose checksum is computed from what was copied.
                            Some(r) => match unsafe { r.slice(offset, len as usize) } {
                                Some(p) => self.put_one(tenant, key, batch.class, p, durable),
                                None => Status::code(status::REGION),
                            },
                            None => return Err(no_region()),
                        },
                    };
                    if durable {
                        statuses.push(st);
                    } else {
                        count(&mut counts, st.code);
                        reply::status(&mut self.out, st);
                    }
                }
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
                    for mut st in statuses {
                        if synced.is_err() && st.value & PUT_DURABLE != 0 {
                            st = Status::code(status::FAILED);
                        }
                        if st.value & PUT_DURABLE != 0 {
                            self.sh.metrics.durable_puts.fetch_add(1, Ordering::Relaxed);
                        }
                        count(&mut counts, st.code);
                        reply::status(&mut self.out, st);
                    }
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
                for (key, target) in batch.iter() {
                    let st = match target {
                        GetTarget::Inline => {
                            let at = self.payload_len;
                            let st = get_one(self.sh, tenant, key, &mut self.payload[at..at + bb]);
                            if st.code == status::OK {
                                self.payload_len += st.value as usize;
                            }
                            st
                        }
                        GetTarget::Region { offset, capacity } => {
                            let r = self.region.as_ref().ok_or_else(no_region)?;
                            // SAFETY: the client leaves this range alone until the reply
                            // (protocol contract); the node writes verified bytes only.
                            match unsafe { r.slice_mut(offset, capacity as usize) } {
                                Some(dst) => get_one(self.sh, tenant, key, dst),
                                None => Status::code(status::REGION),
                            }
                        }
                    };
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
                let n = self.sh.node.longest_cached_prefix(&self.keys);
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
        }
        mcos_proto::end_frame(&mut self.out, self.payload_len);
        Ok(op)
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

    fn put_one(
        &self,
        tenant: &Tenant,
        key: BlockKey,
        class: u8,
        payload: &[u8],
        durable: bool,
    ) -> Status {
        let Some(k) = tenant.key(key) else {
            return Status::code(status::INVALID);
        };
        if payload.len() > self.sh.block_bytes as usize {
            return Status {
                code: status::TOO_LARGE,
                tier: 0,
                value: self.sh.block_bytes,
            };
        }
        if tenant.quota_check(&self.sh.node) == QuotaCheck::Full {
            return Status::code(match self.sh.node.locate(k) {
                Some(_) => status::PRESENT,
                None => status::QUOTA,
            });
        }
        let stored = if durable {
            self.sh.node.put_durable(k, PriorityClass(class), payload)
        } else {
            self.sh.node.put_class(k, PriorityClass(class), payload)
        };
        let durable_value = if durable { PUT_DURABLE } else { 0 };
        match stored {
            Ok(PutOutcome::Stored(t)) => {
                tenant.record_stored(k);
                Status {
                    code: status::OK,
                    tier: t.0,
                    value: durable_value,
                }
            }
            Ok(PutOutcome::Present) => match self.sh.node.locate(k) {
                // Already durable where it is; a copy in a volatile tier is not.
                Some((t, _)) if durable && Some(t) == self.sh.node.persist_tier() => Status {
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
        }
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

fn get_one(sh: &Shared, tenant: &Tenant, key: BlockKey, dst: &mut [u8]) -> Status {
    let Some(k) = tenant.key(key) else {
        return Status::code(status::INVALID);
    };
    match sh.node.get_into(k, None, dst) {
        Ok(Fetched::Hit { tier, len }) => Status {
            code: status::OK,
            tier: tier.0,
            value: len as u32,
        },
        Ok(Fetched::Miss) => Status::code(status::MISS),
        Err(NodeError::BufferTooSmall { needed, .. }) => Status {
            code: status::TOO_LARGE,
            tier: 0,
            value: needed as u32,
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
