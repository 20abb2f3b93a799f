//! What the jobs service stores: a job's definition ([`JobSpec`], versioned), its
//! lifecycle record ([`JobRec`]), executions ([`ExecRec`], with their bulky parts in
//! [`ExecDetail`]) and templates ([`TemplateRec`]).
//!
//! Records are JSON inside redb, unlike the postcard records of `db.rs`: they carry
//! values the user defines (parameter defaults, event filters, results), which
//! postcard cannot describe, and JSON lets later versions add fields with defaults.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Bash,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Bash => "bash",
        }
    }
}

/// A job's lifecycle: only `active` jobs run from triggers; `archived` never runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Draft,
    Active,
    Disabled,
    Archived,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Draft,
        JobStatus::Active,
        JobStatus::Disabled,
        JobStatus::Archived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Draft => "draft",
            JobStatus::Active => "active",
            JobStatus::Disabled => "disabled",
            JobStatus::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Timeout,
    Cancelled,
    Interrupted,
}

impl ExecStatus {
    pub const ALL: [ExecStatus; 7] = [
        ExecStatus::Queued,
        ExecStatus::Running,
        ExecStatus::Succeeded,
        ExecStatus::Failed,
        ExecStatus::Timeout,
        ExecStatus::Cancelled,
        ExecStatus::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Queued => "queued",
            ExecStatus::Running => "running",
            ExecStatus::Succeeded => "succeeded",
            ExecStatus::Failed => "failed",
            ExecStatus::Timeout => "timeout",
            ExecStatus::Cancelled => "cancelled",
            ExecStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<ExecStatus> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Nothing more happens to an execution in this state.
    pub fn is_final(self) -> bool {
        !matches!(self, ExecStatus::Queued | ExecStatus::Running)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TriggerKind {
    Manual,
    Api,
    Cron,
    Event,
}

impl TriggerKind {
    pub const ALL: [TriggerKind; 4] = [
        TriggerKind::Manual,
        TriggerKind::Api,
        TriggerKind::Cron,
        TriggerKind::Event,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Manual => "manual",
            TriggerKind::Api => "api",
            TriggerKind::Cron => "cron",
            TriggerKind::Event => "event",
        }
    }

    pub fn parse(s: &str) -> Option<TriggerKind> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Retries after a failed attempt: `max_retries` more attempts, the first after
/// `backoff_seconds`, each next wait `backoff_factor` times longer, at most
/// `max_backoff_seconds`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff_seconds: f64,
    pub backoff_factor: f64,
    pub max_backoff_seconds: f64,
    /// A timed-out attempt is retried too.
    pub retry_on_timeout: bool,
    /// An attempt cut short by a restart of the runtime (power cut, kill -9) is
    /// retried after the restart; otherwise the execution ends `interrupted`.
    pub retry_on_interrupt: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 0,
            backoff_seconds: 5.0,
            backoff_factor: 2.0,
            max_backoff_seconds: 300.0,
            retry_on_timeout: true,
            retry_on_interrupt: false,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 = the first retry).
    pub fn backoff_ms(&self, retry: u32) -> u64 {
        let exp = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let s =
            (self.backoff_seconds * self.backoff_factor.powi(exp)).min(self.max_backoff_seconds);
        (s.max(0.0) * 1000.0) as u64
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Object => "object",
            ParamType::Array => "array",
        }
    }

    pub fn accepts(self, v: &Value) -> bool {
        match self {
            ParamType::String => v.is_string(),
            ParamType::Integer => v.is_i64() || v.is_u64(),
            ParamType::Number => v.is_number(),
            ParamType::Boolean => v.is_boolean(),
            ParamType::Object => v.is_object(),
            ParamType::Array => v.is_array(),
        }
    }
}

/// One input parameter of a job or template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ParamType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default)]
    pub description: String,
    /// The only values allowed, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<Value>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissedRuns {
    /// Runs that fell into a time the device was off are dropped.
    #[default]
    Skip,
    /// However many were missed, one run follows at start-up.
    RunOnce,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    /// Five fields (minute hour day month weekday) or six with seconds first.
    pub expression: String,
    /// `local` (the controller's zone, default), `UTC`, an offset such as `+08:00`,
    /// or an IANA name such as `Asia/Shanghai` (from the system's zoneinfo).
    #[serde(default = "local_zone")]
    pub timezone: String,
    #[serde(default)]
    pub missed_runs: MissedRuns,
}

fn local_zone() -> String {
    "local".to_string()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTrigger {
    /// An event name (`io.press.temp`, `order_ready`), or a prefix ending in `*`
    /// (`io.*`).
    pub event: String,
    /// Conditions on the event data, all of which must hold: `{"path.in.data":
    /// value}` for equality, or `{"path": {"$gt": 5}}` with `$eq $ne $gt $gte $lt
    /// $lte $in $exists`.
    #[serde(default)]
    pub filter: Map<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Triggers {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronTrigger>,
    pub events: Vec<EventTrigger>,
}

/// What defines a job; every change of it is a new version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct JobSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub language: Language,
    pub content: String,
    /// Seconds one attempt may take; past it the attempt is killed (`timeout`).
    pub timeout: f64,
    #[serde(default)]
    pub retry_policy: RetryPolicy,
    #[serde(default)]
    pub parameters: Vec<ParamSpec>,
    #[serde(default)]
    pub triggers: Triggers,
}

/// An engineer's acknowledgement that a version's dangerous commands are meant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Ack {
    pub version: u64,
    pub by: String,
    pub at: String,
    pub reason: String,
    pub findings: usize,
}

/// One line of a job's own history (status changes, acknowledgements, rollbacks).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    pub at: String,
    pub by: String,
    pub action: String,
    pub detail: String,
}

/// Entries kept per job; older ones fall off.
pub const HISTORY_KEEP: usize = 100;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct JobRec {
    pub id: u64,
    pub status: JobStatus,
    pub version: u64,
    pub spec: JobSpec,
    #[serde(default)]
    pub template_id: Option<u64>,
    #[serde(default)]
    pub ack: Option<Ack>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    pub created_by: String,
    pub created_at: String,
    pub updated_by: String,
    pub updated_at: String,
}

impl JobRec {
    pub fn note(&mut self, by: &str, action: &str, detail: String) {
        self.history.push(HistoryEntry {
            at: vwed_base::clock::local_now(),
            by: by.to_string(),
            action: action.to_string(),
            detail,
        });
        let over = self.history.len().saturating_sub(HISTORY_KEEP);
        self.history.drain(..over);
    }

    /// `jobs/<id>`: the name its log lines, tracebacks and `VWED.data` go under.
    pub fn path(&self) -> String {
        job_path(self.id)
    }
}

pub fn job_path(id: u64) -> String {
    format!("jobs/{id}")
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct VersionRec {
    pub version: u64,
    pub spec: JobSpec,
    pub by: String,
    pub at: String,
    #[serde(default)]
    pub note: String,
}

/// What started an execution.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TriggerInfo {
    #[serde(rename = "type")]
    pub kind: TriggerKind,
    /// The cron expression or the event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For cron: the time the run was due (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_ms: Option<u64>,
    /// For cron: a run made up for times the device was off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missed: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Attempt {
    pub number: u32,
    pub status: ExecStatus,
    pub started_ms: u64,
    #[serde(default)]
    pub finished_ms: Option<u64>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    /// The exception (`Type: message`) a Python job raised.
    #[serde(default)]
    pub exception: Option<String>,
    /// What else went wrong (timeout, could not start, killed).
    #[serde(default)]
    pub error: Option<String>,
    /// The confinement the attempt ran under (`docs/sandbox.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<vwed_ipc::SandboxReport>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ExecRec {
    pub id: String,
    pub seq: u64,
    pub job_id: u64,
    pub job_name: String,
    pub version: u64,
    pub language: Language,
    pub status: ExecStatus,
    pub trigger: TriggerInfo,
    pub triggered_by: String,
    pub params: Value,
    /// `environment_vars` of the request; shown by name only.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// How many event-triggered executions led to this one (a loop guard).
    #[serde(default)]
    pub depth: u8,
    pub max_attempts: u32,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    pub queued_ms: u64,
    #[serde(default)]
    pub started_ms: Option<u64>,
    #[serde(default)]
    pub finished_ms: Option<u64>,
    #[serde(default)]
    pub next_attempt_ms: Option<u64>,
    /// Set when the execution was refused (queue full) or could not be run.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cancelled_by: Option<String>,
}

impl ExecRec {
    pub fn last_attempt(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    pub fn duration_ms(&self) -> Option<u64> {
        Some(self.finished_ms?.saturating_sub(self.started_ms?))
    }
}

/// The bulky parts of an execution, stored apart so that lists and statistics
/// read only the small record.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct ExecDetail {
    pub output: String,
    /// Bytes of output left out (the middle of a long output).
    #[serde(default)]
    pub output_cut_bytes: u64,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub traceback: Option<String>,
}

/// What defines a template: the body of `POST /api/v1/scripts/templates/`, and
/// the part of a stored [`TemplateRec`] its author wrote. Its `triggers` are the
/// ones a job made from the template starts with (e.g. a nightly cron). The API
/// document keeps the request's name and description from before the two were one.
#[derive(Serialize, Deserialize, Clone, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TemplateInput, description = "`POST /api/v1/scripts/templates/`.")]
pub struct TemplateSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub category: String,
    pub language: Language,
    pub content: String,
    #[serde(default)]
    pub parameters: Vec<ParamSpec>,
    #[serde(default)]
    pub triggers: Triggers,
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// A stored template. Records are JSON in redb; flattening keeps the spec's
/// fields at the top level, where records written before the split have them.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TemplateRec {
    pub id: u64,
    #[serde(flatten)]
    pub spec: TemplateSpec,
    pub builtin: bool,
    #[serde(default)]
    pub usage_count: u64,
    pub created_by: String,
    pub created_at: String,
}
