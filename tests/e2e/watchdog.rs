//! The systemd protocol against the real binary, with a datagram socket standing in
//! for systemd: READY=1 once the API serves, WATCHDOG=1 at half of WATCHDOG_USEC
//! while healthy, no pings while the runtime is wedged, STOPPING=1 on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use vwed_e2e::{Opts, Runtime};

fn messages_for(sock: &UnixDatagram, window: Duration) -> Vec<String> {
    let deadline = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        if let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

fn pings(msgs: &[String]) -> usize {
    msgs.iter().filter(|m| m.contains("WATCHDOG=1")).count()
}

#[test]
fn ready_then_pings_only_while_alive_then_stopping() {
    let dir = vwed_e2e::TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    // WatchdogSec=0.4 s: a ping every 0.2 s.
    let rt = Runtime::with(
        Opts::default()
            .env("NOTIFY_SOCKET", path.to_str().expect("utf8"))
            .env("WATCHDOG_USEC", 400_000),
    );
    let first = messages_for(&sock, Duration::from_millis(1500));
    assert!(first.iter().any(|m| m.contains("READY=1")), "{first:?}");
    assert!(pings(&first) >= 3, "pings while healthy: {first:?}");

    // Wedged: the process does not run at all, so nothing may claim it is alive.
    let pid = rt.pid() as i32;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let _ = messages_for(&sock, Duration::from_millis(100));
    let wedged = messages_for(&sock, Duration::from_millis(1000));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(pings(&wedged), 0, "no pings while wedged: {wedged:?}");
    let back = messages_for(&sock, Duration::from_millis(1500));
    assert!(pings(&back) >= 2, "pings resume: {back:?}");

    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let last = messages_for(&sock, Duration::from_millis(2000));
    assert!(last.iter().any(|m| m.contains("STOPPING=1")), "{last:?}");
}
