//! `vwed-edge`: the VWED Edge runtime.
//!
//! `serve` runs the supervisor: the HTTP/WebSocket API, storage, and one worker
//! process per running script. The same binary, started with the hidden `worker`
//! command, is that worker: it hosts CPython and runs one script.

use std::net::SocketAddr;

use std::path::PathBuf;
use vwed_runtime::config;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vwed-edge",
    version,
    about = "VWED Edge: runs Python automation scripts on robot and PLC controllers",
    long_about = "VWED Edge runs Python scripts for the VWED task server on the controller itself. \
A script's boot() registers HTTP routes, functions, event listeners and timers through the global \
VWED object; the runtime serves them, keeps every registration and log on the device, and starts \
the same scripts again after a restart or power cut.\n\nEach running script lives in its own worker \
process, so a crash, busy loop or memory bomb in one script never touches another or the runtime."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the runtime: API on --listen, data under --data-dir.
    ///
    /// Settings come from, in rising order: built-in defaults, the TOML file given by
    /// --config, VWED_* environment variables (VWED_CALL_TIMEOUT_MS=5000 sets
    /// call_timeout_ms), and these flags. The first start on an empty data dir
    /// creates a sample project.
    Serve {
        /// Address for the HTTP/WebSocket API [default: 127.0.0.1:8000; env: VWED_LISTEN].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Directory for the database and project sources [default: ./vwed-data;
        /// env: VWED_DATA_DIR].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file.
        #[arg(long, env = "VWED_CONFIG")]
        config: Option<PathBuf>,
        /// Board profile for I/O: a built-in name (linux-sim, raspberry-pi-4,
        /// revpi-connect, siemens-iot2050) or a profile file.
        #[arg(long)]
        board: Option<String>,
        /// Device config TOML (buses, devices, points, robots); relative to --data-dir.
        #[arg(long)]
        io_config: Option<String>,
        /// Start without restoring the scripts that ran before (safe mode); they
        /// stay listed until started again or `POST /api/script/safe-mode/exit`.
        #[arg(long)]
        safe: bool,
    },
    /// Print the effective configuration as TOML and exit.
    Config {
        #[arg(long, env = "VWED_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the type stubs of the VWED object (vwed.pyi) for editors.
    Stubs,
    /// Internal: a script worker. Started by `serve`, never by hand.
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        analyzer: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Worker { analyzer } => {
            let mode = if analyzer {
                vwed_pyhost::worker::Mode::Analyzer
            } else {
                vwed_pyhost::worker::Mode::Script
            };
            std::process::exit(vwed_pyhost::worker::run(3, mode));
        }
        Command::Stubs => {
            print!("{}", vwed_pyhost::STUBS_PYI);
            Ok(())
        }
        Command::Config { config } => {
            let cfg = config::Config::load(config.as_deref(), &config::Overrides::default())?;
            print!("{}", toml::to_string_pretty(&cfg)?);
            Ok(())
        }
        Command::Serve {
            listen,
            data_dir,
            config,
            board,
            io_config,
            safe,
        } => {
            let overrides = config::Overrides {
                listen,
                data_dir,
                board,
                io_config,
                safe,
            };
            let cfg = config::Config::load(config.as_deref(), &overrides)?;
            init_tracing();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .worker_threads(cfg.executor_threads.clamp(1, 64))
                .max_blocking_threads(16)
                .thread_name("vwed-rt")
                .build()
                .context("cannot start the async runtime")?;
            Ok(rt.block_on(vwed_runtime::serve(cfg))?)
        }
    }
}

/// The runtime's own log goes to stderr, coloured only for a terminal: journald
/// and log files get plain text. `RUST_LOG` takes a level or `target=level,...`
/// (default `info`); a `Targets` filter rather than `EnvFilter`, whose span and
/// regex directives put a regex engine into the binary (about 0.3 MB on aarch64,
/// out of the controller's 15 MB budget).
fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .finish()
        .with(filter)
        .init();
}
