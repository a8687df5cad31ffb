//! Caller memory from Python objects, without a copy: the buffer protocol first (numpy arrays,
//! bytearray, memoryview, mmap, bytes for reading), then DLPack (`__dlpack__`: any producer,
//! e.g. a torch CPU tensor). A [`HostBuf`] holds the export (the buffer view or the capsule), so
//! the memory can neither move nor be freed while the Rust side uses its address; it is
//! released when the `HostBuf` drops, with the GIL held.
//!
//! The buffer protocol's C functions and `Py_buffer` belong to the limited API only from
//! Python 3.11, but CPython has exported them with this layout since 3.0; they are declared
//! here so one abi3 wheel serves 3.9 and up.

use crate::errors::{DeviceError, InvalidBuffer};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use std::ffi::{c_char, c_int, c_void};

/// CPython's `Py_buffer` (Include/pybuffer.h; same layout in every CPython 3.x).
#[repr(C)]
struct PyBufferView {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

const PYBUF_WRITABLE: c_int = 0x0001;
const PYBUF_ND: c_int = 0x0008;
const PYBUF_STRIDES: c_int = 0x0010 | PYBUF_ND;
const PYBUF_C_CONTIGUOUS: c_int = 0x0020 | PYBUF_STRIDES;

unsafe extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut PyBufferView, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut PyBufferView);
}

/// DLPack's `DLTensor` (dlpack.h, ABI stable since 0.2).
#[repr(C)]
struct DlTensor {
    data: *mut c_void,
    device_type: i32,
    device_id: i32,
    ndim: i32,
    dtype_code: u8,
    dtype_bits: u8,
    dtype_lanes: u16,
    shape: *const i64,
    strides: *const i64,
    byte_offset: u64,
}

/// DLPack device types this build can read and write (host memory).
const DL_CPU: i32 = 1;
const DL_CUDA_HOST: i32 = 3;
const DL_CUDA: i32 = 2;
const DL_CUDA_MANAGED: i32 = 13;

enum Hold {
    View(Box<PyBufferView>),
    /// The capsule stays named "dltensor": when it is collected, the producer's destructor
    /// calls the tensor's deleter (the DLPack protocol for a consumer that borrows).
    Capsule(#[allow(dead_code)] Py<PyCapsule>),
}

/// Host memory of one Python object, exported for as long as this lives.
pub struct HostBuf {
    pub ptr: *mut u8,
    pub len: usize,
    hold: Hold,
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        if let Hold::View(v) = &mut self.hold {
            // SAFETY: the view was filled by a successful PyObject_GetBuffer and is released
            // once; HostBuf is !Send (raw pointer), so it drops on the thread that holds the GIL
            // (the binding drops every HostBuf after re-attaching).
            unsafe { PyBuffer_Release(&mut **v) };
        }
    }
}

/// A range of caller memory as the I/O side sees it: plain numbers, so it may cross
/// `Python::detach`. Valid while the `HostBuf` it came from lives.
#[derive(Copy, Clone, Debug)]
pub struct Span {
    pub addr: usize,
    pub len: usize,
}

impl HostBuf {
    pub fn span(&self) -> Span {
        Span {
            addr: self.ptr as usize,
            len: self.len,
        }
    }
}

/// Exports `obj`'s memory: writable when `write` (get_into), read-only otherwise (put).
pub fn acquire(obj: &Bound<'_, PyAny>, write: bool) -> PyResult<HostBuf> {
    let mut view = Box::new(PyBufferView {
        buf: std::ptr::null_mut(),
        obj: std::ptr::null_mut(),
        len: 0,
        itemsize: 0,
        readonly: 0,
        ndim: 0,
        format: std::ptr::null_mut(),
        shape: std::ptr::null_mut(),
        strides: std::ptr::null_mut(),
        suboffsets: std::ptr::null_mut(),
        internal: std::ptr::null_mut(),
    });
    let flags = PYBUF_C_CONTIGUOUS | if write { PYBUF_WRITABLE } else { 0 };
    // SAFETY: obj is a live object (GIL held through `obj`'s token); view is a zeroed,
    // correctly laid out Py_buffer that PyObject_GetBuffer fills.
    let rc = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *view, flags) };
    if rc == 0 {
        let len = usize::try_from(view.len).unwrap_or(0);
        return Ok(HostBuf {
            ptr: view.buf.cast(),
            len,
            hold: Hold::View(view),
        });
    }
    let buffer_err = PyErr::fetch(obj.py());
    if obj.hasattr("__dlpack__")? {
        return dlpack(obj, write);
    }
    let what = obj.get_type().name()?;
    Err(InvalidBuffer::new_err(format!(
        "{what} is not usable as {} memory: {buffer_err} (pass a C-contiguous{} buffer such as a numpy array, or a DLPack tensor)",
        if write { "writable" } else { "readable" },
        if write { ", writable" } else { "" },
    )))
}

fn dlpack(obj: &Bound<'_, PyAny>, write: bool) -> PyResult<HostBuf> {
    if obj.hasattr("__dlpack_device__")? {
        let (dev, id): (i32, i32) = obj.call_method0("__dlpack_device__")?.extract()?;
        check_device(dev, id)?;
    }
    let cap = obj.call_method0("__dlpack__")?;
    let cap = cap
        .cast_into::<PyCapsule>()
        .map_err(|_| InvalidBuffer::new_err("__dlpack__ did not return a capsule"))?;
    let name = c"dltensor";
    // SAFETY: a live capsule; GetPointer checks the name and returns null (with an error set)
    // when it differs (e.g. "used_dltensor": already consumed).
    let p = unsafe { ffi::PyCapsule_GetPointer(cap.as_ptr(), name.as_ptr()) };
    if p.is_null() {
        let e = PyErr::fetch(obj.py());
        return Err(InvalidBuffer::new_err(format!(
            "__dlpack__ returned an unusable capsule: {e}"
        )));
    }
    // SAFETY: a "dltensor" capsule points at a DLManagedTensor whose first member is the
    // DLTensor; it stays valid while the unconsumed capsule lives (held below).
    let t = unsafe { &*p.cast::<DlTensor>() };
    check_device(t.device_type, t.device_id)?;
    let ndim = usize::try_from(t.ndim).unwrap_or(0);
    // SAFETY: shape (and strides, when not null) point at ndim int64s per the DLPack contract.
    let shape: &[i64] = if ndim == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(t.shape, ndim) }
    };
    let elem_bits = u64::from(t.dtype_bits) * u64::from(t.dtype_lanes);
    if elem_bits % 8 != 0 {
        return Err(InvalidBuffer::new_err(format!(
            "DLPack tensor of {elem_bits}-bit elements: only whole-byte elements are stored"
        )));
    }
    let mut count: u64 = 1;
    for &d in shape {
        count = count.saturating_mul(u64::try_from(d).unwrap_or(0));
    }
    if !t.strides.is_null() && ndim > 0 {
        // SAFETY: as above.
        let strides = unsafe { std::slice::from_raw_parts(t.strides, ndim) };
        let mut expect: i64 = 1;
        for i in (0..ndim).rev() {
            if shape[i] != 1 && strides[i] != expect {
                return Err(InvalidBuffer::new_err(
                    "DLPack tensor is not contiguous (call .contiguous() first)",
                ));
            }
            expect = expect.saturating_mul(shape[i]);
        }
    }
    let _ = write; // legacy DLPack has no read-only flag; producers refuse read-only exports
    let len = usize::try_from(count.saturating_mul(elem_bits / 8))
        .map_err(|_| InvalidBuffer::new_err("DLPack tensor too large"))?;
    // SAFETY: data + byte_offset is the tensor's first element (DLPack contract).
    let ptr = unsafe { t.data.cast::<u8>().add(t.byte_offset as usize) };
    Ok(HostBuf {
        ptr,
        len,
        hold: Hold::Capsule(cap.unbind()),
    })
}

fn check_device(dev: i32, id: i32) -> PyResult<()> {
    match dev {
        DL_CPU | DL_CUDA_HOST => Ok(()),
        DL_CUDA | DL_CUDA_MANAGED => Err(DeviceError::new_err(format!(
            "tensor on cuda:{id}: this build of mcos has no CUDA support (it was built without the \
             `cuda` feature, or no GPU is present); copy the tensor to host memory first \
             (tensor.cpu(), ideally pinned)"
        ))),
        other => Err(DeviceError::new_err(format!(
            "DLPack device type {other} is not host memory; mcos reads and writes host memory only"
        ))),
    }
}

/// Exports every object of `objs`; refuses overlapping writable ranges (two buffers of one
/// batch aliasing each other would be written twice, in no defined order).
pub fn acquire_all(objs: &Bound<'_, PyAny>, write: bool) -> PyResult<Vec<HostBuf>> {
    let mut out = Vec::with_capacity(objs.len().unwrap_or(0));
    for (i, o) in objs.try_iter()?.enumerate() {
        let o = o?;
        out.push(acquire(&o, write).map_err(|e| {
            let msg = e.value(o.py()).to_string();
            if e.is_instance_of::<DeviceError>(o.py()) {
                DeviceError::new_err(format!("buffer {i}: {msg}"))
            } else {
                InvalidBuffer::new_err(format!("buffer {i}: {msg}"))
            }
        })?);
    }
    if write {
        let mut spans: Vec<(usize, usize, usize)> = out
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len > 0)
            .map(|(i, b)| (b.ptr as usize, b.ptr as usize + b.len, i))
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(InvalidBuffer::new_err(format!(
                    "buffers {} and {} overlap; give each block its own memory",
                    w[0].2.min(w[1].2),
                    w[0].2.max(w[1].2)
                )));
            }
        }
    }
    Ok(out)
}
