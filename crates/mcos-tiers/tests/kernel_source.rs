//! The CUDA kernel source (compiled with NVRTC on GPU machines) checked on every machine: it
//! must parse and type-check as C++ against a small shim of the CUDA built-ins it uses, so a
//! typo in a kernel fails CI here rather than at start-up on a GPU host. The host C++ compiler
//! stands in for NVRTC's front end; device code generation is checked on the GPU machine.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

const SHIM: &str = r#"
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__
#define __launch_bounds__(n)
struct uint4 { unsigned int x, y, z, w; };
struct dim3 { unsigned int x, y, z; };
extern dim3 threadIdx, blockIdx, blockDim, gridDim;
void __syncthreads();
void __threadfence();
void __threadfence_block();
void __threadfence_system();
template <class T> T __shfl_down_sync(unsigned mask, T v, int off);
template <class T> T __shfl_xor_sync(unsigned mask, T v, int off);
unsigned int atomicAdd(unsigned int* p, unsigned int v);
float atomicAdd(float* p, float v);
float __uint_as_float(unsigned int x);
float rsqrtf(float x);
float __expf(float x);
"#;

#[test]
fn kernel_source_type_checks_as_cpp() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cuda/kernels.cu");
    let text = std::fs::read_to_string(&src).unwrap();
    for name in ["mcos_gather", "mcos_fold", "mcos_gemv_bf16", "mcos_attend"] {
        assert!(
            text.contains(&format!("{name}(")),
            "kernel {name} is loaded by name in kernels.rs"
        );
    }
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    if Command::new(&compiler).arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs a C++ compiler ({compiler}) for this check"
        );
        eprintln!("skipped: no C++ compiler `{compiler}`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("cuda_shim.h");
    std::fs::write(&shim, SHIM).unwrap();
    let out = Command::new(&compiler)
        .args([
            "-fsyntax-only",
            "-std=c++17",
            "-Wall",
            "-Werror",
            "-Wno-unused-function",
        ])
        .arg("-include")
        .arg(&shim)
        .args(["-x", "c++"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kernels.cu does not type-check:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_shim_check_can_fail() {
    // The same command on a broken kernel must fail, or the check above proves nothing.
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    if Command::new(&compiler).arg("--version").output().is_err() {
        eprintln!("skipped: no C++ compiler `{compiler}`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("cuda_shim.h");
    std::fs::write(&shim, SHIM).unwrap();
    let bad = dir.path().join("bad.cu");
    std::fs::write(
        &bad,
        "extern \"C\" __global__ void k(unsigned int* p) { *p = threadIdx.q; }",
    )
    .unwrap();
    let out = Command::new(&compiler)
        .args(["-fsyntax-only", "-std=c++17"])
        .arg("-include")
        .arg(&shim)
        .args(["-x", "c++"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
