//! Allocation of the large fixed tables (directory buckets, frame tables), once, at start-up.
//!
//! Tables of millions of entries are read at random, one cache line per event, so with 4 KiB
//! pages nearly every read also misses the TLB, and in a virtual machine each miss is a
//! two-dimensional page walk. On Linux the memory of a large table is advised to be backed by
//! transparent huge pages (`MADV_HUGEPAGE`) before it is first touched. The advice is a hint
//! with no effect on contents; where the kernel declines it, the table works the same with
//! small pages.

/// Tables smaller than this stay on ordinary pages.
const HUGE_MIN_BYTES: usize = 4 << 20;

/// A table of `len` copies of `value`.
pub(crate) fn table<T: Clone>(len: usize, value: T) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    advise_huge(v.as_ptr().cast(), len * std::mem::size_of::<T>());
    v.resize(len, value);
    v.into_boxed_slice()
}

#[cfg(target_os = "linux")]
fn advise_huge(ptr: *const u8, bytes: usize) {
    if bytes < HUGE_MIN_BYTES {
        return;
    }
    const HUGE: usize = 2 << 20;
    // Whole 2 MiB pages inside the allocation: the advice never reaches memory we do not own.
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize + bytes) / HUGE * HUGE;
    if end > start {
        // SAFETY: [start, end) lies inside an allocation this function's caller owns and has
        // not touched yet; MADV_HUGEPAGE changes how pages are backed, never their contents.
        // A failure (no THP support) leaves ordinary pages, so the result is ignored.
        let _ =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_ptr: *const u8, _bytes: usize) {}

/// Starts loading the cache line holding `p` (a hint: no architectural effect).
#[inline]
pub(crate) fn prefetch_line<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint with no architectural effect; the address is a valid
    // reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch(
            (p as *const T).cast::<i8>(),
            std::arch::x86_64::_MM_HINT_T0,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    #[test]
    fn large_and_small_tables_hold_their_values() {
        let big = super::table(3 << 20, 7u32);
        assert_eq!(big.len(), 3 << 20);
        assert!(big.iter().all(|&v| v == 7));
        let small = super::table(10, 1u8);
        assert_eq!(&small[..], &[1; 10]);
    }
}
