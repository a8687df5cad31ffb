//! The GPU tiers and the GPU mover on a real device (feature `cuda`). Each test skips, saying
//! why, where no CUDA driver can be loaded (CI, laptops); scripts/gpu-bench.sh runs the prebuilt
//! test binary on the GPU machine.
#![cfg(feature = "cuda")]
#![allow(clippy::unwrap_used)]

use mcos_core::{BlockKey, GpuRoutes, MoveDescriptor, MoveOp, MoveStatus, Urgency};
use mcos_tiers::cuda::kernels::Kernels;
use mcos_tiers::cuda::pinned::PinnedHostTier;
use mcos_tiers::cuda::{GpuDevice, GpuMover, GpuMoverConfig, GpuTier, HbmTier, driver_present};
use mcos_tiers::engine::route::RouteCell;
use mcos_tiers::engine::{Mover, Outcome};
use mcos_tiers::{DiskTier, DramTier};
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn device() -> Option<Arc<GpuDevice>> {
    if !driver_present() {
        // On the GPU machine the script sets MCOS_REQUIRE_GPU: there a skip would hide a
        // broken driver install, so it fails instead.
        assert!(
            std::env::var_os("MCOS_REQUIRE_GPU").is_none(),
            "MCOS_REQUIRE_GPU is set but {}",
            mcos_tiers::cuda::NO_DRIVER
        );
        eprintln!("skipped: {}", mcos_tiers::cuda::NO_DRIVER);
        return None;
    }
    Some(GpuDevice::open(0).unwrap())
}

fn body(i: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i as u8).wrapping_mul(13) ^ (j as u8))
        .collect()
}

fn desc(src: (u8, u32), dst: (u8, u32), key: BlockKey, len: u32) -> MoveDescriptor {
    MoveDescriptor {
        key_tag: key.tag(),
        move_id: 0,
        src_frame: src.1,
        dst_frame: dst.1,
        len,
        op: MoveOp::Promote,
        src_tier: src.0,
        dst_tier: dst.0,
        urgency: Urgency::Demand,
        epoch: 0,
        class: 0,
        engine: 0,
    }
}

struct Rig {
    dram: Arc<DramTier>,
    hbm: Arc<HbmTier>,
    mover: GpuMover,
    routes: Arc<RouteCell>,
}

fn rig(dev: &Arc<GpuDevice>, frames: u32, block: u32) -> Rig {
    let dram = Arc::new(DramTier::new(frames, block).unwrap());
    let host = Arc::new(PinnedHostTier::register(dev, dram.clone()).unwrap());
    let hbm = Arc::new(HbmTier::new(dev, frames, block).unwrap());
    let routes = Arc::new(RouteCell::new(GpuRoutes::BUILTIN));
    let kernels = Arc::new(Kernels::load(dev).unwrap());
    let mut cfg = GpuMoverConfig::new(
        vec![GpuTier::Host(host), GpuTier::Hbm(hbm.clone())],
        routes.clone(),
    );
    cfg.use_gds = false;
    let mover = GpuMover::new(dev, kernels, cfg).unwrap();
    Rig {
        dram,
        hbm,
        mover,
        routes,
    }
}

fn run(m: &mut GpuMover, descs: &[MoveDescriptor]) -> Vec<Outcome> {
    let mut out = vec![Outcome::done(0); descs.len()];
    m.execute(descs, &mut out);
    out
}

#[test]
fn hbm_put_and_get_round_trip_and_verify() {
    let Some(dev) = device() else { return };
    let hbm = HbmTier::new(&dev, 4, 5000).unwrap();
    let k = BlockKey(77);
    hbm.write_block(2, k, b"bytes in hbm").unwrap();
    let mut out = vec![0u8; 5000];
    assert_eq!(hbm.read_block(2, k, &mut out).unwrap(), 12);
    assert_eq!(&out[..12], b"bytes in hbm");
    assert!(
        hbm.read_block(2, BlockKey(78), &mut out).is_err(),
        "wrong key"
    );
    assert!(hbm.read_block(1, k, &mut out).is_err(), "never written");
    assert!(hbm.write_block(4, k, b"x").is_err(), "out of range");
}

#[test]
fn both_paths_move_scattered_blocks_both_ways_verified() {
    let Some(dev) = device() else { return };
    let block = 16u32 << 10;
    let n = 200u32;
    for gather_max in [u32::MAX, 0] {
        let mut r = rig(&dev, 2 * n, block);
        r.routes.publish(GpuRoutes {
            gather_max_block_bytes: gather_max,
            degraded_below_mb_per_s: 0,
        });
        for i in 0..n {
            r.dram
                .write_block(i, BlockKey(u128::from(i) + 1), &body(i, block as usize))
                .unwrap();
        }
        // host frame i -> HBM frame 2n-1-i (scattered), then back to host frame n + i.
        let up: Vec<_> = (0..n)
            .map(|i| {
                desc(
                    (0, i),
                    (1, 2 * n - 1 - i),
                    BlockKey(u128::from(i) + 1),
                    block,
                )
            })
            .collect();
        assert!(
            run(&mut r.mover, &up)
                .iter()
                .all(|o| *o == Outcome::done(block))
        );
        let down: Vec<_> = (0..n)
            .map(|i| {
                desc(
                    (1, 2 * n - 1 - i),
                    (0, n + i),
                    BlockKey(u128::from(i) + 1),
                    block,
                )
            })
            .collect();
        assert!(
            run(&mut r.mover, &down)
                .iter()
                .all(|o| *o == Outcome::done(block))
        );
        let mut out = vec![0u8; block as usize];
        for i in 0..n {
            assert_eq!(
                r.dram
                    .read_block(n + i, BlockKey(u128::from(i) + 1), &mut out)
                    .unwrap(),
                block as usize
            );
            assert_eq!(out, body(i, block as usize));
        }
        let c = r.mover.counters();
        let (k, ce) = (
            c.kernel_moves.load(Ordering::Relaxed),
            c.copy_engine_moves.load(Ordering::Relaxed),
        );
        if gather_max == 0 {
            assert_eq!(
                (k, ce),
                (0, 2 * u64::from(n)),
                "the table sent everything to the copy engines"
            );
        } else {
            assert_eq!(
                (k, ce),
                (2 * u64::from(n), 0),
                "the table sent everything to the kernel"
            );
            assert_eq!(
                c.launches.load(Ordering::Relaxed),
                2,
                "one launch per batch"
            );
        }
        assert_eq!(c.fold_mismatches.load(Ordering::Relaxed), 0);
        let _ = &r.hbm;
    }
}

#[test]
fn a_corrupt_source_is_refused_and_nothing_lands() {
    let Some(dev) = device() else { return };
    let mut r = rig(&dev, 4, 4096);
    let k = BlockKey(5);
    r.dram.write_block(0, k, &[9u8; 4096]).unwrap();
    r.dram.claim_write(0).unwrap().bytes_mut()[100] ^= 1;
    let out = run(
        &mut r.mover,
        &[
            desc((0, 0), (1, 1), k, 4096),
            desc((0, 0), (1, 2), BlockKey(6), 4096),
        ],
    );
    assert_eq!(out[0].status, MoveStatus::Corrupt);
    assert_eq!(out[1].status, MoveStatus::Corrupt, "wrong key");
    let mut buf = vec![0u8; 4096];
    assert!(
        r.hbm.read_block(1, k, &mut buf).is_err(),
        "nothing was moved"
    );
}

#[test]
fn hbm_to_hbm_and_disk_round_trip_through_bounce_and_cufile() {
    let Some(dev) = device() else { return };
    let block = 64u32 << 10;
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(DiskTier::create(dir.path().join("d.bin"), 16, block).unwrap());
    let hbm = Arc::new(HbmTier::new(&dev, 16, block).unwrap());
    for i in 0..8u32 {
        disk.write_block(i, BlockKey(u128::from(i) + 100), &body(i, block as usize))
            .unwrap();
    }
    let kernels = Arc::new(Kernels::load(&dev).unwrap());
    for use_gds in [false, true] {
        let routes = Arc::new(RouteCell::new(GpuRoutes::BUILTIN));
        let mut cfg = GpuMoverConfig::new(
            vec![GpuTier::Hbm(hbm.clone()), GpuTier::Disk(disk.clone())],
            routes,
        );
        cfg.use_gds = use_gds;
        let mut m = GpuMover::new(&dev, kernels.clone(), cfg).unwrap();
        eprintln!("use_gds {use_gds}: {:?}", m.gds_status());
        let up: Vec<_> = (0..8)
            .map(|i| desc((1, i), (0, i), BlockKey(u128::from(i) + 100), block))
            .collect();
        assert!(
            run(&mut m, &up).iter().all(|o| *o == Outcome::done(block)),
            "disk -> HBM"
        );
        let copy: Vec<_> = (0..8)
            .map(|i| desc((0, i), (0, 8 + i), BlockKey(u128::from(i) + 100), block))
            .collect();
        assert!(
            run(&mut m, &copy)
                .iter()
                .all(|o| o.status == MoveStatus::Done),
            "HBM -> HBM"
        );
        let down: Vec<_> = (0..8)
            .map(|i| desc((0, 8 + i), (1, 8 + i), BlockKey(u128::from(i) + 100), block))
            .collect();
        assert!(
            run(&mut m, &down)
                .iter()
                .all(|o| *o == Outcome::done(block)),
            "HBM -> disk"
        );
        let mut out = vec![0u8; block as usize];
        for i in 0..8u32 {
            assert_eq!(
                disk.read_block(8 + i, BlockKey(u128::from(i) + 100), &mut out)
                    .unwrap(),
                block as usize
            );
            assert_eq!(out, body(i, block as usize));
        }
        // A wrong key on disk is Corrupt, never silently moved.
        let bad = run(&mut m, &[desc((1, 0), (0, 15), BlockKey(999), block)]);
        assert_eq!(bad[0].status, MoveStatus::Corrupt);
    }
}
