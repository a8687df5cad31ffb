//! The node against a simple model, with real bytes in real DRAM and disk tiers.
#![allow(clippy::unwrap_used)]

use mcos_core::{BlockKey, Namespace, PriorityClass, TierId};
use mcos_node::{GetOutcome, Node, NodeConfig, NodeError, PutOutcome};
use proptest::prelude::*;
use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};

fn key(id: u64) -> BlockKey {
    BlockKey::from_trace_id(&Namespace::for_model("node-test"), id)
}

fn payload(id: u64, version: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (id as u8)
                .wrapping_mul(31)
                .wrapping_add(i as u8)
                .wrapping_add(version)
        })
        .collect()
}

fn small_node(dir: &std::path::Path, dram: u32, disk: u32) -> Node {
    let mut cfg = NodeConfig::dram_and_disk(512, dram, disk, dir);
    cfg.free_watermark = 0.0;
    Node::open(cfg).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Put(u64, u8, usize),
    Get(u64),
    Pin(u64),
    Unpin(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..24, any::<u8>(), 1usize..=512).prop_map(|(i, v, l)| Op::Put(i, v, l)),
        4 => (0u64..24).prop_map(Op::Get),
        1 => (0u64..24).prop_map(Op::Pin),
        1 => (0u64..24).prop_map(Op::Unpin),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every get returns exactly the bytes of the put that stored the block, or a miss; tiers
    /// never exceed their capacity; a pinned block is never evicted.
    #[test]
    fn node_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let node = small_node(dir.path(), 4, 8);
        let mut model: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut pins: HashMap<u64, u32> = HashMap::new();
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Put(id, v, len) => {
                    let bytes = payload(id, v, len);
                    match node.put(key(id), &bytes).unwrap() {
                        PutOutcome::Stored(_) => { model.insert(id, bytes); }
                        PutOutcome::Present => prop_assert!(model.contains_key(&id)),
                        PutOutcome::Rejected(_) => {}
                    }
                }
                Op::Get(id) => match node.get(key(id), &mut out).unwrap() {
                    GetOutcome::Hit(_) => prop_assert_eq!(Some(&out), model.get(&id), "bytes of block {}", id),
                    GetOutcome::Miss => {
                        prop_assert!(!pins.contains_key(&id), "pinned block {} was evicted", id);
                        model.remove(&id);
                    }
                },
                Op::Pin(id) => match node.pin(key(id)) {
                    Ok(()) => *pins.entry(id).or_default() += 1,
                    Err(NodeError::NotResident(_)) => { model.remove(&id); }
                    Err(e) => prop_assert!(false, "pin: {e}"),
                },
                Op::Unpin(id) => match node.unpin(key(id)) {
                    Ok(()) => {
                        let n = pins.get_mut(&id).unwrap();
                        *n -= 1;
                        if *n == 0 { pins.remove(&id); }
                    }
                    Err(NodeError::NotPinned(_)) | Err(NodeError::NotResident(_)) => {
                        prop_assert!(!pins.contains_key(&id));
                    }
                    Err(e) => prop_assert!(false, "unpin: {e}"),
                },
            }
            for id in pins.keys() {
                prop_assert!(node.locate(key(*id)).is_some(), "pinned block {} not resident", id);
            }
            let stats = node.stats();
            for t in &stats.tiers {
                prop_assert!(t.used_blocks <= t.capacity_blocks);
            }
        }
        node.quiesce().unwrap();
        // Everything the node still holds reads back exactly.
        for (id, bytes) in &model {
            if let GetOutcome::Hit(_) = node.get(key(*id), &mut out).unwrap() {
                prop_assert_eq!(&out, bytes);
            }
        }
        node.close().unwrap();
    }
}

#[test]
fn blocks_flow_down_to_disk_and_back_up_with_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let node = small_node(dir.path(), 8, 64);
    for id in 0..60 {
        assert_eq!(
            node.put(key(id), &payload(id, 1, 500)).unwrap(),
            PutOutcome::Stored(TierId(0))
        );
    }
    node.quiesce().unwrap();
    let stats = node.stats();
    assert!(stats.counters.demotions >= 50, "{:?}", stats.counters);
    assert_eq!(stats.disk_direct_io, Some(true));
    let mut out = Vec::new();
    let mut disk_hits = 0;
    for id in 0..60 {
        match node.get(key(id), &mut out).unwrap() {
            GetOutcome::Hit(t) => {
                assert_eq!(out, payload(id, 1, 500));
                disk_hits += usize::from(t == TierId(1));
            }
            GetOutcome::Miss => panic!("block {id} lost though both tiers have room"),
        }
    }
    assert!(disk_hits > 40, "{disk_hits} hits came from disk");
    let keys: Vec<_> = (0..60).map(key).collect();
    assert_eq!(node.longest_cached_prefix(&keys), 60);
    assert_eq!(node.longest_cached_prefix(&[key(0), key(999), key(1)]), 1);
    node.close().unwrap();
}

/// A batch get decides every key before waiting for any move: blocks on disk come up in the
/// same engine batches, and each buffer gets exactly its own block (or a miss).
#[test]
fn a_batch_get_reads_every_tier_with_each_block_in_its_own_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let node = small_node(dir.path(), 8, 64);
    // 48 blocks through an 8-frame DRAM tier in one batch: the puts wait for room together.
    let data: Vec<Vec<u8>> = (0..48)
        .map(|id| payload(id, 2, 300 + id as usize))
        .collect();
    let blocks: Vec<(BlockKey, &[u8])> = data
        .iter()
        .enumerate()
        .map(|(id, p)| (key(id as u64), &p[..]))
        .collect();
    let stored = node.put_batch(mcos_core::PriorityClass::DEFAULT, &blocks);
    assert!(
        stored
            .iter()
            .all(|r| matches!(r, Ok(PutOutcome::Stored(_)))),
        "{stored:?}"
    );
    let again = node.put_batch(mcos_core::PriorityClass::DEFAULT, &blocks[..3]);
    assert!(
        again.iter().all(|r| matches!(r, Ok(PutOutcome::Present))),
        "{again:?}"
    );
    assert!(matches!(
        node.put_batch(
            mcos_core::PriorityClass::DEFAULT,
            &[(BlockKey::NONE, &data[0][..])]
        )[0],
        Err(NodeError::ReservedKey)
    ));
    node.quiesce().unwrap();
    // 40 of the 48 are on disk; ask for all of them, a missing key and one repeated key.
    let ids: Vec<u64> = (0..48).chain([999, 5]).collect();
    let keys: Vec<BlockKey> = ids.iter().map(|&i| key(i)).collect();
    let check = |round: &str| {
        let mut bufs = vec![vec![0xAAu8; 512]; ids.len()];
        let mut views: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
        let res = node.get_batch_into(&keys, &mut views);
        for ((r, &id), b) in res.iter().zip(&ids).zip(&bufs) {
            match r.as_ref().unwrap() {
                mcos_node::Fetched::Hit { len, .. } => {
                    assert_eq!(
                        &b[..*len],
                        &payload(id, 2, 300 + id as usize)[..],
                        "{round}: block {id}"
                    )
                }
                mcos_node::Fetched::Miss => {
                    assert_eq!(id, 999, "{round}: block {id} lost");
                    assert!(
                        b.iter().all(|&x| x == 0xAA),
                        "{round}: a miss does not write its buffer"
                    );
                }
            }
        }
    };
    check("first batch");
    // Whether the first batch's disk blocks waited for a promotion depends on the engines'
    // timing: with the DRAM tier full, a promotion needs a frame that only a landed demotion
    // frees, and a get that finds none reads in place. Once the demotions the batch started
    // have landed, the next batch's disk blocks take the freed frames and wait for their moves.
    node.quiesce().unwrap();
    check("second batch");
    assert!(
        node.stats().gets_waited > 0,
        "some blocks came up from disk: {} moves",
        node.stats().counters.moves_started
    );
    // Fewer buffers than keys: the extra keys are errors, not silent misses.
    let mut one = vec![0u8; 512];
    let r = node.get_batch_into(&keys[..2], &mut [&mut one[..]]);
    assert!(r[0].is_ok() && r[1].is_err());
    node.close().unwrap();
}

#[test]
fn a_corrupted_block_on_disk_is_a_counted_miss_and_nothing_else_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let node = small_node(dir.path(), 2, 16);
    for id in 0..10 {
        node.put(key(id), &payload(id, 7, 300)).unwrap();
    }
    node.quiesce().unwrap();
    let (tier, frame) = node.locate(key(0)).unwrap();
    assert_eq!(tier, TierId(1), "block 0 was demoted to disk");
    // Flip a payload byte in the disk file behind the node's back.
    let path = node.config().tiers[1].path.clone().unwrap();
    let stride = mcos_tiers::layout::frame_stride(512) as u64;
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let frames_at = mcos_tiers::superblock::SUPERBLOCK_BYTES as u64;
    f.seek(SeekFrom::Start(
        frames_at + u64::from(frame) * stride + 64 + 10,
    ))
    .unwrap();
    f.write_all(&[0xAB]).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let mut out = Vec::new();
    assert_eq!(
        node.get(key(0), &mut out).unwrap(),
        GetOutcome::Miss,
        "corrupt bytes are never returned"
    );
    assert!(out.is_empty());
    node.quiesce().unwrap();
    assert_eq!(node.stats().counters.corrupt_blocks, 1);
    assert!(
        node.locate(key(0)).is_none(),
        "the corrupt block is forgotten"
    );
    for id in 1..10 {
        assert!(
            matches!(node.get(key(id), &mut out).unwrap(), GetOutcome::Hit(_)),
            "block {id}"
        );
        assert_eq!(out, payload(id, 7, 300));
    }
    // The slot can be reused: storing block 0 again works.
    assert!(matches!(
        node.put(key(0), &payload(0, 8, 300)).unwrap(),
        PutOutcome::Stored(_)
    ));
    node.close().unwrap();
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = small_node(dir.path(), 2, 4);
    let too_big = vec![0u8; 513];
    let err = node.put(key(1), &too_big).unwrap_err().to_string();
    assert!(err.contains("exceeds") && err.contains("512"), "{err}");
    assert!(matches!(
        node.put(BlockKey::NONE, &[1]),
        Err(NodeError::ReservedKey)
    ));
    assert!(matches!(node.pin(key(42)), Err(NodeError::NotResident(_))));
    node.put(key(1), &[1, 2, 3]).unwrap();
    assert!(matches!(node.unpin(key(1)), Err(NodeError::NotPinned(_))));
    node.close().unwrap();

    let mut cfg = NodeConfig::dram_and_disk(512, 0, 4, dir.path());
    assert!(
        Node::open(cfg.clone())
            .err()
            .unwrap()
            .to_string()
            .contains("capacity 0")
    );
    cfg.tiers[0].capacity_blocks = 2;
    cfg.tiers[1].path = Some("/proc/definitely/not/writable/tier.bin".into());
    let err = Node::open(cfg).err().unwrap().to_string();
    assert!(err.contains("/proc/definitely"), "{err}");
}

/// A disk tier that does not fit its filesystem is refused at open with the sizes, and a node
/// already running keeps its blocks. Needs root to mount a tiny tmpfs; skips otherwise (except
/// in CI, which runs as root).
#[test]
fn a_full_filesystem_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root and must be able to mount tmpfs"
        );
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let keeper = small_node(&dir.path().join("ok"), 2, 4);
    keeper.put(key(1), &payload(1, 1, 100)).unwrap();
    let cfg = NodeConfig::dram_and_disk(4096, 4, 1024, &mnt); // 8 MiB of frames on 256 KiB
    let err = Node::open(cfg)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    assert!(
        err.contains("not enough disk space") && err.contains("small"),
        "{err}"
    );
    let mut out = Vec::new();
    assert!(matches!(
        keeper.get(key(1), &mut out).unwrap(),
        GetOutcome::Hit(_)
    ));
    keeper.close().unwrap();
}

#[test]
fn many_threads_share_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::dram_and_disk(1024, 64, 512, dir.path());
    cfg.shards = 2;
    let node = Node::open(cfg).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let node = &node;
            s.spawn(move || {
                let mut out = Vec::new();
                for i in 0..300u64 {
                    let id = t * 1000 + i % 100;
                    match node.get(key(id), &mut out).unwrap() {
                        GetOutcome::Hit(_) => assert_eq!(out, payload(id, 3, 1000)),
                        GetOutcome::Miss => {
                            node.put(key(id), &payload(id, 3, 1000)).unwrap();
                        }
                    }
                }
            });
        }
    });
    node.quiesce().unwrap();
    let stats = node.stats();
    assert_eq!(stats.counters.accesses, 1200);
    // 400 distinct blocks fit the two tiers: every second and third pass hits.
    assert!(stats.counters.total_hits() >= 780, "{:?}", stats.counters);
    node.close().unwrap();
}

/// Two memory tiers over a disk: moves between the DRAM tiers run on the memcpy engine, moves to
/// and from disk on the disk engine, and every block still reads back exactly.
#[test]
fn three_tiers_use_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::dram_and_disk(512, 4, 64, dir.path());
    let mut second = cfg.tiers[0].clone();
    second.capacity_blocks = 8;
    cfg.tiers.insert(1, second);
    cfg.free_watermark = 0.0;
    let node = Node::open(cfg).unwrap();
    for id in 0..40 {
        assert!(matches!(
            node.put(key(id), &payload(id, 2, 400)).unwrap(),
            PutOutcome::Stored(_)
        ));
    }
    node.quiesce().unwrap();
    let stats = node.stats();
    assert!(
        stats.counters.bytes_moved[0][1] > 0,
        "fast DRAM -> DRAM via memcpy: {:?}",
        stats.counters
    );
    assert!(
        stats.counters.bytes_moved[1][2] > 0,
        "DRAM -> disk via io: {:?}",
        stats.counters
    );
    let mut out = Vec::new();
    let mut by_tier = [0usize; 3];
    // Most recent first: the newest blocks are found in the fast tier, the oldest on disk.
    for id in (0..40).rev() {
        match node.get(key(id), &mut out).unwrap() {
            GetOutcome::Hit(t) => {
                assert_eq!(out, payload(id, 2, 400), "block {id}");
                by_tier[t.index()] += 1;
            }
            GetOutcome::Miss => panic!("block {id} lost though the tiers hold 76 blocks"),
        }
    }
    assert!(by_tier[0] > 0 && by_tier[2] > 0, "{by_tier:?}");
    node.quiesce().unwrap();
    assert!(
        node.stats().counters.bytes_moved[2][0] > 0,
        "disk -> fast DRAM promotions"
    );
    node.close().unwrap();
}

/// A node over a persistent disk tier in `dir`.
fn persist_cfg(dir: &std::path::Path, shards: usize) -> NodeConfig {
    let mut cfg = NodeConfig::dram_and_disk(1000, 8, 64, dir);
    cfg.shards = shards;
    cfg.tiers[1].persist = true;
    cfg
}

fn payload_of(id: u64) -> Vec<u8> {
    (0..1000).map(|i| (id as usize * 31 + i) as u8).collect()
}

#[test]
fn durable_puts_survive_a_restart_and_damaged_frames_are_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(persist_cfg(dir.path(), 2)).unwrap();
    assert_eq!(node.persist_tier(), Some(TierId(1)));
    for id in 1..=20u64 {
        let out = node
            .put_durable(
                BlockKey(u128::from(id)),
                PriorityClass::DEFAULT,
                &payload_of(id),
            )
            .unwrap();
        assert_eq!(out, PutOutcome::Stored(TierId(1)));
    }
    node.sync_durable().unwrap();
    // Reads are served in place from the persistent tier: it never moves a block out.
    let mut out = Vec::new();
    for _ in 0..3 {
        assert_eq!(
            node.get(BlockKey(3), &mut out).unwrap(),
            GetOutcome::Hit(TierId(1))
        );
    }
    // Volatile puts land in DRAM.
    assert_eq!(
        node.put(BlockKey(500), &payload_of(500)).unwrap(),
        PutOutcome::Stored(TierId(0))
    );
    let stats = node.stats();
    assert_eq!(stats.durable_puts, 20);
    assert_eq!(stats.durable_syncs, 1);
    let (_, frame7) = node.locate(BlockKey(7)).unwrap();
    let (_, frame9) = node.locate(BlockKey(9)).unwrap();
    let path = node.config().tiers[1].path.clone().unwrap();
    drop(node);
    assert!(path.exists(), "a persistent tier file outlives the node");
    // Damage one header and one payload, as a torn write would.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let stride = 4096u64;
        f.write_all_at(&[0xff], 4096 + u64::from(frame7) * stride + 30)
            .unwrap();
        f.write_all_at(&[0xff], 4096 + u64::from(frame9) * stride + 64 + 10)
            .unwrap();
    }
    let node = Node::open(persist_cfg(dir.path(), 2)).unwrap();
    let rb = node.stats().rebuild.unwrap();
    assert_eq!(rb.frames_scanned, 64);
    assert_eq!(rb.blocks_restored, 19, "{rb:?}");
    assert_eq!(rb.discarded_corrupt, 1, "{rb:?}");
    assert!(rb.seconds > 0.0 && rb.bytes_per_s() > 0.0);
    for id in 1..=20u64 {
        let got = node.get(BlockKey(u128::from(id)), &mut out).unwrap();
        match id {
            7 | 9 => assert_eq!(got, GetOutcome::Miss, "damaged block {id} is a miss"),
            _ => {
                assert_eq!(got, GetOutcome::Hit(TierId(1)), "block {id}");
                assert_eq!(out, payload_of(id));
            }
        }
    }
    assert_eq!(
        node.stats().counters.corrupt_blocks,
        1,
        "the torn payload, found on read"
    );
    // The DRAM-only block did not survive (it was acknowledged stored, not durable).
    assert_eq!(node.get(BlockKey(500), &mut out).unwrap(), GetOutcome::Miss);
    // One shard owns every frame: all 19 verified headers are restored.
    drop(node);
    let node = Node::open(persist_cfg(dir.path(), 1)).unwrap();
    let rb = node.stats().rebuild.unwrap();
    assert_eq!((rb.blocks_restored, rb.discarded_misplaced), (19, 0));
    drop(node);
    // Three shards: a block in a frame its key's shard does not own is discarded and counted.
    let node = Node::open(persist_cfg(dir.path(), 3)).unwrap();
    let rb = node.stats().rebuild.unwrap();
    assert_eq!(rb.blocks_restored + rb.discarded_misplaced, 19, "{rb:?}");
    assert!(rb.discarded_misplaced > 0, "{rb:?}");
    for id in 1..=20u64 {
        if node.get(BlockKey(u128::from(id)), &mut out).unwrap() != GetOutcome::Miss {
            assert_eq!(out, payload_of(id));
        }
    }
    drop(node);
    assert!(matches!(
        Node::open(NodeConfig::dram_and_disk(1000, 8, 64, dir.path()))
            .unwrap()
            .put_durable(BlockKey(1), PriorityClass::DEFAULT, b"x"),
        Err(NodeError::NotDurable)
    ));
}

/// Space taken away at run time: the persistent tier's frames were reserved at open
/// (`posix_fallocate`), so a filesystem filled by someone else afterwards costs no put, no
/// durable block and no byte. Real device: a 2 MiB tmpfs (needs root; CI runs as root).
#[test]
fn a_filesystem_filled_after_open_costs_no_stored_block() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root and must be able to mount tmpfs"
        );
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let run = || {
        let mut cfg = NodeConfig::dram_and_disk(1000, 8, 128, &mnt); // 516 KiB file
        cfg.tiers[1].persist = true;
        let node = Node::open(cfg).unwrap();
        // Someone else fills the filesystem.
        let hog = mnt.join("hog");
        let mut f = std::fs::File::create(&hog).unwrap();
        let chunk = vec![1u8; 64 << 10];
        let err = loop {
            if let Err(e) = f.write_all(&chunk) {
                break e;
            }
        };
        assert_eq!(err.raw_os_error(), Some(libc_enospc()), "{err}");
        for id in 1..=100u64 {
            let out = node
                .put_durable(
                    BlockKey(u128::from(id)),
                    PriorityClass::DEFAULT,
                    &payload_of(id),
                )
                .unwrap();
            assert_eq!(out, PutOutcome::Stored(TierId(1)));
        }
        node.sync_durable().unwrap();
        // Volatile puts too (fewer than the free frames: a durable block leaves only when
        // capacity evicts it).
        for id in 101..=120u64 {
            node.put(BlockKey(u128::from(id)), &payload_of(id)).unwrap();
        }
        node.quiesce().unwrap();
        assert_eq!(node.stats().counters.evictions, 0);
        assert_eq!(node.stats().counters.move_errors, 0);
        drop(node);
        let node = Node::open({
            let mut cfg = NodeConfig::dram_and_disk(1000, 8, 128, &mnt);
            cfg.tiers[1].persist = true;
            cfg
        })
        .unwrap();
        let mut out = Vec::new();
        for id in 1..=100u64 {
            assert_eq!(
                node.get(BlockKey(u128::from(id)), &mut out).unwrap(),
                GetOutcome::Hit(TierId(1)),
                "durable block {id}"
            );
            assert_eq!(out, payload_of(id));
        }
    };
    let result = std::panic::catch_unwind(run);
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

fn libc_enospc() -> i32 {
    28
}
