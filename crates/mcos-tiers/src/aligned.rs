//! Zeroed, `DISK_ALIGN`-aligned heap memory: the DRAM arena and the bounce buffers of the
//! synchronous disk accessors. Allocation failure is an error value, never an abort.

use crate::error::TierError;
use mcos_core::limits::DISK_ALIGN;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

/// An owned, zero-initialised allocation aligned to `DISK_ALIGN`, of non-zero length.
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: `AlignedBuf` owns its allocation like a `Box<[u8]>`; shared references give only
// `as_ptr`/`as_slice`, and what callers do through the raw pointer is under their own contract.
unsafe impl Send for AlignedBuf {}
// SAFETY: as above: `&AlignedBuf` exposes no interior mutation by itself.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// Allocates `len` zeroed bytes (`len > 0`).
    pub(crate) fn zeroed(len: usize) -> Result<AlignedBuf, TierError> {
        if len == 0 {
            return Err(TierError::Config("cannot allocate 0 bytes".into()));
        }
        let layout = Layout::from_size_align(len, DISK_ALIGN)
            .map_err(|_| TierError::Alloc { bytes: len })?;
        // SAFETY: the layout has non-zero size (checked above).
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or(TierError::Alloc { bytes: len })?;
        Ok(AlignedBuf { ptr, layout })
    }

    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    /// Base address; valid for `len()` bytes while `self` lives.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    #[cfg(test)]
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: the allocation is `len()` initialised (zeroed) bytes owned by `self`; `&self`
        // excludes `as_mut_slice` for the lifetime of the slice.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len()) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with exactly this layout and is freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_aligned_writable_and_freed() {
        for len in [1usize, 4096, 3 * 4096 + 5] {
            let mut b = AlignedBuf::zeroed(len).unwrap();
            assert_eq!(b.as_ptr() as usize % DISK_ALIGN, 0);
            assert_eq!(b.len(), len);
            assert!(b.as_slice().iter().all(|&x| x == 0));
            b.as_mut_slice()[len - 1] = 9;
            assert_eq!(b.as_slice()[len - 1], 9);
        }
    }

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        assert!(matches!(AlignedBuf::zeroed(0), Err(TierError::Config(_))));
        // Larger than isize::MAX: the layout itself is refused.
        assert!(matches!(
            AlignedBuf::zeroed(usize::MAX - 10),
            Err(TierError::Alloc { .. })
        ));
    }
}
