//! What the server's integration tests share: a server on port 0 around the real default model
//! (`HERD_TEST_MODEL`), and a minimal HTTP/1.1 client over a TcpStream that can read a
//! response whole or an SSE stream event by event (and hang up in the middle).

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_engine::runner::{EngineConfig, EngineHandle};
use herd_engine::Model;
use herd_server::{AppState, ServerConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub fn model_path() -> Option<PathBuf> {
    let path = std::env::var_os("HERD_TEST_MODEL");
    if path.is_none() {
        eprintln!("skipped: HERD_TEST_MODEL is not set (scripts/test sets it)");
    }
    path.map(PathBuf::from)
}

/// A small engine: a 1024-position context, 8 sequences.
pub fn engine_config() -> EngineConfig {
    EngineConfig { n_ctx: 1024, max_seqs: 8, max_queue: 64, kv_blocks: 512, token_budget: 64, threads: 2 }
}

pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// `app()` on 127.0.0.1:0 with the default model and this engine; `None` (skip) without
    /// HERD_TEST_MODEL.
    pub async fn start(cfg: ServerConfig, engine: EngineConfig) -> Option<Server> {
        let path = model_path()?;
        let model = tokio::task::spawn_blocking(move || Model::load(&path).expect("the test model loads")).await.unwrap();
        let state = AppState::new("test-model", cfg);
        state.set_ready(EngineHandle::start(Arc::new(model), engine));
        Some(Server::serve(state).await)
    }

    /// Serves `state` as it is (loading, failed...).
    pub async fn serve(state: AppState) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(herd_server::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Server { addr, state, stop: Some(stop), task }
    }

    pub fn engine(&self) -> &EngineHandle {
        self.state.engine_if_started().expect("the engine runs")
    }

    /// Begins the orderly shutdown; `finished` waits for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits for `serve` to return.
    pub async fn finished(mut self) {
        self.begin_shutdown();
        tokio::time::timeout(Duration::from_secs(60), &mut self.task).await.expect("serve returns after shutdown").unwrap();
    }

    /// Polls `gauge` of the engine's stats until it is `want` (the engine publishes after
    /// each step).
    pub async fn wait_for(&self, what: &str, want: usize, gauge: impl Fn(&herd_engine::runner::EngineStats) -> usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = gauge(self.engine().stats());
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{what} stayed at {got}, expected {want}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_blocks_free(&self) {
        self.wait_for("kv_blocks_in_use", 0, |s| s.kv_blocks_in_use.load(Ordering::Relaxed)).await;
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The payloads of an SSE body's `data:` lines.
    pub fn events(&self) -> Vec<String> {
        self.text().lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_string).collect()
    }
}

fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Reads the status line and headers.
async fn read_head(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            return (status, headers);
        }
        let (k, v) = l.split_once(':').expect("a header line");
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"))
}

/// One chunk of a chunked body; `None` at its end.
async fn read_chunk(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let size = usize::from_str_radix(line.trim(), 16).unwrap_or_else(|_| panic!("bad chunk size {line:?}"));
    let mut chunk = vec![0; size + 2];
    reader.read_exact(&mut chunk).await.ok()?;
    chunk.truncate(size);
    (size > 0).then_some(chunk)
}

pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&request_bytes(method, path, headers, body)).await.unwrap();
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader).await;
    let mut body = Vec::new();
    if is_chunked(&headers) {
        while let Some(chunk) = read_chunk(&mut reader).await {
            body.extend_from_slice(&chunk);
        }
    } else {
        reader.read_to_end(&mut body).await.unwrap();
    }
    Response { status, headers, body }
}

pub async fn post(addr: SocketAddr, path: &str, body: &Value) -> Response {
    request(addr, "POST", path, &[], body.to_string().as_bytes()).await
}

pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"").await
}

/// A streaming response read event by event. Dropping it hangs up.
pub struct EventStream {
    pub status: u16,
    reader: BufReader<TcpStream>,
    pending: Vec<u8>,
    ended: bool,
}

impl EventStream {
    pub async fn open(addr: SocketAddr, path: &str, body: &Value) -> EventStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&request_bytes("POST", path, &[], body.to_string().as_bytes())).await.unwrap();
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader).await;
        assert!(status != 200 || is_chunked(&headers), "a stream comes chunked");
        EventStream { status, reader, pending: Vec::new(), ended: false }
    }

    /// The next `data:` payload; `None` when the stream has ended.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(at) = self.pending.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.pending.drain(..at + 2).collect();
                let text = String::from_utf8(event).expect("events are UTF-8");
                return Some(text.trim_end().strip_prefix("data: ").expect("data events only").to_string());
            }
            if self.ended {
                return None;
            }
            match read_chunk(&mut self.reader).await {
                Some(chunk) => self.pending.extend_from_slice(&chunk),
                None => self.ended = true,
            }
        }
    }

    /// Every remaining payload.
    pub async fn rest(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        while let Some(e) = self.next().await {
            events.push(e);
        }
        events
    }
}

/// The text of a chat stream's events (deltas joined) and its finish reason.
pub fn chat_stream_text(events: &[String]) -> (String, Option<String>) {
    let mut text = String::new();
    let mut finish = None;
    for e in events.iter().filter(|e| *e != "[DONE]") {
        let v: Value = serde_json::from_str(e).unwrap();
        for c in v["choices"].as_array().unwrap() {
            if let Some(t) = c["delta"]["content"].as_str() {
                text.push_str(t);
            }
            if let Some(f) = c["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
    }
    (text, finish)
}
