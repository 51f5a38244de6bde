//! `--cors-origin`: lets browser pages on the given origins call the API. A preflight
//! (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin is answered here,
//! before auth, with the methods and headers the API takes; every other response to an allowed
//! origin (streams and errors too) carries `Access-Control-Allow-Origin`. Requests from other
//! origins pass through untouched, without CORS headers, so the browser refuses them. Hand-written
//! rather than tower-http's layer: it is fifty lines, and tower-http would be a new crate to build.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// How long a browser may cache a preflight's answer.
const MAX_AGE_SECS: u32 = 86_400;

/// The allowed origins, as `--cors-origin` gave them (`*`: any).
#[derive(Debug)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    pub fn new(origins: Vec<String>) -> Cors {
        Cors { origins }
    }

    /// What `Access-Control-Allow-Origin` says to a request from `origin`, if it is allowed.
    fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.origins.iter().any(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        let origin_str = origin.to_str().ok()?;
        self.origins.iter().any(|o| o == origin_str).then(|| origin.clone())
    }

    fn any(&self) -> bool {
        self.origins.iter().any(|o| o == "*")
    }
}

/// Checks one `--cors-origin` value: `*`, or a scheme and host (and port) without a path, as
/// browsers send it in `Origin` (`https://app.example.com`, `http://localhost:3000`).
pub fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', ' ', '*']) => Ok(()),
        _ => Err(format!("--cors-origin {origin:?} is not an origin: give '*' or a scheme and host without a path, as https://app.example.com or http://localhost:3000")),
    }
}

/// Middleware: answers preflights from allowed origins, and marks responses to them.
pub async fn cors(State(cors): State<Arc<Cors>>, request: Request, next: Next) -> Response {
    let Some(allowed) = request.headers().get(header::ORIGIN).and_then(|o| cors.allow(o)) else {
        return next.run(request).await;
    };
    let vary = !cors.any();
    if request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        mark(headers, allowed, vary);
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Authorization, Content-Type"));
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_SECS));
        return response;
    }
    let mut response = next.run(request).await;
    mark(response.headers_mut(), allowed, vary);
    response
}

fn mark(headers: &mut HeaderMap, allowed: HeaderValue, vary: bool) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    // A client asking after a 429 must be able to read when to come back.
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Retry-After"));
    if vary {
        // The answer depends on the Origin: caches must not hand one origin's to another.
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_and_matched_exactly() {
        for (origin, ok) in [("*", true), ("https://app.example.com", true), ("http://localhost:3000", true), ("https://app.example.com/", false), ("app.example.com", false), ("http://", false), ("", false)] {
            assert_eq!(check_origin(origin).is_ok(), ok, "{origin:?}");
        }
        let cors = Cors::new(vec!["http://localhost:3000".into()]);
        let allow = |o: &'static str| cors.allow(&HeaderValue::from_static(o));
        assert_eq!(allow("http://localhost:3000"), Some(HeaderValue::from_static("http://localhost:3000")));
        assert_eq!(allow("http://localhost:3001"), None);
        assert_eq!(allow("http://evil.example"), None);
        let any = Cors::new(vec!["*".into()]);
        assert_eq!(any.allow(&HeaderValue::from_static("http://evil.example")), Some(HeaderValue::from_static("*")));
    }
}
