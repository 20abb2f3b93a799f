//! Idle priority for a worker that keeps a core busy in long stretches. At nice
//! 10 such a worker still runs out its time slice before a woken supervisor
//! thread or another script's worker gets the core (the kernel's EEVDF scheduler
//! protects a running task's slice), so every neighbour waits milliseconds for
//! it. A task in `SCHED_IDLE` gives way to any other task the moment it wakes.
//! A worker that is busy answering many short calls is left alone: it waits for
//! the next call between them, so it never holds a core long, and at idle
//! priority it would lose throughput to every other process. Measured in
//! BENCHMARKS.md, "Runaway scripts next to a healthy one".

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

/// The span CPU use is judged over: short, so that a hog is caught within its
/// first burst, long enough that one request's work is not a burst.
pub const WINDOW: Duration = Duration::from_millis(250);
/// Judged only once this much has been seen, so that a start is not a burst.
const MIN_SPAN: Duration = Duration::from_millis(100);
/// How long a demoted worker must stay below the threshold to get its priority back.
pub const CALM: Duration = Duration::from_secs(5);
/// CPU per answered call from which a busy worker counts as running in long
/// stretches (a memory bomb: ~60 ms; a route of a busy script: tens of µs).
const LONG_CALL_MS: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `SCHED_OTHER` at the configured nice value.
    Normal,
    Idle,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Normal => "normal",
            Class::Idle => "idle",
        }
    }
}

/// Puts every thread of `pid` in `class`; threads created later inherit it from
/// the thread that creates them. A thread that ends meanwhile is skipped; a
/// refusal (no permission to raise a priority again) is an error.
pub fn set_class(pid: u32, class: Class) -> io::Result<usize> {
    let policy = match class {
        Class::Normal => libc::SCHED_OTHER,
        Class::Idle => libc::SCHED_IDLE,
    };
    let param = libc::sched_param { sched_priority: 0 };
    let mut set = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // SAFETY: sched_setscheduler only reads `param`; `tid` names a thread of
        // our own child (the nice value stays as it is).
        if unsafe { libc::sched_setscheduler(tid, policy, &param) } == 0 {
            set += 1;
            continue;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(set)
}

/// What the governor decided on a sample.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Used `percent` of one core over the window, in long stretches.
    ToIdle { percent: u64 },
    /// Below the threshold for [`CALM`].
    ToNormal,
}

/// CPU time (ms) and answered calls of a worker, at one moment, both counted
/// since it started.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub cpu_ms: u64,
    pub answered: u64,
}

/// Decides a worker's class from samples of its CPU time.
pub struct Governor {
    above_percent: u64,
    samples: VecDeque<Sample>,
    class: Class,
    calm_since: Option<Instant>,
    given_up: bool,
}

impl Governor {
    /// A worker that uses more than `above_percent` of one core goes idle.
    pub fn new(above_percent: u32) -> Governor {
        Governor {
            above_percent: u64::from(above_percent),
            samples: VecDeque::new(),
            class: Class::Normal,
            calm_since: None,
            given_up: false,
        }
    }

    /// The change just decided could not be made: the class stays what it
    /// was, and there are no more decisions.
    pub fn refused(&mut self) {
        self.given_up = true;
        self.class = match self.class {
            Class::Idle => Class::Normal,
            Class::Normal => Class::Idle,
        };
    }

    pub fn given_up(&self) -> bool {
        self.given_up
    }

    /// The class the worker is in.
    pub fn class(&self) -> Class {
        self.class
    }

    /// Takes a sample; says when the worker's class is to change.
    pub fn sample(&mut self, now: Sample) -> Option<Change> {
        let hogging = self.hogging(now)?;
        match (self.class, hogging) {
            (Class::Normal, Some(percent)) => {
                self.class = Class::Idle;
                self.calm_since = None;
                Some(Change::ToIdle { percent })
            }
            (Class::Idle, Some(_)) => {
                self.calm_since = None;
                None
            }
            (Class::Idle, None) => {
                let since = *self.calm_since.get_or_insert(now.at);
                (now.at.duration_since(since) >= CALM).then(|| {
                    self.class = Class::Normal;
                    self.calm_since = None;
                    Change::ToNormal
                })
            }
            (Class::Normal, None) => None,
        }
    }

    /// Over the last [`WINDOW`], once [`MIN_SPAN`] is covered: the percent of
    /// one core used, if above the threshold and in stretches of
    /// [`LONG_CALL_MS`] or more per answered call.
    fn hogging(&mut self, now: Sample) -> Option<Option<u64>> {
        self.samples.push_back(now);
        while self.samples.len() > 2 && now.at.duration_since(self.samples[1].at) >= WINDOW {
            self.samples.pop_front();
        }
        let first = *self.samples.front()?;
        let span = now.at.duration_since(first.at);
        if span < MIN_SPAN {
            return None;
        }
        let span_ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
        let used_ms = now.cpu_ms.saturating_sub(first.cpu_ms);
        let percent = used_ms * 100 / span_ms.max(1);
        let calls = now.answered.saturating_sub(first.answered);
        let long = used_ms >= calls.saturating_mul(LONG_CALL_MS);
        Some((percent > self.above_percent && long).then_some(percent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample at `ms` after `t0` of a worker that answered nothing.
    fn quiet(t0: Instant, ms: u64, cpu_ms: u64) -> Sample {
        Sample {
            at: t0 + Duration::from_millis(ms),
            cpu_ms,
            answered: 0,
        }
    }

    #[test]
    fn a_burst_goes_idle_and_comes_back_after_a_calm_spell() {
        let t0 = Instant::now();
        let mut g = Governor::new(25);
        let mut early = Governor::new(25);
        early.sample(quiet(t0, 0, 0));
        assert_eq!(early.sample(quiet(t0, 50, 50)), None, "too short to judge");
        assert_eq!(g.sample(quiet(t0, 0, 0)), None);
        assert_eq!(g.sample(quiet(t0, 100, 5)), None, "5 % of a core");
        assert_eq!(g.sample(quiet(t0, 200, 10)), None);
        // A memory bomb's bursts: 23 % over 300 ms, then 45 %.
        assert_eq!(g.sample(quiet(t0, 300, 70)), None);
        assert_eq!(
            g.sample(quiet(t0, 400, 140)),
            Some(Change::ToIdle { percent: 45 })
        );
        assert_eq!(g.class(), Class::Idle);
        // Quiet from now on: the calm spell begins once the window has slid past
        // the burst (at 800 ms), and lasts CALM.
        let back = (500..20_000)
            .step_by(100)
            .find_map(|ms| g.sample(quiet(t0, ms, 230)).map(|c| (ms, c)));
        assert_eq!(back, Some((5_800, Change::ToNormal)));
        assert_eq!(g.class(), Class::Normal);
    }

    #[test]
    fn a_busy_spell_in_the_calm_starts_it_over() {
        let t0 = Instant::now();
        let mut g = Governor::new(25);
        g.sample(quiet(t0, 0, 0));
        assert!(matches!(
            g.sample(quiet(t0, 300, 300)),
            Some(Change::ToIdle { .. })
        ));
        let mut cpu = 300;
        for ms in (400..4_000).step_by(100) {
            assert_eq!(g.sample(quiet(t0, ms, cpu)), None);
        }
        // Busy again for a moment: a fresh calm spell is needed.
        for ms in (4_000..4_400).step_by(100) {
            cpu += 90;
            assert_eq!(g.sample(quiet(t0, ms, cpu)), None);
        }
        for ms in (4_400..9_000).step_by(100) {
            assert_eq!(g.sample(quiet(t0, ms, cpu)), None, "at {ms} ms");
        }
        assert_eq!(g.class(), Class::Idle);
    }

    #[test]
    fn a_worker_busy_with_many_short_calls_keeps_its_priority() {
        let t0 = Instant::now();
        let mut g = Governor::new(25);
        // A whole core, 20,000 calls a second: 50 µs each.
        for ms in (0..3_000).step_by(100) {
            let s = Sample {
                answered: ms * 20,
                ..quiet(t0, ms, ms)
            };
            assert_eq!(g.sample(s), None, "at {ms} ms");
        }
        // The same CPU with one call answered in 300 ms: long stretches.
        let long = Sample {
            answered: 2_900 * 20 + 1,
            ..quiet(t0, 3_200, 3_200)
        };
        assert!(matches!(g.sample(long), Some(Change::ToIdle { .. })));
    }

    #[test]
    fn a_refused_change_leaves_the_class_and_ends_the_decisions() {
        let t0 = Instant::now();
        let mut g = Governor::new(25);
        g.sample(quiet(t0, 0, 0));
        assert!(matches!(
            g.sample(quiet(t0, 300, 300)),
            Some(Change::ToIdle { .. })
        ));
        g.refused();
        assert_eq!(g.class(), Class::Normal);
        assert!(g.given_up());
    }

    #[test]
    fn a_child_goes_idle() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        let pid = child.id();
        assert_eq!(set_class(pid, Class::Idle).expect("to idle"), 1);
        // SAFETY: reads the policy of our own child.
        let policy = unsafe { libc::sched_getscheduler(pid as i32) };
        assert_eq!(policy, libc::SCHED_IDLE);
        let _ = child.kill();
        let _ = child.wait();
        assert!(set_class(u32::MAX, Class::Idle).is_err(), "no such process");
    }
}
