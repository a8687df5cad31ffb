//! Message bodies: requests as the daemon decodes them (borrowed views, no per-block
//! allocation), the encoders a client uses, and the replies both sides share.

use crate::codec::{Reader, Writer};
use crate::{
    ErrorCode, FLAG_DIRECT, FLAG_DURABLE, FLAG_LOCAL, FLAG_PARENTS, FLAG_REGION, FrameHeader,
    HEADER_BYTES, KEY_BYTES, MAGIC, Op, ProtoError, REPLY, STATUS_BYTES,
};
use mcos_core::BlockKey;

/// Bytes of one put entry with its payload inline (key, length).
pub const PUT_INLINE_ENTRY: usize = KEY_BYTES + 4;
/// Bytes of one put entry naming a region range (key, length, offset).
pub const PUT_REGION_ENTRY: usize = KEY_BYTES + 4 + 8;
/// Bytes of one get entry answered inline (key).
pub const GET_INLINE_ENTRY: usize = KEY_BYTES;
/// Bytes of one get entry answered into the region (key, offset, capacity).
pub const GET_REGION_ENTRY: usize = KEY_BYTES + 8 + 4;
/// Bytes of one intent entry (key, kind, 3 reserved, a, b).
pub const INTENT_ENTRY: usize = KEY_BYTES + 4 + 4 + 4;

/// Bytes of one KV event on the wire (seq, kind, tier, 6 reserved, key).
pub const KV_EVENT_ENTRY: usize = 8 + 1 + 1 + 6 + KEY_BYTES;
/// Bytes of one KV event on a stream subscribed with [`FLAG_PARENTS`] (then the parent key).
pub const KV_EVENT_PARENT_ENTRY: usize = KV_EVENT_ENTRY + KEY_BYTES;
/// Bytes of one snapshot entry (key, tier, 7 reserved).
pub const KV_SNAPSHOT_ENTRY: usize = KEY_BYTES + 1 + 7;
/// Bytes of one snapshot entry asked for with [`FLAG_PARENTS`] (then the parent key).
pub const KV_SNAPSHOT_PARENT_ENTRY: usize = KV_SNAPSHOT_ENTRY + KEY_BYTES;

/// KV event kinds on the wire.
pub mod kv_event_kind {
    /// BlockStored: the block became readable on the node.
    pub const STORED: u8 = 1;
    /// BlockRemoved: the block left the node.
    pub const REMOVED: u8 = 2;
}

/// One KV event on the wire.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WireKvEvent {
    /// The node's sequence number (1, 2, ...; a jump means events were lost).
    pub seq: u64,
    /// One of [`kv_event_kind`]'s values.
    pub kind: u8,
    /// Stored: the tier it was stored in; removed: the tier it left from.
    pub tier: u8,
    /// The key as the node stores it (the writer's key salted with its tenant's salt).
    pub key: BlockKey,
    /// Stored: the parent key the put named, salted like `key` ([`BlockKey::NONE`]: none
    /// named, a removal, or a stream subscribed without [`FLAG_PARENTS`]).
    pub parent: BlockKey,
}

/// One block of a snapshot reply.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WireKvBlock {
    /// The key as the node stores it.
    pub key: BlockKey,
    /// The tier it is in now.
    pub tier: u8,
    /// Its parent key as its put named it ([`BlockKey::NONE`]: none, or not asked for).
    pub parent: BlockKey,
}

/// Per-block status codes of batch replies.
pub mod status {
    /// put: stored (tier); get: hit (tier, value = payload length); others: done.
    pub const OK: u8 = 0;
    /// put: the key was already stored (blocks are immutable).
    pub const PRESENT: u8 = 1;
    /// get: not stored (or found corrupt and dropped).
    pub const MISS: u8 = 2;
    /// put: the policy did not admit it (value = reason: 1 sketch, 2 tier full of pins).
    pub const REJECTED: u8 = 3;
    /// put: payload larger than the block size (value = block size); get: the range given is
    /// shorter than the payload (value = bytes needed).
    pub const TOO_LARGE: u8 = 4;
    /// put: the tenant's quota is full.
    pub const QUOTA: u8 = 5;
    /// pin or intent: the block is not stored.
    pub const NOT_RESIDENT: u8 = 6;
    /// unpin: this session holds no pin on the key.
    pub const NOT_PINNED: u8 = 7;
    /// pin: the block or the session holds as many pins as allowed.
    pub const LIMIT: u8 = 8;
    /// the range named falls outside the shared region.
    pub const REGION: u8 = 9;
    /// the node failed on this block (I/O error, stalled engine); others in the batch stand.
    pub const FAILED: u8 = 10;
    /// reserved key (0) or an intent kind that does not exist.
    pub const INVALID: u8 = 11;
}

/// Intent kinds on the wire.
pub mod intent_kind {
    /// Govern the block by class `a` from now on.
    pub const SET_CLASS: u8 = 1;
    /// Expect `a` more uses.
    pub const EXPECT_REUSE: u8 = 2;
    /// The block is at position `b` of sequence `a`.
    pub const SEQUENCE: u8 = 3;
    /// The block belongs to a queued request (class QUEUED).
    pub const QUEUED: u8 = 4;
}

/// One per-block result of a batch reply.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// One of [`status`]'s codes.
    pub code: u8,
    /// Tier the block was stored in or found in (0 = fastest), where it applies.
    pub tier: u8,
    /// Payload length, bytes needed, or reject reason, where it applies.
    pub value: u32,
}

impl Status {
    /// A status with no tier or value.
    pub fn code(code: u8) -> Status {
        Status {
            code,
            tier: 0,
            value: 0,
        }
    }
}

/// A hello: the first frame of every connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The client's protocol version.
    pub version: u16,
    /// Tenant name.
    pub tenant: &'a str,
    /// Tenant token (compared in constant time).
    pub token: &'a [u8],
}

/// The daemon's answer to a hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// The daemon's protocol version (equal to the client's).
    pub version: u16,
    /// This connection's session id (in logs and metrics).
    pub session_id: u64,
    /// Largest payload per block.
    pub block_bytes: u32,
    /// Most blocks per batch.
    pub max_batch_blocks: u32,
    /// Largest request or reply frame body.
    pub max_inflight_bytes: u64,
    /// Pin lease when a pin names none, ms.
    pub lease_default_ms: u32,
    /// Longest pin lease, ms.
    pub lease_max_ms: u32,
    /// The daemon's name and version.
    pub server: String,
}

/// Keys of an exists, prefix, pin or unpin request.
#[derive(Copy, Clone, Debug)]
pub struct KeyList<'a> {
    raw: &'a [u8],
}

impl<'a> KeyList<'a> {
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.raw.len() / KEY_BYTES
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The keys in order.
    pub fn iter(&self) -> impl Iterator<Item = BlockKey> + 'a {
        self.raw.chunks_exact(KEY_BYTES).map(|c| {
            let mut a = [0u8; KEY_BYTES];
            a.copy_from_slice(c);
            BlockKey(u128::from_le_bytes(a))
        })
    }
}

/// Where a put's payload is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// In the frame.
    Inline(&'a [u8]),
    /// `len` bytes at `offset` of the shared region.
    Region {
        /// Offset in the region.
        offset: u64,
        /// Bytes.
        len: u32,
    },
}

/// A batch put.
#[derive(Copy, Clone, Debug)]
pub struct PutBatch<'a> {
    /// Priority class of every block in the batch.
    pub class: u8,
    /// Payloads are in the region.
    pub region: bool,
    /// Durable put ([`FLAG_DURABLE`]).
    pub durable: bool,
    count: usize,
    entries: &'a [u8],
    /// n parent keys ([`FLAG_PARENTS`]), else empty.
    parents: &'a [u8],
    payloads: &'a [u8],
}

impl<'a> PutBatch<'a> {
    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the put names parent keys ([`FLAG_PARENTS`]).
    pub fn has_parents(&self) -> bool {
        !self.parents.is_empty()
    }

    /// Block `i`'s parent key as the client named it ([`BlockKey::NONE`]: none, or a put
    /// without [`FLAG_PARENTS`], or `i` out of range).
    pub fn parent(&self, i: usize) -> BlockKey {
        i.checked_mul(KEY_BYTES)
            .and_then(|at| self.parents.get(at..at + KEY_BYTES))
            .map_or(BlockKey::NONE, |p| {
                Reader::new(p).key().unwrap_or(BlockKey::NONE)
            })
    }

    /// (key, payload) per block, in order. Lengths were checked at decode.
    pub fn iter(&self) -> impl Iterator<Item = (BlockKey, Payload<'a>)> + 'a {
        let region = self.region;
        let payloads = self.payloads;
        let size = if region {
            PUT_REGION_ENTRY
        } else {
            PUT_INLINE_ENTRY
        };
        let mut at = 0usize;
        self.entries.chunks_exact(size).map(move |e| {
            let mut r = Reader::new(e);
            // In range: decode checked the entry sizes; an error cannot occur here.
            let key = r.key().unwrap_or(BlockKey::NONE);
            let len = r.u32().unwrap_or(0);
            if region {
                let offset = r.u64().unwrap_or(0);
                (key, Payload::Region { offset, len })
            } else {
                let p = &payloads[at..at + len as usize];
                at += len as usize;
                (key, Payload::Inline(p))
            }
        })
    }
}

/// A batch get.
#[derive(Copy, Clone, Debug)]
pub struct GetBatch<'a> {
    /// Answer into the region (else inline in the reply).
    pub region: bool,
    /// The region ranges are direct slots ([`crate::FLAG_DIRECT`]): payloads land at
    /// `offset + DIRECT_PAYLOAD_OFFSET`.
    pub direct: bool,
    count: usize,
    entries: &'a [u8],
}

/// Where a get's answer goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GetTarget {
    /// Into the reply frame.
    Inline,
    /// Into `capacity` bytes at `offset` of the region.
    Region {
        /// Offset in the region.
        offset: u64,
        /// Bytes available there.
        capacity: u32,
    },
}

impl<'a> GetBatch<'a> {
    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// (key, target) per block, in order.
    pub fn iter(&self) -> impl Iterator<Item = (BlockKey, GetTarget)> + 'a {
        let region = self.region;
        let size = if region {
            GET_REGION_ENTRY
        } else {
            GET_INLINE_ENTRY
        };
        self.entries.chunks_exact(size).map(move |e| {
            let mut r = Reader::new(e);
            let key = r.key().unwrap_or(BlockKey::NONE);
            if region {
                let offset = r.u64().unwrap_or(0);
                let capacity = r.u32().unwrap_or(0);
                (key, GetTarget::Region { offset, capacity })
            } else {
                (key, GetTarget::Inline)
            }
        })
    }
}

/// One intent on the wire.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WireIntent {
    /// The block.
    pub key: BlockKey,
    /// One of [`intent_kind`]'s values.
    pub kind: u8,
    /// First argument (class, uses, sequence).
    pub a: u32,
    /// Second argument (position).
    pub b: u32,
}

/// A batch of intents.
#[derive(Copy, Clone, Debug)]
pub struct IntentBatch<'a> {
    raw: &'a [u8],
}

impl<'a> IntentBatch<'a> {
    /// Number of intents.
    pub fn len(&self) -> usize {
        self.raw.len() / INTENT_ENTRY
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The intents in order.
    pub fn iter(&self) -> impl Iterator<Item = WireIntent> + 'a {
        self.raw.chunks_exact(INTENT_ENTRY).map(|e| {
            let mut r = Reader::new(e);
            let key = r.key().unwrap_or(BlockKey::NONE);
            let kind = r.u8().unwrap_or(0);
            let _ = r.bytes(3);
            WireIntent {
                key,
                kind,
                a: r.u32().unwrap_or(0),
                b: r.u32().unwrap_or(0),
            }
        })
    }
}

/// A decoded request.
#[derive(Clone, Debug)]
pub enum Request<'a> {
    /// Version, tenant, token.
    Hello(Hello<'a>),
    /// A shared region of `bytes` bytes (its fd travels beside the frame).
    AttachRegion {
        /// Size the client mapped.
        bytes: u64,
    },
    /// Batch put.
    Put(PutBatch<'a>),
    /// Batch get.
    Get(GetBatch<'a>),
    /// Where each key is stored.
    Exists(KeyList<'a>),
    /// Longest stored prefix.
    Prefix(KeyList<'a>),
    /// Pin under a lease (`ttl_ms` 0: the daemon's default lease).
    Pin {
        /// Lease, ms.
        ttl_ms: u32,
        /// Keys.
        keys: KeyList<'a>,
    },
    /// Release this session's pins.
    Unpin(KeyList<'a>),
    /// Intents.
    Intent(IntentBatch<'a>),
    /// Statistics.
    Stats,
    /// The policy table in force.
    Policy,
    /// Stream KV events on this connection from now on.
    Subscribe {
        /// Events carry parent keys ([`FLAG_PARENTS`]).
        parents: bool,
    },
    /// Every block the node holds.
    KvSnapshot {
        /// Entries carry parent keys ([`FLAG_PARENTS`]).
        parents: bool,
    },
}

fn count_and_entries<'a>(
    r: &mut Reader<'a>,
    entry: usize,
    max_batch: u32,
) -> Result<(usize, &'a [u8]), ProtoError> {
    let count = r.u32()?;
    if count > max_batch {
        return Err(ProtoError::TooLarge {
            len: u64::from(count),
            max: u64::from(max_batch),
        });
    }
    let count = count as usize;
    Ok((count, r.bytes(count * entry)?))
}

impl<'a> Request<'a> {
    /// Decodes a request body. `max_batch` bounds every batch's block count.
    pub fn decode(
        header: &FrameHeader,
        body: &'a [u8],
        max_batch: u32,
    ) -> Result<Request<'a>, ProtoError> {
        let op = Op::from_u8(header.op).ok_or(ProtoError::UnknownOp(header.op))?;
        let region = header.flags & FLAG_REGION != 0;
        let durable = header.flags & FLAG_DURABLE != 0;
        let local = header.flags & FLAG_LOCAL != 0;
        let parents = header.flags & FLAG_PARENTS != 0;
        let direct = header.flags & FLAG_DIRECT != 0;
        if header.flags & !(FLAG_REGION | FLAG_DURABLE | FLAG_LOCAL | FLAG_PARENTS | FLAG_DIRECT)
            != 0
            || (region && !matches!(op, Op::Put | Op::Get))
            || (direct && !(region && op == Op::Get))
            || (durable && op != Op::Put)
            || (local && !matches!(op, Op::Get | Op::Exists | Op::Prefix))
            || (parents && !matches!(op, Op::Put | Op::Subscribe | Op::KvSnapshot))
        {
            return Err(ProtoError::Malformed(format!(
                "flags 0x{:02x} are not defined for {}",
                header.flags,
                op.name()
            )));
        }
        let mut r = Reader::new(body);
        let req = match op {
            Op::Hello => {
                if r.bytes(4)? != MAGIC {
                    return Err(ProtoError::Malformed(
                        "hello does not start with \"MCOS\": not an mcos client".into(),
                    ));
                }
                let version = r.u16()?;
                let _reserved = r.u16()?;
                Request::Hello(Hello {
                    version,
                    tenant: r.short_str()?,
                    token: r.short_bytes()?,
                })
            }
            Op::AttachRegion => Request::AttachRegion { bytes: r.u64()? },
            Op::Put => {
                let class = r.u8()?;
                let _reserved = r.bytes(3)?;
                let size = if region {
                    PUT_REGION_ENTRY
                } else {
                    PUT_INLINE_ENTRY
                };
                let (count, entries) = count_and_entries(&mut r, size, max_batch)?;
                // count <= max_batch (a u32), so this cannot overflow on 64-bit targets.
                let parents = if parents {
                    r.bytes(count * KEY_BYTES)?
                } else {
                    &[]
                };
                let payloads = r.rest();
                let batch = PutBatch {
                    class,
                    region,
                    durable,
                    count,
                    entries,
                    parents,
                    payloads,
                };
                if !region {
                    let total: u64 = entries
                        .chunks_exact(size)
                        .map(|e| u64::from(u32::from_le_bytes([e[16], e[17], e[18], e[19]])))
                        .sum();
                    if total != payloads.len() as u64 {
                        return Err(ProtoError::Malformed(format!(
                            "put entries announce {total} payload bytes, the frame carries {}",
                            payloads.len()
                        )));
                    }
                }
                return Ok(Request::Put(batch));
            }
            Op::Get => {
                let size = if region {
                    GET_REGION_ENTRY
                } else {
                    GET_INLINE_ENTRY
                };
                let (count, entries) = count_and_entries(&mut r, size, max_batch)?;
                Request::Get(GetBatch {
                    region,
                    direct,
                    count,
                    entries,
                })
            }
            Op::Exists | Op::Prefix | Op::Unpin => {
                let (_, raw) = count_and_entries(&mut r, KEY_BYTES, max_batch)?;
                let keys = KeyList { raw };
                match op {
                    Op::Exists => Request::Exists(keys),
                    Op::Prefix => Request::Prefix(keys),
                    _ => Request::Unpin(keys),
                }
            }
            Op::Pin => {
                let ttl_ms = r.u32()?;
                let (_, raw) = count_and_entries(&mut r, KEY_BYTES, max_batch)?;
                Request::Pin {
                    ttl_ms,
                    keys: KeyList { raw },
                }
            }
            Op::Intent => {
                let (_, raw) = count_and_entries(&mut r, INTENT_ENTRY, max_batch)?;
                Request::Intent(IntentBatch { raw })
            }
            Op::Stats => Request::Stats,
            Op::Policy => Request::Policy,
            Op::Subscribe => Request::Subscribe { parents },
            Op::KvSnapshot => Request::KvSnapshot { parents },
            Op::Error | Op::KvEvents => return Err(ProtoError::UnknownOp(header.op)),
        };
        r.finish()?;
        Ok(req)
    }
}

/// Starts a frame in `buf` (cleared): a header whose length [`end_frame`] fills in.
pub fn begin_frame(buf: &mut Vec<u8>, op: u8, flags: u8, req_id: u32) {
    buf.clear();
    let h = FrameHeader {
        body_len: 0,
        op,
        flags,
        req_id,
    };
    buf.extend_from_slice(&h.encode());
}

/// Writes the body length of the frame started by [`begin_frame`], counting `extra` bytes
/// that will be sent after `buf` (payloads written with vectored I/O).
pub fn end_frame(buf: &mut [u8], extra: usize) {
    let len = (buf.len() - HEADER_BYTES + extra) as u32;
    buf[0..4].copy_from_slice(&len.to_le_bytes());
}

/// Client encoders: each writes one whole request frame into `buf`.
pub mod encode {
    use super::*;

    /// Hello.
    pub fn hello(buf: &mut Vec<u8>, req_id: u32, version: u16, tenant: &str, token: &[u8]) {
        begin_frame(buf, Op::Hello as u8, 0, req_id);
        Writer::new(buf)
            .bytes(&MAGIC)
            .u16(version)
            .u16(0)
            .short_bytes(tenant.as_bytes())
            .short_bytes(token);
        end_frame(buf, 0);
    }

    /// Attach a region of `bytes` bytes (the fd is sent with the frame).
    pub fn attach_region(buf: &mut Vec<u8>, req_id: u32, bytes: u64) {
        begin_frame(buf, Op::AttachRegion as u8, 0, req_id);
        Writer::new(buf).u64(bytes);
        end_frame(buf, 0);
    }

    /// Put with payloads inline: the entries go in `buf`; the payloads follow it on the wire
    /// (the caller writes them after `buf` with vectored I/O).
    pub fn put_inline(buf: &mut Vec<u8>, req_id: u32, class: u8, blocks: &[(BlockKey, &[u8])]) {
        begin_frame(buf, Op::Put as u8, 0, req_id);
        let mut w = Writer::new(buf);
        w.u8(class).bytes(&[0; 3]).u32(blocks.len() as u32);
        let mut total = 0usize;
        for (k, p) in blocks {
            w.key(*k).u32(p.len() as u32);
            total += p.len();
        }
        end_frame(buf, total);
    }

    /// Appends a put's parent keys ([`FLAG_PARENTS`]) to the frame `put_inline` or
    /// `put_region` just encoded (one per block, in order; [`BlockKey::NONE`]: no parent),
    /// before any inline payload. `extra`: the inline payload bytes that follow (0 for region).
    pub fn put_parents(buf: &mut Vec<u8>, parents: &[BlockKey], extra: usize) {
        buf[5] |= FLAG_PARENTS;
        let mut w = Writer::new(buf);
        for &p in parents {
            w.key(p);
        }
        end_frame(buf, extra);
    }

    /// Put from the region: (key, offset, length) per block.
    pub fn put_region(buf: &mut Vec<u8>, req_id: u32, class: u8, blocks: &[(BlockKey, u64, u32)]) {
        begin_frame(buf, Op::Put as u8, FLAG_REGION, req_id);
        let mut w = Writer::new(buf);
        w.u8(class).bytes(&[0; 3]).u32(blocks.len() as u32);
        for &(k, off, len) in blocks {
            w.key(k).u32(len).u64(off);
        }
        end_frame(buf, 0);
    }

    /// Get answered inline.
    pub fn get_inline(buf: &mut Vec<u8>, req_id: u32, keys: &[BlockKey]) {
        key_list(buf, Op::Get, req_id, keys);
    }

    /// Get into the region: (key, offset, capacity) per block.
    pub fn get_region(buf: &mut Vec<u8>, req_id: u32, blocks: &[(BlockKey, u64, u32)]) {
        begin_frame(buf, Op::Get as u8, FLAG_REGION, req_id);
        let mut w = Writer::new(buf);
        w.u32(blocks.len() as u32);
        for &(k, off, cap) in blocks {
            w.key(k).u64(off).u32(cap);
        }
        end_frame(buf, 0);
    }

    /// Get into direct slots of the region ([`crate::FLAG_DIRECT`]): (key, slot offset, slot
    /// bytes) per block; each payload lands at `offset + DIRECT_PAYLOAD_OFFSET`.
    pub fn get_region_direct(buf: &mut Vec<u8>, req_id: u32, blocks: &[(BlockKey, u64, u32)]) {
        get_region(buf, req_id, blocks);
        buf[5] |= FLAG_DIRECT;
    }

    /// Exists, prefix or unpin: a key list.
    pub fn key_list(buf: &mut Vec<u8>, op: Op, req_id: u32, keys: &[BlockKey]) {
        begin_frame(buf, op as u8, 0, req_id);
        let mut w = Writer::new(buf);
        w.u32(keys.len() as u32);
        for &k in keys {
            w.key(k);
        }
        end_frame(buf, 0);
    }

    /// Pin under a lease of `ttl_ms` (0: the daemon's default).
    pub fn pin(buf: &mut Vec<u8>, req_id: u32, ttl_ms: u32, keys: &[BlockKey]) {
        begin_frame(buf, Op::Pin as u8, 0, req_id);
        let mut w = Writer::new(buf);
        w.u32(ttl_ms).u32(keys.len() as u32);
        for &k in keys {
            w.key(k);
        }
        end_frame(buf, 0);
    }

    /// Intents.
    pub fn intents(buf: &mut Vec<u8>, req_id: u32, intents: &[WireIntent]) {
        begin_frame(buf, Op::Intent as u8, 0, req_id);
        let mut w = Writer::new(buf);
        w.u32(intents.len() as u32);
        for i in intents {
            w.key(i.key).u8(i.kind).bytes(&[0; 3]).u32(i.a).u32(i.b);
        }
        end_frame(buf, 0);
    }

    /// A request with an empty body (stats, policy).
    pub fn empty(buf: &mut Vec<u8>, op: Op, req_id: u32) {
        begin_frame(buf, op as u8, 0, req_id);
        end_frame(buf, 0);
    }
}

/// Reply encoders (daemon side) and decoders (client side).
pub mod reply {
    use super::*;

    /// Starts a reply frame to `op`.
    pub fn begin(buf: &mut Vec<u8>, op: Op, req_id: u32) {
        begin_frame(buf, op as u8 | REPLY, 0, req_id);
    }

    /// A whole error frame.
    pub fn error(buf: &mut Vec<u8>, req_id: u32, code: ErrorCode, message: &str) {
        begin_frame(buf, Op::Error as u8, 0, req_id);
        Writer::new(buf)
            .u16(code as u16)
            .short_bytes(message.as_bytes());
        end_frame(buf, 0);
    }

    /// Decodes an error body into (code, message).
    pub fn decode_error(body: &[u8]) -> Result<(ErrorCode, String), ProtoError> {
        let mut r = Reader::new(body);
        let code = ErrorCode::from_u16(r.u16()?);
        let msg = String::from_utf8_lossy(r.short_bytes()?).into_owned();
        Ok((code, msg))
    }

    /// A welcome body.
    pub fn welcome(buf: &mut Vec<u8>, w: &Welcome) {
        Writer::new(buf)
            .u16(w.version)
            .u16(0)
            .u64(w.session_id)
            .u32(w.block_bytes)
            .u32(w.max_batch_blocks)
            .u64(w.max_inflight_bytes)
            .u32(w.lease_default_ms)
            .u32(w.lease_max_ms)
            .short_bytes(w.server.as_bytes());
    }

    /// Decodes a welcome body.
    pub fn decode_welcome(body: &[u8]) -> Result<Welcome, ProtoError> {
        let mut r = Reader::new(body);
        let version = r.u16()?;
        let _ = r.u16()?;
        let w = Welcome {
            version,
            session_id: r.u64()?,
            block_bytes: r.u32()?,
            max_batch_blocks: r.u32()?,
            max_inflight_bytes: r.u64()?,
            lease_default_ms: r.u32()?,
            lease_max_ms: r.u32()?,
            server: r.short_str()?.to_string(),
        };
        r.finish()?;
        Ok(w)
    }

    /// Appends a status entry.
    pub fn status(buf: &mut Vec<u8>, s: Status) {
        Writer::new(buf).u8(s.code).u8(s.tier).u16(0).u32(s.value);
    }

    /// Decodes a batch reply's status table; returns the statuses and the bytes after the table
    /// (a get's inline payloads, in order, for the statuses that are hits).
    pub fn decode_statuses<'a>(
        body: &'a [u8],
        out: &mut Vec<Status>,
    ) -> Result<&'a [u8], ProtoError> {
        out.clear();
        let mut r = Reader::new(body);
        let n = r.u32()? as usize;
        let table = r.bytes(
            n.checked_mul(STATUS_BYTES)
                .ok_or_else(|| ProtoError::Malformed("status count overflows".into()))?,
        )?;
        for e in table.chunks_exact(STATUS_BYTES) {
            out.push(Status {
                code: e[0],
                tier: e[1],
                value: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            });
        }
        Ok(r.rest())
    }

    /// Decodes an exists reply: per key, the tier it is in.
    pub fn decode_exists(body: &[u8]) -> Result<Vec<Option<u8>>, ProtoError> {
        let mut r = Reader::new(body);
        let n = r.u32()? as usize;
        let v = r.bytes(n)?;
        r.finish()?;
        Ok(v.iter().map(|&b| (b != 0xff).then_some(b)).collect())
    }

    /// A subscribe reply body: the sequence number of the first event the stream will carry
    /// and the node's id (its pool member id, else its address).
    pub fn subscribed(buf: &mut Vec<u8>, next_seq: u64, node_id: &str) {
        Writer::new(buf)
            .u64(next_seq)
            .short_bytes(node_id.as_bytes());
    }

    /// Decodes a subscribe reply into (next_seq, node_id).
    pub fn decode_subscribed(body: &[u8]) -> Result<(u64, String), ProtoError> {
        let mut r = Reader::new(body);
        let next = r.u64()?;
        let id = r.short_str()?.to_string();
        r.finish()?;
        Ok((next, id))
    }

    /// A KV events body: events the reader lost just before these (0: none), then the events,
    /// each with its parent key when the stream was subscribed with [`FLAG_PARENTS`].
    pub fn kv_events(buf: &mut Vec<u8>, lost: u64, events: &[WireKvEvent], parents: bool) {
        let mut w = Writer::new(buf);
        w.u64(lost).u32(events.len() as u32);
        for e in events {
            w.u64(e.seq).u8(e.kind).u8(e.tier).bytes(&[0; 6]).key(e.key);
            if parents {
                w.key(e.parent);
            }
        }
    }

    /// Decodes a KV events body (`parents`: the stream was subscribed with [`FLAG_PARENTS`]):
    /// appends the events to `out`, returns the lost count.
    pub fn decode_kv_events(
        body: &[u8],
        parents: bool,
        out: &mut Vec<WireKvEvent>,
    ) -> Result<u64, ProtoError> {
        let entry = if parents {
            KV_EVENT_PARENT_ENTRY
        } else {
            KV_EVENT_ENTRY
        };
        let mut r = Reader::new(body);
        let lost = r.u64()?;
        let n = r.u32()? as usize;
        let table = r.bytes(
            n.checked_mul(entry)
                .ok_or_else(|| ProtoError::Malformed("event count overflows".into()))?,
        )?;
        r.finish()?;
        for e in table.chunks_exact(entry) {
            let mut er = Reader::new(e);
            let seq = er.u64()?;
            let kind = er.u8()?;
            let tier = er.u8()?;
            let _ = er.bytes(6)?;
            let key = er.key()?;
            let parent = if parents { er.key()? } else { BlockKey::NONE };
            if kind != kv_event_kind::STORED && kind != kv_event_kind::REMOVED {
                return Err(ProtoError::Malformed(format!(
                    "unknown KV event kind {kind}"
                )));
            }
            out.push(WireKvEvent {
                seq,
                kind,
                tier,
                key,
                parent,
            });
        }
        Ok(lost)
    }

    /// A snapshot reply body: the last event it reflects, then every block and its tier, and
    /// its parent key when asked with [`FLAG_PARENTS`].
    pub fn kv_snapshot(buf: &mut Vec<u8>, seq: u64, blocks: &[WireKvBlock], parents: bool) {
        let mut w = Writer::new(buf);
        w.u64(seq).u32(blocks.len() as u32);
        for b in blocks {
            w.key(b.key).u8(b.tier).bytes(&[0; 7]);
            if parents {
                w.key(b.parent);
            }
        }
    }

    /// Decodes a snapshot reply (`parents`: asked with [`FLAG_PARENTS`]) into (seq, blocks).
    pub fn decode_kv_snapshot(
        body: &[u8],
        parents: bool,
    ) -> Result<(u64, Vec<WireKvBlock>), ProtoError> {
        let entry = if parents {
            KV_SNAPSHOT_PARENT_ENTRY
        } else {
            KV_SNAPSHOT_ENTRY
        };
        let mut r = Reader::new(body);
        let seq = r.u64()?;
        let n = r.u32()? as usize;
        let table = r.bytes(
            n.checked_mul(entry)
                .ok_or_else(|| ProtoError::Malformed("snapshot count overflows".into()))?,
        )?;
        r.finish()?;
        let mut blocks = Vec::with_capacity(n);
        for e in table.chunks_exact(entry) {
            let mut er = Reader::new(e);
            let key = er.key()?;
            let tier = er.u8()?;
            let _ = er.bytes(7)?;
            let parent = if parents { er.key()? } else { BlockKey::NONE };
            blocks.push(WireKvBlock { key, tier, parent });
        }
        Ok((seq, blocks))
    }

    /// Decodes a prefix reply.
    pub fn decode_prefix(body: &[u8]) -> Result<u32, ProtoError> {
        let mut r = Reader::new(body);
        let n = r.u32()?;
        r.finish()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(buf: &[u8]) -> FrameHeader {
        let mut h = [0u8; HEADER_BYTES];
        h.copy_from_slice(&buf[..HEADER_BYTES]);
        FrameHeader::decode(&h, u64::MAX).unwrap()
    }

    #[test]
    fn kv_event_frames_round_trip() {
        let mut buf = Vec::new();
        let evs = [
            WireKvEvent {
                seq: 7,
                kind: kv_event_kind::STORED,
                tier: 1,
                key: BlockKey(u128::MAX - 3),
                parent: BlockKey(u128::MAX - 4),
            },
            WireKvEvent {
                seq: 9,
                kind: kv_event_kind::REMOVED,
                tier: 0,
                key: BlockKey(42),
                parent: BlockKey::NONE,
            },
        ];
        reply::kv_events(&mut buf, 1, &evs, true);
        assert_eq!(buf.len(), 12 + 2 * KV_EVENT_PARENT_ENTRY);
        let mut out = Vec::new();
        assert_eq!(reply::decode_kv_events(&buf, true, &mut out), Ok(1));
        assert_eq!(out, evs);
        // Read with the other layout: refused (the lengths disagree), not misread.
        assert!(reply::decode_kv_events(&buf, false, &mut Vec::new()).is_err());
        // Truncated or with an unknown kind: an error, never a panic.
        assert!(reply::decode_kv_events(&buf[..buf.len() - 1], true, &mut out).is_err());
        let mut bad = buf.clone();
        bad[12 + 8] = 9;
        assert!(reply::decode_kv_events(&bad, true, &mut Vec::new()).is_err());
        // Without parents (an older subscriber): the 32-byte entries, parents read as none.
        buf.clear();
        reply::kv_events(&mut buf, 0, &evs, false);
        assert_eq!(buf.len(), 12 + 2 * KV_EVENT_ENTRY);
        out.clear();
        assert_eq!(reply::decode_kv_events(&buf, false, &mut out), Ok(0));
        assert_eq!(out[0].parent, BlockKey::NONE);
        assert_eq!((out[0].key, out[1].key), (evs[0].key, evs[1].key));

        buf.clear();
        reply::subscribed(&mut buf, 12, "n0");
        assert_eq!(reply::decode_subscribed(&buf), Ok((12, "n0".to_string())));

        let blocks = [
            WireKvBlock {
                key: BlockKey(5),
                tier: 0,
                parent: BlockKey(4),
            },
            WireKvBlock {
                key: BlockKey(6),
                tier: 2,
                parent: BlockKey::NONE,
            },
        ];
        buf.clear();
        reply::kv_snapshot(&mut buf, 30, &blocks, true);
        assert_eq!(buf.len(), 12 + 2 * KV_SNAPSHOT_PARENT_ENTRY);
        assert_eq!(
            reply::decode_kv_snapshot(&buf, true),
            Ok((30, blocks.to_vec()))
        );
        assert!(reply::decode_kv_snapshot(&buf[..buf.len() - 2], true).is_err());
        buf.clear();
        reply::kv_snapshot(&mut buf, 30, &blocks, false);
        assert_eq!(buf.len(), 12 + 2 * KV_SNAPSHOT_ENTRY);
        let (_, old) = reply::decode_kv_snapshot(&buf, false).unwrap();
        assert_eq!(old[0].parent, BlockKey::NONE);
        assert_eq!((old[1].key, old[1].tier), (BlockKey(6), 2));
    }

    #[test]
    fn put_parents_round_trip_inline_and_region() {
        let (a, b) = (vec![1u8; 5], vec![2u8; 3]);
        let blocks = [(BlockKey(9), &a[..]), (BlockKey(10), &b[..])];
        let parents = [BlockKey(8), BlockKey(9)];
        let mut buf = Vec::new();
        encode::put_inline(&mut buf, 1, 0, &blocks);
        encode::put_parents(&mut buf, &parents, a.len() + b.len());
        buf.extend_from_slice(&a);
        buf.extend_from_slice(&b);
        let h = header(&buf);
        assert_eq!(
            (h.flags, h.body_len as usize),
            (FLAG_PARENTS, buf.len() - 12)
        );
        let Request::Put(p) = Request::decode(&h, &buf[12..], 32).unwrap() else {
            panic!()
        };
        assert!(p.has_parents());
        assert_eq!(
            (p.parent(0), p.parent(1), p.parent(2)),
            (parents[0], parents[1], BlockKey::NONE)
        );
        let got: Vec<_> = p.iter().collect();
        assert_eq!(
            got,
            vec![
                (BlockKey(9), Payload::Inline(&a)),
                (BlockKey(10), Payload::Inline(&b))
            ]
        );
        // A frame cut short is refused (the payload total no longer matches).
        assert!(Request::decode(&h, &buf[12..buf.len() - 9], 32).is_err());

        encode::put_region(
            &mut buf,
            2,
            0,
            &[(BlockKey(9), 0, 5), (BlockKey(10), 64, 3)],
        );
        encode::put_parents(&mut buf, &parents, 0);
        let h = header(&buf);
        assert_eq!(h.flags, FLAG_REGION | FLAG_PARENTS);
        let Request::Put(p) = Request::decode(&h, &buf[12..], 32).unwrap() else {
            panic!()
        };
        assert_eq!((p.parent(0), p.parent(1)), (parents[0], parents[1]));
        assert!(Request::decode(&h, &buf[12..buf.len() - 1], 32).is_err());

        // Without the flag: no parents, as before.
        encode::put_inline(&mut buf, 3, 0, &blocks);
        buf.extend_from_slice(&a);
        buf.extend_from_slice(&b);
        let Request::Put(p) = Request::decode(&header(&buf), &buf[12..], 32).unwrap() else {
            panic!()
        };
        assert!(!p.has_parents());
        assert_eq!(p.parent(0), BlockKey::NONE);
    }

    #[test]
    fn parents_flag_only_on_put_subscribe_and_snapshot() {
        for op in [Op::Subscribe, Op::KvSnapshot] {
            let mut buf = Vec::new();
            encode::empty(&mut buf, op, 1);
            buf[5] = FLAG_PARENTS;
            let req = Request::decode(&header(&buf), &buf[12..], 8).unwrap();
            assert!(matches!(
                req,
                Request::Subscribe { parents: true } | Request::KvSnapshot { parents: true }
            ));
        }
        let mut buf = Vec::new();
        encode::key_list(&mut buf, Op::Get, 1, &[BlockKey(1)]);
        buf[5] = FLAG_PARENTS;
        assert!(Request::decode(&header(&buf), &buf[12..], 8).is_err());
    }

    #[test]
    fn hello_round_trip() {
        let mut buf = Vec::new();
        encode::hello(&mut buf, 7, 1, "team-a", b"secret");
        let h = header(&buf);
        assert_eq!(
            (h.op, h.req_id, h.body_len as usize),
            (1, 7, buf.len() - 12)
        );
        match Request::decode(&h, &buf[12..], 32).unwrap() {
            Request::Hello(x) => assert_eq!(
                (x.version, x.tenant, x.token),
                (1, "team-a", &b"secret"[..])
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn put_inline_round_trip_and_length_mismatch() {
        let (a, b) = (vec![1u8; 5], vec![2u8; 3]);
        let blocks = [(BlockKey(9), &a[..]), (BlockKey(10), &b[..])];
        let mut buf = Vec::new();
        encode::put_inline(&mut buf, 1, 3, &blocks);
        buf.extend_from_slice(&a);
        buf.extend_from_slice(&b);
        let h = header(&buf);
        assert_eq!(h.body_len as usize, buf.len() - 12);
        let Request::Put(p) = Request::decode(&h, &buf[12..], 32).unwrap() else {
            panic!()
        };
        assert_eq!(p.class, 3);
        let got: Vec<_> = p.iter().collect();
        assert_eq!(
            got,
            vec![
                (BlockKey(9), Payload::Inline(&a)),
                (BlockKey(10), Payload::Inline(&b))
            ]
        );
        // One payload byte missing: refused, not read past the end.
        let short = &buf[12..buf.len() - 1];
        assert!(matches!(
            Request::decode(&h, short, 32),
            Err(ProtoError::Malformed(_))
        ));
    }

    #[test]
    fn batch_limit_is_checked_before_reading_entries() {
        let keys: Vec<_> = (1..=5).map(BlockKey).collect();
        let mut buf = Vec::new();
        encode::get_inline(&mut buf, 1, &keys);
        let h = header(&buf);
        assert!(matches!(
            Request::decode(&h, &buf[12..], 4),
            Err(ProtoError::TooLarge { len: 5, max: 4 })
        ));
        assert!(Request::decode(&h, &buf[12..], 5).is_ok());
    }

    #[test]
    fn oversize_length_prefix_refused_at_the_header() {
        let mut buf = Vec::new();
        encode::empty(&mut buf, Op::Stats, 1);
        buf[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut h = [0u8; HEADER_BYTES];
        h.copy_from_slice(&buf[..12]);
        assert!(matches!(
            FrameHeader::decode(&h, 1 << 20),
            Err(ProtoError::TooLarge { .. })
        ));
    }

    #[test]
    fn region_flag_only_on_put_and_get() {
        let mut buf = Vec::new();
        encode::key_list(&mut buf, Op::Exists, 1, &[BlockKey(1)]);
        buf[5] = FLAG_REGION;
        assert!(Request::decode(&header(&buf), &buf[12..], 8).is_err());
    }

    #[test]
    fn direct_flag_only_on_region_gets() {
        let mut buf = Vec::new();
        encode::get_region_direct(&mut buf, 1, &[(BlockKey(1), 4096, 20480)]);
        let h = header(&buf);
        assert_eq!(h.flags, FLAG_REGION | FLAG_DIRECT);
        let Ok(Request::Get(g)) = Request::decode(&h, &buf[12..], 8) else {
            panic!("a direct region get decodes");
        };
        assert!(g.region && g.direct);
        assert_eq!(
            g.iter().collect::<Vec<_>>(),
            vec![(
                BlockKey(1),
                GetTarget::Region {
                    offset: 4096,
                    capacity: 20480
                }
            )]
        );
        // Not on an inline get, nor on a put.
        let mut buf = Vec::new();
        encode::get_inline(&mut buf, 1, &[BlockKey(1)]);
        buf[5] = FLAG_DIRECT;
        assert!(Request::decode(&header(&buf), &buf[12..], 8).is_err());
        let mut buf = Vec::new();
        encode::put_region(&mut buf, 1, 0, &[(BlockKey(1), 0, 10)]);
        buf[5] |= FLAG_DIRECT;
        assert!(Request::decode(&header(&buf), &buf[12..], 8).is_err());
    }

    #[test]
    fn direct_slot_layout_holds_a_whole_frame() {
        let l = crate::direct_slot_layout(16 << 10);
        assert_eq!((l.slot_bytes, l.align, l.payload_offset), (20480, 4096, 64));
        assert_eq!(crate::direct_slot_layout(256 << 10).slot_bytes, 266_240);
        assert_eq!(crate::direct_slot_layout(4032).slot_bytes, 4096);
        assert_eq!(crate::direct_slot_layout(4033).slot_bytes, 8192);
        assert_eq!(l.slot_offset(8192, 3), 8192 + 3 * 20480);
        assert_eq!(l.payload_at(l.slot_offset(0, 1)), 20480 + 64);
        assert_eq!(l.region_bytes(32), 32 * 20480);
    }

    #[test]
    fn local_flag_only_on_lookups() {
        for op in [Op::Get, Op::Exists, Op::Prefix] {
            let mut buf = Vec::new();
            encode::key_list(&mut buf, op, 1, &[BlockKey(1)]);
            buf[5] = FLAG_LOCAL;
            assert!(
                Request::decode(&header(&buf), &buf[12..], 8).is_ok(),
                "{op:?}"
            );
        }
        let mut buf = Vec::new();
        encode::key_list(&mut buf, Op::Unpin, 1, &[BlockKey(1)]);
        buf[5] = FLAG_LOCAL;
        assert!(Request::decode(&header(&buf), &buf[12..], 8).is_err());
    }

    #[test]
    fn statuses_round_trip() {
        let mut buf = Vec::new();
        Writer::new(&mut buf).u32(2);
        let s = [
            Status {
                code: status::OK,
                tier: 1,
                value: 77,
            },
            Status::code(status::MISS),
        ];
        for x in s {
            reply::status(&mut buf, x);
        }
        buf.extend_from_slice(b"xyz");
        let mut out = Vec::new();
        let rest = reply::decode_statuses(&buf, &mut out).unwrap();
        assert_eq!((out.as_slice(), rest), (&s[..], &b"xyz"[..]));
    }

    proptest! {
        /// No body, whatever its bytes, makes the decoder panic or read out of bounds.
        #[test]
        fn decode_never_panics(op in any::<u8>(), flags in 0u8..32, body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let h = FrameHeader { body_len: body.len() as u32, op, flags, req_id: 0 };
            if let Ok(req) = Request::decode(&h, &body, 64) {
                match req {
                    Request::Put(p) => {
                        let _ = p.iter().count();
                        for i in 0..=p.len() {
                            let _ = p.parent(i);
                        }
                    }
                    Request::Get(g) => { let _ = g.iter().count(); }
                    Request::Intent(i) => { let _ = i.iter().count(); }
                    Request::Exists(k) | Request::Prefix(k) | Request::Unpin(k) => { let _ = k.iter().count(); }
                    _ => {}
                }
            }
        }

        /// Nor does any reply body a client decodes from a daemon's KV event stream.
        #[test]
        fn kv_reply_decoders_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            for parents in [false, true] {
                let _ = reply::decode_kv_events(&body, parents, &mut Vec::new());
                let _ = reply::decode_kv_snapshot(&body, parents);
            }
            let _ = reply::decode_subscribed(&body);
        }
    }
}
