//! Where the broker is and how to log in to it: the settings both the device's
//! `[fleet]` section and the central command line's flags come down to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A broker setting that cannot be used. The device's configuration and the
/// command line word the setting differently, so the message names the value.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker_url {url:?}: {why}")]
    Url { url: String, why: &'static str },
    #[error("{what} {name:?}: 1 to 64 characters of A-Z a-z 0-9 - _ .")]
    Name { what: &'static str, name: String },
    #[error("cannot use {path}")]
    Secret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl BrokerAddr {
    /// `mqtt://host[:port]` (1883) or `mqtts://host[:port]` (8883); `[::1]:1883`
    /// for IPv6.
    pub fn parse(url: &str) -> Result<BrokerAddr, BrokerError> {
        let bad = |why: &'static str| BrokerError::Url {
            url: url.to_string(),
            why,
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(bad("must start with mqtt:// or mqtts://"));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains(['/', '@', '?', '#']) {
            return Err(bad(
                "only host and port (credentials are separate settings)",
            ));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
            None => default_port,
        };
        Ok(BrokerAddr { host, port, tls })
    }
}

/// How a client logs in to the broker.
#[derive(Clone, Default)]
pub struct BrokerLogin {
    pub username: String,
    pub password: String,
    /// `mqtts://` only.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for BrokerLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerLogin")
            .field("username", &self.username)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Ids that become one topic level: no wildcards, no separators.
pub fn check_name(what: &'static str, name: &str) -> Result<(), BrokerError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(BrokerError::Name {
            what,
            name: name.to_string(),
        })
    }
}

/// The first line of a secret file, without its line end.
pub fn read_secret(path: &Path) -> Result<String, BrokerError> {
    let text = std::fs::read_to_string(path).map_err(|source| BrokerError::Secret {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.lines().next().unwrap_or("").trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let a = BrokerAddr::parse("mqtt://127.0.0.1").expect("plain");
        assert_eq!((a.host.as_str(), a.port, a.tls), ("127.0.0.1", 1883, false));
        let a = BrokerAddr::parse("mqtts://broker.example:8884/").expect("tls");
        assert_eq!(
            (a.host.as_str(), a.port, a.tls),
            ("broker.example", 8884, true)
        );
        let a = BrokerAddr::parse("mqtt://[::1]:1900").expect("v6");
        assert_eq!((a.host.as_str(), a.port), ("::1", 1900));
        for bad in [
            "tcp://x",
            "mqtt://",
            "mqtt://u:p@host",
            "mqtt://h:99999",
            "mqtt://h/x",
        ] {
            assert!(BrokerAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_that_would_break_topics_are_refused() {
        for bad in ["", "a/b", "a+", "#", "a b", &"x".repeat(65)] {
            assert!(check_name("device_id", bad).is_err(), "{bad:?}");
        }
        check_name("device_id", "agv-01_A.2").expect("plain name");
    }

    #[test]
    fn a_secret_is_its_files_first_line() {
        let path = std::env::temp_dir().join(format!("vwed-secret-{}", std::process::id()));
        std::fs::write(&path, "s3cret \r\nsecond line\n").expect("write");
        let got = read_secret(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(got.expect("read"), "s3cret");
        let e = read_secret(&path).expect_err("gone");
        assert!(matches!(e, BrokerError::Secret { .. }), "{e}");
    }
}
