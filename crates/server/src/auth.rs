//! `--api-key`: every protected endpoint wants `Authorization: Bearer KEY`. The comparison
//! takes the same time wherever the first difference is, so timing does not leak the key.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Middleware: passes the request on when no key is set or the right one is given; else 401.
pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.config().api_key {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        if !given.is_some_and(|given| constant_time_eq(given, key.as_bytes())) {
            state.metrics().record_unauthorized();
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

/// Equal slices, compared in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    // Walk the expected key whatever was given, so the time does not depend on the guess.
    for (i, &y) in b.iter().enumerate() {
        let x = a.get(i).copied().unwrap_or(!y);
        diff |= x ^ y;
    }
    // `black_box` keeps the optimiser from ending the loop at the first difference.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn equal_only_when_identical() {
        for (a, b, eq) in [("", "", true), ("key", "key", true), ("key", "kex", false), ("ke", "key", false), ("keyy", "key", false), ("", "key", false)] {
            assert_eq!(constant_time_eq(a.as_bytes(), b.as_bytes()), eq, "{a:?} vs {b:?}");
        }
    }
}
