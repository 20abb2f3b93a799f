//! `call`: one remote call and its answer.

use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};
use tokio::time::Instant;

use vwed_base::clock;
use vwed_fleet_proto::check_name;

use crate::args::{BrokerArgs, CentralError};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    pub device: String,
    /// The function (execute), the script path (start, stop, restart, logs), or
    /// anything (status).
    pub target: String,
    /// Arguments (execute) or start params (start), as JSON.
    #[arg(default_value = "{}")]
    pub args: String,
    #[arg(long, default_value = "execute")]
    pub method: String,
    /// The call id; calls with the same id run once. Default: a fresh one.
    #[arg(long)]
    pub id: Option<String>,
    /// How long the device may take (its deadline) and this command waits.
    #[arg(long, default_value_t = 30)]
    pub wait_s: u64,
    /// Lines of output (logs).
    #[arg(long)]
    pub lines: Option<usize>,
    /// Publishes the call this many times (tests: a broker that delivers again).
    #[arg(long, default_value_t = 1, hide = true)]
    pub copies: usize,
}

pub async fn call(a: &CallArgs) -> Result<i32, CentralError> {
    check_name("device", &a.device)?;
    let args: Value = serde_json::from_str(&a.args)
        .map_err(|e| CentralError::Usage(format!("ARGS_JSON: {e}")))?;
    let mut s = Session::connect(&a.broker).await?;
    let reply_to = format!("{}/reply/{}", s.topics.root(), s.client_id);
    s.link.subscribe(std::slice::from_ref(&reply_to));
    let id =
        a.id.clone()
            .unwrap_or_else(|| format!("c-{}-{:08x}", clock::unix_ms(), rand::random::<u32>()));
    let wait = Duration::from_secs(a.wait_s.max(1));
    let msg = json!({
        "id": id,
        "method": a.method,
        "function": a.target,
        "script": a.target,
        "args": args,
        "start_params": args,
        "lines": a.lines,
        "deadline_ms": clock::unix_ms() + wait.as_millis() as u64,
        "reply_to": reply_to,
    })
    .to_string();
    let topic = s.topics.call(&a.device);
    let copies: Vec<_> = (0..a.copies.max(1))
        .map(|_| (topic.clone(), msg.clone().into_bytes(), false))
        .collect();
    s.publish_all(&copies).await?;
    let mut replies = Vec::new();
    let deadline = Instant::now() + wait + Duration::from_secs(2);
    let want = copies.len();
    s.watch(deadline, |t, payload| {
        if t == reply_to
            && let Ok(v) = serde_json::from_slice::<Value>(payload)
            && v["id"] == json!(id)
        {
            replies.push(v);
        }
        replies.len() >= want
    })
    .await?;
    s.close();
    let Some(first) = replies.first() else {
        eprintln!("no answer from {} within {}s", a.device, wait.as_secs());
        return Ok(2);
    };
    for r in &replies {
        println!("{r}");
    }
    Ok(if first["ok"] == json!(true) { 0 } else { 1 })
}
