//! A script block of the central task server: call a registered function and turn
//! its result into task variables (seed §3.4, §3.5, §12.1).
//!
//! - `function_call` / `SCRIPT`: the result becomes `scriptResult`.
//! - `set_task_variables` / `SET_TASK_VARIABLES`: a dict result is spread into the
//!   task variables; anything else becomes `scriptResult`.
//!
//! `timeout` applies to each attempt. `retry_count` extra attempts follow a failed
//! attempt (the function raised, or its worker went away), but not a timeout: a
//! timed-out call may still be running in its worker, and a second copy would run
//! beside it. An unknown function is not retried either: it will not appear by
//! itself within the block's time.

use std::future::Future;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::task_vars::{TaskVars, TaskVarsError};
use vwed_db::Db;

pub const MAX_RETRIES: u32 = 10;
pub const RESULT_VAR: &str = "scriptResult";
pub const COMPLETED_EVENT: &str = "task_completed";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    FunctionCall,
    SetTaskVariables,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "function_call" | "script" => Some(Mode::FunctionCall),
            "set_task_variables" => Some(Mode::SetTaskVariables),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::FunctionCall => "function_call",
            Mode::SetTaskVariables => "set_task_variables",
        }
    }
}

pub struct Block {
    pub mode: Mode,
    pub function_name: String,
    pub function_args: Value,
    pub script_id: Option<String>,
    pub task_id: Option<String>,
    pub task_variables: Map<String, Value>,
    pub timeout_ms: Option<u64>,
    pub retry_count: u32,
}

pub struct Outcome<E> {
    pub result: Result<Value, E>,
    pub attempts: u32,
    pub execution_time_ms: f64,
    /// Variables this block set (empty after a failure).
    pub set_variables: Map<String, Value>,
    /// All variables of the task after the block: the stored ones (with a task_id),
    /// the request's and the block's.
    pub task_variables: Map<String, Value>,
}

/// The variables a result produces in `mode`.
pub fn variables_of(mode: Mode, result: &Value) -> Map<String, Value> {
    match (mode, result) {
        (Mode::SetTaskVariables, Value::Object(m)) => m.clone(),
        _ => {
            let mut m = Map::new();
            m.insert(RESULT_VAR.to_string(), result.clone());
            m
        }
    }
}

/// What a task block needs from the runtime: calling a registered function and
/// announcing the outcome. The engine provides it; a test can fake it.
pub trait BlockHost: Send + Sync {
    /// How a call fails; its message is the block's error.
    type Error: std::fmt::Display + Send;
    /// Whether another attempt may succeed (the function raised, its worker was
    /// gone), unlike a missing function or arguments that do not fit.
    fn retryable(e: &Self::Error) -> bool;
    fn call(
        &self,
        script_id: Option<&str>,
        name: &str,
        args: &Value,
        timeout_ms: Option<u64>,
    ) -> impl Future<Output = Result<Value, Self::Error>> + Send;
    /// Delivers an event to its listeners.
    fn announce(&self, event: &str, data: &Value);
}

/// Runs the block, stores the variables when it succeeded and a task_id was given,
/// and emits `task_completed` either way.
pub async fn run<H: BlockHost>(
    host: &H,
    db: Db,
    b: Block,
) -> Result<Outcome<H::Error>, TaskVarsError> {
    let t0 = Instant::now();
    let (result, attempts) = call_with_retries(host, &b).await;
    let execution_time_ms = (t0.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let set_variables = match &result {
        Ok(v) => variables_of(b.mode, v),
        Err(_) => Map::new(),
    };
    let mut updates = b.task_variables.clone();
    updates.extend(set_variables.clone());
    let mut event = json!({
        "task_id": b.task_id,
        "function_name": b.function_name,
        "execution_mode": b.mode.as_str(),
        "success": result.is_ok(),
        "attempts": attempts,
        "execution_time_ms": execution_time_ms,
    });
    let task_variables = match store_variables(db, &b, result.is_ok(), updates).await {
        Ok(v) => v,
        Err(e) => {
            // The function ran but its variables could not be kept (e.g. a dict
            // with an empty key, or too large): the block failed, and says so.
            event["success"] = json!(false);
            event["error"] = json!(format!("任务变量保存失败: {e}"));
            if let Ok(v) = &result {
                event["function_result"] = v.clone();
            }
            host.announce(COMPLETED_EVENT, &event);
            return Err(e);
        }
    };
    match &result {
        Ok(v) => event["result"] = v.clone(),
        Err(e) => event["error"] = json!(e.to_string()),
    }
    host.announce(COMPLETED_EVENT, &event);
    Ok(Outcome {
        result,
        attempts,
        execution_time_ms,
        set_variables,
        task_variables,
    })
}

/// The function's result and how many attempts it took.
async fn call_with_retries<H: BlockHost>(host: &H, b: &Block) -> (Result<Value, H::Error>, u32) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let r = host
            .call(
                b.script_id.as_deref(),
                &b.function_name,
                &b.function_args,
                b.timeout_ms,
            )
            .await;
        match r {
            Err(e) if H::retryable(&e) && attempts <= b.retry_count.min(MAX_RETRIES) => {
                tracing::info!(
                    "task block {}: attempt {attempts} failed, retrying: {e}",
                    b.function_name
                );
            }
            other => return (other, attempts),
        }
    }
}

/// Merges `updates` into the task's stored variables when the block succeeded
/// and names a task; otherwise the updates are all there is.
async fn store_variables(
    db: Db,
    b: &Block,
    ok: bool,
    updates: Map<String, Value>,
) -> Result<Map<String, Value>, TaskVarsError> {
    match (&b.task_id, ok) {
        (Some(id), true) => {
            let store = TaskVars::new(db);
            let id = id.clone();
            tokio::task::spawn_blocking(move || store.merge(&id, updates))
                .await
                .map_err(|e| TaskVarsError::Internal(e.to_string()))
                .and_then(|r| r)
        }
        _ => Ok(updates),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug)]
    enum CallError {
        Raised,
        Mismatch,
    }

    impl std::fmt::Display for CallError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    /// Answers calls from a script of outcomes; records what was announced.
    struct FakeHost {
        outcomes: Mutex<Vec<Result<Value, CallError>>>,
        calls: Mutex<u32>,
        events: Mutex<Vec<Value>>,
    }

    impl FakeHost {
        fn new(mut outcomes: Vec<Result<Value, CallError>>) -> Self {
            outcomes.reverse();
            FakeHost {
                outcomes: Mutex::new(outcomes),
                calls: Mutex::new(0),
                events: Mutex::new(Vec::new()),
            }
        }
    }

    impl BlockHost for FakeHost {
        type Error = CallError;
        fn retryable(e: &CallError) -> bool {
            matches!(e, CallError::Raised)
        }
        fn call(
            &self,
            _script_id: Option<&str>,
            _name: &str,
            _args: &Value,
            _timeout_ms: Option<u64>,
        ) -> impl Future<Output = Result<Value, CallError>> + Send {
            *self.calls.lock().expect("calls") += 1;
            let next = self.outcomes.lock().expect("outcomes").pop();
            async move { next.unwrap_or(Ok(Value::Null)) }
        }

        fn announce(&self, _event: &str, data: &Value) {
            self.events.lock().expect("events").push(data.clone());
        }
    }

    fn block(retry_count: u32) -> Block {
        Block {
            mode: Mode::SetTaskVariables,
            function_name: "f".into(),
            function_args: json!({}),
            script_id: None,
            task_id: None,
            task_variables: Map::new(),
            timeout_ms: None,
            retry_count,
        }
    }

    fn db(tag: &str) -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "vwed-block-{tag}-{}-{}",
            std::process::id(),
            vwed_base::clock::unix_ms()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        (
            vwed_db::open(&dir.join("t.redb"), 1 << 20).expect("db"),
            dir,
        )
    }

    #[tokio::test]
    async fn a_raising_function_is_retried_but_arguments_that_do_not_fit_are_not() {
        let (db, dir) = db("retry");
        let host = FakeHost::new(vec![Err(CallError::Raised), Ok(json!({"a": 1}))]);
        let out = run(&host, db.clone(), block(3)).await.expect("run");
        assert_eq!(out.attempts, 2);
        assert_eq!(Value::Object(out.set_variables), json!({"a": 1}));
        assert_eq!(
            host.events.lock().expect("events")[0]["success"],
            json!(true)
        );

        let host = FakeHost::new(vec![Err(CallError::Mismatch)]);
        let out = run(&host, db, block(3)).await.expect("run");
        assert_eq!(*host.calls.lock().expect("calls"), 1, "not retried");
        assert!(matches!(out.result, Err(CallError::Mismatch)));
        assert_eq!(
            host.events.lock().expect("events")[0]["success"],
            json!(false)
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn modes_and_variables() {
        assert_eq!(Mode::parse("SCRIPT"), Some(Mode::FunctionCall));
        assert_eq!(Mode::parse("function_call"), Some(Mode::FunctionCall));
        assert_eq!(
            Mode::parse("SET_TASK_VARIABLES"),
            Some(Mode::SetTaskVariables)
        );
        assert_eq!(Mode::parse("other"), None);
        let dict = json!({"a": 1, "b": 2});
        assert_eq!(
            Value::Object(variables_of(Mode::SetTaskVariables, &dict)),
            dict
        );
        assert_eq!(
            Value::Object(variables_of(Mode::FunctionCall, &dict)),
            json!({"scriptResult": {"a": 1, "b": 2}})
        );
        assert_eq!(
            Value::Object(variables_of(Mode::SetTaskVariables, &json!(5))),
            json!({"scriptResult": 5})
        );
    }
}
