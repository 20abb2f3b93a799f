//! The jobs' tables in the runtime's redb. Each write is one transaction, so an
//! answered request (a 202 with an execution id, a saved version) is on disk.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::model::{ExecDetail, ExecRec, JobRec, TemplateRec, VersionRec};
use vwed_db::{self as db, Db, DbError};

/// job id → [`JobRec`].
const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
/// (job id, version) → [`VersionRec`].
const VERSIONS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("job_versions");
/// execution id → [`ExecRec`].
const EXECS: TableDefinition<&str, &[u8]> = TableDefinition::new("job_execs");
/// execution seq → execution id: every execution, oldest first.
const EXEC_ORDER: TableDefinition<u64, &str> = TableDefinition::new("job_exec_order");
/// (job id, execution seq) → execution id.
const EXEC_BY_JOB: TableDefinition<(u64, u64), &str> = TableDefinition::new("job_exec_by_job");
/// execution id → [`ExecDetail`].
const EXEC_DETAIL: TableDefinition<&str, &[u8]> = TableDefinition::new("job_exec_detail");
/// template id → [`TemplateRec`].
const TEMPLATES: TableDefinition<u64, &[u8]> = TableDefinition::new("job_templates");
/// job id → the last cron time handled (unix ms), for runs missed while off.
const CRON_MARKS: TableDefinition<u64, u64> = TableDefinition::new("job_cron_marks");

#[derive(Debug, thiserror::Error)]
pub enum JobStoreError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("stored job record is corrupt: {0}")]
    Json(#[from] serde_json::Error),
}

vwed_db::from_redb_errors!(JobStoreError);

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, JobStoreError> {
    Ok(serde_json::to_vec(v)?)
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, JobStoreError> {
    Ok(serde_json::from_slice(b)?)
}

/// `8-4-4-4-12` hex, as the seed's `"uuid-string"` execution ids.
fn new_execution_id() -> String {
    let b = rand::random::<u128>().to_be_bytes();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Which executions a listing wants, newest first.
#[derive(Debug, Default, Clone)]
pub struct ExecFilter {
    pub job_id: Option<u64>,
    pub status: Option<super::model::ExecStatus>,
    pub trigger: Option<super::model::TriggerKind>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
}

impl ExecFilter {
    fn admits(&self, e: &ExecRec) -> bool {
        self.job_id.is_none_or(|j| e.job_id == j)
            && self.status.is_none_or(|s| e.status == s)
            && self.trigger.is_none_or(|t| e.trigger.kind == t)
            && self.since_ms.is_none_or(|t| e.queued_ms >= t)
            && self.until_ms.is_none_or(|t| e.queued_ms <= t)
    }
}

#[derive(Clone)]
pub struct JobStore {
    db: Db,
}

impl JobStore {
    /// Creates the tables up front, so that readers never meet a missing one.
    pub fn open(db: Db) -> Result<JobStore, JobStoreError> {
        let tx = db.begin_write()?;
        tx.open_table(JOBS)?;
        tx.open_table(VERSIONS)?;
        tx.open_table(EXECS)?;
        tx.open_table(EXEC_ORDER)?;
        tx.open_table(EXEC_BY_JOB)?;
        tx.open_table(EXEC_DETAIL)?;
        tx.open_table(TEMPLATES)?;
        tx.open_table(CRON_MARKS)?;
        tx.commit()?;
        Ok(JobStore { db })
    }

    // ------------------------------------------------------------------ jobs

    /// Stores a new job (its id assigned here) and its first version.
    pub fn create_job(&self, mut rec: JobRec, first: VersionRec) -> Result<JobRec, JobStoreError> {
        let tx = self.db.begin_write()?;
        rec.id = db::next_id(&tx, "jobs")?;
        tx.open_table(JOBS)?.insert(rec.id, enc(&rec)?.as_slice())?;
        tx.open_table(VERSIONS)?
            .insert((rec.id, first.version), enc(&first)?.as_slice())?;
        tx.commit()?;
        Ok(rec)
    }

    /// Replaces a job's record, and adds `version` when the definition changed;
    /// keeps at most `keep_versions` versions.
    pub fn save_job(
        &self,
        rec: &JobRec,
        version: Option<&VersionRec>,
        keep_versions: usize,
    ) -> Result<(), JobStoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(JOBS)?.insert(rec.id, enc(rec)?.as_slice())?;
        if let Some(v) = version {
            let mut t = tx.open_table(VERSIONS)?;
            t.insert((rec.id, v.version), enc(v)?.as_slice())?;
            let numbers: Vec<u64> = t
                .range((rec.id, 0)..=(rec.id, u64::MAX))?
                .map(|r| r.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()?;
            let over = numbers.len().saturating_sub(keep_versions.max(1));
            for n in numbers.into_iter().take(over) {
                t.remove((rec.id, n))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn job(&self, id: u64) -> Result<Option<JobRec>, JobStoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(JOBS)?;
        t.get(id)?.map(|v| dec(v.value())).transpose()
    }

    pub fn jobs(&self) -> Result<Vec<JobRec>, JobStoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(JOBS)?;
        t.iter()?.map(|r| dec(r?.1.value())).collect()
    }

    pub fn job_count(&self) -> Result<u64, JobStoreError> {
        let rx = self.db.begin_read()?;
        Ok(rx.open_table(JOBS)?.len()?)
    }

    /// Removes a job, its versions and its cron mark; its executions stay in the
    /// history.
    pub fn delete_job(&self, id: u64) -> Result<bool, JobStoreError> {
        let tx = self.db.begin_write()?;
        let existed = tx.open_table(JOBS)?.remove(id)?.is_some();
        {
            let mut v = tx.open_table(VERSIONS)?;
            let keys: Vec<(u64, u64)> = v
                .range((id, 0)..=(id, u64::MAX))?
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()?;
            for k in keys {
                v.remove(k)?;
            }
        }
        tx.open_table(CRON_MARKS)?.remove(id)?;
        tx.commit()?;
        Ok(existed)
    }

    pub fn version(&self, job: u64, version: u64) -> Result<Option<VersionRec>, JobStoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(VERSIONS)?;
        t.get((job, version))?.map(|v| dec(v.value())).transpose()
    }

    pub fn versions(&self, job: u64) -> Result<Vec<VersionRec>, JobStoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(VERSIONS)?;
        t.range((job, 0)..=(job, u64::MAX))?
            .map(|r| dec(r?.1.value()))
            .collect()
    }

    // ------------------------------------------------------------ executions

    /// Stores a new execution: its seq and id are assigned here. `cron_mark`
    /// records, in the same transaction, the cron time this execution handles.
    pub fn insert_exec(
        &self,
        mut rec: ExecRec,
        cron_mark: Option<(u64, u64)>,
        keep: usize,
    ) -> Result<ExecRec, JobStoreError> {
        let tx = self.db.begin_write()?;
        rec.seq = db::next_id(&tx, "job_execs")?;
        rec.id = new_execution_id();
        tx.open_table(EXECS)?
            .insert(rec.id.as_str(), enc(&rec)?.as_slice())?;
        tx.open_table(EXEC_ORDER)?
            .insert(rec.seq, rec.id.as_str())?;
        tx.open_table(EXEC_BY_JOB)?
            .insert((rec.job_id, rec.seq), rec.id.as_str())?;
        if let Some((job, ms)) = cron_mark {
            tx.open_table(CRON_MARKS)?.insert(job, ms)?;
        }
        prune_execs(&tx, keep)?;
        tx.commit()?;
        Ok(rec)
    }

    pub fn put_exec(
        &self,
        rec: &ExecRec,
        detail: Option<&ExecDetail>,
    ) -> Result<(), JobStoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(EXECS)?
            .insert(rec.id.as_str(), enc(rec)?.as_slice())?;
        if let Some(d) = detail {
            tx.open_table(EXEC_DETAIL)?
                .insert(rec.id.as_str(), enc(d)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn exec(&self, id: &str) -> Result<Option<ExecRec>, JobStoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(EXECS)?;
        t.get(id)?.map(|v| dec(v.value())).transpose()
    }

    pub fn detail(&self, id: &str) -> Result<Option<ExecDetail>, JobStoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(EXEC_DETAIL)?;
        t.get(id)?.map(|v| dec(v.value())).transpose()
    }

    /// Executions that pass `filter`, newest first: `(page, total matching)`.
    pub fn execs(
        &self,
        filter: &ExecFilter,
        skip: usize,
        limit: usize,
    ) -> Result<(Vec<ExecRec>, usize), JobStoreError> {
        let rx = self.db.begin_read()?;
        let execs = rx.open_table(EXECS)?;
        let ids: Vec<String> = match filter.job_id {
            Some(job) => {
                let t = rx.open_table(EXEC_BY_JOB)?;
                t.range((job, 0)..=(job, u64::MAX))?
                    .rev()
                    .map(|r| r.map(|(_, v)| v.value().to_string()))
                    .collect::<Result<_, _>>()?
            }
            None => {
                let t = rx.open_table(EXEC_ORDER)?;
                t.iter()?
                    .rev()
                    .map(|r| r.map(|(_, v)| v.value().to_string()))
                    .collect::<Result<_, _>>()?
            }
        };
        let mut page = Vec::new();
        let mut total = 0;
        for id in ids {
            let Some(v) = execs.get(id.as_str())? else {
                continue;
            };
            let e: ExecRec = dec(v.value())?;
            if !filter.admits(&e) {
                continue;
            }
            if total >= skip && page.len() < limit {
                page.push(e);
            }
            total += 1;
        }
        Ok((page, total))
    }

    /// Every execution, oldest first (statistics, recovery).
    pub fn all_execs(&self) -> Result<Vec<ExecRec>, JobStoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(EXECS)?;
        let mut v: Vec<ExecRec> = t
            .iter()?
            .map(|r| dec(r?.1.value()))
            .collect::<Result<_, _>>()?;
        v.sort_by_key(|e| e.seq);
        Ok(v)
    }

    // ------------------------------------------------------------- templates

    /// Stores a template; `id` 0 gets the next id.
    pub fn put_template(&self, mut rec: TemplateRec) -> Result<TemplateRec, JobStoreError> {
        let tx = self.db.begin_write()?;
        if rec.id == 0 {
            rec.id = db::next_id(&tx, "job_templates")?;
        }
        tx.open_table(TEMPLATES)?
            .insert(rec.id, enc(&rec)?.as_slice())?;
        tx.commit()?;
        Ok(rec)
    }

    pub fn template(&self, id: u64) -> Result<Option<TemplateRec>, JobStoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(TEMPLATES)?;
        t.get(id)?.map(|v| dec(v.value())).transpose()
    }

    pub fn templates(&self) -> Result<Vec<TemplateRec>, JobStoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(TEMPLATES)?;
        t.iter()?.map(|r| dec(r?.1.value())).collect()
    }

    pub fn delete_template(&self, id: u64) -> Result<bool, JobStoreError> {
        let tx = self.db.begin_write()?;
        let existed = tx.open_table(TEMPLATES)?.remove(id)?.is_some();
        tx.commit()?;
        Ok(existed)
    }

    /// Counts one use of a template and stores the job made from it, together.
    pub fn create_job_from_template(
        &self,
        template: u64,
        rec: JobRec,
        first: VersionRec,
    ) -> Result<JobRec, JobStoreError> {
        let tx = self.db.begin_write()?;
        let mut rec = rec;
        rec.id = db::next_id(&tx, "jobs")?;
        {
            let mut t = tx.open_table(TEMPLATES)?;
            let found: Option<TemplateRec> =
                t.get(template)?.map(|v| dec(v.value())).transpose()?;
            if let Some(mut tpl) = found {
                tpl.usage_count += 1;
                t.insert(template, enc(&tpl)?.as_slice())?;
            }
        }
        tx.open_table(JOBS)?.insert(rec.id, enc(&rec)?.as_slice())?;
        tx.open_table(VERSIONS)?
            .insert((rec.id, first.version), enc(&first)?.as_slice())?;
        tx.commit()?;
        Ok(rec)
    }

    // ------------------------------------------------------------ cron marks

    pub fn cron_mark(&self, job: u64) -> Result<Option<u64>, JobStoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(CRON_MARKS)?;
        Ok(t.get(job)?.map(|v| v.value()))
    }

    pub fn set_cron_mark(&self, job: u64, ms: u64) -> Result<(), JobStoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(CRON_MARKS)?.insert(job, ms)?;
        tx.commit()?;
        Ok(())
    }
}

/// Keeps the newest `keep` executions: the oldest finished ones go first, with
/// their details and index entries; unfinished ones are never removed.
fn prune_execs(tx: &redb::WriteTransaction, keep: usize) -> Result<(), JobStoreError> {
    let mut order = tx.open_table(EXEC_ORDER)?;
    let over = (order.len()? as usize).saturating_sub(keep.max(1));
    if over == 0 {
        return Ok(());
    }
    let mut execs = tx.open_table(EXECS)?;
    let mut by_job = tx.open_table(EXEC_BY_JOB)?;
    let mut detail = tx.open_table(EXEC_DETAIL)?;
    let oldest: Vec<(u64, String)> = order
        .iter()?
        .take(over.saturating_mul(2))
        .map(|r| r.map(|(k, v)| (k.value(), v.value().to_string())))
        .collect::<Result<_, _>>()?;
    let mut removed = 0;
    for (seq, id) in oldest {
        if removed == over {
            break;
        }
        let rec: Option<ExecRec> = execs
            .get(id.as_str())?
            .map(|v| dec(v.value()))
            .transpose()?;
        if rec.as_ref().is_some_and(|r| !r.status.is_final()) {
            continue;
        }
        order.remove(seq)?;
        execs.remove(id.as_str())?;
        detail.remove(id.as_str())?;
        if let Some(r) = rec {
            by_job.remove((r.job_id, seq))?;
        }
        removed += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{TemplateRec, dec, enc, new_execution_id};

    #[test]
    fn execution_ids_look_like_uuids() {
        let id = new_execution_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert_ne!(id, new_execution_id());
    }

    /// A template stored before its spec became a part of the record (the spec's
    /// fields at the top level) reads back, and is written again byte for byte.
    #[test]
    fn a_template_record_keeps_its_stored_layout() {
        let stored = concat!(
            r#"{"id":7,"name":"清理","description":"d","category":"maintenance","#,
            r#""language":"bash","content":"echo hi","#,
            r#""parameters":[{"name":"dir","type":"string","required":true,"description":""}],"#,
            r#""triggers":{"events":[]},"timeout":30.0,"builtin":false,"usage_count":3,"#,
            r#""created_by":"admin","created_at":"2025-01-02 03:04:05"}"#
        );
        let rec: TemplateRec = dec(stored.as_bytes()).expect("an old record reads");
        assert_eq!(rec.id, 7);
        assert_eq!(rec.spec.name, "清理");
        assert_eq!(rec.spec.parameters.len(), 1);
        assert_eq!(rec.spec.timeout, Some(30.0));
        assert_eq!(rec.usage_count, 3);
        let again = enc(&rec).expect("encode");
        assert_eq!(String::from_utf8_lossy(&again), stored);
    }
}
