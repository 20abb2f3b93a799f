//! `vwed-fleet`: the central side of fleet sync (docs/fleet.md). It signs and
//! publishes deployments, follows them, rolls them back and calls devices. It
//! runs on the central server or an engineer's machine, never on a controller,
//! so it is a crate of its own: the device binary (`vwed-edge`) carries only the
//! agent and stays within its size budget, and this one links no HTTP server,
//! database or Python (tests/links.rs checks it).

mod args;
mod call;
mod cli;
mod deploy;
mod session;
mod status;

use clap::Parser;
use cli::FleetCommand;

#[derive(Parser)]
#[command(
    name = "vwed-fleet",
    version,
    about = "VWED Edge fleet sync, the central side: signing keys, deployments, status, remote calls",
    long_about = "VWED Edge fleet sync, the central side. Devices (vwed-edge with a [fleet] \
section) follow the signed desired state this tool publishes, retained, on an MQTT broker: \
keygen makes the signing key, deploy signs and publishes a deployment to a device or a \
group, status follows it, rollback publishes the previous one again, call calls a device. \
See docs/fleet.md."
)]
struct Cli {
    #[command(subcommand)]
    command: FleetCommand,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    std::process::exit(cli::run(cli.command)?)
}
