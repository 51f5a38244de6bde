//! The HTTP API against `app()` on port 0 with the real default model: response shapes,
//! streaming (equal to the whole response for the same seed), n, stop strings, logprobs, usage,
//! tokenize, health, metrics, auth, CORS, every kind of refusal (400, 401, 404, 405, 413, 429, 503,
//! 504), client disconnects freeing the KV cache, and shutdown.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{chat_stream_text, engine_config, get, post, request, EventStream, Server};
use herd_engine::runner::EngineConfig;
use herd_server::{AppState, ServerConfig};
use serde_json::{json, Value};

const CHAT: &str = "/v1/chat/completions";
const COMPLETIONS: &str = "/v1/completions";

async fn server() -> Option<Server> {
    Server::start(ServerConfig::default(), engine_config()).await
}

fn chat_body(content: &str, extra: Value) -> Value {
    let mut body = json!({ "model": "anything", "messages": [{ "role": "user", "content": content }], "max_tokens": 24, "seed": 7, "temperature": 0.8 });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

/// The token id of end-of-sequence, banned with logit_bias to make a generation run long.
fn no_eos(server: &Server) -> Value {
    let eos = server.engine().model().tokenizer.eos_id().expect("the model has an EOS token");
    json!({ eos.to_string(): -100 })
}

fn assert_usage(usage: &Value) {
    let (p, c, t) = (usage["prompt_tokens"].as_u64().unwrap(), usage["completion_tokens"].as_u64().unwrap(), usage["total_tokens"].as_u64().unwrap());
    assert!(p > 0 && c > 0 && p + c == t, "{usage}");
    assert!(usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap() <= p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_whole_and_streamed_agree() {
    let Some(server) = server().await else { return };
    let whole = post(server.addr, CHAT, &chat_body("What is a GPU?", json!({}))).await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert_eq!(whole.header("content-type"), Some("application/json"));
    let v = whole.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "test-model");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    let choice = &v["choices"][0];
    assert_eq!((choice["index"].as_u64(), &choice["message"]["role"]), (Some(0), &json!("assistant")));
    assert!(choice["logprobs"].is_null());
    let text = choice["message"]["content"].as_str().unwrap().to_string();
    let finish = choice["finish_reason"].as_str().unwrap().to_string();
    assert!(finish == "stop" || finish == "length");
    assert_usage(&v["usage"]);

    let streamed = post(server.addr, CHAT, &chat_body("What is a GPU?", json!({ "stream": true, "stream_options": { "include_usage": true } }))).await;
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.header("content-type"), Some("text/event-stream"));
    let events = streamed.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert!(first["usage"].is_null() && first.as_object().unwrap().contains_key("usage"));
    assert_eq!(chat_stream_text(&events), (text, Some(finish)));
    // The last chunk before [DONE] carries the usage and no choices.
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], v["usage"]["completion_tokens"]);
    assert_eq!(last["usage"]["prompt_tokens"], v["usage"]["prompt_tokens"]);
    // The same prompt again came from the prefix cache.
    assert!(last["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap() >= 16, "{}", last["usage"]);
    server.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_in_every_prompt_form() {
    let Some(server) = server().await else { return };
    let body = json!({ "prompt": "The capital of France is", "max_tokens": 12, "seed": 3 });
    let whole = post(server.addr, COMPLETIONS, &body).await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    let v = whole.json();
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(v["object"], "text_completion");
    let text = v["choices"][0]["text"].as_str().unwrap().to_string();
    assert_usage(&v["usage"]);

    // Streamed: the same text.
    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    let events = post(server.addr, COMPLETIONS, &stream_body).await.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    assert_eq!(chunks.iter().map(|c| c["choices"][0]["text"].as_str().unwrap()).collect::<String>(), text);
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], v["choices"][0]["finish_reason"]);

    // The prompt as token ids gives the same answer as its text.
    let ids = server.engine().model().tokenizer.encode("The capital of France is", true, true);
    let by_ids = post(server.addr, COMPLETIONS, &json!({ "prompt": ids, "max_tokens": 12, "seed": 3 })).await.json();
    assert_eq!(by_ids["choices"][0]["text"].as_str(), Some(text.as_str()));

    // Two prompts: one choice each, in order; the first is the one above.
    let two = post(server.addr, COMPLETIONS, &json!({ "prompt": ["The capital of France is", "def quicksort(xs):"], "max_tokens": 12, "seed": 3 })).await.json();
    let choices = two["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!((choices[0]["index"].as_u64(), choices[1]["index"].as_u64()), (Some(0), Some(1)));
    assert_eq!(choices[0]["text"].as_str(), Some(text.as_str()));
    assert_eq!(two["usage"]["prompt_tokens"].as_u64().unwrap(), v["usage"]["prompt_tokens"].as_u64().unwrap() + server.engine().model().tokenizer.encode("def quicksort(xs):", true, true).len() as u64);
    server.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_choices_draw_with_consecutive_seeds_and_share_the_prompt() {
    let Some(server) = server().await else { return };
    let cached_before = server.engine().stats().cached_prompt_tokens.load(Ordering::Relaxed);
    let two = post(server.addr, CHAT, &chat_body("Write a haiku about rust.", json!({ "n": 2, "seed": 10 }))).await;
    assert_eq!(two.status, 200, "{}", two.text());
    let two = two.json();
    let choices = two["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    // The second choice found the first one's prompt in the prefix cache.
    assert!(server.engine().stats().cached_prompt_tokens.load(Ordering::Relaxed) - cached_before >= 16);
    for (i, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"].as_u64(), Some(i as u64));
        let alone = post(server.addr, CHAT, &chat_body("Write a haiku about rust.", json!({ "seed": 10 + i }))).await.json();
        assert_eq!(choice["message"], alone["choices"][0]["message"], "choice {i} vs seed {}", 10 + i);
    }
    // The prompt counts once, the completions of both.
    let one = post(server.addr, CHAT, &chat_body("Write a haiku about rust.", json!({ "seed": 10 }))).await.json();
    assert_eq!(two["usage"]["prompt_tokens"], one["usage"]["prompt_tokens"]);

    // Streamed, each choice's deltas add up to its whole text.
    let events = post(server.addr, CHAT, &chat_body("Write a haiku about rust.", json!({ "n": 2, "seed": 10, "stream": true }))).await.events();
    for (i, choice) in choices.iter().enumerate() {
        let mine: Vec<String> = events.iter().filter(|e| *e != "[DONE]" && serde_json::from_str::<Value>(e).unwrap()["choices"][0]["index"] == json!(i)).cloned().collect();
        assert_eq!(chat_stream_text(&mine).0, choice["message"]["content"].as_str().unwrap());
    }
    server.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_strings_end_the_text_before_them() {
    let Some(server) = server().await else { return };
    let greedy = json!({ "temperature": 0, "max_tokens": 40 });
    let full = post(server.addr, CHAT, &chat_body("Explain why the sky is blue.", greedy.clone())).await.json();
    let text = full["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    // A stop string from the middle of the greedy answer: a word after the first few.
    let words: Vec<&str> = text.split(' ').collect();
    assert!(words.len() > 6, "answer too short to cut: {text:?}");
    let stop = format!(" {}", words[4]);
    let expected = &text[..text.find(&stop).unwrap()];
    let mut with_stop = greedy.clone();
    with_stop["stop"] = json!([stop, "never appears"]);
    let cut = post(server.addr, CHAT, &chat_body("Explain why the sky is blue.", with_stop.clone())).await.json();
    assert_eq!(cut["choices"][0]["message"]["content"].as_str(), Some(expected));
    assert_eq!(cut["choices"][0]["finish_reason"], "stop");
    with_stop["stream"] = json!(true);
    let events = post(server.addr, CHAT, &chat_body("Explain why the sky is blue.", with_stop)).await.events();
    assert_eq!(chat_stream_text(&events), (expected.to_string(), Some("stop".to_string())));
    server.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logprobs_in_both_apis() {
    let Some(server) = server().await else { return };
    let v = post(server.addr, CHAT, &chat_body("What is 17 times 23?", json!({ "temperature": 0, "logprobs": true, "top_logprobs": 3, "max_tokens": 8 }))).await.json();
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(content.len() as u64, v["usage"]["completion_tokens"].as_u64().unwrap());
    let mut text = String::new();
    for entry in content {
        let top = entry["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let lps: Vec<f64> = top.iter().map(|t| t["logprob"].as_f64().unwrap()).collect();
        assert!(lps.windows(2).all(|w| w[0] >= w[1]) && lps[0] <= 0.0, "{lps:?}");
        // Greedy: the chosen token is the likeliest.
        assert_eq!(entry["token"], top[0]["token"]);
        assert!((entry["logprob"].as_f64().unwrap() - lps[0]).abs() < 1e-5);
        assert_eq!(entry["bytes"].as_array().unwrap().len(), entry["token"].as_str().unwrap().len());
        text.push_str(entry["token"].as_str().unwrap());
    }
    assert!(text.starts_with(v["choices"][0]["message"]["content"].as_str().unwrap()));

    // Streamed chat: one logprobs entry per content chunk.
    let events = post(server.addr, CHAT, &chat_body("What is 17 times 23?", json!({ "temperature": 0, "logprobs": true, "max_tokens": 8, "stream": true }))).await.events();
    let streamed: Vec<Value> = events.iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str::<Value>(e).unwrap()).filter_map(|c| c["choices"][0]["logprobs"]["content"].as_array().cloned()).flatten().collect();
    assert_eq!(streamed.iter().map(|e| e["logprob"].clone()).collect::<Vec<_>>(), content.iter().map(|e| e["logprob"].clone()).collect::<Vec<_>>());

    let c = post(server.addr, COMPLETIONS, &json!({ "prompt": "1, 2, 3, 4,", "max_tokens": 6, "temperature": 0, "logprobs": 2 })).await.json();
    let lp = &c["choices"][0]["logprobs"];
    let n = c["usage"]["completion_tokens"].as_u64().unwrap() as usize;
    for list in ["tokens", "token_logprobs", "top_logprobs", "text_offset"] {
        assert_eq!(lp[list].as_array().unwrap().len(), n, "{list}");
    }
    let offsets: Vec<u64> = lp["text_offset"].as_array().unwrap().iter().map(|o| o.as_u64().unwrap()).collect();
    assert!(offsets[0] == 0 && offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    assert!(lp["top_logprobs"][0].as_object().unwrap().len() <= 2);
    assert_eq!(lp["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect::<String>(), c["choices"][0]["text"].as_str().unwrap());
    server.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_tokenize_detokenize_health_metrics() {
    let Some(server) = server().await else { return };
    let models = get(server.addr, "/v1/models").await.json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "test-model");
    assert_eq!(models["data"][0]["object"], "model");
    let one = get(server.addr, "/v1/models/test-model").await;
    assert_eq!(one.status, 200);
    let card = one.json();
    assert_eq!((card["id"].as_str(), card["object"].as_str(), card["owned_by"].as_str()), (Some("test-model"), Some("model"), Some("herd")));
    assert!(card["created"].is_u64(), "{card}");
    for other in ["/v1/models/gpt-4o", "/v1/models/org/test-model"] {
        let r = get(server.addr, other).await;
        assert_eq!(r.status, 404, "{other}");
        let error = &r.json()["error"];
        assert_eq!((error["code"].as_str(), error["param"].as_str(), error["type"].as_str()), (Some("model_not_found"), Some("model"), Some("invalid_request_error")), "{other}: {error}");
    }

    let text = "Hello <|im_start|> world, ünïcödé!";
    let tokens = post(server.addr, "/tokenize", &json!({ "content": text })).await.json()["tokens"].clone();
    let ids: Vec<u32> = tokens.as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
    assert_eq!(ids, server.engine().model().tokenizer.encode(text, true, false));
    let back = post(server.addr, "/detokenize", &json!({ "tokens": ids })).await.json();
    assert_eq!(back["content"], text);
    let pieces = post(server.addr, "/tokenize", &json!({ "content": "Hello", "with_pieces": true })).await.json();
    assert_eq!(pieces["tokens"][0]["piece"], "Hello");
    let bad = post(server.addr, "/detokenize", &json!({ "tokens": [999_999] })).await;
    assert_eq!((bad.status, bad.json()["error"]["param"].as_str()), (400, Some("tokens")));

    let health = get(server.addr, "/health").await;
    assert_eq!((health.status, health.json()["status"].as_str()), (200, Some("ok")));

    let ok = post(server.addr, CHAT, &chat_body("Hi", json!({ "max_tokens": 4, "logit_bias": no_eos(&server) }))).await;
    assert_eq!(ok.status, 200);
    let _ = post(server.addr, CHAT, &json!({ "messages": [] })).await;
    let metrics = get(server.addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").unwrap().starts_with("text/plain"));
    let text = metrics.text();
    for line in ["herd_requests_total{outcome=\"ok\"} 1", "herd_requests_total{outcome=\"invalid\"} 1", "herd_ready 1", "herd_kv_blocks_total 512", "herd_time_to_first_token_seconds_count 1", "# TYPE herd_inter_token_latency_seconds histogram", "herd_queue_depth 0"] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
    }
    assert!(text.contains("herd_inter_token_latency_seconds_bucket{le=\"+Inf\"} 3"), "{text}");
    // `{"type": "text"}` is what herd does anyway: accepted.
    let plain = post(server.addr, CHAT, &chat_body("Hi", json!({ "max_tokens": 2, "response_format": { "type": "text" }, "tool_choice": "none", "tools": [] }))).await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    server.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_while_loading_and_after_a_failed_load() {
    let loading = Server::serve(AppState::new("m", ServerConfig::default())).await;
    let r = get(loading.addr, "/health").await;
    assert_eq!((r.status, r.json()["status"].as_str()), (503, Some("loading")));
    let r = post(loading.addr, CHAT, &chat_body("Hi", json!({}))).await;
    assert_eq!(r.status, 503);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("loading"));
    loading.finished().await;

    let state = AppState::new("m", ServerConfig::default());
    state.set_failed("model.gguf: not a GGUF file".into());
    let failed = Server::serve(state).await;
    let r = get(failed.addr, "/health").await;
    assert_eq!(r.status, 503);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("not a GGUF file"), "{}", r.text());
    failed.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_guards_everything_but_health() {
    let cfg = ServerConfig { api_key: Some("sekrit-key".into()), ..ServerConfig::default() };
    let Some(server) = Server::start(cfg, engine_config()).await else { return };
    let body = chat_body("Hi", json!({ "max_tokens": 2 })).to_string();
    for (headers, status) in [(vec![], 401), (vec![("Authorization", "Bearer wrong")], 401), (vec![("Authorization", "sekrit-key")], 401), (vec![("Authorization", "Bearer sekrit-keyy")], 401), (vec![("Authorization", "Bearer sekrit-key")], 200), (vec![("Authorization", "bearer sekrit-key")], 200), (vec![("Authorization", "BEARER sekrit-key")], 200), (vec![("Authorization", "Basic sekrit-key")], 401)] {
        let r = request(server.addr, "POST", CHAT, &headers, body.as_bytes()).await;
        assert_eq!(r.status, status, "{headers:?}: {}", r.text());
        if status == 401 {
            assert_eq!(r.json()["error"]["type"], "authentication_error");
        }
    }
    assert_eq!(get(server.addr, "/v1/models").await.status, 401);
    assert_eq!(get(server.addr, "/metrics").await.status, 401);
    assert_eq!(get(server.addr, "/health").await.status, 200);
    server.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_preflights_and_marks_responses_for_allowed_origins_only() {
    const APP: &str = "http://app.example";
    let cfg = ServerConfig { api_key: Some("k".into()), cors_origins: vec![APP.into(), "http://localhost:3000".into()], ..ServerConfig::default() };
    let Some(server) = Server::start(cfg, engine_config()).await else { return };
    let preflight = |origin: &'static str| [("Origin", origin), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "authorization, content-type")];
    // The preflight carries no key, and is answered before auth.
    let r = request(server.addr, "OPTIONS", CHAT, &preflight(APP), b"").await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert!(r.header("access-control-allow-methods").unwrap().contains("POST"));
    let allowed = r.header("access-control-allow-headers").unwrap().to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
    assert_eq!(r.header("vary"), Some("Origin"));
    // Another origin gets no CORS headers (the browser then refuses), and no 204.
    let r = request(server.addr, "OPTIONS", CHAT, &preflight("http://evil.example"), b"").await;
    assert!(r.header("access-control-allow-origin").is_none() && r.status != 204, "{:?}", r.headers);

    let body = chat_body("Hi", json!({ "max_tokens": 2 })).to_string();
    let stream_body = chat_body("Hi", json!({ "max_tokens": 2, "stream": true })).to_string();
    let auth = ("Authorization", "Bearer k");
    // (headers, path, body, status, whether Access-Control-Allow-Origin is APP)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str, u16, bool);
    let cases: Vec<Case> = vec![
        (vec![("Origin", APP), auth], CHAT, &body, 200, true),
        (vec![("Origin", APP), auth], CHAT, &stream_body, 200, true),
        (vec![("Origin", APP)], CHAT, &body, 401, true),
        (vec![("Origin", APP), auth], CHAT, "{}", 400, true),
        (vec![("Origin", APP), auth], "/v1/nothing", "{}", 404, true),
        (vec![("Origin", "http://evil.example"), auth], CHAT, &body, 200, false),
        (vec![auth], CHAT, &body, 200, false),
    ];
    for (headers, path, body, status, marked) in cases {
        let r = request(server.addr, "POST", path, &headers, body.as_bytes()).await;
        assert_eq!(r.status, status, "{headers:?} {path}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), marked.then_some(APP), "{headers:?} {path} {body}");
        if body.contains("\"stream\":true") {
            assert!(r.events().last().is_some_and(|e| e == "[DONE]"), "{}", r.text());
        }
    }
    server.finished().await;

    // `*` allows any origin; without --cors-origin there are no CORS headers at all.
    let any = Server::serve(AppState::new("m", ServerConfig { cors_origins: vec!["*".into()], ..ServerConfig::default() })).await;
    let r = request(any.addr, "OPTIONS", "/v1/models", &preflight("http://evil.example"), b"").await;
    assert_eq!((r.status, r.header("access-control-allow-origin")), (204, Some("*")));
    let r = request(any.addr, "GET", "/health", &[("Origin", "http://evil.example")], b"").await;
    assert_eq!((r.status, r.header("access-control-allow-origin")), (503, Some("*")));
    any.finished().await;
    let none = Server::serve(AppState::new("m", ServerConfig::default())).await;
    let r = request(none.addr, "OPTIONS", CHAT, &preflight(APP), b"").await;
    assert!(r.header("access-control-allow-origin").is_none() && r.header("access-control-allow-methods").is_none(), "{:?}", r.headers);
    none.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_request_is_an_openai_error() {
    let cfg = ServerConfig { max_body_bytes: 64 << 10, ..ServerConfig::default() };
    let Some(server) = Server::start(cfg, engine_config()).await else { return };
    let msg = |content: &str| json!([{ "role": "user", "content": content }]);
    // (path, body, status, param, fragment of the message)
    let cases: Vec<(&str, String, u16, Option<&str>, &str)> = vec![
        (CHAT, "{not json".into(), 400, None, "not valid JSON"),
        (CHAT, "[1, 2]".into(), 400, None, "must be a JSON object"),
        (CHAT, json!({}).to_string(), 400, None, "missing field `messages`"),
        (CHAT, json!({ "messages": "hi" }).to_string(), 400, Some("messages"), "invalid type"),
        (CHAT, json!({ "messages": [] }).to_string(), 400, Some("messages"), "at least one message"),
        (CHAT, json!({ "messages": [{ "role": "user", "content": 5 }] }).to_string(), 400, Some("messages[0].content"), "did not match"),
        (CHAT, json!({ "messages": msg("x"), "temperature": "hot" }).to_string(), 400, Some("temperature"), "invalid type"),
        (CHAT, json!({ "messages": msg("x"), "temperature": 3 }).to_string(), 400, Some("temperature"), "between 0 and 2"),
        (CHAT, json!({ "messages": msg("x"), "top_p": 0 }).to_string(), 400, Some("top_p"), "above 0"),
        (CHAT, json!({ "messages": msg("x"), "max_tokens": -1 }).to_string(), 400, Some("max_tokens"), "invalid value"),
        (CHAT, json!({ "messages": msg("x"), "n": 100 }).to_string(), 400, Some("n"), "between 1 and 16"),
        (CHAT, json!({ "messages": msg("x"), "stop": [1] }).to_string(), 400, Some("stop"), "did not match"),
        (CHAT, json!({ "messages": msg("x"), "logit_bias": { "x": 1 } }).to_string(), 400, Some("logit_bias"), "not a token id"),
        (CHAT, json!({ "messages": msg("x"), "max_tokens": 5000 }).to_string(), 400, Some("messages"), "plus max_tokens (5000) is"),
        (CHAT, json!({ "messages": msg(&"word ".repeat(1100)) }).to_string(), 400, Some("messages"), "leaves no room to generate in the context of 1024 tokens"),
        (COMPLETIONS, json!({ "prompt": [] }).to_string(), 400, Some("prompt"), "at least one prompt"),
        (COMPLETIONS, json!({ "prompt": "x", "logprobs": 50 }).to_string(), 400, Some("logprobs"), "between 0 and 20"),
        (COMPLETIONS, json!({ "prompt": [1, 999_999] }).to_string(), 400, Some("prompt"), "outside the vocabulary"),
        (COMPLETIONS, json!({ "prompt": "x".repeat(70 << 10) }).to_string(), 413, None, "limit of 65536 bytes"),
        ("/v1/nothing", "{}".into(), 404, None, "no such endpoint: /v1/nothing"),
        // What herd cannot do yet is refused by name, never dropped for a 200 of prose.
        (CHAT, json!({ "messages": msg("x"), "response_format": { "type": "json_object" } }).to_string(), 400, Some("response_format"), "structured output is not supported yet"),
        (CHAT, json!({ "messages": msg("x"), "response_format": { "type": "json_schema", "json_schema": { "name": "a", "schema": { "type": "object" } } } }).to_string(), 400, Some("response_format"), "got type 'json_schema'"),
        (CHAT, json!({ "messages": msg("x"), "response_format": { "type": "sound" } }).to_string(), 400, Some("response_format"), "got type 'sound'"),
        (COMPLETIONS, json!({ "prompt": "x", "response_format": { "type": "json_object" } }).to_string(), 400, Some("response_format"), "structured output is not supported yet"),
        (CHAT, json!({ "messages": msg("x"), "tools": [{ "type": "function", "function": { "name": "f", "parameters": {} } }] }).to_string(), 400, Some("tools"), "tool calling is not supported yet"),
        (COMPLETIONS, json!({ "prompt": "x", "tools": [{ "type": "function", "function": { "name": "f" } }] }).to_string(), 400, Some("tools"), "tool calling is not supported yet"),
        (CHAT, json!({ "messages": msg("x"), "tool_choice": "required" }).to_string(), 400, Some("tool_choice"), "may only be \"none\""),
        (CHAT, json!({ "messages": [{ "role": "user", "content": "x" }, { "role": "assistant", "content": null, "tool_calls": [{ "id": "c", "type": "function", "function": { "name": "f", "arguments": "{}" } }] }] }).to_string(), 400, Some("messages[1].tool_calls"), "tool calling is not supported yet"),
        (CHAT, json!({ "messages": [{ "role": "user", "content": "x" }, { "role": "tool", "tool_call_id": "c", "content": "4" }] }).to_string(), 400, Some("messages[1].role"), "tool calling is not supported yet"),
    ];
    for (path, body, status, param, fragment) in cases {
        let r = request(server.addr, "POST", path, &[], body.as_bytes()).await;
        let short = &body[..body.len().min(80)];
        assert_eq!(r.status, status, "{short}: {}", r.text());
        let error = &r.json()["error"];
        assert_eq!(error["param"].as_str(), param, "{short}: {error}");
        assert!(error["message"].as_str().unwrap().contains(fragment), "{short}: {error}");
        assert!(error["type"].is_string(), "{short}: {error}");
    }
    // The too-long message gives every count.
    let r = post(server.addr, CHAT, &json!({ "messages": msg("x"), "max_tokens": 5000 })).await.json();
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("tokens) plus max_tokens (5000) is") && message.contains("over the context of 1024 tokens"), "{message}");
    assert_eq!(r["error"]["code"], "context_length_exceeded");
    // A method the route does not take.
    assert_eq!(get(server.addr, CHAT).await.status, 405);
    // Headers over the limit never reach a handler.
    let huge = "x".repeat(20 << 10);
    assert_eq!(request(server.addr, "GET", "/health", &[("X-Huge", &huge)], b"").await.status, 431);
    server.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_429_with_retry_after() {
    let engine = EngineConfig { max_seqs: 1, max_queue: 1, ..engine_config() };
    let Some(server) = Server::start(ServerConfig::default(), engine).await else { return };
    let long = chat_body("The history of the Roman empire", json!({ "max_tokens": 500, "stream": true, "logit_bias": no_eos(&server) }));
    let mut running = EventStream::open(server.addr, CHAT, &long).await;
    assert_eq!(running.status, 200);
    running.next().await.expect("the role chunk");
    server.wait_for("running", 1, |s| s.running.load(Ordering::Relaxed)).await;
    let queued = EventStream::open(server.addr, CHAT, &long).await;
    assert_eq!(queued.status, 200);
    server.wait_for("waiting", 1, |s| s.waiting.load(Ordering::Relaxed)).await;
    let refused = post(server.addr, CHAT, &long).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.json()["error"]["type"], "rate_limit_error");
    drop((running, queued));
    server.wait_blocks_free().await;
    server.wait_for("waiting", 0, |s| s.waiting.load(Ordering::Relaxed)).await;
    server.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_frees_its_sequence() {
    let Some(server) = server().await else { return };
    // Streaming: hang up after a few tokens.
    let long = chat_body("The history of the Roman empire", json!({ "max_tokens": 900, "stream": true, "logit_bias": no_eos(&server) }));
    let mut stream = EventStream::open(server.addr, CHAT, &long).await;
    for _ in 0..4 {
        stream.next().await.expect("a chunk");
    }
    assert!(server.engine().stats().kv_blocks_in_use.load(Ordering::Relaxed) > 0);
    drop(stream);
    server.wait_blocks_free().await;
    server.wait_for("running", 0, |s| s.running.load(Ordering::Relaxed)).await;

    // Not streaming: hang up while the handler waits for the whole answer.
    let mut whole = long.clone();
    whole["stream"] = json!(false);
    let addr = server.addr;
    let pending = tokio::spawn(async move { post(addr, CHAT, &whole).await });
    server.wait_for("running", 1, |s| s.running.load(Ordering::Relaxed)).await;
    pending.abort();
    server.wait_for("running", 0, |s| s.running.load(Ordering::Relaxed)).await;
    server.wait_blocks_free().await;
    let metrics = get(server.addr, "/metrics").await.text();
    assert!(metrics.contains("herd_requests_total{outcome=\"cancelled\"} 2"), "{metrics}");
    server.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_timeout_end_with_504_or_an_error_event() {
    let cfg = ServerConfig { request_timeout: Duration::from_millis(1500), ..ServerConfig::default() };
    let Some(server) = Server::start(cfg, engine_config()).await else { return };
    let long = chat_body("The history of the Roman empire", json!({ "max_tokens": 900, "logit_bias": no_eos(&server) }));
    let r = post(server.addr, CHAT, &long).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "timeout");
    let mut streamed = long.clone();
    streamed["stream"] = json!(true);
    let events = post(server.addr, CHAT, &streamed).await.events();
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "timeout", "{last}");
    server.wait_blocks_free().await;
    assert!(get(server.addr, "/metrics").await.text().contains("herd_requests_total{outcome=\"timeout\"} 2"));
    server.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_new_requests_and_ends_running_ones() {
    let cfg = ServerConfig { shutdown_grace: Duration::from_secs(2), ..ServerConfig::default() };
    let Some(mut server) = Server::start(cfg, engine_config()).await else { return };
    let long = chat_body("The history of the Roman empire", json!({ "max_tokens": 900, "stream": true, "logit_bias": no_eos(&server) }));
    let short = chat_body("Hi", json!({ "max_tokens": 3, "stream": true }));
    let mut cut_off = EventStream::open(server.addr, CHAT, &long).await;
    let mut finishes = EventStream::open(server.addr, CHAT, &short).await;
    cut_off.next().await.expect("the role chunk");
    server.wait_for("running", 2, |s| s.running.load(Ordering::Relaxed)).await;
    server.begin_shutdown();
    // Draining: new requests are refused, /health says so.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.state.health() != herd_server::Health::ShuttingDown {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = post(server.addr, CHAT, &short).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(get(server.addr, "/health").await.status, 503);
    // The short request finished; the long one was ended with an error event.
    assert_eq!(finishes.rest().await.last().map(String::as_str), Some("[DONE]"));
    let last: Value = serde_json::from_str(&cut_off.rest().await.pop().unwrap()).unwrap();
    assert!(last["error"]["message"].as_str().unwrap().contains("shutting down"), "{last}");
    server.finished().await;
}
