//! Page-locked host memory the GPU can reach: registered tier arenas and pinned buffers.
//!
//! Flags are explicit, never defaults: `PORTABLE` (pinned for every context) and `DEVICEMAP`
//! (mapped into the GPU's address space, so the gather kernel reads and writes host frames
//! directly). Never `WRITECOMBINED`: cudarc's `alloc_pinned` default makes CPU reads of that
//! memory very slow, and the CPU reads every host frame to verify its checksum.
//!
//! A pinned host tier is a [`DramTier`] whose arena is registered with `cuMemHostRegister`
//! ([`PinnedHostTier`]): the arena stays an ordinary 4096-aligned allocation that the memcpy and
//! disk engines use as before, and the GPU sees the same bytes at a device address.

use super::{GpuDevice, check};
use crate::dram::DramTier;
use crate::error::TierError;
use cudarc::driver::sys;
use std::sync::Arc;

/// `cuMemHostRegister` flags for host tiers: portable and device-mapped, not write-combined.
pub const REGISTER_FLAGS: u32 =
    sys::CU_MEMHOSTREGISTER_PORTABLE | sys::CU_MEMHOSTREGISTER_DEVICEMAP;

/// `cuMemHostAlloc` flags for pinned buffers: portable and device-mapped, not write-combined.
pub const ALLOC_FLAGS: u32 = sys::CU_MEMHOSTALLOC_PORTABLE | sys::CU_MEMHOSTALLOC_DEVICEMAP;

const _: () = assert!(ALLOC_FLAGS & sys::CU_MEMHOSTALLOC_WRITECOMBINED == 0);

/// A host range registered (page-locked and mapped) with CUDA; unregistered on drop. The owner
/// of the range must outlive the registration (holders keep both in one struct).
struct HostRegistration {
    host: *mut u8,
    dev: u64,
    len: usize,
    device: Arc<GpuDevice>,
}

impl HostRegistration {
    /// # Safety
    /// `host` is valid for `len` bytes and stays allocated until the registration drops.
    unsafe fn new(device: &Arc<GpuDevice>, host: *mut u8, len: usize) -> Result<Self, TierError> {
        device.bind()?;
        // SAFETY: the caller guarantees the range; the context is current.
        check(
            unsafe { sys::cuMemHostRegister_v2(host.cast(), len, REGISTER_FLAGS) },
            "cuMemHostRegister",
            &format!("pinning {len} bytes of host memory (check `ulimit -l`)"),
        )?;
        let mut dev: sys::CUdeviceptr = 0;
        // SAFETY: `host` was registered with DEVICEMAP just above; valid out-pointer.
        let mapped = check(
            unsafe { sys::cuMemHostGetDevicePointer_v2(&mut dev, host.cast(), 0) },
            "cuMemHostGetDevicePointer",
            "mapping pinned host memory into the GPU",
        );
        if let Err(e) = mapped {
            // SAFETY: registered above, unregistered once.
            let _ = unsafe { sys::cuMemHostUnregister(host.cast()) };
            return Err(e);
        }
        Ok(HostRegistration {
            host,
            dev,
            len,
            device: device.clone(),
        })
    }
}

impl Drop for HostRegistration {
    fn drop(&mut self) {
        let _ = self.device.bind();
        // SAFETY: registered in `new`, unregistered once, while the range is still allocated
        // (the owner drops the registration first).
        let _ = unsafe { sys::cuMemHostUnregister(self.host.cast()) };
    }
}

/// A DRAM tier whose arena is pinned and mapped for the GPU.
pub struct PinnedHostTier {
    // Field order matters: the registration drops before the arena it covers.
    reg: HostRegistration,
    dram: Arc<DramTier>,
}

// SAFETY: the registration's raw pointer is only passed to CUDA calls; the arena's own rules
// (frame claims) govern every CPU access, as for `DramTier`, which is Send + Sync.
unsafe impl Send for PinnedHostTier {}
// SAFETY: as above.
unsafe impl Sync for PinnedHostTier {}

impl PinnedHostTier {
    /// Pins and maps the whole arena of `dram`.
    pub fn register(
        device: &Arc<GpuDevice>,
        dram: Arc<DramTier>,
    ) -> Result<PinnedHostTier, TierError> {
        let base = dram.frame_ptr(0)?;
        let len = dram.arena_bytes();
        // SAFETY: the arena spans `len` bytes from frame 0 and lives as long as `dram`, which
        // this struct holds until after the registration is dropped.
        let reg = unsafe { HostRegistration::new(device, base, len)? };
        Ok(PinnedHostTier { reg, dram })
    }

    /// The tier as DRAM (frames, claims, CPU reads and writes).
    pub fn dram(&self) -> &Arc<DramTier> {
        &self.dram
    }

    /// Device-visible address of `frame`.
    pub fn frame_dptr(&self, frame: u32) -> Result<u64, TierError> {
        let p = self.dram.frame_ptr(frame)?;
        let off = p as usize - self.reg.host as usize;
        debug_assert!(off + self.dram.frame_stride() <= self.reg.len);
        Ok(self.reg.dev + off as u64)
    }
}

/// A pinned, device-mapped host buffer from `cuMemHostAlloc` (page-aligned), freed on drop:
/// bounce buffers, span lists, probes and benchmark sources.
pub struct PinnedBuf {
    host: *mut u8,
    dev: u64,
    len: usize,
    device: Arc<GpuDevice>,
}

// SAFETY: the buffer is owned memory; concurrent GPU access is ordered by its users with
// streams and events, and every CPU access goes through the `unsafe` accessors below.
unsafe impl Send for PinnedBuf {}
// SAFETY: as above.
unsafe impl Sync for PinnedBuf {}

impl PinnedBuf {
    /// Allocates `len` (> 0) zeroed bytes.
    pub fn new(device: &Arc<GpuDevice>, len: usize) -> Result<PinnedBuf, TierError> {
        if len == 0 {
            return Err(TierError::Config("cannot pin 0 bytes".into()));
        }
        device.bind()?;
        let mut host: *mut std::ffi::c_void = std::ptr::null_mut();
        // SAFETY: valid out-pointer; the context is current.
        check(
            unsafe { sys::cuMemHostAlloc(&mut host, len, ALLOC_FLAGS) },
            "cuMemHostAlloc",
            &format!("allocating {len} bytes of pinned host memory"),
        )?;
        let mut buf = PinnedBuf {
            host: host.cast(),
            dev: 0,
            len,
            device: device.clone(),
        };
        // SAFETY: allocated with DEVICEMAP just above; valid out-pointer.
        check(
            unsafe { sys::cuMemHostGetDevicePointer_v2(&mut buf.dev, host, 0) },
            "cuMemHostGetDevicePointer",
            "mapping a pinned buffer into the GPU",
        )?;
        // SAFETY: `len` bytes were just allocated; nothing else references them yet.
        unsafe { std::ptr::write_bytes(buf.host, 0, len) };
        Ok(buf)
    }

    /// Host address.
    pub fn host_ptr(&self) -> *mut u8 {
        self.host
    }

    /// Device-visible address.
    pub fn dev_ptr(&self) -> u64 {
        self.dev
    }

    /// Bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: the buffer holds at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes `[off, off + len)`.
    ///
    /// # Safety
    /// No GPU work that writes the range may be in flight, and no `bytes_mut` of it may be alive.
    pub unsafe fn bytes(&self, off: usize, len: usize) -> &[u8] {
        assert!(off.checked_add(len).is_some_and(|e| e <= self.len));
        // SAFETY: in bounds (asserted); the caller excludes concurrent writers.
        unsafe { std::slice::from_raw_parts(self.host.add(off), len) }
    }

    /// The bytes `[off, off + len)`, writable.
    ///
    /// # Safety
    /// No GPU work that reads or writes the range may be in flight, and no other slice of it
    /// may be alive.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn bytes_mut(&self, off: usize, len: usize) -> &mut [u8] {
        assert!(off.checked_add(len).is_some_and(|e| e <= self.len));
        // SAFETY: in bounds (asserted); the caller guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.host.add(off), len) }
    }
}

impl Drop for PinnedBuf {
    fn drop(&mut self) {
        let _ = self.device.bind();
        // SAFETY: allocated in `new`, freed once; users finished their GPU work (they own the
        // buffer and synchronize before dropping it).
        let _ = unsafe { sys::cuMemFreeHost(self.host.cast()) };
    }
}
