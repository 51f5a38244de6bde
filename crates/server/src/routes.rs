//! The endpoints: each parses its body, validates, asks the engine, and shapes the answer.
//! Errors are `ApiError`s returned with `?`.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use herd_engine::runner::{EngineHandle, Request};
use herd_tokenizer::template::ChatMessage;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;
use crate::generation::{collect, ChoiceResult, Generation};
use crate::metrics::{Outcome, Tracker};
use crate::shape;
use crate::state::{AppState, Health};
use crate::stream::{self, Api, StreamHead};
use crate::validate::{self, Params, PromptInput};
use crate::wire;

/// A JSON response with status 200.
fn json(value: &impl Serialize) -> Response {
    let body = serde_json::to_vec(value).expect("responses always serialize");
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// The request body as JSON, then as `T`. Malformed JSON is a 400 without a param; a value of
/// the wrong type is a 400 naming its path (`messages[0].content`).
fn parse<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let param = (path != ".").then_some(path.as_str());
        let message = match param {
            Some(p) => format!("invalid '{p}': {}", e.inner()),
            None => format!("invalid request: {}", e.inner()),
        };
        ApiError::invalid(param, message)
    })
}

fn body_json(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<serde_json::Value, ApiError> {
    let bytes = body.map_err(|e| ApiError::from_body(&e, state.config().max_body_bytes))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(None, format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid(None, "the body must be a JSON object"));
    }
    Ok(value)
}

pub async fn chat(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let arrived = Instant::now();
    let mut tracker = Tracker::new(state.metrics().clone());
    match chat_inner(&state, body, arrived, &mut tracker).await {
        Ok(response) => response,
        Err(e) => {
            tracker.finish(e.outcome());
            e.into_response()
        }
    }
}

async fn chat_inner(state: &AppState, body: Result<Bytes, BytesRejection>, arrived: Instant, tracker: &mut Tracker) -> Result<Response, ApiError> {
    let engine = state.engine()?.clone();
    let value = body_json(state, body)?;
    let req: wire::ChatRequest = parse(&value)?;
    let common: wire::Common = parse(&value)?;
    let n_vocab = engine.model().cfg().n_vocab;
    let (messages, params) = validate::chat(&req, &common, n_vocab, shape::random_u64())?;
    let prompt = chat_prompt(&engine, messages).await?;
    let requests = validate::requests(vec![prompt], &params, engine.n_ctx(), "messages")?;
    run(state, engine, Api::Chat, requests, params, arrived, tracker).await
}

/// Renders and tokenizes the conversation off the async threads: a large one takes a while.
async fn chat_prompt(engine: &EngineHandle, messages: Vec<ChatMessage>) -> Result<Vec<u32>, ApiError> {
    if engine.model().template.is_none() {
        return Err(ApiError::invalid(Some("messages"), "this model has no chat template; use /v1/completions with a prompt, or start herd serve with --chat-template"));
    }
    let model = engine.model().clone();
    tokio::task::spawn_blocking(move || model.chat_prompt(&messages).map_err(|e| e.to_string()))
        .await
        .map_err(|e| ApiError::internal(format!("rendering the prompt failed: {e}")))?
        .map_err(|e| ApiError::invalid(Some("messages"), e))
}

pub async fn completions(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let arrived = Instant::now();
    let mut tracker = Tracker::new(state.metrics().clone());
    match completions_inner(&state, body, arrived, &mut tracker).await {
        Ok(response) => response,
        Err(e) => {
            tracker.finish(e.outcome());
            e.into_response()
        }
    }
}

async fn completions_inner(state: &AppState, body: Result<Bytes, BytesRejection>, arrived: Instant, tracker: &mut Tracker) -> Result<Response, ApiError> {
    let engine = state.engine()?.clone();
    let value = body_json(state, body)?;
    let req: wire::CompletionRequest = parse(&value)?;
    let common: wire::Common = parse(&value)?;
    let n_vocab = engine.model().cfg().n_vocab;
    let (prompts, params) = validate::completion(&req, &common, n_vocab, shape::random_u64())?;
    let model = engine.model().clone();
    // As `herd run --raw`: special-token text is parsed, BOS added where the model wants it.
    let prompts = tokio::task::spawn_blocking(move || {
        prompts
            .into_iter()
            .map(|p| match p {
                PromptInput::Text(text) => model.tokenizer.encode(&text, true, true),
                PromptInput::Tokens(ids) => ids,
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizing the prompt failed: {e}")))?;
    let requests = validate::requests(prompts, &params, engine.n_ctx(), "prompt")?;
    run(state, engine, Api::Completions, requests, params, arrived, tracker).await
}

/// Submits the choices and answers: a stream, or the whole response once every choice ended.
async fn run(state: &AppState, engine: EngineHandle, api: Api, requests: Vec<Request>, params: Params, arrived: Instant, tracker: &mut Tracker) -> Result<Response, ApiError> {
    let timeout = state.config().request_timeout;
    let deadline = arrived + timeout;
    let mut gen = Generation::start(&engine, requests, params.n, arrived, deadline, state.metrics().clone()).await?;
    let id = shape::response_id(if api == Api::Chat { "chatcmpl" } else { "cmpl" });
    let (created, model) = (shape::unix_time(), state.model_id().to_string());
    if params.stream {
        let head = StreamHead { api, id, created, model, n: params.n, include_usage: params.include_usage, logprobs: params.logprobs.is_some(), timeout_secs: timeout.as_secs() };
        // The stream outlives this handler; it records how the request ends.
        return Ok(stream::response(gen, head, engine, tracker.hand_over()));
    }
    let choices = collect(&mut gen, timeout.as_secs()).await?;
    tracker.finish(Outcome::Ok);
    let tokenizer = &engine.model().tokenizer;
    let usage = shape::usage(choices.iter().map(|c| &c.usage), params.n);
    let finish = |c: &ChoiceResult| c.finish.map(shape::finish_reason);
    Ok(match api {
        Api::Chat => json(&wire::ChatCompletion {
            id,
            object: "chat.completion",
            created,
            model,
            choices: choices
                .iter()
                .enumerate()
                .map(|(index, c)| wire::ChatChoice {
                    index,
                    message: wire::AssistantMessage { role: "assistant", content: c.text.clone() },
                    logprobs: params.logprobs.and_then(|_| shape::chat_logprobs(tokenizer, &c.tokens)),
                    finish_reason: finish(c),
                })
                .collect(),
            usage,
        }),
        Api::Completions => json(&wire::Completion {
            id,
            object: "text_completion",
            created,
            model,
            choices: choices
                .iter()
                .enumerate()
                .map(|(index, c)| wire::CompletionChoice {
                    index,
                    text: c.text.clone(),
                    logprobs: params.logprobs.and_then(|_| shape::completion_logprobs(tokenizer, &c.tokens)),
                    finish_reason: finish(c),
                })
                .collect(),
            usage,
        }),
    })
}

fn model_card(state: &AppState) -> wire::ModelCard {
    wire::ModelCard { id: state.model_id().to_string(), object: "model", created: shape::unix_time(), owned_by: "herd" }
}

pub async fn models(State(state): State<AppState>) -> Response {
    json(&wire::ModelList { object: "list", data: vec![model_card(&state)] })
}

/// `GET /v1/models/{id}`: the served model's card, or a 404 for any other id (ids may hold
/// slashes, `org/name`, so the route takes the rest of the path).
pub async fn model(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if id != state.model_id() {
        return Err(ApiError::model_not_found(&id));
    }
    Ok(json(&model_card(&state)))
}

pub async fn tokenize(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let engine = state.engine()?.clone();
    let req: wire::TokenizeRequest = parse(&body_json(&state, body)?)?;
    let model = engine.model().clone();
    let tokens = tokio::task::spawn_blocking(move || model.tokenizer.encode(&req.content, req.parse_special.unwrap_or(true), req.add_special))
        .await
        .map_err(|e| ApiError::internal(format!("tokenizing failed: {e}")))?;
    if !req.with_pieces {
        return Ok(json(&serde_json::json!({ "tokens": tokens })));
    }
    // As llama-server: a piece that is not UTF-8 on its own is given as its bytes.
    let tokenizer = &engine.model().tokenizer;
    let pieces: Vec<serde_json::Value> = tokens
        .iter()
        .map(|&id| {
            let bytes = tokenizer.token_bytes(id);
            let piece = std::str::from_utf8(bytes).map_or_else(|_| serde_json::json!(bytes), |s| serde_json::json!(s));
            serde_json::json!({ "id": id, "piece": piece })
        })
        .collect();
    Ok(json(&serde_json::json!({ "tokens": pieces })))
}

pub async fn detokenize(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let engine = state.engine()?;
    let req: wire::DetokenizeRequest = parse(&body_json(&state, body)?)?;
    let n_vocab = engine.model().cfg().n_vocab;
    if let Some(bad) = req.tokens.iter().find(|&&id| id as usize >= n_vocab) {
        return Err(ApiError::invalid(Some("tokens"), format!("token id {bad} is outside the vocabulary of {n_vocab}")));
    }
    Ok(json(&serde_json::json!({ "content": engine.model().tokenizer.decode_special(&req.tokens) })))
}

/// 200 once the model is loaded and the engine runs; 503 with the reason otherwise.
pub async fn health(State(state): State<AppState>) -> Response {
    let (status, body) = match state.health() {
        Health::Ready => (StatusCode::OK, serde_json::json!({ "status": "ok" })),
        Health::Loading => (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "status": "loading", "error": { "message": "the model is still loading", "type": "unavailable_error", "code": 503 } })),
        Health::Failed(why) => (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "status": "error", "error": { "message": why, "type": "server_error", "code": 503 } })),
        Health::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "status": "shutting down", "error": { "message": "the server is shutting down", "type": "unavailable_error", "code": 503 } })),
    };
    (status, json(&body)).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics().render(state.engine_if_started(), state.health() == Health::Ready);
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))], text).into_response()
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
