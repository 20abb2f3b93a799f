//! The `[fleet]` settings of a device, and their checked form. Fleet sync is off
//! while `broker_url` is empty.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vwed_fleet_proto::{BrokerAddr, BrokerLogin, check_name, crypto, read_secret, tls};

use super::FleetError;

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
            Some(tls::client_config(
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

/// A remote call a device may answer (`[fleet] calls` lists the allowed ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    Execute,
    Start,
    Stop,
    Restart,
    Status,
    Logs,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Method::Execute,
        Method::Start,
        Method::Stop,
        Method::Restart,
        Method::Status,
        Method::Logs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Execute => "execute",
            Method::Start => "start",
            Method::Stop => "stop",
            Method::Restart => "restart",
            Method::Status => "status",
            Method::Logs => "logs",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
