//! A bounded load test on loopback: waves of 64 concurrent streaming chats, a third of the
//! clients hanging up early. Every other stream must end with [DONE], the KV cache must empty
//! after each wave, and the process's memory must stay flat from one wave to the next. Its own
//! test binary, so nothing else runs in the process while its memory is measured.

mod common;

use std::sync::atomic::Ordering;

use common::{engine_config, EventStream, Server};
use herd_engine::runner::EngineConfig;
use herd_server::ServerConfig;
use serde_json::{json, Value};

const QUESTIONS: [&str; 8] = [
    "Explain why the sky is blue.",
    "Write a haiku about rust.",
    "What is a GPU?",
    "List three uses of copper.",
    "Describe a llama in two sentences.",
    "How do tides work?",
    "What is 17 times 23?",
    "Give me a tip for learning to cook.",
];
const N_CLIENTS: usize = 64;

/// VmRSS of this process in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// What one client did: read to [DONE], or hung up after some chunks.
#[derive(Debug, PartialEq)]
enum Client {
    Done,
    HungUp,
}

/// One wave; `wave` varies the seeds and which clients hang up.
async fn wave(server: &Server, wave: u64) {
    let mut clients = Vec::new();
    for i in 0..N_CLIENTS {
        // A fixed pseudo-random third of the clients hang up after 1 to 8 chunks.
        let draw = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(wave.wrapping_mul(0xBF58_476D_1CE4_E5B9)) >> 33;
        let hang_up_after = draw.is_multiple_of(3).then_some(1 + (draw / 3 % 8) as usize);
        let body = json!({ "messages": [{ "role": "user", "content": QUESTIONS[i % QUESTIONS.len()] }], "max_tokens": 32, "temperature": 0.7, "seed": wave * 1000 + i as u64, "stream": true });
        let addr = server.addr;
        clients.push(tokio::spawn(async move {
            let mut stream = EventStream::open(addr, "/v1/chat/completions", &body).await;
            assert_eq!(stream.status, 200, "client {i}");
            let mut n_chunks = 0;
            while let Some(event) = stream.next().await {
                if event == "[DONE]" {
                    return Client::Done;
                }
                let chunk: Value = serde_json::from_str(&event).unwrap();
                assert!(chunk.get("error").is_none(), "client {i}: {chunk}");
                n_chunks += 1;
                if Some(n_chunks) == hang_up_after {
                    return Client::HungUp;
                }
            }
            panic!("client {i}: the stream ended without [DONE]");
        }));
    }
    let mut hung_up = 0;
    for client in clients {
        if client.await.unwrap() == Client::HungUp {
            hung_up += 1;
        }
    }
    assert!((10..=40).contains(&hung_up), "{hung_up} clients hung up");
    server.wait_blocks_free().await;
    server.wait_for("running", 0, |s| s.running.load(Ordering::Relaxed)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_of_streams_with_hang_ups_leave_nothing_behind() {
    // Few enough KV blocks that the first wave touches them all: the cache's pages count in
    // the RSS, and must not be what grows.
    let engine = EngineConfig { max_seqs: 16, max_queue: N_CLIENTS, kv_blocks: 160, ..engine_config() };
    let Some(server) = Server::start(ServerConfig::default(), engine).await else { return };
    // A warm-up wave first: the allocator's arenas and the engine's scratch reach their size.
    wave(&server, 0).await;
    wave(&server, 1).await;
    let after_first = rss_kib();
    wave(&server, 2).await;
    let after_second = rss_kib();
    eprintln!("RSS after the first measured wave: {after_first} KiB; after the second: {after_second} KiB");
    assert!(after_second <= after_first + 16 * 1024, "memory grew from {after_first} KiB to {after_second} KiB");
    let metrics = common::get(server.addr, "/metrics").await.text();
    assert!(metrics.contains("herd_requests_total{outcome=\"error\"} 0"), "{metrics}");
    server.finished().await;
}
