//! What every handler shares: the settings, the metrics, and the engine once the model has
//! loaded. The listener is up before the model is: until then (and after a failed load, or
//! once shutdown has begun) requests that need the engine get 503 with the reason.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use herd_engine::runner::EngineHandle;
use herd_engine::Model;
use herd_tokenizer::template::ChatTemplate;

use crate::config::{engine_config, EngineOptions, ModelShape, ServerConfig};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Cheap to clone: every clone is the same server.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    cfg: ServerConfig,
    model_id: String,
    /// Set once: the running engine, or why the model could not be loaded.
    engine: OnceLock<Result<EngineHandle, String>>,
    draining: AtomicBool,
    metrics: Arc<Metrics>,
}

/// What `/health` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Loading,
    Ready,
    /// The model failed to load, or the engine failed since.
    Failed(String),
    ShuttingDown,
}

impl AppState {
    /// A server for the model called `model_id` (the id `/v1/models` and replies give), still
    /// loading.
    pub fn new(model_id: impl Into<String>, cfg: ServerConfig) -> AppState {
        AppState { inner: Arc::new(Shared { cfg, model_id: model_id.into(), engine: OnceLock::new(), draining: AtomicBool::new(false), metrics: Arc::default() }) }
    }

    /// The model is loaded and its engine runs. A second call is ignored.
    pub fn set_ready(&self, engine: EngineHandle) {
        let _ = self.inner.engine.set(Ok(engine));
    }

    /// The model could not be loaded. A second call is ignored.
    pub fn set_failed(&self, why: String) {
        let _ = self.inner.engine.set(Err(why));
    }

    /// Stops admitting requests: from now on they get 503.
    pub fn begin_shutdown(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn config(&self) -> &ServerConfig {
        &self.inner.cfg
    }

    pub fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The engine, whatever state it is in (for metrics and shutdown).
    pub fn engine_if_started(&self) -> Option<&EngineHandle> {
        self.inner.engine.get().and_then(|r| r.as_ref().ok())
    }

    /// The engine, if it can take requests now; else the 503 to answer with.
    pub fn engine(&self) -> Result<&EngineHandle, ApiError> {
        match self.health() {
            Health::Ready => Ok(self.engine_if_started().expect("ready means started")),
            Health::Loading => Err(ApiError::unavailable("the model is still loading; retry shortly")),
            Health::Failed(why) => Err(ApiError::unavailable(format!("the server cannot serve: {why}"))),
            Health::ShuttingDown => Err(ApiError::unavailable("the server is shutting down")),
        }
    }

    pub fn health(&self) -> Health {
        if self.inner.draining.load(Ordering::SeqCst) {
            return Health::ShuttingDown;
        }
        match self.inner.engine.get() {
            None => Health::Loading,
            Some(Err(why)) => Health::Failed(format!("the model failed to load: {why}")),
            Some(Ok(engine)) => match engine.failure() {
                Some(why) => Health::Failed(format!("the engine failed: {why}")),
                None => Health::Ready,
            },
        }
    }
}

/// The id a model file is served under: its file name without the extension.
pub fn model_id(path: &Path) -> String {
    path.file_stem().map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned())
}

/// Loads the model, with `chat_template` (Jinja source) in place of its own template when given,
/// and starts its engine on a thread of its own, then marks `state` ready (or failed, with the
/// reason, also printed to stderr).
pub fn spawn_loader(state: AppState, path: PathBuf, chat_template: Option<String>, opts: EngineOptions) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("herd-loader".into())
        // A panic while loading is a bug, but it must still show in /health, not hang there.
        .spawn(move || match std::panic::catch_unwind(|| load(&path, chat_template.as_deref(), &opts)).unwrap_or_else(|_| Err("internal error while loading the model".into())) {
            Ok(engine) => {
                eprintln!("herd: {} loaded; ready", path.display());
                state.set_ready(engine);
            }
            Err(why) => {
                eprintln!("herd: error: {why}");
                state.set_failed(why);
            }
        })
        .expect("spawning the loader thread")
}

fn load(path: &Path, chat_template: Option<&str>, opts: &EngineOptions) -> Result<EngineHandle, String> {
    let mut model = Model::load(path).map_err(|e| e.to_string())?;
    if let Some(source) = chat_template {
        model.template = Some(ChatTemplate::new(source).map_err(|e| format!("--chat-template: {e}"))?);
    }
    if model.template.is_none() {
        eprintln!("herd: {} has no chat template: /v1/chat/completions will refuse requests (start with --chat-template FILE|NAME to give one)", path.display());
    }
    let cfg = engine_config(ModelShape::of(model.cfg()), opts)?;
    Ok(EngineHandle::start(Arc::new(model), cfg))
}
