//! Every bound in MCOS, in one place (TigerBeetle's TIGER_STYLE).
//!
//! Configuration may lower a limit, never exceed it. The compile-time assertions at the bottom
//! relate the limits to each other, so a change that breaks a relation fails the build.

/// Priority classes in a policy table (one byte of class id).
pub const CLASSES: usize = 256;

/// Tiers one node can hold (tier ids are 0..MAX_TIERS, fastest first).
pub const MAX_TIERS: usize = 4;

/// Engines one node can feed (one descriptor ring per engine per shard).
pub const MAX_ENGINES: usize = 4;

/// Fast-path shards in one node (each directory entry has exactly one writer: its shard).
pub const MAX_SHARDS: usize = 64;

/// Frames one tier can hold. Frame ids are 28 bits wide in the block-state word.
pub const MAX_FRAMES_PER_TIER: u32 = 1 << 28;

/// Entries per directory bucket: 8-byte entries, one 64-byte cache line. A key may sit in one
/// of two buckets, so a lookup checks at most twice this many fingerprints.
pub const DIRECTORY_BUCKET_SLOTS: usize = 8;

/// Directory load at full residency, in percent of its entries: 8 bytes x 100 / 75 = 10.7
/// bytes of directory per block. An insert that finds both buckets full moves one entry to its
/// other bucket; one that cannot is a conflict, counted and refused (none in 5M inserts under
/// churn at this load, nor at 85 %; about one insert in a hundred moves an entry).
pub const DIRECTORY_LOAD_PERCENT: usize = 75;

/// Depth of each movement-descriptor ring (fast path -> engine).
pub const DESCRIPTOR_RING_DEPTH: usize = 1024;

/// Depth of each completion ring (engine -> fast path).
pub const COMPLETION_RING_DEPTH: usize = 1024;

/// Depth of the telemetry ring (fast path -> brain). Full ring: samples are dropped and counted.
pub const TELEMETRY_RING_DEPTH: usize = 4096;

/// Descriptors an engine takes from a ring in one batch (one io_uring submission, one memcpy pass).
pub const ENGINE_BATCH: usize = 32;

/// Descriptors the GPU engine moves in one kernel launch or batched copy call. One launch costs
/// microseconds, so the GPU engine takes far more per round than the CPU engines.
pub const GPU_ENGINE_BATCH: usize = 1024;

/// Pinned bounce slots of the GPU engine (disk <-> HBM moves without GPUDirect Storage, and
/// read-backs that verify GPUDirect reads); a batch needing more is split.
pub const GPU_BOUNCE_SLOTS: usize = 64;

/// In-flight moves per shard (the MSHR analogue): duplicate misses merge onto one slot.
pub const INFLIGHT_MOVES: usize = 256;

/// Victim candidates the fast path inspects per eviction before giving up (bounded scan).
pub const VICTIM_SCAN_MAX: usize = 16;

/// Prefetch descriptors one access may emit.
pub const PREFETCH_DEGREE_MAX: u8 = 4;

/// Prefetch outcomes (a prefetched block used, or evicted unused) per accuracy verdict. While
/// at least half of a window's prefetches were used, a prefetch may take the last free frames
/// of its tier, which the tier then refills by demoting its LRU block; otherwise prefetches
/// take only frames beyond the tier's free-frame watermark (they evict nothing), but for one
/// probe in `PREFETCH_PROBE_EVERY` that keeps the accuracy measured (feedback-directed
/// prefetching, Srinath et al., HPCA 2007).
pub const PREFETCH_FEEDBACK_OUTCOMES: u16 = 64;
/// One prefetch candidate in this many is issued as a probe while prefetches are inaccurate.
pub const PREFETCH_PROBE_EVERY: u8 = 16;

/// Sequences tracked by the per-sequence prefetch table (per shard).
pub const SEQUENCE_SLOTS: usize = 1024;

/// Admission sketch: rows x counters per row, 4-bit saturating counters.
pub const SKETCH_ROWS: usize = 4;
/// Counters per sketch row (power of two): the smallest sketch a shard builds.
pub const SKETCH_WIDTH: usize = 4096;
/// Largest sketch row a shard builds (it sizes rows to its tier-0 frames, as Caffeine sizes
/// its frequency sketch to the cache). Row indices are 16-bit slices of one 64-bit hash.
pub const SKETCH_WIDTH_MAX: usize = 1 << 16;
/// Largest value a 4-bit sketch counter holds.
pub const SKETCH_COUNTER_MAX: u8 = 15;

/// Longest admission history (ghost) a policy table may ask for, in quarters of the tier-0
/// frames of a shard (32: eight times as many entries as frames).
pub const HISTORY_QUARTERS_MAX: u8 = 32;

/// Ways per set of the history table (one 64-byte line of 8-byte entries).
pub const HISTORY_WAYS: usize = 8;

/// Largest block payload a tier accepts.
pub const MAX_BLOCK_BYTES: usize = 64 << 20;

/// Alignment of disk frames and of buffers used for O_DIRECT I/O.
pub const DISK_ALIGN: usize = 4096;

/// Bytes of the header stored in front of every block in every tier (key, length, checksum).
pub const BLOCK_HEADER_BYTES: usize = 64;

/// Ticks a policy table lives without being refreshed before the fast path falls back to the
/// built-in default table (upper bound; a table may ask for less).
pub const POLICY_TTL_TICKS_MAX: u32 = 1 << 20;

/// Largest link-degradation threshold a policy table may set for a GPU movement path, MB/s
/// (1 TB/s: above any host link, so a larger value could only be a mistake).
pub const GPU_ROUTE_DEGRADED_MB_S_MAX: u32 = 1_000_000;

const _: () = assert!(CLASSES == 1 << 8, "class ids are one byte");
const _: () = assert!(DESCRIPTOR_RING_DEPTH.is_power_of_two());
const _: () = assert!(COMPLETION_RING_DEPTH.is_power_of_two());
const _: () = assert!(TELEMETRY_RING_DEPTH.is_power_of_two());
const _: () = assert!(SKETCH_WIDTH.is_power_of_two());
const _: () = assert!(SKETCH_WIDTH_MAX.is_power_of_two() && SKETCH_WIDTH <= SKETCH_WIDTH_MAX);
const _: () = assert!(
    SKETCH_ROWS * 16 <= 64 && SKETCH_WIDTH_MAX <= 1 << 16,
    "each row indexes with its own 16 bits of one 64-bit hash"
);
const _: () = assert!(HISTORY_WAYS.is_power_of_two());
const _: () = assert!(
    PREFETCH_FEEDBACK_OUTCOMES > 0 && PREFETCH_PROBE_EVERY > 0,
    "prefetch feedback needs a window and a probe rate"
);
const _: () = assert!(ENGINE_BATCH <= DESCRIPTOR_RING_DEPTH);
const _: () = assert!(GPU_ENGINE_BATCH <= DESCRIPTOR_RING_DEPTH);
const _: () = assert!(GPU_BOUNCE_SLOTS >= 1 && GPU_BOUNCE_SLOTS <= GPU_ENGINE_BATCH);
const _: () = assert!(DIRECTORY_BUCKET_SLOTS * DIRECTORY_LOAD_PERCENT >= 100);
const _: () = assert!(DIRECTORY_LOAD_PERCENT <= 100);
// Every in-flight move must be able to post its completion without the engine waiting.
const _: () = assert!(INFLIGHT_MOVES <= COMPLETION_RING_DEPTH);
// A shard may have every in-flight move queued on one engine.
const _: () = assert!(INFLIGHT_MOVES <= DESCRIPTOR_RING_DEPTH);
const _: () = assert!(BLOCK_HEADER_BYTES <= DISK_ALIGN);
const _: () = assert!(MAX_BLOCK_BYTES.is_multiple_of(DISK_ALIGN));
const _: () = assert!(
    MAX_TIERS <= 8,
    "tier ids are 3 bits in the block-state word"
);
const _: () = assert!(MAX_ENGINES <= 16, "engine ids are 4 bits");
