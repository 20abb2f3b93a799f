//! What every command shares: the broker and target arguments, and how a
//! command fails.

use std::path::PathBuf;

use clap::Args;
use vwed_fleet_proto::crypto::CryptoError;
use vwed_fleet_proto::manifest::ManifestError;
use vwed_fleet_proto::tls::TlsError;
use vwed_fleet_proto::{BrokerError, check_name};

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot use {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("broker: {0}")]
    Link(String),
    #[error("{0}")]
    Timeout(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// --broker, a device or group name, --password-file.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// --ca-file, --client-cert-file, --client-key-file.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The signing key: its file's text, or the system's random source.
    #[error("signing key: {0}")]
    Key(#[from] CryptoError),
    /// The deployment the arguments describe is not one a device would take.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// mqtt://host[:port] or mqtts://host[:port].
    #[arg(long, env = "VWED_FLEET_BROKER")]
    pub broker: String,
    #[arg(long)]
    pub fleet: String,
    #[arg(long, default_value = "")]
    pub username: String,
    /// File whose first line is the broker password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// mqtts://: CA certificates (PEM); default: the system's.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    #[arg(long)]
    pub client_cert_file: Option<PathBuf>,
    #[arg(long)]
    pub client_key_file: Option<PathBuf>,
    /// Longest wait for the broker (connect, acknowledgements).
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
}

/// One device or one group.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long)]
    pub group: Option<String>,
}

impl TargetArgs {
    pub fn check(&self) -> Result<(), CentralError> {
        let (what, name) = match (&self.device, &self.group) {
            (Some(d), _) => ("device", d),
            (_, Some(g)) => ("group", g),
            _ => return Err(CentralError::Usage("--device or --group".into())),
        };
        Ok(check_name(what, name)?)
    }
}
