//! The systemd notification protocol (`sd_notify`), without libsystemd.
//!
//! Under `Type=notify` systemd waits for `READY=1` before it calls the service
//! started, and with `WatchdogSec=` it restarts the service when `WATCHDOG=1`
//! stops arriving. A watchdog ping that a timer sends unconditionally only proves
//! that one timer still fires; [`Notifier::spawn_watchdog`] therefore pings only
//! after a caller-supplied health check (executor responsive, store usable) has
//! passed, so a wedged runtime gets restarted instead of reported healthy.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) [`Notifier::from_env`] returns `None`
//! and the runtime simply has nothing to notify.
//!
//! Worker processes start with a cleared environment (`worker/confine.rs`), so
//! only the supervisor speaks for the service.

use std::future::Future;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where the notification socket is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(PathBuf),
    /// Linux abstract namespace; `NOTIFY_SOCKET` spells it with a leading `@`.
    Abstract(Vec<u8>),
}

/// A handle on the service manager's notification socket. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    socket: UnixDatagram,
    target: Target,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier systemd asked for through `NOTIFY_SOCKET`, or `None` when the
    /// process does not run under a notify-type unit. The watchdog interval comes
    /// from `WATCHDOG_USEC`/`WATCHDOG_PID` (see [`Notifier::watchdog_interval`]).
    pub fn from_env() -> Option<Notifier> {
        let addr = std::env::var_os("NOTIFY_SOCKET")?;
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        let watchdog = watchdog_from(usec.as_deref(), pid.as_deref(), std::process::id());
        Notifier::connect(addr.to_str()?, watchdog).ok()
    }

    /// A notifier for an explicit socket address (`/path` or `@abstract`), with
    /// an optional watchdog timeout (the full `WatchdogSec`, not the ping period).
    pub fn connect(addr: &str, watchdog_timeout: Option<Duration>) -> io::Result<Notifier> {
        let target = parse_target(addr)?;
        let socket = UnixDatagram::unbound()?;
        // Notifications are sent from async code: never let a full socket buffer
        // stall an executor thread. A dropped notification is retried by the next
        // ping; a blocked thread is what the watchdog is there to catch.
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            inner: Arc::new(Inner {
                socket,
                target,
                watchdog: watchdog_timeout,
            }),
        })
    }

    /// Sends raw `KEY=VALUE` lines, for messages without a helper here.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let sent = match &self.inner.target {
            Target::Path(p) => self.inner.socket.send_to(state.as_bytes(), p)?,
            Target::Abstract(name) => send_abstract(&self.inner.socket, state.as_bytes(), name)?,
        };
        if sent != state.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short notification datagram",
            ));
        }
        Ok(())
    }

    /// Startup finished: systemd marks the unit active and starts its dependents.
    pub fn notify_ready(&self) -> io::Result<()> {
        self.notify("READY=1")
    }

    /// One line of free text, shown by `systemctl status`.
    pub fn notify_status(&self, status: &str) -> io::Result<()> {
        // The protocol is newline-separated assignments: a newline in the text
        // would end STATUS= early and could inject another assignment.
        let one_line: String = status
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        self.notify(&format!("STATUS={one_line}"))
    }

    /// Shutdown has begun: systemd stops expecting watchdog pings.
    pub fn notify_stopping(&self) -> io::Result<()> {
        self.notify("STOPPING=1")
    }

    /// Asks for more time before the start (or stop) times out, e.g. while the
    /// scripts that were running are started again.
    pub fn notify_extend_timeout(&self, extra: Duration) -> io::Result<()> {
        self.notify(&format!("EXTEND_TIMEOUT_USEC={}", extra.as_micros()))
    }

    /// One watchdog ping. Prefer [`Notifier::spawn_watchdog`], which pings only
    /// while the runtime is healthy.
    pub fn notify_watchdog(&self) -> io::Result<()> {
        self.notify("WATCHDOG=1")
    }

    /// How often to ping: half of `WatchdogSec`, as systemd recommends, so that
    /// one late ping does not trigger a restart. `None` when no watchdog is
    /// configured for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.inner.watchdog.map(|t| t / 2)
    }

    /// Starts a task that, every [`Notifier::watchdog_interval`], runs `health`
    /// and sends `WATCHDOG=1` only when it returns `true` within the interval.
    /// A failing or hanging check withholds the ping, so systemd restarts the
    /// service once `WatchdogSec` passes without one. Returns `None` when no
    /// watchdog is configured. Must be called inside a tokio runtime.
    pub fn spawn_watchdog<F, Fut>(&self, health: F) -> Option<tokio::task::JoinHandle<()>>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let every = self.watchdog_interval()?;
        Some(self.spawn_watchdog_every(every, health))
    }

    /// [`Notifier::spawn_watchdog`] with an explicit ping period.
    pub fn spawn_watchdog_every<F, Fut>(
        &self,
        every: Duration,
        health: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let notifier = self.clone();
        let every = every.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            // After a stall, carry on at the normal pace rather than sending a
            // burst of catch-up pings that would hide how late we were.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut healthy = true;
            loop {
                ticks.tick().await;
                let ok = matches!(tokio::time::timeout(every, health()).await, Ok(true));
                if ok {
                    let _ = notifier.notify_watchdog();
                    if !healthy {
                        let _ = notifier.notify_status("running");
                    }
                } else if healthy {
                    let _ = notifier.notify_status("health check failing: watchdog pings withheld");
                }
                healthy = ok;
            }
        })
    }
}

/// `WATCHDOG_USEC` is meant for the process whose pid is `WATCHDOG_PID` (when
/// set): a child that inherited the variables must not ping on its parent's behalf.
fn watchdog_from(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok()? != my_pid
    {
        return None;
    }
    Some(Duration::from_micros(usec))
}

fn parse_target(addr: &str) -> io::Result<Target> {
    if let Some(name) = addr.strip_prefix('@') {
        if name.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty abstract socket name",
            ));
        }
        Ok(Target::Abstract(name.as_bytes().to_vec()))
    } else if addr.starts_with('/') {
        Ok(Target::Path(PathBuf::from(addr)))
    } else {
        // systemd only ever hands out absolute paths or abstract names.
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NOTIFY_SOCKET is neither an absolute path nor @abstract: {addr:?}"),
        ))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(socket: &UnixDatagram, buf: &[u8], name: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(buf, &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_socket: &UnixDatagram, _buf: &[u8], _name: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A bound datagram socket standing in for systemd, in a fresh temp dir.
    struct FakeManager {
        socket: UnixDatagram,
        path: PathBuf,
    }

    impl FakeManager {
        fn new(tag: &str) -> FakeManager {
            let dir = std::env::temp_dir().join(format!(
                "sdnotify-test-{}-{}-{tag}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join("notify.sock");
            let socket = UnixDatagram::bind(&path).expect("bind");
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            FakeManager { socket, path }
        }

        fn recv(&self) -> String {
            let mut buf = [0u8; 4096];
            let n = self.socket.recv(&mut buf).expect("recv");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        }

        /// Everything queued right now, without waiting.
        fn drain(&self) -> Vec<String> {
            self.socket.set_nonblocking(true).expect("nonblocking");
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = self.socket.recv(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            self.socket.set_nonblocking(false).expect("blocking");
            out
        }
    }

    impl Drop for FakeManager {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }

    fn notifier_for(m: &FakeManager, watchdog: Option<Duration>) -> Notifier {
        Notifier::connect(m.path.to_str().expect("utf-8 path"), watchdog).expect("connect")
    }

    #[test]
    fn sends_ready_status_stopping_to_a_path_socket() {
        let m = FakeManager::new("path");
        let n = notifier_for(&m, None);
        n.notify_ready().expect("ready");
        n.notify_status("loading 3 scripts").expect("status");
        n.notify_stopping().expect("stopping");
        n.notify_extend_timeout(Duration::from_secs(2))
            .expect("extend");
        assert_eq!(m.recv(), "READY=1");
        assert_eq!(m.recv(), "STATUS=loading 3 scripts");
        assert_eq!(m.recv(), "STOPPING=1");
        assert_eq!(m.recv(), "EXTEND_TIMEOUT_USEC=2000000");
    }

    #[test]
    fn status_cannot_smuggle_a_second_assignment() {
        let m = FakeManager::new("status");
        let n = notifier_for(&m, None);
        n.notify_status("bad\nREADY=1").expect("status");
        assert_eq!(m.recv(), "STATUS=bad READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("vwed-sdnotify-test-{}", std::process::id());
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let server = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let n = Notifier::connect(&format!("@{name}"), None).expect("connect");
        n.notify_ready().expect("ready");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"READY=1");
    }

    #[test]
    fn rejects_relative_and_empty_addresses() {
        assert!(Notifier::connect("relative/sock", None).is_err());
        assert!(Notifier::connect("@", None).is_err());
    }

    #[test]
    fn sending_to_a_missing_socket_is_an_error_not_a_panic() {
        let n = Notifier::connect("/nonexistent/vwed/notify.sock", None).expect("connect");
        assert!(n.notify_ready().is_err());
    }

    #[test]
    fn watchdog_env_parsing() {
        let me = 4242;
        assert_eq!(
            watchdog_from(Some("30000000"), None, me),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_from(Some("30000000"), Some("4242"), me),
            Some(Duration::from_secs(30))
        );
        // Inherited from a parent: not ours to ping.
        assert_eq!(watchdog_from(Some("30000000"), Some("1"), me), None);
        assert_eq!(watchdog_from(Some("0"), None, me), None);
        assert_eq!(watchdog_from(Some("soon"), None, me), None);
        assert_eq!(watchdog_from(None, Some("4242"), me), None);
        assert_eq!(watchdog_from(Some("30000000"), Some("x"), me), None);
    }

    #[test]
    fn pings_at_half_the_watchdog_timeout() {
        let m = FakeManager::new("interval");
        assert_eq!(
            notifier_for(&m, Some(Duration::from_secs(30))).watchdog_interval(),
            Some(Duration::from_secs(15))
        );
        assert_eq!(notifier_for(&m, None).watchdog_interval(), None);
    }

    #[tokio::test]
    async fn no_watchdog_task_without_a_timeout() {
        let m = FakeManager::new("none");
        assert!(
            notifier_for(&m, None)
                .spawn_watchdog(|| async { true })
                .is_none()
        );
    }

    #[tokio::test]
    async fn watchdog_pings_only_while_healthy() {
        let m = FakeManager::new("health");
        // WatchdogSec=100ms: pings every 50 ms.
        let n = notifier_for(&m, Some(Duration::from_millis(100)));
        let healthy = Arc::new(AtomicBool::new(true));
        let checks = Arc::new(AtomicUsize::new(0));
        let (h, c) = (healthy.clone(), checks.clone());
        let task = n
            .spawn_watchdog(move || {
                let (h, c) = (h.clone(), c.clone());
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    h.load(Ordering::SeqCst)
                }
            })
            .expect("watchdog configured");

        tokio::time::sleep(Duration::from_millis(300)).await;
        let healthy_msgs = m.drain();
        let pings = healthy_msgs.iter().filter(|s| *s == "WATCHDOG=1").count();
        assert!(
            pings >= 2,
            "expected pings while healthy, got {healthy_msgs:?}"
        );

        healthy.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let _ = m.drain(); // a ping may have been in flight when the flag flipped
        let before = checks.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sick_msgs = m.drain();
        assert!(
            checks.load(Ordering::SeqCst) > before,
            "health kept being checked"
        );
        assert!(
            !sick_msgs.iter().any(|s| s == "WATCHDOG=1"),
            "no pings while unhealthy, got {sick_msgs:?}"
        );

        healthy.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let back = m.drain();
        assert!(
            back.iter().any(|s| s == "WATCHDOG=1"),
            "pings resume, got {back:?}"
        );
        assert!(
            back.iter().any(|s| s == "STATUS=running"),
            "status restored, got {back:?}"
        );
        task.abort();
    }

    #[tokio::test]
    async fn a_hanging_health_check_withholds_the_ping() {
        let m = FakeManager::new("hang");
        let n = notifier_for(&m, None);
        let task = n.spawn_watchdog_every(Duration::from_millis(40), || async {
            std::future::pending::<()>().await;
            true
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let msgs = m.drain();
        assert!(!msgs.iter().any(|s| s == "WATCHDOG=1"), "got {msgs:?}");
        assert!(
            msgs.iter()
                .any(|s| s.starts_with("STATUS=health check failing")),
            "got {msgs:?}"
        );
        task.abort();
    }
}
