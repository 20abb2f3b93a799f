//! CPU use of a worker as a share of one core, from the kernel's own counters
//! (`cpu.rs`): the share since the previous reading. The first reading has no
//! window and gives none: the worker may have been started ahead of need, so
//! its counters do not start with the run.

use std::sync::Mutex;
use std::time::Instant;
use vwed_base::sync::Locked;

use super::cpu::{clock_ticks_per_s, cpu_ticks};

/// Readings closer together than this return the previous figure: a share over
/// a few milliseconds says nothing.
const MIN_WINDOW_S: f64 = 0.5;

struct Sample {
    pid: u32,
    at: Instant,
    ticks: u64,
    percent: Option<f64>,
}

/// The CPU share of one worker, read on demand.
#[derive(Default)]
pub struct CpuMeter {
    last: Mutex<Option<Sample>>,
}

impl CpuMeter {
    /// Percent of one core (100 = one core busy) of `pid` since the previous
    /// reading; `None` on the first reading and when the process is gone.
    pub fn percent(&self, pid: u32) -> Option<f64> {
        if pid == 0 {
            return None;
        }
        let ticks = cpu_ticks(pid)?;
        let now = Instant::now();
        let mut last = self.last.locked();
        let percent = match &*last {
            Some(s) if s.pid == pid => {
                let window = now.duration_since(s.at).as_secs_f64();
                if window < MIN_WINDOW_S {
                    return s.percent;
                }
                let hz = clock_ticks_per_s().max(1) as f64;
                let used = ticks.saturating_sub(s.ticks) as f64 / hz;
                Some((used / window * 1000.0).round() / 10.0)
            }
            _ => None,
        };
        *last = Some(Sample {
            pid,
            at: now,
            ticks,
            percent,
        });
        percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_process_shows_cpu_and_a_gone_one_none() {
        let m = CpuMeter::default();
        let me = std::process::id();
        assert_eq!(m.percent(me), None, "the first reading has no window");
        let t1 = Instant::now();
        let start = cpu_ticks(me).expect("ticks");
        let hz = clock_ticks_per_s();
        // Spin until this process has used 0.6 s of CPU, however long that takes,
        // and the window is one the meter reads: the test threads running beside
        // this one count too, so 0.6 s of CPU may take less than 0.5 s.
        let mut x = 0u64;
        while cpu_ticks(me).expect("ticks") - start < hz * 6 / 10
            || t1.elapsed().as_secs_f64() < MIN_WINDOW_S * 1.2
        {
            for _ in 0..10_000 {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
        }
        std::hint::black_box(x);
        let window = t1.elapsed().as_secs_f64();
        let p = m.percent(me).expect("reading");
        let least = 0.5 / window * 100.0;
        assert!(
            p >= least,
            "{p} % < {least} % after 0.6 s of CPU in {window} s"
        );
        assert_eq!(m.percent(0), None);
        assert_eq!(CpuMeter::default().percent(u32::MAX - 1), None);
    }
}
