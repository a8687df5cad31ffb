//! The engine thread end to end: descriptors in through the fast path's rings, completions out,
//! bytes checked in the tiers.

// A test crate: clippy.toml allows unwrap in #[test] functions, and the helpers here are
// part of the tests (a failed unwrap is a failed test).
#![allow(clippy::unwrap_used)]

use mcos_core::{
    BlockKey, Consumer, LinkMeters, MoveCompletion, MoveDescriptor, MoveOp, MoveStatus, Producer,
    Urgency, ring,
};
use mcos_tiers::engine::uring::UringBackend;
use mcos_tiers::{
    BackendChoice, DiskTier, DramTier, EngineConfig, EngineHandle, EngineThread, ShardRings,
    TierSet, TierStore,
};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BLOCK: u32 = 8000;
const DRAM: u8 = 0;
const DISK: u8 = 1;
const DRAM2: u8 = 2;
const ENGINE_ID: u8 = 2;

struct Shard {
    descriptors: Producer<MoveDescriptor>,
    completions: Consumer<MoveCompletion>,
}

struct Rig {
    _dir: tempfile::TempDir,
    dram: Arc<DramTier>,
    disk: Arc<DiskTier>,
    dram2: Arc<DramTier>,
    shards: Vec<Shard>,
    engine: EngineHandle,
    links: Arc<LinkMeters>,
}

fn rig(backend: BackendChoice, shards: usize, completion_depth: usize, park: Duration) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let dram = Arc::new(DramTier::new(32, BLOCK).unwrap());
    let disk = Arc::new(DiskTier::create(dir.path().join("disk.tier"), 32, BLOCK).unwrap());
    let dram2 = Arc::new(DramTier::new(8, BLOCK).unwrap());
    let tiers = TierSet::new(vec![
        TierStore::Dram(dram.clone()),
        TierStore::Disk(disk.clone()),
        TierStore::Dram(dram2.clone()),
    ])
    .unwrap();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..shards {
        let (dp, dc) = ring::<MoveDescriptor>(1024);
        let (cp, cc) = ring::<MoveCompletion>(completion_depth);
        ours.push(Shard {
            descriptors: dp,
            completions: cc,
        });
        theirs.push(ShardRings {
            descriptors: dc,
            completions: cp,
        });
    }
    let links = Arc::new(LinkMeters::default());
    let engine = EngineThread::spawn(
        EngineConfig::new(ENGINE_ID, tiers, theirs)
            .with_backend(backend)
            .with_idle_park(park)
            .with_link_meters(links.clone()),
    )
    .unwrap();
    Rig {
        links,
        _dir: dir,
        dram,
        disk,
        dram2,
        shards: ours,
        engine,
    }
}

fn key(i: u32) -> BlockKey {
    BlockKey((u128::from(i) << 64) | u128::from(i * 7 + 1))
}

fn payload(i: u32) -> Vec<u8> {
    let len = (i * 613) % BLOCK + 1;
    (0..len).map(|j| (j ^ i.wrapping_mul(31)) as u8).collect()
}

fn desc(
    op: MoveOp,
    key: BlockKey,
    src: (u8, u32),
    dst: (u8, u32),
    len: usize,
    move_id: u32,
    urgency: Urgency,
) -> MoveDescriptor {
    MoveDescriptor {
        key_tag: key.tag(),
        move_id,
        src_frame: src.1,
        dst_frame: dst.1,
        len: len as u32,
        op,
        src_tier: src.0,
        dst_tier: dst.0,
        urgency,
        epoch: 3,
        class: 1,
        engine: ENGINE_ID,
    }
}

fn push_all(shard: &mut Shard, descs: &[MoveDescriptor]) {
    for d in descs {
        shard.descriptors.push(*d).unwrap();
    }
}

/// Pops `n` completions, failing after a generous deadline rather than hanging.
fn collect(shard: &mut Shard, n: usize) -> Vec<MoveCompletion> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match shard.completions.pop() {
            Some(c) => got.push(c),
            None => {
                assert!(
                    Instant::now() < deadline,
                    "only {} of {n} completions arrived",
                    got.len()
                );
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    got
}

fn demote_then_promote(backend: BackendChoice) -> Rig {
    let mut r = rig(backend, 1, 1024, Duration::from_millis(1));
    let n = 12u32;
    let mut demotes = Vec::new();
    for i in 0..n {
        let p = payload(i);
        r.dram.write_block(i, key(i), &p).unwrap();
        demotes.push(desc(
            MoveOp::Demote,
            key(i),
            (DRAM, i),
            (DISK, i + 3),
            p.len(),
            100 + i,
            Urgency::Evict,
        ));
    }
    push_all(&mut r.shards[0], &demotes);
    r.engine.doorbell();
    let done = collect(&mut r.shards[0], n as usize);
    let by_id: HashMap<u32, MoveCompletion> = done.iter().map(|c| (c.move_id, *c)).collect();
    for i in 0..n {
        let c = by_id[&(100 + i)];
        assert_eq!(c.status, MoveStatus::Done, "{c:?}");
        assert_eq!(c.bytes as usize, 64 + payload(i).len());
        assert_eq!(c.engine, ENGINE_ID);
        assert_eq!(c.detail, 0);
        let mut out = vec![0u8; BLOCK as usize];
        let len = r.disk.read_block(i + 3, key(i), &mut out).unwrap();
        assert_eq!(&out[..len], &payload(i)[..], "disk frame {}", i + 3);
    }

    let promotes: Vec<_> = (0..n)
        .map(|i| {
            desc(
                MoveOp::Promote,
                key(i),
                (DISK, i + 3),
                (DRAM, 16 + i),
                payload(i).len(),
                200 + i,
                Urgency::Demand,
            )
        })
        .collect();
    push_all(&mut r.shards[0], &promotes);
    r.engine.doorbell();
    let done = collect(&mut r.shards[0], n as usize);
    assert!(
        done.iter().all(|c| c.status == MoveStatus::Done),
        "{done:?}"
    );
    for i in 0..n {
        let mut out = vec![0u8; BLOCK as usize];
        let len = r.dram.read_block(16 + i, key(i), &mut out).unwrap();
        assert_eq!(&out[..len], &payload(i)[..], "dram frame {}", 16 + i);
    }
    let stats = r.engine.counters().snapshot();
    assert_eq!(stats.descriptors, 2 * u64::from(n));
    assert_eq!(stats.errors, 0);
    let moved: u64 = (0..n).map(|i| 64 + payload(i).len() as u64).sum();
    assert_eq!(stats.bytes, 2 * moved);
    assert!(stats.io_bytes >= stats.bytes);
    assert!(stats.submissions >= 2 && stats.batches >= 2);
    // Every batch was timed and its bytes went to its route, in the direction it moved.
    let (down, up) = (
        r.links.totals(usize::from(DRAM), usize::from(DISK)),
        r.links.totals(usize::from(DISK), usize::from(DRAM)),
    );
    assert_eq!((down.bytes, up.bytes), (moved, moved));
    assert!(down.nanos > 0 && up.nanos > 0, "{down:?} {up:?}");
    assert_eq!(
        r.links.totals(usize::from(DRAM), usize::from(DRAM2)).bytes,
        0
    );
    r
}

#[test]
fn demote_then_promote_round_trips_through_the_engine() {
    let r = demote_then_promote(BackendChoice::Auto);
    println!(
        "backend {} (direct I/O: {})",
        r.engine.backend_name(),
        r.disk.direct_io()
    );
}

#[test]
fn demote_then_promote_with_psync_forced() {
    let r = demote_then_promote(BackendChoice::Psync);
    assert_eq!(r.engine.backend_name(), "psync");
    assert!(r.engine.fallback_reason().is_none());
}

#[test]
fn io_uring_is_used_when_available() {
    if let Err(e) = UringBackend::new() {
        println!("skipped: io_uring cannot be set up here ({e})");
        return;
    }
    let mut r = rig(BackendChoice::Auto, 1, 1024, Duration::from_millis(1));
    assert_eq!(r.engine.backend_name(), "io_uring");
    assert!(r.engine.fallback_reason().is_none());
    r.engine.shutdown().unwrap();
    let r = demote_then_promote(BackendChoice::Auto);
    assert_eq!(
        r.engine.backend_name(),
        "io_uring",
        "the ring stayed in use"
    );
}

/// Flips one byte of the disk tier's file at `offset`.
fn flip_file_byte(disk: &DiskTier, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk.path())
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ 0x08], offset).unwrap();
    f.sync_all().unwrap();
}

fn corrupt_promotion(backend: BackendChoice) {
    let mut r = rig(backend, 1, 1024, Duration::from_millis(1));
    let p = payload(5);
    for frame in [1, 2, 3] {
        r.disk.write_block(frame, key(frame), &p).unwrap();
    }
    // Frame 1: a payload byte; frame 2: a header byte; frame 3 intact but asked for another key.
    flip_file_byte(&r.disk, r.disk.frame_offset(1).unwrap() + 64 + 10);
    flip_file_byte(&r.disk, r.disk.frame_offset(2).unwrap() + 20);
    let descs = [
        desc(
            MoveOp::Promote,
            key(1),
            (DISK, 1),
            (DRAM, 1),
            p.len(),
            1,
            Urgency::Demand,
        ),
        desc(
            MoveOp::Promote,
            key(2),
            (DISK, 2),
            (DRAM, 2),
            p.len(),
            2,
            Urgency::Demand,
        ),
        desc(
            MoveOp::Promote,
            key(9),
            (DISK, 3),
            (DRAM, 3),
            p.len(),
            3,
            Urgency::Demand,
        ),
        desc(
            MoveOp::Promote,
            key(3),
            (DISK, 3),
            (DRAM, 4),
            p.len(),
            4,
            Urgency::Demand,
        ),
    ];
    push_all(&mut r.shards[0], &descs);
    r.engine.doorbell();
    let mut done = collect(&mut r.shards[0], 4);
    done.sort_by_key(|c| c.move_id);
    let statuses: Vec<_> = done.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            MoveStatus::Corrupt,
            MoveStatus::Corrupt,
            MoveStatus::Corrupt,
            MoveStatus::Done
        ]
    );
    assert!(done[..3].iter().all(|c| c.bytes == 0 && c.detail == 0));
    let stats = r.engine.counters().snapshot();
    assert_eq!((stats.corrupt, stats.errors), (3, 3));
    let mut out = vec![0u8; BLOCK as usize];
    assert!(r.dram.read_block(1, key(1), &mut out).is_err());
    assert_eq!(r.dram.read_block(4, key(3), &mut out).unwrap(), p.len());
}

#[test]
fn corrupt_disk_block_promotes_as_corrupt() {
    corrupt_promotion(BackendChoice::Auto);
}

#[test]
fn corrupt_disk_block_promotes_as_corrupt_with_psync() {
    corrupt_promotion(BackendChoice::Psync);
}

#[test]
fn corrupt_source_is_not_demoted() {
    let mut r = rig(BackendChoice::Auto, 1, 1024, Duration::from_millis(1));
    r.disk.write_block(2, key(0), b"older block").unwrap();
    r.dram.write_block(0, key(1), b"resident block").unwrap();
    r.dram.write_block(1, key(2), &payload(2)).unwrap();
    // Flip a payload byte of DRAM frame 1 in place.
    r.dram.claim_write(1).unwrap().bytes_mut()[64 + 3] ^= 1;
    let descs = [
        // Wrong key tag for what frame 0 holds.
        desc(
            MoveOp::Demote,
            key(7),
            (DRAM, 0),
            (DISK, 2),
            14,
            1,
            Urgency::Evict,
        ),
        // Payload checksum fails.
        desc(
            MoveOp::Demote,
            key(2),
            (DRAM, 1),
            (DISK, 2),
            payload(2).len(),
            2,
            Urgency::Evict,
        ),
    ];
    push_all(&mut r.shards[0], &descs);
    r.engine.doorbell();
    let done = collect(&mut r.shards[0], 2);
    assert!(
        done.iter().all(|c| c.status == MoveStatus::Corrupt),
        "{done:?}"
    );
    let mut out = vec![0u8; BLOCK as usize];
    let len = r.disk.read_block(2, key(0), &mut out).unwrap();
    assert_eq!(&out[..len], b"older block", "destination untouched");
}

#[test]
fn invalid_descriptor_is_an_error_completion_and_the_engine_goes_on() {
    let mut r = rig(BackendChoice::Auto, 1, 1024, Duration::from_millis(1));
    r.dram.write_block(0, key(0), b"x").unwrap();
    let descs = [
        desc(
            MoveOp::Demote,
            key(0),
            (DRAM, 0),
            (DISK, 99),
            1,
            1,
            Urgency::Evict,
        ),
        desc(
            MoveOp::Demote,
            key(0),
            (DRAM, 0),
            (5, 0),
            1,
            2,
            Urgency::Evict,
        ),
        desc(
            MoveOp::Demote,
            key(0),
            (DRAM, 0),
            (DISK, 0),
            1,
            3,
            Urgency::Evict,
        ),
    ];
    push_all(&mut r.shards[0], &descs);
    r.engine.doorbell();
    let mut done = collect(&mut r.shards[0], 3);
    done.sort_by_key(|c| c.move_id);
    assert_eq!(done[0].status, MoveStatus::IoError);
    assert_eq!(done[0].detail, libc::EINVAL as u32);
    assert_eq!(done[1].status, MoveStatus::IoError);
    assert_eq!(done[2].status, MoveStatus::Done);
}

#[test]
fn dram_to_dram_moves_are_copies() {
    let mut r = rig(BackendChoice::Auto, 1, 1024, Duration::from_millis(1));
    let p = payload(3);
    r.dram.write_block(5, key(3), &p).unwrap();
    push_all(
        &mut r.shards[0],
        &[desc(
            MoveOp::Promote,
            key(3),
            (DRAM, 5),
            (DRAM2, 7),
            p.len(),
            9,
            Urgency::Demand,
        )],
    );
    r.engine.doorbell();
    let done = collect(&mut r.shards[0], 1);
    assert_eq!(done[0].status, MoveStatus::Done);
    let mut out = vec![0u8; BLOCK as usize];
    let len = r.dram2.read_block(7, key(3), &mut out).unwrap();
    assert_eq!(&out[..len], &p[..]);
    assert_eq!(r.engine.counters().snapshot().submissions, 0, "no disk I/O");
}

#[test]
fn completions_reach_their_shard_and_none_is_dropped_when_rings_are_small() {
    // Completion rings of 4 slots and 40 descriptors per shard: the engine may take only what
    // it can answer, so it must wait for the shards to read completions, never drop one.
    let mut r = rig(BackendChoice::Auto, 3, 4, Duration::from_millis(1));
    for i in 0..8u32 {
        r.dram.write_block(i, key(i), &payload(i)).unwrap();
    }
    for (s, shard) in r.shards.iter_mut().enumerate() {
        let descs: Vec<_> = (0..40u32)
            .map(|j| {
                let i = j % 8;
                let s = s as u32;
                if j % 2 == 0 {
                    desc(
                        MoveOp::Demote,
                        key(i),
                        (DRAM, i),
                        (DISK, s * 8 + i),
                        payload(i).len(),
                        s * 1000 + j,
                        Urgency::Evict,
                    )
                } else {
                    desc(
                        MoveOp::Promote,
                        key(i),
                        (DRAM, i),
                        (DRAM2, s),
                        payload(i).len(),
                        s * 1000 + j,
                        Urgency::Demand,
                    )
                }
            })
            .collect();
        push_all(shard, &descs);
    }
    r.engine.doorbell();
    for (s, shard) in r.shards.iter_mut().enumerate() {
        let mut ids: Vec<u32> = collect(shard, 40)
            .into_iter()
            .map(|c| {
                assert_eq!(c.status, MoveStatus::Done, "{c:?}");
                c.move_id
            })
            .collect();
        ids.sort_unstable();
        let expected: Vec<u32> = (0..40).map(|j| s as u32 * 1000 + j).collect();
        assert_eq!(ids, expected, "shard {s}");
    }
    assert_eq!(r.engine.counters().snapshot().descriptors, 120);
}

#[test]
fn urgent_descriptors_are_executed_first() {
    // A long idle park and no doorbell while pushing, so one round sees all four.
    let mut r = rig(BackendChoice::Auto, 1, 1024, Duration::from_millis(100));
    std::thread::sleep(Duration::from_millis(20));
    r.dram.write_block(0, key(0), b"u").unwrap();
    let mk = |id, urgency| {
        desc(
            MoveOp::Promote,
            key(0),
            (DRAM, 0),
            (DRAM2, id),
            1,
            id,
            urgency,
        )
    };
    push_all(
        &mut r.shards[0],
        &[
            mk(0, Urgency::Prefetch),
            mk(1, Urgency::Evict),
            mk(2, Urgency::Prefetch),
            mk(3, Urgency::Demand),
        ],
    );
    r.engine.doorbell();
    let order: Vec<u32> = collect(&mut r.shards[0], 4)
        .iter()
        .map(|c| c.move_id)
        .collect();
    assert_eq!(order, [3, 1, 0, 2]);
}

#[test]
fn shutdown_drains_what_was_pushed() {
    let mut r = rig(BackendChoice::Auto, 2, 64, Duration::from_millis(100));
    r.dram.write_block(0, key(0), b"drain").unwrap();
    for (s, shard) in r.shards.iter_mut().enumerate() {
        let descs: Vec<_> = (0..20u32)
            .map(|j| {
                desc(
                    MoveOp::Demote,
                    key(0),
                    (DRAM, 0),
                    (DISK, j),
                    5,
                    s as u32 * 100 + j,
                    Urgency::Evict,
                )
            })
            .collect();
        push_all(shard, &descs);
    }
    // No doorbell: shutdown itself must wake the engine and drain both shards.
    r.engine.shutdown().unwrap();
    for shard in &mut r.shards {
        let done = collect(shard, 20);
        assert!(done.iter().all(|c| c.status == MoveStatus::Done));
        assert!(shard.completions.pop().is_none());
    }
    let mut out = [0u8; 16];
    assert_eq!(r.disk.read_block(19, key(0), &mut out).unwrap(), 5);
}

#[test]
fn doorbell_from_another_thread_wakes_the_engine() {
    let mut r = rig(BackendChoice::Auto, 1, 1024, Duration::from_millis(100));
    r.dram.write_block(0, key(0), b"bell").unwrap();
    let bell = r.engine.doorbell_handle();
    let mut shard = r.shards.pop().unwrap();
    let t = std::thread::spawn(move || {
        push_all(
            &mut shard,
            &[desc(
                MoveOp::Demote,
                key(0),
                (DRAM, 0),
                (DISK, 0),
                4,
                1,
                Urgency::Demand,
            )],
        );
        bell.ring();
        let start = Instant::now();
        let c = collect(&mut shard, 1);
        (c[0].status, start.elapsed())
    });
    let (status, waited) = t.join().unwrap();
    assert_eq!(status, MoveStatus::Done);
    println!("doorbell to completion: {waited:?}");
}
