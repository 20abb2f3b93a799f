//! The server's bounds, taken from the runtime settings, and the descriptor budget
//! that decides how many connections may be open at once.

use std::time::Duration;

use super::ServerSettings;

#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("{0} must be more than 0")]
    Zero(&'static str),
}

/// How long each phase of a connection may take, and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request head must be complete this long after the connection started (or,
    /// on a kept-alive connection, after its first byte arrived).
    pub header_read: Duration,
    /// A kept-alive connection may wait this long for its next request.
    pub keep_alive_idle: Duration,
    pub tls_handshake: Duration,
    pub body: BodyLimits,
    pub max_connections: usize,
    pub fd_reserve: u64,
}

/// How slowly, and for how long, a request body may arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Counted from the first time the handler waits for body bytes.
    pub total: Duration,
    /// Fewest bytes per second, over each `window`; 0 = no floor.
    pub min_bytes_per_s: u64,
    pub window: Duration,
}

impl BodyLimits {
    /// Bytes that must arrive within one window.
    pub fn bytes_per_window(&self) -> u64 {
        let ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        self.min_bytes_per_s.saturating_mul(ms) / 1000
    }
}

impl Limits {
    pub fn from_settings(cfg: &ServerSettings) -> Result<Limits, LimitsError> {
        let ms = |v: u64, name: &'static str| {
            if v == 0 {
                Err(LimitsError::Zero(name))
            } else {
                Ok(Duration::from_millis(v))
            }
        };
        if cfg.max_connections == 0 {
            return Err(LimitsError::Zero("max_connections"));
        }
        Ok(Limits {
            header_read: ms(cfg.header_read_timeout_ms, "header_read_timeout_ms")?,
            keep_alive_idle: ms(cfg.keep_alive_idle_ms, "keep_alive_idle_ms")?,
            tls_handshake: ms(cfg.tls_handshake_timeout_ms, "tls_handshake_timeout_ms")?,
            body: BodyLimits {
                total: ms(cfg.body_read_timeout_ms, "body_read_timeout_ms")?,
                min_bytes_per_s: cfg.body_min_bytes_per_s,
                window: ms(cfg.body_rate_window_ms, "body_rate_window_ms")?,
            },
            max_connections: cfg.max_connections,
            fd_reserve: cfg.fd_reserve,
        })
    }

    /// Connections allowed with `nofile` descriptors: the limit minus the reserve,
    /// but never less than a quarter of the limit (a limit too small for the
    /// reserve still serves someone), and never more than `max_connections`.
    pub fn connection_cap(&self, nofile: u64) -> usize {
        let room = nofile.saturating_sub(self.fd_reserve).max(nofile / 4);
        usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(self.max_connections)
            .max(1)
    }
}

/// The descriptor limit before and after [`raise_nofile`].
#[derive(Debug, Clone, Copy)]
pub struct Nofile {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit: the soft default (often
/// 1,024) is what lets a few hundred idle connections starve the runtime.
pub fn raise_nofile() -> std::io::Result<Nofile> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let soft_before = rl.rlim_cur;
    // An unlimited hard limit cannot be the soft one: the kernel caps descriptors at
    // fs.nr_open.
    let target = if rl.rlim_max == libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(1 << 20)
    } else {
        rl.rlim_max
    };
    if target > soft_before {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: rl.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(Nofile {
        soft_before,
        soft: target.max(soft_before),
        hard: rl.rlim_max,
    })
}

/// The current soft limit, when raising it failed.
pub fn current_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    // SAFETY: getrlimit writes into the struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    rl.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(reserve: u64, max: usize) -> Limits {
        let cfg = ServerSettings {
            fd_reserve: reserve,
            max_connections: max,
            ..ServerSettings::default()
        };
        Limits::from_settings(&cfg).expect("limits")
    }

    #[test]
    fn connection_cap_keeps_the_reserve_and_a_quarter_at_least() {
        assert_eq!(limits(256, 1024).connection_cap(20_000), 1024);
        assert_eq!(limits(256, 1024).connection_cap(1024), 768);
        // The reserve does not fit: a quarter of the limit still serves.
        assert_eq!(limits(256, 1024).connection_cap(256), 64);
        assert_eq!(limits(96, 1024).connection_cap(256), 160);
        assert_eq!(limits(0, 1024).connection_cap(0), 1);
    }

    #[test]
    fn zero_timeouts_are_refused_but_no_rate_floor_is_fine() {
        let mut cfg = ServerSettings {
            body_min_bytes_per_s: 0,
            ..ServerSettings::default()
        };
        assert!(Limits::from_settings(&cfg).is_ok());
        cfg.header_read_timeout_ms = 0;
        let e = Limits::from_settings(&cfg).expect_err("zero header timeout");
        assert!(e.to_string().contains("header_read_timeout_ms"), "{e}");
    }

    #[test]
    fn bytes_per_window_scales_with_the_window() {
        let b = BodyLimits {
            total: Duration::from_secs(60),
            min_bytes_per_s: 1024,
            window: Duration::from_millis(500),
        };
        assert_eq!(b.bytes_per_window(), 512);
    }
}
