//! The benchmark's clock: the CPU's time-stamp counter, read in user space.
//!
//! On x86_64 `rdtsc` is one instruction and never enters the kernel (on this project's VMs the
//! TSC is invariant and not trapped: `constant_tsc`, `nonstop_tsc`, `tsc_known_freq`). It is
//! converted to nanoseconds with a rate calibrated against the monotonic clock once, before any
//! timed window. `Instant::now` would also stay out of the kernel while the clocksource is the
//! TSC (a vDSO call), but falls back to a real system call on other clocksources; the syscall
//! counter would catch that, `rdtsc` avoids it. Other architectures use `Instant`.

use std::time::{Duration, Instant};

/// A calibrated tick source.
#[derive(Copy, Clone, Debug)]
pub struct Clock {
    /// Nanoseconds per tick, as a 32.32 fixed-point number.
    ns_per_tick_q32: u64,
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    origin: Instant,
}

impl Clock {
    /// Calibrates the tick rate against the monotonic clock over `window` (20 ms is enough for
    /// 0.1 % on an invariant TSC).
    pub fn calibrate(window: Duration) -> Clock {
        let origin = Instant::now();
        let probe = Clock {
            ns_per_tick_q32: 1 << 32,
            origin,
        };
        let (t0, i0) = (probe.now(), Instant::now());
        while i0.elapsed() < window {
            std::hint::spin_loop();
        }
        let (t1, ns) = (probe.now(), i0.elapsed().as_nanos() as u64);
        let ticks = t1.saturating_sub(t0).max(1);
        Clock {
            ns_per_tick_q32: ((u128::from(ns) << 32) / u128::from(ticks)) as u64,
            origin,
        }
    }

    /// The current tick count.
    #[inline(always)]
    pub fn now(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `rdtsc` and `lfence` read a counter and order loads; no memory effects.
            // The fences keep the events being timed from moving across the read.
            unsafe {
                std::arch::x86_64::_mm_lfence();
                let t = std::arch::x86_64::_rdtsc();
                std::arch::x86_64::_mm_lfence();
                t
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self.origin.elapsed().as_nanos() as u64
        }
    }

    /// Nanoseconds in `ticks`.
    #[inline(always)]
    pub fn ns(&self, ticks: u64) -> u64 {
        ((u128::from(ticks) * u128::from(self.ns_per_tick_q32)) >> 32) as u64
    }

    /// Ticks per second (for reports).
    pub fn ticks_per_s(&self) -> f64 {
        (1u64 << 32) as f64 * 1e9 / self.ns_per_tick_q32 as f64
    }

    /// Cost of reading the clock twice back to back, in ns (median of `n` pairs): the floor
    /// under every per-event sample.
    pub fn overhead_ns(&self, n: usize) -> u64 {
        let mut h = crate::histogram::Histogram::new();
        for _ in 0..n.max(1) {
            let a = self.now();
            let b = self.now();
            h.record(self.ns(b.wrapping_sub(a)));
        }
        h.percentile(0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_wall_time() {
        let c = Clock::calibrate(Duration::from_millis(20));
        let (t0, i0) = (c.now(), Instant::now());
        std::thread::sleep(Duration::from_millis(30));
        let (t1, wall) = (c.now(), i0.elapsed().as_nanos() as f64);
        let measured = c.ns(t1 - t0) as f64;
        assert!(
            (measured / wall - 1.0).abs() < 0.05,
            "clock {measured} ns vs monotonic {wall} ns"
        );
        assert!(c.overhead_ns(1000) < 10_000);
    }
}
