//! Chat templates against Hugging Face: every case in the shared `templates/cases.json`
//! (real models' templates, expected text from Python's jinja2 set up as
//! `apply_chat_template` does), self-contained cases whose expected text came from the
//! same Python setup, and the sandbox's limits and errors.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use herd_tokenizer::template::{ChatMessage, ChatTemplate, Limits, TemplateError};
use serde_json::Value;

/// Hugging Face's SmolLM2 template, the default model's.
const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A tool-using conversation: a system prompt, a call with JSON arguments, two tool
/// results, an answer with a reasoning block, and a follow-up.
const CONVERSATION: &str = r##"[{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": "", "tool_calls": [{"id": "abc123def", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2], "ratio": 0.5}}}]}, {"role": "tool", "name": "get_weather", "tool_call_id": "abc123def", "content": "{\"temp\": 21}"}, {"role": "tool", "name": "get_weather", "tool_call_id": "abc123def", "content": "sunny"}, {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nIt is 21°C and sunny."}, {"role": "user", "content": "Thanks"}]"##;

/// A tool schema with a union type, an array, a map, a return value and non-ASCII text.
const TOOLS: &str = r##"[{"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city. Données météo ✓", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}, "unit": {"type": ["string", "null"], "enum": ["c", "f"], "description": "Unit"}, "days": {"type": "array", "items": {"type": "integer"}, "description": "Days ahead"}, "opts": {"type": "object", "additionalProperties": {"type": "number"}, "description": "Extra"}}, "required": ["city"]}, "return": {"type": "string", "description": "A forecast"}}}]"##;

/// A call whose arguments are a JSON string.
const CONVERSATION_2: &str = r##"[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "tool_calls": [{"id": "xyz987abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}, {"role": "tool", "tool_call_id": "xyz987abc", "content": "cold"}]"##;

/// A schema within what Hermes's `json_to_python_type` macro handles.
const TOOLS_2: &str = r##"[{"type": "function", "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": "  Query  "}, "n": {"type": "integer", "description": "Count"}, "u": {"type": ["integer", "string"], "description": "Union"}, "m": {"type": "object", "additionalProperties": {"type": "boolean"}, "description": "Flags"}}, "required": ["q"]}}}]"##;

fn templates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/templates")
}

fn render(source: &str, vars: &str) -> Result<String, TemplateError> {
    let vars: Value = serde_json::from_str(vars).expect("test variables are JSON");
    ChatTemplate::new(source)?.render(&vars)
}

#[test]
fn cases_json_render_like_hugging_face() {
    let dir = templates_dir();
    let Ok(text) = std::fs::read_to_string(dir.join("cases.json")) else {
        eprintln!("skipped: no shared test data at {}", dir.display());
        return;
    };
    let cases: Vec<Value> = serde_json::from_str(&text).expect("cases.json parses");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["template"].as_str().expect("case names its template");
        let label = format!("{name} conversation {}", case["conversation"]);
        let source = std::fs::read_to_string(dir.join(name)).expect("template file exists");
        let result = ChatTemplate::new(&source).and_then(|t| t.render(&case["variables"]));
        match (&case["expected"], result) {
            (Value::String(expected), Ok(got)) if *expected == got => {}
            (Value::String(expected), got) => failures.push(format!(
                "{label}:\n  expected {expected:?}\n  got      {got:?}"
            )),
            (Value::Null, Err(TemplateError::Raised(message))) => {
                // Python reports `TemplateError: <message>`.
                let error = case["error"].as_str().expect("a failing case has an error");
                if error.strip_prefix("TemplateError: ") != Some(message.as_str()) {
                    failures.push(format!(
                        "{label}: expected error {error:?}, got {message:?}"
                    ));
                }
            }
            (_, got) => failures.push(format!("{label}: expected an error, got {got:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Tool use through real templates, which cases.json does not exercise: `tojson` on
/// schemas and arguments, tool-call and tool-result turns, Hermes's recursive macro.
/// (template file, messages, tools, what Hugging Face renders)
#[test]
fn tool_use_renders_like_hugging_face() {
    let dir = templates_dir();
    if !dir.is_dir() {
        eprintln!("skipped: no shared test data at {}", dir.display());
        return;
    }
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
            CONVERSATION_2,
            TOOLS_2,
            r##"<s><|im_start|>system
You are a function calling AI model. You are provided with function signatures within <tools></tools> XML tags. You may call one or more functions to assist with the user query. Don't make assumptions about what values to plug into functions. Here are the available tools: <tools> {"type": "function", "function": {"name": "lookup", "description": "lookup(q: str, n: int, u: Union[int,str], m: dict[str, bool]) - Look up

    Args:
        q(str): Query        n(int): Count        u(Union[int,str]): Union        m(dict[str, bool]): Flags", "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": "  Query  "}, "n": {"type": "integer", "description": "Count"}, "u": {"type": ["integer", "string"], "description": "Union"}, "m": {"type": "object", "additionalProperties": {"type": "boolean"}, "description": "Flags"}}, "required": ["q"]}} </tools>Use the following pydantic model json schema for each tool call you will make: {"properties": {"name": {"title": "Name", "type": "string"}, "arguments": {"title": "Arguments", "type": "object"}}, "required": ["name", "arguments"], "title": "FunctionCall", "type": "object"}}
For each function call return a json object with function name and arguments within <tool_call></tool_call> XML tags as follows:
<tool_call>
{"name": <function-name>, "arguments": <args-dict>}
</tool_call><|im_end|>
<|im_start|>user
hi<|im_end|>
<|im_start|>assistant
<tool_call>
{"name": "get_weather", "arguments": {"city": "Oslo"}}
</tool_call><|im_end|>
<|im_start|>tool
<tool_response>
cold
</tool_response><|im_end|><|im_start|>assistant
"##,
        ),
        (
            "Qwen-Qwen3-0.6B.jinja",
            CONVERSATION,
            TOOLS,
            r##"<|im_start|>system
You are helpful.

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city. Données météo ✓", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}, "unit": {"type": ["string", "null"], "enum": ["c", "f"], "description": "Unit"}, "days": {"type": "array", "items": {"type": "integer"}, "description": "Days ahead"}, "opts": {"type": "object", "additionalProperties": {"type": "number"}, "description": "Extra"}}, "required": ["city"]}, "return": {"type": "string", "description": "A forecast"}}}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
<|im_start|>user
Weather in Paris?<|im_end|>
<|im_start|>assistant
<tool_call>
{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2], "ratio": 0.5}}
</tool_call><|im_end|>
<|im_start|>user
<tool_response>
{"temp": 21}
</tool_response>
<tool_response>
sunny
</tool_response><|im_end|>
<|im_start|>assistant
It is 21°C and sunny.<|im_end|>
<|im_start|>user
Thanks<|im_end|>
<|im_start|>assistant
"##,
        ),
        (
            "meta-llama-Llama-3.1-8B-Instruct.jinja",
            CONVERSATION,
            TOOLS,
            r##"<s><|start_header_id|>system<|end_header_id|>

Environment: ipython
Cutting Knowledge Date: December 2023
Today Date: 26 Nov 2026

You are helpful.<|eot_id|><|start_header_id|>user<|end_header_id|>

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.

{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city. Données météo ✓",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string",
                    "description": "City name"
                },
                "unit": {
                    "type": [
                        "string",
                        "null"
                    ],
                    "enum": [
                        "c",
                        "f"
                    ],
                    "description": "Unit"
                },
                "days": {
                    "type": "array",
                    "items": {
                        "type": "integer"
                    },
                    "description": "Days ahead"
                },
                "opts": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "number"
                    },
                    "description": "Extra"
                }
            },
            "required": [
                "city"
            ]
        },
        "return": {
            "type": "string",
            "description": "A forecast"
        }
    }
}

Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

{"name": "get_weather", "parameters": {"city": "Paris", "days": [1, 2], "ratio": 0.5}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>

"{\"temp\": 21}"<|eot_id|><|start_header_id|>ipython<|end_header_id|>

"sunny"<|eot_id|><|start_header_id|>assistant<|end_header_id|>

<think>
hmm
</think>

It is 21°C and sunny.<|eot_id|><|start_header_id|>user<|end_header_id|>

Thanks<|eot_id|><|start_header_id|>assistant<|end_header_id|>

"##,
        ),
        (
            "mistralai-Mistral-Nemo-Instruct-2407.jinja",
            CONVERSATION,
            TOOLS,
            r##"<s>[INST]Weather in Paris?[/INST][TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2], "ratio": 0.5}, "id": "abc123def"}]</s>[TOOL_RESULTS]{"content": {"temp": 21}, "call_id": "abc123def"}[/TOOL_RESULTS][TOOL_RESULTS]{"content": sunny, "call_id": "abc123def"}[/TOOL_RESULTS]<think>
hmm
</think>

It is 21°C and sunny.</s>[AVAILABLE_TOOLS][{"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city. Données météo ✓", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}, "unit": {"type": ["string", "null"], "enum": ["c", "f"], "description": "Unit"}, "days": {"type": "array", "items": {"type": "integer"}, "description": "Days ahead"}, "opts": {"type": "object", "additionalProperties": {"type": "number"}, "description": "Extra"}}, "required": ["city"]}}}][/AVAILABLE_TOOLS][INST]You are helpful.

Thanks[/INST]"##,
        ),
    ];
    for (name, messages, tools, expected) in cases {
        let source = std::fs::read_to_string(dir.join(name)).expect("template file exists");
        let vars = serde_json::json!({
            "messages": serde_json::from_str::<Value>(messages).unwrap(),
            "tools": serde_json::from_str::<Value>(tools).unwrap(),
            "documents": null,
            "add_generation_prompt": true,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "date_string": "26 Nov 2026",
        });
        let got = ChatTemplate::new(&source).and_then(|t| t.render(&vars));
        assert_eq!(got.as_deref(), Ok(*expected), "{name}");
    }
}

#[test]
fn smollm2_default_template() {
    let template = ChatTemplate::new(SMOLLM2).unwrap();
    let hi = [ChatMessage::new("user", "Hi")];
    assert_eq!(
        template.render_chat(&hi, true, "", "<|im_end|>").unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let with_system = [
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Hello."),
    ];
    assert_eq!(
        template.render_chat(&with_system, false, "", "<|im_end|>").unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
    );
}

/// (template, variables, what Python's jinja2 renders in Hugging Face's environment)
#[test]
fn renders_like_python_jinja2() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{% for m in messages %}
    {% if m.role == 'user' %}
[{{ m.content }}]
    {% endif %}
{% endfor %}
"#,
            r#"{"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}, {"role": "user", "content": "c"}]}"#,
            r#"[a]
[c]
"#,
        ),
        (
            r#"{% for m in messages[1:] %}{% if m.content == 'skip' %}{% continue %}{% endif %}{% if m.content == 'stop' %}{% break %}{% endif %}{{ loop.index }}:{{ m.content }}{{ ',' if not loop.last }}{% endfor %}|{{ messages[-1].content }}|{{ messages[::-1][0].content }}"#,
            r#"{"messages": [{"content": "zero"}, {"content": "one"}, {"content": "skip"}, {"content": "two"}, {"content": "stop"}, {"content": "three"}]}"#,
            r#"1:one,3:two,|three|three"#,
        ),
        (
            r#"{{ s.strip() }}|{{ s.split() }}|{{ s.strip().split(' ', 1)[1] }}|{{ s.startswith('  He') }}|{{ s.upper() }}|{{ s.lstrip().rstrip('! ') }}|{{ s.replace('l', 'L') }}|{{ s.endswith('!  ') }}|{{ 'a</think>b'.split('</think>')[-1] }}|{{ s.title() }}"#,
            r#"{"s": "  Hello wörld!  "}"#,
            r#"Hello wörld!|['Hello', 'wörld!']|wörld!|True|  HELLO WÖRLD!  |Hello wörld|  HeLLo wörLd!  |True|b|  Hello Wörld!  "#,
        ),
        (
            r#"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.get('zz', 'none') }}|{{ d.keys()|list }}|{% for k, v in d|items %}{{ k }}{% endfor %}"#,
            r#"{"d": {"zeta": 1, "alpha": [1, 2.5, null, true], "mid": {"x": "y'"}}}"#,
            r#"zeta=1;alpha=[1, 2.5, None, True];mid={'x': "y'"};none|['zeta', 'alpha', 'mid']|zetaalphamid"#,
        ),
        (
            r#"{{ t }}|{{ f }}|{{ n }}|{{ x }}|{{ i }}|{{ big }}|{{ small }}|{{ l }}|{{ d }}|{{ 7 / 2 }}|{{ 4 / 2 }}|{{ 7 // 2 }}|{{ t|string }}|{{ missing }}|"#,
            r#"{"t": true, "f": false, "n": null, "x": 1.5, "i": 42, "big": 1e+20, "small": 1e-05, "l": ["a", 1, null, false, 1.0], "d": {"k": "v", "n": null}}"#,
            r#"True|False|None|1.5|42|1e+20|1e-05|['a', 1, None, False, 1.0]|{'k': 'v', 'n': None}|3.5|2.0|3|True||"#,
        ),
        (
            r#"{{ tools|tojson }}
{{ tools[0]|tojson(indent=2) }}
{{ tools[0].function.parameters|tojson(separators=(',', ':')) }}
{{ tools[0]|tojson(sort_keys=true) }}
{{ 'héllo "q" \\ 
	✓ 😀'|tojson }}
{{ 'héllo 😀'|tojson(ensure_ascii=true) }}
{{ [1.0, 2, 1e20, -0.5, [], {}]|tojson }}
{{ {}|tojson(indent=4) }}|{{ [[1], {'a': []}]|tojson(indent='	') }}"#,
            r#"{"tools": [{"type": "function", "function": {"name": "get_weather", "description": "Météo du jour", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "Ville"}, "days": {"type": "integer", "minimum": 1, "maximum": 7.5}}, "required": ["city"]}}}]}"#,
            r#"[{"type": "function", "function": {"name": "get_weather", "description": "Météo du jour", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "Ville"}, "days": {"type": "integer", "minimum": 1, "maximum": 7.5}}, "required": ["city"]}}}]
{
  "type": "function",
  "function": {
    "name": "get_weather",
    "description": "Météo du jour",
    "parameters": {
      "type": "object",
      "properties": {
        "city": {
          "type": "string",
          "description": "Ville"
        },
        "days": {
          "type": "integer",
          "minimum": 1,
          "maximum": 7.5
        }
      },
      "required": [
        "city"
      ]
    }
  }
}
{"type":"object","properties":{"city":{"type":"string","description":"Ville"},"days":{"type":"integer","minimum":1,"maximum":7.5}},"required":["city"]}
{"function": {"description": "Météo du jour", "name": "get_weather", "parameters": {"properties": {"city": {"description": "Ville", "type": "string"}, "days": {"maximum": 7.5, "minimum": 1, "type": "integer"}}, "required": ["city"], "type": "object"}}, "type": "function"}
"héllo \"q\" \\ \n\t✓ 😀"
"h\u00e9llo \ud83d\ude00"
[1.0, 2, 1e+20, -0.5, [], {}]
{}|[
	[
		1
	],
	{
		"a": []
	}
]"#,
        ),
        (
            r#"{% set ns = namespace(sys='', n=0) %}{% for m in messages %}{% if m.role == 'system' %}{% set ns.sys = m.content %}{% else %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}{{ ns.sys }}/{{ ns.n }}|{{ tools is defined }}{{ tools is none }}{{ foo is defined }}{{ messages[0] is mapping }}{{ messages is iterable }}{{ messages[0].content is string }}|{{ 'sys' in messages[0].content }}|{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(', ') }}|{{ messages|length }}|{{ (messages|rejectattr('role', 'equalto', 'system')|list|first).content|trim }}|{{ messages[0]['role']|upper }}"#,
            r#"{"messages": [{"role": "system", "content": "a sys prompt"}, {"role": "user", "content": " u1 "}, {"role": "user", "content": "u2"}], "tools": null}"#,
            r#"a sys prompt/2|TrueTrueFalseTrueTrueTrue|True| u1 , u2|3|u1|SYSTEM"#,
        ),
        (
            r#"{% macro tag(name, body) %}<{{ name }}>{{ body }}</{{ name }}>{% endmacro %}{% for m in messages %}{{ tag(m.role, m.content) }}{% if loop.previtem is defined %}(after {{ loop.previtem.role }}){% endif %}{% if loop.nextitem is defined and loop.nextitem.role == m.role %}+{% endif %}{% endfor %}{{ '<eos>' if add_generation_prompt else '' }}{{ bos_token + 'x' ~ 1 }}"#,
            r#"{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}], "add_generation_prompt": false, "bos_token": "<s>"}"#,
            r#"<user>a</user>+<user>b</user>(after user)<assistant>c</assistant>(after user)<s>x1"#,
        ),
        (
            r#"A  {%- if true %}  B  {% endif -%}  C
  {#- comment #}
{% raw %}{{ x }}{% endraw %}
  {%+ if true %}D{% endif %}
"#,
            r#"{}"#,
            r#"A  B  C{{ x }}  D"#,
        ),
        (
            r#"{{ d|tojson(False, 2) }}|{{ d|tojson(True, None, (',', ':'), True) }}|{{ d|tojson(indent=0) }}"#,
            r#"{"d": {"é": [1, {"b": null}], "a": 2.5}}"#,
            r#"{
  "é": [
    1,
    {
      "b": null
    }
  ],
  "a": 2.5
}|{"a":2.5,"\u00e9":[1,{"b":null}]}|{
"é": [
1,
{
"b": null
}
],
"a": 2.5
}"#,
        ),
    ];
    for (case_idx, (source, vars, expected)) in cases.iter().enumerate() {
        assert_eq!(
            render(source, vars).as_deref(),
            Ok(*expected),
            "case {case_idx}: {source}"
        );
    }
}

#[test]
fn render_chat_passes_what_hugging_face_passes() {
    // HF defines `tools` and `documents` as None when none are given.
    let template = ChatTemplate::new(
        "{{ bos_token }}{{ messages|length }}{{ add_generation_prompt }}{{ tools is defined }}{{ tools is none }}{{ documents is none }}{{ eos_token }}",
    )
    .unwrap();
    let messages = [
        ChatMessage::new("user", "x"),
        ChatMessage::new("assistant", "y"),
    ];
    assert_eq!(
        template
            .render_chat(&messages, false, "<s>", "</s>")
            .unwrap(),
        "<s>2FalseTrueTrueTrue</s>"
    );
}

#[test]
fn generation_tag_renders_its_body() {
    // HF's AssistantTracker tag; trim_blocks and lstrip_blocks apply to it as to any tag.
    let source = "{% for m in messages %}\n  {% generation %}\n[{{ m.content }}]\n  {%- endgeneration %}\n{% endfor %}";
    assert_eq!(
        render(
            source,
            r#"{"messages": [{"content": "a"}, {"content": "b"}]}"#
        )
        .unwrap(),
        "[a][b]"
    );
    assert_eq!(
        render("X {%- generation -%}  y  {%+ endgeneration %}\nZ", "{}").unwrap(),
        "Xy  Z"
    );
}

#[test]
fn strftime_now_gives_todays_date() {
    let text = render("{{ strftime_now('%d %b %Y') }}", "{}").unwrap();
    let parts: Vec<&str> = text.split(' ').collect();
    assert_eq!(parts.len(), 3, "{text}");
    assert!(
        parts[0].len() == 2 && parts[0].bytes().all(|b| b.is_ascii_digit()),
        "{text}"
    );
    assert!(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            .contains(&parts[1])
    );
    assert!(
        parts[2].parse::<u32>().is_ok_and(|year| year >= 2024),
        "{text}"
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let err = ChatTemplate::new("line one\n{% if x %}\n{{ x }}\n{% endfor %}\n").unwrap_err();
    assert!(
        matches!(err, TemplateError::Syntax { line: Some(4), .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("chat template syntax error at line 4: "),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    // Loaders are absent: include, import and extends do not even parse.
    for source in [
        "{% include 'x' %}",
        "{% import 'x' as y %}",
        "{% extends 'x' %}",
    ] {
        assert!(
            matches!(ChatTemplate::new(source), Err(TemplateError::Syntax { .. })),
            "{source}"
        );
    }
}

#[test]
fn raise_exception_aborts_with_its_message() {
    let source = "before{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}after";
    let err = render(
        source,
        r#"{"messages": [{"role": "system", "content": "x"}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        err,
        TemplateError::Raised("System role not supported".to_string())
    );
    assert_eq!(
        err.to_string(),
        "chat template raised an error: System role not supported"
    );
    // Raised from inside a macro, too.
    let source = "{% macro check(m) %}{% if not m %}{{ raise_exception('empty: ' ~ m) }}{% endif %}{% endmacro %}{{ check('') }}";
    assert_eq!(
        render(source, "{}").unwrap_err(),
        TemplateError::Raised("empty: ".to_string())
    );
}

/// Templates that never end on their own stop quickly with a limit error.
#[test]
fn endless_work_is_stopped() {
    let cases = [
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        "{{ 'x' * 10**12 }}",
        // Cheap to build, exponential to print: each level holds the previous one twice.
        "{% set ns = namespace(x=[]) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x }}",
        "{% set ns = namespace(x=[]) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x|tojson }}",
    ];
    for source in cases {
        let started = Instant::now();
        let err = render(source, "{}").unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{source} took {:?}",
            started.elapsed()
        );
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        match err {
            TemplateError::Limit(_) => {}
            // minijinja refuses ranges over 100000 items before any work.
            TemplateError::Render { .. } if text.contains("range has too many elements") => {}
            other => panic!("{source}: {other:?}"),
        }
    }
}

/// A list nested as deep as the work budget allows, then printed by operators that recurse
/// through it (`~`, `join`, `==`): this overflowed the caller's stack and aborted the process
/// before templates rendered on a thread of their own with a large stack.
#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let nest = "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}";
    for print in ["{{ (ns.x ~ '')|length }}", "{{ ([ns.x]|join(','))|length }}", "{{ ns.x == ns.x }}"] {
        let source = format!("{nest}{print}");
        // Rendered or refused for a limit: anything but a crash.
        match render(&source, "{}") {
            Ok(text) => assert!(!text.is_empty(), "{print}"),
            Err(err) => assert!(matches!(err, TemplateError::Limit(_)), "{print}: {err:?}"),
        }
    }
}

#[test]
fn output_is_capped() {
    let err = render(
        "{% for i in range(100000) %}{{ 'abcdefgh' * 16 }}{% endfor %}",
        "{}",
    )
    .unwrap_err();
    assert_eq!(
        err,
        TemplateError::Limit("output is longer than 1048576 bytes".to_string())
    );
    let small = Limits {
        max_output_bytes: 10,
        ..Limits::default()
    };
    let template = ChatTemplate::with_limits("{{ text }}", small).unwrap();
    assert_eq!(
        template
            .render(&serde_json::json!({ "text": "0123456789" }))
            .unwrap(),
        "0123456789"
    );
    assert!(matches!(
        template.render(&serde_json::json!({ "text": "0123456789a" })),
        Err(TemplateError::Limit(_))
    ));
}

/// jinja2's default `Undefined`, as Hugging Face uses it: a bare undefined prints as nothing
/// and iterates as empty, but using it as a value is an error.
#[test]
fn undefined_variables_behave_as_in_jinja2() {
    assert_eq!(
        render(
            "[{{ foo }}]{% for x in foo %}x{% endfor %}{% if not foo %}no{% endif %}",
            "{}"
        )
        .unwrap(),
        "[]no"
    );
    assert_eq!(
        render(
            "{{ foo is defined }}{{ d.missing is defined }}[{{ d.missing }}]",
            r#"{"d": {}}"#
        )
        .unwrap(),
        "FalseFalse[]"
    );
    for source in [
        "{{ foo.bar }}",
        "{{ foo['bar'] }}",
        "{{ d.missing.deeper }}",
        "{{ 'a' + foo }}",
    ] {
        let err = render(source, r#"{"d": {}}"#).unwrap_err();
        assert!(
            matches!(err, TemplateError::Render { line: Some(1), .. }),
            "{source}: {err:?}"
        );
        assert!(err.to_string().contains("undefined"), "{source}: {err}");
    }
    let err = render("\n{{ foo() }}", "{}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "chat template failed at line 2: unknown function: foo is unknown"
    );
}

#[test]
fn bad_variables_are_refused() {
    let template = ChatTemplate::new("x").unwrap();
    assert!(matches!(
        template.render(&serde_json::json!([1])),
        Err(TemplateError::Variables(_))
    ));
    let mut deep = serde_json::json!("leaf");
    for _ in 0..200 {
        deep = serde_json::json!([deep]);
    }
    assert!(matches!(
        template.render(&serde_json::json!({ "v": deep })),
        Err(TemplateError::Variables(_))
    ));
}

#[test]
fn tojson_refuses_what_python_refuses() {
    for source in [
        "{{ foo|tojson }}",
        "{{ {'a': 1}|tojson(indent=[1]) }}",
        "{{ 1|tojson(True, ensure_ascii=False) }}",
        "{{ [1]|tojson(indent=10**9) }}",
        "{{ 1|tojson(1, 2, 3, 4, 5) }}",
    ] {
        assert!(
            matches!(render(source, "{}"), Err(TemplateError::Render { .. })),
            "{source}"
        );
    }
}

#[test]
fn templates_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ChatTemplate>();
}
