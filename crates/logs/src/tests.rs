use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use vwed_ipc::Level;

use super::record::LogLine;
use super::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "vwed-logs-{name}-{}-{}",
        std::process::id(),
        vwed_base::clock::unix_ms()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d.join("logs.redb")
}

fn open(name: &str, limits: StoreLimits, rate: u32, burst: u32) -> Arc<Logs> {
    Logs::open_at(&tmp(name), limits, rate, burst).expect("open")
}

fn all(logs: &Logs, q: LogQuery) -> Vec<super::record::LogEntry> {
    paged(
        logs,
        LogQuery {
            limit: MAX_LIMIT,
            ..q
        },
    )
}

/// Every line `q` selects, page by page of `q.limit`, following the cursor.
fn paged(logs: &Logs, mut q: LogQuery) -> Vec<super::record::LogEntry> {
    let mut out = Vec::new();
    loop {
        let p = logs.store.page(&q).expect("page");
        out.extend(p.entries);
        match p.next {
            Some(s) => q.after = Some(s),
            None => return out,
        }
    }
}

#[test]
fn group_commit_persists_every_line_in_few_transactions() {
    let logs = open("group", StoreLimits::default(), 0, 1);
    let s = logs.script("a.py_1_x", "p/a.py");
    let n = 50_000;
    for i in 0..n {
        assert!(s.script_line(Level::Info, "log", format!("line {i}"), None));
    }
    let written = logs.store.flush_blocking().expect("flush");
    assert_eq!(written, n);
    let batches = logs.store.stats.batches.load(Ordering::Relaxed);
    assert!(batches < n / 10, "{batches} transactions for {n} lines");
    let got = all(
        &logs,
        LogQuery {
            order: Order::Asc,
            ..LogQuery::default()
        },
    );
    assert_eq!(got.len() as u64, n);
    assert_eq!(got[0].message, "line 0");
    assert_eq!(got[n as usize - 1].message, format!("line {}", n - 1));
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
    logs.close();
}

#[test]
fn lines_survive_reopen_and_sequence_continues() {
    let path = tmp("reopen");
    let logs = Logs::open_at(&path, StoreLimits::default(), 0, 1).expect("open");
    let s = logs.script("a", "p/a.py");
    for i in 0..10 {
        s.script_line(Level::Info, "stdout", format!("x{i}"), None);
    }
    logs.store.flush_blocking().expect("flush");
    let last = logs.store.next_seq();
    logs.close();
    drop(s);
    drop(logs);
    let again = Logs::open_at(&path, StoreLimits::default(), 0, 1).expect("reopen");
    assert_eq!(all(&again, LogQuery::default()).len(), 10);
    assert!(again.store.next_seq() >= last, "seq must not restart");
    assert_eq!(
        again.store.get(1).expect("get").map(|e| e.message),
        Some("x0".to_string())
    );
}

#[test]
fn paging_with_cursor_both_orders() {
    let logs = open("paging", StoreLimits::default(), 0, 1);
    let s = logs.script("a", "p/a.py");
    for i in 0..250 {
        s.script_line(Level::Info, "log", format!("m{i}"), None);
    }
    logs.store.flush_blocking().expect("flush");
    for order in [Order::Desc, Order::Asc] {
        let mut q = LogQuery {
            limit: 100,
            order,
            ..LogQuery::default()
        };
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let p = logs.store.page(&q).expect("page");
            pages += 1;
            seen.extend(p.entries.iter().map(|e| e.seq));
            let Some(next) = p.next else { break };
            // The cursor round-trips through its text form.
            let (o, after) = decode_cursor(&encode_cursor(order, next)).expect("cursor");
            assert_eq!(o, order);
            q.after = Some(after);
        }
        assert_eq!(seen.len(), 250);
        assert!(pages >= 3);
        let sorted = seen.windows(2).all(|w| match order {
            Order::Desc => w[0] > w[1],
            Order::Asc => w[0] < w[1],
        });
        assert!(sorted, "{order:?}");
    }
    assert!(decode_cursor("zz").is_err());
    assert!(decode_cursor("").is_err());
}

#[test]
fn filters_by_script_level_text_and_time() {
    let logs = open("filters", StoreLimits::default(), 0, 1);
    let a = logs.script("a", "p/a.py");
    let b = logs.script("b", "p/b.py");
    a.script_line(Level::Debug, "log", "a debug".into(), None);
    a.script_line(Level::Warning, "log", "a warn disk".into(), None);
    b.script_line(Level::Error, "stderr", "b error disk".into(), None);
    let fields = serde_json::json!({"user_id": "12345"});
    b.script_line(Level::Info, "log", "b info".into(), Some(&fields));
    logs.store.flush_blocking().expect("flush");

    let msgs =
        |q: LogQuery| -> Vec<String> { all(&logs, q).into_iter().map(|e| e.message).collect() };
    assert_eq!(
        msgs(LogQuery {
            script_id: Some("a".into()),
            ..LogQuery::default()
        }),
        ["a warn disk", "a debug"]
    );
    assert_eq!(
        msgs(LogQuery {
            min_level: Level::Warning,
            ..LogQuery::default()
        }),
        ["b error disk", "a warn disk"]
    );
    assert_eq!(
        msgs(LogQuery {
            q: Some("disk".into()),
            script_id: Some("b".into()),
            ..LogQuery::default()
        }),
        ["b error disk"]
    );
    // Fields are searched too.
    assert_eq!(
        msgs(LogQuery {
            q: Some("12345".into()),
            ..LogQuery::default()
        }),
        ["b info"]
    );
    let now = vwed_base::clock::unix_ms();
    assert_eq!(
        msgs(LogQuery {
            since_ms: Some(now + 60_000),
            ..LogQuery::default()
        })
        .len(),
        0
    );
    assert_eq!(
        msgs(LogQuery {
            until_ms: Some(now + 60_000),
            ..LogQuery::default()
        })
        .len(),
        4
    );
    assert_eq!(
        logs.store
            .last_lines(
                LogQuery {
                    script_id: Some("b".into()),
                    ..LogQuery::default()
                },
                1
            )
            .expect("last")[0]
            .message,
        "b info"
    );
}

#[test]
fn pruning_by_size_keeps_the_newest() {
    let limits = StoreLimits {
        max_bytes: 200_000,
        prune_batch: 500,
        prune_interval: Duration::from_secs(3600),
        ..StoreLimits::default()
    };
    let logs = open("size", limits, 0, 1);
    let s = logs.script("chatty", "p/c.py");
    let pad = "x".repeat(200);
    for i in 0..5_000 {
        s.script_line(Level::Info, "log", format!("{i} {pad}"), None);
    }
    logs.store.flush_blocking().expect("flush");
    // Each pass is bounded; repeated passes get under the limit.
    let mut passes = 0;
    while logs.store.prune_now_blocking().expect("prune") > 0 {
        passes += 1;
        assert!(passes < 100);
    }
    let bytes = logs.store.stats.bytes.load(Ordering::Relaxed);
    assert!(bytes <= 200_000, "{bytes}");
    let left = all(&logs, LogQuery::default());
    assert!(!left.is_empty() && left.len() < 5_000);
    assert!(left[0].message.starts_with("4999 "), "newest kept");
    assert!(logs.store.stats.pruned.load(Ordering::Relaxed) >= 4_000);
    // The per-script index was pruned along with the lines.
    assert_eq!(
        all(
            &logs,
            LogQuery {
                script_id: Some("chatty".into()),
                ..LogQuery::default()
            }
        )
        .len(),
        left.len()
    );
}

#[test]
fn pruning_by_age() {
    let limits = StoreLimits {
        max_age_ms: 60_000,
        prune_interval: Duration::from_secs(3600),
        ..StoreLimits::default()
    };
    let logs = open("age", limits, 0, 1);
    let now = vwed_base::clock::unix_ms();
    for (i, age) in [(0u64, 3_600_000u64), (1, 120_000), (2, 1_000)] {
        // Committed one by one: pruning works on whole chunks of a commit.
        let line = LogLine {
            seq: 0,
            ts_ms: now - age,
            script_id: Arc::from("a"),
            script_path: Arc::from("p/a.py"),
            level: Level::Info,
            stream: "log",
            message: format!("m{i}"),
            fields: String::new(),
        };
        logs.store.append(line, |_| {});
        logs.store.flush_blocking().expect("flush");
    }
    assert_eq!(logs.store.prune_now_blocking().expect("prune"), 2);
    let left: Vec<_> = all(&logs, LogQuery::default())
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(left, ["m2"]);
}

#[test]
fn rate_limit_drops_are_counted_and_reported() {
    let logs = open("rate", StoreLimits::default(), 1_000, 10);
    let s = logs.script("loud", "p/l.py");
    let passed = (0..1_000)
        .filter(|i| s.script_line(Level::Info, "log", format!("l{i}"), None))
        .count();
    assert!((10..60).contains(&passed), "{passed}");
    let dropped = s.rate_dropped.load(Ordering::Relaxed);
    assert_eq!(dropped as usize, 1_000 - passed);
    // The script goes quiet; once the bucket refills, the tick reports.
    std::thread::sleep(Duration::from_millis(20));
    s.tick();
    logs.store.flush_blocking().expect("flush");
    let warn = all(
        &logs,
        LogQuery {
            min_level: Level::Warning,
            ..LogQuery::default()
        },
    );
    assert_eq!(warn.len(), 1);
    assert_eq!(
        warn[0].message.split(' ').next(),
        Some(dropped.to_string().as_str())
    );
    assert!(warn[0].message.contains("lines dropped by rate limit"));
    assert_eq!(warn[0].fields_json().expect("fields")["dropped"], dropped);
    // Runtime lines are never limited.
    for _ in 0..100 {
        s.system(Level::Info, "lifecycle".into());
    }
    logs.store.flush_blocking().expect("flush");
    let sys = all(
        &logs,
        LogQuery {
            q: Some("lifecycle".into()),
            ..LogQuery::default()
        },
    );
    assert_eq!(sys.len(), 100);
    assert_eq!(logs.stats_json()["scripts"][0]["rate_dropped"], dropped);
}

#[test]
fn long_lines_within_the_line_rate_are_held_to_the_byte_rate() {
    let rate = RateLimit {
        bytes_per_sec: 64 * 1024,
        bytes_burst: 256 * 1024,
        ..RateLimit::lines(5_000, 20_000)
    };
    let store = LogStore::open(&tmp("bytes"), 1 << 20, StoreLimits::default()).expect("open");
    let logs = Logs::new(store, Hub::new(1024, 4 << 20), rate);
    let s = logs.script("wide", "p/w.py");
    let line = "x".repeat(64 * 1024);
    let passed = (0..200)
        .filter(|_| s.script_line(Level::Info, "stdout", line.clone(), None))
        .count();
    assert!(
        (4..7).contains(&passed),
        "a 256 KiB burst holds 4 lines: {passed}"
    );
    // Short lines still pass once the bucket has room for them.
    std::thread::sleep(Duration::from_millis(50));
    assert!(s.script_line(Level::Info, "stdout", "short".into(), None));
    assert_eq!(
        s.rate_dropped.load(Ordering::Relaxed) as usize,
        200 - passed
    );
    assert_eq!(logs.stats_json()["rate_limit"]["bytes_per_sec"], 65_536);
}

#[test]
fn full_queue_drops_are_counted_never_blocking() {
    let limits = StoreLimits {
        queue_lines: 16,
        ..StoreLimits::default()
    };
    let logs = open("queue", limits, 0, 1);
    let s = logs.script("a", "p/a.py");
    let n = 100_000u64;
    let t0 = std::time::Instant::now();
    for i in 0..n {
        s.script_line(Level::Info, "log", format!("q{i}"), None);
    }
    assert!(t0.elapsed() < Duration::from_secs(20));
    logs.store.flush_blocking().expect("flush");
    let st = &logs.store.stats;
    let written = st.written.load(Ordering::Relaxed);
    let dropped = st.queue_dropped.load(Ordering::Relaxed);
    assert_eq!(written + dropped, n);
    assert_eq!(all(&logs, LogQuery::default()).len() as u64, written);
}

#[tokio::test]
async fn lines_reach_websocket_subscribers() {
    let logs = open("hub", StoreLimits::default(), 0, 1);
    let c = logs.hub.connect("t", "test");
    c.subscribe("a");
    let s = logs.script("a", "p/a.py");
    s.script_line(
        Level::Warning,
        "log",
        "hello".into(),
        Some(&serde_json::json!({"k": 1})),
    );
    s.status("stopped", "脚本已停止");
    s.function_execution("calc", Ok(&serde_json::json!(42)), 1.5);
    s.function_execution("calc", Err("boom".into()), 2.0);
    let got: Vec<serde_json::Value> = c
        .next_batch()
        .await
        .expect("batch")
        .iter()
        .map(|m| serde_json::from_str(m).expect("json"))
        .collect();
    assert_eq!(got[0]["type"], "script_log");
    assert_eq!(got[0]["level"], "WARNING");
    assert_eq!(got[0]["fields"]["k"], 1);
    assert_eq!(got[1]["type"], "script_status");
    assert_eq!(got[1]["status"], "stopped");
    assert_eq!(got[2]["execution_type"], "success");
    assert_eq!(got[2]["result"]["data"], 42);
    assert_eq!(got[3]["execution_type"], "error");
    assert_eq!(got[3]["result"]["error"], "boom");
}

#[test]
fn paging_one_script_among_others_across_chunks() {
    let logs = open("interleaved", StoreLimits::default(), 0, 1);
    let a = logs.script("a", "p/a.py");
    let b = logs.script("b", "p/b.py");
    for round in 0..4 {
        for i in 0..300 {
            a.script_line(Level::Info, "log", format!("a{round}-{i}"), None);
            b.script_line(Level::Info, "log", format!("b{round}-{i}"), None);
        }
        // Several commits, so that pages cross chunk boundaries.
        logs.store.flush_blocking().expect("flush");
    }
    for order in [Order::Desc, Order::Asc] {
        let q = LogQuery {
            script_id: Some("a".into()),
            limit: 37,
            order,
            ..LogQuery::default()
        };
        let got = paged(&logs, q);
        assert!(got.iter().all(|e| e.script_id == "a"));
        let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
        assert_eq!(seqs.len(), 1200, "{order:?}");
        let sorted = seqs.windows(2).all(|w| match order {
            Order::Desc => w[0] > w[1],
            Order::Asc => w[0] < w[1],
        });
        assert!(sorted, "{order:?}");
    }
}

#[test]
fn a_script_path_finds_every_run_of_the_script_across_restarts() {
    let path = tmp("by-path");
    let logs = Logs::open_at(&path, StoreLimits::default(), 0, 1).expect("open");
    // Two runs of main.py (a restart gives a new script_id) among another script.
    let first = logs.script("main.py_1_a", "proj/main.py");
    let other = logs.script("x.py_1_b", "proj/x.py");
    for i in 0..400 {
        first.script_line(Level::Info, "log", format!("run1-{i}"), None);
        other.script_line(Level::Info, "log", format!("x-{i}"), None);
    }
    logs.store.flush_blocking().expect("flush");
    drop((first, other));
    logs.close();
    drop(logs);
    let logs = Logs::open_at(&path, StoreLimits::default(), 0, 1).expect("reopen");
    let second = logs.script("main.py_2_c", "proj/main.py");
    for i in 0..400 {
        second.script_line(Level::Info, "log", format!("run2-{i}"), None);
    }
    logs.store.flush_blocking().expect("flush");
    for order in [Order::Desc, Order::Asc] {
        let q = LogQuery {
            script_path: Some("proj/main.py".into()),
            limit: 51,
            order,
            ..LogQuery::default()
        };
        let got = paged(&logs, q);
        assert_eq!(got.len(), 800, "{order:?}");
        assert!(got.iter().all(|e| e.script_path == "proj/main.py"));
        let runs: std::collections::BTreeSet<_> =
            got.iter().map(|e| e.script_id.as_str()).collect();
        assert_eq!(
            runs.into_iter().collect::<Vec<_>>(),
            ["main.py_1_a", "main.py_2_c"]
        );
    }
    // An id and a path together: that run only.
    let both = all(
        &logs,
        LogQuery {
            script_id: Some("main.py_2_c".into()),
            script_path: Some("proj/main.py".into()),
            ..LogQuery::default()
        },
    );
    assert_eq!(both.len(), 400);
}

#[test]
fn chunks_written_before_the_path_index_are_indexed_when_opened() {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
    let path = tmp("backfill");
    let logs = Logs::open_at(&path, StoreLimits::default(), 0, 1).expect("open");
    let s = logs.script("main.py_1_a", "proj/main.py");
    for i in 0..1000 {
        s.script_line(Level::Info, "log", format!("old-{i}"), None);
    }
    logs.store.flush_blocking().expect("flush");
    let bytes_indexed = logs.store.stats.bytes.load(Ordering::Relaxed);
    drop(s);
    logs.close();
    drop(logs);
    // Make it the store an earlier version left: no path index, no marker, and
    // the size without the path entries.
    let meta: TableDefinition<&str, u64> = TableDefinition::new("log_meta");
    {
        let db = redb::Database::create(&path).expect("db");
        let w = db.begin_write().expect("write");
        let entries = w
            .open_table(super::store::BY_PATH)
            .expect("t")
            .len()
            .expect("len");
        assert!(entries > 0);
        w.delete_table(super::store::BY_PATH).expect("drop index");
        let mut m = w.open_table(meta).expect("meta");
        m.remove("path_index").expect("marker");
        m.insert("bytes", bytes_indexed - 16 * entries)
            .expect("bytes");
        drop(m);
        w.commit().expect("commit");
    }
    let logs = Logs::open_at(&path, StoreLimits::default(), 0, 1).expect("reopen");
    assert_eq!(
        logs.store.stats.bytes.load(Ordering::Relaxed),
        bytes_indexed
    );
    let q = LogQuery {
        script_path: Some("proj/main.py".into()),
        ..LogQuery::default()
    };
    assert_eq!(all(&logs, q.clone()).len(), 1000);
    // Pruning takes the path entries along with the chunks.
    let limits = StoreLimits {
        max_age_ms: 0,
        prune_interval: Duration::from_secs(3600),
        ..StoreLimits::default()
    };
    logs.close();
    drop(logs);
    let logs = Logs::open_at(&path, limits, 0, 1).expect("reopen for pruning");
    std::thread::sleep(Duration::from_millis(5));
    while logs.store.prune_now_blocking().expect("prune") > 0 {}
    assert!(all(&logs, q).is_empty());
    let r = logs.store.db().begin_read().expect("read");
    let left = r
        .open_table(super::store::BY_PATH)
        .expect("t")
        .len()
        .expect("len");
    assert_eq!(left, 0, "no path entry outlives its chunk");
}

/// Floods the store with `n` lines of `len` bytes as fast as they go (the queue
/// drops what the writer cannot take); returns the largest file size seen.
fn flood(name: &str, max_bytes: u64, n: usize, len: usize) -> u64 {
    let path = tmp(name);
    let limits = StoreLimits {
        max_bytes,
        prune_interval: Duration::from_secs(3600),
        ..StoreLimits::default()
    };
    let logs = Logs::open_at(&path, limits, 0, 1).expect("open");
    let s = logs.script("flood", "p/flood.py");
    let line = "x".repeat(len);
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut largest = 0;
    for i in 0..n {
        s.script_line(Level::Info, "stdout", line.clone(), None);
        if i % 128 == 0 {
            largest = largest.max(size());
        }
    }
    logs.store.flush_blocking().expect("flush");
    while logs.store.prune_now_blocking().expect("prune") > 0 {}
    largest = largest.max(size());
    assert!(logs.store.stats.written.load(Ordering::Relaxed) > 0);
    logs.close();
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    largest
}

#[test]
fn logs_redb_stays_within_its_budget_under_a_flood() {
    const MIB: u64 = 1024 * 1024;
    for budget in [16 * MIB, 5 * MIB] {
        for (len, n) in [(64 * 1024, 2_000), (1_000, 60_000)] {
            let largest = flood(&format!("flood{budget}-{len}"), budget, n, len);
            assert!(
                largest <= budget + budget / 4,
                "lines of {len} bytes: logs.redb reached {largest} bytes for a budget of {budget}"
            );
        }
    }
}

#[test]
fn the_file_cap_follows_the_file_from_its_size_now() {
    use super::store::file_cap;
    const MIB: u64 = 1024 * 1024;
    assert_eq!(file_cap(64 * MIB, MIB), 64 * MIB);
    // A file redb shrank to 600 KiB doubles from there.
    assert_eq!(file_cap(64 * MIB, 600 * 1024), 600 * 1024 * 128);
    assert_eq!(file_cap(10 * MIB, MIB), 8 * MIB);
    // A file larger than the budget allows is not to grow, nor to be counted on.
    assert_eq!(file_cap(64 * MIB, 168 * MIB), 168 * MIB);
}
