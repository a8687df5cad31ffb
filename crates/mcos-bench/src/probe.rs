//! What a thread did during a timed window, measured from outside the work being timed.
//!
//! - System calls: a per-thread Linux perf counter on the `raw_syscalls:sys_enter` tracepoint,
//!   which the kernel increments on every entry into any system call made by this thread, so
//!   the count is exact and covers every call (futex, mmap, write, clock_gettime when it is not
//!   a vDSO call, ...). Opening it needs `perf_event_paranoid` <= -1 or CAP_PERFMON (root in a
//!   container usually has it); where it cannot be opened, the count is `None` with the reason.
//!   The read that closes the window enters the kernel itself and is subtracted (`probe` tests
//!   an empty window reads 0 and a window of N `getppid` calls reads N).
//! - Context switches: `getrusage(RUSAGE_THREAD)`: voluntary (the thread blocked: a lock, a
//!   channel, I/O) and involuntary (the scheduler preempted it; on a shared 2-core VM this is
//!   other tenants' load, not the fast path's doing).
//! - Heap allocations: counted per thread by [`crate::alloc::CountingAlloc`] when the binary
//!   installs it as its global allocator (`None` otherwise).

use crate::alloc;

/// Counts of one window on one thread.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ThreadCounts {
    /// System calls entered (None: no perf counter on this system).
    pub syscalls: Option<u64>,
    /// Voluntary context switches.
    pub voluntary_ctx_switches: u64,
    /// Involuntary context switches (preemptions).
    pub involuntary_ctx_switches: u64,
    /// Heap allocations and reallocations (None: counting allocator not installed).
    pub allocations: Option<u64>,
}

impl ThreadCounts {
    /// Sum over threads (a None stays None).
    pub fn add(&mut self, o: &ThreadCounts) {
        self.syscalls = self.syscalls.zip(o.syscalls).map(|(a, b)| a + b);
        self.allocations = self.allocations.zip(o.allocations).map(|(a, b)| a + b);
        self.voluntary_ctx_switches += o.voluntary_ctx_switches;
        self.involuntary_ctx_switches += o.involuntary_ctx_switches;
    }
}

/// A window being measured on the calling thread. Not `Send`: it must end on the thread that
/// started it.
pub struct Probe {
    counter: Result<SyscallCounter, String>,
    syscalls_at_start: u64,
    rusage: (u64, u64),
    allocations: Option<u64>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Probe {
    /// Prepares the counters (this itself makes system calls: do it before the window).
    pub fn new() -> Probe {
        Probe {
            counter: SyscallCounter::open(),
            syscalls_at_start: 0,
            rusage: (0, 0),
            allocations: None,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Why syscalls are not counted, if they are not.
    pub fn syscall_error(&self) -> Option<&str> {
        self.counter.as_ref().err().map(String::as_str)
    }

    /// Opens the window. The last thing it does is read the syscall counter.
    pub fn start(&mut self) {
        self.rusage = thread_ctx_switches();
        self.allocations = alloc::thread_allocations();
        if let Ok(c) = &self.counter {
            self.syscalls_at_start = c.read();
        }
    }

    /// Closes the window; the first thing it does is read the syscall counter.
    pub fn stop(&mut self) -> ThreadCounts {
        let syscalls = match &self.counter {
            // The closing read entered the kernel once before the counter was read.
            Ok(c) => Some(c.read().saturating_sub(self.syscalls_at_start + 1)),
            Err(_) => None,
        };
        let allocations = alloc::thread_allocations()
            .zip(self.allocations)
            .map(|(now, then)| now - then);
        let (v, i) = thread_ctx_switches();
        ThreadCounts {
            syscalls,
            voluntary_ctx_switches: v - self.rusage.0,
            involuntary_ctx_switches: i - self.rusage.1,
            allocations,
        }
    }
}

impl Default for Probe {
    fn default() -> Self {
        Self::new()
    }
}

/// (voluntary, involuntary) context switches of the calling thread so far.
pub fn thread_ctx_switches() -> (u64, u64) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getrusage writes one rusage struct into the zeroed value we own.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; RUSAGE_THREAD is the calling thread.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
        if rc == 0 {
            return (ru.ru_nvcsw as u64, ru.ru_nivcsw as u64);
        }
    }
    (0, 0)
}

/// A perf counter of system-call entries by the calling thread.
struct SyscallCounter {
    fd: i32,
}

/// `struct perf_event_attr` up to `config1` (PERF_ATTR_SIZE_VER0, 64 bytes): the kernel
/// accepts this size and treats the later fields as zero.
#[repr(C)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == 64);
const PERF_TYPE_TRACEPOINT: u32 = 2;

impl SyscallCounter {
    #[cfg(target_os = "linux")]
    fn open() -> Result<SyscallCounter, String> {
        let id = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .iter()
            .find_map(|root| {
                std::fs::read_to_string(format!("{root}/events/raw_syscalls/sys_enter/id")).ok()
            })
            .ok_or("no raw_syscalls:sys_enter tracepoint (tracefs not mounted)")?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|e| format!("tracepoint id `{}`: {e}", id.trim()))?;
        let attr = PerfEventAttr {
            kind: PERF_TYPE_TRACEPOINT,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config: id,
            sample_period: 0,
            sample_type: 0,
            read_format: 0,
            // Enabled from open, not inherited by children, user and kernel both counted.
            flags: 0,
            wakeup_events: 0,
            bp_type: 0,
            config1: 0,
        };
        // SAFETY: perf_event_open reads `attr` (a valid, fully initialised struct of the size
        // it declares); pid 0 / cpu -1 is "the calling thread, on any CPU"; no group, no flags.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                0 as libc::pid_t,
                -1 as libc::c_int,
                -1 as libc::c_int,
                0 as libc::c_ulong,
            )
        };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            return Err(format!(
                "perf_event_open(raw_syscalls:sys_enter) failed: {err} (needs \
                 kernel.perf_event_paranoid <= -1 or CAP_PERFMON)"
            ));
        }
        Ok(SyscallCounter { fd: fd as i32 })
    }

    #[cfg(not(target_os = "linux"))]
    fn open() -> Result<SyscallCounter, String> {
        Err("system calls are counted on Linux only".into())
    }

    fn read(&self) -> u64 {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into `v`, which we own; the fd is ours and open.
        let n = unsafe { libc::read(self.fd, (&mut v as *mut u64).cast(), 8) };
        if n == 8 { v } else { 0 }
    }
}

impl Drop for SyscallCounter {
    fn drop(&mut self) {
        // SAFETY: closes the fd this value owns, once.
        unsafe { libc::close(self.fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exactly_the_system_calls_in_the_window() {
        let mut p = Probe::new();
        if let Some(why) = p.syscall_error() {
            eprintln!("skipping: {why}");
            return;
        }
        p.start();
        let empty = p.stop();
        assert_eq!(empty.syscalls, Some(0), "an empty window");
        p.start();
        for _ in 0..25 {
            // SAFETY: getppid has no arguments and cannot fail.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        let busy = p.stop();
        assert_eq!(busy.syscalls, Some(25), "25 getppid calls");
        p.start();
        let mut x = 0u64;
        for i in 0..100_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert_eq!(p.stop().syscalls, Some(0), "pure computation ({x})");
    }

    #[test]
    fn a_blocking_wait_is_a_voluntary_context_switch() {
        let (v0, _) = thread_ctx_switches();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (v1, _) = thread_ctx_switches();
        assert!(v1 > v0);
    }
}
