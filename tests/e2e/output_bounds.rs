//! Script output is bounded by bytes everywhere it is held (issue 9): a line
//! longer than `max_line_bytes` is cut with a marker, in the worker already;
//! the output ring, its endpoint and `logs.redb` keep their byte budgets; the
//! supervisor's memory returns after the script stops; and the output of a
//! stopped script says so.

use vwed_e2e::{Opts, Runtime, json, py, wait_until};

const MIB: u64 = 1024 * 1024;
/// What a cut line keeps of its text: the line limit less room for the marker.
const KEPT: u64 = 64 * 1024 - 64;

/// Resident anonymous memory (heap, stacks) of a process, from /proc: its code
/// pages, faulted in as new paths run, are not what is measured here.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

const SCRIPT: &str = r#"
    import sys

    def boot():
        VWED.api.register_route('/flood', 'POST', flood)
        VWED.api.register_route('/huge', 'POST', huge)

    def flood(request):
        line = 'x' * (1024 * 1024)
        for _ in range(200):
            print(line)
        print('flood done')
        return {'ok': True}

    def huge(request):
        big = 'y' * 200_000_000
        print(big)
        sys.stderr.write('z' * 1000)
        sys.stderr.write(big)
        sys.stderr.write('\n')
        VWED.log.info(big, detail=big)
        del big
        print('still alive')
        return {'ok': True}
"#;

fn output_lines(rt: &Runtime, sid: &str) -> (usize, Vec<String>) {
    let r = rt.get(&format!("/api/script/scripts/{sid}/output?limit=10000"));
    r.ok();
    let lines = r.data()["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l["message"].as_str().map(str::to_string))
        .collect();
    (r.text.len(), lines)
}

#[test]
fn script_output_has_a_byte_bound_and_memory_returns_after_stop() {
    let opts = Opts::default()
        .env("VWED_LOG_MAX_BYTES", 4 * MIB)
        .env("VWED_SPARE_WORKER", "false");
    let rt = Runtime::with(opts);
    let sid = rt.deploy("p", "chatty.py", &py(SCRIPT));
    // Settle: the first requests warm up the server's own buffers.
    for _ in 0..3 {
        rt.get(&format!("/api/script/scripts/{sid}/output"));
    }
    let before = rss(rt.pid());

    for _ in 0..3 {
        rt.call_route("POST", "/flood", Some(&json!({})))
            .expect_status(200);
    }
    let (body, lines) = output_lines(&rt, &sid);
    assert!(body < 2 * MIB as usize, "the output answer is {body} bytes");
    assert_eq!(lines.last().map(String::as_str), Some("flood done"));
    let cut = lines
        .iter()
        .find(|l| l.starts_with("xxx"))
        .expect("a long line");
    assert!(cut.len() <= 64 * 1024, "a line of {} bytes", cut.len());
    assert!(
        cut.ends_with(&format!("已截断 {} 字节]", MIB - KEPT)),
        "marker: {}",
        &cut[cut.len() - 80..]
    );
    let during = rss(rt.pid());
    assert!(
        during < before + 48 * MIB,
        "600 MiB of output took the supervisor from {before} to {during} bytes"
    );

    // Lines of 200 MB: cut in the worker, which goes on.
    rt.call_route("POST", "/huge", Some(&json!({})))
        .expect_status(200);
    let (_, lines) = output_lines(&rt, &sid);
    assert_eq!(lines.last().map(String::as_str), Some("still alive"));
    let marker = format!("已截断 {} 字节]", 200_000_000 - KEPT);
    let cut: Vec<&String> = lines.iter().filter(|l| l.ends_with(&marker)).collect();
    assert_eq!(cut.len(), 2, "print and VWED.log: {:?}", lines.len());
    assert!(
        lines.iter().any(|l| l.starts_with("zzz")
            && l.ends_with(&format!("已截断 {} 字节]", 200_000_000 + 1000 - KEPT))),
        "stderr cut"
    );
    assert_eq!(
        rt.running_entry(&sid).expect("still running")["status"],
        "running"
    );

    rt.stop(&sid).ok();
    wait_until(
        std::time::Duration::from_secs(10),
        "memory given back",
        || rss(rt.pid()) < before + 12 * MIB,
    );
    let logs = rt.data_dir().join("logs.redb");
    let size = std::fs::metadata(&logs).expect("logs.redb").len();
    assert!(
        size <= 5 * MIB,
        "logs.redb is {size} bytes for a budget of 4 MiB"
    );
}

#[test]
fn after_a_stop_the_output_says_stopped_not_stopping() {
    let rt = Runtime::start();
    let sid = rt.deploy("p", "s.py", "def boot():\n    print('up')\n");
    rt.stop(&sid).ok();
    let r = rt.get(&format!("/api/script/scripts/{sid}/output"));
    r.ok();
    assert_eq!(r.data()["status"], "stopped", "{}", r.text);
    let lines = r.data()["lines"].as_array().expect("lines");
    assert!(lines.iter().any(|l| l["message"] == "up"), "{}", r.text);
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count()
}

#[test]
fn an_ended_run_does_not_keep_its_worker_socket() {
    let rt = Runtime::with(Opts::default().env("VWED_SPARE_WORKER", "false"));
    let pid = rt.create_project("p");
    rt.create_file(pid, "s.py", "def boot():\n    print('up')\n");
    let cycle = || {
        let sid = rt.start_ok("p/s.py", None);
        rt.stop(&sid).ok();
    };
    cycle();
    let before = open_fds(rt.pid());
    for _ in 0..10 {
        cycle();
    }
    let mut after = open_fds(rt.pid());
    wait_until(std::time::Duration::from_secs(10), "sockets closed", || {
        after = open_fds(rt.pid());
        after <= before + 1
    });
    assert!(
        after <= before + 1,
        "{before} descriptors before, {after} after"
    );
}
