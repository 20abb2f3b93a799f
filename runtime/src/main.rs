//! `vwed-edge`: the VWED Edge runtime.
//!
//! `serve` runs the supervisor: the HTTP/WebSocket API, storage, and one worker
//! process per running script. The same binary, started with the hidden `worker`
//! command, is that worker: it hosts CPython and runs one script.

use std::net::SocketAddr;

use std::path::PathBuf;
use vwed_runtime::auth::Role;
use vwed_runtime::auth::admin::Command as AdminCommand;
use vwed_runtime::{config, secrets};

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
        /// Development only: ask for no credentials (every caller is admin).
        /// Refused unless --listen is a loopback address.
        #[arg(long)]
        no_auth: bool,
        /// Start without restoring the scripts that ran before (safe mode); they
        /// stay listed until started again or `POST /api/script/safe-mode/exit`.
        #[arg(long)]
        safe: bool,
    },
    /// Print the effective configuration as TOML (secrets as ***) and exit.
    Config {
        #[arg(long, env = "VWED_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage user accounts (through the running runtime, or offline).
    ///
    /// Works whether the runtime runs or not: a running one is reached through
    /// <data-dir>/admin.sock (run as the runtime's user), else the account store
    /// is changed directly.
    User {
        #[command(subcommand)]
        action: UserAction,
        #[command(flatten)]
        place: Place,
    },
    /// Manage API tokens for machines (Authorization: Bearer <token>).
    Token {
        #[command(subcommand)]
        action: TokenAction,
        #[command(flatten)]
        place: Place,
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

/// Which runtime's accounts: its data dir, from the flag, VWED_DATA_DIR or --config.
#[derive(clap::Args)]
struct Place {
    #[arg(long, env = "VWED_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[arg(long, env = "VWED_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print the answer as JSON.
    #[arg(long, global = true)]
    json: bool,
}

fn role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role {s:?} (viewer, operator, engineer, admin)"))
}

#[derive(Subcommand)]
enum UserAction {
    /// List users with role, state and last login.
    List,
    /// Add a user; prints a generated password unless --password-stdin.
    Add {
        name: String,
        /// viewer, operator, engineer or admin.
        #[arg(long, value_parser = role)]
        role: Role,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (generated unless --password-stdin); ends the user's sessions.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's role, or disable/enable the account.
    Set {
        name: String,
        #[arg(long, value_parser = role)]
        role: Option<Role>,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    /// Delete a user (the last enabled admin cannot be deleted).
    Del { name: String },
}

#[derive(Subcommand)]
enum TokenAction {
    /// List tokens with role, expiry, last use and state.
    List,
    /// Create a token; it is printed once and stored only as a hash.
    Create {
        /// What the token is for, e.g. "task-server" (shown in lists and the audit log).
        #[arg(long)]
        name: String,
        /// viewer, operator, engineer or admin.
        #[arg(long, value_parser = role)]
        role: Role,
        /// Days until it stops working (default: never).
        #[arg(long)]
        expires_days: Option<u64>,
    },
    /// Revoke a token at once (by the id `token list` shows).
    Revoke { id: u64 },
}

fn password_from_stdin(yes: bool) -> anyhow::Result<Option<String>> {
    if !yes {
        return Ok(None);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    Ok(Some(line.trim_end_matches(['\n', '\r']).to_string()))
}

fn user_command(a: UserAction) -> anyhow::Result<AdminCommand> {
    Ok(match a {
        UserAction::List => AdminCommand::UserList,
        UserAction::Add {
            name,
            role,
            password_stdin,
        } => AdminCommand::UserAdd {
            name,
            role,
            password: password_from_stdin(password_stdin)?,
        },
        UserAction::Passwd {
            name,
            password_stdin,
        } => AdminCommand::UserPasswd {
            name,
            password: password_from_stdin(password_stdin)?,
        },
        UserAction::Set {
            name,
            role,
            disable,
            enable,
        } => AdminCommand::UserSet {
            name,
            role,
            disabled: (disable || enable).then_some(disable),
        },
        UserAction::Del { name } => AdminCommand::UserDel { name },
    })
}

fn token_command(a: TokenAction) -> AdminCommand {
    match a {
        TokenAction::List => AdminCommand::TokenList,
        TokenAction::Create {
            name,
            role,
            expires_days,
        } => AdminCommand::TokenCreate {
            name,
            role,
            expires_days,
        },
        TokenAction::Revoke { id } => AdminCommand::TokenRevoke { id },
    }
}

/// Runs one account command and prints its answer.
fn manage(place: Place, cmd: AdminCommand) -> anyhow::Result<()> {
    let overrides = config::Overrides {
        data_dir: place.data_dir,
        ..config::Overrides::default()
    };
    let cfg = config::Config::load(place.config.as_deref(), &overrides)?;
    let (data, _) = vwed_runtime::auth::cli::run(&cfg.auth, &cfg.data_dir, cmd)?;
    if place.json {
        println!("{}", serde_json::to_string_pretty(&data)?);
    } else {
        print!("{}", vwed_runtime::auth::cli::render(&data));
    }
    Ok(())
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
            let mut cfg = config::Config::load(config.as_deref(), &config::Overrides::default())?;
            secrets::load_files(&mut cfg)?;
            print!("{}", toml::to_string_pretty(&secrets::redacted(&cfg)?)?);
            Ok(())
        }
        Command::User { action, place } => manage(place, user_command(action)?),
        Command::Token { action, place } => manage(place, token_command(action)),
        Command::Serve {
            listen,
            data_dir,
            config,
            board,
            io_config,
            no_auth,
            safe,
        } => {
            let overrides = config::Overrides {
                listen,
                data_dir,
                board,
                io_config,
                safe,
            };
            let mut cfg = config::Config::load(config.as_deref(), &overrides)?;
            secrets::load_files(&mut cfg)?;
            cfg.auth.no_auth |= no_auth;
            if cfg.auth.no_auth && !cfg.listen.ip().is_loopback() {
                anyhow::bail!(
                    "--no-auth is for development on this machine only: it needs a loopback \
                     --listen address (127.0.0.1 or ::1), not {}",
                    cfg.listen
                );
            }
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
