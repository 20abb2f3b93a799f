//! What the answers carry, as types for the OpenAPI document: the `data` of
//! each endpoint's envelope, and the whole answer where an endpoint adds fields
//! beside the envelope's. The handlers build their answers as JSON values (many
//! from records' `to_json`); these types say what those values hold, so that a
//! client generated from the document parses them. They cannot drift apart
//! silently: the in-process tests check every answer they get against these
//! schemas (`api/tests/conform.rs`), and an undocumented field fails there.
//!
//! Fields that are always present are plain; those that may be `null` or absent
//! are `Option`. Values a script or an operator defines stay `Value` (any JSON).

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::ToSchema;

// ------------------------------------------------------------- projects, files

/// A script project.
#[derive(ToSchema)]
pub struct ProjectView {
    pub id: u64,
    pub project_name: String,
    /// `projects/<project_name>`
    pub project_path: String,
    pub description: String,
    /// active 或 archived
    pub status: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A script file's record.
#[derive(ToSchema)]
pub struct FileView {
    pub id: u64,
    pub project_id: u64,
    pub file_name: String,
    pub file_path: String,
    pub file_type: String,
    pub size: u64,
    pub has_boot_function: bool,
    pub status: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// The version of the current content (1 for a new file).
    pub version: u64,
    pub versions_pruned: u64,
    /// With `include_content` or after a save.
    pub content: Option<String>,
    /// With `include_content`, when the content could not be read.
    pub content_error: Option<String>,
    /// After a save: where the saved code stops parsing (it is saved anyway).
    pub syntax_error: Option<SyntaxErrorView>,
}

/// Where the parser stopped.
#[derive(ToSchema)]
pub struct SyntaxErrorView {
    /// `语法错误: <msg>`
    pub error: String,
    pub message: String,
    pub line: Option<u64>,
    pub offset: Option<u64>,
}

/// `GET /api/script/projects/{project_id}/files`.
#[derive(ToSchema)]
pub struct ProjectFiles {
    pub project: ProjectRef,
    pub files: Vec<FileView>,
}

/// A project named by its id, name and path.
#[derive(ToSchema)]
pub struct ProjectRef {
    pub id: u64,
    pub project_name: String,
    pub project_path: String,
}

/// A file with its content.
#[derive(ToSchema)]
pub struct FileWithContent {
    pub file: FileView,
    pub content: String,
}

/// What a file update answers.
#[derive(ToSchema)]
pub struct FileUpdated {
    pub file: FileView,
    /// Where the content before this update is kept.
    pub backup_path: String,
    pub backup_version: u64,
    pub syntax_error: Option<SyntaxErrorView>,
}

/// One file found by `files/search`.
#[derive(ToSchema)]
pub struct FoundFile {
    pub id: u64,
    pub project_id: u64,
    pub file_name: String,
    pub file_path: String,
    pub project_name: String,
    pub file_type: String,
    pub has_boot_function: bool,
    pub created_at: String,
}

#[derive(ToSchema)]
pub struct FileSearch {
    pub count: u64,
    pub files: Vec<FoundFile>,
}

/// `validate-syntax`: `{valid: true, message, has_boot_function}` or
/// `{valid: false, error, message, line, offset}`.
#[derive(ToSchema)]
pub struct SyntaxCheck {
    pub valid: bool,
    pub message: String,
    pub has_boot_function: Option<bool>,
    pub error: Option<String>,
    pub line: Option<u64>,
    pub offset: Option<u64>,
}

/// One saved version of a file, as listed.
#[derive(ToSchema)]
pub struct FileVersionItem {
    pub version: u64,
    pub saved_at: String,
    pub saved_by: String,
    pub size: u64,
    pub path: String,
}

#[derive(ToSchema)]
pub struct FileVersions {
    pub file_id: u64,
    pub versions: Vec<FileVersionItem>,
    /// Versions pruned so far.
    pub pruned: u64,
}

/// One saved version of a file, with its content.
#[derive(ToSchema)]
pub struct FileVersion {
    pub file_id: u64,
    pub version: u64,
    pub saved_at: String,
    pub saved_by: String,
    pub content: String,
}

/// What `upload` answers: the new file.
#[derive(ToSchema)]
pub struct Uploaded {
    pub id: u64,
    pub project_id: u64,
    pub file_name: String,
    pub file_path: String,
    pub size: u64,
    pub has_boot_function: bool,
    pub created_at: String,
    pub syntax_error: Option<SyntaxErrorView>,
}

/// One entry of a project's tree.
#[derive(ToSchema)]
pub struct TreeEntry {
    pub path: String,
    /// dir 或 file
    pub kind: String,
    pub size: u64,
    pub modified_ms: u64,
    /// A file's record is there but its file on disk is not.
    pub missing: bool,
    pub file: Option<FileView>,
}

#[derive(ToSchema)]
pub struct ProjectTree {
    pub project: ProjectView,
    pub entries: Vec<TreeEntry>,
}

#[derive(ToSchema)]
pub struct DirMade {
    pub project_id: u64,
    pub path: String,
}

#[derive(ToSchema)]
pub struct DirRemoved {
    pub project_id: u64,
    pub path: String,
    pub files_deleted: u64,
}

#[derive(ToSchema)]
pub struct PathMoved {
    pub project_id: u64,
    pub from: String,
    pub to: String,
    pub files_moved: u64,
}

#[derive(ToSchema)]
pub struct PathCopied {
    pub project_id: u64,
    pub to_project_id: u64,
    pub from: String,
    pub to: String,
    pub files_copied: u64,
}

#[derive(ToSchema)]
pub struct GrepHit {
    pub file_id: u64,
    pub project_id: u64,
    pub project_name: String,
    pub file_path: String,
    pub line: u64,
    pub column: u64,
    pub text: String,
}

#[derive(ToSchema)]
pub struct GrepHits {
    pub count: u64,
    /// More hits than `limit` were found.
    pub truncated: bool,
    pub hits: Vec<GrepHit>,
}

// -------------------------------------------------------------------- scripts

/// What a script registered.
#[derive(ToSchema)]
pub struct Registrations {
    pub apis: u64,
    pub functions: u64,
    pub events: u64,
    pub timers: u64,
}

#[derive(ToSchema)]
pub struct StartedData {
    pub script_id: String,
    pub script_path: String,
    pub registrations: Registrations,
    /// Restart only: the id the script had before.
    pub old_script_id: Option<String>,
}

/// What `start` and `restart` answer: the envelope, with `script_id`,
/// `script_path` and `registrations` beside it as well as in `data`.
#[derive(ToSchema)]
pub struct Started {
    pub success: bool,
    pub message: String,
    pub script_id: String,
    pub script_path: String,
    pub registrations: Registrations,
    /// Restart only.
    pub old_script_id: Option<String>,
    pub data: StartedData,
}

#[derive(ToSchema)]
pub struct StoppedData {
    pub script_id: String,
    pub registrations: Registrations,
    /// The worker had to be killed (it did not end in its grace time).
    pub killed: bool,
}

/// What `stop` answers: the envelope, with `registrations` beside it.
#[derive(ToSchema)]
pub struct Stopped {
    pub success: bool,
    pub message: String,
    pub registrations: Registrations,
    pub data: StoppedData,
}

/// `safe_mode`, and when it is on, why and which scripts it holds back.
#[derive(ToSchema)]
pub struct SafeModeFields {
    pub safe_mode: bool,
    pub safe_mode_reason: Option<String>,
    pub safe_mode_since: Option<String>,
    pub held_scripts: Option<Vec<String>>,
}

/// The policy a script restarts by.
#[derive(ToSchema)]
pub struct RestartPolicyView {
    /// never, on_failure 或 always
    pub mode: String,
    pub max_restarts: u64,
    pub window_s: u64,
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

#[derive(ToSchema)]
pub struct LastFailure {
    pub at: String,
    pub kind: String,
    pub reason: String,
}

/// Why a script ended.
#[derive(ToSchema)]
pub struct EndReasonView {
    /// crashed, hung, cpu_limit, memory_limit 或 start_failed
    pub kind: String,
    pub message: String,
}

/// A handler running past its timeout.
#[derive(ToSchema)]
pub struct BusyView {
    pub since: Option<String>,
    pub work: String,
    pub timeout_ms: u64,
    /// When the worker is ended unless it becomes free first.
    pub ended_after: Option<String>,
}

/// One entry of the running list.
#[derive(ToSchema)]
pub struct RunningScript {
    pub script_id: String,
    pub script_path: String,
    pub file_id: u64,
    pub started_at: String,
    /// starting, running, stopping, stopped, crashed 或 broken
    pub status: String,
    pub registrations: Registrations,
    pub pid: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub start_params: Value,
    /// Seconds since the worker was last heard from.
    pub heartbeat: Option<f64>,
    pub busy: Option<BusyView>,
    /// What the worker runs under (filesystem, network, limits).
    pub sandbox: Value,
    pub cpu_percent: Option<f64>,
    pub cpu_priority: Option<String>,
    pub uptime_s: u64,
    pub restart_policy: RestartPolicyView,
    /// Restarts within the policy's window.
    pub restarts: u64,
    pub restarts_total: u64,
    pub last_failure: Option<LastFailure>,
    pub next_restart_at: Option<String>,
    pub broken_since: Option<String>,
    /// A crashed script only.
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub exit_reason: Option<EndReasonView>,
}

/// What `running` answers: the envelope, with the safe-mode fields beside it.
#[derive(ToSchema)]
pub struct Running {
    pub success: bool,
    pub data: Vec<RunningScript>,
    pub safe_mode: bool,
    pub safe_mode_reason: Option<String>,
    pub safe_mode_since: Option<String>,
    pub held_scripts: Option<Vec<String>>,
}

/// What `safe-mode/exit` did: `restored` or `forgotten` script paths.
#[derive(ToSchema)]
pub struct SafeModeLeft {
    pub restored: Option<Vec<String>>,
    pub forgotten: Option<Vec<String>>,
}

#[derive(ToSchema)]
pub struct ScriptOutput {
    pub script_id: String,
    pub status: String,
    /// The newest lines after `after`.
    pub lines: Vec<Value>,
    /// Newer lines left out by `limit` and `output_max_bytes`.
    pub omitted: u64,
    /// Lines that fell out of memory.
    pub dropped: u64,
}

/// What `execute-function` answers (not the usual envelope): the function's
/// `result`, or `error`, and how long it took.
#[derive(serde::Serialize, ToSchema)]
pub struct FunctionCalled {
    pub success: bool,
    /// What the function returned (success only).
    pub result: Option<Value>,
    /// Why it failed (failure only).
    pub error: Option<String>,
    pub execution_time_ms: f64,
}

#[derive(ToSchema)]
pub struct EventEmitted {
    pub event_name: String,
    /// How many listeners it was given to.
    pub listeners: u64,
}

// ------------------------------------------------------------------- registry

/// Call counters of a registration.
#[derive(ToSchema)]
pub struct RouteEntry {
    pub path: String,
    pub method: String,
    pub script_id: String,
    pub description: String,
    /// Callable without a credential.
    pub public: bool,
    pub call_count: u64,
    pub error_count: u64,
    pub average_response_time_ms: f64,
    pub registered_at: String,
}

#[derive(ToSchema)]
pub struct FunctionEntry {
    pub description: String,
    pub is_async: bool,
    pub parameters: Value,
    pub tags: Vec<String>,
    pub script_id: String,
    pub registered_at: String,
    pub call_count: u64,
    pub success_count: u64,
    pub error_count: u64,
    pub average_execution_time_ms: f64,
}

#[derive(ToSchema)]
pub struct ListenerEntry {
    pub priority: i64,
    /// Events dropped because the listener's queue was full.
    pub dropped_count: u64,
    pub script_id: String,
    pub registered_at: String,
    pub call_count: u64,
    pub success_count: u64,
    pub error_count: u64,
    pub average_execution_time_ms: f64,
}

#[derive(ToSchema)]
pub struct TimerEntry {
    pub name: String,
    pub schedule: Value,
    /// Runs skipped because the previous one was still busy.
    pub skipped_count: u64,
    pub next_run: Option<String>,
    pub script_id: String,
    pub registered_at: String,
    pub call_count: u64,
    pub success_count: u64,
    pub error_count: u64,
    pub average_execution_time_ms: f64,
}

#[derive(ToSchema)]
pub struct ActiveScript {
    pub script_path: String,
    pub started_at: String,
    pub status: String,
    pub pid: Option<u64>,
    pub heartbeat: Option<f64>,
}

/// `registry/status`: each registration by its key (`METHOD:path`, function
/// name, event name, `script:timer_<handler>`, script id).
#[derive(ToSchema)]
pub struct RegistryStatus {
    pub api_routes: BTreeMap<String, RouteEntry>,
    pub registered_functions: BTreeMap<String, FunctionEntry>,
    pub event_listeners: BTreeMap<String, Vec<ListenerEntry>>,
    pub timers: BTreeMap<String, TimerEntry>,
    pub active_scripts: BTreeMap<String, ActiveScript>,
}

#[derive(ToSchema)]
pub struct CallStats {
    pub call_count: u64,
    pub success_count: u64,
    pub error_count: u64,
    pub average_execution_time_ms: f64,
}

/// One function of `integration/functions`.
#[derive(ToSchema)]
pub struct FunctionInfo {
    pub function_name: String,
    pub script_id: String,
    pub description: String,
    pub parameters: Value,
    pub return_schema: Value,
    pub is_async: bool,
    pub tags: Vec<String>,
    pub is_running: bool,
    pub registered_at: String,
    pub stats: CallStats,
}

// ---------------------------------------------------------------- integration

#[derive(serde::Serialize, ToSchema)]
pub struct BlockResult {
    /// What the function returned (null when it failed).
    pub data: Value,
    pub execution_time_ms: f64,
}

#[derive(serde::Serialize, ToSchema)]
pub struct BlockData {
    pub task_id: Option<String>,
    /// function_call 或 set_task_variables
    pub execution_mode: String,
    pub attempts: u64,
    /// The task variables this block set.
    pub set_variables: Value,
    /// The task's variables after the block.
    pub task_variables: Value,
}

/// What `integration/execute` answers: the envelope with `result` beside it
/// (on failure too, with `success: false` and `error`).
#[derive(serde::Serialize, ToSchema)]
pub struct BlockRun {
    pub success: bool,
    pub message: String,
    pub error: Option<String>,
    pub result: BlockResult,
    pub data: BlockData,
}

#[derive(ToSchema)]
pub struct TaskVariables {
    pub task_id: String,
    pub variables: Value,
}

#[derive(ToSchema)]
pub struct TaskVariablesDeleted {
    pub task_id: String,
    /// The task had variables.
    pub deleted: bool,
}

// -------------------------------------------------------------------- storage

#[derive(ToSchema)]
pub struct Location {
    pub location_code: String,
    pub name: Option<String>,
    pub area: Option<String>,
    pub attributes: Value,
    pub locked: bool,
    /// The task holding the lock.
    pub locked_by: Option<String>,
    pub locked_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(ToSchema)]
pub struct Locations {
    pub locations: Vec<Location>,
    pub total: u64,
}

#[derive(ToSchema)]
pub struct LocationsSaved {
    pub saved: u64,
    pub created: u64,
}

#[derive(ToSchema)]
pub struct LocationUnlocked {
    pub location_code: String,
    pub released: bool,
}

// ----------------------------------------------------------------- logs, ws

/// One persisted log line.
#[derive(ToSchema)]
pub struct LogEntry {
    pub seq: u64,
    pub timestamp: String,
    pub ts_ms: u64,
    pub script_id: String,
    pub script_path: String,
    /// DEBUG, INFO, WARNING 或 ERROR
    pub level: String,
    pub stream: String,
    pub message: String,
    /// Structured fields the script logged with the line.
    pub fields: Option<Value>,
}

#[derive(ToSchema)]
pub struct LogPage {
    pub logs: Vec<LogEntry>,
    pub count: u64,
    /// desc 或 asc
    pub order: String,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct WsConnection {
    pub connection_id: u64,
    pub client_id: String,
    pub client_type: String,
    pub connected_at: String,
    pub subscribed_scripts: Vec<String>,
    pub subscribed_paths: Vec<String>,
    pub queued: u64,
    pub queue_capacity: u64,
    pub queue_capacity_bytes: u64,
    pub skipped: u64,
    pub sent: u64,
}

#[derive(ToSchema)]
pub struct WsStatus {
    pub total_connections: u64,
    pub total_script_subscriptions: u64,
    pub connections: Vec<WsConnection>,
    /// Subscribers per script id.
    pub script_subscriptions: Value,
}

#[derive(ToSchema)]
pub struct Broadcast {
    pub script_id: String,
    /// Connections the line was queued for.
    pub delivered: u64,
}

// --------------------------------------------------------------------- system

/// `/health`: the figures, with the safe-mode fields.
#[derive(ToSchema)]
pub struct Health {
    /// ok (starting: see 503)
    pub status: String,
    pub version: String,
    pub uptime_s: u64,
    pub scripts: u64,
    pub pid: u64,
    pub rss_bytes: Option<u64>,
    pub safe_mode: bool,
    pub safe_mode_reason: Option<String>,
    pub safe_mode_since: Option<String>,
    pub held_scripts: Option<Vec<String>>,
}

#[derive(ToSchema)]
pub struct Board {
    /// The board profile configured.
    pub profile: Option<String>,
    pub model: Option<String>,
    pub hostname: Option<String>,
    pub kernel: Option<String>,
    pub arch: String,
    pub cpus: u64,
    pub mem_total_bytes: Option<u64>,
}

#[derive(ToSchema)]
pub struct SystemInfo {
    pub version: String,
    pub uptime_s: u64,
    pub pid: u64,
    pub rss_bytes: Option<u64>,
    pub scripts: u64,
    /// Free and total bytes of the data dir's filesystem.
    pub disk: Value,
    /// Each database file and its size.
    pub databases: Vec<Value>,
    pub board: Board,
    /// The configuration, secrets shown as `***`.
    pub config: Value,
}

// ----------------------------------------------------------------------- jobs

/// A page of a list.
#[derive(ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub skip: u64,
    pub limit: u64,
}

/// A one-shot job (`/api/v1/scripts`); with its content and history where
/// one job is answered.
#[derive(ToSchema)]
pub struct JobView {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    /// python 或 bash
    pub language: String,
    /// Seconds one attempt may take.
    pub timeout: f64,
    pub retry_policy: Value,
    pub parameters: Vec<Value>,
    pub triggers: Value,
    /// draft, active, disabled 或 archived
    pub status: String,
    pub version: u64,
    pub template_id: Option<u64>,
    /// Dangerous commands found in the content, and whether they are acknowledged.
    pub danger: Value,
    pub path: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_by: String,
    pub updated_at: String,
    pub content_bytes: u64,
    pub content: Option<String>,
    pub history: Option<Vec<Value>>,
}

/// One attempt of an execution.
#[derive(ToSchema)]
pub struct AttemptView {
    pub attempt: u64,
    pub status: String,
    pub started_at: Option<String>,
    pub started_at_ms: u64,
    pub finished_at: Option<String>,
    pub finished_at_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub exception: Option<String>,
    pub error: Option<String>,
    pub sandbox: Option<Value>,
}

/// An execution of a job; with its output, result and traceback where one
/// execution is answered.
#[derive(ToSchema)]
pub struct ExecutionView {
    pub execution_id: String,
    pub script_id: u64,
    pub script_name: String,
    pub script_version: u64,
    pub language: String,
    /// queued, running, succeeded, failed, timeout, cancelled 或 interrupted
    pub status: String,
    /// What started it: `{kind, ...}`.
    pub trigger: Value,
    pub triggered_by: String,
    pub input_parameters: Value,
    pub environment_var_names: Vec<String>,
    pub attempts: u64,
    pub max_attempts: u64,
    pub attempt_history: Vec<AttemptView>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub exception: Option<String>,
    pub error: Option<String>,
    pub queued_at: Option<String>,
    pub queued_at_ms: u64,
    pub started_at: Option<String>,
    pub started_at_ms: Option<u64>,
    pub finished_at: Option<String>,
    pub finished_at_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub next_attempt_at_ms: Option<u64>,
    pub cancelled_by: Option<String>,
    pub event_depth: u64,
    pub sandbox: Option<Value>,
    pub result: Option<Value>,
    pub output: Option<String>,
    pub output_truncated_bytes: Option<u64>,
    pub traceback: Option<String>,
}

/// One version of a job's definition; with the whole definition (`spec`)
/// where one version is answered.
#[derive(ToSchema)]
pub struct JobVersionView {
    pub version: u64,
    pub by: String,
    pub at: String,
    pub note: String,
    pub name: String,
    pub language: String,
    pub content_bytes: u64,
    pub spec: Option<Value>,
}

#[derive(ToSchema)]
pub struct JobVersions {
    pub versions: Vec<JobVersionView>,
    pub current: u64,
}

/// What changed between two versions.
#[derive(ToSchema)]
pub struct JobDiff {
    pub from: u64,
    pub to: u64,
    pub changed_fields: Vec<String>,
    pub content_changed: bool,
    /// A unified diff of the content.
    pub content_diff: Option<String>,
}

#[derive(ToSchema)]
pub struct TemplateView {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub category: String,
    pub language: String,
    pub content: String,
    pub parameters: Vec<Value>,
    pub triggers: Value,
    pub timeout: Option<f64>,
    pub builtin: bool,
    pub usage_count: u64,
    pub danger: Value,
    pub created_by: String,
    pub created_at: String,
}

#[derive(ToSchema)]
pub struct Templates {
    pub items: Vec<TemplateView>,
    pub total: u64,
}

/// An id that was removed.
#[derive(ToSchema)]
pub struct Removed {
    pub id: u64,
}

#[derive(ToSchema)]
pub struct JobsOverview {
    pub scripts: Value,
    pub executions: Value,
    pub templates: Value,
}

// ----------------------------------------------------------------- auth, fleet

#[derive(ToSchema)]
pub struct Session {
    pub user: String,
    /// viewer, operator, engineer 或 admin
    pub role: String,
    /// Send as `X-CSRF-Token` with state-changing requests made with the cookie.
    pub csrf_token: String,
    pub expires_at: Option<String>,
}

#[derive(ToSchema)]
pub struct LoggedOut {
    pub session_ended: bool,
}

/// Who the caller is.
#[derive(ToSchema)]
pub struct Me {
    pub user: String,
    pub role: String,
    /// session, token, local 或 none
    pub via: String,
    pub csrf_token: Option<String>,
    pub expires_at: Option<String>,
    pub no_auth: bool,
}

#[derive(ToSchema)]
pub struct AuditPage {
    pub entries: Vec<Value>,
    /// Pass as `before` for the next page; null on the last.
    pub next_before: Option<u64>,
    pub stats: Value,
}

#[derive(ToSchema)]
pub struct ProjectDetached {
    pub project: String,
    pub detached: bool,
}

// ------------------------------------------------------------------------- io

#[derive(ToSchema)]
pub struct PointWritten {
    pub tag: String,
    pub value: Value,
    pub writer: String,
}

// ---------------------------------------------------------------------- common

/// A success that says only what was done.
#[derive(ToSchema)]
pub struct Done {
    pub success: bool,
    pub message: String,
}

/// A refused function call: a request that could not be read (`Failure`), or
/// the function's own refusal of its arguments (`FunctionCalled`).
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
pub enum FunctionRefused {
    Call(FunctionCalled),
    Request(super::reply::Failure),
}

/// A refused block: a request that could not be read (`Failure`), or the
/// function's refusal of its arguments (`BlockRun`).
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
pub enum BlockRefused {
    Block(BlockRun),
    Request(super::reply::Failure),
}

/// An account; `password` is there once, when the runtime chose it.
#[derive(ToSchema)]
pub struct UserView {
    pub name: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: Option<String>,
    pub password_changed_at: Option<String>,
    pub last_login_at: Option<String>,
    /// The generated password (only when none was given).
    pub password: Option<String>,
}

/// An account that was deleted.
#[derive(ToSchema)]
pub struct UserDeleted {
    pub name: String,
}

/// An API token; `token`, its value, is there once, when it is created.
#[derive(ToSchema)]
pub struct TokenView {
    pub id: u64,
    pub name: String,
    pub role: String,
    /// The token's first characters, to tell it apart.
    pub hint: String,
    /// active, expired 或 revoked
    pub state: String,
    pub created_at: Option<String>,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    pub token: Option<String>,
}

/// Counters of the script logs: the store, the rate limit, each script's
/// logger and the WebSocket.
#[derive(ToSchema)]
pub struct LogStats {
    pub store: Value,
    pub rate_limit: Value,
    pub scripts: Vec<Value>,
    pub websocket: Value,
}

/// A point: its last value and how good it is.
#[derive(ToSchema)]
pub struct PointView {
    pub tag: String,
    pub value: Option<Value>,
    /// good, bad, uncertain 或 stale
    pub quality: String,
    pub error: Option<String>,
    pub last_change: Option<String>,
    pub last_read: Option<String>,
    pub writable: bool,
}

/// A robot: its state points and the commands it takes.
#[derive(ToSchema)]
pub struct RobotView {
    pub robot_id: String,
    pub description: String,
    pub online: bool,
    /// good 或 bad
    pub quality: String,
    /// Each state point by its short name.
    pub status: BTreeMap<String, Value>,
    pub points: Vec<PointView>,
    pub commands: Vec<String>,
}

/// The devices: each one's connection state and error counters (their fields
/// depend on the protocol).
#[derive(ToSchema)]
pub struct IoDevices(Vec<Value>);

/// The most recent point writes: who wrote what, when, with what outcome.
#[derive(ToSchema)]
pub struct IoWrites(Vec<Value>);

/// A deployment that failed to apply.
#[derive(ToSchema)]
pub struct FleetError {
    pub code: String,
    pub message: String,
    pub deployment_id: String,
    pub revision: u64,
    pub at_ms: u64,
}

/// A project fleet sync manages, and whether it was detached locally.
#[derive(ToSchema)]
pub struct FleetProject {
    pub project: String,
    pub detached: bool,
    pub since_ms: u64,
}

/// What fleet sync shows locally: its settings, apply state and projects.
#[derive(ToSchema)]
pub struct FleetStatus {
    pub enabled: bool,
    pub broker_url: String,
    pub device_id: String,
    pub fleet: String,
    pub groups: Vec<String>,
    /// Where applying the current deployment stands.
    pub apply_state: String,
    pub revision: u64,
    pub deployment_id: Option<String>,
    pub last_error: Option<FleetError>,
    pub projects: Vec<FleetProject>,
}

/// I/O counters (`config`, `board`, `points`, `poller`, `forwarder`), or
/// `{configured: false, message}` without an I/O configuration.
#[derive(ToSchema)]
pub struct IoStatus {
    pub configured: Option<bool>,
    pub message: Option<String>,
    pub config: Option<String>,
    pub board: Option<String>,
    pub points: Option<u64>,
    /// The poller's counters.
    pub poller: Option<Value>,
    pub forwarder: Option<Value>,
}
