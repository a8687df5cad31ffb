//! Movement descriptors (fast path -> engine) and completions (engine -> fast path).
//!
//! A descriptor names a move completely: the engine needs nothing else to do it, so it can be
//! executed by a thread, a DMA engine or a GPU kernel. It is 32 bytes, two per cache line.
//! A move lands in a destination frame the fast path reserved; the block becomes visible there
//! only when the completion says the bytes arrived and verified.

/// What a move is for. The order is the degradation order: demand first, prefetch last.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MoveOp {
    /// Bring a block a caller is waiting for into a faster tier.
    Promote = 0,
    /// Move an evicted block down to a slower tier.
    Demote = 1,
    /// Bring a block that is expected soon into a faster tier.
    Prefetch = 2,
}

/// How urgently a move must run; engines drain urgent descriptors first.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Urgency {
    /// A caller is waiting.
    Demand = 0,
    /// Frees room for demand.
    Evict = 1,
    /// Speculative: dropped first when rings fill.
    Prefetch = 2,
}

/// One move of one block between two tiers (32 bytes).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(C, align(32))]
pub struct MoveDescriptor {
    /// Low 64 bits of the block key: the engine checks it against the source block header.
    pub key_tag: u64,
    /// In-flight move id (shard-local slot and generation), echoed in the completion.
    pub move_id: u32,
    /// Source frame in `src_tier`.
    pub src_frame: u32,
    /// Destination frame in `dst_tier`, reserved by the fast path.
    pub dst_frame: u32,
    /// Payload bytes (without the block header).
    pub len: u32,
    /// Why the move happens.
    pub op: MoveOp,
    /// Source tier id.
    pub src_tier: u8,
    /// Destination tier id.
    pub dst_tier: u8,
    /// Urgency, for engine-side ordering.
    pub urgency: Urgency,
    /// Policy-table epoch (low 16 bits) that decided the move, for attribution.
    pub epoch: u16,
    /// Priority class of the block.
    pub class: u8,
    /// Engine the move was routed to.
    pub engine: u8,
}

const _: () = assert!(core::mem::size_of::<MoveDescriptor>() == 32);

impl MoveDescriptor {
    /// An all-zero descriptor, for preallocated batch buffers.
    pub const EMPTY: MoveDescriptor = MoveDescriptor {
        key_tag: 0,
        move_id: 0,
        src_frame: 0,
        dst_frame: 0,
        len: 0,
        op: MoveOp::Promote,
        src_tier: 0,
        dst_tier: 0,
        urgency: Urgency::Demand,
        epoch: 0,
        class: 0,
        engine: 0,
    };
}

/// How a move ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MoveStatus {
    /// The bytes arrived and verified: the destination frame now holds the block.
    Done = 0,
    /// The source block failed its header or checksum check: it is lost, count it as a miss.
    Corrupt = 1,
    /// The I/O failed (errno in `detail`): the destination is unusable, the source unchanged.
    IoError = 2,
    /// The destination device is full (ENOSPC): the source unchanged.
    NoSpace = 3,
    /// The device failed reading the source frame (a device errno such as EIO in `detail`):
    /// the block there is lost (a counted miss) and the frame is taken out of service.
    SourceFailed = 4,
    /// The device failed writing the destination frame (errno in `detail`): the frame is taken
    /// out of service; the source is unchanged (a demotion's victim is dropped, as an eviction).
    DestinationFailed = 5,
}

/// The engine's answer to one descriptor (16 bytes).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct MoveCompletion {
    /// The descriptor's `move_id`.
    pub move_id: u32,
    /// Error detail (an errno for `IoError`), 0 otherwise.
    pub detail: u32,
    /// Bytes moved, header included.
    pub bytes: u32,
    /// Outcome.
    pub status: MoveStatus,
    /// Engine that executed the move.
    pub engine: u8,
}

const _: () = assert!(core::mem::size_of::<MoveCompletion>() == 16);

impl MoveCompletion {
    /// An all-zero completion, for preallocated batch buffers.
    pub const EMPTY: MoveCompletion = MoveCompletion {
        move_id: 0,
        detail: 0,
        bytes: 0,
        status: MoveStatus::Done,
        engine: 0,
    };

    /// `desc` done in full, as an engine with no latency would report it (engine 0): the
    /// completion the simulator and the fast-path benchmark post for every descriptor.
    pub const fn done(desc: &MoveDescriptor) -> MoveCompletion {
        MoveCompletion {
            move_id: desc.move_id,
            bytes: desc.len,
            ..MoveCompletion::EMPTY
        }
    }
}
