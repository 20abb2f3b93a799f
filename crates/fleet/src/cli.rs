//! The central side as a command line (`vwed-fleet ...`): what a person, a
//! test or the central VWED server uses to sign and publish deployments, follow
//! them, roll them back and call devices. docs/fleet.md has the same protocol
//! for servers written in other languages.

use std::path::PathBuf;

use clap::Subcommand;

use crate::args::CentralError;
use crate::{call, deploy, status};

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Makes an Ed25519 signing key: its seed goes to --out (mode 0600), the
    /// public key (for the devices' fleet.trusted_keys) to --out.pub and stdout.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Signs and publishes a deployment to a device or a group.
    Deploy(Box<deploy::DeployArgs>),
    /// Lists devices: revision, apply state, online, drift. With --wait, waits
    /// until every targeted device committed the current deployment (exit 0), one
    /// refused or rolled it back (exit 1), or --timeout-s passed (exit 2).
    Status(Box<status::StatusArgs>),
    /// Calls a device: executes a function (default), or --method
    /// start/stop/restart/logs with a script path, or status.
    Call(Box<call::CallArgs>),
    /// Publishes again, as a new revision, the deployment before the current one.
    Rollback(Box<deploy::RollbackArgs>),
}

/// How to reach the broker.
/// Runs one command; the value is the process's exit code.
pub fn run(cmd: FleetCommand) -> Result<i32, CentralError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CentralError::Runtime)?;
    rt.block_on(async move {
        match cmd {
            FleetCommand::Keygen { out } => deploy::keygen(&out),
            FleetCommand::Deploy(a) => deploy::deploy(&a).await,
            FleetCommand::Status(a) => status::status(&a).await,
            FleetCommand::Call(a) => call::call(&a).await,
            FleetCommand::Rollback(a) => deploy::rollback(&a).await,
        }
    })
}
