//! The mcosd wire protocol: how a client (in any language) talks to the daemon.
//!
//! A documented binary framing rather than protobuf: a block's payload crosses the TCP path as
//! raw bytes right after a fixed-size status table (one `writev`, no per-block envelope, no
//! re-encoding), and on the local path the socket carries only 28-byte descriptors naming
//! offsets in a shared region. Every message is little-endian with fixed-size entries, so a
//! decoder bounds-checks once per batch and never allocates per block. The full specification,
//! with byte offsets, is `docs/protocol.md`; this crate is its reference implementation, shared
//! by the daemon (`mcos-server`) and the Rust client (`mcos-client`).
//!
//! Frame: a 12-byte [`FrameHeader`] then `body_len` bytes. A reply echoes the request's op with
//! the high bit set ([`REPLY`]) and its `req_id`; a refused request gets an [`Op::Error`] reply
//! and the daemon closes that connection.

#![warn(missing_docs)]

mod codec;
pub mod local;
mod message;

pub use codec::{Reader, Writer};
pub use message::*;

use thiserror::Error;

/// First four bytes of a hello body.
pub const MAGIC: [u8; 4] = *b"MCOS";
/// The protocol version this crate speaks. A daemon refuses any other with
/// [`ErrorCode::VersionMismatch`].
pub const PROTOCOL_VERSION: u16 = 1;
/// Bytes of a frame header.
pub const HEADER_BYTES: usize = 12;
/// Bytes of a block key on the wire (the 128-bit key, little-endian).
pub const KEY_BYTES: usize = 16;
/// Bit set in a reply's op.
pub const REPLY: u8 = 0x80;
/// Bytes of one per-block status entry in a batch reply.
pub const STATUS_BYTES: usize = 8;
/// Longest tenant name, token or error message, bytes.
pub const MAX_STRING_BYTES: usize = 4096;

/// Request kinds (a reply carries `op | REPLY`; errors carry [`Op::Error`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Version, tenant and token; must be the first frame.
    Hello = 0x01,
    /// Shares a memory region (a sealed memfd passed with SCM_RIGHTS on the Unix socket).
    AttachRegion = 0x02,
    /// Batch put.
    Put = 0x10,
    /// Batch get.
    Get = 0x11,
    /// Where each key is stored, if anywhere (no access counted).
    Exists = 0x12,
    /// Length of the longest stored prefix of a key list (no access counted).
    Prefix = 0x13,
    /// Pin keys under a lease.
    Pin = 0x14,
    /// Release pins this session holds.
    Unpin = 0x15,
    /// Intents (class, expected reuse, sequence position, queued).
    Intent = 0x16,
    /// Node and daemon statistics as JSON.
    Stats = 0x20,
    /// The policy table in force, as JSON.
    Policy = 0x21,
    /// Turns the connection into a stream of KV events (BlockStored / BlockRemoved).
    Subscribe = 0x30,
    /// Every block the node holds, with the sequence number of the last event it reflects.
    KvSnapshot = 0x31,
    /// (Daemon to client only, as `0x32 | REPLY`.) A batch of KV events on a subscribed
    /// connection.
    KvEvents = 0x32,
    /// A refused request: code and message; the daemon then closes the connection.
    Error = 0x7f,
}

impl Op {
    /// The request op for a wire byte (without the reply bit).
    pub fn from_u8(b: u8) -> Option<Op> {
        Some(match b {
            0x01 => Op::Hello,
            0x02 => Op::AttachRegion,
            0x10 => Op::Put,
            0x11 => Op::Get,
            0x12 => Op::Exists,
            0x13 => Op::Prefix,
            0x14 => Op::Pin,
            0x15 => Op::Unpin,
            0x16 => Op::Intent,
            0x20 => Op::Stats,
            0x21 => Op::Policy,
            0x30 => Op::Subscribe,
            0x31 => Op::KvSnapshot,
            0x32 => Op::KvEvents,
            0x7f => Op::Error,
            _ => return None,
        })
    }

    /// Lower-case name, for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Op::Hello => "hello",
            Op::AttachRegion => "attach_region",
            Op::Put => "put",
            Op::Get => "get",
            Op::Exists => "exists",
            Op::Prefix => "prefix",
            Op::Pin => "pin",
            Op::Unpin => "unpin",
            Op::Intent => "intent",
            Op::Stats => "stats",
            Op::Policy => "policy",
            Op::Subscribe => "subscribe",
            Op::KvSnapshot => "kv_snapshot",
            Op::KvEvents => "kv_events",
            Op::Error => "error",
        }
    }
}

/// Flag bit of a put or get: payloads are in the shared region, not in the frame.
pub const FLAG_REGION: u8 = 0x01;
/// Flag bit of a put: durable. The blocks go to the daemon's persistent tier, and the reply
/// comes only once they are there (and fdatasync'd when the tier has `sync`): each `ok` or
/// `present` status with `value` bit 0 ([`PUT_DURABLE`]) set is found after any restart.
pub const FLAG_DURABLE: u8 = 0x02;
/// `value` bit of a put's `ok`/`present` status: the block is durable.
pub const PUT_DURABLE: u32 = 1;
/// Flag bit of a get, exists or prefix: answer from this daemon's own tiers only. A daemon
/// that is a pool member otherwise asks a key's owners on a local miss; peers and pool
/// clients (which do their own routing) set it, so a forwarded request is never forwarded
/// again.
pub const FLAG_LOCAL: u8 = 0x04;
/// Flag bit of a put, subscribe or kv_snapshot: parent keys. On a put, the n entries are
/// followed by n parent keys (16 bytes each, key 0: no parent), the key of the block each block
/// extends (the previous block of a token prefix); on a subscribe or a kv_snapshot, the reply's
/// entries carry each stored block's parent. A client sets it only when it names or wants
/// parents, so an older peer never sees it.
pub const FLAG_PARENTS: u8 = 0x08;
/// Flag bit of a `REGION` get: the ranges are direct slots. Each block's payload lands at
/// `offset + DIRECT_PAYLOAD_OFFSET` (the slot's first bytes are room for the on-disk block
/// header); a slot laid out as [`direct_slot_layout`] says (aligned start, room for the whole
/// frame) lets the daemon read a disk-tier block straight into it with O_DIRECT and verify it
/// there, with no bounce buffer and no copy. Other slots work too, through a bounce buffer.
/// Daemons of this release take it; an older one answers error 1 (malformed), naming the flags.
pub const FLAG_DIRECT: u8 = 0x10;
/// Bytes from the start of a direct slot to its payload: the block header's room.
pub const DIRECT_PAYLOAD_OFFSET: u32 = 64;
/// Alignment of a direct slot's start, as an offset in the region (the region is mapped at a
/// page boundary on both sides, so the offset's alignment is the address's): `DISK_ALIGN`.
pub const DIRECT_SLOT_ALIGN: u32 = 4096;

/// How to lay out a direct slot (flag [`FLAG_DIRECT`]) for blocks of `block_bytes` (the
/// daemon's, from hello) so that a disk-tier block goes straight into it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SlotLayout {
    /// Bytes each slot must span: the block header, `block_bytes` and the frame's padding to
    /// `align` (the whole frame is read; the bytes around the payload are unspecified).
    pub slot_bytes: u32,
    /// Each slot's offset in the region must be a multiple of this.
    pub align: u32,
    /// The payload's offset within the slot.
    pub payload_offset: u32,
}

impl SlotLayout {
    /// Offset in the region of slot `i` when slots are packed back to back from `base` (a
    /// multiple of `align`).
    pub fn slot_offset(&self, base: u64, i: usize) -> u64 {
        base + i as u64 * u64::from(self.slot_bytes)
    }

    /// Offset in the region of the payload of the slot at `slot_offset`.
    pub fn payload_at(&self, slot_offset: u64) -> u64 {
        slot_offset + u64::from(self.payload_offset)
    }

    /// Region bytes for `slots` slots packed back to back.
    pub fn region_bytes(&self, slots: usize) -> u64 {
        slots as u64 * u64::from(self.slot_bytes)
    }
}

/// The direct-slot layout for blocks of `block_bytes`: slots of `64 + block_bytes` rounded up
/// to 4096, starting at multiples of 4096, payload at byte 64 (a 16 KiB block: 20,480-byte
/// slots; 256 KiB: 266,240).
pub fn direct_slot_layout(block_bytes: u32) -> SlotLayout {
    let slot = (u64::from(DIRECT_PAYLOAD_OFFSET) + u64::from(block_bytes))
        .next_multiple_of(u64::from(DIRECT_SLOT_ALIGN));
    SlotLayout {
        slot_bytes: u32::try_from(slot).unwrap_or(u32::MAX),
        align: DIRECT_SLOT_ALIGN,
        payload_offset: DIRECT_PAYLOAD_OFFSET,
    }
}

/// `tier` of a get's `ok` status when the block came from another pool member (the local
/// daemon fetched it from the key's owner); local hits carry the tier they were found in.
pub const TIER_REMOTE: u8 = 0xfe;

/// The fixed header of every frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes of body after the header.
    pub body_len: u32,
    /// Op byte (a request op, or `op | REPLY`, or `Op::Error`).
    pub op: u8,
    /// Per-op flags ([`FLAG_REGION`], [`FLAG_DURABLE`], [`FLAG_LOCAL`], [`FLAG_PARENTS`],
    /// [`FLAG_DIRECT`]).
    pub flags: u8,
    /// Chosen by the client, echoed by the reply.
    pub req_id: u32,
}

impl FrameHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..4].copy_from_slice(&self.body_len.to_le_bytes());
        b[4] = self.op;
        b[5] = self.flags;
        // b[6..8]: reserved, zero.
        b[8..12].copy_from_slice(&self.req_id.to_le_bytes());
        b
    }

    /// Decodes a header, refusing a body longer than `max_body` before anything is allocated.
    pub fn decode(b: &[u8; HEADER_BYTES], max_body: u64) -> Result<FrameHeader, ProtoError> {
        let body_len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if u64::from(body_len) > max_body {
            return Err(ProtoError::TooLarge {
                len: u64::from(body_len),
                max: max_body,
            });
        }
        if b[6] != 0 || b[7] != 0 {
            return Err(ProtoError::Malformed(
                "reserved header bytes are not zero".into(),
            ));
        }
        Ok(FrameHeader {
            body_len,
            op: b[4],
            flags: b[5],
            req_id: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        })
    }
}

/// Error codes of an [`Op::Error`] reply.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// The frame does not follow the protocol.
    Malformed = 1,
    /// The client speaks another protocol version.
    VersionMismatch = 2,
    /// Unknown tenant or wrong token.
    AuthRefused = 3,
    /// An op this daemon does not know.
    UnknownOp = 4,
    /// A frame, batch or reply beyond the configured limits.
    LimitExceeded = 5,
    /// The shared region is missing, unsealed, too small, or a range falls outside it.
    Region = 6,
    /// A request before a successful hello.
    NotAuthenticated = 7,
    /// The daemon has as many clients as it serves.
    Busy = 8,
    /// The daemon is shutting down.
    ShuttingDown = 9,
    /// The node failed (I/O, stalled engine).
    Internal = 10,
}

impl ErrorCode {
    /// The code for a wire value (unknown values read as `Internal`).
    pub fn from_u16(v: u16) -> ErrorCode {
        match v {
            1 => ErrorCode::Malformed,
            2 => ErrorCode::VersionMismatch,
            3 => ErrorCode::AuthRefused,
            4 => ErrorCode::UnknownOp,
            5 => ErrorCode::LimitExceeded,
            6 => ErrorCode::Region,
            7 => ErrorCode::NotAuthenticated,
            8 => ErrorCode::Busy,
            9 => ErrorCode::ShuttingDown,
            _ => ErrorCode::Internal,
        }
    }
}

/// A frame that cannot be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtoError {
    /// The body does not follow the message's layout.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The length prefix is beyond the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced body length.
        len: u64,
        /// The limit in force.
        max: u64,
    },
    /// An op byte no version of the protocol defines.
    #[error("unknown op 0x{0:02x}")]
    UnknownOp(u8),
}

impl ProtoError {
    /// The error code a daemon replies with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::Malformed(_) => ErrorCode::Malformed,
            ProtoError::TooLarge { .. } => ErrorCode::LimitExceeded,
            ProtoError::UnknownOp(_) => ErrorCode::UnknownOp,
        }
    }
}
