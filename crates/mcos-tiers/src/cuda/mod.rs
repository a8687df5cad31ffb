//! GPU tiers and movers on CUDA (feature `cuda`).
//!
//! cudarc loads `libcuda`, `libnvrtc` and `libcufile` at run time, so this module compiles on
//! machines without CUDA, and every entry point first checks that the library can be loaded
//! ([`driver_present`]); a machine without a GPU gets [`TierError::NoGpu`] with a message that
//! says what is missing, never a panic. Everything here uses cudarc's `sys`/`result` layers
//! with raw device pointers, our own streams (created at start-up) and our own events: the data
//! plane records no event per copy and never synchronizes a context behind our back.
//!
//! - [`GpuDevice`]: one device, its primary context (the one PyTorch uses) and its properties.
//! - [`pinned`]: page-locked host memory with explicit flags (portable, device-mapped, never
//!   write-combined: the CPU reads these bytes to verify them).
//! - [`hbm`]: [`HbmTier`], a device-memory arena of frames with the same layout and claims as
//!   the DRAM tier.
//! - [`kernels`]: the kernel source, compiled at start-up with NVRTC.
//! - [`gather`]: one launch moves a whole batch of scattered blocks (host <-> HBM, HBM <-> HBM).
//! - [`copy_batch`]: the copy-engine path (`cuMemcpyBatchAsync`, else one async copy per block).
//! - [`gds`]: disk -> HBM with GPUDirect Storage (cuFile) where the system supports it.
//! - [`mover`]: [`GpuMover`], the engine that executes movement descriptors on these paths.
//!
//! `mcos bench gpu` (every GPU check and benchmark over these parts) lives in `mcos-bench`
//! (`gpu::bench`): this crate holds the tiers and movers only.

pub mod copy_batch;
pub mod gather;
pub mod gds;
pub mod hbm;
pub mod kernels;
pub mod mover;
pub mod pinned;

pub use hbm::HbmTier;
pub use mover::{GpuMover, GpuMoverConfig, GpuTier};

use crate::error::TierError;
use cudarc::driver::sys;
use std::ffi::{CStr, c_int};
use std::sync::Arc;

/// Message when libcuda cannot be loaded.
pub const NO_DRIVER: &str = "no CUDA driver found (libcuda.so not loadable): run on a machine \
     with an NVIDIA GPU and driver, or add the driver's directory to LD_LIBRARY_PATH";

/// Whether libcuda can be loaded. Never panics.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library by its usual names; no CUDA call is made.
    unsafe { sys::is_culib_present() }
}

/// Whether libnvrtc (the run-time kernel compiler) can be loaded. Never panics.
pub fn nvrtc_present() -> bool {
    // SAFETY: as in `driver_present`.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Whether libcufile (GPUDirect Storage) can be loaded. Never panics.
pub fn cufile_present() -> bool {
    // SAFETY: as in `driver_present`.
    unsafe { cudarc::cufile::sys::is_culib_present() }
}

/// Driver entry points this module calls. cudarc resolves each on first use and panics on a
/// missing one, so [`GpuDevice::open`] checks them all first and reports a driver that is too
/// old as an error.
pub const DRIVER_SYMBOLS: [&str; 37] = [
    "cuInit",
    "cuDeviceGetCount",
    "cuDeviceGet",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxSetCurrent",
    "cuDeviceGetAttribute",
    "cuDeviceGetName",
    "cuDeviceTotalMem_v2",
    "cuDriverGetVersion",
    "cuMemGetInfo_v2",
    "cuStreamCreate",
    "cuStreamDestroy_v2",
    "cuStreamSynchronize",
    "cuStreamWaitEvent",
    "cuEventCreate",
    "cuEventDestroy_v2",
    "cuEventRecord",
    "cuEventQuery",
    "cuEventSynchronize",
    "cuEventElapsedTime_v2",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemsetD8Async",
    "cuMemcpyHtoD_v2",
    "cuMemcpyDtoH_v2",
    "cuMemcpyAsync",
    "cuMemHostRegister_v2",
    "cuMemHostUnregister",
    "cuMemHostGetDevicePointer_v2",
    "cuMemHostAlloc",
    "cuMemFreeHost",
    "cuModuleLoadData",
    "cuModuleGetFunction",
    "cuModuleUnload",
    "cuLaunchKernel",
    "cuGetErrorName",
];

/// Whether the loaded driver exports `name` (a newer entry point on an older driver would make
/// cudarc panic with "Missing symbol" on first use; ask first). Call only after
/// [`driver_present`] returned true.
pub fn driver_has(name: &str) -> bool {
    let mut sym = name.as_bytes().to_vec();
    sym.push(0);
    // SAFETY: `culib()` only loads the library (present, checked by the caller); `get` looks the
    // symbol up without calling it. The type parameter is never used to call through.
    unsafe {
        sys::culib()
            .get::<unsafe extern "C" fn()>(sym.as_slice())
            .is_ok()
    }
}

/// CUDA's name for a result code.
pub(crate) fn error_name(r: sys::CUresult) -> String {
    let mut p: *const std::ffi::c_char = std::ptr::null();
    // SAFETY: cuGetErrorName writes a pointer to a static string (or leaves it null on an
    // unknown code); we only read it as a C string when it is not null.
    let named = unsafe { sys::cuGetErrorName(r, &mut p) };
    if named == sys::CUresult::CUDA_SUCCESS && !p.is_null() {
        // SAFETY: CUDA returned a pointer to a NUL-terminated static string.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    } else {
        format!("{r:?}")
    }
}

/// Turns a driver result into a `TierError::Gpu` naming the call and what was being done.
pub fn check(r: sys::CUresult, call: &'static str, context: &str) -> Result<(), TierError> {
    if r == sys::CUresult::CUDA_SUCCESS {
        Ok(())
    } else {
        Err(TierError::Gpu {
            call,
            context: context.to_string(),
            detail: error_name(r),
        })
    }
}

/// Properties of the device, for reports and for sizing launches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Ordinal.
    pub ordinal: i32,
    /// Marketing name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// Compute capability.
    pub compute_capability: (i32, i32),
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// Device memory, bytes.
    pub total_mem_bytes: u64,
    /// Driver API version (13000 = CUDA 13.0).
    pub driver_version: i32,
    /// PCI bus id.
    pub pci_bus: i32,
}

/// One CUDA device and its retained primary context. Share it in an `Arc`; it releases the
/// context when the last holder drops it.
pub struct GpuDevice {
    dev: sys::CUdevice,
    ctx: sys::CUcontext,
    info: DeviceInfo,
}

// SAFETY: `CUdevice` is an integer and `CUcontext` a driver handle; the driver API is
// thread-safe, and a context may be made current on any thread (`bind`).
unsafe impl Send for GpuDevice {}
// SAFETY: as above; `&GpuDevice` only reads the handles.
unsafe impl Sync for GpuDevice {}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("info", &self.info)
            .finish()
    }
}

impl GpuDevice {
    /// Opens device `ordinal`: loads the driver (a clear `NoGpu` error when it cannot be
    /// loaded or sees no device), retains the primary context and makes it current on this
    /// thread.
    pub fn open(ordinal: i32) -> Result<Arc<GpuDevice>, TierError> {
        if !driver_present() {
            return Err(TierError::NoGpu(NO_DRIVER.into()));
        }
        if let Some(missing) = DRIVER_SYMBOLS.iter().find(|s| !driver_has(s)) {
            return Err(TierError::NoGpu(format!(
                "the CUDA driver lacks {missing}: MCOS needs the CUDA 13.0 driver API (driver \
                 580 or newer)"
            )));
        }
        // SAFETY: the library is present; cuInit takes no pointers.
        check(
            unsafe { sys::cuInit(0) },
            "cuInit",
            "initialising the driver",
        )?;
        let mut count: c_int = 0;
        // SAFETY: `count` is a valid out-pointer.
        check(
            unsafe { sys::cuDeviceGetCount(&mut count) },
            "cuDeviceGetCount",
            "counting devices",
        )?;
        if count == 0 {
            return Err(TierError::NoGpu(
                "the CUDA driver loaded but sees no GPU (check CUDA_VISIBLE_DEVICES and nvidia-smi)"
                    .into(),
            ));
        }
        if ordinal < 0 || ordinal >= count {
            return Err(TierError::NoGpu(format!(
                "GPU {ordinal} does not exist: the driver sees {count} (0..{count})"
            )));
        }
        let mut dev: sys::CUdevice = 0;
        // SAFETY: valid out-pointer; ordinal checked above.
        check(
            unsafe { sys::cuDeviceGet(&mut dev, ordinal) },
            "cuDeviceGet",
            "opening the device",
        )?;
        let mut ctx: sys::CUcontext = std::ptr::null_mut();
        // SAFETY: valid out-pointer and device.
        check(
            unsafe { sys::cuDevicePrimaryCtxRetain(&mut ctx, dev) },
            "cuDevicePrimaryCtxRetain",
            "retaining the primary context",
        )?;
        let mut device = GpuDevice {
            dev,
            ctx,
            info: DeviceInfo {
                ordinal,
                name: String::new(),
                compute_capability: (0, 0),
                sm_count: 0,
                total_mem_bytes: 0,
                driver_version: 0,
                pci_bus: 0,
            },
        };
        // From here `device` releases the context on any error.
        device.bind()?;
        device.info = device.query(ordinal)?;
        Ok(Arc::new(device))
    }

    fn attribute(&self, a: sys::CUdevice_attribute) -> Result<i32, TierError> {
        let mut v: c_int = 0;
        // SAFETY: valid out-pointer and device.
        check(
            unsafe { sys::cuDeviceGetAttribute(&mut v, a, self.dev) },
            "cuDeviceGetAttribute",
            "reading a device attribute",
        )?;
        Ok(v)
    }

    fn query(&self, ordinal: i32) -> Result<DeviceInfo, TierError> {
        use sys::CUdevice_attribute as A;
        let mut name = [0 as std::ffi::c_char; 256];
        // SAFETY: the buffer holds 256 bytes, and the length passed says so.
        check(
            unsafe { sys::cuDeviceGetName(name.as_mut_ptr(), 256, self.dev) },
            "cuDeviceGetName",
            "reading the device name",
        )?;
        // SAFETY: cuDeviceGetName wrote a NUL-terminated string into the buffer.
        let name = unsafe { CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        let mut total: usize = 0;
        // SAFETY: valid out-pointer and device.
        check(
            unsafe { sys::cuDeviceTotalMem_v2(&mut total, self.dev) },
            "cuDeviceTotalMem",
            "reading the device memory size",
        )?;
        let mut driver_version: c_int = 0;
        // SAFETY: valid out-pointer.
        check(
            unsafe { sys::cuDriverGetVersion(&mut driver_version) },
            "cuDriverGetVersion",
            "reading the driver version",
        )?;
        if self.attribute(A::CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING)? == 0
            || self.attribute(A::CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY)? == 0
        {
            return Err(TierError::NoGpu(format!(
                "GPU {ordinal} ({name}) lacks unified addressing or mapped host memory, which \
                 the gather kernel needs"
            )));
        }
        Ok(DeviceInfo {
            ordinal,
            name,
            compute_capability: (
                self.attribute(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                self.attribute(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
            ),
            sm_count: self
                .attribute(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?
                .max(1) as u32,
            total_mem_bytes: total as u64,
            driver_version,
            pci_bus: self.attribute(A::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID)?,
        })
    }

    /// Makes the device's primary context current on the calling thread (each thread that
    /// issues CUDA calls does this once; engines do it at start).
    pub fn bind(&self) -> Result<(), TierError> {
        // SAFETY: `ctx` is a retained primary context, valid until `self` drops.
        check(
            unsafe { sys::cuCtxSetCurrent(self.ctx) },
            "cuCtxSetCurrent",
            "binding the context to this thread",
        )
    }

    /// The device's properties.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Free and total device memory, bytes.
    pub fn mem_info(&self) -> Result<(u64, u64), TierError> {
        self.bind()?;
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: valid out-pointers; the context is current.
        check(
            unsafe { sys::cuMemGetInfo_v2(&mut free, &mut total) },
            "cuMemGetInfo",
            "reading free device memory",
        )?;
        Ok((free as u64, total as u64))
    }
}

impl Drop for GpuDevice {
    fn drop(&mut self) {
        // SAFETY: retained once in `open`, released once here. A failure cannot be handled in
        // drop and leaves only a context the process exit reclaims.
        let _ = unsafe { sys::cuDevicePrimaryCtxRelease_v2(self.dev) };
    }
}

/// A stream we own, created at start-up (non-blocking: it never waits for the legacy stream).
pub struct Stream {
    raw: sys::CUstream,
    _device: Arc<GpuDevice>,
}

// SAFETY: a `CUstream` handle may be used from any thread with the context current; we keep the
// device (and so its context) alive as long as the stream.
unsafe impl Send for Stream {}
// SAFETY: as above; enqueueing from several threads is allowed by the driver API.
unsafe impl Sync for Stream {}

impl Stream {
    /// Creates a non-blocking stream on `device` (binds the context to this thread first).
    pub fn new(device: &Arc<GpuDevice>) -> Result<Stream, TierError> {
        device.bind()?;
        let mut raw: sys::CUstream = std::ptr::null_mut();
        // SAFETY: valid out-pointer; the context is current.
        check(
            unsafe {
                sys::cuStreamCreate(&mut raw, sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32)
            },
            "cuStreamCreate",
            "creating a stream",
        )?;
        Ok(Stream {
            raw,
            _device: device.clone(),
        })
    }

    /// The raw handle.
    pub fn raw(&self) -> sys::CUstream {
        self.raw
    }

    /// Waits until everything enqueued so far is done.
    pub fn synchronize(&self) -> Result<(), TierError> {
        // SAFETY: the stream is valid while `self` lives.
        check(
            unsafe { sys::cuStreamSynchronize(self.raw) },
            "cuStreamSynchronize",
            "waiting for a stream",
        )
    }

    /// Makes later work on this stream wait for `event`'s latest record.
    pub fn wait(&self, event: &Event) -> Result<(), TierError> {
        // SAFETY: both handles are valid while their owners live.
        check(
            unsafe { sys::cuStreamWaitEvent(self.raw, event.raw, 0) },
            "cuStreamWaitEvent",
            "ordering two streams",
        )
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once; pending work completes first (CUDA's rule).
        let _ = unsafe { sys::cuStreamDestroy_v2(self.raw) };
    }
}

/// An event we own.
pub struct Event {
    raw: sys::CUevent,
    _device: Arc<GpuDevice>,
}

// SAFETY: as for `Stream`.
unsafe impl Send for Event {}
// SAFETY: as for `Stream`.
unsafe impl Sync for Event {}

impl Event {
    /// A new event; `timing` false makes record and query cheaper.
    pub fn new(device: &Arc<GpuDevice>, timing: bool) -> Result<Event, TierError> {
        device.bind()?;
        let flags = if timing {
            sys::CUevent_flags::CU_EVENT_DEFAULT
        } else {
            sys::CUevent_flags::CU_EVENT_DISABLE_TIMING
        };
        let mut raw: sys::CUevent = std::ptr::null_mut();
        // SAFETY: valid out-pointer; the context is current.
        check(
            unsafe { sys::cuEventCreate(&mut raw, flags as u32) },
            "cuEventCreate",
            "creating an event",
        )?;
        Ok(Event {
            raw,
            _device: device.clone(),
        })
    }

    /// Records the event on `stream`.
    pub fn record(&self, stream: &Stream) -> Result<(), TierError> {
        // SAFETY: both handles are valid while their owners live.
        check(
            unsafe { sys::cuEventRecord(self.raw, stream.raw) },
            "cuEventRecord",
            "recording an event",
        )
    }

    /// Whether the work before the latest record is done (`Ok(false)`: not yet).
    pub fn is_done(&self) -> Result<bool, TierError> {
        // SAFETY: the event is valid while `self` lives.
        let r = unsafe { sys::cuEventQuery(self.raw) };
        if r == sys::CUresult::CUDA_ERROR_NOT_READY {
            return Ok(false);
        }
        check(r, "cuEventQuery", "polling an event").map(|()| true)
    }

    /// Waits for the event: polls first (the common case is a few microseconds), then blocks.
    pub fn wait(&self, spin: std::time::Duration) -> Result<(), TierError> {
        let start = std::time::Instant::now();
        while start.elapsed() < spin {
            if self.is_done()? {
                return Ok(());
            }
            std::hint::spin_loop();
        }
        // SAFETY: the event is valid while `self` lives.
        check(
            unsafe { sys::cuEventSynchronize(self.raw) },
            "cuEventSynchronize",
            "waiting for an event",
        )
    }

    /// Milliseconds between `start`'s record and this event's record (both timing events).
    pub fn elapsed_ms_since(&self, start: &Event) -> Result<f32, TierError> {
        let mut ms = 0f32;
        // SAFETY: valid out-pointer and events.
        check(
            unsafe { sys::cuEventElapsedTime_v2(&mut ms, start.raw, self.raw) },
            "cuEventElapsedTime",
            "timing between two events",
        )?;
        Ok(ms)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once.
        let _ = unsafe { sys::cuEventDestroy_v2(self.raw) };
    }
}

/// Device memory we own (`cuMemAlloc`), freed on drop.
pub struct DeviceBuf {
    ptr: sys::CUdeviceptr,
    len: usize,
    device: Arc<GpuDevice>,
}

// SAFETY: a device address is an integer valid in the context on any thread; the buffer keeps
// the device alive.
unsafe impl Send for DeviceBuf {}
// SAFETY: `&DeviceBuf` hands out the address only; accesses go through CUDA calls whose
// ordering the users establish with streams and events.
unsafe impl Sync for DeviceBuf {}

impl DeviceBuf {
    /// Allocates `len` bytes (> 0) of device memory.
    pub fn new(device: &Arc<GpuDevice>, len: usize) -> Result<DeviceBuf, TierError> {
        if len == 0 {
            return Err(TierError::Config(
                "cannot allocate 0 bytes of device memory".into(),
            ));
        }
        device.bind()?;
        let mut ptr: sys::CUdeviceptr = 0;
        // SAFETY: valid out-pointer; the context is current.
        check(
            unsafe { sys::cuMemAlloc_v2(&mut ptr, len) },
            "cuMemAlloc",
            &format!("allocating {len} bytes of device memory"),
        )?;
        Ok(DeviceBuf {
            ptr,
            len,
            device: device.clone(),
        })
    }

    /// The device address.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    /// Bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: the buffer holds at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `len` bytes at `offset` with `byte`, ordered on `stream`.
    pub fn fill(
        &self,
        offset: usize,
        len: usize,
        byte: u8,
        stream: &Stream,
    ) -> Result<(), TierError> {
        assert!(offset.checked_add(len).is_some_and(|e| e <= self.len));
        // SAFETY: the range is inside the allocation (asserted); the stream is valid.
        check(
            unsafe { sys::cuMemsetD8Async(self.ptr + offset as u64, byte, len, stream.raw()) },
            "cuMemsetD8Async",
            "filling device memory",
        )
    }

    /// Copies `src` to `offset`, synchronously (control path only).
    pub fn upload(&self, offset: usize, src: &[u8]) -> Result<(), TierError> {
        assert!(offset.checked_add(src.len()).is_some_and(|e| e <= self.len));
        self.device.bind()?;
        // SAFETY: destination range inside the allocation (asserted); `src` is valid for its
        // length for the duration of this synchronous call.
        check(
            unsafe {
                sys::cuMemcpyHtoD_v2(self.ptr + offset as u64, src.as_ptr().cast(), src.len())
            },
            "cuMemcpyHtoD",
            "uploading to device memory",
        )
    }

    /// Copies from `offset` into `dst`, synchronously (control path only).
    pub fn download(&self, offset: usize, dst: &mut [u8]) -> Result<(), TierError> {
        assert!(offset.checked_add(dst.len()).is_some_and(|e| e <= self.len));
        self.device.bind()?;
        // SAFETY: source range inside the allocation (asserted); `dst` is valid and exclusively
        // ours for the duration of this synchronous call.
        check(
            unsafe {
                sys::cuMemcpyDtoH_v2(dst.as_mut_ptr().cast(), self.ptr + offset as u64, dst.len())
            },
            "cuMemcpyDtoH",
            "downloading from device memory",
        )
    }
}

impl Drop for DeviceBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`, freed once; the context stays alive through `device`.
        let _ = self.device.bind();
        let _ = unsafe { sys::cuMemFree_v2(self.ptr) };
    }
}
