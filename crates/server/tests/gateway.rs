//! The model-server protocol a Gateway API Inference Extension endpoint picker routes by, against
//! a live server on port 0 with the real default model: the vLLM-named gauges on `/metrics`
//! (queue depth, running requests, KV-cache use, cache shape) scraped while requests run and
//! queue, and prefix-cache hits for requests that share a long system prompt, which is what
//! the picker's prefix scorer sends to the same pod.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{engine_config, get, post, EventStream, Server};
use herd_engine::kv_cache::BLOCK_SIZE;
use herd_engine::runner::EngineConfig;
use herd_server::ServerConfig;
use serde_json::{json, Value};

const CHAT: &str = "/v1/chat/completions";

/// One scraped sample: the value, and the labels as written.
#[derive(Debug)]
struct Sample {
    labels: HashMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text page by metric name (labels parsed; values that do not
/// parse fail the test).
fn parse_metrics(page: &str) -> HashMap<String, Vec<Sample>> {
    let mut out: HashMap<String, Vec<Sample>> = HashMap::new();
    for line in page.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad metric line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, HashMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("bad labels in {line:?}"));
                let labels = body
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("bad label in {line:?}"));
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (name, labels)
            }
        };
        out.entry(name.to_string()).or_default().push(Sample { labels, value });
    }
    out
}

/// The one unlabelled value of `name`.
fn value(metrics: &HashMap<String, Vec<Sample>>, name: &str) -> f64 {
    let samples = metrics.get(name).unwrap_or_else(|| panic!("{name} is not on /metrics"));
    assert_eq!(samples.len(), 1, "{name}: {samples:?}");
    samples[0].value
}

async fn scrape(server: &Server) -> HashMap<String, Vec<Sample>> {
    let page = get(server.addr, "/metrics").await;
    assert_eq!(page.status, 200);
    parse_metrics(&page.text())
}

/// The picker's gauges follow the engine: with 2 sequence slots and 6 long requests, a scrape
/// sees 2 running and the rest waiting, the KV use strictly between 0 and 1, and the cache's
/// shape (16-token blocks, the configured block count); once they finish, all three are 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_gauges_follow_the_engine_under_load() {
    let engine = EngineConfig { max_seqs: 2, kv_blocks: 256, ..engine_config() };
    let Some(server) = Server::start(ServerConfig::default(), engine).await else { return };

    let idle = scrape(&server).await;
    assert_eq!(value(&idle, "vllm:num_requests_waiting"), 0.0);
    assert_eq!(value(&idle, "vllm:num_requests_running"), 0.0);
    assert_eq!(value(&idle, "vllm:kv_cache_usage_perc"), 0.0);
    let info = &idle["vllm:cache_config_info"];
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].value, 1.0);
    assert_eq!(info[0].labels["block_size"], BLOCK_SIZE.to_string());
    assert_eq!(info[0].labels["num_gpu_blocks"], "256");
    // The herd_* names stay beside them.
    assert_eq!(value(&idle, "herd_kv_blocks_total"), 256.0);

    let eos = server.engine().model().tokenizer.eos_id().expect("the model has an EOS token");
    let mut streams = Vec::new();
    for i in 0..6 {
        let body = json!({ "messages": [{ "role": "user", "content": format!("Tell story number {i} about a dragon.") }], "max_tokens": 160, "seed": i, "stream": true, "logit_bias": { eos.to_string(): -100 } });
        streams.push(EventStream::open(server.addr, CHAT, &body).await);
    }
    // Scrape until a page shows the slots full and requests queued (the engine publishes its
    // gauges after each step).
    let deadline = Instant::now() + Duration::from_secs(60);
    let busy = loop {
        let m = scrape(&server).await;
        if value(&m, "vllm:num_requests_running") == 2.0 && value(&m, "vllm:num_requests_waiting") >= 1.0 {
            break m;
        }
        assert!(Instant::now() < deadline, "never saw 2 running and some waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let usage = value(&busy, "vllm:kv_cache_usage_perc");
    assert!(usage > 0.0 && usage < 1.0, "kv_cache_usage_perc {usage}");
    assert_eq!(usage, value(&busy, "herd_kv_blocks_in_use") / 256.0);
    assert_eq!(value(&busy, "vllm:num_requests_waiting"), value(&busy, "herd_queue_depth"));

    for mut stream in streams {
        assert_eq!(stream.status, 200);
        assert_eq!(stream.rest().await.last().map(String::as_str), Some("[DONE]"));
    }
    server.wait_blocks_free().await;
    server.wait_for("running", 0, |s| s.running.load(std::sync::atomic::Ordering::Relaxed)).await;
    let done = scrape(&server).await;
    assert_eq!(value(&done, "vllm:num_requests_waiting"), 0.0);
    assert_eq!(value(&done, "vllm:num_requests_running"), 0.0);
    assert_eq!(value(&done, "vllm:kv_cache_usage_perc"), 0.0);
    server.finished().await;
}

/// Requests that share a long system prompt reuse its KV blocks on the same server: the second
/// reports the shared whole 16-token blocks as `cached_tokens`; a request with another system
/// prompt finds nothing to reuse. This is the affinity the picker's prefix scorer (16-token
/// blocks, chained) bets on when it sends such requests to one pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_system_prompt_hits_the_prefix_cache() {
    let Some(server) = Server::start(ServerConfig::default(), engine_config()).await else { return };
    let system = "You are the support assistant of a hardware shop. Answer in one short sentence, politely, and never invent prices. ".repeat(6);
    let chat = |system: &str, question: &str| json!({ "messages": [{ "role": "system", "content": system }, { "role": "user", "content": question }], "max_tokens": 8, "temperature": 0 });
    let usage = |v: &Value| (v["usage"]["prompt_tokens"].as_u64().unwrap(), v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap());

    let first = post(server.addr, CHAT, &chat(&system, "Do you sell screwdrivers?")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let (n_first, cached_first) = usage(&first.json());
    assert_eq!(cached_first, 0, "nothing was cached before the first request");

    let second = post(server.addr, CHAT, &chat(&system, "When do you open on Sundays?")).await;
    assert_eq!(second.status, 200, "{}", second.text());
    let (n_second, cached_second) = usage(&second.json());
    // The system prompt's tokens, counted as the template renders them: every whole block
    // before the first differing token is reused, and only whole blocks.
    let n_system = server.engine().model().tokenizer.encode(&format!("<|im_start|>system\n{system}<|im_end|>\n"), true, false).len() as u64;
    eprintln!("prompts of {n_first} and {n_second} tokens share a {n_system}-token system turn; the second reused {cached_second}");
    assert!(n_system >= 128, "the system prompt is only {n_system} tokens");
    assert_eq!(cached_second % BLOCK_SIZE as u64, 0);
    assert!(cached_second >= n_system / BLOCK_SIZE as u64 * BLOCK_SIZE as u64, "reused {cached_second} of a {n_system}-token shared prefix");
    assert!(cached_second < n_second);

    let other = post(server.addr, CHAT, &chat(&system.to_uppercase(), "Do you sell screwdrivers?")).await;
    let (_, cached_other) = usage(&other.json());
    assert!(cached_other < BLOCK_SIZE as u64, "another system prompt reused {cached_other} tokens");
    server.finished().await;
}

/// Draining (SIGTERM): `/health` says 503 at once so the gateway stops sending, new requests
/// get 503 (which a proxy may retry elsewhere), and every request already accepted finishes,
/// the queued ones included, within the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_finishes_running_and_queued_requests() {
    let cfg = ServerConfig { shutdown_grace: Duration::from_secs(60), ..ServerConfig::default() };
    let Some(mut server) = Server::start(cfg, EngineConfig { max_seqs: 1, ..engine_config() }).await else { return };
    let body = |i: u64| json!({ "messages": [{ "role": "user", "content": "Count to twenty." }], "max_tokens": 64, "seed": i, "stream": true });
    let mut running = EventStream::open(server.addr, CHAT, &body(1)).await;
    let mut queued = EventStream::open(server.addr, CHAT, &body(2)).await;
    running.next().await.expect("the role chunk");
    server.wait_for("waiting", 1, |s| s.waiting.load(std::sync::atomic::Ordering::Relaxed)).await;
    server.begin_shutdown();
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(server.addr, "/health").await.status != 503 {
        assert!(Instant::now() < deadline, "/health still says ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(post(server.addr, CHAT, &body(3)).await.status, 503);
    for (what, stream) in [("running", &mut running), ("queued", &mut queued)] {
        let events = stream.rest().await;
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "the {what} request: {events:?}");
    }
    server.finished().await;
}
