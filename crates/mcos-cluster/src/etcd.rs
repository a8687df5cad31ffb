//! A small synchronous client of etcd's JSON gateway (the grpc-gateway etcd v3.4+ serves on its
//! client port under `/v3/`), over HTTP/1.1 on `std::net::TcpStream`.
//!
//! Why not the gRPC client: `etcd-client` (tonic) generates its code with `protoc` at build
//! time, so a machine with only the Rust toolchain could not build the daemon. The gateway
//! speaks the same API as JSON: int64 fields travel as strings, keys and values as base64,
//! streaming calls (watch, lease keep-alive) answer a chunked body of one JSON object per
//! line, `{"result": ...}` or `{"error": ...}`.
//!
//! Everything read from the network is bounded: the response head (line length and count),
//! each body (`max` bytes), each chunk-size line, each streamed line. Malformed input is an
//! error, never a panic; every read has a timeout.

use serde_json::{Value, json};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Longest line of a response head (status line or one header).
const MAX_HEAD_LINE: usize = 8 << 10;
/// Most header lines in a response head.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line (size, extensions) of a chunked body.
const MAX_CHUNK_LINE: usize = 1 << 10;
/// Bytes asked of the socket per read.
const READ_BYTES: usize = 64 << 10;

type Res<T> = Result<T, String>;

// ---------------------------------------------------------------------------------------------
// base64 (standard alphabet, padded), as the gateway encodes `bytes` fields.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard, padded base64 of `data`.
pub(crate) fn b64encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional, URL-safe letters accepted); None if malformed.
pub(crate) fn b64decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover sextet cannot come from whole bytes.
    (bits < 6).then_some(out)
}

// ---------------------------------------------------------------------------------------------
// JSON helpers: proto3 JSON omits default values and writes int64 as strings.

/// An int64 field: a JSON string or number; absent means 0.
pub(crate) fn int(v: &Value, field: &str) -> Res<i64> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| format!("etcd sent {field}={s:?}, not an integer")),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("etcd sent {field}={n}, not an int64")),
        Some(other) => Err(format!("etcd sent {field}={other}, not an integer")),
    }
}

/// A bool field; absent means false.
pub(crate) fn flag(v: &Value, field: &str) -> bool {
    v.get(field).and_then(Value::as_bool).unwrap_or(false)
}

/// A bytes field, decoded; absent means empty.
pub(crate) fn bytes(v: &Value, field: &str) -> Res<Vec<u8>> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => {
            b64decode(s).ok_or_else(|| format!("etcd sent {field} that is not base64"))
        }
        Some(_) => Err(format!("etcd sent {field} that is not a string")),
    }
}

/// An array field; absent means empty.
pub(crate) fn list<'a>(v: &'a Value, field: &str) -> &'a [Value] {
    v.get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The revision in a response's header.
pub(crate) fn header_revision(v: &Value) -> Res<i64> {
    v.get("header").map_or(Ok(0), |h| int(h, "revision"))
}

/// The gateway's error object (`{"error": "...", "message": "...", "code": N}`) as text.
fn error_text(v: &Value) -> String {
    let e = v.get("error").unwrap_or(v);
    if let Some(m) = e.get("message").and_then(Value::as_str) {
        return m.to_string();
    }
    if let Some(m) = e.as_str() {
        return m.to_string();
    }
    e.to_string().chars().take(200).collect()
}

/// `[key, key + 1)` over the last byte: the `range_end` of a prefix.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // all keys
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 framing, as pure state machines (unit-tested byte by byte).

/// Decodes a chunked body fed in arbitrary pieces.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
}

#[derive(Debug, PartialEq)]
enum ChunkState {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk: this many data bytes left.
    Data(u64),
    /// After a chunk's data: expecting its CRLF (bytes of it seen).
    DataEnd(u8),
    /// After the last (zero) chunk: trailer lines until an empty one.
    Trailer,
    /// The body is complete.
    Done,
}

impl ChunkedDecoder {
    pub(crate) fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size,
            line: Vec::new(),
        }
    }

    /// Whether the terminating chunk (and trailer) has been read.
    pub(crate) fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes `input`, appending body bytes to `out`. Returns how many input bytes it used
    /// (less than all only once the body is complete).
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Res<usize> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                ChunkState::Done => break,
                ChunkState::Data(left) => {
                    let n = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd(0)
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd(seen) => {
                    let want = if seen == 0 { b'\r' } else { b'\n' };
                    if input[i] != want {
                        return Err("chunked body: chunk data not followed by CRLF".into());
                    }
                    i += 1;
                    self.state = if seen == 0 {
                        ChunkState::DataEnd(1)
                    } else {
                        ChunkState::Size
                    };
                }
                ChunkState::Size | ChunkState::Trailer => {
                    let b = input[i];
                    i += 1;
                    if b != b'\n' {
                        if self.line.len() >= MAX_CHUNK_LINE {
                            return Err(format!(
                                "chunked body: a chunk-size or trailer line over {MAX_CHUNK_LINE} bytes"
                            ));
                        }
                        self.line.push(b);
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    if self.state == ChunkState::Trailer {
                        if line.is_empty() {
                            self.state = ChunkState::Done;
                        }
                        continue;
                    }
                    let size = line.split(|&c| c == b';').next().unwrap_or(&[]);
                    let size = std::str::from_utf8(size)
                        .ok()
                        .map(str::trim)
                        .filter(|s| !s.is_empty() && s.len() <= 15)
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .ok_or_else(|| {
                            format!(
                                "chunked body: bad chunk size {:?}",
                                String::from_utf8_lossy(&line[..line.len().min(40)])
                            )
                        })?;
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
            }
        }
        Ok(i)
    }
}

/// Splits a streamed body into lines (`\n`, optional `\r`), refusing any longer than `max`.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
    /// Bytes of `pending` already known to hold no newline.
    scanned: usize,
    max: usize,
}

impl LineSplitter {
    pub(crate) fn new(max: usize) -> LineSplitter {
        LineSplitter {
            pending: Vec::new(),
            scanned: 0,
            max,
        }
    }

    /// Adds body bytes.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
    }

    /// The next complete, non-empty line, if any; Err once a line exceeds the bound.
    pub(crate) fn next_line(&mut self) -> Res<Option<Vec<u8>>> {
        loop {
            let Some(pos) = self.pending[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
            else {
                self.scanned = self.pending.len();
                if self.pending.len() > self.max {
                    return Err(format!("a streamed line over {} bytes", self.max));
                }
                return Ok(None);
            };
            let end = self.scanned + pos;
            if end > self.max {
                return Err(format!("a streamed line over {} bytes", self.max));
            }
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            self.scanned = 0;
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some(line));
            }
        }
    }
}

/// How a response body is delimited.
#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
struct Head {
    status: u16,
    framing: Framing,
    close: bool,
}

/// Parses a response head (without the final empty line's terminator handling: `raw` holds
/// every byte up to and including the `\r\n\r\n`).
fn parse_head(raw: &[u8]) -> Res<Head> {
    let text = std::str::from_utf8(raw).map_err(|_| "a response head that is not UTF-8")?;
    if text.split('\n').any(|l| l.len() > MAX_HEAD_LINE) {
        return Err(format!("a response head line over {MAX_HEAD_LINE} bytes"));
    }
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        let start: String = status_line.chars().take(60).collect();
        return Err(format!("not an HTTP/1.x response: {start:?}"));
    }
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
        let start: String = status_line.chars().take(60).collect();
        format!("bad status line {start:?}")
    })?;
    let mut framing = Framing::UntilClose;
    let mut close = version == "HTTP/1.0";
    let mut count = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        count += 1;
        if count > MAX_HEADERS {
            return Err(format!("a response head with over {MAX_HEADERS} headers"));
        }
        let Some((name, value)) = line.split_once(':') else {
            let start: String = line.chars().take(60).collect();
            return Err(format!("bad header line {start:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().ends_with("chunked") {
                framing = Framing::Chunked(ChunkedDecoder::new());
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if !matches!(framing, Framing::Chunked(_)) {
                framing = Framing::Length(
                    value
                        .parse()
                        .map_err(|_| format!("bad Content-Length {value:?}"))?,
                );
            }
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if matches!(framing, Framing::UntilClose) {
        close = true;
    }
    Ok(Head {
        status,
        framing,
        close,
    })
}

// ---------------------------------------------------------------------------------------------
// Connections.

/// An etcd endpoint: what to dial and the Host header to send.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    host: String,
    addrs: Vec<SocketAddr>,
}

impl Endpoint {
    /// Parses `host:port` or `http://host:port[/]` and resolves it.
    pub(crate) fn resolve(spec: &str) -> Res<Endpoint> {
        let s = spec.trim();
        if s.starts_with("https://") {
            return Err(format!(
                "{spec}: TLS to etcd is not supported; use an http:// endpoint"
            ));
        }
        let host = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(format!("{spec:?} is not host:port"));
        }
        let addrs: Vec<SocketAddr> = host
            .to_socket_addrs()
            .map_err(|e| format!("{spec}: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{spec}: no address"));
        }
        Ok(Endpoint {
            host: host.to_string(),
            addrs,
        })
    }

    fn dial(&self, timeout: Duration) -> Res<TcpStream> {
        let mut last = String::new();
        for a in &self.addrs {
            match TcpStream::connect_timeout(a, timeout) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = format!("{a}: {e}"),
            }
        }
        Err(format!("connect {}: {last}", self.host))
    }
}

/// One HTTP/1.1 connection with its read buffer.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..]`.
    start: usize,
}

impl Conn {
    fn new(s: TcpStream) -> Conn {
        Conn {
            s,
            buf: Vec::new(),
            start: 0,
        }
    }

    fn send(&mut self, ep: &Endpoint, path: &str, body: &[u8], timeout: Duration) -> Res<()> {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n",
            ep.host,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.s
            .set_write_timeout(Some(timeout))
            .map_err(|e| format!("{path}: {e}"))?;
        self.s
            .write_all(&req)
            .map_err(|e| format!("{path}: sending: {e}"))
    }

    /// Reads more bytes, waiting at most `wait`. Ok(false): nothing arrived in time.
    fn fill(&mut self, wait: Duration) -> Res<bool> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.s
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(|e| e.to_string())?;
        let old = self.buf.len();
        self.buf.resize(old + READ_BYTES, 0);
        let r = self.s.read(&mut self.buf[old..]);
        match r {
            Ok(0) => {
                self.buf.truncate(old);
                Err("etcd closed the connection".into())
            }
            Ok(n) => {
                self.buf.truncate(old + n);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                self.buf.truncate(old);
                Ok(false)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {
                self.buf.truncate(old);
                Ok(false)
            }
            Err(e) => {
                self.buf.truncate(old);
                Err(format!("reading: {e}"))
            }
        }
    }

    /// Reads a response head before `deadline`.
    fn read_head(&mut self, deadline: Instant) -> Res<Head> {
        let mut scanned: usize = 0;
        loop {
            let unread = &self.buf[self.start..];
            if let Some(p) = unread[scanned.saturating_sub(3)..]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
            {
                let end = scanned.saturating_sub(3) + p + 4;
                let head = parse_head(&unread[..end]);
                self.start += end;
                return head;
            }
            scanned = unread.len();
            if scanned > MAX_HEAD_LINE * (MAX_HEADERS + 1) {
                return Err("a response head too long".into());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err("timed out waiting for etcd's answer".into());
            }
            self.fill(deadline - now)?;
        }
    }

    /// Takes the unread buffered bytes.
    fn take_unread(&mut self) -> Vec<u8> {
        let v = self.buf[self.start..].to_vec();
        self.buf.clear();
        self.start = 0;
        v
    }

    /// Reads a whole body of at most `max` bytes before `deadline`.
    fn read_body(&mut self, head: &mut Head, max: usize, deadline: Instant) -> Res<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let unread = &self.buf[self.start..];
            match &mut head.framing {
                Framing::Length(n) => {
                    if *n > max as u64 {
                        return Err(format!("an answer of {n} bytes, over {max}"));
                    }
                    let want = *n as usize - body.len();
                    let take = want.min(unread.len());
                    body.extend_from_slice(&unread[..take]);
                    self.start += take;
                    if body.len() == *n as usize {
                        return Ok(body);
                    }
                }
                Framing::Chunked(d) => {
                    let used = d.feed(unread, &mut body)?;
                    self.start += used;
                    if body.len() > max {
                        return Err(format!("an answer over {max} bytes"));
                    }
                    if d.done() {
                        return Ok(body);
                    }
                }
                Framing::UntilClose => {
                    body.extend_from_slice(unread);
                    self.start = self.buf.len();
                    if body.len() > max {
                        return Err(format!("an answer over {max} bytes"));
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err("timed out reading etcd's answer".into());
            }
            match self.fill(deadline - now) {
                Ok(_) => {}
                Err(_) if matches!(head.framing, Framing::UntilClose) => return Ok(body),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sets TCP keep-alive probes on `s` (idle 1 s, every 1 s, 2 unanswered: dead): a watch stream
/// that carries no event for long still notices a peer that vanished, without adding requests
/// to etcd.
fn keepalive(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    let set = |level: i32, opt: i32, v: i32| {
        // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int and its size.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                opt,
                (&v as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 2);
}

/// A client of one etcd endpoint, for unary calls, over one kept-alive connection.
pub(crate) struct Client {
    ep: Endpoint,
    conn: Option<Conn>,
    timeout: Duration,
}

impl Client {
    /// Connects to the first of `endpoints` that accepts, within `timeout` each, trying them
    /// from the `first`-th (modulo their number) on: a caller that retries passes its attempt
    /// count, so an endpoint that accepts connections but fails calls is not tried for ever.
    pub(crate) fn connect(endpoints: &[String], first: usize, timeout: Duration) -> Res<Client> {
        let mut errs = Vec::new();
        let n = endpoints.len().max(1);
        for spec in endpoints
            .iter()
            .cycle()
            .skip(first % n)
            .take(endpoints.len())
        {
            let ep = match Endpoint::resolve(spec) {
                Ok(ep) => ep,
                Err(e) => {
                    errs.push(e);
                    continue;
                }
            };
            match ep.dial(timeout) {
                Ok(s) => {
                    keepalive(&s);
                    return Ok(Client {
                        ep,
                        conn: Some(Conn::new(s)),
                        timeout,
                    });
                }
                Err(e) => errs.push(e),
            }
        }
        Err(errs.join("; "))
    }

    /// POSTs `req` to `path` and returns the answer's JSON (at most `max` bytes). For a
    /// streaming call the answer is its first `result`.
    pub(crate) fn call(&mut self, path: &str, req: &Value, max: usize) -> Res<Value> {
        let deadline = Instant::now() + self.timeout;
        let body = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        let fresh = |ep: &Endpoint| -> Res<Conn> {
            let s = ep.dial(deadline.saturating_duration_since(Instant::now()))?;
            keepalive(&s);
            Ok(Conn::new(s))
        };
        let exchange = |conn: &mut Conn| -> Res<Head> {
            conn.send(&self.ep, path, &body, self.timeout)?;
            conn.read_head(deadline)
        };
        let (mut conn, mut head) = match self.conn.take() {
            Some(mut c) => match exchange(&mut c) {
                Ok(h) => (c, h),
                // etcd closed the kept-alive connection while it was idle (nothing of an
                // answer came, time is left): once more on a fresh one.
                Err(_) if c.start == c.buf.len() && Instant::now() < deadline => {
                    let mut c = fresh(&self.ep)?;
                    let h = exchange(&mut c).map_err(|e| format!("{path}: {e}"))?;
                    (c, h)
                }
                Err(e) => return Err(format!("{path}: {e}")),
            },
            None => {
                let mut c = fresh(&self.ep)?;
                let h = exchange(&mut c).map_err(|e| format!("{path}: {e}"))?;
                (c, h)
            }
        };
        let body = conn
            .read_body(&mut head, max, deadline)
            .map_err(|e| format!("{path}: {e}"))?;
        if !head.close && conn.start == conn.buf.len() {
            self.conn = Some(conn);
        }
        // A streaming answer: one JSON object per line; the first is ours.
        let first = body
            .split(|&b| b == b'\n')
            .find(|l| !l.iter().all(u8::is_ascii_whitespace))
            .unwrap_or(&[]);
        let v: Value = serde_json::from_slice(first).map_err(|e| {
            format!(
                "{path}: HTTP {}: an answer that is not JSON ({e}): {:?}",
                head.status,
                String::from_utf8_lossy(&first[..first.len().min(120)])
            )
        })?;
        if head.status != 200 || v.get("error").is_some() {
            return Err(format!("{path}: HTTP {}: {}", head.status, error_text(&v)));
        }
        Ok(match v {
            Value::Object(mut m) if m.contains_key("result") => {
                m.remove("result").unwrap_or(Value::Null)
            }
            v => v,
        })
    }

    /// Opens a watch of `[key, range_end)` from `start_revision`, on a connection of its own.
    pub(crate) fn watch(
        &self,
        key: &[u8],
        range_end: &[u8],
        start_revision: i64,
        max_line: usize,
    ) -> Res<WatchStream> {
        let s = self.ep.dial(self.timeout)?;
        keepalive(&s);
        let mut conn = Conn::new(s);
        let req = json!({"create_request": {
            "key": b64encode(key),
            "range_end": b64encode(range_end),
            "start_revision": start_revision.to_string(),
        }});
        let body = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
        conn.send(&self.ep, "/v3/watch", &body, self.timeout)?;
        let deadline = Instant::now() + self.timeout;
        let head = conn
            .read_head(deadline)
            .map_err(|e| format!("/v3/watch: {e}"))?;
        if head.status != 200 {
            let mut head = head;
            let body = conn
                .read_body(&mut head, 64 << 10, deadline)
                .unwrap_or_default();
            return Err(format!(
                "/v3/watch: HTTP {}: {}",
                head.status,
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
        let mut w = WatchStream {
            conn,
            framing: head.framing,
            lines: LineSplitter::new(max_line),
        };
        let pending = w.conn.take_unread();
        w.absorb(&pending)?;
        Ok(w)
    }
}

/// A watch's stream of responses.
pub(crate) struct WatchStream {
    conn: Conn,
    framing: Framing,
    lines: LineSplitter,
}

impl WatchStream {
    fn absorb(&mut self, data: &[u8]) -> Res<()> {
        match &mut self.framing {
            Framing::Chunked(d) => {
                let mut body = Vec::new();
                d.feed(data, &mut body)?;
                self.lines.push(&body);
                if d.done() {
                    // The lines already in hand are still delivered; the next poll fails.
                    self.framing = Framing::Length(0);
                }
            }
            Framing::Length(_) | Framing::UntilClose => self.lines.push(data),
        }
        Ok(())
    }

    /// The next watch response (the `result` object), waiting at most `wait`; Ok(None) if none
    /// came. Err: the stream ended or broke (an `{"error": ...}` line included).
    pub(crate) fn next(&mut self, wait: Duration) -> Res<Option<Value>> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(line) = self.lines.next_line()? {
                let v: Value = serde_json::from_slice(&line)
                    .map_err(|e| format!("watch: a line that is not JSON: {e}"))?;
                if let Some(r) = v.get("result") {
                    return Ok(Some(r.clone()));
                }
                return Err(format!("watch: {}", error_text(&v)));
            }
            if matches!(self.framing, Framing::Length(0)) {
                return Err("the watch stream ended".into());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            if self.conn.fill(deadline - now)? {
                let data = self.conn.take_unread();
                self.absorb(&data)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_garbage() {
        for s in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0xff, 0, 7],
        ] {
            let e = b64encode(s);
            assert_eq!(b64decode(&e).as_deref(), Some(s), "{e}");
        }
        assert_eq!(b64encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64encode(b"fo"), "Zm8=");
        assert_eq!(b64decode("L2EvbWVtYmVycy8="), Some(b"/a/members/".to_vec()));
        assert_eq!(b64decode("Zm9v!"), None);
        assert_eq!(b64decode("Z"), None);
    }

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }

    fn chunked(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
            v.extend_from_slice(p);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(b"0\r\n\r\n");
        v
    }

    /// Feeds `wire` to a decoder and a line splitter in pieces of `step` bytes.
    fn lines_of(wire: &[u8], step: usize) -> Res<(Vec<Vec<u8>>, bool)> {
        let mut d = ChunkedDecoder::new();
        let mut ls = LineSplitter::new(64);
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            let mut body = Vec::new();
            let used = d.feed(piece, &mut body)?;
            assert_eq!(used, piece.len());
            ls.push(&body);
            while let Some(l) = ls.next_line()? {
                out.push(l);
            }
        }
        Ok((out, d.done()))
    }

    #[test]
    fn a_chunked_stream_split_anywhere_gives_the_same_lines() {
        // Lines that straddle chunks, a chunk holding two lines, CRLF line ends, extensions.
        let mut wire = chunked(&[
            b"{\"result\":{\"a\":1}}\n{\"res",
            b"ult\":{\"b\":2}}\r",
            b"\n",
            b"\n{\"result\":{}}\n",
        ]);
        wire.splice(0..0, b"".iter().copied());
        let want: Vec<Vec<u8>> = vec![
            b"{\"result\":{\"a\":1}}".to_vec(),
            b"{\"result\":{\"b\":2}}".to_vec(),
            b"{\"result\":{}}".to_vec(),
        ];
        for step in 1..=wire.len() {
            let (got, done) = lines_of(&wire, step).unwrap();
            assert_eq!(got, want, "step {step}");
            assert!(done, "step {step}");
        }
        // A chunk-size line with an extension and upper-case hex.
        let mut d = ChunkedDecoder::new();
        let mut body = Vec::new();
        d.feed(b"A;x=y\r\n0123456789\r\n0\r\nTrailer: 1\r\n\r\n", &mut body)
            .unwrap();
        assert_eq!(body, b"0123456789");
        assert!(d.done());
    }

    #[test]
    fn malformed_or_oversized_input_is_an_error_not_a_panic() {
        let mut body = Vec::new();
        assert!(ChunkedDecoder::new().feed(b"zz\r\n", &mut body).is_err());
        assert!(ChunkedDecoder::new().feed(b"\r\n", &mut body).is_err());
        assert!(
            ChunkedDecoder::new()
                .feed(b"ffffffffffffffffffff\r\n", &mut body)
                .is_err()
        );
        assert!(ChunkedDecoder::new().feed(b"3\r\nabcX", &mut body).is_err());
        // An endless chunk-size line is refused once over the bound, not buffered for ever.
        let mut d = ChunkedDecoder::new();
        let junk = vec![b'1'; 600];
        assert!(d.feed(&junk, &mut body).is_ok());
        assert!(d.feed(&junk, &mut body).is_err());
        // A line longer than the splitter's bound, complete or not.
        let wire = chunked(&[&[b'x'; 100], b"\n"]);
        for step in [1, 7, wire.len()] {
            assert!(lines_of(&wire, step).is_err(), "step {step}");
        }
        let mut ls = LineSplitter::new(8);
        ls.push(b"123456789");
        assert!(ls.next_line().is_err());
        let mut ls = LineSplitter::new(8);
        ls.push(b"12345678\n1");
        assert_eq!(ls.next_line().unwrap(), Some(b"12345678".to_vec()));
        assert_eq!(ls.next_line().unwrap(), None);
    }

    #[test]
    fn response_heads_parse_and_bad_ones_are_refused() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(h.status, 200);
        assert!(matches!(h.framing, Framing::Chunked(_)));
        assert!(!h.close);
        let h = parse_head(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 19\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.status, 404);
        assert!(matches!(h.framing, Framing::Length(19)));
        assert!(h.close);
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\xff: x\r\n\r\n").is_err());
        // Multi-byte characters cut at the quoting bound, a head line over its bound.
        let long = format!("HTTP/1.1 200 OK\r\n{}\r\n\r\n", "\u{e9}".repeat(100));
        assert!(parse_head(long.as_bytes()).is_err());
        let long = format!("{}\r\n\r\n", "\u{e9}".repeat(100));
        assert!(parse_head(long.as_bytes()).is_err());
        let long = format!(
            "HTTP/1.1 200 OK\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_LINE)
        );
        assert!(parse_head(long.as_bytes()).is_err());
        let e: Value = serde_json::from_str(&format!(
            r#"{{"error":{{"x":"{}"}}}}"#,
            "\u{e9}".repeat(300)
        ))
        .unwrap();
        assert_eq!(error_text(&e).chars().count(), 200);
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "A: b\r\n".repeat(65));
        assert!(parse_head(many.as_bytes()).is_err());
    }

    #[test]
    fn json_fields_read_as_the_gateway_writes_them() {
        let v: Value = serde_json::from_str(
            r#"{"header":{"revision":"42"},"ID":"7587","TTL":3,"kvs":[{"key":"YQ=="}],"ok":true}"#,
        )
        .unwrap();
        assert_eq!(header_revision(&v).unwrap(), 42);
        assert_eq!(int(&v, "ID").unwrap(), 7587);
        assert_eq!(int(&v, "TTL").unwrap(), 3);
        assert_eq!(int(&v, "missing").unwrap(), 0);
        assert!(int(&v, "kvs").is_err());
        assert!(flag(&v, "ok"));
        assert_eq!(bytes(&list(&v, "kvs")[0], "key").unwrap(), b"a");
        assert!(list(&v, "none").is_empty());
    }
}
