//! The chat templates herd ships (`--chat-template NAME`): each renders a conversation with a
//! system message to the text its family expects, and renders every case of the shared
//! `templates/cases.json` that a real template of its family renders (same variables, same
//! text).

use std::path::PathBuf;

use herd_tokenizer::template::{builtin, builtin_names, ChatMessage, ChatTemplate, TemplateError, BUILTINS};
use serde_json::{json, Value};

fn template(name: &str) -> ChatTemplate {
    let builtin = builtin(name).unwrap_or_else(|| panic!("herd ships {name}"));
    ChatTemplate::new(builtin.source).unwrap_or_else(|e| panic!("{name} compiles: {e}"))
}

/// System, user, assistant, user; asking for the answer.
fn two_turns_with_system(bos: &str, eos: &str) -> Value {
    json!({
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4."},
            {"role": "user", "content": "And 3+3?"},
        ],
        "add_generation_prompt": true,
        "bos_token": bos,
        "eos_token": eos,
        "date_string": "26 Nov 2026",
    })
}

#[test]
fn each_builtin_renders_two_turns_with_a_system_message() {
    #[rustfmt::skip]
    let cases = [
        ("chatml", "", "<|im_end|>", "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n"),
        ("qwen", "", "<|im_end|>", "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n"),
        ("llama3", "<|begin_of_text|>", "<|eot_id|>", "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Nov 2026\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
        ("gemma", "<bos>", "<eos>", "<bos><start_of_turn>user\nYou are terse.\n\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4.<end_of_turn>\n<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n"),
        ("phi3", "<s>", "<|endoftext|>", "<|system|>\nYou are terse.<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n4.<|end|>\n<|user|>\nAnd 3+3?<|end|>\n<|assistant|>\n"),
        ("mistral", "<s>", "</s>", "<s>[INST]What is 2+2?[/INST]4.</s>[INST]You are terse.\n\nAnd 3+3?[/INST]"),
    ];
    for (name, bos, eos, expected) in cases {
        assert_eq!(template(name).render(&two_turns_with_system(bos, eos)).unwrap(), expected, "{name}");
    }
    let tested: Vec<&str> = cases.iter().map(|c| c.0).collect();
    for builtin in BUILTINS {
        assert!(tested.contains(&builtin.name), "{} has no expected text here", builtin.name);
    }
}

/// Every case of `cases.json` whose template is of the built-in's family and which renders
/// (Gemma 2's own template refuses a system message; herd's Gemma template takes it, as Gemma
/// 3's does).
#[test]
fn builtins_render_the_shared_cases_of_their_family() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/templates");
    let Ok(text) = std::fs::read_to_string(dir.join("cases.json")) else {
        eprintln!("skipped: no shared test data at {}", dir.display());
        return;
    };
    let cases: Vec<Value> = serde_json::from_str(&text).expect("cases.json parses");
    let families = [
        ("qwen", &["Qwen-Qwen2.5-7B-Instruct.jinja"][..]),
        ("llama3", &["meta-llama-Llama-3.1-8B-Instruct.jinja", "meta-llama-Llama-3.2-3B-Instruct.jinja", "meta-llama-Llama-3.3-70B-Instruct.jinja"][..]),
        ("gemma", &["google-gemma-2-2b-it.jinja"][..]),
        ("phi3", &["microsoft-Phi-3.5-mini-instruct.jinja"][..]),
        ("mistral", &["mistralai-Mistral-Nemo-Instruct-2407.jinja"][..]),
    ];
    for (name, files) in families {
        let template = template(name);
        let mut n_compared = 0;
        for case in cases.iter().filter(|c| files.contains(&c["template"].as_str().unwrap_or(""))) {
            let Some(expected) = case["expected"].as_str() else { continue };
            let got = template.render(&case["variables"]).unwrap_or_else(|e| panic!("{name} on {}: {e}", case["template"]));
            assert_eq!(got, expected, "{name} vs {} conversation {}", case["template"], case["conversation"]);
            n_compared += 1;
        }
        assert!(n_compared >= 2, "{name}: only {n_compared} cases of its family in cases.json");
    }
}

#[test]
fn builtins_are_found_by_name_and_unknown_names_are_not() {
    assert_eq!(builtin_names(), "chatml, gemma, llama3, mistral, phi3, qwen");
    assert_eq!(builtin("ChatML").map(|b| b.name), Some("chatml"));
    assert!(builtin("llama2").is_none());
    assert!(builtin("").is_none());
}

/// What `herd chat` and the server pass (`render_chat`: no date_string) renders too, Llama 3
/// with today's date.
#[test]
fn builtins_render_what_herd_passes() {
    let messages = [ChatMessage::new("user", "Hi")];
    for builtin in BUILTINS {
        let text = template(builtin.name).render_chat(&messages, true, "<s>", "</s>").unwrap();
        assert!(text.contains("Hi"), "{}: {text:?}", builtin.name);
    }
    let text = template("llama3").render_chat(&messages, true, "<|begin_of_text|>", "<|eot_id|>").unwrap();
    let date = text.split("Today Date: ").nth(1).and_then(|rest| rest.split('\n').next()).unwrap();
    assert!(date.len() == 11 && date.split(' ').count() == 3, "{text:?}");
}

/// Families whose format has no place for it refuse a conversation whose roles do not
/// alternate, as their own templates do, instead of rendering a prompt the model never saw.
#[test]
fn gemma_and_mistral_refuse_roles_out_of_turn() {
    let vars = json!({
        "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        "add_generation_prompt": true, "bos_token": "", "eos_token": "",
    });
    for name in ["gemma", "mistral"] {
        let err = template(name).render(&vars).unwrap_err();
        assert!(matches!(&err, TemplateError::Raised(message) if message.contains("alternate")), "{name}: {err}");
    }
    let tool = json!({"messages": [{"role": "tool", "content": "x"}], "add_generation_prompt": true, "bos_token": "", "eos_token": ""});
    assert!(matches!(template("phi3").render(&tool), Err(TemplateError::Raised(_))));
}
