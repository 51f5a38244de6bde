//! GGUF metadata values: the thirteen value types, typed accessors, and constructors that make
//! fixtures short. Encoding and decoding live in the writer and reader, not here.

use std::fmt;

/// The type of a metadata value, with the id GGUF stores for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    /// In id order, so `ALL[id]` is the type with that id.
    pub const ALL: [ValueType; 13] = [
        ValueType::U8,
        ValueType::I8,
        ValueType::U16,
        ValueType::I16,
        ValueType::U32,
        ValueType::I32,
        ValueType::F32,
        ValueType::Bool,
        ValueType::String,
        ValueType::Array,
        ValueType::U64,
        ValueType::I64,
        ValueType::F64,
    ];

    pub const fn id(self) -> u32 {
        self as u32
    }

    pub fn from_id(id: u32) -> Option<ValueType> {
        ValueType::ALL.get(usize::try_from(id).ok()?).copied()
    }

    pub const fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "U8",
            ValueType::I8 => "I8",
            ValueType::U16 => "U16",
            ValueType::I16 => "I16",
            ValueType::U32 => "U32",
            ValueType::I32 => "I32",
            ValueType::F32 => "F32",
            ValueType::Bool => "Bool",
            ValueType::String => "String",
            ValueType::Array => "Array",
            ValueType::U64 => "U64",
            ValueType::I64 => "I64",
            ValueType::F64 => "F64",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An array value. Every item has type `elem_type`; an item that is itself an array carries its
/// own element type, so nested arrays may differ from one another.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub elem_type: ValueType,
    pub items: Vec<Value>,
}

impl Array {
    /// Whether every item, at every depth, has its array's element type. The reader only builds
    /// consistent arrays; the writer refuses inconsistent ones, which it could not encode.
    pub fn is_consistent(&self) -> bool {
        self.items.iter().all(|item| {
            item.value_type() == self.elem_type
                && match item {
                    Value::Array(inner) => inner.is_consistent(),
                    _ => true,
                }
        })
    }
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Any integer type holding a non-negative value. Converters disagree on which integer type
    /// a count like `llama.context_length` gets, so readers should not care.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer that fits an `i64`. Used where negative values are meaningful (token ids with
    /// -1 for "none").
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => i64::try_from(v).ok(),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }

    /// Any numeric type (integers may round above 2^53). Bools and strings are not numbers.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self
                .as_i64()
                .map(|v| v as f64)
                .or_else(|| self.as_u64().map(|v| v as f64)),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// An array of `elem_type`. Items of another type make the writer panic.
    pub fn array(elem_type: ValueType, items: Vec<Value>) -> Value {
        Value::Array(Array { elem_type, items })
    }

    pub fn string_array<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        let items = items.into_iter().map(|s| Value::String(s.into())).collect();
        Value::array(ValueType::String, items)
    }

    pub fn f32_array(items: impl IntoIterator<Item = f32>) -> Value {
        Value::array(ValueType::F32, items.into_iter().map(Value::F32).collect())
    }

    pub fn i32_array(items: impl IntoIterator<Item = i32>) -> Value {
        Value::array(ValueType::I32, items.into_iter().map(Value::I32).collect())
    }

    /// A short description for error messages: the type, and the value when it is a scalar.
    /// Strings are not quoted in full because a wrong-typed key may hold a whole template.
    pub fn describe(&self) -> String {
        match self {
            Value::String(s) => format!("String of {} bytes", s.len()),
            Value::Array(a) => format!("Array of {} with {} items", a.elem_type, a.items.len()),
            Value::U8(v) => format!("U8 {v}"),
            Value::I8(v) => format!("I8 {v}"),
            Value::U16(v) => format!("U16 {v}"),
            Value::I16(v) => format!("I16 {v}"),
            Value::U32(v) => format!("U32 {v}"),
            Value::I32(v) => format!("I32 {v}"),
            Value::F32(v) => format!("F32 {v}"),
            Value::Bool(v) => format!("Bool {v}"),
            Value::U64(v) => format!("U64 {v}"),
            Value::I64(v) => format!("I64 {v}"),
            Value::F64(v) => format!("F64 {v}"),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant(v)
            }
        })*
    };
}

value_from!(
    u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32,
    bool => Bool, String => String, Array => Array, u64 => U64, i64 => I64, f64 => F64,
);

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ids_round_trip() {
        for (id, t) in ValueType::ALL.iter().enumerate() {
            assert_eq!(t.id() as usize, id);
            assert_eq!(ValueType::from_id(id as u32), Some(*t));
        }
        assert_eq!(ValueType::from_id(13), None);
        assert_eq!(ValueType::from_id(u32::MAX), None);
    }

    #[test]
    fn numeric_accessors() {
        type Case = (Value, Option<u64>, Option<i64>, Option<f64>);
        // (value, as_u64, as_i64, as_f64)
        let cases: Vec<Case> = vec![
            (Value::U8(7), Some(7), Some(7), Some(7.0)),
            (Value::I8(-1), None, Some(-1), Some(-1.0)),
            (Value::U16(65535), Some(65535), Some(65535), Some(65535.0)),
            (Value::I16(300), Some(300), Some(300), Some(300.0)),
            (
                Value::U32(u32::MAX),
                Some(u32::MAX.into()),
                Some(u32::MAX.into()),
                Some(4294967295.0),
            ),
            (Value::I32(-5), None, Some(-5), Some(-5.0)),
            (
                Value::U64(u64::MAX),
                Some(u64::MAX),
                None,
                Some(u64::MAX as f64),
            ),
            (
                Value::I64(i64::MIN),
                None,
                Some(i64::MIN),
                Some(i64::MIN as f64),
            ),
            (Value::F32(0.5), None, None, Some(0.5)),
            (Value::F64(-2.25), None, None, Some(-2.25)),
            (Value::Bool(true), None, None, None),
            (Value::from("12"), None, None, None),
            (Value::i32_array([1]), None, None, None),
        ];
        for (v, u, i, f) in cases {
            assert_eq!(v.as_u64(), u, "{v:?}");
            assert_eq!(v.as_i64(), i, "{v:?}");
            assert_eq!(v.as_f64(), f, "{v:?}");
        }
    }

    #[test]
    fn other_accessors_and_constructors() {
        assert_eq!(Value::from("a").as_str(), Some("a"));
        assert_eq!(Value::U8(1).as_str(), None);
        assert_eq!(Value::from(true).as_bool(), Some(true));
        assert_eq!(Value::U8(1).as_bool(), None);
        let a = Value::string_array(["x", "y"]);
        assert_eq!(
            a.as_array().unwrap().items,
            vec![Value::from("x"), Value::from("y")]
        );
        assert_eq!(
            Value::f32_array([1.0]).as_array().unwrap().elem_type,
            ValueType::F32
        );
        assert_eq!(Value::from(3u64).value_type(), ValueType::U64);
    }

    #[test]
    fn consistency_checks_every_depth() {
        let good = Array {
            elem_type: ValueType::Array,
            items: vec![Value::i32_array([1, 2]), Value::string_array(["a"])],
        };
        assert!(good.is_consistent());
        let bad_inner = Array {
            elem_type: ValueType::Array,
            items: vec![Value::array(ValueType::I32, vec![Value::U8(1)])],
        };
        assert!(!bad_inner.is_consistent());
        let bad_outer = Array {
            elem_type: ValueType::U8,
            items: vec![Value::I8(1)],
        };
        assert!(!bad_outer.is_consistent());
    }
}
