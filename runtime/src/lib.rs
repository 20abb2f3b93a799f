//! The VWED Edge runtime as a library: the supervisor (HTTP/WebSocket API, storage,
//! scheduling, device I/O) and everything it owns. The `vwed-edge` binary is a thin
//! command line over [`serve`] and the worker entry of `vwed-pyhost`.

mod analyzer;
mod api;
pub mod auth;
mod clock;
pub mod config;
mod cron;
mod db;
mod engine;
mod fsio;
mod integrations;
mod io;
mod lock;
mod logs;
mod output;
mod paths;
mod registry;
mod sample;
mod sdnotify;
pub mod secrets;
mod store;
pub mod tls;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;

/// Runs the supervisor until SIGTERM or Ctrl-C.
pub async fn serve(cfg: config::Config) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
    let lock = lock::acquire(&cfg.data_dir).await?;
    let auth = auth::Auth::start(&cfg, false).context("cannot start access control")?;
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
    let app = gate
        .or(api::auth::routes(auth.clone()))
        .unify()
        .or(routes)
        .unify();
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
    let _ = tokio::task::spawn_blocking(move || auth.stop()).await;
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
