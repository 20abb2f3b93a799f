//! Issue 9, item 4: idle, slow-header, slow-body and kept-alive connections were
//! never closed, and 1,100 idle connections on 1,024 descriptors made `/health`
//! and script routes time out and a script start fail with "Too many open files".
//! Each test sets short limits; every wait is bounded generously.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use vwed_e2e::{Opts, Runtime, json, py, wait_until, ws};

/// Longest any wait in these tests may take.
const BOUND: Duration = Duration::from_secs(20);

fn connect(rt: &Runtime) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", rt.port)).expect("connect to the runtime");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    s
}

/// Reads until the runtime closes the connection (end of file or reset) and
/// returns what it sent; `None` if it was still open after `BOUND`.
fn read_until_closed(s: &mut TcpStream) -> Option<String> {
    let deadline = Instant::now() + BOUND;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(String::from_utf8_lossy(&out).into_owned()),
        }
    }
    None
}

/// Sends `data` in `chunk`-byte pieces, one every `every`, and stops as soon as
/// the runtime answers or closes. Returns what it answered (`None`: nothing before
/// `BOUND`) and how many bytes were sent.
fn trickle(
    s: &mut TcpStream,
    data: &[u8],
    chunk: usize,
    every: Duration,
) -> (Option<String>, usize) {
    let deadline = Instant::now() + BOUND;
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    for piece in data.chunks(chunk) {
        if Instant::now() > deadline {
            return (None, sent);
        }
        if s.write_all(piece).is_err() {
            return (Some(String::new()), sent);
        }
        sent += piece.len();
        std::thread::sleep(every);
        match s.read(&mut buf) {
            Ok(0) => return (Some(String::new()), sent),
            Ok(n) => {
                let mut out = buf[..n].to_vec();
                out.extend(read_until_closed(s).unwrap_or_default().into_bytes());
                return (Some(String::from_utf8_lossy(&out).into_owned()), sent);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (Some(String::new()), sent),
        }
    }
    (None, sent)
}

/// Reads one answer with a `content-length` off a kept-alive connection.
fn read_answer(s: &mut TcpStream) -> String {
    let deadline = Instant::now() + BOUND;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .expect("content-length");
            if body.len() >= len {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "no full answer: {text}");
        match s.read(&mut buf) {
            Ok(0) => panic!("closed before the answer ended: {text}"),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn idle_connections_are_closed_after_the_header_timeout() {
    let rt = Runtime::with(Opts::default().env("VWED_HEADER_READ_TIMEOUT_MS", 500));
    let mut idle: Vec<TcpStream> = (0..20).map(|_| connect(&rt)).collect();
    for s in &mut idle {
        let said = read_until_closed(s).expect("an idle connection was still open");
        assert_eq!(said, "", "an idle connection got an answer");
    }
    rt.get("/health").ok();
}

#[test]
fn slow_header_connection_is_cut_at_the_header_timeout() {
    let rt = Runtime::with(Opts::default().env("VWED_HEADER_READ_TIMEOUT_MS", 1000));
    let mut s = connect(&rt);
    // 440 bytes at 2 bytes per 50 ms would take 11 s.
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(400)
    );
    let (answer, sent) = trickle(&mut s, head.as_bytes(), 2, Duration::from_millis(50));
    let answer = answer.expect("the slow head was not cut");
    assert!(sent < head.len(), "the whole head went through");
    assert!(!answer.contains("200 OK"), "{answer}");
}

fn slow_post(rt: &Runtime, body_len: usize) -> (TcpStream, Vec<u8>) {
    let mut s = connect(rt);
    let head = format!(
        "POST /api/script/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n",
        rt.bearer()
    );
    s.write_all(head.as_bytes()).expect("send the head");
    (s, vec![b' '; body_len])
}

#[test]
fn slow_body_is_cut_with_408_at_the_body_timeout() {
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_BODY_READ_TIMEOUT_MS", 1500)
            .env("VWED_BODY_MIN_BYTES_PER_S", 0),
    );
    let (mut s, body) = slow_post(&rt, 1000);
    let (answer, sent) = trickle(&mut s, &body, 1, Duration::from_millis(50));
    let answer = answer.expect("the slow body was not cut");
    assert!(sent < body.len(), "the whole body went through");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("请求体接收超时"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    rt.get("/health").ok();
}

#[test]
fn body_below_the_rate_floor_is_cut_with_408() {
    // The whole-body limit is far away: only the floor can cut this one.
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_BODY_READ_TIMEOUT_MS", 600_000)
            .env("VWED_BODY_MIN_BYTES_PER_S", 2000)
            .env("VWED_BODY_RATE_WINDOW_MS", 1000),
    );
    // 200 bytes/s, a tenth of the floor; all of it would take 100 s.
    let (mut s, body) = slow_post(&rt, 20_000);
    let (answer, sent) = trickle(&mut s, &body, 10, Duration::from_millis(50));
    let answer = answer.expect("the trickling body was not cut");
    assert!(sent < body.len(), "the whole body went through");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[test]
fn kept_alive_connection_is_closed_after_the_idle_timeout() {
    // A long head limit, so that only the idle limit can close it.
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_KEEP_ALIVE_IDLE_MS", 1000)
            .env("VWED_HEADER_READ_TIMEOUT_MS", 600_000),
    );
    let mut s = connect(&rt);
    for _ in 0..2 {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("send");
        let answer = read_answer(&mut s);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let rest = read_until_closed(&mut s).expect("the kept-alive connection was still open");
    assert_eq!(rest, "");
}

#[test]
fn websocket_session_outlives_the_connection_timeouts() {
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_HEADER_READ_TIMEOUT_MS", 300)
            .env("VWED_KEEP_ALIVE_IDLE_MS", 300)
            .env("VWED_BODY_READ_TIMEOUT_MS", 300),
    );
    let mut socket = ws::connect(&rt, "?client_id=long&client_type=test");
    ws::wait(&mut socket, "welcome", |v| v["type"] == "welcome");
    // Quiet for several times every limit.
    std::thread::sleep(Duration::from_secs(2));
    ws::send(&mut socket, json!({"type": "ping"}));
    ws::wait(&mut socket, "pong", |v| v["type"] == "pong");
}

#[test]
fn hung_script_handler_is_not_cut_by_the_connection_timeouts() {
    // Every limit well below the handler's 2 s (the idle one a little longer, so
    // that the test client's pooled connection is not closed under it between
    // the deploy requests).
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_HEADER_READ_TIMEOUT_MS", 300)
            .env("VWED_KEEP_ALIVE_IDLE_MS", 1000)
            .env("VWED_BODY_READ_TIMEOUT_MS", 300),
    );
    let src = py(r#"
        import time

        def boot():
            @VWED.api.post("/slow")
            def slow(request_data):
                time.sleep(2)
                return {"waited": True, "got": request_data["body"]}
    "#);
    rt.deploy("bounds", "slow.py", &src);
    let r = rt.call_route("POST", "/slow", Some(&json!({"x": 1})));
    r.expect_status(200);
    assert_eq!(r.json, json!({"waited": true, "got": {"x": 1}}));
}

/// The test process holds hundreds of sockets while other tests run.
fn raise_own_nofile() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

/// How many of `conns` the runtime has closed.
fn count_closed(conns: &mut [TcpStream]) -> usize {
    let mut buf = [0u8; 64];
    let mut closed = 0;
    for s in conns {
        s.set_nonblocking(true).expect("nonblocking");
        if !matches!(s.read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock) {
            closed += 1;
        }
    }
    closed
}

/// The number before "idle closed to make room" in the runtime's last
/// connection line, if it logged one.
fn logged_evictions(stderr: &str) -> Option<u64> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("HTTP connections:"))?;
    let (_, rest) = line.split_once("since start: ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn more_idle_connections_than_descriptors_leave_health_and_script_start_working() {
    const LIMIT: usize = 256;
    raise_own_nofile();
    // Nothing times out during the test: only the cap can make room.
    let rt = Runtime::with(
        Opts::default()
            .nofile(LIMIT as u64)
            .env("VWED_HEADER_READ_TIMEOUT_MS", 600_000)
            .env("VWED_KEEP_ALIVE_IDLE_MS", 600_000),
    );
    let mut idle: Vec<TcpStream> = (0..LIMIT + 44).map(|_| connect(&rt)).collect();
    // Connections are taken in order: this one comes after all the idle ones.
    rt.get("/health").ok();
    let src = py(r#"
        def boot():
            @VWED.api.get("/still")
            def still(request_data):
                return {"here": True}
    "#);
    rt.deploy("crowded", "still.py", &src);
    let r = rt.call_route("GET", "/still", None);
    r.expect_status(200);
    assert_eq!(r.json, json!({"here": true}));

    // Closing for room is counted and said.
    wait_until(
        BOUND,
        "a log line counting connections closed for room",
        || logged_evictions(&rt.stderr()).is_some_and(|n| n > 0),
    );
    let closed = count_closed(&mut idle);
    assert!(
        closed >= idle.len() - LIMIT,
        "only {closed} of {} idle connections were closed with {LIMIT} descriptors",
        idle.len()
    );
    let log = rt.stderr();
    assert!(!log.contains("Too many open files"), "{log}");
}
