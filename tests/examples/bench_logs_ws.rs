//! Log path figures against a release binary:
//!
//! 1. lines persisted and acknowledged from one script: a function logs N lines
//!    with `VWED.log.sync_info`, then `VWED.log.flush()`; lines/s = lines the store
//!    committed / time from the first log call to flush() returning;
//! 2. WebSocket push delay: an async function logs a line carrying its wall-clock
//!    time every 5 ms; a subscribed client notes when each line arrives.
//!
//! cargo build --release -p vwed-edge
//! VWED_EDGE_BIN=target/release/vwed-edge cargo run --release -p vwed-e2e --example bench_logs_ws

use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};
use vwed_e2e::{Opts, Runtime, Value, json, py};

const SCRIPT: &str = r#"
    import asyncio, time

    def spam(args):
        n = args["n"]
        t0 = time.perf_counter()
        for i in range(n):
            VWED.log.sync_info(f"bench line {i} temperature=42.5 state=running")
        r = VWED.log.flush()
        return {"seconds": time.perf_counter() - t0, "flush": r}

    async def pulse(args):
        for i in range(args["n"]):
            await VWED.log.info(f"lat {time.time_ns()}")
            await asyncio.sleep(0.005)
        return True

    def boot():
        VWED.function.register("spam", spam)
        VWED.function.register("pulse", pulse)
"#;

fn written(rt: &Runtime) -> (u64, u64) {
    let s = rt.get("/api/script/logs/stats");
    let st = &s.data()["store"];
    (
        st["written"].as_u64().unwrap_or(0),
        st["queue_dropped"].as_u64().unwrap_or(0),
    )
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn pct(v: &[f64], p: f64) -> f64 {
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn main() {
    let rt = Runtime::with(Opts::default().env("VWED_LOG_RATE_PER_SEC", "0"));
    let sid = rt.deploy("bench", "logbench.py", &py(SCRIPT));

    // Throughput: warm up once, then the best of three runs.
    let n: u64 = std::env::var("LINES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    rt.execute_ok(Some(&sid), "spam", json!({"n": 20_000}));
    let mut best = 0.0f64;
    for run in 1..=3 {
        let (w0, d0) = written(&rt);
        let r = rt.execute_ok(Some(&sid), "spam", json!({"n": n}));
        let secs = r["seconds"].as_f64().unwrap_or(f64::NAN);
        let (w1, d1) = written(&rt);
        let committed = w1 - w0;
        let rate = committed as f64 / secs;
        println!(
            "run {run}: {n} lines logged, {committed} committed, {} dropped at the queue, \
             {secs:.3} s to flush() returning -> {rate:.0} lines/s acknowledged",
            d1 - d0
        );
        best = best.max(rate);
    }
    println!("log lines persisted and acknowledged: best {best:.0} lines/s");
    let stats = rt.get("/api/script/logs/stats");
    let st = &stats.data()["store"];
    let file = std::fs::metadata(rt.data_dir().join("logs.redb")).map_or(0, |m| m.len());
    println!(
        "store: {} lines kept, {} bytes charged (limit {}), {} pruned, logs.redb {} bytes",
        st["lines"], st["bytes"], st["max_bytes"], st["pruned"], file
    );

    // Push delay.
    let url = format!(
        "ws://127.0.0.1:{}/api/script/ws/script-logs?client_id=bench&client_type=bench",
        rt.port
    );
    let (mut ws, _): (WebSocket<MaybeTlsStream<TcpStream>>, _) =
        tungstenite::connect(url).expect("websocket");
    ws.send(Message::text(
        json!({"type": "subscribe", "script_id": sid}).to_string(),
    ))
    .expect("subscribe");
    loop {
        if let Ok(Message::Text(t)) = ws.read() {
            let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
            if v["type"] == "subscribed" {
                break;
            }
        }
    }
    let samples: u64 = 2_000;
    let base = rt.base.clone();
    let sid2 = sid.clone();
    let caller = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(format!("{base}/api/script/scripts/execute-function"))
            .json(&json!({"script_id": sid2, "function_name": "pulse", "function_args": {"n": samples}, "timeout_ms": 120_000}))
            .timeout(Duration::from_secs(130))
            .send()
            .map(|r| r.status().as_u16())
    });
    let mut delays = Vec::with_capacity(samples as usize);
    let deadline = Instant::now() + Duration::from_secs(120);
    while delays.len() < samples as usize && Instant::now() < deadline {
        let Ok(Message::Text(t)) = ws.read() else {
            continue;
        };
        let got = now_ns();
        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
        let Some(sent) = v["message"]
            .as_str()
            .and_then(|m| m.strip_prefix("lat "))
            .and_then(|s| s.parse::<u128>().ok())
        else {
            continue;
        };
        delays.push(got.saturating_sub(sent) as f64 / 1e6);
    }
    let _ = caller.join();
    delays.sort_by(|a, b| a.total_cmp(b));
    println!(
        "websocket push delay over {} lines: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        delays.len(),
        pct(&delays, 0.50),
        pct(&delays, 0.99),
        delays.last().copied().unwrap_or(f64::NAN)
    );
}
