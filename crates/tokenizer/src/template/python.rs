//! Python's text forms of template values: `str()` (what `{{ x }}` and `|string` print in
//! jinja2) and `json.dumps` (what Hugging Face's `tojson` prints). minijinja's own forms
//! differ (`true` for `True`, `none` for `None`, `"a"` for `'a'` inside lists).
//!
//! Not covered: the `~` operator and `join` use minijinja's forms, since minijinja offers
//! no hook for them. `repr` decides what is printable from Unicode 16's categories, where
//! Python uses its own version's: they differ only on code points assigned in between.

use std::cmp::Ordering;
use std::fmt::Write as _;

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

/// Deepest nesting printed. Templates can build nested lists in a loop, and printing them
/// recurses, so this keeps the stack bounded; Python's own limit is near 1000 frames.
const MAX_DEPTH: usize = 128;

/// Largest `tojson` indent accepted, in spaces.
const MAX_INDENT: i64 = 1024;

/// Text being built by `to_str` or `to_json`, paid for as it grows: one fuel per value
/// visited plus minijinja's rate of one per 64 bytes. A list that holds itself twice per
/// level is cheap to build but exponential to print, and printing happens inside a single
/// instruction, where minijinja's own fuel count cannot stop it.
struct Sink<'a, 'template, 'env> {
    state: &'a State<'template, 'env>,
    out: String,
    paid_len: usize,
}

impl<'a, 'template, 'env> Sink<'a, 'template, 'env> {
    fn new(state: &'a State<'template, 'env>) -> Self {
        Sink {
            state,
            out: String::new(),
            paid_len: 0,
        }
    }

    /// Charges for one value and for the bytes written since the last charge.
    fn visit(&mut self, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("value nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        let unpaid = self.out.len() - self.paid_len;
        self.state.consume_fuel(1 + (unpaid / 64) as u64)?;
        self.paid_len = self.out.len() - unpaid % 64;
        Ok(())
    }

    fn finish(mut self) -> Result<String, Error> {
        self.visit(0)?;
        Ok(self.out)
    }
}

/// `str(value)` as Python prints it. An undefined value prints as nothing, as jinja2's
/// default `Undefined` does.
pub(crate) fn to_str(state: &State, value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::Undefined => Ok(String::new()),
        ValueKind::String => Ok(value.as_str().unwrap_or_default().to_string()),
        _ => {
            let mut sink = Sink::new(state);
            write_repr(&mut sink, value, 0)?;
            sink.finish()
        }
    }
}

/// `repr(value)`: how Python prints a value inside a list or dict.
fn write_repr(sink: &mut Sink, value: &Value, depth: usize) -> Result<(), Error> {
    sink.visit(depth)?;
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => sink.out.push_str("None"),
        ValueKind::Bool => sink
            .out
            .push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => write_number(&mut sink.out, value, FloatStyle::Repr),
        ValueKind::String => write_str_repr(&mut sink.out, value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let tuple = value.is_tuple();
            sink.out.push(if tuple { '(' } else { '[' });
            let mut n_items = 0usize;
            for (item_idx, item) in value.try_iter()?.enumerate() {
                if item_idx > 0 {
                    sink.out.push_str(", ");
                }
                write_repr(sink, &item, depth + 1)?;
                n_items += 1;
            }
            if tuple && n_items == 1 {
                sink.out.push(',');
            }
            sink.out.push(if tuple { ')' } else { ']' });
        }
        ValueKind::Map => {
            sink.out.push('{');
            for (key_idx, key) in value.try_iter()?.enumerate() {
                if key_idx > 0 {
                    sink.out.push_str(", ");
                }
                write_repr(sink, &key, depth + 1)?;
                sink.out.push_str(": ");
                write_repr(sink, &value.get_item(&key)?, depth + 1)?;
            }
            sink.out.push('}');
        }
        // Bytes, namespaces, loops, macros: no template relies on their Python form.
        _ => {
            let _ = write!(sink.out, "{value}");
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum FloatStyle {
    /// `repr(float)`: `inf`, `nan`.
    Repr,
    /// `json.dumps(float)`: `Infinity`, `NaN`.
    Json,
}

fn write_number(out: &mut String, value: &Value, style: FloatStyle) {
    if value.is_integer() {
        let _ = write!(out, "{value}");
        return;
    }
    let x = f64::try_from(value.clone()).unwrap_or(f64::NAN);
    match (style, x.is_nan(), x.is_infinite()) {
        (FloatStyle::Repr, true, _) => out.push_str("nan"),
        (FloatStyle::Json, true, _) => out.push_str("NaN"),
        (FloatStyle::Repr, _, true) => out.push_str(if x > 0.0 { "inf" } else { "-inf" }),
        (FloatStyle::Json, _, true) => out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" }),
        _ => write_float_repr(out, x),
    }
}

/// Python's `repr` of a finite float: the shortest digits that read back to the same
/// value (Rust's `{:e}` gives the same digits), in positional notation when the decimal
/// exponent is in -4..16, else as `d.ddde+XX`; a whole number keeps a `.0`.
pub(crate) fn write_float_repr(out: &mut String, x: f64) {
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if x.is_sign_negative() {
        out.push('-');
    }
    if (-4..16).contains(&exponent) {
        let n_digits = digits.len() as i32;
        if exponent < 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exponent - 1) as usize));
            out.push_str(&digits);
        } else if exponent + 1 >= n_digits {
            out.push_str(&digits);
            out.push_str(&"0".repeat((exponent + 1 - n_digits) as usize));
            out.push_str(".0");
        } else {
            let split = (exponent + 1) as usize;
            out.push_str(&digits[..split]);
            out.push('.');
            out.push_str(&digits[split..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        );
    }
}

/// Python's `repr` of a string: single quotes unless the text has a single quote and no
/// double quote; backslash escapes for the quote, `\`, `\t`, `\n`, `\r` and other
/// non-printable characters.
fn write_str_repr(out: &mut String, text: &str) {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c if (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push(quote);
}

/// Python's `str.isprintable` for one character: false for controls, format characters,
/// surrogates, private use, unassigned code points and separators other than the space.
fn is_printable(c: char) -> bool {
    use unicode_general_category::{get_general_category, GeneralCategory as Category};
    c == ' '
        || !matches!(
            get_general_category(c),
            Category::Control
                | Category::Format
                | Category::Surrogate
                | Category::PrivateUse
                | Category::Unassigned
                | Category::LineSeparator
                | Category::ParagraphSeparator
                | Category::SpaceSeparator
        )
}

/// Options of Python's `json.dumps` that Hugging Face's `tojson` passes through.
pub(crate) struct JsonOptions {
    ensure_ascii: bool,
    /// `None`: everything on one line; `Some(unit)`: one item per line, indented by
    /// `unit` per level.
    indent: Option<String>,
    item_separator: String,
    key_separator: String,
    sort_keys: bool,
}

impl JsonOptions {
    /// Reads `tojson`'s arguments as Python would; `indent` and `separators` may be none.
    pub(crate) fn new(
        ensure_ascii: bool,
        indent: &Value,
        separators: &Value,
        sort_keys: bool,
    ) -> Result<JsonOptions, Error> {
        let indent = match indent.kind() {
            ValueKind::None | ValueKind::Undefined => None,
            ValueKind::String => Some(indent.as_str().unwrap_or_default().to_string()),
            ValueKind::Number if indent.is_integer() => {
                // Python repeats a space `indent` times; a negative count gives "". The
                // bound keeps `indent=10**9` from allocating before any fuel is charged.
                let n_spaces = i64::try_from(indent.clone()).unwrap_or(i64::MAX).max(0);
                if n_spaces > MAX_INDENT {
                    return Err(bad_argument(format!(
                        "tojson indent of {n_spaces} is over the limit of {MAX_INDENT}"
                    )));
                }
                Some(" ".repeat(n_spaces as usize))
            }
            _ => {
                return Err(bad_argument(format!(
                    "tojson indent must be an integer or a string, got {indent}"
                )))
            }
        };
        // Python drops the space after ',' when indenting, since a newline follows.
        let (item_separator, key_separator) = match separators.kind() {
            ValueKind::None | ValueKind::Undefined if indent.is_some() => (",".into(), ": ".into()),
            ValueKind::None | ValueKind::Undefined => (", ".into(), ": ".into()),
            _ => {
                let pair: Vec<Value> = separators.try_iter()?.collect();
                match pair.as_slice() {
                    [item, key] if item.as_str().is_some() && key.as_str().is_some() => (
                        item.as_str().unwrap_or_default().to_string(),
                        key.as_str().unwrap_or_default().to_string(),
                    ),
                    _ => {
                        return Err(bad_argument(format!(
                            "tojson separators must be two strings, got {separators}"
                        )))
                    }
                }
            }
        };
        Ok(JsonOptions {
            ensure_ascii,
            indent,
            item_separator,
            key_separator,
            sort_keys,
        })
    }
}

/// `json.dumps(value, ...)` with Python's layout: `", "` and `": "` by default, floats as
/// `repr`, keys in insertion order unless sorted.
pub(crate) fn to_json(
    state: &State,
    value: &Value,
    options: &JsonOptions,
) -> Result<String, Error> {
    let mut sink = Sink::new(state);
    write_json(&mut sink, value, options, 0)?;
    sink.finish()
}

fn write_json(
    sink: &mut Sink,
    value: &Value,
    options: &JsonOptions,
    depth: usize,
) -> Result<(), Error> {
    sink.visit(depth)?;
    match value.kind() {
        ValueKind::None => sink.out.push_str("null"),
        ValueKind::Bool => sink
            .out
            .push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => write_number(&mut sink.out, value, FloatStyle::Json),
        ValueKind::String => write_json_str(
            &mut sink.out,
            value.as_str().unwrap_or_default(),
            options.ensure_ascii,
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_json_container(sink, options, depth, ['[', ']'], &items, |sink, item| {
                write_json(sink, item, options, depth + 1)
            })?;
        }
        ValueKind::Map => {
            let mut entries = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                entries.push((key, item));
            }
            if options.sort_keys {
                sort_entries(&mut entries)?;
            }
            write_json_container(
                sink,
                options,
                depth,
                ['{', '}'],
                &entries,
                |sink, (key, item)| {
                    write_json_str(&mut sink.out, &json_key(key)?, options.ensure_ascii);
                    sink.out.push_str(&options.key_separator);
                    write_json(sink, item, options, depth + 1)
                },
            )?;
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "tojson: a value of type {} is not JSON serializable",
                    value.kind()
                ),
            ))
        }
    }
    Ok(())
}

/// Python's list and dict layout: `[]` when empty; with an indent, each item on its own
/// line one level deeper and the closing bracket back at the outer level.
fn write_json_container<T>(
    sink: &mut Sink,
    options: &JsonOptions,
    depth: usize,
    [open, close]: [char; 2],
    items: &[T],
    mut write_item: impl FnMut(&mut Sink, &T) -> Result<(), Error>,
) -> Result<(), Error> {
    sink.out.push(open);
    if items.is_empty() {
        sink.out.push(close);
        return Ok(());
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(unit) = &options.indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(unit);
            }
        }
    };
    newline(&mut sink.out, depth + 1);
    for (item_idx, item) in items.iter().enumerate() {
        if item_idx > 0 {
            sink.out.push_str(&options.item_separator);
            newline(&mut sink.out, depth + 1);
        }
        write_item(sink, item)?;
    }
    newline(&mut sink.out, depth);
    sink.out.push(close);
    Ok(())
}

/// JSON object keys are strings; Python converts none, booleans and numbers to their JSON
/// text and refuses anything else.
fn json_key(key: &Value) -> Result<String, Error> {
    let mut out = String::new();
    match key.kind() {
        ValueKind::String => out.push_str(key.as_str().unwrap_or_default()),
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if key.is_true() { "true" } else { "false" }),
        ValueKind::Number => write_number(&mut out, key, FloatStyle::Json),
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: keys must be str, int, float, bool or None, not {kind}"),
            ))
        }
    }
    Ok(out)
}

/// `sort_keys=True`: Python sorts the original keys, which must be all strings or all
/// numbers (booleans count as numbers).
fn sort_entries(entries: &mut [(Value, Value)]) -> Result<(), Error> {
    let all_strings = entries
        .iter()
        .all(|(key, _)| key.kind() == ValueKind::String);
    let all_numbers = entries
        .iter()
        .all(|(key, _)| matches!(key.kind(), ValueKind::Number | ValueKind::Bool));
    if all_strings {
        entries.sort_by(|(a, _), (b, _)| a.as_str().cmp(&b.as_str()));
    } else if all_numbers {
        let number = |v: &Value| match v.kind() {
            ValueKind::Bool => f64::from(u8::from(v.is_true())),
            _ => f64::try_from(v.clone()).unwrap_or(f64::NAN),
        };
        entries
            .sort_by(|(a, _), (b, _)| number(a).partial_cmp(&number(b)).unwrap_or(Ordering::Equal));
    } else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson: sort_keys needs keys that are all strings or all numbers",
        ));
    }
    Ok(())
}

/// A JSON string as Python writes it: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other
/// controls as `\u00XX`; with `ensure_ascii`, everything outside space..`~` as `\uXXXX`
/// (UTF-16 surrogate pairs above U+FFFF).
fn write_json_str(out: &mut String, text: &str, ensure_ascii: bool) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7e) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn bad_argument(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        // (value, Python's repr)
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789.125, "123456789.125"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (5e-324, "5e-324"),
            (12345.678, "12345.678"),
        ];
        for &(x, expected) in cases {
            let mut out = String::new();
            write_float_repr(&mut out, x);
            assert_eq!(out, expected, "repr({x:?})");
        }
    }

    #[test]
    fn str_of_values_matches_python() {
        let env = minijinja::Environment::new();
        let state = env.empty_state();
        let check = |value: Value, expected: &str| {
            assert_eq!(to_str(&state, &value).unwrap(), expected);
        };
        check(Value::from(true), "True");
        check(Value::from(()), "None");
        check(Value::UNDEFINED, "");
        check(Value::from(3), "3");
        check(Value::from(2.0), "2.0");
        check(
            Value::from(vec![
                Value::from("a'b"),
                Value::from("c\n"),
                Value::from(false),
            ]),
            "[\"a'b\", 'c\\n', False]",
        );
        check(
            Value::from_pairs(vec![("z", Value::from(1)), ("a", Value::from(()))]),
            "{'z': 1, 'a': None}",
        );
        check(
            Value::from(vec![Value::from(
                "\u{a0}\u{1}é\u{200b}\u{e000}\u{2028}\u{10ffff}✓",
            )]),
            "['\\xa0\\x01é\\u200b\\ue000\\u2028\\U0010ffff✓']",
        );
    }
}
