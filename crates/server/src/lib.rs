//! herd's OpenAI-compatible HTTP server: the routes, wire types, validation, streaming, auth,
//! limits and metrics around the engine's continuous-batching runner. The only crate with
//! tokio, axum and serde wire types; it computes nothing itself.
//!
//! Entry points: [`app`] (the router, served on any listener: tests use port 0), [`serve`]
//! (the accept loop and orderly shutdown), [`run`] (all of `herd serve`).

mod auth;
pub mod config;
mod cors;
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

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

pub use config::{engine_config, EngineOptions, KvSize, ModelShape, ServerConfig};
pub use cors::check_origin as check_cors_origin;
pub use error::ApiError;
pub use server::{run, serve, shutdown_signal, RunOptions, ServerError};
pub use state::{model_id, spawn_loader, AppState, Health};

/// Every endpoint. `/health` is open; the rest want the API key when one is set. With CORS
/// origins configured, the CORS layer wraps everything (preflights never reach auth).
pub fn app(state: AppState) -> Router {
    let protected = Router::new()
        .route("/v1/chat/completions", post(routes::chat))
        .route("/v1/completions", post(routes::completions))
        .route("/v1/models", get(routes::models))
        .route("/v1/models/{*id}", get(routes::model))
        .route("/tokenize", post(routes::tokenize))
        .route("/detokenize", post(routes::detokenize))
        .route("/metrics", get(routes::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_key));
    let mut router = Router::new()
        .route("/health", get(routes::health))
        .merge(protected)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes));
    if !state.config().cors_origins.is_empty() {
        let cors = Arc::new(cors::Cors::new(state.config().cors_origins.clone()));
        router = router.layer(middleware::from_fn_with_state(cors, cors::cors));
    }
    router.with_state(state)
}
