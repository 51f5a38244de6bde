//! From parsed wire requests to what the engine runs: every field checked against its range,
//! each failure a 400 naming the field. Tokenizing is the caller's (it needs the model); the
//! context check comes after it, in `requests`, with the counts in the message.

use herd_engine::runner::Request;
use herd_engine::sampler::SamplingParams;
use herd_tokenizer::template::ChatMessage;

use crate::error::ApiError;
use crate::wire::{ChatRequest, Common, CompletionRequest, Content, Message, Prompt, Stop};

/// Most choices per prompt (`n`).
pub const MAX_N: u32 = 16;
/// Most choices per request (prompts × n): each is a sequence in the engine.
pub const MAX_CHOICES: usize = 64;
/// Most stop strings, and the longest one in bytes.
pub const MAX_STOPS: usize = 16;
pub const MAX_STOP_BYTES: usize = 256;
/// Most alternatives per token in logprobs.
pub const MAX_TOP_LOGPROBS: u32 = 20;
/// Most `logit_bias` entries.
pub const MAX_LOGIT_BIAS: usize = 1024;

/// What a request asks of every one of its choices.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Choices per prompt.
    pub n: usize,
    /// `None`: the rest of the context.
    pub max_tokens: Option<usize>,
    /// The seed is the first choice's; choice i draws with seed + i.
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    /// With `Some(k)`: a log-probability per token, with k alternatives.
    pub logprobs: Option<usize>,
    pub stream: bool,
    pub include_usage: bool,
}

/// One prompt of a completion request, before tokenizing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptInput {
    Text(String),
    Tokens(Vec<u32>),
}

pub fn chat(req: &ChatRequest, common: &Common, n_vocab: usize, random_seed: u64) -> Result<(Vec<ChatMessage>, Params), ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid(Some("messages"), "'messages' must hold at least one message"));
    }
    unsupported(common)?;
    let messages = req.messages.iter().enumerate().map(|(i, m)| message(i, m)).collect::<Result<Vec<_>, _>>()?;
    let top = match (req.logprobs.unwrap_or(false), req.top_logprobs) {
        (false, Some(_)) => return Err(ApiError::invalid(Some("top_logprobs"), "'top_logprobs' needs 'logprobs' set to true")),
        (false, None) => None,
        (true, k) => Some(top_logprobs("top_logprobs", k)?),
    };
    let max_tokens = req.max_completion_tokens.map(|m| ("max_completion_tokens", m)).or(req.max_tokens.map(|m| ("max_tokens", m)));
    Ok((messages, params(common, max_tokens, top, n_vocab, random_seed)?))
}

pub fn completion(req: &CompletionRequest, common: &Common, n_vocab: usize, random_seed: u64) -> Result<(Vec<PromptInput>, Params), ApiError> {
    unsupported(common)?;
    let prompts: Vec<PromptInput> = match &req.prompt {
        Prompt::Text(text) => vec![PromptInput::Text(text.clone())],
        Prompt::Texts(texts) => texts.iter().cloned().map(PromptInput::Text).collect(),
        Prompt::Tokens(ids) => vec![PromptInput::Tokens(ids.clone())],
        Prompt::TokenLists(lists) => lists.iter().cloned().map(PromptInput::Tokens).collect(),
    };
    if prompts.is_empty() {
        return Err(ApiError::invalid(Some("prompt"), "'prompt' must hold at least one prompt"));
    }
    for p in &prompts {
        if let PromptInput::Tokens(ids) = p {
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= n_vocab) {
                return Err(ApiError::invalid(Some("prompt"), format!("token id {bad} is outside the vocabulary of {n_vocab}")));
            }
        }
    }
    let top = req.logprobs.map(|k| top_logprobs("logprobs", Some(k))).transpose()?;
    let params = params(common, req.max_tokens.map(|m| ("max_tokens", m)), top, n_vocab, random_seed)?;
    if prompts.len().saturating_mul(params.n) > MAX_CHOICES {
        return Err(ApiError::invalid(Some("n"), format!("{} prompts with n = {} make more than {MAX_CHOICES} choices", prompts.len(), params.n)));
    }
    Ok((prompts, params))
}

/// Structured output and tool calling, until herd has them: a request that asks for either is
/// refused naming the field, because a 200 of free text would make the client fail later and
/// further from the cause. What changes nothing is accepted: `response_format` of type
/// `text`, an empty `tools` list, `tool_choice` (or `function_call`) `"none"`. Without tools,
/// `parallel_tool_calls` has nothing to act on, so it is not read at all.
fn unsupported(c: &Common) -> Result<(), ApiError> {
    use serde_json::Value;
    if let Some(format) = &c.response_format {
        let kind = format.get("type").and_then(Value::as_str);
        if kind != Some("text") {
            let got = kind.map_or_else(|| format!("'{format}'"), |k| format!("type '{k}'"));
            return Err(ApiError::invalid(Some("response_format"), format!("structured output is not supported yet: 'response_format' may only be {{\"type\": \"text\"}}, got {got}")));
        }
    }
    for (param, value) in [("tools", &c.tools), ("functions", &c.functions)] {
        match value {
            None => {}
            Some(Value::Array(list)) if list.is_empty() => {}
            Some(_) => return Err(ApiError::invalid(Some(param), format!("tool calling is not supported yet: '{param}' must be absent or empty"))),
        }
    }
    for (param, value) in [("tool_choice", &c.tool_choice), ("function_call", &c.function_call)] {
        match value {
            None => {}
            Some(Value::String(s)) if s == "none" => {}
            Some(_) => return Err(ApiError::invalid(Some(param), format!("tool calling is not supported yet: '{param}' may only be \"none\""))),
        }
    }
    Ok(())
}

fn message(i: usize, m: &Message) -> Result<ChatMessage, ApiError> {
    let no_tools = |field: &str| ApiError::invalid(Some(&format!("messages[{i}].{field}")), format!("tool calling is not supported yet: messages[{i}] has '{field}'"));
    if m.tool_calls.as_ref().is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|calls| !calls.is_empty())) {
        return Err(no_tools("tool_calls"));
    }
    if m.function_call.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(no_tools("function_call"));
    }
    let role = match m.role.as_str() {
        "system" | "user" | "assistant" => m.role.as_str(),
        "tool" | "function" => {
            let param = format!("messages[{i}].role");
            return Err(ApiError::invalid(Some(&param), format!("tool calling is not supported yet: messages[{i}] has role '{}', which carries a tool's result", m.role)));
        }
        // OpenAI's newer name for the system role; chat templates know only "system".
        "developer" => "system",
        other => {
            let param = format!("messages[{i}].role");
            return Err(ApiError::invalid(Some(&param), format!("unknown role '{other}' (expected system, developer, user or assistant)")));
        }
    };
    let content = match &m.content {
        None => String::new(),
        Some(Content::Text(text)) => text.clone(),
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                let param = format!("messages[{i}].content[{j}]");
                match (part.kind.as_str(), &part.text) {
                    ("text", Some(t)) => text.push_str(t),
                    ("text", None) => return Err(ApiError::invalid(Some(&param), "a text part needs 'text'")),
                    (other, _) => return Err(ApiError::invalid(Some(&param), format!("content parts of type '{other}' are not supported (only 'text')"))),
                }
            }
            text
        }
    };
    Ok(ChatMessage::new(role, content))
}

fn top_logprobs(param: &str, k: Option<u32>) -> Result<usize, ApiError> {
    let k = k.unwrap_or(0);
    if k > MAX_TOP_LOGPROBS {
        return Err(ApiError::invalid(Some(param), format!("'{param}' must be between 0 and {MAX_TOP_LOGPROBS}, got {k}")));
    }
    Ok(k as usize)
}

fn params(c: &Common, max_tokens: Option<(&str, u64)>, logprobs: Option<usize>, n_vocab: usize, random_seed: u64) -> Result<Params, ApiError> {
    let defaults = SamplingParams::default();
    let in_range = |name: &str, value: Option<f32>, default: f32, ok: fn(f32) -> bool, range: &str| -> Result<f32, ApiError> {
        match value {
            None => Ok(default),
            Some(v) if v.is_finite() && ok(v) => Ok(v),
            Some(v) => Err(ApiError::invalid(Some(name), format!("'{name}' must be {range}, got {v}"))),
        }
    };
    let sampling = SamplingParams {
        temperature: in_range("temperature", c.temperature, defaults.temperature, |v| (0.0..=2.0).contains(&v), "between 0 and 2")?,
        top_p: in_range("top_p", c.top_p, defaults.top_p, |v| v > 0.0 && v <= 1.0, "above 0 and at most 1")?,
        min_p: in_range("min_p", c.min_p, defaults.min_p, |v| (0.0..=1.0).contains(&v), "between 0 and 1")?,
        presence_penalty: in_range("presence_penalty", c.presence_penalty, defaults.presence_penalty, |v| (-2.0..=2.0).contains(&v), "between -2 and 2")?,
        frequency_penalty: in_range("frequency_penalty", c.frequency_penalty, defaults.frequency_penalty, |v| (-2.0..=2.0).contains(&v), "between -2 and 2")?,
        repetition_penalty: in_range("repetition_penalty", c.repetition_penalty, defaults.repetition_penalty, |v| v > 0.0 && v <= 10.0, "above 0 and at most 10")?,
        top_k: c.top_k.map_or(defaults.top_k, |k| k as usize),
        logit_bias: logit_bias(c, n_vocab)?,
        seed: c.seed.unwrap_or(random_seed),
        ..defaults
    };
    // The engine checks the same ranges again; a disagreement is a bug here, still a 400.
    sampling.validate().map_err(|e| ApiError::invalid(None, e))?;

    let n = c.n.unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return Err(ApiError::invalid(Some("n"), format!("'n' must be between 1 and {MAX_N}, got {n}")));
    }
    let max_tokens = match max_tokens {
        None => None,
        Some((name, 0)) => return Err(ApiError::invalid(Some(name), format!("'{name}' must be at least 1"))),
        Some((_, m)) => Some(usize::try_from(m).unwrap_or(usize::MAX)),
    };
    let stop = match &c.stop {
        None => vec![],
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stop.len() > MAX_STOPS {
        return Err(ApiError::invalid(Some("stop"), format!("at most {MAX_STOPS} stop strings, got {}", stop.len())));
    }
    if let Some(long) = stop.iter().find(|s| s.len() > MAX_STOP_BYTES) {
        return Err(ApiError::invalid(Some("stop"), format!("stop strings are at most {MAX_STOP_BYTES} bytes, got one of {}", long.len())));
    }
    let include_usage = c.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false);
    Ok(Params { n: n as usize, max_tokens, sampling, stop, logprobs, stream: c.stream.unwrap_or(false), include_usage })
}

fn logit_bias(c: &Common, n_vocab: usize) -> Result<Vec<(u32, f32)>, ApiError> {
    let Some(map) = &c.logit_bias else { return Ok(vec![]) };
    if map.len() > MAX_LOGIT_BIAS {
        return Err(ApiError::invalid(Some("logit_bias"), format!("at most {MAX_LOGIT_BIAS} entries, got {}", map.len())));
    }
    let mut bias = Vec::with_capacity(map.len());
    for (key, &value) in map {
        let id = key.parse::<u32>().ok().filter(|&id| (id as usize) < n_vocab);
        let Some(id) = id else {
            return Err(ApiError::invalid(Some("logit_bias"), format!("'{key}' is not a token id of this model (0 to {})", n_vocab - 1)));
        };
        if !(value.is_finite() && (-100.0..=100.0).contains(&value)) {
            return Err(ApiError::invalid(Some("logit_bias"), format!("the bias of token {id} must be between -100 and 100, got {value}")));
        }
        bias.push((id, value));
    }
    // A map has no order; the sampler's result must not depend on it.
    bias.sort_unstable_by_key(|&(id, _)| id);
    Ok(bias)
}

/// One engine request per prompt (the first choice's; the others differ only in seed), each
/// checked against the context: prompt + max_tokens over `n_ctx` is a 400 with the counts.
/// Without `max_tokens`, a choice may use the rest of the context.
pub fn requests(prompts: Vec<Vec<u32>>, params: &Params, n_ctx: usize, param: &str) -> Result<Vec<Request>, ApiError> {
    prompts
        .into_iter()
        .map(|prompt| {
            let n_prompt = prompt.len();
            if n_prompt == 0 {
                return Err(ApiError::invalid(Some(param), "the prompt is empty"));
            }
            let max_tokens = match params.max_tokens {
                Some(m) if n_prompt.saturating_add(m) > n_ctx => {
                    let message = format!("the prompt ({n_prompt} tokens) plus max_tokens ({m}) is {} tokens, over the context of {n_ctx} tokens", n_prompt.saturating_add(m));
                    return Err(ApiError::invalid(Some(param), message).with_code("context_length_exceeded"));
                }
                Some(m) => m,
                None if n_prompt >= n_ctx => {
                    let message = format!("the prompt is {n_prompt} tokens, which leaves no room to generate in the context of {n_ctx} tokens");
                    return Err(ApiError::invalid(Some(param), message).with_code("context_length_exceeded"));
                }
                None => n_ctx - n_prompt,
            };
            Ok(Request { prompt, max_tokens, sampling: params.sampling.clone(), stop: params.stop.clone(), top_logprobs: params.logprobs })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const N_VOCAB: usize = 1000;

    fn common(json: serde_json::Value) -> Common {
        serde_json::from_value(json).unwrap()
    }

    /// Checks that the common fields in `json` are refused for `param` with a message
    /// containing `fragment`, or accepted when `fragment` is empty.
    fn check(json: serde_json::Value, param: Option<&str>, fragment: &str) {
        let got = params(&common(json.clone()), None, None, N_VOCAB, 7);
        match got {
            Ok(_) => assert!(fragment.is_empty(), "{json}: accepted, expected an error with '{fragment}'"),
            Err(e) => {
                assert!(!fragment.is_empty(), "{json}: refused: {e:?}");
                assert_eq!(e.param.as_deref(), param, "{json}");
                assert!(e.message.contains(fragment), "{json}: {}", e.message);
            }
        }
    }

    #[test]
    fn ranges_are_checked_field_by_field() {
        use serde_json::json;
        check(json!({}), None, "");
        check(json!({"temperature": 0, "top_p": 1, "min_p": 0, "top_k": 0, "n": 16, "seed": 3}), None, "");
        check(json!({"temperature": 2.5}), Some("temperature"), "between 0 and 2");
        check(json!({"temperature": -0.1}), Some("temperature"), "got -0.1");
        check(json!({"temperature": 1e40}), Some("temperature"), "got inf");
        check(json!({"top_p": 0}), Some("top_p"), "above 0");
        check(json!({"top_p": 1.5}), Some("top_p"), "at most 1");
        check(json!({"min_p": 2}), Some("min_p"), "between 0 and 1");
        check(json!({"presence_penalty": 3}), Some("presence_penalty"), "between -2 and 2");
        check(json!({"frequency_penalty": -3}), Some("frequency_penalty"), "between -2 and 2");
        check(json!({"repetition_penalty": 0}), Some("repetition_penalty"), "above 0");
        check(json!({"n": 0}), Some("n"), "between 1 and 16");
        check(json!({"n": 17}), Some("n"), "got 17");
        check(json!({"stop": vec!["a"; 17]}), Some("stop"), "at most 16");
        check(json!({"stop": "x".repeat(300)}), Some("stop"), "at most 256 bytes");
        check(json!({"logit_bias": {"5": 100, "6": -100}}), None, "");
        check(json!({"logit_bias": {"five": 1}}), Some("logit_bias"), "'five' is not a token id");
        check(json!({"logit_bias": {"1000": 1}}), Some("logit_bias"), "0 to 999");
        check(json!({"logit_bias": {"5": 101}}), Some("logit_bias"), "between -100 and 100");
    }

    #[test]
    fn defaults_and_conversions() {
        let p = params(&common(serde_json::json!({"stop": "END", "logit_bias": {"9": 1, "2": -1}, "stream": true, "stream_options": {"include_usage": true}})), Some(("max_tokens", 5)), Some(3), N_VOCAB, 42).unwrap();
        assert_eq!(p.sampling.seed, 42);
        assert_eq!(p.sampling.temperature, SamplingParams::default().temperature);
        assert_eq!(p.sampling.logit_bias, vec![(2, -1.0), (9, 1.0)]);
        assert_eq!((p.n, p.max_tokens, p.stop.as_slice(), p.logprobs, p.stream, p.include_usage), (1, Some(5), &["END".to_string()][..], Some(3), true, true));
        let zero = params(&common(serde_json::json!({})), Some(("max_completion_tokens", 0)), None, N_VOCAB, 0).unwrap_err();
        assert_eq!(zero.param.as_deref(), Some("max_completion_tokens"));
    }

    #[test]
    fn chat_messages_and_logprobs() {
        let chat_req = |json: serde_json::Value| -> ChatRequest { serde_json::from_value(json).unwrap() };
        let ok = chat_req(serde_json::json!({"messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": null}
        ], "logprobs": true, "top_logprobs": 2}));
        let (messages, p) = chat(&ok, &Common::default(), N_VOCAB, 0).unwrap();
        assert_eq!(messages, vec![ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "Hi there"), ChatMessage::new("assistant", "")]);
        assert_eq!(p.logprobs, Some(2));
        let cases = [
            (serde_json::json!({"messages": []}), "messages", "at least one"),
            (serde_json::json!({"messages": [{"role": "robot", "content": "x"}]}), "messages[0].role", "unknown role 'robot'"),
            (serde_json::json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}), "messages[0].content[0]", "'image_url' are not supported"),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}), "top_logprobs", "needs 'logprobs'"),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21}), "top_logprobs", "between 0 and 20"),
        ];
        for (json, param, fragment) in cases {
            let e = chat(&chat_req(json.clone()), &Common::default(), N_VOCAB, 0).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{json}");
            assert!(e.message.contains(fragment), "{json}: {}", e.message);
        }
    }

    #[test]
    fn structured_output_and_tools_are_refused_by_name() {
        use serde_json::json;
        // (fields beside the messages or prompt, param refused or None when accepted, message fragment)
        let cases = [
            (json!({"response_format": {"type": "text"}}), None, ""),
            (json!({"response_format": null, "tools": [], "functions": [], "tool_choice": "none", "function_call": "none", "parallel_tool_calls": false}), None, ""),
            (json!({"response_format": {"type": "json_object"}}), Some("response_format"), "structured output is not supported yet"),
            (json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}), Some("response_format"), "got type 'json_schema'"),
            (json!({"response_format": {"type": "sound"}}), Some("response_format"), "got type 'sound'"),
            (json!({"response_format": "json"}), Some("response_format"), "got '\"json\"'"),
            (json!({"tools": [{"type": "function", "function": {"name": "f"}}]}), Some("tools"), "tool calling is not supported yet"),
            (json!({"tools": {}}), Some("tools"), "absent or empty"),
            (json!({"functions": [{"name": "f"}]}), Some("functions"), "tool calling"),
            (json!({"tool_choice": "auto"}), Some("tool_choice"), "may only be \"none\""),
            (json!({"tool_choice": {"type": "function", "function": {"name": "f"}}}), Some("tool_choice"), "tool calling"),
            (json!({"function_call": "auto"}), Some("function_call"), "tool calling"),
        ];
        for (fields, param, fragment) in cases {
            let mut chat_json = json!({"messages": [{"role": "user", "content": "x"}]});
            let mut completion_json = json!({"prompt": "x"});
            for body in [&mut chat_json, &mut completion_json] {
                body.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
            }
            let chat_req: ChatRequest = serde_json::from_value(chat_json.clone()).unwrap();
            let completion_req: CompletionRequest = serde_json::from_value(completion_json.clone()).unwrap();
            let got = [chat(&chat_req, &common(chat_json), N_VOCAB, 0).err(), completion(&completion_req, &common(completion_json), N_VOCAB, 0).err()];
            for e in got {
                match (e, param) {
                    (None, None) => {}
                    (Some(e), Some(param)) => {
                        assert_eq!((e.status.as_u16(), e.param.as_deref()), (400, Some(param)), "{fields}");
                        assert!(e.message.contains(fragment), "{fields}: {}", e.message);
                    }
                    (e, _) => panic!("{fields}: got {e:?}, expected param {param:?}"),
                }
            }
        }
    }

    #[test]
    fn tool_messages_are_refused_by_name() {
        use serde_json::json;
        let cases = [
            (json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}), "messages[1].tool_calls"),
            (json!({"role": "assistant", "content": null, "function_call": {"name": "f", "arguments": "{}"}}), "messages[1].function_call"),
            (json!({"role": "tool", "tool_call_id": "c1", "content": "42"}), "messages[1].role"),
            (json!({"role": "function", "name": "f", "content": "42"}), "messages[1].role"),
        ];
        for (turn, param) in cases {
            let json = json!({"messages": [{"role": "user", "content": "x"}, turn]});
            let e = chat(&serde_json::from_value(json.clone()).unwrap(), &Common::default(), N_VOCAB, 0).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{json}");
            assert!(e.message.contains("tool calling is not supported yet"), "{json}: {}", e.message);
        }
        // An empty or null list of calls asks for nothing.
        let json = json!({"messages": [{"role": "assistant", "content": "a", "tool_calls": []}, {"role": "assistant", "content": "b", "tool_calls": null}]});
        assert!(chat(&serde_json::from_value(json).unwrap(), &Common::default(), N_VOCAB, 0).is_ok());
    }

    #[test]
    fn completion_prompts_in_every_form() {
        let prompts = |json: serde_json::Value| {
            let req: CompletionRequest = serde_json::from_value(json).unwrap();
            completion(&req, &Common::default(), N_VOCAB, 0).map(|(p, _)| p).map_err(|e| e.message)
        };
        let text = |s: &str| PromptInput::Text(s.into());
        assert_eq!(prompts(serde_json::json!({"prompt": "a"})), Ok(vec![text("a")]));
        assert_eq!(prompts(serde_json::json!({"prompt": ["a", "b"]})), Ok(vec![text("a"), text("b")]));
        assert_eq!(prompts(serde_json::json!({"prompt": [1, 2]})), Ok(vec![PromptInput::Tokens(vec![1, 2])]));
        assert_eq!(prompts(serde_json::json!({"prompt": [[1], [2, 3]]})), Ok(vec![PromptInput::Tokens(vec![1]), PromptInput::Tokens(vec![2, 3])]));
        assert!(prompts(serde_json::json!({"prompt": []})).unwrap_err().contains("at least one"));
        assert!(prompts(serde_json::json!({"prompt": [5000]})).unwrap_err().contains("token id 5000"));
    }

    #[test]
    fn context_limits_give_the_counts() {
        let p = |max_tokens| Params { n: 1, max_tokens, sampling: SamplingParams::default(), stop: vec![], logprobs: None, stream: false, include_usage: false };
        let check = |n_prompt: usize, max_tokens: Option<usize>, expected: Result<usize, &str>| {
            let got = requests(vec![vec![1; n_prompt]], &p(max_tokens), 100, "prompt");
            match expected {
                Ok(m) => assert_eq!(got.unwrap()[0].max_tokens, m),
                Err(fragment) => {
                    let e = got.unwrap_err();
                    assert!(e.message.contains(fragment), "{}", e.message);
                    assert_eq!((e.param.as_deref(), e.code), (Some("prompt"), if n_prompt == 0 { None } else { Some("context_length_exceeded") }));
                }
            }
        };
        check(10, Some(90), Ok(90));
        check(10, None, Ok(90));
        check(10, Some(91), Err("the prompt (10 tokens) plus max_tokens (91) is 101 tokens, over the context of 100 tokens"));
        check(100, None, Err("the prompt is 100 tokens, which leaves no room"));
        check(0, Some(1), Err("the prompt is empty"));
    }
}
