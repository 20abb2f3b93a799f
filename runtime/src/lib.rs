//! The supervisor as the crates below wire it: the configuration assembled from
//! their settings (`config`), the HTTP/WebSocket API and its accept loop (`api`,
//! `server`), the engine as the fleet agent's host (`fleet_host`), and [`serve`],
//! start-up in steps. The `vwed-edge` binary is a thin command line over
//! [`serve`] and the worker entry of `vwed-pyhost`.

mod api;
mod archive;
pub mod config;
mod fleet_host;
mod sandbox;
mod sdnotify;
pub mod secrets;
mod server;

// For the binary's commands and the fleet benchmark (examples/).
pub use vwed_auth as auth;
pub use vwed_fleet_agent as fleet;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sdnotify::Notifier;
use vwed_engine::Engine;

pub use server::LimitsError;
pub use vwed_base::lock::LockError;
pub use vwed_base::paths::PathError;
pub use vwed_db::DbError;
pub use vwed_io::IoStartError;
pub use vwed_jobs::JobStoreError;
pub use vwed_logs::LogStoreError;
pub use vwed_store::StoreError;

/// Why the supervisor could not start; each step of start-up has its own kind.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create data dir {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot open database {path}")]
    Database {
        path: PathBuf,
        #[source]
        source: DbError,
    },
    #[error("cannot prepare projects dir")]
    Projects(#[source] std::io::Error),
    #[error("cannot prepare the project store")]
    Store(#[source] StoreError),
    #[error("cannot create the sample project")]
    Sample(#[source] StoreError),
    #[error("cannot find own executable")]
    OwnExecutable(#[source] std::io::Error),
    #[error("cannot open the log store")]
    Logs(#[source] LogStoreError),
    #[error("cannot start the I/O")]
    DeviceIo(#[source] IoStartError),
    #[error("cannot open the jobs tables")]
    Jobs(#[source] vwed_jobs::JobStoreError),
    #[error("invalid server limits")]
    ServerLimits(#[from] LimitsError),
    #[error("cannot start access control")]
    Auth(#[source] auth::AuthError),
    #[error("cannot set up HTTPS")]
    Tls(#[source] vwed_tls::TlsError),
    #[error("cannot start fleet sync")]
    Fleet(#[source] fleet::FleetError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the supervisor until SIGTERM or Ctrl-C.
pub async fn serve(cfg: config::Config) -> Result<(), ServeError> {
    let started = Instant::now();
    vwed_base::heap::fix_thresholds();
    let cfg = Arc::new(cfg);
    let (engine, jobs) = open_engine(&cfg).await?;
    // A switch or rollback a power cut interrupted ends before scripts restore.
    let fleet = fleet_host::runtime_agent(&engine, &cfg).map_err(ServeError::Fleet)?;
    if let Some(agent) = &fleet {
        agent.recover().map_err(ServeError::Fleet)?;
    }
    let tls = https(&engine, &cfg)?;
    // The first spare worker comes up while the API binds and scripts restore.
    engine.refill_spare();
    let addr = cfg.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    let ready = Arc::new(AtomicBool::new(false));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let services = api::Services {
        engine: engine.clone(),
        config: cfg.clone(),
        jobs: Some(jobs.clone()),
        started,
        ready: ready.clone(),
    };
    let server = Server::start(listener, &services, tls)?;
    tracing::info!(
        "VWED Edge listening on {scheme}://{addr} (data dir {})",
        engine.cfg.data_dir.display()
    );
    let notifier = Notifier::from_env();
    if engine.cfg.engine.restore_on_start || engine.cfg.safe_start {
        restore_scripts(&engine, notifier.as_ref()).await;
    }
    let fleet = fleet.map(|agent| agent.spawn());
    ready.store(true, Ordering::Release);
    if let Some(n) = &notifier {
        if let Err(e) = n.notify_ready() {
            tracing::warn!("cannot tell systemd we are ready: {e}");
        }
        n.spawn_watchdog(health_check(engine.store.db().clone()));
    }
    tracing::info!("ready in {} ms", started.elapsed().as_millis());

    shutdown_signal().await;
    if let Some(f) = fleet {
        f.shutdown().await;
    }
    shut_down(&engine, &jobs, notifier.as_ref(), server).await;
    Ok(())
}

/// The data dir, its lock, the stores and the engine over them, and the device
/// I/O: everything that must be there before the API answers.
async fn open_engine(
    cfg: &config::Config,
) -> Result<(Arc<Engine>, Arc<vwed_jobs::Jobs>), ServeError> {
    // Closes the supervisor's /proc entries (environ, memory, fds) to workers.
    // SAFETY: prctl(PR_SET_DUMPABLE) only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| ServeError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let lock = vwed_base::lock::acquire(&cfg.data_dir).await?;
    let auth = auth::Auth::start(&cfg.auth, &cfg.data_dir, vwed_tls::enabled(&cfg.tls))
        .map_err(ServeError::Auth)?;
    let db_path = cfg.data_dir.join("vwed.redb");
    let db =
        vwed_db::open(&db_path, cfg.db_cache_bytes).map_err(|source| ServeError::Database {
            path: db_path,
            source,
        })?;
    let store = vwed_store::ScriptStore::new(db, &cfg.data_dir)
        .map_err(ServeError::Projects)?
        .with_version_limits(vwed_store::VersionLimits {
            keep: cfg.file_versions_keep,
            max_bytes: cfg.file_versions_max_bytes,
        });
    let stale = store.prepare().map_err(ServeError::Store)?;
    if stale > 0 {
        tracing::info!("removed {stale} temporary files left by an interrupted write");
    }
    if cfg.sample_project {
        vwed_store::sample::ensure(&store).map_err(ServeError::Sample)?;
    }
    let exe = std::env::current_exe().map_err(ServeError::OwnExecutable)?;
    let logs = vwed_logs::Logs::open(&cfg.logs, &cfg.data_dir, cfg.db_cache_bytes)
        .map_err(ServeError::Logs)?;
    logs.start_ticker();
    // Before the first worker is spawned: probes the kernel, takes the cgroup.
    let engine_cfg = Arc::new(cfg.engine_config());
    vwed_engine::confinement::probe(&engine_cfg);
    let setup = cfg.integrations_setup();
    let engine = Engine::new(engine_cfg, setup, store, exe, Some(lock), logs, auth);
    vwed_engine::spawn_priority(&engine);
    // Before scripts are restored, so that their boot() can already use I/O.
    if let Some(io) =
        vwed_io::start(&cfg.io, &cfg.data_dir, &engine).map_err(ServeError::DeviceIo)?
    {
        let _ = engine.io.set(io);
    }
    let jobs = vwed_jobs::Jobs::open(&engine, cfg.jobs.clone()).map_err(ServeError::Jobs)?;
    let _ = engine
        .event_tap
        .set(Arc::new(vwed_jobs::TriggerTap(jobs.clone())));
    jobs.start().await;
    Ok((engine, jobs))
}

/// The API's TLS configuration when HTTPS is on (`tls`, or `tls_cert` and
/// `tls_key`); a self-signed certificate is made on first start for the host
/// names the API answers to. Its fingerprint goes to the log, so that a client
/// can pin it.
fn https(
    engine: &Engine,
    cfg: &config::Config,
) -> Result<Option<Arc<rustls::ServerConfig>>, ServeError> {
    let mut names = engine.auth.settings.hosts.names().to_vec();
    let ip = cfg.listen.ip();
    if !ip.is_unspecified() {
        names.push(ip.to_string());
    }
    let Some(t) = vwed_tls::server(&cfg.tls, &cfg.data_dir, &names).map_err(ServeError::Tls)?
    else {
        return Ok(None);
    };
    tracing::info!(
        "HTTPS with {} certificate {} (SHA-256 fingerprint {})",
        if t.self_signed {
            "the self-signed"
        } else {
            "the"
        },
        t.cert_path.display(),
        t.fingerprint
    );
    Ok(Some(t.config))
}

/// The HTTP server task and the switch that ends it gracefully.
struct Server {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serves the API; until `services.ready`, `/health` answers 503 while the
    /// rest of the API already works.
    fn start(
        listener: tokio::net::TcpListener,
        services: &api::Services,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Server, ServeError> {
        let app = api::routes(services);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = server::Limits::from_settings(&services.config.server)?;
        let task = tokio::spawn(server::serve(app, listener, limits, tls, async {
            let _ = stopped.await;
        }));
        Ok(Server { stop, task })
    }
}

/// Starts again the scripts that ran before (unless in safe mode); tells systemd
/// how long that may take.
async fn restore_scripts(engine: &Arc<Engine>, notifier: Option<&Notifier>) {
    if let Some(n) = notifier {
        // Each restored script may take up to its boot timeout.
        let most = Duration::from_millis(engine.cfg.engine.boot_timeout_ms).saturating_mul(
            u32::try_from(engine.cfg.engine.max_running_scripts).unwrap_or(u32::MAX),
        );
        let _ = n.notify_extend_timeout(most);
    }
    engine.restore_at_start().await;
}

async fn shut_down(
    engine: &Arc<Engine>,
    jobs: &vwed_jobs::Jobs,
    notifier: Option<&Notifier>,
    server: Server,
) {
    tracing::info!("shutting down: stopping scripts (they start again with the runtime)");
    if let Some(n) = notifier {
        let _ = n.notify_stopping();
    }
    jobs.shutdown().await;
    engine.shutdown().await;
    // A clean stop, even soon after a restore, is no reason for safe mode.
    engine.safe_mode.settled();
    // Commit the lines the stopping scripts just wrote.
    let logs = engine.logs.clone();
    let _ = tokio::task::spawn_blocking(move || logs.close()).await;
    let _ = server.stop.send(());
    let _ = server.task.await;
    // Pending token use and audit records to disk, the admin socket gone.
    let auth = engine.auth.clone();
    let _ = tokio::task::spawn_blocking(move || auth.stop()).await;
}

/// What the watchdog checks before each ping: the executor still runs new tasks
/// promptly, and redb still reads and commits. A runtime that fails either is
/// restarted by systemd instead of being reported alive.
fn health_check(
    db: vwed_db::Db,
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
            let store = tokio::task::spawn_blocking(move || vwed_db::health_check(&db));
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
