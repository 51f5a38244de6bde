//! The one error type of every endpoint: an HTTP status and an OpenAI-shaped body
//! (`{"error": {"message", "type", "param", "code"}}`). Handlers return it with `?`; the engine's
//! submission errors and the body extractor's rejections convert into it here.

use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use herd_engine::runner::SubmitError;

use crate::metrics::Outcome;
use crate::wire::{ErrorBody, ErrorDetail};

/// Seconds a client is told to wait after a 429.
const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `rate_limit_error`...
    pub kind: &'static str,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), kind, param: None, code: None }
    }

    /// 400: the request is wrong; `param` names the field.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError { param: param.map(str::to_string), ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message) }
    }

    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "authentication_error", "invalid or missing API key (send 'Authorization: Bearer KEY')").with_code("invalid_api_key")
    }

    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", format!("no such endpoint: {path}")).with_code("not_found")
    }

    /// 404 for `GET /v1/models/{id}` of a model this server does not serve, as OpenAI answers.
    pub fn model_not_found(id: &str) -> ApiError {
        ApiError { param: Some("model".into()), ..ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", format!("the model '{id}' does not exist (this server serves one model; GET /v1/models names it)")) }.with_code("model_not_found")
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "this endpoint does not take that method").with_code("method_not_allowed")
    }

    /// 503: the server cannot take requests now (loading, failed, shutting down).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message).with_code("unavailable")
    }

    pub fn timeout(secs: u64) -> ApiError {
        ApiError::new(StatusCode::GATEWAY_TIMEOUT, "server_error", format!("the request took longer than the server's limit of {secs} s")).with_code("timeout")
    }

    /// 500: the engine failed this request.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// How a request that ended with this error counts in the metrics.
    pub fn outcome(&self) -> Outcome {
        match self.status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Outcome::Rejected,
            StatusCode::GATEWAY_TIMEOUT => Outcome::Timeout,
            s if s.is_client_error() => Outcome::Invalid,
            _ => Outcome::Error,
        }
    }

    /// The body alone, for an error that ends a stream after its headers went out.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: ErrorDetail { message: self.message.clone(), kind: self.kind, param: self.param.clone(), code: self.code } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).expect("error bodies always serialize");
        let mut response = (self.status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> ApiError {
        let message = e.to_string();
        match e {
            SubmitError::QueueFull(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message).with_code("queue_full"),
            SubmitError::EmptyPrompt | SubmitError::BadToken(_) => ApiError::invalid(Some("prompt"), message),
            SubmitError::TooLong { .. } => ApiError::invalid(Some("max_tokens"), message).with_code("context_length_exceeded"),
            SubmitError::Invalid(_) => ApiError::invalid(None, message),
            SubmitError::ShuttingDown | SubmitError::Failed(_) => ApiError::unavailable(message),
        }
    }
}

impl ApiError {
    /// The body could not be read: over `max_bytes` (413), or the connection failed.
    pub fn from_body(e: &BytesRejection, max_bytes: usize) -> ApiError {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            let message = format!("the request body is larger than the server's limit of {max_bytes} bytes");
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", message).with_code("body_too_large");
        }
        ApiError::new(e.status(), "invalid_request_error", format!("could not read the request body: {}", e.body_text()))
    }
}
