//! Exhaustive interleaving checks of the ring and the policy install.
//! Run with: RUSTFLAGS="--cfg loom" cargo test -p mcos-core --test loom --release
#![cfg(loom)]

use mcos_core::{PolicyTable, policy_cell, ring};

#[test]
fn ring_transfers_in_order_without_loss() {
    loom::model(|| {
        let (mut p, mut c) = ring::<u32>(2);
        let producer = loom::thread::spawn(move || {
            for i in 0..3 {
                let mut v = i;
                while let Err(back) = p.push(v) {
                    v = back;
                    loom::thread::yield_now();
                }
            }
        });
        let mut next = 0;
        while next < 3 {
            match c.pop() {
                Some(v) => {
                    assert_eq!(v, next);
                    next += 1;
                }
                None => loom::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(c.pop(), None);
    });
}

#[test]
fn ring_batch_pop_sees_whole_records() {
    loom::model(|| {
        let (mut p, mut c) = ring::<(u32, u32)>(2);
        let producer = loom::thread::spawn(move || {
            p.push((1, 1)).unwrap();
            p.push((2, 2)).unwrap();
        });
        let mut got = Vec::new();
        let mut buf = [(0, 0); 2];
        while got.len() < 2 {
            let n = c.pop_batch(&mut buf);
            got.extend_from_slice(&buf[..n]);
            if n == 0 {
                loom::thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert_eq!(got, vec![(1, 1), (2, 2)]);
    });
}

/// A reader never sees a torn table: every field of the bank it reads belongs to one version.
#[test]
fn policy_install_is_never_torn() {
    loom::model(|| {
        // A table is a few KiB: run the model in coroutines with room for it.
        let big = || loom::thread::Builder::new().stack_size(1 << 20);
        let body = big()
            .spawn(move || {
                let (mut installer, mut readers) = policy_cell(PolicyTable::builtin(1), 1);
                let mut reader = readers.pop().unwrap();
                let writer = big()
                    .spawn(move || {
                        let mut installed = 0;
                        for v in 1..=2u32 {
                            let mut t = PolicyTable::builtin(1);
                            t.version = v;
                            t.classes[0].entry_version = v as u16;
                            t.classes[255].entry_version = v as u16;
                            if installer.try_install(&t).is_ok() {
                                installed += 1;
                            }
                        }
                        installed
                    })
                    .unwrap();
                for _ in 0..2 {
                    reader.refresh();
                    reader.with_table(|t| {
                        assert_eq!(u32::from(t.classes[0].entry_version), t.version);
                        assert_eq!(u32::from(t.classes[255].entry_version), t.version);
                    });
                }
                let installed = writer.join().unwrap();
                assert!(installed >= 1, "the first install never waits");
            })
            .unwrap();
        body.join().unwrap();
    });
}
