//! The GPU kernels: CUDA C source shipped in the binary, compiled at start-up with NVRTC for
//! the device at hand, then loaded with the driver.
//!
//! NVRTC first compiles straight to machine code for the device (`sm_XY`, a cubin: no driver
//! JIT, and no mismatch between a newer NVRTC's PTX and an older driver); if the driver refuses
//! that image, PTX for `compute_XY` is compiled and JIT-loaded instead. [`Kernels::how`] says
//! which ran. Without libnvrtc the GPU paths cannot start, and the error says how to fix it.

use super::{GpuDevice, check};
use crate::error::TierError;
use cudarc::driver::sys;
use cudarc::nvrtc::sys as nv;
use std::ffi::{CStr, CString, c_char};
use std::sync::Arc;

/// The kernel source (see `kernels.cu`).
pub const SOURCE: &str = include_str!("kernels.cu");

/// Threads per CUDA block of every kernel (`MCOS_THREADS` in the source).
pub const THREADS: u32 = 256;

/// Message when libnvrtc cannot be loaded.
pub const NO_NVRTC: &str = "libnvrtc (CUDA's run-time compiler, which builds the MCOS kernels at \
     start-up) is not loadable: install the CUDA toolkit's NVRTC (e.g. the cuda-nvrtc package or \
     pip nvidia-cuda-nvrtc) and add its lib directory to LD_LIBRARY_PATH";

/// NVRTC entry points used here (checked before the first call: cudarc panics on a missing one).
const NVRTC_SYMBOLS: [&str; 11] = [
    "nvrtcVersion",
    "nvrtcCreateProgram",
    "nvrtcCompileProgram",
    "nvrtcDestroyProgram",
    "nvrtcGetErrorString",
    "nvrtcGetCUBINSize",
    "nvrtcGetCUBIN",
    "nvrtcGetPTXSize",
    "nvrtcGetPTX",
    "nvrtcGetProgramLogSize",
    "nvrtcGetProgramLog",
];

/// The loaded module and its entry points.
pub struct Kernels {
    module: sys::CUmodule,
    /// `mcos_gather`.
    pub gather: sys::CUfunction,
    /// `mcos_fold`.
    pub fold: sys::CUfunction,
    /// `mcos_gemv_bf16`.
    pub gemv: sys::CUfunction,
    /// `mcos_attend`.
    pub attend: sys::CUfunction,
    how: String,
    device: Arc<GpuDevice>,
}

// SAFETY: module and function handles are driver objects usable from any thread with the
// context current; we keep the device (and its context) alive.
unsafe impl Send for Kernels {}
// SAFETY: as above; launching the same function from several threads is allowed.
unsafe impl Sync for Kernels {}

impl Kernels {
    /// Compiles and loads the kernels for `device`.
    pub fn load(device: &Arc<GpuDevice>) -> Result<Kernels, TierError> {
        if !super::nvrtc_present() {
            return Err(TierError::NoGpu(NO_NVRTC.into()));
        }
        for sym in NVRTC_SYMBOLS {
            let mut name = sym.as_bytes().to_vec();
            name.push(0);
            // SAFETY: looks the symbol up in the (present) library without calling it.
            let found =
                unsafe { nv::culib().get::<unsafe extern "C" fn()>(name.as_slice()) }.is_ok();
            if !found {
                return Err(TierError::NoGpu(format!(
                    "libnvrtc lacks {sym}: install NVRTC from CUDA 11.1 or newer"
                )));
            }
        }
        device.bind()?;
        let (major, minor) = device.info().compute_capability;
        let version = nvrtc_version()?;
        let cubin = compile(&format!("--gpu-architecture=sm_{major}{minor}"), true)?;
        let (module, how) = match load_module(&cubin) {
            Ok(m) => (m, format!("NVRTC {version} -> cubin sm_{major}{minor}")),
            Err(cubin_err) => {
                let ptx = compile(&format!("--gpu-architecture=compute_{major}{minor}"), false)?;
                let m = load_module(&ptx).map_err(|ptx_err| TierError::Gpu {
                    call: "cuModuleLoadData",
                    context: "loading the MCOS kernels".into(),
                    detail: format!(
                        "the driver refused both the cubin ({cubin_err}) and the PTX ({ptx_err}): \
                         NVRTC {version} may be newer than the driver"
                    ),
                })?;
                (
                    m,
                    format!("NVRTC {version} -> PTX compute_{major}{minor}, JIT by the driver"),
                )
            }
        };
        let mut k = Kernels {
            module,
            gather: std::ptr::null_mut(),
            fold: std::ptr::null_mut(),
            gemv: std::ptr::null_mut(),
            attend: std::ptr::null_mut(),
            how,
            device: device.clone(),
        };
        k.gather = k.function(c"mcos_gather")?;
        k.fold = k.function(c"mcos_fold")?;
        k.gemv = k.function(c"mcos_gemv_bf16")?;
        k.attend = k.function(c"mcos_attend")?;
        Ok(k)
    }

    fn function(&self, name: &CStr) -> Result<sys::CUfunction, TierError> {
        let mut f: sys::CUfunction = std::ptr::null_mut();
        // SAFETY: valid out-pointer, loaded module and NUL-terminated name.
        check(
            unsafe { sys::cuModuleGetFunction(&mut f, self.module, name.as_ptr()) },
            "cuModuleGetFunction",
            &format!("finding kernel {}", name.to_string_lossy()),
        )?;
        Ok(f)
    }

    /// How the kernels were built and loaded (for reports).
    pub fn how(&self) -> &str {
        &self.how
    }
}

impl Drop for Kernels {
    fn drop(&mut self) {
        let _ = self.device.bind();
        // SAFETY: loaded in `load`, unloaded once; no launch can be pending that outlives the
        // owners who hold this struct.
        let _ = unsafe { sys::cuModuleUnload(self.module) };
    }
}

fn load_module(image: &[u8]) -> Result<sys::CUmodule, String> {
    let mut m: sys::CUmodule = std::ptr::null_mut();
    // SAFETY: `image` is a complete cubin or a NUL-terminated PTX string from NVRTC, alive for
    // the call; valid out-pointer.
    let r = unsafe { sys::cuModuleLoadData(&mut m, image.as_ptr().cast()) };
    if r == sys::CUresult::CUDA_SUCCESS {
        Ok(m)
    } else {
        Err(super::error_name(r))
    }
}

fn nvrtc_check(r: nv::nvrtcResult, call: &'static str) -> Result<(), TierError> {
    if r == nv::nvrtcResult::NVRTC_SUCCESS {
        return Ok(());
    }
    // SAFETY: nvrtcGetErrorString returns a static NUL-terminated string for any code.
    let detail = unsafe { CStr::from_ptr(nv::nvrtcGetErrorString(r)) }
        .to_string_lossy()
        .into_owned();
    Err(TierError::Gpu {
        call,
        context: "compiling the MCOS kernels with NVRTC".into(),
        detail,
    })
}

fn nvrtc_version() -> Result<String, TierError> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: valid out-pointers.
    nvrtc_check(
        unsafe { nv::nvrtcVersion(&mut major, &mut minor) },
        "nvrtcVersion",
    )?;
    Ok(format!("{major}.{minor}"))
}

/// An NVRTC program, destroyed on drop.
struct Program(nv::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: created by nvrtcCreateProgram, destroyed once.
        let _ = unsafe { nv::nvrtcDestroyProgram(&mut self.0) };
    }
}

/// Compiles `SOURCE` with `arch`; returns the cubin, or the PTX (NUL-terminated).
fn compile(arch: &str, cubin: bool) -> Result<Vec<u8>, TierError> {
    let src =
        CString::new(SOURCE).map_err(|_| TierError::Config("kernel source has a NUL".into()))?;
    let mut raw: nv::nvrtcProgram = std::ptr::null_mut();
    // SAFETY: valid out-pointer and NUL-terminated strings alive for the call; no headers.
    nvrtc_check(
        unsafe {
            nv::nvrtcCreateProgram(
                &mut raw,
                src.as_ptr(),
                c"mcos_kernels.cu".as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        },
        "nvrtcCreateProgram",
    )?;
    let prog = Program(raw);
    let opts: Vec<CString> = [arch, "--std=c++17", "-lineinfo"]
        .iter()
        .map(|o| CString::new(*o).map_err(|_| TierError::Config("bad NVRTC option".into())))
        .collect::<Result<_, _>>()?;
    let ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
    // SAFETY: the program is live; the option strings outlive the call.
    let compiled = unsafe { nv::nvrtcCompileProgram(prog.0, ptrs.len() as i32, ptrs.as_ptr()) };
    if compiled != nv::nvrtcResult::NVRTC_SUCCESS {
        let log = program_log(&prog);
        return nvrtc_check(compiled, "nvrtcCompileProgram").and(Err(TierError::Gpu {
            call: "nvrtcCompileProgram",
            context: format!("compiling the MCOS kernels ({arch})"),
            detail: log,
        }));
    }
    let mut size = 0usize;
    let mut out;
    if cubin {
        // SAFETY: live, compiled program; valid out-pointer.
        nvrtc_check(
            unsafe { nv::nvrtcGetCUBINSize(prog.0, &mut size) },
            "nvrtcGetCUBINSize",
        )?;
        out = vec![0u8; size];
        // SAFETY: `out` holds `size` bytes, as NVRTC asked for.
        nvrtc_check(
            unsafe { nv::nvrtcGetCUBIN(prog.0, out.as_mut_ptr().cast()) },
            "nvrtcGetCUBIN",
        )?;
    } else {
        // SAFETY: as above.
        nvrtc_check(
            unsafe { nv::nvrtcGetPTXSize(prog.0, &mut size) },
            "nvrtcGetPTXSize",
        )?;
        out = vec![0u8; size];
        // SAFETY: as above; the size includes the terminating NUL.
        nvrtc_check(
            unsafe { nv::nvrtcGetPTX(prog.0, out.as_mut_ptr().cast()) },
            "nvrtcGetPTX",
        )?;
    }
    Ok(out)
}

fn program_log(prog: &Program) -> String {
    let mut size = 0usize;
    // SAFETY: live program; valid out-pointer.
    if unsafe { nv::nvrtcGetProgramLogSize(prog.0, &mut size) } != nv::nvrtcResult::NVRTC_SUCCESS {
        return "(no log)".into();
    }
    let mut log = vec![0u8; size.max(1)];
    // SAFETY: `log` holds the size NVRTC reported.
    if unsafe { nv::nvrtcGetProgramLog(prog.0, log.as_mut_ptr().cast()) }
        != nv::nvrtcResult::NVRTC_SUCCESS
    {
        return "(no log)".into();
    }
    String::from_utf8_lossy(&log)
        .trim_end_matches('\0')
        .to_string()
}

/// Launches `f` with `params` (pointers to each argument value) on `stream`.
///
/// # Safety
/// `params` match the kernel's signature, and every pointer argument stays valid until the
/// launch completes on `stream`.
pub unsafe fn launch(
    f: sys::CUfunction,
    grid: u32,
    stream: sys::CUstream,
    params: &mut [*mut std::ffi::c_void],
    what: &str,
) -> Result<(), TierError> {
    // SAFETY: the caller guarantees the function, arguments and their lifetimes.
    check(
        unsafe {
            sys::cuLaunchKernel(
                f,
                grid.max(1),
                1,
                1,
                THREADS,
                1,
                1,
                0,
                stream,
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        },
        "cuLaunchKernel",
        what,
    )
}
