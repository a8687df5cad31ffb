//! Disk -> HBM with GPUDirect Storage (cuFile): the NVMe DMA lands in GPU memory with no host
//! bounce buffer, where the system supports it (nvidia-fs loaded, a supported filesystem, the
//! file opened with O_DIRECT). cuFile may also run in "compatibility mode", moving the bytes
//! through its own host buffers: the report carries the driver's status flags so a reader can
//! tell. Where cuFile cannot be set up at all, the mover reads into a pinned bounce buffer
//! instead, and says so ([`GdsStatus`]).

use super::hbm::HbmTier;
use crate::disk::DiskTier;
use crate::error::TierError;
use cudarc::cufile::{result as cf, sys as cfs};
use std::os::fd::AsRawFd;

/// cuFile entry points used here (checked first: cudarc panics on a missing one).
const CUFILE_SYMBOLS: [&str; 8] = [
    "cuFileDriverOpen",
    "cuFileDriverClose",
    "cuFileDriverGetProperties",
    "cuFileHandleRegister",
    "cuFileHandleDeregister",
    "cuFileBufRegister",
    "cuFileBufDeregister",
    "cuFileRead",
];

/// Which path disk -> HBM moves take, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GdsStatus {
    /// cuFile is set up: (major, minor) version and the nvfs status flags it reported.
    Cufile {
        /// cuFile driver version.
        version: (u32, u32),
        /// `CUfileDrvProps.nvfs.dstatusflags` (bit meanings: cufile.h `CUfileDriverStatusFlags`).
        dstatus_flags: u32,
        /// Whether the HBM arena is registered with cuFile (else cuFile bounces internally).
        buffer_registered: bool,
    },
    /// Reads go through a pinned bounce buffer; the reason cuFile is not used.
    Bounce(String),
}

impl GdsStatus {
    /// `"cufile"` or `"bounce"`.
    pub fn path(&self) -> &'static str {
        match self {
            GdsStatus::Cufile { .. } => "cufile",
            GdsStatus::Bounce(_) => "bounce",
        }
    }
}

/// An open cuFile driver with a disk tier's file and an HBM arena registered.
pub struct Gds {
    handle: cfs::CUfileHandle_t,
    buf_base: Option<u64>,
    status: GdsStatus,
}

// SAFETY: cuFile handles are thread-safe per the GDS API reference; the mover owns this struct.
unsafe impl Send for Gds {}

impl Gds {
    /// Sets up cuFile for reads from `disk` into `hbm`, or says why not.
    pub fn open(disk: &DiskTier, hbm: &HbmTier) -> Result<Gds, String> {
        if !super::cufile_present() {
            return Err("libcufile is not loadable".into());
        }
        for sym in CUFILE_SYMBOLS {
            let mut name = sym.as_bytes().to_vec();
            name.push(0);
            // SAFETY: looks the symbol up in the (present) library without calling it.
            if unsafe { cfs::culib().get::<unsafe extern "C" fn()>(name.as_slice()) }.is_err() {
                return Err(format!("libcufile lacks {sym}"));
            }
        }
        if !disk.direct_io() {
            return Err(
                "the disk tier's file is not open with O_DIRECT (filesystem refused it)".into(),
            );
        }
        cf::driver_open().map_err(|e| format!("cuFileDriverOpen failed: {e:?}"))?;
        let props = cf::driver_get_properties().ok();
        // SAFETY: the descriptor is plain old data; zeroed then filled for an fd handle.
        let mut descr: cfs::CUfileDescr_t = unsafe { std::mem::zeroed() };
        descr.type_ = cfs::CUfileFileHandleType::CU_FILE_HANDLE_TYPE_OPAQUE_FD;
        descr.handle.fd = disk.as_raw_fd();
        let handle = match cf::handle_register(&descr) {
            Ok(h) => h,
            Err(e) => {
                let _ = cf::driver_close();
                return Err(format!("cuFileHandleRegister failed: {e:?}"));
            }
        };
        let base = hbm.base_dptr();
        // SAFETY: the arena is a live device allocation of `arena_bytes`; deregistered in drop,
        // and the mover drops `Gds` before the HBM tier (field order).
        let registered =
            unsafe { cf::buf_register(base as *const std::ffi::c_void, hbm.arena_bytes(), 0) }
                .is_ok();
        let status = GdsStatus::Cufile {
            version: props
                .map(|p| (p.nvfs.major_version, p.nvfs.minor_version))
                .unwrap_or((0, 0)),
            dstatus_flags: props.map(|p| p.nvfs.dstatusflags).unwrap_or(0),
            buffer_registered: registered,
        };
        Ok(Gds {
            handle,
            buf_base: registered.then_some(base),
            status,
        })
    }

    /// What was set up.
    pub fn status(&self) -> &GdsStatus {
        &self.status
    }

    /// Reads `len` bytes at `file_offset` into the HBM arena at `base + dst_offset`
    /// (synchronous).
    ///
    /// # Safety
    /// `base` is the arena registered in `open` (or any live device allocation), the range
    /// `[dst_offset, dst_offset + len)` is inside it, and nothing else uses it meanwhile.
    pub unsafe fn read(
        &self,
        base: u64,
        len: usize,
        file_offset: u64,
        dst_offset: u64,
    ) -> Result<(), TierError> {
        let fail = |detail: String| TierError::Gpu {
            call: "cuFileRead",
            context: format!("reading {len} bytes at file offset {file_offset} into HBM"),
            detail,
        };
        let off = i64::try_from(file_offset).map_err(|_| fail("offset too large".into()))?;
        let dst = i64::try_from(dst_offset).map_err(|_| fail("offset too large".into()))?;
        // SAFETY: the caller guarantees the destination range; the handle is registered.
        let n =
            unsafe { cfs::cuFileRead(self.handle, base as *mut std::ffi::c_void, len, off, dst) };
        match n {
            -1 => Err(fail(std::io::Error::last_os_error().to_string())),
            n if n < 0 => Err(fail(format!("cuFile error {}", -n))),
            n if n as usize != len => Err(fail(format!("short read: {n} of {len} bytes"))),
            _ => Ok(()),
        }
    }
}

impl Drop for Gds {
    fn drop(&mut self) {
        if let Some(base) = self.buf_base {
            // SAFETY: registered in `open`, deregistered once while the arena still lives.
            let _ = unsafe { cf::buf_deregister(base as *const std::ffi::c_void) };
        }
        // SAFETY: registered in `open`, deregistered once.
        let _ = unsafe { cf::handle_deregister(self.handle) };
        let _ = cf::driver_close();
    }
}
