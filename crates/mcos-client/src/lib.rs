//! Rust client of `mcosd`.
//!
//! One API over both transports:
//! - **local** (`/path/to.sock` or `unix:/path`): the client creates a sealed shared region and
//!   passes it to the daemon; [`Client::get_into_region`] has the daemon copy each block from
//!   its tier straight into the region (the client's own memory), and
//!   [`Client::put_from_region`] has it read the block from there. The socket carries only
//!   28-byte descriptors and 8-byte statuses.
//! - **TCP** (`tcp://host:port` or `host:port`): payloads travel in the frames, batched.
//!
//! [`Client::put`], [`Client::get_into`] and [`Client::get`] work on both (on the local path
//! they stage through the region: one extra copy). Batches larger than the daemon's limits are
//! split. After a daemon restart the next call reconnects (and re-attaches the same region)
//! and retries once if the request is idempotent (put, get, exists, prefix, intents, stats);
//! pins are not retried, since the daemon that held them is gone.
//!
//! ```no_run
//! use mcos_client::{Client, Outcome};
//! use mcos_core::BlockKey;
//! let mut c = Client::connect("/run/user/1000/mcosd.sock", "default", "")?;
//! let key = BlockKey(42);
//! c.put(&[(key, &[7u8; 4096][..])])?;
//! let got = c.get_into_region(&[(key, 0, 4096)])?;            // lands in the region at 0
//! assert!(matches!(got[0], Outcome::Hit { .. }));
//! # Ok::<(), mcos_client::ClientError>(())
//! ```

#![warn(missing_docs)]

use mcos_core::BlockKey;
use mcos_proto::local::{Region, send_with_fd, write_all_vectored};
use mcos_proto::{
    ErrorCode, FLAG_DURABLE, FLAG_LOCAL, FLAG_PARENTS, FrameHeader, HEADER_BYTES, KEY_BYTES, Op,
    PROTOCOL_VERSION, PUT_DURABLE, REPLY, STATUS_BYTES, Status, Welcome, WireIntent, encode, reply,
    status,
};
use std::io::{self, IoSliceMut, Read};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

pub use mcos_proto::{
    DIRECT_PAYLOAD_OFFSET, SlotLayout, WireKvEvent as KvEvent, direct_slot_layout, intent_kind,
    kv_event_kind,
};

/// Why a call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The daemon cannot be reached (not running, or it went away and did not come back in
    /// time).
    #[error("mcosd at {addr} is not reachable: {source} (is the daemon running?)")]
    DaemonGone {
        /// Where the client looked.
        addr: String,
        /// What the socket said.
        source: io::Error,
    },
    /// Unknown tenant or wrong token.
    #[error("mcosd refused the credentials: {0}")]
    AuthRefused(String),
    /// Client and daemon speak different protocol versions.
    #[error("protocol version mismatch: {0}")]
    VersionMismatch(String),
    /// A region range or the region itself is too small for what was asked.
    #[error("the shared region holds {have} bytes; this call needs {needed}")]
    RegionTooSmall {
        /// Bytes needed.
        needed: u64,
        /// Bytes in the region.
        have: u64,
    },
    /// A region call on a connection without a region (TCP).
    #[error(
        "this connection has no shared region (TCP): use put/get, or connect over the Unix socket"
    )]
    NoRegion,
    /// The daemon refused the request (and closed the connection).
    #[error("mcosd refused the request ({code:?}): {message}")]
    Refused {
        /// Error code.
        code: ErrorCode,
        /// The daemon's message.
        message: String,
    },
    /// The daemon's reply did not follow the protocol.
    #[error("bad reply from mcosd: {0}")]
    Protocol(String),
    /// Arguments that cannot be sent (mismatched lengths, a block over the block size).
    #[error("{0}")]
    Invalid(String),
}

/// The result for one block of a batch.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// put: stored in `tier`.
    Stored {
        /// Tier (0 = fastest).
        tier: u8,
    },
    /// get: found in `tier`; `len` payload bytes were written.
    Hit {
        /// Tier it was found in.
        tier: u8,
        /// Payload bytes.
        len: u32,
    },
    /// pin, unpin, intent: done.
    Done,
    /// put: already stored (blocks are immutable).
    Present,
    /// durable put: stored in (or already in) the daemon's persistent tier `tier`, and
    /// fdatasync'd when the tier has `sync`: found after any restart.
    Durable {
        /// Tier (the persistent one).
        tier: u8,
    },
    /// get: not stored.
    Miss,
    /// put: the policy did not admit the block (`reason`: 1 admission sketch, 2 class quota,
    /// 3 no room, 4 directory full).
    Rejected {
        /// Reason code.
        reason: u32,
    },
    /// put: payload over the block size (`limit`); get: the range is shorter than the
    /// payload (`limit` = bytes needed).
    TooLarge {
        /// Block size or bytes needed.
        limit: u32,
    },
    /// put: the tenant's quota is full.
    QuotaExceeded,
    /// pin or intent: the block is not stored.
    NotResident,
    /// unpin: this session holds no pin on it.
    NotPinned,
    /// pin: too many pins on the block or in the session.
    Limit,
    /// The range falls outside the region.
    OutsideRegion,
    /// The node failed on this block (the others stand).
    Failed,
    /// Key 0 (reserved) or an unknown intent kind.
    Invalid,
}

impl Outcome {
    fn from_status(op: Op, s: Status) -> Outcome {
        match s.code {
            status::OK | status::PRESENT if op == Op::Put && s.value & PUT_DURABLE != 0 => {
                Outcome::Durable { tier: s.tier }
            }
            status::OK => match op {
                Op::Put => Outcome::Stored { tier: s.tier },
                Op::Get => Outcome::Hit {
                    tier: s.tier,
                    len: s.value,
                },
                _ => Outcome::Done,
            },
            status::PRESENT => Outcome::Present,
            status::MISS => Outcome::Miss,
            status::REJECTED => Outcome::Rejected { reason: s.value },
            status::TOO_LARGE => Outcome::TooLarge { limit: s.value },
            status::QUOTA => Outcome::QuotaExceeded,
            status::NOT_RESIDENT => Outcome::NotResident,
            status::NOT_PINNED => Outcome::NotPinned,
            status::LIMIT => Outcome::Limit,
            status::REGION => Outcome::OutsideRegion,
            status::INVALID => Outcome::Invalid,
            _ => Outcome::Failed,
        }
    }

    /// Whether the block is stored after a put (stored now or before).
    pub fn is_stored(&self) -> bool {
        matches!(
            self,
            Outcome::Stored { .. } | Outcome::Present | Outcome::Durable { .. }
        )
    }

    /// Whether a durable put made the block durable.
    pub fn is_durable(&self) -> bool {
        matches!(self, Outcome::Durable { .. })
    }

    /// Whether a get found it.
    pub fn is_hit(&self) -> bool {
        matches!(self, Outcome::Hit { .. })
    }
}

/// An intent for [`Client::intents`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClientIntent {
    /// Govern the block by this priority class from now on.
    Class(u8),
    /// Expect this many more uses.
    ExpectReuse(u32),
    /// The block is at `position` of `sequence` (drives sequential prefetch).
    Sequence {
        /// Sequence id.
        sequence: u32,
        /// Block index.
        position: u32,
    },
    /// The block belongs to a queued request.
    Queued,
}

/// Connection options.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Tenant name.
    pub tenant: String,
    /// Tenant token.
    pub token: String,
    /// Shared region size on the local path (0: 256 blocks of the daemon's block size).
    pub region_bytes: usize,
    /// How long a call waits for a restarted daemon before giving up.
    pub reconnect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            tenant: "default".into(),
            token: String::new(),
            region_bytes: 0,
            reconnect_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Debug)]
enum Target {
    Unix(PathBuf),
    Tcp(String),
}

impl Target {
    fn parse(addr: &str) -> Target {
        if let Some(p) = addr.strip_prefix("unix:") {
            Target::Unix(PathBuf::from(p))
        } else if let Some(a) = addr.strip_prefix("tcp://") {
            Target::Tcp(a.to_string())
        } else if addr.contains('/') || addr.ends_with(".sock") {
            Target::Unix(PathBuf::from(addr))
        } else {
            Target::Tcp(addr.to_string())
        }
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(x) => x.set_read_timeout(t),
            Stream::Tcp(x) => x.set_read_timeout(t),
        }
    }

    fn write_parts(&self, parts: &[&[u8]]) -> io::Result<()> {
        match self {
            Stream::Unix(x) => write_all_vectored(x, parts),
            Stream::Tcp(x) => write_all_vectored(x, parts),
        }
    }

    fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            Stream::Unix(x) => (&*x).read_vectored(bufs),
            Stream::Tcp(x) => (&*x).read_vectored(bufs),
        }
    }

    fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        match self {
            Stream::Unix(x) => (&*x).read_exact(buf),
            Stream::Tcp(x) => (&*x).read_exact(buf),
        }
    }
}

/// A connection to `mcosd`.
pub struct Client {
    target: Target,
    opts: ClientOptions,
    stream: Option<Stream>,
    region: Option<Arc<Region>>,
    welcome: Welcome,
    /// Bound on TCP connect, read and write (None: the kernel's).
    io_timeout: Option<Duration>,
    next_req: u32,
    buf: Vec<u8>,
    rbuf: Vec<u8>,
    statuses: Vec<Status>,
    /// Lookups carry `FLAG_LOCAL` (see [`Client::set_local_only`]).
    local_only: bool,
}

/// Connects to the first address of `addr` that answers within `t`.
fn connect_timeout(addr: &str, t: Duration) -> io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{addr} resolves to nothing"),
    );
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, t) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A transport failure (the daemon may have gone); the call may be retried after reconnect.
struct Broken(io::Error);

fn broken(e: io::Error) -> Broken {
    Broken(e)
}

impl Client {
    /// Connects as `tenant` with `token` (see [`Client::connect_with`]).
    pub fn connect(addr: &str, tenant: &str, token: &str) -> Result<Client, ClientError> {
        Client::connect_with(
            addr,
            ClientOptions {
                tenant: tenant.into(),
                token: token.into(),
                ..ClientOptions::default()
            },
        )
    }

    /// Connects to `addr`: a socket path (`/run/mcosd.sock`, `unix:PATH`) for the local path
    /// with a shared region, or `host:port` (`tcp://host:port`) for TCP.
    pub fn connect_with(addr: &str, opts: ClientOptions) -> Result<Client, ClientError> {
        Client::connect_inner(addr, opts, None)
    }

    /// [`Client::connect_with`] with a bound on every TCP connect, read and write: a peer that
    /// is partitioned away or hung (accepts, never answers) costs at most `timeout` per call,
    /// then the call fails with [`ClientError::DaemonGone`], instead of waiting for the
    /// kernel's retransmission limits (minutes).
    pub fn connect_with_timeout(
        addr: &str,
        opts: ClientOptions,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        if timeout.is_zero() {
            return Err(ClientError::Invalid("a zero timeout".into()));
        }
        Client::connect_inner(addr, opts, Some(timeout))
    }

    fn connect_inner(
        addr: &str,
        opts: ClientOptions,
        io_timeout: Option<Duration>,
    ) -> Result<Client, ClientError> {
        let target = Target::parse(addr);
        let mut c = Client {
            target,
            opts,
            io_timeout,
            stream: None,
            region: None,
            welcome: Welcome {
                version: 0,
                session_id: 0,
                block_bytes: 0,
                max_batch_blocks: 1,
                max_inflight_bytes: 0,
                lease_default_ms: 0,
                lease_max_ms: 0,
                server: String::new(),
            },
            next_req: 1,
            buf: Vec::new(),
            rbuf: Vec::new(),
            statuses: Vec::new(),
            local_only: false,
        };
        c.open()?;
        Ok(c)
    }

    fn addr(&self) -> String {
        match &self.target {
            Target::Unix(p) => p.display().to_string(),
            Target::Tcp(a) => a.clone(),
        }
    }

    fn gone(&self, source: io::Error) -> ClientError {
        ClientError::DaemonGone {
            addr: self.addr(),
            source,
        }
    }

    /// Connects, says hello, attaches the region (creating it on first connect).
    fn open(&mut self) -> Result<(), ClientError> {
        let stream = match &self.target {
            Target::Unix(p) => Stream::Unix(UnixStream::connect(p).map_err(|e| self.gone(e))?),
            Target::Tcp(a) => {
                let s = match self.io_timeout {
                    None => TcpStream::connect(a.as_str()).map_err(|e| self.gone(e))?,
                    Some(t) => {
                        let s = connect_timeout(a, t).map_err(|e| self.gone(e))?;
                        s.set_read_timeout(Some(t)).map_err(|e| self.gone(e))?;
                        s.set_write_timeout(Some(t)).map_err(|e| self.gone(e))?;
                        s
                    }
                };
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }
        };
        self.stream = Some(stream);
        let id = self.req_id();
        encode::hello(
            &mut self.buf,
            id,
            PROTOCOL_VERSION,
            &self.opts.tenant,
            self.opts.token.as_bytes(),
        );
        let addr = self.addr();
        let gone = |b: Broken| ClientError::DaemonGone {
            addr: addr.clone(),
            source: b.0,
        };
        self.exchange_raw(Op::Hello, id, &[], None, None)
            .map_err(gone)??;
        self.welcome =
            reply::decode_welcome(&self.rbuf).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if matches!(self.target, Target::Unix(_)) {
            if self.region.is_none() {
                let bytes = if self.opts.region_bytes == 0 {
                    256 * self.welcome.block_bytes as usize
                } else {
                    self.opts.region_bytes
                };
                self.region = Some(Arc::new(Region::create(bytes).map_err(|e| {
                    ClientError::Invalid(format!(
                        "cannot create a shared region of {bytes} bytes: {e}"
                    ))
                })?));
            }
            let (fd, len) = match &self.region {
                Some(r) => (r.fd(), r.len()),
                None => return Err(ClientError::NoRegion),
            };
            let id = self.req_id();
            encode::attach_region(&mut self.buf, id, len as u64);
            self.exchange_raw(Op::AttachRegion, id, &[], Some(fd), None)
                .map_err(gone)??;
        }
        Ok(())
    }

    fn req_id(&mut self) -> u32 {
        let id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1).max(1);
        id
    }

    /// Sends `self.buf` (plus `extra` parts, plus an fd) and reads the reply body into `rbuf`.
    /// Outer error: the transport broke. Inner: the daemon refused or replied badly.
    fn exchange_raw(
        &mut self,
        op: Op,
        id: u32,
        extra: &[&[u8]],
        fd: Option<i32>,
        scatter: Option<&mut [&mut [u8]]>,
    ) -> Result<Result<(), ClientError>, Broken> {
        let Some(stream) = self.stream.as_ref() else {
            return Err(Broken(io::ErrorKind::NotConnected.into()));
        };
        match (fd, stream) {
            (Some(fd), Stream::Unix(s)) => {
                send_with_fd(s, &self.buf, fd).map_err(broken)?;
                stream.write_parts(extra).map_err(broken)?;
            }
            _ => {
                let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + extra.len());
                parts.push(&self.buf);
                parts.extend_from_slice(extra);
                stream.write_parts(&parts).map_err(broken)?;
            }
        }
        let mut hb = [0u8; HEADER_BYTES];
        stream.read_exact(&mut hb).map_err(broken)?;
        // A reply may carry a whole inline get: allow the negotiated limit plus its table.
        let max = self.welcome.max_inflight_bytes.max(1 << 20) + 4096;
        let h = match FrameHeader::decode(&hb, max) {
            Ok(h) => h,
            Err(e) => return Ok(Err(ClientError::Protocol(e.to_string()))),
        };
        if let Some(bufs) = scatter.filter(|_| h.op == op as u8 | REPLY && h.req_id == id) {
            return read_scattered(stream, h.body_len as usize, &mut self.rbuf, bufs);
        }
        self.rbuf.resize(h.body_len as usize, 0);
        stream.read_exact(&mut self.rbuf).map_err(broken)?;
        if h.op == Op::Error as u8 {
            self.stream = None; // the daemon closes the connection after an error
            return Ok(Err(match reply::decode_error(&self.rbuf) {
                Ok((ErrorCode::AuthRefused, m)) => ClientError::AuthRefused(m),
                Ok((ErrorCode::VersionMismatch, m)) => ClientError::VersionMismatch(m),
                Ok((code, message)) => ClientError::Refused { code, message },
                Err(e) => ClientError::Protocol(e.to_string()),
            }));
        }
        if h.op != op as u8 | REPLY || h.req_id != id {
            return Ok(Err(ClientError::Protocol(format!(
                "expected the reply to {} #{id}, got op 0x{:02x} #{}",
                op.name(),
                h.op,
                h.req_id
            ))));
        }
        Ok(Ok(()))
    }

    /// Encodes with `enc` and exchanges; on a broken transport reconnects and, if `retry`,
    /// sends again once.
    fn call(
        &mut self,
        op: Op,
        retry: bool,
        enc: &dyn Fn(&mut Vec<u8>, u32),
        extra: &[&[u8]],
    ) -> Result<(), ClientError> {
        self.call_into(op, retry, enc, extra, None)
    }

    /// `call`, with an inline get's payloads read straight into `scatter` (one buffer per key).
    fn call_into(
        &mut self,
        op: Op,
        retry: bool,
        enc: &dyn Fn(&mut Vec<u8>, u32),
        extra: &[&[u8]],
        mut scatter: Option<&mut [&mut [u8]]>,
    ) -> Result<(), ClientError> {
        for attempt in 0..2 {
            if self.stream.is_none() {
                self.reconnect()?;
            }
            let id = self.req_id();
            enc(&mut self.buf, id);
            if self.local_only && matches!(op, Op::Get | Op::Exists | Op::Prefix) {
                self.buf[5] |= FLAG_LOCAL;
            }
            match self.exchange_raw(op, id, extra, None, scatter.as_deref_mut()) {
                Ok(r) => return r,
                Err(Broken(e)) => {
                    self.stream = None;
                    if !retry || attempt == 1 {
                        return Err(self.gone(e));
                    }
                }
            }
        }
        Err(self.gone(io::ErrorKind::NotConnected.into()))
    }

    /// Reconnects, waiting up to `reconnect_timeout` for the daemon to come back.
    pub fn reconnect(&mut self) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.opts.reconnect_timeout;
        loop {
            match self.open() {
                Ok(()) => return Ok(()),
                Err(ClientError::DaemonGone { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether gets, exists and prefix lookups are answered from this daemon's own tiers only
    /// (protocol flag `LOCAL`). Off by default: a daemon that is a pool member then asks a
    /// key's owners on a miss. A party that routes to the owners itself (a pool client, a
    /// daemon asking a peer) turns it on, so no request is forwarded twice.
    pub fn set_local_only(&mut self, on: bool) {
        self.local_only = on;
    }

    /// What the daemon said at hello (block size, limits, session id).
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Largest payload per block.
    pub fn block_bytes(&self) -> u32 {
        self.welcome.block_bytes
    }

    /// The shared region (local path only): write payloads here for
    /// [`Client::put_from_region`]; [`Client::get_into_region`] lands blocks here.
    pub fn region(&self) -> Option<Arc<Region>> {
        self.region.clone()
    }

    fn statuses(&mut self, op: Op, n: usize) -> Result<Vec<Outcome>, ClientError> {
        let rest = reply::decode_statuses(&self.rbuf, &mut self.statuses)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if self.statuses.len() != n || (op != Op::Get && !rest.is_empty()) {
            return Err(ClientError::Protocol(format!(
                "{} reply has {} statuses for {n} blocks",
                op.name(),
                self.statuses.len()
            )));
        }
        Ok(self
            .statuses
            .iter()
            .map(|&s| Outcome::from_status(op, s))
            .collect())
    }

    fn batch_len(&self) -> usize {
        self.welcome.max_batch_blocks.max(1) as usize
    }

    /// Stores blocks read from the region: (key, offset, length) each. The daemon copies each
    /// straight from the region into its tier.
    pub fn put_from_region(
        &mut self,
        class: u8,
        blocks: &[(BlockKey, u64, u32)],
    ) -> Result<Vec<Outcome>, ClientError> {
        self.put_from_region_flags(class, blocks, &[], 0)
    }

    fn put_from_region_flags(
        &mut self,
        class: u8,
        blocks: &[(BlockKey, u64, u32)],
        parents: &[BlockKey],
        flags: u8,
    ) -> Result<Vec<Outcome>, ClientError> {
        let have = self.region.as_ref().ok_or(ClientError::NoRegion)?.len() as u64;
        if let Some(&(_, off, len)) = blocks.iter().find(|&&(_, o, l)| o + u64::from(l) > have) {
            return Err(ClientError::RegionTooSmall {
                needed: off + u64::from(len),
                have,
            });
        }
        let mut out = Vec::with_capacity(blocks.len());
        let per = self.batch_len();
        for (c, chunk) in blocks.chunks(per).enumerate() {
            let pc = parents.get(c * per..c * per + chunk.len()).unwrap_or(&[]);
            self.call(
                Op::Put,
                true,
                &|b, id| {
                    encode::put_region(b, id, class, chunk);
                    b[5] |= flags;
                    if !pc.is_empty() {
                        encode::put_parents(b, pc, 0);
                    }
                },
                &[],
            )?;
            out.extend(self.statuses(Op::Put, chunk.len())?);
        }
        Ok(out)
    }

    /// Checks that every (key, offset, capacity) span lies inside the shared region.
    fn check_in_region(&self, blocks: &[(BlockKey, u64, u32)]) -> Result<(), ClientError> {
        let have = self.region.as_ref().ok_or(ClientError::NoRegion)?.len() as u64;
        match blocks.iter().find(|&&(_, o, c)| o + u64::from(c) > have) {
            Some(&(_, off, cap)) => Err(ClientError::RegionTooSmall {
                needed: off + u64::from(cap),
                have,
            }),
            None => Ok(()),
        }
    }

    /// Fetches blocks into the region: (key, offset, capacity) each. The daemon copies each
    /// verified block from its tier straight to that offset; nothing crosses the socket but
    /// descriptors and statuses.
    pub fn get_into_region(
        &mut self,
        blocks: &[(BlockKey, u64, u32)],
    ) -> Result<Vec<Outcome>, ClientError> {
        self.check_in_region(blocks)?;
        let mut out = Vec::with_capacity(blocks.len());
        for chunk in blocks.chunks(self.batch_len()) {
            self.call(
                Op::Get,
                true,
                &|b, id| encode::get_region(b, id, chunk),
                &[],
            )?;
            out.extend(self.statuses(Op::Get, chunk.len())?);
        }
        Ok(out)
    }

    /// How to lay out direct slots for [`Client::get_into_slots`] with this daemon's block
    /// size: slot bytes, alignment of each slot's offset, and where the payload starts.
    pub fn direct_slot_layout(&self) -> SlotLayout {
        direct_slot_layout(self.welcome.block_bytes)
    }

    /// Fetches blocks into direct slots of the region: (key, slot offset, slot bytes) each.
    /// A hit's payload is at `offset + DIRECT_PAYLOAD_OFFSET` (64; `Outcome::Hit::len` bytes);
    /// the slot's other bytes are unspecified. When a slot follows
    /// [`Client::direct_slot_layout`] (offset a multiple of `align`, at least `slot_bytes`
    /// long), a block the daemon holds on disk is read by the kernel straight into the slot
    /// (O_DIRECT) and verified there: no bounce buffer and no copy in the daemon. Any other
    /// slot of at least 64 bytes works too, through a bounce buffer. A block that fails
    /// verification is a miss, never returned. `TooLarge { limit }` counts the 64 bytes of
    /// header room. Needs a daemon of this release (flag `DIRECT`); an older one refuses the
    /// request as malformed and closes the connection.
    pub fn get_into_slots(
        &mut self,
        blocks: &[(BlockKey, u64, u32)],
    ) -> Result<Vec<Outcome>, ClientError> {
        self.check_in_region(blocks)?;
        if let Some(&(key, _, cap)) = blocks.iter().find(|b| b.2 < DIRECT_PAYLOAD_OFFSET) {
            return Err(ClientError::Invalid(format!(
                "the direct slot for key {key} has {cap} bytes, less than the \
                 {DIRECT_PAYLOAD_OFFSET} bytes of header room: size slots with \
                 direct_slot_layout()"
            )));
        }
        let mut out = Vec::with_capacity(blocks.len());
        for chunk in blocks.chunks(self.batch_len()) {
            let r = self.call(
                Op::Get,
                true,
                &|b, id| encode::get_region_direct(b, id, chunk),
                &[],
            );
            if let Err(ClientError::Refused {
                code: ErrorCode::Malformed,
                message,
            }) = r
            {
                return Err(ClientError::Refused {
                    code: ErrorCode::Malformed,
                    message: format!(
                        "{message} (direct-slot gets need a daemon of this release: use \
                         get_into_region with an older one)"
                    ),
                });
            }
            r?;
            out.extend(self.statuses(Op::Get, chunk.len())?);
        }
        Ok(out)
    }

    /// Stores blocks in the default class (see [`Client::put_class`]).
    pub fn put(&mut self, blocks: &[(BlockKey, &[u8])]) -> Result<Vec<Outcome>, ClientError> {
        self.put_class(0, blocks)
    }

    /// Stores blocks under priority `class`. Local path: staged through the region; TCP: the
    /// payloads travel in the frame.
    pub fn put_class(
        &mut self,
        class: u8,
        blocks: &[(BlockKey, &[u8])],
    ) -> Result<Vec<Outcome>, ClientError> {
        self.put_flags(class, blocks, &[], 0)
    }

    /// Stores blocks under priority `class`, naming each block's parent key: `parents[i]` is
    /// the key of the block `blocks[i]` extends (the previous block of a token prefix;
    /// [`BlockKey::NONE`]: none). The daemon salts it like the key and its KV events
    /// ([`KvEvent::parent`]) and snapshots carry it. `parents` must be as long as `blocks`.
    pub fn put_with_parents(
        &mut self,
        class: u8,
        blocks: &[(BlockKey, &[u8])],
        parents: &[BlockKey],
    ) -> Result<Vec<Outcome>, ClientError> {
        if parents.len() != blocks.len() {
            return Err(ClientError::Invalid(format!(
                "{} parent keys for {} blocks: give one per block (BlockKey::NONE for none)",
                parents.len(),
                blocks.len()
            )));
        }
        self.put_flags(class, blocks, parents, 0)
    }

    /// Durable put: each block is acknowledged [`Outcome::Durable`] only once it is in the
    /// daemon's persistent tier (and fdatasync'd when that tier has `sync`), so it is found
    /// after any restart of the daemon. A daemon without a persistent tier answers
    /// [`Outcome::Failed`]; a block already stored in a volatile tier answers
    /// [`Outcome::Present`] (not durable).
    pub fn put_durable(
        &mut self,
        class: u8,
        blocks: &[(BlockKey, &[u8])],
    ) -> Result<Vec<Outcome>, ClientError> {
        self.put_flags(class, blocks, &[], FLAG_DURABLE)
    }

    /// `parents`: empty (a put that names none, sent without [`FLAG_PARENTS`], as any daemon
    /// understands) or one per block.
    fn put_flags(
        &mut self,
        class: u8,
        blocks: &[(BlockKey, &[u8])],
        parents: &[BlockKey],
        flags: u8,
    ) -> Result<Vec<Outcome>, ClientError> {
        let bb = self.block_bytes() as usize;
        if let Some((k, p)) = blocks.iter().find(|(_, p)| p.len() > bb) {
            return Err(ClientError::Invalid(format!(
                "block {k} has {} bytes; the daemon's block size is {bb}",
                p.len()
            )));
        }
        let mut out = Vec::with_capacity(blocks.len());
        match self.region.as_ref().map(|r| r.len()) {
            Some(region_len) => {
                let per = (region_len / bb.max(1)).clamp(1, self.batch_len());
                for (c, chunk) in blocks.chunks(per).enumerate() {
                    let pc = parents.get(c * per..c * per + chunk.len()).unwrap_or(&[]);
                    let mut descs = Vec::with_capacity(chunk.len());
                    let r = self.region.clone().ok_or(ClientError::NoRegion)?;
                    for (i, (k, p)) in chunk.iter().enumerate() {
                        let off = (i * bb) as u64;
                        // SAFETY: this client owns the region between requests; no request
                        // is in flight while it stages.
                        let dst = unsafe { r.slice_mut(off, p.len()) }.ok_or(
                            ClientError::RegionTooSmall {
                                needed: off + p.len() as u64,
                                have: region_len as u64,
                            },
                        )?;
                        dst.copy_from_slice(p);
                        descs.push((*k, off, p.len() as u32));
                    }
                    out.extend(self.put_from_region_flags(class, &descs, pc, flags)?);
                }
            }
            None => {
                let limit = self.welcome.max_inflight_bytes as usize;
                let mut i = 0;
                while i < blocks.len() {
                    // As many blocks as fit the frame limit and the batch limit.
                    let entry = 20 + if parents.is_empty() { 0 } else { KEY_BYTES };
                    let mut bytes = 8;
                    let mut j = i;
                    while j < blocks.len()
                        && j - i < self.batch_len()
                        && (j == i || bytes + entry + blocks[j].1.len() <= limit)
                    {
                        bytes += entry + blocks[j].1.len();
                        j += 1;
                    }
                    let chunk = &blocks[i..j];
                    let pc = parents.get(i..j).unwrap_or(&[]);
                    let payloads: Vec<&[u8]> = chunk.iter().map(|(_, p)| *p).collect();
                    let total: usize = payloads.iter().map(|p| p.len()).sum();
                    self.call(
                        Op::Put,
                        true,
                        &|b, id| {
                            encode::put_inline(b, id, class, chunk);
                            b[5] |= flags;
                            if !pc.is_empty() {
                                encode::put_parents(b, pc, total);
                            }
                        },
                        &payloads,
                    )?;
                    out.extend(self.statuses(Op::Put, chunk.len())?);
                    i = j;
                }
            }
        }
        Ok(out)
    }

    /// Fetches blocks into the caller's buffers (one per key; a hit writes the payload at the
    /// start of its buffer). Local path: through the region; TCP: from the reply frame.
    pub fn get_into(
        &mut self,
        keys: &[BlockKey],
        bufs: &mut [&mut [u8]],
    ) -> Result<Vec<Outcome>, ClientError> {
        if keys.len() != bufs.len() {
            return Err(ClientError::Invalid(format!(
                "{} keys but {} buffers",
                keys.len(),
                bufs.len()
            )));
        }
        let bb = self.block_bytes() as usize;
        let mut out = Vec::with_capacity(keys.len());
        let per = match self.region.as_ref() {
            Some(r) => (r.len() / bb.max(1)).clamp(1, self.batch_len()),
            None => {
                let limit = self.welcome.max_inflight_bytes as usize;
                ((limit.saturating_sub(4)) / (STATUS_BYTES + bb)).clamp(1, self.batch_len())
            }
        };
        for (kc, bc) in keys.chunks(per).zip(bufs.chunks_mut(per)) {
            if self.region.is_some() {
                let descs: Vec<(BlockKey, u64, u32)> = kc
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| (k, (i * bb) as u64, bb as u32))
                    .collect();
                let res = self.get_into_region(&descs)?;
                let r = self.region.clone().ok_or(ClientError::NoRegion)?;
                for (i, (o, buf)) in res.iter().zip(bc.iter_mut()).enumerate() {
                    out.push(copy_hit(*o, buf, |len| {
                        // SAFETY: the reply arrived: the daemon no longer writes the region.
                        unsafe { r.slice((i * bb) as u64, len) }.unwrap_or(&[])
                    }));
                }
            } else {
                self.call_into(
                    Op::Get,
                    true,
                    &|b, id| encode::get_inline(b, id, kc),
                    &[],
                    Some(bc),
                )?;
                out.extend(
                    self.statuses(Op::Get, kc.len())?
                        .into_iter()
                        .zip(bc.iter())
                        .map(|(o, b)| match o {
                            Outcome::Hit { len, .. } if len as usize > b.len() => {
                                Outcome::TooLarge { limit: len }
                            }
                            o => o,
                        }),
                );
            }
        }
        Ok(out)
    }

    /// Fetches blocks as owned vectors (`None` for a miss).
    pub fn get(&mut self, keys: &[BlockKey]) -> Result<Vec<Option<Vec<u8>>>, ClientError> {
        let bb = self.block_bytes() as usize;
        let mut bufs: Vec<Vec<u8>> = keys.iter().map(|_| vec![0u8; bb]).collect();
        let res = {
            let mut views: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
            self.get_into(keys, &mut views)?
        };
        Ok(res
            .into_iter()
            .zip(bufs)
            .map(|(o, mut b)| match o {
                Outcome::Hit { len, .. } => {
                    b.truncate(len as usize);
                    Some(b)
                }
                _ => None,
            })
            .collect())
    }

    /// Per key, the tier it is stored in (no access is counted).
    pub fn exists(&mut self, keys: &[BlockKey]) -> Result<Vec<Option<u8>>, ClientError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(self.batch_len()) {
            self.call(
                Op::Exists,
                true,
                &|b, id| encode::key_list(b, Op::Exists, id, chunk),
                &[],
            )?;
            let v = reply::decode_exists(&self.rbuf)
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            out.extend(v);
        }
        Ok(out)
    }

    /// Length of the longest stored prefix of `keys` (no access is counted).
    pub fn longest_prefix(&mut self, keys: &[BlockKey]) -> Result<usize, ClientError> {
        let mut total = 0;
        for chunk in keys.chunks(self.batch_len()) {
            self.call(
                Op::Prefix,
                true,
                &|b, id| encode::key_list(b, Op::Prefix, id, chunk),
                &[],
            )?;
            let n = reply::decode_prefix(&self.rbuf)
                .map_err(|e| ClientError::Protocol(e.to_string()))? as usize;
            total += n;
            if n < chunk.len() {
                break;
            }
        }
        Ok(total)
    }

    /// Pins stored blocks under a lease of `ttl` (None: the daemon's default). A pin lasts
    /// until [`Client::unpin`], the lease's end, or this connection's end.
    pub fn pin(
        &mut self,
        keys: &[BlockKey],
        ttl: Option<Duration>,
    ) -> Result<Vec<Outcome>, ClientError> {
        let ttl_ms = ttl.map_or(0, |d| d.as_millis().clamp(1, u128::from(u32::MAX)) as u32);
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(self.batch_len()) {
            self.call(
                Op::Pin,
                false,
                &|b, id| encode::pin(b, id, ttl_ms, chunk),
                &[],
            )?;
            out.extend(self.statuses(Op::Pin, chunk.len())?);
        }
        Ok(out)
    }

    /// Releases pins this connection holds.
    pub fn unpin(&mut self, keys: &[BlockKey]) -> Result<Vec<Outcome>, ClientError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(self.batch_len()) {
            self.call(
                Op::Unpin,
                false,
                &|b, id| encode::key_list(b, Op::Unpin, id, chunk),
                &[],
            )?;
            out.extend(self.statuses(Op::Unpin, chunk.len())?);
        }
        Ok(out)
    }

    /// Delivers intents.
    pub fn intents(
        &mut self,
        intents: &[(BlockKey, ClientIntent)],
    ) -> Result<Vec<Outcome>, ClientError> {
        let wire: Vec<WireIntent> = intents
            .iter()
            .map(|&(key, i)| {
                let (kind, a, b) = match i {
                    ClientIntent::Class(c) => (intent_kind::SET_CLASS, u32::from(c), 0),
                    ClientIntent::ExpectReuse(n) => (intent_kind::EXPECT_REUSE, n, 0),
                    ClientIntent::Sequence { sequence, position } => {
                        (intent_kind::SEQUENCE, sequence, position)
                    }
                    ClientIntent::Queued => (intent_kind::QUEUED, 0, 0),
                };
                WireIntent { key, kind, a, b }
            })
            .collect();
        let mut out = Vec::with_capacity(wire.len());
        for chunk in wire.chunks(self.batch_len()) {
            self.call(
                Op::Intent,
                true,
                &|b, id| encode::intents(b, id, chunk),
                &[],
            )?;
            out.extend(self.statuses(Op::Intent, chunk.len())?);
        }
        Ok(out)
    }

    /// The daemon's and node's statistics, as JSON text.
    pub fn stats_json(&mut self) -> Result<String, ClientError> {
        self.call(
            Op::Stats,
            true,
            &|b, id| encode::empty(b, Op::Stats, id),
            &[],
        )?;
        Ok(String::from_utf8_lossy(&self.rbuf).into_owned())
    }

    /// The policy table in force, as JSON text.
    pub fn policy_json(&mut self) -> Result<String, ClientError> {
        self.call(
            Op::Policy,
            true,
            &|b, id| encode::empty(b, Op::Policy, id),
            &[],
        )?;
        Ok(String::from_utf8_lossy(&self.rbuf).into_owned())
    }

    /// Every block the daemon holds (keys as it stores them: see [`KvEventStream`]) with the
    /// sequence number of the last KV event the list reflects. Refused by a daemon without
    /// `kv_events`.
    pub fn kv_snapshot(&mut self) -> Result<KvSnapshot, ClientError> {
        self.call(
            Op::KvSnapshot,
            true,
            &|b, id| {
                encode::empty(b, Op::KvSnapshot, id);
                b[5] = FLAG_PARENTS;
            },
            &[],
        )?;
        let (seq, entries) = reply::decode_kv_snapshot(&self.rbuf, true)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(KvSnapshot {
            seq,
            blocks: entries.iter().map(|b| (b.key, b.tier)).collect(),
            parents: entries.iter().map(|b| b.parent).collect(),
        })
    }

    /// Subscribes to the daemon's KV events: this connection becomes the stream (open another
    /// client for requests). Events start after the reply; take a [`Client::kv_snapshot`] on
    /// another connection to learn what the daemon held before, and keep the events whose
    /// `seq` is above the snapshot's.
    pub fn subscribe(mut self) -> Result<KvEventStream, ClientError> {
        self.call(
            Op::Subscribe,
            false,
            &|b, id| {
                encode::empty(b, Op::Subscribe, id);
                b[5] = FLAG_PARENTS;
            },
            &[],
        )?;
        let (next_seq, node_id) = reply::decode_subscribed(&self.rbuf)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let stream = self.stream.take().ok_or(ClientError::Protocol(
            "the connection closed after subscribe".into(),
        ))?;
        // The daemon sends at least a heartbeat a second: silence this long is a lost daemon.
        stream
            .set_read_timeout(Some(KV_STREAM_SILENCE))
            .map_err(|e| self.gone(e))?;
        Ok(KvEventStream {
            stream,
            node_id,
            next_seq,
            max_body: self.welcome.max_inflight_bytes.max(1 << 20),
            rbuf: Vec::new(),
            addr: self.addr(),
        })
    }
}

/// How long a KV event stream may stay silent before the daemon counts as gone (it sends a
/// heartbeat frame every second).
const KV_STREAM_SILENCE: Duration = Duration::from_secs(5);

/// What a daemon holds, from [`Client::kv_snapshot`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvSnapshot {
    /// The last event the list reflects: apply the events with a higher `seq`.
    pub seq: u64,
    /// Every block and the tier it is in now (keys as the daemon stores them).
    pub blocks: Vec<(BlockKey, u8)>,
    /// `parents[i]`: `blocks[i]`'s parent key as its put named it, salted like the key
    /// ([`BlockKey::NONE`]: none named, or restored by the daemon at a warm restart).
    pub parents: Vec<BlockKey>,
}

/// A daemon's KV events (BlockStored / BlockRemoved), from [`Client::subscribe`].
///
/// Keys are the daemon's stored keys: a client key `k` of tenant `t` is
/// `k.salted(mcos_core::tenant_salt(t))`. Sequence numbers rise by one per event; a batch with
/// `lost > 0` (or a jump) means events were lost (the reader fell behind the daemon's ring):
/// resync from [`Client::kv_snapshot`].
pub struct KvEventStream {
    stream: Stream,
    node_id: String,
    next_seq: u64,
    max_body: u64,
    rbuf: Vec<u8>,
    addr: String,
}

impl KvEventStream {
    /// The daemon's id (its pool member id, else its address).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Sequence number the next event should carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Waits for the next frame (events, or a heartbeat within a second) and appends its
    /// events to `out`. Returns how many events were lost just before them (the daemon's count
    /// plus any jump in the sequence): 0 while the stream is complete.
    pub fn next_batch(&mut self, out: &mut Vec<KvEvent>) -> Result<u64, ClientError> {
        let gone = |e: io::Error, addr: &str| ClientError::DaemonGone {
            addr: addr.to_string(),
            source: e,
        };
        let mut hb = [0u8; HEADER_BYTES];
        self.stream
            .read_exact(&mut hb)
            .map_err(|e| gone(e, &self.addr))?;
        let h = FrameHeader::decode(&hb, self.max_body)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.rbuf.resize(h.body_len as usize, 0);
        self.stream
            .read_exact(&mut self.rbuf)
            .map_err(|e| gone(e, &self.addr))?;
        if h.op == Op::Error as u8 {
            return Err(match reply::decode_error(&self.rbuf) {
                Ok((code, message)) => ClientError::Refused { code, message },
                Err(e) => ClientError::Protocol(e.to_string()),
            });
        }
        if h.op != Op::KvEvents as u8 | REPLY {
            return Err(ClientError::Protocol(format!(
                "expected KV events, got op 0x{:02x}",
                h.op
            )));
        }
        let from = out.len();
        // The daemon flags frames whose events carry parent keys (it does when asked).
        let parents = h.flags & FLAG_PARENTS != 0;
        let lost = reply::decode_kv_events(&self.rbuf, parents, out)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        // The daemon's count covers the events it skipped; a jump it did not announce (which a
        // correct daemon never makes) is counted too, so a gap is never silent.
        let mut gap = 0;
        let mut expect = self.next_seq.saturating_add(lost);
        for e in &out[from..] {
            if e.seq < expect {
                return Err(ClientError::Protocol(format!(
                    "KV event {} after {}: the sequence went backwards",
                    e.seq,
                    expect - 1
                )));
            }
            gap += e.seq - expect;
            expect = e.seq + 1;
        }
        self.next_seq = expect;
        Ok(lost + gap)
    }
}

/// Reads a get reply whose header was read: the status table into `table`, then each hit's
/// payload straight into its buffer (no staging copy). A payload longer than its buffer is read
/// and dropped (the caller reports it as too large).
fn read_scattered(
    stream: &Stream,
    body_len: usize,
    table: &mut Vec<u8>,
    bufs: &mut [&mut [u8]],
) -> Result<Result<(), ClientError>, Broken> {
    let n_bytes = 4 + bufs.len() * STATUS_BYTES;
    if body_len < n_bytes {
        return Ok(Err(ClientError::Protocol(format!(
            "get reply of {body_len} bytes cannot hold {} statuses",
            bufs.len()
        ))));
    }
    table.resize(n_bytes, 0);
    stream.read_exact(table).map_err(broken)?;
    let mut left = body_len - n_bytes;
    // One vectored read per socket buffer-full: each hit lands in its own buffer.
    let mut sinks: Vec<Vec<u8>> = Vec::new();
    let mut lens = Vec::with_capacity(bufs.len());
    for i in 0..bufs.len() {
        let e = &table[4 + i * STATUS_BYTES..4 + (i + 1) * STATUS_BYTES];
        let len = if e[0] == status::OK {
            u32::from_le_bytes([e[4], e[5], e[6], e[7]]) as usize
        } else {
            0
        };
        if len > left {
            return Ok(Err(ClientError::Protocol(
                "get reply is shorter than its hits".into(),
            )));
        }
        left -= len;
        if len > bufs[i].len() {
            sinks.push(vec![0u8; len]);
        }
        lens.push(len);
    }
    {
        let mut sink_iter = sinks.iter_mut();
        let mut slices: Vec<IoSliceMut<'_>> = Vec::with_capacity(bufs.len());
        for (buf, &len) in bufs.iter_mut().zip(&lens) {
            if len == 0 {
                continue;
            }
            match buf.get_mut(..len) {
                Some(dst) => slices.push(IoSliceMut::new(dst)),
                None => match sink_iter.next() {
                    Some(s) => slices.push(IoSliceMut::new(s)),
                    None => return Ok(Err(ClientError::Protocol("sink accounting".into()))),
                },
            }
        }
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match stream.read_vectored(rest) {
                Ok(0) => return Err(Broken(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => IoSliceMut::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Broken(e)),
            }
        }
    }
    if left != 0 {
        return Ok(Err(ClientError::Protocol(format!(
            "{left} bytes after a get reply's payloads"
        ))));
    }
    Ok(Ok(()))
}

fn copy_hit<'s>(o: Outcome, buf: &mut [u8], src: impl FnOnce(usize) -> &'s [u8]) -> Outcome {
    match o {
        Outcome::Hit { len, .. } if len as usize > buf.len() => Outcome::TooLarge { limit: len },
        Outcome::Hit { len, .. } => {
            buf[..len as usize].copy_from_slice(src(len as usize));
            o
        }
        other => other,
    }
}
