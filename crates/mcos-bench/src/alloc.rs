//! A counting global allocator: forwards to the system allocator and counts, per thread, every
//! allocation and reallocation. A binary (or test) that wants allocation counts installs it:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: mcos_bench::alloc::CountingAlloc = mcos_bench::alloc::CountingAlloc;
//! ```
//!
//! The counter is a const-initialised thread local without a destructor: reading or bumping it
//! never allocates and never registers anything.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Set once the counting allocator has served an allocation: counts are meaningful.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The counting allocator.
pub struct CountingAlloc;

fn count() {
    // `try_with`: a thread being torn down may allocate after its locals are gone.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged;
// the bookkeeping touches only a thread-local counter and an atomic flag.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations made by the calling thread so far, or None when the counting allocator is not
/// the global allocator.
pub fn thread_allocations() -> Option<u64> {
    if !INSTALLED.load(Ordering::Relaxed) {
        // Allocate once: if this is counted, the allocator is installed.
        drop(std::hint::black_box(Box::new(0u64)));
        if !INSTALLED.load(Ordering::Relaxed) {
            return None;
        }
    }
    Some(ALLOCATIONS.with(Cell::get))
}
