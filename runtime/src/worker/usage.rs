//! CPU use of a worker, from the kernel's own counters (`/proc/<pid>/stat`:
//! user + system time in clock ticks). A reading is the share of one core used
//! since the previous reading; the first one averages over the process's life.

use std::sync::Mutex;
use std::time::Instant;

/// Readings closer together than this return the previous figure: a share over
/// a few milliseconds says nothing.
const MIN_WINDOW_S: f64 = 0.5;

/// User + system CPU time of a process, in clock ticks, and its start time in
/// ticks after boot.
fn cpu_ticks(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so field n is f[n - 3].
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let start: u64 = f.get(19)?.parse().ok()?;
    Some((utime + stime, start))
}

fn ticks_per_s() -> f64 {
    // SAFETY: sysconf reads a constant of the running system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn boot_uptime_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/uptime").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

struct Sample {
    pid: u32,
    at: Instant,
    ticks: u64,
    percent: f64,
}

/// The CPU share of one worker, read on demand.
#[derive(Default)]
pub struct CpuMeter {
    last: Mutex<Option<Sample>>,
}

impl CpuMeter {
    /// Percent of one core (100 = one core busy); `None` when the process is gone.
    pub fn percent(&self, pid: u32) -> Option<f64> {
        if pid == 0 {
            return None;
        }
        let (ticks, start) = cpu_ticks(pid)?;
        let now = Instant::now();
        let hz = ticks_per_s();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let percent = match &*last {
            Some(s) if s.pid == pid => {
                let dt = now.duration_since(s.at).as_secs_f64();
                if dt < MIN_WINDOW_S {
                    return Some(s.percent);
                }
                ticks.saturating_sub(s.ticks) as f64 / hz / dt * 100.0
            }
            _ => {
                let age = boot_uptime_s()? - start as f64 / hz;
                if age <= 0.0 {
                    0.0
                } else {
                    ticks as f64 / hz / age * 100.0
                }
            }
        };
        let percent = (percent * 10.0).round() / 10.0;
        *last = Some(Sample {
            pid,
            at: now,
            ticks,
            percent,
        });
        Some(percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_process_shows_cpu_and_a_gone_one_none() {
        let m = CpuMeter::default();
        let me = std::process::id();
        assert!(m.percent(me).is_some());
        let t0 = Instant::now();
        let mut x = 0u64;
        while t0.elapsed().as_secs_f64() < 0.6 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let p = m.percent(me).expect("reading");
        assert!(p > 20.0, "a spinning thread reads as busy: {p}");
        assert_eq!(m.percent(0), None);
        assert_eq!(CpuMeter::default().percent(u32::MAX - 1), None);
    }
}
