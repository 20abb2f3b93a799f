//! `vwed-edge`: the VWED Edge runtime.
//!
//! `serve` runs the supervisor: the HTTP/WebSocket API, storage, and one worker
//! process per running script. The same binary, started with the hidden `worker`
//! command, is that worker: it hosts CPython and runs one script.

mod analyzer;
mod api;
mod clock;
mod config;
mod cron;
mod db;
mod engine;
mod fsio;
mod io;
mod lock;
mod logs;
mod output;
mod paths;
mod registry;
mod sample;
mod sdnotify;
mod services;
mod store;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
        /// Address for the HTTP/WebSocket API [default: 127.0.0.1:8000].
        #[arg(long, env = "VWED_LISTEN")]
        listen: Option<SocketAddr>,
        /// Directory for the database and project sources [default: ./vwed-data].
        #[arg(long, env = "VWED_DATA_DIR")]
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
                vwed_modules::worker::Mode::Analyzer
            } else {
                vwed_modules::worker::Mode::Script
            };
            std::process::exit(vwed_modules::worker::run(3, mode));
        }
        Command::Stubs => {
            print!("{}", vwed_modules::STUBS_PYI);
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
        } => {
            let overrides = config::Overrides {
                listen,
                data_dir,
                board,
                io_config,
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
            rt.block_on(serve(cfg))
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

async fn serve(cfg: config::Config) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
    let lock = lock::acquire(&cfg.data_dir).await?;
    let db_path = cfg.data_dir.join("vwed.redb");
    let db = db::open(&db_path, cfg.db_cache_bytes)
        .with_context(|| format!("cannot open database {}", db_path.display()))?;
    let store =
        store::ScriptStore::new(db, &cfg.data_dir).context("cannot prepare projects dir")?;
    if cfg.sample_project {
        sample::ensure(&store).context("cannot create the sample project")?;
    }
    let exe = std::env::current_exe().context("cannot find own executable")?;
    let logs = logs::Logs::open(&cfg).context("cannot open the log store")?;
    logs.start_ticker();
    let cfg = Arc::new(cfg);
    let engine = engine::Engine::new(cfg.clone(), store, exe, Some(lock), logs.clone());

    // Before scripts are restored, so that their boot() can already use I/O.
    if let Some(io) = io::start(&cfg, &engine).context("cannot start the I/O")? {
        let _ = engine.io.set(io);
    }

    // The first spare worker comes up while the API binds and scripts restore.
    engine.refill_spare();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let ready = Arc::new(AtomicBool::new(false));
    let routes = api::routes(engine.clone(), started);
    let gate = {
        let ready = ready.clone();
        warp::any()
            .and(warp::path::full())
            .and_then(move |p: warp::path::FullPath| {
                let ready = ready.load(Ordering::Acquire);
                async move {
                    // Until restored scripts are up, health says so; the rest of the
                    // API already answers.
                    if !ready && p.as_str() == "/health" {
                        Ok(api::not_ready())
                    } else {
                        Err(warp::reject::not_found())
                    }
                }
            })
    };
    use warp::Filter;
    let app = gate.or(routes).unify();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        warp::serve(app)
            .incoming(listener)
            .graceful(async {
                let _ = stop_rx.await;
            })
            .run(),
    );
    tracing::info!(
        "VWED Edge listening on http://{} (data dir {})",
        cfg.listen,
        cfg.data_dir.display()
    );
    let notifier = sdnotify::Notifier::from_env();
    if cfg.restore_on_start {
        if let Some(n) = &notifier {
            // Each restored script may take up to its boot timeout.
            let most = std::time::Duration::from_millis(cfg.boot_timeout_ms)
                .saturating_mul(u32::try_from(cfg.max_running_scripts).unwrap_or(u32::MAX));
            let _ = n.notify_extend_timeout(most);
        }
        engine.restore().await;
    }
    ready.store(true, Ordering::Release);
    if let Some(n) = &notifier {
        if let Err(e) = n.notify_ready() {
            tracing::warn!("cannot tell systemd we are ready: {e}");
        }
        n.spawn_watchdog(health_check(engine.store.db().clone()));
    }
    tracing::info!("ready in {} ms", started.elapsed().as_millis());

    shutdown_signal().await;
    tracing::info!("shutting down: stopping scripts (they start again with the runtime)");
    if let Some(n) = &notifier {
        let _ = n.notify_stopping();
    }
    engine.shutdown().await;
    // Commit the lines the stopping scripts just wrote.
    let _ = tokio::task::spawn_blocking(move || logs.close()).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}

/// What the watchdog checks before each ping: the executor still runs new tasks
/// promptly, and redb still reads and commits. A runtime that fails either is
/// restarted by systemd instead of being reported alive.
fn health_check(
    db: db::Db,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + Sync + 'static
{
    move || {
        let db = db.clone();
        Box::pin(async move {
            let limit = std::time::Duration::from_secs(2);
            let executor = tokio::time::timeout(limit, tokio::spawn(async {})).await;
            if !matches!(executor, Ok(Ok(()))) {
                tracing::error!("health: the executor did not run a task within {limit:?}");
                return false;
            }
            let store = tokio::task::spawn_blocking(move || db::health_check(&db));
            match tokio::time::timeout(limit, store).await {
                Ok(Ok(Ok(()))) => true,
                other => {
                    tracing::error!("health: redb read/commit failed: {other:?}");
                    false
                }
            }
        })
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
