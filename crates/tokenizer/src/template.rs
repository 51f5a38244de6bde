//! Chat templates: renders a model's Jinja `chat_template` byte-for-byte as Hugging Face's
//! `apply_chat_template` does, inside a sandbox. It does not tokenize the result.
//!
//! Hugging Face renders with Python jinja2: an `ImmutableSandboxedEnvironment` with
//! `trim_blocks` and `lstrip_blocks`, the `loopcontrols` extension, its own `tojson` filter
//! (`json.dumps` keeping non-ASCII), and the globals `raise_exception` and `strftime_now`.
//! minijinja gives the language; this module adds what Python would do differently: the
//! Python string methods (minijinja-contrib's pycompat), Python's way of printing values
//! (`True`, `None`, `1e+20`, `['a']`), Python's JSON, and the `{% generation %}` tag.
//!
//! herd also ships templates of its own for the common families (`builtin`), for files that
//! carry none.
//!
//! Model files are untrusted, so a render has no loader (no `include`, `import` or
//! `extends`: minijinja's `multi_template` feature is off), a fuel budget that bounds both
//! its work and the memory it allocates, a recursion limit, and a cap on the output size.
//!
//! A template can nest a list inside itself once per loop turn through a namespace
//! (`{% set ns.x = [ns.x] %}`); fuel bounds the depth only to ~10^5 levels, and minijinja
//! drops, compares and prints nested values recursively, so renders run on a thread with a
//! large stack (`ChatTemplate::render`).
//!
//! Known gaps, all in minijinja and out of reach of its hooks:
//! - Holding the same list twice per nesting level makes `~`, `==`, `in` and `join`
//!   exponential within one instruction (printing with `{{ }}`, `string` and `tojson` is
//!   metered here). Python's jinja2 has the same exposure.
//! - `~` and `join` print `true`/`none` where Python prints `True`/`None`.
//! - Iterating none yields nothing, where Python raises (Hermes's tool-use template with
//!   `tools=None` renders here and fails in Hugging Face); a namespace passed to `tojson`
//!   prints as an object, where Python refuses it.

mod builtin;
mod python;
mod strftime;

pub use builtin::{builtin, builtin_names, Builtin, BUILTINS};

use std::fmt;
use std::io;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Rest, Value};
use minijinja::{AutoEscape, Environment, ErrorKind, State, UndefinedBehavior};

/// Stack of the thread a template renders on (see `ChatTemplate::render`): enough for the
/// deepest nesting fuel allows.
const RENDER_STACK: usize = 1 << 30;

/// The name the template is stored under in its environment; never shown to users.
const TEMPLATE_NAME: &str = "chat_template";

/// Deepest nesting accepted in the variables. serde_json refuses to parse deeper documents
/// by default, so only a value built in code can hit this; the bound keeps the recursive
/// conversion from overflowing the stack.
const MAX_VARIABLE_DEPTH: usize = 128;

/// Bounds on one render. Real chat templates need far less than the defaults: the test
/// data's cases take under 300 fuel each, and a conversation rendering to ~1 MiB through
/// the same templates takes 70k-95k.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of rendered text; past this the render stops with [`TemplateError::Limit`].
    pub max_output_bytes: usize,
    /// minijinja fuel: about one unit per instruction and one per 64 bytes of data created,
    /// so it bounds both time and memory (`fuel * 64` bytes at most).
    pub fuel: u64,
    /// minijinja's recursion depth (a macro call costs 4, a loop or `if` 1); minijinja
    /// caps it at 500.
    pub max_recursion: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // A 128k-token context is about 512 KiB of text; twice that leaves headroom.
            max_output_bytes: 1 << 20,
            // 40 times what a conversation at the output cap needs (more turns of fewer
            // bytes cost more instructions); spent in well under a second, and it caps the
            // data a render can create at 256 MiB.
            fuel: 4_000_000,
            // Deep enough for recursive schema macros (Hermes), shallow enough that
            // minijinja's unoptimised debug build stays inside a 2 MiB thread stack.
            max_recursion: 200,
        }
    }
}

/// One turn of a conversation, as the `messages` variable holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Why a template could not be compiled or rendered. `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The template does not parse; `line` is 1-based in the template source.
    Syntax {
        line: Option<usize>,
        message: String,
    },
    /// The template called `raise_exception(message)`, as Gemma does for a system role.
    Raised(String),
    /// Rendering failed: an undefined attribute, a bad operand, an unknown filter...
    Render {
        line: Option<usize>,
        message: String,
    },
    /// The render hit one of its [`Limits`] (output size, fuel, recursion).
    Limit(String),
    /// The variables given to [`ChatTemplate::render`] are not usable (not an object,
    /// nested too deep).
    Variables(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |line: &Option<usize>| match line {
            Some(line) => format!(" at line {line}"),
            None => String::new(),
        };
        match self {
            TemplateError::Syntax { line, message } => {
                write!(f, "chat template syntax error{}: {message}", at(line))
            }
            TemplateError::Raised(message) => write!(f, "chat template raised an error: {message}"),
            TemplateError::Render { line, message } => {
                write!(f, "chat template failed{}: {message}", at(line))
            }
            TemplateError::Limit(message) => write!(f, "chat template stopped: {message}"),
            TemplateError::Variables(message) => {
                write!(f, "invalid chat template variables: {message}")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

/// The message of a `raise_exception` call, carried as the source of minijinja's error so
/// that it can be told apart from the engine's own errors.
#[derive(Debug)]
struct Raised(String);

impl fmt::Display for Raised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

/// A compiled chat template. Compile once per model with [`ChatTemplate::new`]; rendering
/// takes `&self`, so one template serves concurrent requests.
pub struct ChatTemplate {
    env: Environment<'static>,
    limits: Limits,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source` with the default [`Limits`].
    pub fn new(source: &str) -> Result<ChatTemplate, TemplateError> {
        ChatTemplate::with_limits(source, Limits::default())
    }

    /// Compiles `source`; syntax errors are reported with their line.
    pub fn with_limits(source: &str, limits: Limits) -> Result<ChatTemplate, TemplateError> {
        // `new()` brings jinja's builtin filters, tests and functions (`trim`, `length`,
        // `selectattr`, `items`, `is defined`, `range`, `namespace`...) and no loader.
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|err| syntax_error(&err))?;
        env.set_syntax(syntax);
        // Hugging Face never escapes: the output is a prompt, not HTML.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // jinja2's default `Undefined`, which Hugging Face keeps: a bare undefined variable
        // prints as nothing, is false, iterates as empty and passes `is not defined`, so
        // `{% for tool in tools %}` works when no tools are given. Anything that would need
        // a value from it (`foo.bar`, `foo + 'x'`, calling it) is an error in jinja2 and
        // here. Strict modes would refuse templates that Hugging Face renders.
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_fuel(Some(limits.fuel));
        env.set_recursion_limit(limits.max_recursion);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(|out, state, value| {
            // Strings are nearly everything a chat template prints; skip the conversion.
            match value.as_str() {
                Some(text) => out.write_str(text),
                None => out.write_str(&python::to_str(state, value)?),
            }
            .map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "output failed"))
        });
        env.add_filter("tojson", tojson);
        env.add_filter("string", |state: &State, value: &Value| {
            python::to_str(state, value).map(Value::from)
        });
        env.add_function("raise_exception", |message: String| -> Result<Value, _> {
            Err(
                minijinja::Error::new(ErrorKind::InvalidOperation, message.clone())
                    .with_source(Raised(message)),
            )
        });
        env.add_function("strftime_now", |format: &str| strftime::now(format));
        env.add_template_owned(TEMPLATE_NAME, with_generation_as_if(source))
            .map_err(|err| syntax_error(&err))?;
        Ok(ChatTemplate { env, limits })
    }

    /// The limits this template renders under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Renders with exactly `vars`, which must be a JSON object (its keys become the
    /// template's variables).
    ///
    /// The render runs on a thread of its own with `RENDER_STACK` of stack: minijinja drops,
    /// compares and prints nested values recursively, and fuel bounds how deep a template can
    /// nest a list only to ~10^5 levels, which overflowed an 8 MiB stack and aborted the whole
    /// process (`{{ x ~ '' }}` on such a list). The reservation is address space; only the
    /// pages a render touches are backed.
    pub fn render(&self, vars: &serde_json::Value) -> Result<String, TemplateError> {
        std::thread::scope(|scope| {
            let render = std::thread::Builder::new()
                .name("chat-template".into())
                .stack_size(RENDER_STACK)
                .spawn_scoped(scope, || self.render_here(vars))
                .map_err(|err| TemplateError::Limit(format!("cannot start the render thread: {err}")))?;
            render.join().unwrap_or_else(|_| {
                Err(TemplateError::Render { line: None, message: "the template engine failed".to_string() })
            })
        })
    }

    fn render_here(&self, vars: &serde_json::Value) -> Result<String, TemplateError> {
        if !vars.is_object() {
            return Err(TemplateError::Variables(format!(
                "expected a JSON object, got {}",
                json_kind(vars)
            )));
        }
        let context = json_to_value(vars, 0)?;
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|err| render_error(&err))?;
        let mut writer = CappedWriter {
            buf: Vec::new(),
            max_bytes: self.limits.max_output_bytes,
            overflowed: false,
        };
        match template.render_captured_to(context, &mut writer) {
            Ok(_) => {}
            Err(_) if writer.overflowed => {
                return Err(TemplateError::Limit(format!(
                    "output is longer than {} bytes",
                    self.limits.max_output_bytes
                )))
            }
            Err(err) => return Err(render_error(&err)),
        }
        String::from_utf8(writer.buf).map_err(|_| TemplateError::Render {
            line: None,
            message: "output is not valid UTF-8".to_string(),
        })
    }

    /// Renders a conversation with the variables Hugging Face's `apply_chat_template`
    /// passes: `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, and `tools`
    /// and `documents` set to none (defined, so `tools is defined` holds as in Python).
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String, TemplateError> {
        let messages: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| serde_json::json!({ "role": m.role, "content": m.content }))
            .collect();
        self.render(&serde_json::json!({
            "messages": messages,
            "tools": null,
            "documents": null,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": bos_token,
            "eos_token": eos_token,
        }))
    }
}

/// Collects the rendered bytes and refuses any past `max_bytes`, which aborts the render.
struct CappedWriter {
    buf: Vec<u8>,
    max_bytes: usize,
    overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(bytes.len()) > self.max_bytes {
            self.overflowed = true;
            return Err(io::Error::other("chat template output limit"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hugging Face's `tojson`: `json.dumps(x, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`, with those parameters by position or name.
fn tojson(
    state: &State,
    value: &Value,
    positional: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, minijinja::Error> {
    const PARAMETERS: [&str; 4] = ["ensure_ascii", "indent", "separators", "sort_keys"];
    if positional.len() > PARAMETERS.len() {
        return Err(minijinja::Error::new(
            ErrorKind::TooManyArguments,
            format!("tojson takes at most {} arguments", PARAMETERS.len()),
        ));
    }
    let mut arguments = [const { Value::UNDEFINED }; 4];
    for (param_idx, name) in PARAMETERS.iter().enumerate() {
        let by_name = kwargs.get::<Option<Value>>(name)?;
        arguments[param_idx] = match (positional.get(param_idx), by_name) {
            (Some(_), Some(_)) => {
                return Err(minijinja::Error::new(
                    ErrorKind::TooManyArguments,
                    format!("tojson got multiple values for argument '{name}'"),
                ))
            }
            (Some(value), None) => value.clone(),
            (None, Some(value)) => value,
            (None, None) => Value::UNDEFINED,
        };
    }
    kwargs.assert_all_used()?;
    let [ensure_ascii, indent, separators, sort_keys] = &arguments;
    let options = python::JsonOptions::new(
        ensure_ascii.is_true(),
        indent,
        separators,
        sort_keys.is_true(),
    )?;
    python::to_json(state, value, &options).map(Value::from)
}

/// Turns the variables into minijinja values, keeping object key order (Python dicts keep
/// insertion order and templates print them in it).
fn json_to_value(json: &serde_json::Value, depth: usize) -> Result<Value, TemplateError> {
    if depth > MAX_VARIABLE_DEPTH {
        return Err(TemplateError::Variables(format!(
            "nested deeper than {MAX_VARIABLE_DEPTH} levels"
        )));
    }
    Ok(match json {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                // Without serde_json's arbitrary_precision every number is one of the three.
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => Value::from(
            items
                .iter()
                .map(|item| json_to_value(item, depth + 1))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        serde_json::Value::Object(map) => {
            let mut pairs = Vec::with_capacity(map.len());
            for (key, item) in map {
                pairs.push((Value::from(key.as_str()), json_to_value(item, depth + 1)?));
            }
            Value::from_pairs(pairs)
        }
    })
}

fn json_kind(json: &serde_json::Value) -> &'static str {
    match json {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// HF's `{% generation %}...{% endgeneration %}` (its AssistantTracker extension) marks
/// assistant text for a training mask and renders its body unchanged. minijinja has no
/// such tag, so it becomes `{% if true %}...{% endif %}`, which renders the body the same
/// way and trims whitespace around its tags the same way; lines keep their numbers.
fn with_generation_as_if(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        let Some(end) = tag.find("%}") else {
            break;
        };
        let inner = &tag[2..end];
        let body = inner
            .trim_start_matches(['-', '+'])
            .trim_end_matches(['-', '+']);
        let replacement = match body.trim() {
            "generation" => Some("if true"),
            "endgeneration" => Some("endif"),
            _ => None,
        };
        match replacement {
            Some(word) => {
                let open = &inner[..inner.len() - inner.trim_start_matches(['-', '+']).len()];
                let close = &inner[inner.trim_end_matches(['-', '+']).len()..];
                out.push_str("{%");
                out.push_str(open);
                out.push(' ');
                out.push_str(word);
                out.push(' ');
                out.push_str(close);
                out.push_str("%}");
            }
            None => out.push_str(&tag[..end + 2]),
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The kind and detail of a minijinja error, without its template name (always ours).
fn describe(err: &minijinja::Error) -> String {
    let mut message = match (err.kind(), err.detail()) {
        (_, Some(detail)) => format!("{}: {detail}", err.kind()),
        // minijinja gives no detail here; say what it means in template terms.
        (ErrorKind::UndefinedError, None) => {
            "undefined value: a missing variable or attribute was used as a value".to_string()
        }
        (kind, None) => kind.to_string(),
    };
    // Errors raised by our filters and functions carry their cause as the source.
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn syntax_error(err: &minijinja::Error) -> TemplateError {
    // The variant already says "syntax error"; minijinja's detail says what is wrong.
    let message = err.detail().map_or_else(|| describe(err), str::to_string);
    TemplateError::Syntax {
        line: err.line(),
        message,
    }
}

fn render_error(err: &minijinja::Error) -> TemplateError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(raised) = cause.downcast_ref::<Raised>() {
            return TemplateError::Raised(raised.0.clone());
        }
        source = cause.source();
    }
    match err.kind() {
        ErrorKind::OutOfFuel => TemplateError::Limit(format!(
            "it used up its work budget{} (an endless loop or a huge value?)",
            err.line()
                .map(|line| format!(" at line {line}"))
                .unwrap_or_default()
        )),
        // minijinja reports its recursion limit as an invalid operation with this text.
        ErrorKind::InvalidOperation if err.detail() == Some("recursion limit exceeded") => {
            TemplateError::Limit(format!(
                "recursion too deep{}",
                err.line()
                    .map(|line| format!(" at line {line}"))
                    .unwrap_or_default()
            ))
        }
        _ => TemplateError::Render {
            line: err.line(),
            message: describe(err),
        },
    }
}
