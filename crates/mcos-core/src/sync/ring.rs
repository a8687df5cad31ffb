//! Bounded single-producer single-consumer ring of `Copy` records.
//!
//! Lamport's ring with cached indices (as in rtrb and Rigtorp's SPSCQueue): the producer owns
//! `tail`, the consumer owns `head`, each keeps a private copy of the other's index and reloads
//! it only when the ring looks full (or empty). All storage is allocated at construction; `push`
//! and `pop` never allocate, lock or make a system call, and never wait: a full ring is the
//! caller's decision (drop a prefetch, retry a demand move, count a lost telemetry sample).

use super::{Arc, AtomicUsize, CachePadded, Ordering, UnsafeCell};
use std::mem::MaybeUninit;

struct Shared<T> {
    /// Next slot to read. Written by the consumer only, read by the producer.
    head: CachePadded<AtomicUsize>,
    /// Next slot to write. Written by the producer only, read by the consumer.
    tail: CachePadded<AtomicUsize>,
    mask: usize,
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

// SAFETY: a slot is written only by the producer while it lies in [head, head + capacity) outside
// [head, tail), and read only by the consumer while it lies in [head, tail); the release store of
// `tail` (resp. `head`) publishes the slot to the other side. `T: Send` moves records across.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: as above; the shared state owns only `T` values and atomics.
unsafe impl<T: Send> Send for Shared<T> {}

/// Creates a ring holding up to `capacity` records (rounded up to a power of two).
pub fn ring<T: Copy + Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity.max(1).next_power_of_two();
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        head: CachePadded(AtomicUsize::new(0)),
        tail: CachePadded(AtomicUsize::new(0)),
        mask: capacity - 1,
        slots,
    });
    (
        Producer {
            shared: shared.clone(),
            tail: 0,
            head_cache: 0,
        },
        Consumer {
            shared,
            head: 0,
            tail_cache: 0,
        },
    )
}

/// The writing end. Not `Clone`: one producer by construction.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Private copy of `shared.tail` (this side is its only writer).
    tail: usize,
    /// Last seen value of the consumer's `head`.
    head_cache: usize,
}

/// The reading end. Not `Clone`: one consumer by construction.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Private copy of `shared.head` (this side is its only writer).
    head: usize,
    /// Last seen value of the producer's `tail`.
    tail_cache: usize,
}

impl<T: Copy + Send> Producer<T> {
    /// Appends `value`, or hands it back when the ring is full.
    pub fn push(&mut self, value: T) -> Result<(), T> {
        let cap = self.shared.mask + 1;
        if self.tail.wrapping_sub(self.head_cache) == cap {
            self.head_cache = self.shared.head.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.head_cache) == cap {
                return Err(value);
            }
        }
        let slot = &self.shared.slots[self.tail & self.shared.mask];
        // SAFETY: the slot is outside [head, tail), so the consumer does not read it until the
        // release store of `tail` below publishes it.
        slot.with_mut(|p| unsafe { (*p).write(value) });
        self.tail = self.tail.wrapping_add(1);
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Whether a `push` now would succeed. Reads the consumer's position only when the cached
    /// one says the ring is full, as `push` does, so asking is as cheap as pushing.
    pub fn has_room(&mut self) -> bool {
        let cap = self.shared.mask + 1;
        if self.tail.wrapping_sub(self.head_cache) == cap {
            self.head_cache = self.shared.head.load(Ordering::Acquire);
        }
        self.tail.wrapping_sub(self.head_cache) < cap
    }

    /// Free slots, as far as the producer can tell (the consumer may have freed more).
    pub fn free_slots(&mut self) -> usize {
        self.head_cache = self.shared.head.load(Ordering::Acquire);
        self.shared.mask + 1 - self.tail.wrapping_sub(self.head_cache)
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }
}

impl<T: Copy + Send> Consumer<T> {
    /// Takes the oldest record, if any.
    pub fn pop(&mut self) -> Option<T> {
        if self.head == self.tail_cache {
            self.tail_cache = self.shared.tail.load(Ordering::Acquire);
            if self.head == self.tail_cache {
                return None;
            }
        }
        let slot = &self.shared.slots[self.head & self.shared.mask];
        // SAFETY: the slot is in [head, tail): the producer wrote it before its release store
        // of `tail`, which our acquire load observed, and will not touch it again until our
        // release store of `head` below frees it.
        let value = slot.with(|p| unsafe { (*p).assume_init_read() });
        self.head = self.head.wrapping_add(1);
        self.shared.head.store(self.head, Ordering::Release);
        Some(value)
    }

    /// Takes up to `out.len()` records into `out`; returns how many. One index publication for
    /// the whole batch.
    pub fn pop_batch(&mut self, out: &mut [T]) -> usize {
        self.tail_cache = self.shared.tail.load(Ordering::Acquire);
        let n = self.tail_cache.wrapping_sub(self.head).min(out.len());
        for (i, o) in out.iter_mut().take(n).enumerate() {
            let slot = &self.shared.slots[self.head.wrapping_add(i) & self.shared.mask];
            // SAFETY: as in `pop`: every slot in [head, head + n) lies in [head, tail).
            *o = slot.with(|p| unsafe { (*p).assume_init_read() });
        }
        if n > 0 {
            self.head = self.head.wrapping_add(n);
            self.shared.head.store(self.head, Ordering::Release);
        }
        n
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }

    /// Records waiting, as far as the consumer can tell.
    pub fn len(&mut self) -> usize {
        self.tail_cache = self.shared.tail.load(Ordering::Acquire);
        self.tail_cache.wrapping_sub(self.head)
    }

    /// Whether no record is waiting.
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn smoke_fifo_order() {
        let (mut p, mut c) = ring::<u32>(4);
        assert_eq!(c.pop(), None);
        for i in 0..4 {
            p.push(i).unwrap();
        }
        assert!(!p.has_room());
        assert_eq!(p.push(9), Err(9), "full ring hands the value back");
        assert_eq!(c.pop(), Some(0));
        assert!(p.has_room(), "a pop the producer has not seen yet is found");
        p.push(4).unwrap();
        let mut out = [0u32; 8];
        assert_eq!(c.pop_batch(&mut out), 4);
        assert_eq!(&out[..4], &[1, 2, 3, 4]);
        assert!(c.is_empty());
    }

    #[test]
    fn capacity_rounds_up_to_power_of_two() {
        let (mut p, _c) = ring::<u8>(5);
        assert_eq!(p.capacity(), 8);
        assert_eq!(p.free_slots(), 8);
    }

    #[test]
    fn two_threads_transfer_everything_in_order() {
        const N: u64 = 200_000;
        let (mut p, mut c) = ring::<u64>(64);
        let producer = std::thread::spawn(move || {
            for i in 0..N {
                let mut v = i;
                while let Err(back) = p.push(v) {
                    v = back;
                    std::hint::spin_loop();
                }
            }
        });
        let mut expect = 0;
        let mut buf = [0u64; 16];
        while expect < N {
            let n = c.pop_batch(&mut buf);
            for &v in &buf[..n] {
                assert_eq!(v, expect);
                expect += 1;
            }
            if n == 0 {
                std::thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert_eq!(c.pop(), None);
    }
}
