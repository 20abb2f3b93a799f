//! `GET /api/v1/scripts/statistics/overview`: the seed's monitoring figures
//! (success rate, durations, concurrency, totals, template use), from the stored
//! records and the scheduler's counts.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::model::{ExecRec, ExecStatus, JobRec, JobStatus, TemplateRec};
use super::scheduler::Counts;

pub fn overview(
    jobs: &[JobRec],
    execs: &[ExecRec],
    templates: &[TemplateRec],
    now: &Counts,
) -> Value {
    let mut by_status: BTreeMap<&str, usize> =
        JobStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let mut by_language: BTreeMap<&str, usize> = BTreeMap::new();
    for j in jobs {
        *by_status.entry(j.status.as_str()).or_default() += 1;
        *by_language.entry(j.spec.language.as_str()).or_default() += 1;
    }
    let mut exec_status: BTreeMap<&str, usize> =
        ExecStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let mut by_trigger: BTreeMap<&str, usize> = BTreeMap::new();
    let mut durations: Vec<u64> = Vec::new();
    for e in execs {
        *exec_status.entry(e.status.as_str()).or_default() += 1;
        *by_trigger.entry(e.trigger.kind.as_str()).or_default() += 1;
        if e.status.is_final()
            && e.status != ExecStatus::Cancelled
            && let Some(d) = e.duration_ms()
        {
            durations.push(d);
        }
    }
    let count = |s: ExecStatus| exec_status.get(s.as_str()).copied().unwrap_or(0);
    let succeeded = count(ExecStatus::Succeeded);
    let ended = succeeded
        + count(ExecStatus::Failed)
        + count(ExecStatus::Timeout)
        + count(ExecStatus::Interrupted);
    durations.sort_unstable();
    let average = (!durations.is_empty())
        .then(|| durations.iter().sum::<u64>() as f64 / durations.len() as f64);
    let p95 = percentile(&durations, 0.95);
    let used_by: BTreeMap<u64, usize> =
        jobs.iter()
            .filter_map(|j| j.template_id)
            .fold(BTreeMap::new(), |mut m, t| {
                *m.entry(t).or_default() += 1;
                m
            });
    json!({
        "scripts": {
            "total": jobs.len(),
            "active": by_status.get("active").copied().unwrap_or(0),
            "by_status": by_status,
            "by_language": by_language,
        },
        "executions": {
            "total": execs.len(),
            "by_status": exec_status,
            "by_trigger": by_trigger,
            "success_rate": (ended > 0).then(|| succeeded as f64 / ended as f64),
            "average_duration_ms": average,
            "p95_duration_ms": p95,
            "running": now.running,
            "queued": now.queued,
            "waiting_retry": now.waiting_retry,
            "peak_concurrent": now.peak,
        },
        "templates": templates.iter().map(|t| json!({
            "template_id": t.id,
            "name": t.spec.name,
            "builtin": t.builtin,
            "usage_count": t.usage_count,
            "scripts": used_by.get(&t.id).copied().unwrap_or(0),
        })).collect::<Vec<Value>>(),
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_rank_percentile() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(super::percentile(&v, 0.95), Some(95));
        assert_eq!(super::percentile(&[7], 0.95), Some(7));
        assert_eq!(super::percentile(&[], 0.95), None);
    }
}
