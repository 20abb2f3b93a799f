//! The apply state machine: received → verified → staged → switching → switched
//! → health → committed, or rolling_back → rolled_back, or refused. Each step is
//! written to redb (with its event) before the next begins. After a power cut,
//! [`recover`] finishes a switch or a rollback that was cut short (before the
//! running set is restored) and [`Ctx::resume`] goes on from the step reached:
//! the device ends with the new revision committed or the old one running.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::host::ScriptHost;
use super::shared::{Core, Ctx};
use super::state::{self, Applied, ApplyRec, ErrorRec, Pending, Step, Target};
use super::switch;
use super::{FleetError, blobs::Fetched};
use vwed_fleet_proto::crypto;
use vwed_fleet_proto::manifest::{self, Checks, FileSpec, Identity, Manifest, Refusal};
use vwed_fleet_proto::topics::Source;

/// How an apply ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Committed,
    RolledBack,
    Refused,
    /// Refused for a reason that may pass (a detached project, files that did
    /// not arrive): the envelope with this digest is tried again when that
    /// changes (the project is attached, the link connects again).
    Blocked(String),
    Nothing,
}

/// How often the health window looks at the scripts.
const HEALTH_POLL: Duration = Duration::from_millis(100);

fn event(p: &Pending, step: Step, detail: Value) -> Value {
    let mut e = json!({
        "type": "apply",
        "state": step.as_str(),
        "deployment_id": p.deployment_id,
        "revision": p.revision,
        "source": p.source,
    });
    if let (Some(m), Value::Object(d)) = (e.as_object_mut(), detail) {
        m.extend(d);
    }
    e
}

fn pending(rec: &ApplyRec) -> Result<&Pending, FleetError> {
    rec.pending
        .as_ref()
        .ok_or_else(|| FleetError::Corrupt("apply step without a pending deployment".into()))
}

fn target(t: &Option<Target>, what: &str) -> Result<Target, FleetError> {
    t.clone()
        .ok_or_else(|| FleetError::Corrupt(format!("apply record without its {what}")))
}

/// The record once the switch to the plan is done: it names the new revision.
fn switched(mut rec: ApplyRec) -> Result<(ApplyRec, Value, Target), FleetError> {
    let p = pending(&rec)?;
    let plan = target(&p.plan, "plan")?;
    let ev = event(p, Step::Switched, json!({}));
    rec.last_revision = rec.last_revision.max(p.revision);
    rec.step = Step::Switched;
    rec.since_ms = vwed_base::clock::unix_ms();
    Ok((rec, ev, plan))
}

/// The record once the switch back to the snapshot is done.
fn rolled_back(mut rec: ApplyRec) -> Result<(ApplyRec, Value, Target), FleetError> {
    let p = rec
        .pending
        .take()
        .ok_or_else(|| FleetError::Corrupt("rollback without a pending deployment".into()))?;
    let snapshot = target(&p.snapshot, "snapshot")?;
    let reason = p.rollback_reason.clone();
    let ev = event(
        &p,
        Step::RolledBack,
        json!({"reason": reason.as_ref().map(|r| r.message.clone())}),
    );
    rec.handled = Some(p.digest);
    rec.last_error = reason;
    rec.step = Step::RolledBack;
    rec.since_ms = vwed_base::clock::unix_ms();
    Ok((rec, ev, snapshot))
}

/// Finishes, after a restart and before the running set is restored, a switch or
/// a rollback that a power cut interrupted: files, records and sets all become
/// those of one side.
pub fn recover<H: ScriptHost>(core: &Core<H>) -> Result<(), FleetError> {
    let rec = state::load(&core.db)?;
    let done = match rec.step {
        Step::Switching => switched(rec)?,
        Step::RollingBack => rolled_back(rec)?,
        _ => return Ok(()),
    };
    let (rec, mut ev, target) = done;
    tracing::warn!("fleet: finishing a {} cut short", rec.step.as_str());
    switch::write_files(&core.store, &core.blobs, &target, &|| {})?;
    ev["recovered"] = json!(true);
    state::save(&core.db, &rec, &[ev], &core.stamp(), Some(&target))?;
    if rec.step == Step::RolledBack {
        let _ = core.blobs.retain(&BTreeSet::new());
    }
    Ok(())
}

impl<H: ScriptHost> Ctx<H> {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Core<H>) -> Result<T, FleetError> + Send + 'static,
    ) -> Result<T, FleetError> {
        let core = self.core.clone();
        tokio::task::spawn_blocking(move || f(&core))
            .await
            .map_err(|e| FleetError::Corrupt(format!("blocking task failed: {e}")))?
    }

    async fn save(
        &self,
        rec: ApplyRec,
        events: Vec<Value>,
        sets: Option<Target>,
    ) -> Result<ApplyRec, FleetError> {
        let r = rec.clone();
        self.blocking(move |c| {
            state::save(&c.db, &r, &events, &c.stamp(), sets.as_ref())?;
            Ok(())
        })
        .await?;
        self.core.changed.notify_one();
        Ok(rec)
    }

    /// Moves to `step`, with its event; then the test hook may cut the power.
    async fn step(
        &self,
        mut rec: ApplyRec,
        step: Step,
        detail: Value,
    ) -> Result<ApplyRec, FleetError> {
        let ev = event(pending(&rec)?, step, detail);
        rec.step = step;
        rec.since_ms = vwed_base::clock::unix_ms();
        let rec = self.save(rec, vec![ev], None).await?;
        self.core.crash_point(step.as_str());
        Ok(rec)
    }

    pub async fn load(&self) -> Result<ApplyRec, FleetError> {
        self.blocking(|c| Ok(state::load(&c.db)?)).await
    }

    /// Applies a desired state that arrived from `source`.
    pub async fn apply(&self, source: &Source, payload: Vec<u8>) -> Result<End, FleetError> {
        let mut rec = self.load().await?;
        rec.pending = Some(Pending {
            digest: crypto::sha256_hex(&payload),
            source: self.core.source_label(source),
            envelope: payload,
            deployment_id: String::new(),
            revision: 0,
            manifest: None,
            plan: None,
            snapshot: None,
            rollback_reason: None,
        });
        let rec = self.step(rec, Step::Received, json!({})).await?;
        self.after_received(rec).await
    }

    /// Goes on with an apply a restart interrupted.
    pub async fn resume(&self) -> Result<End, FleetError> {
        let rec = self.load().await?;
        match rec.step {
            Step::Received | Step::Verified => self.after_received(rec).await,
            Step::Staged => self.after_staged(rec).await,
            Step::Switched | Step::Health => self.after_switched(rec).await,
            _ => Ok(End::Nothing),
        }
    }

    async fn after_received(&self, rec: ApplyRec) -> Result<End, FleetError> {
        let (rec, m) = match self.verify(rec).await? {
            Ok(v) => v,
            Err(end) => return Ok(end),
        };
        match self.stage(rec, &m).await? {
            Ok(rec) => self.after_staged(rec).await,
            Err(end) => Ok(end),
        }
    }

    async fn after_staged(&self, rec: ApplyRec) -> Result<End, FleetError> {
        match self.switch(rec).await {
            Ok(rec) => self.after_switched(rec).await,
            Err(e) => {
                tracing::error!("fleet: switch failed: {e}");
                let rec = self.load().await?;
                self.rollback(rec, format!("切换失败: {e}")).await
            }
        }
    }

    async fn after_switched(&self, rec: ApplyRec) -> Result<End, FleetError> {
        match self.health(rec).await? {
            Ok(rec) => self.commit(rec).await,
            Err((rec, reason)) => self.rollback(rec, reason).await,
        }
    }

    async fn refuse(
        &self,
        mut rec: ApplyRec,
        code: &str,
        message: String,
        handled: bool,
    ) -> Result<End, FleetError> {
        let p = rec
            .pending
            .take()
            .ok_or_else(|| FleetError::Corrupt("refusal without a pending deployment".into()))?;
        tracing::warn!("fleet: deployment refused ({code}): {message}");
        let err = ErrorRec {
            code: code.to_string(),
            message: message.clone(),
            deployment_id: p.deployment_id.clone(),
            revision: p.revision,
            at_ms: vwed_base::clock::unix_ms(),
        };
        let ev = event(&p, Step::Refused, json!({"code": code, "message": message}));
        rec.step = Step::Refused;
        rec.since_ms = err.at_ms;
        rec.last_error = Some(err);
        let end = if handled {
            rec.handled = Some(p.digest);
            End::Refused
        } else {
            End::Blocked(p.digest)
        };
        self.save(rec, vec![ev], None).await?;
        self.core.fetches.clear();
        Ok(end)
    }

    async fn verify(
        &self,
        mut rec: ApplyRec,
    ) -> Result<Result<(ApplyRec, Manifest), End>, FleetError> {
        let core = &self.core;
        let p = pending(&rec)?;
        let Some(source) = core.source_of(&p.source) else {
            let r = Refusal::WrongScope {
                scope: p.source.clone(),
                device: core.s.device_id.clone(),
            };
            return Ok(Err(self.refuse(rec, r.code(), r.to_string(), true).await?));
        };
        let checks = Checks {
            trusted: &core.s.trusted_keys,
            me: Identity {
                device: &core.s.device_id,
                fleet: &core.s.fleet,
                groups: &core.s.groups,
            },
            source: &source,
            now_ms: vwed_base::clock::unix_ms(),
            last_revision: rec.last_revision,
            max_bytes: core.s.max_deployment_bytes,
        };
        let opened = manifest::open(&p.envelope, &checks);
        let admitted = opened.and_then(|m| {
            // Genuine from here on: a refusal names the deployment.
            if let Some(p) = rec.pending.as_mut() {
                p.deployment_id.clone_from(&m.deployment_id);
                p.revision = m.revision;
                p.manifest = Some(serde_json::to_string(&m).unwrap_or_default());
            }
            manifest::admit(&m, &checks).map(|()| m)
        });
        let m = match admitted {
            Ok(m) => m,
            Err(r) => return Ok(Err(self.refuse(rec, r.code(), r.to_string(), true).await?)),
        };
        let rec = self.step(rec, Step::Verified, json!({})).await?;
        Ok(Ok((rec, m)))
    }

    async fn stage(
        &self,
        mut rec: ApplyRec,
        m: &Manifest,
    ) -> Result<Result<ApplyRec, End>, FleetError> {
        let managed = self.blocking(|c| Ok(state::managed(&c.db)?)).await?;
        if let Some((name, _)) = managed
            .iter()
            .find(|(n, r)| r.detached && m.projects.iter().any(|p| &p.name == n))
        {
            let r = Refusal::Detached(name.clone());
            return Ok(Err(self
                .refuse(rec, r.code(), r.to_string(), false)
                .await?));
        }
        let missing = {
            let m = m.clone();
            self.blocking(move |c| c.missing_files(&m)).await?
        };
        let (fetched, bytes) = match self.fetch(m, &missing).await? {
            Ok(v) => v,
            Err(r) => {
                // Files that did not come may come over the next connection.
                let again = matches!(r, Refusal::FetchTimeout(_));
                return Ok(Err(self
                    .refuse(rec, r.code(), r.to_string(), !again)
                    .await?));
            }
        };
        let has_boot = {
            let m = m.clone();
            match self.blocking(move |c| c.read_sources(&m)).await? {
                Ok(b) => b,
                Err(r) => return Ok(Err(self.refuse(rec, r.code(), r.to_string(), true).await?)),
            }
        };
        let keep: Vec<String> = managed
            .iter()
            .filter(|(_, r)| !r.detached)
            .map(|(n, _)| n.clone())
            .collect();
        let plan = switch::plan(m, &has_boot, &keep);
        let names: Vec<String> = plan.projects.iter().map(|p| p.name.clone()).collect();
        let owned: BTreeSet<String> = keep.into_iter().collect();
        let snapshot = match self
            .blocking(move |c| Ok(switch::snapshot(&c.store, &c.blobs, &names, &owned)))
            .await?
        {
            Ok(s) => s,
            Err(e) => {
                return Ok(Err(self
                    .refuse(rec, "snapshot", e.to_string(), true)
                    .await?));
            }
        };
        if let Some(p) = rec.pending.as_mut() {
            p.plan = Some(plan);
            p.snapshot = Some(snapshot);
        }
        let files = m.files().count();
        let detail = json!({"files": files, "fetched": fetched, "fetched_bytes": bytes, "reused": files - fetched.min(files)});
        Ok(Ok(self.step(rec, Step::Staged, detail).await?))
    }

    /// Waits for the files the device lacks; they arrive in chunks on their
    /// retained topics. Tells how many files and bytes came.
    async fn fetch(
        &self,
        m: &Manifest,
        missing: &BTreeMap<String, FileSpec>,
    ) -> Result<Result<(usize, u64), Refusal>, FleetError> {
        if missing.is_empty() {
            return Ok(Ok((0, 0)));
        }
        let core = &self.core;
        let topics: Vec<String> = missing.keys().map(|d| core.topics.chunks(d)).collect();
        for (digest, f) in missing {
            core.fetches.want(digest, f.size, m.chunk_bytes);
        }
        self.link.subscribe(&topics);
        let deadline = tokio::time::Instant::now() + core.s.fetch_timeout;
        let mut left = missing.clone();
        let mut bytes = 0;
        let result = loop {
            let progress = core.fetches.progress.notified();
            let mut got = Vec::new();
            let mut bad = None;
            for (digest, f) in &left {
                match core.fetches.take(digest) {
                    Some(Fetched::Ok(data)) => got.push((digest.clone(), data)),
                    Some(Fetched::Mismatch) => {
                        bad = Some(f.path.clone());
                        break;
                    }
                    None => {}
                }
            }
            if let Some(path) = bad {
                break Ok(Err(Refusal::HashMismatch(path)));
            }
            for (digest, data) in got {
                bytes += data.len() as u64;
                self.blocking(move |c| Ok(c.blobs.put(&data).map(|_| ())?))
                    .await?;
                left.remove(&digest);
            }
            if left.is_empty() {
                break Ok(Ok((missing.len(), bytes)));
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                let path = left
                    .values()
                    .next()
                    .map(|f| f.path.clone())
                    .unwrap_or_default();
                break Ok(Err(Refusal::FetchTimeout(path)));
            }
        };
        self.link.unsubscribe(&topics);
        core.fetches.clear();
        result
    }

    async fn switch(&self, rec: ApplyRec) -> Result<ApplyRec, FleetError> {
        let plan = target(&pending(&rec)?.plan, "plan")?;
        let names: Vec<String> = plan.projects.iter().map(|p| p.name.clone()).collect();
        self.core.host.stop_projects(&names).await;
        let rec = self.step(rec, Step::Switching, json!({})).await?;
        self.blocking(move |c| {
            switch::write_files(&c.store, &c.blobs, &plan, &|| c.crash_point("switching"))?;
            Ok(())
        })
        .await?;
        let (rec, ev, plan) = switched(rec)?;
        let rec = self.save(rec, vec![ev], Some(plan)).await?;
        self.core.crash_point(Step::Switched.as_str());
        Ok(rec)
    }

    /// Starts the plan's scripts and watches them for the health window. Err:
    /// the record and why the deployment failed.
    async fn health(
        &self,
        rec: ApplyRec,
    ) -> Result<Result<ApplyRec, (ApplyRec, String)>, FleetError> {
        let window = self.core.s.health_window;
        let rec = self
            .step(
                rec,
                Step::Health,
                json!({"window_ms": window.as_millis() as u64}),
            )
            .await?;
        let plan = target(&pending(&rec)?.plan, "plan")?;
        let host = &self.core.host;
        for r in &plan.run {
            let params: Value = serde_json::from_str(&r.params).unwrap_or(Value::Null);
            if let Err(e) = host.start(&r.script, &params).await {
                return Ok(Err((rec, format!("脚本 {} 启动失败: {e}", r.script))));
            }
        }
        let until = Instant::now() + window;
        loop {
            for r in &plan.run {
                let st = host.status(&r.script);
                if st.state != "running" {
                    let why = st.detail.unwrap_or_else(|| st.state.to_string());
                    return Ok(Err((
                        rec,
                        format!("脚本 {} 未通过健康检查: {why}", r.script),
                    )));
                }
            }
            let now = Instant::now();
            if now >= until {
                return Ok(Ok(rec));
            }
            tokio::time::sleep(HEALTH_POLL.min(until - now)).await;
        }
    }

    async fn commit(&self, mut rec: ApplyRec) -> Result<End, FleetError> {
        let p = rec
            .pending
            .take()
            .ok_or_else(|| FleetError::Corrupt("commit without a pending deployment".into()))?;
        let ev = event(&p, Step::Committed, json!({}));
        rec.current = Some(Applied {
            deployment_id: p.deployment_id.clone(),
            revision: p.revision,
            source: p.source.clone(),
            manifest: p.manifest.clone().unwrap_or_default(),
        });
        rec.handled = Some(p.digest);
        rec.step = Step::Committed;
        rec.since_ms = vwed_base::clock::unix_ms();
        self.save(rec, vec![ev], None).await?;
        self.core.crash_point(Step::Committed.as_str());
        self.forget_blobs().await;
        tracing::info!(
            "fleet: deployment {} (revision {}) committed",
            p.deployment_id,
            p.revision
        );
        Ok(End::Committed)
    }

    async fn rollback(&self, mut rec: ApplyRec, reason: String) -> Result<End, FleetError> {
        tracing::warn!("fleet: rolling back: {reason}");
        let p = rec
            .pending
            .as_mut()
            .ok_or_else(|| FleetError::Corrupt("rollback without a pending deployment".into()))?;
        p.rollback_reason = Some(ErrorRec {
            code: "health".into(),
            message: reason.clone(),
            deployment_id: p.deployment_id.clone(),
            revision: p.revision,
            at_ms: vwed_base::clock::unix_ms(),
        });
        let snapshot = target(&p.snapshot, "snapshot")?;
        let names: Vec<String> = snapshot.projects.iter().map(|p| p.name.clone()).collect();
        self.core.host.stop_projects(&names).await;
        let rec = self
            .step(rec, Step::RollingBack, json!({"reason": reason}))
            .await?;
        self.blocking(move |c| {
            switch::write_files(&c.store, &c.blobs, &snapshot, &|| {
                c.crash_point("rolling_back")
            })?;
            Ok(())
        })
        .await?;
        let (rec, ev, snapshot) = rolled_back(rec)?;
        // The old scripts are up before the device says it rolled back (a power
        // cut meanwhile finishes the rollback, and the restore starts them).
        for r in &snapshot.run {
            let params: Value = serde_json::from_str(&r.params).unwrap_or(Value::Null);
            if let Err(e) = self.core.host.start(&r.script, &params).await {
                tracing::error!("fleet: after the rollback {} did not start: {e}", r.script);
            }
        }
        self.save(rec, vec![ev], Some(snapshot)).await?;
        self.core.crash_point(Step::RolledBack.as_str());
        self.forget_blobs().await;
        Ok(End::RolledBack)
    }

    /// Staged files are in the projects now (or were not needed).
    async fn forget_blobs(&self) {
        let _ = self
            .blocking(|c| Ok(c.blobs.retain(&BTreeSet::new())?))
            .await;
    }
}

impl<H: ScriptHost> Core<H> {
    /// The manifest's files the device has neither as a blob nor, with the same
    /// content, at the same place in its projects (those are copied to blobs),
    /// by digest.
    pub fn missing_files(&self, m: &Manifest) -> Result<BTreeMap<String, FileSpec>, FleetError> {
        let mut missing = BTreeMap::new();
        for (project, f) in m.files() {
            if self.blobs.has(&f.sha256) || missing.contains_key(&f.sha256) {
                continue;
            }
            // Unreadable (a link) is as good as absent: the file is fetched.
            let same = self
                .store
                .read_at(project, &f.path)
                .ok()
                .flatten()
                .filter(|d| crypto::sha256_hex(d) == f.sha256);
            match same {
                Some(data) => {
                    self.blobs.put(&data)?;
                }
                None => {
                    missing.insert(f.sha256.clone(), f.clone());
                }
            }
        }
        Ok(missing)
    }

    /// Checks every file is UTF-8 text; tells which define `boot()`.
    pub fn read_sources(
        &self,
        m: &Manifest,
    ) -> Result<Result<BTreeMap<String, bool>, Refusal>, FleetError> {
        let mut has_boot = BTreeMap::new();
        for (project, f) in m.files() {
            let data = self.blobs.get(&f.sha256)?;
            let Ok(text) = std::str::from_utf8(&data) else {
                return Ok(Err(Refusal::NotText(format!("{project}/{}", f.path))));
            };
            let boot = f.path.ends_with(".py") && vwed_store::sources::defines_boot(text);
            has_boot.insert(f.sha256.clone(), boot);
        }
        Ok(Ok(has_boot))
    }
}
