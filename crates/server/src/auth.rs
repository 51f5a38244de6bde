//! `--api-key`: every protected endpoint wants `Authorization: Bearer KEY`, the scheme in any
//! case (`bearer KEY`, as RFC 7235 has it). The key comparison takes the same time wherever the
//! first difference is, so timing does not leak the key.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Middleware: passes the request on when no key is set or the right one is given; else 401.
pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.config().api_key {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| bearer_token(v.as_bytes()));
        if !given.is_some_and(|given| constant_time_eq(given, key.as_bytes())) {
            state.metrics().record_unauthorized();
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

/// The token of `Bearer TOKEN`, the scheme matched case-insensitively.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
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
    use super::{bearer_token, constant_time_eq};

    #[test]
    fn the_scheme_in_any_case() {
        for (value, token) in [("Bearer k", Some("k")), ("bearer k", Some("k")), ("BEARER k", Some("k")), ("bEaReR k y", Some("k y")), ("Bearer", None), ("Basic k", None), ("Bearerk", None), ("k", None)] {
            assert_eq!(bearer_token(value.as_bytes()), token.map(str::as_bytes), "{value:?}");
        }
    }

    #[test]
    fn equal_only_when_identical() {
        for (a, b, eq) in [("", "", true), ("key", "key", true), ("key", "kex", false), ("ke", "key", false), ("keyy", "key", false), ("", "key", false)] {
            assert_eq!(constant_time_eq(a.as_bytes(), b.as_bytes()), eq, "{a:?} vs {b:?}");
        }
    }
}
