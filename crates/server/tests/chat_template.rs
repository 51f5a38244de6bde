//! `herd serve --chat-template`: the loader puts the template it is given on a model whose file
//! carries none, so chat completions work; without one they are refused, with the hint.

mod common;

use common::{post, Server};
use herd_engine::synth::{find_shape, write, SynthOptions};
use herd_kernels::DType;
use herd_server::{spawn_loader, AppState, EngineOptions, Health, KvSize, ServerConfig};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_template_given_at_start_serves_a_file_without_one() {
    let dir = std::env::temp_dir().join(format!("herd-server-template-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny-no-template.gguf");
    write(&SynthOptions { shape: find_shape("tiny").unwrap(), dtype: DType::Q4_1, seed: 3, chat_template: false }, &path).unwrap();
    let engine = EngineOptions { n_ctx: None, max_seqs: 2, max_queue: 4, token_budget: 64, threads: 1, kv: KvSize::Blocks(64) };
    let chatml = herd_tokenizer::template::builtin("chatml").unwrap().source.to_string();
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    // (template given at start, status of a chat completion, text the reply holds)
    for (template, want_status, want_text) in [(None, 400, "--chat-template"), (Some(chatml), 200, "\"assistant\"")] {
        let state = AppState::new("tiny", ServerConfig::default());
        let loader = spawn_loader(state.clone(), path.clone(), template, engine.clone());
        tokio::task::spawn_blocking(move || loader.join().unwrap()).await.unwrap();
        assert!(matches!(state.health(), Health::Ready), "{:?}", state.health());
        let server = Server::serve(state).await;
        let response = post(server.addr, "/v1/chat/completions", &body).await;
        assert_eq!(response.status, want_status, "{}", response.text());
        assert!(response.text().contains(want_text), "{}", response.text());
        server.finished().await;
    }
    std::fs::remove_dir_all(dir).unwrap();
}
