//! A node with an HBM tier over pinned host memory and disk (feature `cuda`): blocks move
//! down and up through the GPU engine and come back byte for byte. Skips, saying why, on a
//! machine without a CUDA driver (CI); runs on the GPU machine from the prebuilt test binary.
#![cfg(feature = "cuda")]
#![allow(clippy::unwrap_used)]

use mcos_core::{BlockKey, Namespace, TierKind};
use mcos_node::{GetOutcome, Node, NodeConfig, PutOutcome, TierConfig};

fn tier(kind: TierKind, capacity_blocks: u32, path: Option<std::path::PathBuf>) -> TierConfig {
    TierConfig {
        kind,
        capacity_blocks,
        path,
        bandwidth_bytes_per_s: None,
        latency_ns: None,
        recreate: false,
        persist: false,
        sync: true,
    }
}

#[test]
fn blocks_round_trip_through_hbm_pinned_and_disk() {
    if !mcos_tiers::cuda::driver_present() {
        // The GPU script sets MCOS_REQUIRE_GPU: there a skip would hide a broken install.
        assert!(
            std::env::var_os("MCOS_REQUIRE_GPU").is_none(),
            "MCOS_REQUIRE_GPU is set but {}",
            mcos_tiers::cuda::NO_DRIVER
        );
        eprintln!("skipped: {}", mcos_tiers::cuda::NO_DRIVER);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::dram_and_disk(64 << 10, 1, 1, dir.path());
    cfg.tiers = vec![
        tier(TierKind::Hbm, 64, None),
        tier(TierKind::HostPinned, 128, None),
        tier(TierKind::Disk, 1024, Some(dir.path().join("gpu-node.bin"))),
    ];
    let node = Node::open(cfg).unwrap();
    let ns = Namespace::for_model("gpu-node-test");
    let n = 600u64;
    let body = |i: u64| -> Vec<u8> {
        (0..64 << 10)
            .map(|j| (i as u8) ^ (j as u8).wrapping_mul(7))
            .collect()
    };
    for i in 0..n {
        let k = BlockKey::from_trace_id(&ns, i);
        assert!(matches!(
            node.put(k, &body(i)).unwrap(),
            PutOutcome::Stored(_)
        ));
    }
    node.quiesce().unwrap();
    let stats = node.stats();
    assert_eq!(stats.tiers[0].kind, TierKind::Hbm);
    assert!(
        stats.tiers[2].used_blocks > 0,
        "blocks were demoted through HBM to disk"
    );
    let mut out = Vec::new();
    let mut hits = [0u32; 3];
    for i in 0..n {
        let k = BlockKey::from_trace_id(&ns, i);
        match node.get(k, &mut out).unwrap() {
            GetOutcome::Hit(t) => {
                assert_eq!(out, body(i), "block {i} came back changed");
                hits[t.index()] += 1;
            }
            GetOutcome::Miss => panic!("block {i} was lost"),
        }
    }
    assert!(hits.iter().all(|&h| h > 0), "hits per tier {hits:?}");
    assert_eq!(node.stats().counters.corrupt_blocks, 0);
    eprintln!("disk -> HBM path: {:?}", node.stats().gpu_disk_path);
    node.close().unwrap();
}

#[test]
fn an_hbm_tier_without_a_gpu_is_a_clear_error() {
    if mcos_tiers::cuda::driver_present() || std::env::var_os("MCOS_REQUIRE_GPU").is_some() {
        eprintln!("skipped: a CUDA driver is present");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::dram_and_disk(4096, 1, 1, dir.path());
    cfg.tiers = vec![
        tier(TierKind::Hbm, 8, None),
        tier(TierKind::HostPinned, 8, None),
    ];
    let err = Node::open(cfg).err().unwrap().to_string();
    assert!(err.contains("libcuda"), "{err}");
}
