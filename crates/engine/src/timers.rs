//! `VWED.timer`: the supervisor keeps the clock and tells the worker when to run.
//! A run that is still going when the next is due makes that next run skipped and
//! counted, never queued behind it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use vwed_ipc::{TimerSchedule, ToWorker};

use super::TimerEntry;
use crate::worker::Answer;
use vwed_base::cron::Schedule;

pub fn spawn_timer(entry: &Arc<TimerEntry>, timeout: Duration) {
    tokio::spawn(run(Arc::downgrade(entry), entry.armed.subscribe(), timeout));
}

async fn run(
    entry: Weak<TimerEntry>,
    mut armed: tokio::sync::watch::Receiver<bool>,
    timeout: Duration,
) {
    if armed.wait_for(|a| *a).await.is_err() {
        return;
    }
    let Some(schedule) = entry.upgrade().map(|e| e.schedule.clone()) else {
        return;
    };
    match schedule {
        TimerSchedule::Interval {
            interval_ms,
            delay_ms,
            repeat,
        } => {
            note_next(&entry, delay_ms);
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            if !fire(&entry, timeout) || !repeat {
                note_next(&entry, u64::MAX);
                return;
            }
            let period = Duration::from_millis(interval_ms.max(1));
            let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
            loop {
                note_next(&entry, period.as_millis() as u64);
                ticks.tick().await;
                if !fire(&entry, timeout) {
                    return;
                }
            }
        }
        TimerSchedule::Cron { expr } => {
            let Ok(cron) = Schedule::parse(&expr) else {
                return;
            };
            loop {
                let now = chrono::Local::now();
                let Some(next) = cron.next_after(now) else {
                    return;
                };
                let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
                note_next(&entry, wait.as_millis() as u64);
                tokio::time::sleep(wait).await;
                if !fire(&entry, timeout) {
                    return;
                }
            }
        }
    }
}

/// Records when the timer fires next, `in_ms` from now (`u64::MAX`: never again).
fn note_next(entry: &Weak<TimerEntry>, in_ms: u64) {
    if let Some(e) = entry.upgrade() {
        let at = match in_ms {
            u64::MAX => 0,
            ms => vwed_base::clock::unix_ms().saturating_add(ms),
        };
        e.next_run_ms.store(at, Ordering::Relaxed);
    }
}

/// Starts one run unless the previous one is still going. False once the timer
/// is gone (cancelled, script stopped).
fn fire(entry: &Weak<TimerEntry>, timeout: Duration) -> bool {
    let Some(e) = entry.upgrade() else {
        return false;
    };
    if e.running.swap(true, Ordering::AcqRel) {
        e.skipped.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    let conn = e.target.conn.clone();
    if !conn.is_alive() {
        return false;
    }
    let req = conn.next_req();
    let msg = ToWorker::Timer {
        req,
        handler: e.target.handler,
    };
    let weak = entry.clone();
    tokio::spawn(async move {
        let t0 = std::time::Instant::now();
        let ok = matches!(
            conn.request(req, &msg, timeout).await,
            Ok(Answer::Done(Ok(())))
        );
        if let Some(e) = weak.upgrade() {
            e.stats.record(ok, t0.elapsed().as_micros() as u64);
            e.running.store(false, Ordering::Release);
        }
    });
    true
}
