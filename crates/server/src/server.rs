//! The accept loop: hyper's HTTP/1 connections (with header size, header count and header
//! read time limits) serving the router, and the shutdown sequence: on the signal, stop
//! admitting (503), let the engine finish running requests within the grace period, end the
//! rest, then close the connections and return.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::config::{EngineOptions, ServerConfig};
use crate::state::{model_id, spawn_loader, AppState};

/// Bytes of request line and headers hyper buffers; more gets 431.
const MAX_HEADER_BYTES: usize = 16 << 10;
/// Most request headers; more gets 431.
const MAX_HEADERS: usize = 64;
/// A client gets this long to send its headers (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// After the engine has stopped, how long responses still being written may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Everything `herd serve` needs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub model: PathBuf,
    /// Jinja source of a chat template to use instead of the model's own (`--chat-template`).
    pub chat_template: Option<String>,
    pub host: String,
    pub port: u16,
    pub server: ServerConfig,
    pub engine: EngineOptions,
}

/// Serves `app(state)` on `listener` until `shutdown` completes, then shuts down in order and
/// returns. The engine (when started) is stopped with the state's grace period.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    let app = crate::app(state.clone());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut draining: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: pause rather than spin.
                        eprintln!("herd: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Tokens are small writes that must go out at once.
                let _ = stream.set_nodelay(true);
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(MAX_HEADER_BYTES)
                    .max_headers(MAX_HEADERS)
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = &mut shutdown, if draining.is_none() => {
                eprintln!("herd: shutting down: no new requests; running ones get {:?}", state.config().shutdown_grace);
                state.begin_shutdown();
                let (engine, grace) = (state.engine_if_started().cloned(), state.config().shutdown_grace);
                draining = Some(tokio::task::spawn_blocking(move || {
                    if let Some(engine) = engine {
                        engine.shutdown(grace);
                    }
                }));
            }
            _ = async { draining.as_mut().expect("guarded").await }, if draining.is_some() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(CLOSE_TIMEOUT, graceful.shutdown()).await.is_err() {
        eprintln!("herd: some connections were still open after {CLOSE_TIMEOUT:?}; closing them");
    }
}

/// Resolves when the process gets SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => _ = s.recv().await,
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// `herd serve`: listens at once, loads the model in the background (`/health` says 503 until
/// it is ready), serves until SIGTERM or Ctrl-C, and returns after an orderly shutdown.
pub fn run(opts: RunOptions) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(ServerError::Runtime)?;
    runtime.block_on(async {
        let addr = format!("{}:{}", opts.host, opts.port);
        let listener = TcpListener::bind(&addr).await.map_err(|source| ServerError::Bind { addr: addr.clone(), source })?;
        let local: Option<SocketAddr> = listener.local_addr().ok();
        let state = AppState::new(model_id(&opts.model), opts.server);
        eprintln!("herd: listening on http://{}; loading {}", local.map_or(addr, |a| a.to_string()), opts.model.display());
        spawn_loader(state.clone(), opts.model, opts.chat_template, opts.engine);
        serve(listener, state, shutdown_signal()).await;
        Ok(())
    })?;
    // The loader thread may still be reading a model; it is not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
