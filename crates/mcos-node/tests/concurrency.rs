//! Callers copy blocks outside the shard lock while engines move them: no torn or wrong byte, no
//! lost block, no failed move, no stall; and `get_into`'s contract on the caller's slice.
#![allow(clippy::unwrap_used)]

use mcos_core::{BlockKey, Namespace, TierId};
use mcos_node::{Fetched, GetOutcome, Node, NodeConfig, NodeError, PutOutcome};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const BLOCK: usize = 4096;

fn key(id: u64) -> BlockKey {
    BlockKey::from_trace_id(&Namespace::for_model("node-concurrency-test"), id)
}

/// Block `id`'s bytes: a length and a pattern of its own, so a block read from a frame that
/// another block reused, or cut short, or spliced from two blocks, cannot compare equal.
fn bytes(id: u64) -> Vec<u8> {
    let len = 1 + (id as usize * 977) % BLOCK;
    (0..len)
        .map(|i| (id as u8) ^ (i as u8).wrapping_mul(13) ^ ((i >> 8) as u8))
        .collect()
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// A node of one shard whose DRAM tier holds `dram` blocks over a disk tier large enough for
/// every block the test stores, so a stored block must always be found.
fn node(dir: &std::path::Path, dram: u32) -> Node {
    let mut cfg = NodeConfig::dram_and_disk(BLOCK as u32, dram, 1024, dir);
    cfg.shards = 1;
    Node::open(cfg).unwrap()
}

/// What the whole run must show: blocks moved both ways, and none of it failed or was taken
/// for corruption.
fn assert_moved_cleanly(node: &Node) {
    node.quiesce().unwrap();
    let c = node.stats().counters;
    assert_eq!(
        c.corrupt_blocks, 0,
        "a racing read was taken for corruption: {c:?}"
    );
    assert_eq!(
        c.move_errors, 0,
        "an engine failed a move (a reader's frame?): {c:?}"
    );
    assert!(c.demotions > 0, "nothing was demoted: {c:?}");
    assert!(c.hits[1] > 0, "nothing was read from disk: {c:?}");
}

/// Two putters fill a one-shard node through a DRAM tier of 8 frames (so engines demote all the
/// time and promote what the getters read from disk) while three getters read random stored
/// blocks, half through `get_into` and half through `get`, and compare every byte.
#[test]
fn getters_and_putters_on_one_shard_see_every_byte_while_engines_move_blocks() {
    const PUTTERS: u64 = 2;
    const PER_PUTTER: u64 = 300;
    const N: u64 = PUTTERS * PER_PUTTER;
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), 8);
    let stored: Vec<AtomicBool> = (0..N).map(|_| AtomicBool::new(false)).collect();
    let done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    std::thread::scope(|s| {
        let putters: Vec<_> = (0..PUTTERS)
            .map(|p| {
                let (node, stored) = (&node, &stored);
                s.spawn(move || {
                    for id in p * PER_PUTTER..(p + 1) * PER_PUTTER {
                        match node.put(key(id), &bytes(id)).unwrap() {
                            PutOutcome::Stored(_) => {
                                stored[id as usize].store(true, Ordering::Release)
                            }
                            PutOutcome::Present => panic!("block {id} was put once"),
                            PutOutcome::Rejected(_) => {}
                        }
                    }
                })
            })
            .collect();
        for g in 0..3u64 {
            let (node, stored, done, reads) = (&node, &stored, &done, &reads);
            s.spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (g + 1);
                let mut slice = vec![0u8; BLOCK];
                let mut vec = Vec::new();
                while !done.load(Ordering::Acquire) {
                    let id = xorshift(&mut seed) % N;
                    if !stored[id as usize].load(Ordering::Acquire) {
                        continue;
                    }
                    let want = bytes(id);
                    if id.is_multiple_of(2) {
                        match node.get_into(key(id), None, &mut slice).unwrap() {
                            Fetched::Hit { len, .. } => {
                                assert_eq!(&slice[..len], &want[..], "bytes of block {id}")
                            }
                            Fetched::Miss => panic!("block {id} was stored and is lost"),
                        }
                    } else {
                        match node.get(key(id), &mut vec).unwrap() {
                            GetOutcome::Hit(_) => assert_eq!(vec, want, "bytes of block {id}"),
                            GetOutcome::Miss => panic!("block {id} was stored and is lost"),
                        }
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for p in putters {
            p.join().unwrap();
        }
        // Keep reading a while after the last put: reads of disk blocks promote them.
        std::thread::sleep(Duration::from_millis(100));
        done.store(true, Ordering::Release);
    });
    let stored_n = stored.iter().filter(|b| b.load(Ordering::Relaxed)).count();
    assert!(
        stored_n as u64 > N / 2,
        "only {stored_n} of {N} blocks were stored"
    );
    assert!(
        reads.load(Ordering::Relaxed) > 1000,
        "the getters barely ran"
    );
    assert_moved_cleanly(&node);
    node.close().unwrap();
}

/// Readers keep reading 16 blocks through 4 DRAM frames: each read of a block on disk promotes
/// it and demotes another, so frames are freed and reused while other readers still copy out
/// of them; a putter adds churn. Every read hits with the exact bytes and no call errs (no
/// stall, no busy frame).
#[test]
fn moves_racing_readers_give_no_wrong_byte_and_no_stall() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), 4);
    for id in 0..16 {
        assert!(matches!(
            node.put(key(id), &bytes(id)).unwrap(),
            PutOutcome::Stored(_)
        ));
    }
    std::thread::scope(|s| {
        for r in 0..3u64 {
            let node = &node;
            s.spawn(move || {
                let mut seed = 0xD1B5_4A32_D192_ED03 ^ (r + 1);
                let mut out = vec![0u8; BLOCK];
                for _ in 0..6000 {
                    let id = xorshift(&mut seed) % 16;
                    match node.get_into(key(id), None, &mut out) {
                        Ok(Fetched::Hit { len, .. }) => {
                            assert_eq!(&out[..len], &bytes(id)[..], "bytes of block {id}")
                        }
                        Ok(Fetched::Miss) => panic!("block {id} lost"),
                        Err(e) => panic!("get of block {id}: {e}"),
                    }
                }
            });
        }
        let node = &node;
        s.spawn(move || {
            for id in 100..400 {
                node.put(key(id), &bytes(id)).unwrap();
            }
        });
    });
    assert_moved_cleanly(&node);
    let c = node.stats().counters;
    assert!(
        c.moves_started > c.demotions_started,
        "no promotions ran: {c:?}"
    );
    node.close().unwrap();
}

/// A slice shorter than the stored payload is a typed error and leaves the slice and the block
/// as they were, in DRAM and on disk; a miss does not write the slice either.
#[test]
fn get_into_a_short_slice_is_a_clear_error_and_the_block_stays() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), 4);
    let payload = vec![7u8; 3000];
    node.put(key(1), &payload).unwrap();
    let mut short = vec![0xAAu8; 2999];
    let err = node.get_into(key(1), None, &mut short).unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::BufferTooSmall {
                needed: 3000,
                len: 2999
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("3000"), "{err}");
    assert!(
        short.iter().all(|&b| b == 0xAA),
        "the short slice was written"
    );
    let mut out = vec![0u8; BLOCK];
    assert_eq!(
        node.get_into(key(1), None, &mut out).unwrap(),
        Fetched::Hit {
            tier: TierId(0),
            len: 3000
        }
    );
    assert_eq!(&out[..3000], &payload[..]);

    // Push it down to disk, then ask again with a short slice: same answer, block kept.
    for id in 10..300 {
        node.put(key(id), &bytes(id)).unwrap();
        node.quiesce().unwrap();
        if node.locate(key(1)).is_some_and(|(t, _)| t == TierId(1)) {
            break;
        }
    }
    assert_eq!(node.locate(key(1)).map(|(t, _)| t), Some(TierId(1)));
    let err = node.get_into(key(1), None, &mut short).unwrap_err();
    assert!(
        matches!(err, NodeError::BufferTooSmall { needed: 3000, .. }),
        "{err:?}"
    );
    assert!(short.iter().all(|&b| b == 0xAA));
    out.fill(0);
    match node.get_into(key(1), Some((1, 0)), &mut out).unwrap() {
        Fetched::Hit { len, .. } => assert_eq!(&out[..len], &payload[..]),
        Fetched::Miss => panic!("the block was lost after a short read"),
    }

    let mut untouched = vec![0x55u8; BLOCK];
    assert_eq!(
        node.get_into(key(999), None, &mut untouched).unwrap(),
        Fetched::Miss
    );
    assert!(untouched.iter().all(|&b| b == 0x55));
    assert_eq!(node.stats().counters.corrupt_blocks, 0);
    node.close().unwrap();
}

/// Two callers put the same blocks at once (fills are written without the shard lock, so one
/// may find the other's fill in progress): whichever answer a put gets, `Stored` or `Present`,
/// the block is readable the moment it returns.
#[test]
fn a_put_that_returns_present_is_readable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), 64);
    let present = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (node, present) = (&node, &present);
            s.spawn(move || {
                let mut out = vec![0u8; BLOCK];
                for id in 0..800 {
                    match node.put(key(id), &bytes(id)).unwrap() {
                        PutOutcome::Stored(_) => {}
                        PutOutcome::Present => {
                            present.fetch_add(1, Ordering::Relaxed);
                        }
                        PutOutcome::Rejected(r) => panic!("block {id} rejected: {r:?}"),
                    }
                    match node.get_into(key(id), None, &mut out).unwrap() {
                        Fetched::Hit { len, .. } => assert_eq!(&out[..len], &bytes(id)[..]),
                        Fetched::Miss => panic!("block {id} missed right after its put returned"),
                    }
                }
            });
        }
    });
    assert!(present.load(Ordering::Relaxed) > 0, "the callers never met");
    node.close().unwrap();
}
