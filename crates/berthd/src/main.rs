//! `berthd`: the daemon's wiring (flags, config, logging, signals, sockets) around
//! berth-server. Containers outlive it: they are held by their shims, so SIGTERM only stops
//! the API.

mod config;
mod listen;
mod metrics;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_engine::{Engine, EngineConfig};
use berth_server::Server;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::config::{Config, Host};

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(cfg: Config) -> Result<()> {
    for key in &cfg.unknown_keys {
        tracing::warn!("config file: unknown key {key:?} ignored");
    }
    for dir in [&cfg.data_root, &cfg.exec_root] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    listen::write_pidfile(&cfg.pidfile)?;
    let result = serve(&cfg);
    if let Err(e) = std::fs::remove_file(&cfg.pidfile) {
        tracing::warn!("removing pid file {}: {e}", cfg.pidfile.display());
    }
    result
}

fn serve(cfg: &Config) -> Result<()> {
    let engine = Engine::open(EngineConfig {
        data_root: cfg.data_root.clone(),
        exec_root: cfg.exec_root.clone(),
        runtime: cfg.runtime.clone(),
        shim: cfg.shim.clone(),
        network: cfg.network.clone(),
    })
    .with_context(|| format!("opening the engine in {}", cfg.data_root.display()))?;
    let engine = Arc::new(engine);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let cluster = berth_cluster::Cluster::open(
            Arc::clone(&engine),
            berth_cluster::ClusterConfig {
                store: cfg.store.clone(),
                ..berth_cluster::ClusterConfig::new(&cfg.data_root)
            },
        )
        .await
        .with_context(|| {
            format!(
                "resuming the swarm membership in {}",
                cfg.data_root.display()
            )
        })?;
        let server = Server::with_cluster(Arc::clone(&engine), Arc::clone(&cluster));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut sockets: Vec<PathBuf> = Vec::new();
        let mut tasks = Vec::new();
        let bound: Result<()> = async {
            for host in &cfg.hosts {
                match host {
                    Host::Unix(path) => {
                        let listener = listen::bind_unix(path)?;
                        sockets.push(path.clone());
                        tracing::info!("API listening on unix://{}", path.display());
                        tasks.push(tokio::spawn(berth_server::serve_unix(
                            server.clone(),
                            listener,
                            stop_rx.clone(),
                        )));
                    }
                    Host::Tcp(addr) => {
                        let Some(tls) = &cfg.tls else {
                            anyhow::bail!("refusing tcp://{addr} without TLS");
                        };
                        let acceptor = berth_server::tls::acceptor(&tls.ca, &tls.cert, &tls.key)?;
                        let listener = tokio::net::TcpListener::bind(addr)
                            .await
                            .with_context(|| format!("binding tcp://{addr}"))?;
                        tracing::info!(
                            "API listening on tcp://{addr} (TLS, client certificates required)"
                        );
                        tasks.push(tokio::spawn(berth_server::serve_tls(
                            server.clone(),
                            listener,
                            acceptor,
                            stop_rx.clone(),
                        )));
                    }
                }
            }
            if let Some(addr) = cfg.metrics_addr {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding --metrics-addr {addr}"))?;
                tracing::info!("metrics on http://{addr}/metrics");
                tasks.push(tokio::spawn(metrics::serve(
                    listener,
                    Arc::clone(&engine),
                    Arc::clone(&cluster),
                    stop_rx.clone(),
                )));
            }
            Ok(())
        }
        .await;
        if bound.is_ok() {
            tracing::info!(
                "berthd {} ready (data root {}, exec root {})",
                env!("CARGO_PKG_VERSION"),
                cfg.data_root.display(),
                cfg.exec_root.display()
            );
            wait_for_signal().await;
            tracing::info!("shutting down; containers keep running");
        }
        cluster.shutdown();
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        for s in &sockets {
            if let Err(e) = std::fs::remove_file(s) {
                tracing::warn!("removing socket {}: {e}", s.display());
            }
        }
        bound
    })?;
    // Hijacked streams and followers still open are cut here.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    engine.quiesce();
    Ok(())
}

async fn wait_for_signal() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop berthd with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

fn main() {
    let cfg = match config::load(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            std::process::exit(1);
        }
    };
    init_logging(&cfg.log_level);
    if let Err(e) = run(cfg) {
        tracing::error!("{e:#}");
        std::process::exit(1);
    }
}
