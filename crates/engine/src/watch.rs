//! Watching one running worker: its heartbeat, a handler stuck past its timeout
//! (busy, then hung after the grace period), and the CPU it uses. What goes over a
//! limit is ended through [`Engine::end_worker`]; the exit is then a failure that
//! the script's restart policy handles.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use vwed_base::sync::Locked;

use super::Engine;
use super::instance::{Instance, State};
use super::supervise::EndReason;
use crate::worker::WorkerConn;
use crate::worker::priority::{self, Change, Class, Governor, Sample};
use vwed_ipc::Level;

/// How often a running worker is asked whether its loop is free.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How often its CPU time is sampled for its limit.
const TICK: Duration = Duration::from_secs(1);
/// How often its CPU time is sampled for its priority: a hog must be caught in
/// its first burst.
const PRIORITY_TICK: Duration = Duration::from_millis(100);
/// Shortest wait for a busy worker's answer to a ping.
const MIN_PROBE: Duration = Duration::from_millis(200);

/// Runs while the instance runs.
pub(super) async fn watch(engine: Weak<Engine>, inst: Arc<Instance>) {
    let Some(conn) = inst.conn().cloned() else {
        return;
    };
    let (grace, limit, window) = match engine.upgrade() {
        Some(e) => {
            let s = &e.cfg.supervision;
            (
                Duration::from_millis(s.busy_grace_ms),
                s.cpu_limit_percent,
                Duration::from_secs(s.cpu_window_s),
            )
        }
        None => return,
    };
    let mut cpu = CpuWindow::new(window);
    let mut next_ping = Instant::now() + HEARTBEAT;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = conn.overdue.notified() => {}
        }
        if inst.state() != State::Running {
            return;
        }
        if conn.busy().is_some() {
            if let Some(reason) = still_busy(&conn, grace).await {
                end(&engine, &inst, reason);
                return;
            }
            next_ping = Instant::now() + HEARTBEAT;
        }
        if limit > 0
            && let Some(percent) = cpu.sample(inst.pid(), Instant::now())
            && percent > u64::from(limit)
        {
            let window_s = window.as_secs();
            end(
                &engine,
                &inst,
                EndReason::Cpu {
                    percent,
                    window_s,
                    limit,
                },
            );
            return;
        }
        if Instant::now() >= next_ping {
            // A stuck handler does not answer; its heartbeat shows since when.
            heartbeat(&conn);
            next_ping = Instant::now() + HEARTBEAT;
        }
    }
}

/// Every [`PRIORITY_TICK`], one pass over the running workers for their CPU
/// priority: one wakeup for all of them (a timer per worker cost more than the
/// sampling itself).
pub fn spawn_priority(engine: &Arc<Engine>) {
    let above = engine.cfg.sandbox.idle_above_percent;
    if above == 0 {
        return;
    }
    let weak = Arc::downgrade(engine);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PRIORITY_TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(engine) = weak.upgrade() else {
                return;
            };
            for inst in engine.instances() {
                if inst.state() == State::Running
                    && let Some(conn) = inst.conn()
                {
                    govern(&inst, conn, above);
                }
            }
        }
    });
}

/// One sample for the worker's CPU priority. Once its priority cannot be
/// changed, the worker stays as it is and is no longer sampled.
fn govern(inst: &Instance, conn: &WorkerConn, above: u32) {
    let mut slot = inst.governor.locked();
    let g = slot.get_or_insert_with(|| Governor::new(above));
    if g.given_up() {
        return;
    }
    let pid = inst.pid();
    let Some(ticks) = crate::worker::cpu_ticks(pid) else {
        return;
    };
    let now = Sample {
        at: Instant::now(),
        cpu_ms: ticks * 1000 / crate::worker::clock_ticks_per_s().max(1),
        answered: conn.answered(),
    };
    let (class, level, said) = match g.sample(now) {
        None => return,
        Some(Change::ToIdle { percent }) => (
            Class::Idle,
            Level::Warning,
            format!(
                "worker used {percent}% of a core: idle priority until below {above}% for {calm} s (CPU 占用过高, 降为空闲优先级)",
                calm = priority::CALM.as_secs()
            ),
        ),
        Some(Change::ToNormal) => (
            Class::Normal,
            Level::Info,
            "worker back at normal priority (恢复正常优先级)".to_string(),
        ),
    };
    match priority::set_class(pid, class) {
        Ok(_) => inst.note(level, said),
        Err(e) => {
            g.refused();
            let stays = g.class().as_str();
            inst.note(
                Level::Warning,
                format!("worker priority stays {stays}: {e}"),
            );
        }
    }
}

fn end(engine: &Weak<Engine>, inst: &Instance, reason: EndReason) {
    if let Some(e) = engine.upgrade() {
        e.end_worker(inst, reason);
    }
}

fn heartbeat(conn: &Arc<WorkerConn>) {
    let conn = conn.clone();
    tokio::spawn(async move {
        conn.ping(HEARTBEAT).await;
    });
}

/// A worker that let a call time out gets until the grace period after that
/// timeout to take a ping (its loop is free again). `Some` when it did not; with
/// no grace period (0) a busy worker is only watched, never ended.
async fn still_busy(conn: &WorkerConn, grace: Duration) -> Option<EndReason> {
    let busy = conn.busy()?;
    let wait = if grace.is_zero() {
        HEARTBEAT
    } else {
        let ends = busy.since_ms + grace.as_millis() as u64;
        // Even a worker seen late gets a moment to answer.
        Duration::from_millis(ends.saturating_sub(vwed_base::clock::unix_ms())).max(MIN_PROBE)
    };
    if conn.ping(wait).await {
        conn.clear_busy(busy);
        return None;
    }
    (!grace.is_zero() && conn.busy() == Some(busy)).then_some(EndReason::Hung {
        work: busy.work,
        timeout_ms: busy.timeout_ms,
        grace_ms: grace.as_millis() as u64,
    })
}

/// CPU time of one process over a sliding window.
struct CpuWindow {
    window: Duration,
    samples: VecDeque<(Instant, u64)>,
}

impl CpuWindow {
    fn new(window: Duration) -> CpuWindow {
        CpuWindow {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Adds a sample; once a whole window is covered, the percent of one core
    /// used over it.
    fn sample(&mut self, pid: u32, now: Instant) -> Option<u64> {
        let ticks = crate::worker::cpu_ticks(pid)?;
        self.add(now, ticks, crate::worker::clock_ticks_per_s())
    }

    fn add(&mut self, now: Instant, ticks: u64, per_s: u64) -> Option<u64> {
        self.samples.push_back((now, ticks));
        // Keep one sample at least a window old: the start of the measurement.
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= self.window {
            self.samples.pop_front();
        }
        let &(t0, c0) = self.samples.front()?;
        let span = now.duration_since(t0);
        if span < self.window || per_s == 0 {
            return None;
        }
        let used_ms = ticks.saturating_sub(c0) * 1000 / per_s;
        Some(used_ms * 100 / (span.as_millis() as u64).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_use_is_judged_only_over_a_whole_window() {
        let t0 = Instant::now();
        let mut w = CpuWindow::new(Duration::from_secs(10));
        let s = |n: u64| t0 + Duration::from_secs(n);
        // 100 ticks per second: a busy process gains 100 per second.
        assert_eq!(w.add(s(0), 0, 100), None);
        assert_eq!(w.add(s(5), 500, 100), None);
        assert_eq!(w.add(s(10), 1000, 100), Some(100));
        // Half a core from then on: the window slides past the busy start.
        assert_eq!(w.add(s(15), 1250, 100), Some(75));
        assert_eq!(w.add(s(20), 1500, 100), Some(50));
        assert!(w.samples.len() <= 3, "{}", w.samples.len());
    }
}
