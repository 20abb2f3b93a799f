//! The `[fleet]` settings of a device, and their checked form. Fleet sync is off
//! while `broker_url` is empty.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::FleetError;
use super::calls::Method;
use super::crypto;

/// `[fleet]` in the configuration file; `VWED_FLEET__BROKER_URL` and so on in the
/// environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetSettings {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`; empty = fleet sync off.
    pub broker_url: String,
    /// This device's id: its MQTT client id and its name in every topic.
    pub device_id: String,
    /// The fleet the device belongs to (the first level of every topic).
    pub fleet: String,
    /// Groups, in priority order: without a deployment of its own the device runs
    /// the first of these groups that has one. A list, or `"a,b"` in the environment.
    #[serde(deserialize_with = "vwed_base::lists::host_list")]
    pub groups: Vec<String>,
    /// Broker user; empty = no authentication.
    pub username: String,
    pub password: String,
    /// File holding the password (its first line); wins over `password`.
    pub password_file: String,
    /// `mqtts://`: PEM file of the CAs that may sign the broker's certificate;
    /// empty = the system's roots.
    pub ca_file: String,
    /// `mqtts://` with client certificates: PEM certificate chain and private key.
    pub client_cert_file: String,
    pub client_key_file: String,
    /// Ed25519 public keys (64 hex digits) whose signed deployments this device
    /// applies. A list, or `"k1,k2"` in the environment.
    #[serde(deserialize_with = "vwed_base::lists::host_list")]
    pub trusted_keys: Vec<String>,
    /// How long every script a deployment starts must stay up before it commits.
    pub health_window_ms: u64,
    /// Remote calls this device answers: execute, start, stop, restart, status, logs.
    #[serde(deserialize_with = "vwed_base::lists::host_list")]
    pub calls: Vec<String>,
    /// MQTT keep-alive: how soon a dead connection is noticed.
    pub keep_alive_s: u64,
    /// Longest wait for a deployment's files to arrive.
    pub fetch_timeout_ms: u64,
    /// Largest deployment (all its files) the device accepts.
    pub max_deployment_bytes: u64,
    /// Largest MQTT packet the device accepts (file chunks are smaller).
    pub max_packet_bytes: u64,
    /// Events kept for the broker while it is unreachable; beyond this the oldest
    /// are dropped, counted and reported.
    pub outbox_max_events: u64,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            broker_url: String::new(),
            device_id: String::new(),
            fleet: String::new(),
            groups: Vec::new(),
            username: String::new(),
            password: String::new(),
            password_file: String::new(),
            ca_file: String::new(),
            client_cert_file: String::new(),
            client_key_file: String::new(),
            trusted_keys: Vec::new(),
            health_window_ms: 30_000,
            calls: vec!["status".into(), "logs".into()],
            keep_alive_s: 30,
            fetch_timeout_ms: 300_000,
            max_deployment_bytes: 64 * 1024 * 1024,
            max_packet_bytes: 1024 * 1024,
            outbox_max_events: 10_000,
        }
    }
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
    pub fn parse(url: &str) -> Result<BrokerAddr, FleetError> {
        let bad = |why: &str| FleetError::Settings(format!("broker_url {url:?}: {why}"));
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

/// How the device logs in to the broker.
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

/// The settings, checked: what the agent runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub broker: BrokerAddr,
    pub login: BrokerLogin,
    pub device_id: String,
    pub fleet: String,
    pub groups: Vec<String>,
    pub trusted_keys: BTreeSet<String>,
    pub health_window: Duration,
    pub calls: BTreeSet<Method>,
    pub keep_alive: Duration,
    pub fetch_timeout: Duration,
    pub max_deployment_bytes: u64,
    pub max_packet_bytes: usize,
    pub outbox_max_events: u64,
}

/// Ids that become one topic level: no wildcards, no separators.
pub fn check_name(what: &str, name: &str) -> Result<(), FleetError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(FleetError::Settings(format!(
            "{what} {name:?}: 1 to 64 characters of A-Z a-z 0-9 - _ ."
        )))
    }
}

impl FleetSettings {
    pub fn enabled(&self) -> bool {
        !self.broker_url.trim().is_empty()
    }

    /// Checks every setting; reads the password and TLS files.
    pub fn resolve(&self) -> Result<Settings, FleetError> {
        let broker = BrokerAddr::parse(self.broker_url.trim())?;
        check_name("device_id", &self.device_id)?;
        check_name("fleet", &self.fleet)?;
        for g in &self.groups {
            check_name("group", g)?;
        }
        let mut trusted_keys = BTreeSet::new();
        for k in &self.trusted_keys {
            trusted_keys.insert(
                crypto::public_key_hex(k)
                    .map_err(|e| FleetError::Settings(format!("trusted_keys: {k:?}: {e}")))?,
            );
        }
        if trusted_keys.is_empty() {
            return Err(FleetError::Settings(
                "trusted_keys is empty: no deployment could ever be applied".into(),
            ));
        }
        let mut calls = BTreeSet::new();
        for c in &self.calls {
            calls.insert(Method::parse(c).ok_or_else(|| {
                FleetError::Settings(format!(
                    "calls: unknown call {c:?} (execute, start, stop, restart, status, logs)"
                ))
            })?);
        }
        if self.health_window_ms == 0 || self.keep_alive_s < 5 || self.fetch_timeout_ms == 0 {
            return Err(FleetError::Settings(
                "health_window_ms and fetch_timeout_ms must be above 0, keep_alive_s at least 5"
                    .into(),
            ));
        }
        let max_packet_bytes = usize::try_from(self.max_packet_bytes)
            .ok()
            .filter(|n| (super::MIN_PACKET_BYTES..=256 * 1024 * 1024).contains(n))
            .ok_or_else(|| {
                FleetError::Settings(format!(
                    "max_packet_bytes must be between {} and 256 MiB",
                    super::MIN_PACKET_BYTES
                ))
            })?;
        Ok(Settings {
            login: self.login(broker.tls)?,
            broker,
            device_id: self.device_id.clone(),
            fleet: self.fleet.clone(),
            groups: self.groups.clone(),
            trusted_keys,
            health_window: Duration::from_millis(self.health_window_ms),
            calls,
            keep_alive: Duration::from_secs(self.keep_alive_s),
            fetch_timeout: Duration::from_millis(self.fetch_timeout_ms),
            max_deployment_bytes: self.max_deployment_bytes,
            max_packet_bytes,
            outbox_max_events: self.outbox_max_events.max(1),
        })
    }

    fn login(&self, tls: bool) -> Result<BrokerLogin, FleetError> {
        let password = if self.password_file.is_empty() {
            self.password.clone()
        } else {
            read_secret(Path::new(&self.password_file))?
        };
        if !password.is_empty() && self.username.is_empty() {
            return Err(FleetError::Settings(
                "a broker password needs a username".into(),
            ));
        }
        let tls = if tls {
            Some(super::tls::client_config(
                non_empty(&self.ca_file),
                non_empty(&self.client_cert_file),
                non_empty(&self.client_key_file),
            )?)
        } else {
            None
        };
        Ok(BrokerLogin {
            username: self.username.clone(),
            password,
            tls,
        })
    }
}

fn non_empty(s: &str) -> Option<&Path> {
    (!s.is_empty()).then(|| Path::new(s))
}

/// The first line of a secret file, without its line end.
pub fn read_secret(path: &Path) -> Result<String, FleetError> {
    let text = std::fs::read_to_string(path).map_err(|e| FleetError::File {
        path: path.to_path_buf(),
        source: e,
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
    fn settings_need_keys_and_known_calls() {
        let mut s = FleetSettings {
            broker_url: "mqtt://127.0.0.1:1".into(),
            device_id: "d1".into(),
            fleet: "f".into(),
            ..FleetSettings::default()
        };
        let e = s.resolve().expect_err("no keys");
        assert!(e.to_string().contains("trusted_keys"), "{e}");
        s.trusted_keys = vec!["ab".repeat(32)];
        s.calls = vec!["reboot".into()];
        let e = s.resolve().expect_err("unknown call");
        assert!(e.to_string().contains("reboot"), "{e}");
        s.calls = vec!["execute".into(), "status".into()];
        let r = s.resolve().expect("valid");
        assert_eq!(r.calls.len(), 2);
        assert!(r.login.tls.is_none());
    }
}
