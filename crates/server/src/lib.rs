//! herd's OpenAI-compatible HTTP server: the routes, wire types, validation, streaming, auth,
//! limits and metrics around the engine's continuous-batching runner. The only crate with
//! tokio, axum and serde wire types; it computes nothing itself.
//!
//! Entry points: [`app`] (the router, served on any listener: tests use port 0), [`serve`]
//! (the accept loop and orderly shutdown), [`run`] (all of `herd serve`).

mod auth;
pub mod config;
mod error;
mod generation;
pub mod metrics;
mod routes;
mod server;
mod shape;
mod state;
mod stream;
mod validate;
mod wire;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

pub use config::{engine_config, EngineOptions, KvSize, ModelShape, ServerConfig};
pub use error::ApiError;
pub use server::{run, serve, shutdown_signal, RunOptions, ServerError};
pub use state::{model_id, spawn_loader, AppState, Health};

/// Every endpoint. `/health` is open; the rest want the API key when one is set.
pub fn app(state: AppState) -> Router {
    let protected = Router::new()
        .route("/v1/chat/completions", post(routes::chat))
        .route("/v1/completions", post(routes::completions))
        .route("/v1/models", get(routes::models))
        .route("/tokenize", post(routes::tokenize))
        .route("/detokenize", post(routes::detokenize))
        .route("/metrics", get(routes::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_key));
    Router::new()
        .route("/health", get(routes::health))
        .merge(protected)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .with_state(state)
}
