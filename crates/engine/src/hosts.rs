//! The narrow handles the engine gives `io` and `integrations`: they see what they
//! need (is a script running, its log, events, WebSocket topics, function calls),
//! never the `Engine` itself.

use std::future::Future;

use serde_json::Value;
use vwed_ipc::Level;

use super::{Engine, FnCallError};
use vwed_integrations::task_block::BlockHost;
use vwed_io::IoHost;

impl IoHost for Engine {
    fn is_running(&self, script_id: &str) -> bool {
        self.instance(script_id).is_some()
    }

    fn note(&self, script_id: &str, level: Level, text: String) {
        if let Some(inst) = self.instance(script_id) {
            inst.note(level, text);
        }
    }

    fn emit(&self, event: &str, data: &Value) -> usize {
        Engine::emit(self, event, data)
    }

    fn has_subscribers(&self) -> bool {
        self.logs.hub.has_clients()
    }

    fn audit(&self, entry: vwed_auth::audit::Entry) {
        self.auth.audit.record_nowait(entry);
    }

    fn publish(&self, topics: &[&str], build: &dyn Fn() -> Value) {
        self.logs.hub.publish_topic(topics, build);
    }
}

impl BlockHost for Engine {
    type Error = FnCallError;
    fn retryable(e: &FnCallError) -> bool {
        matches!(e, FnCallError::Failed { .. } | FnCallError::Gone(_))
    }
    fn call(
        &self,
        script_id: Option<&str>,
        name: &str,
        args: &Value,
        timeout_ms: Option<u64>,
    ) -> impl Future<Output = Result<Value, FnCallError>> + Send {
        self.call_function(script_id, name, args, timeout_ms)
    }

    fn announce(&self, event: &str, data: &Value) {
        Engine::emit(self, event, data);
    }
}
