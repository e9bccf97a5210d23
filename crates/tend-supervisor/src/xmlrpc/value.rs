//! The XML-RPC data model.

/// An XML-RPC value, as Python's `xmlrpc` module models it.
///
/// `Int` is the XML-RPC `<int>`/`<i4>`: 32 bits, the only integer width
/// Python's marshaller writes (it raises `OverflowError` beyond it), so a
/// value that does not fit has to be capped by the caller, as Supervisor's
/// `capped_int` does: see [`Value::int_saturating`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<int>` (also read from `<i4>` and from `<i8>` when it fits).
    Int(i32),
    /// `<boolean>`.
    Bool(bool),
    /// `<string>`, or a `<value>` with no type element.
    String(String),
    /// `<double>`.
    Double(f64),
    /// `<dateTime.iso8601>`, kept as the text that was sent (Python's
    /// `xmlrpc.client.DateTime` keeps it the same way).
    DateTime(String),
    /// `<base64>`, decoded.
    Base64(Vec<u8>),
    /// `<array><data>`.
    Array(Vec<Value>),
    /// `<struct>`: members in the order they were sent or built. The parser
    /// merges repeated names as a Python dict does: the first position, the
    /// last value.
    Struct(Vec<(String, Value)>),
    /// `<nil/>` (Python's `None`, written only with `allow_none`).
    Nil,
}

impl Value {
    /// About how many bytes this value takes as XML-RPC (`<value>...`), for
    /// bounding answers before they are written: text counts once (escaping
    /// may add to it), base64 at its encoded size, every element its tags.
    pub fn encoded_len(&self) -> usize {
        match self {
            Value::Int(_) => 32,
            Value::Bool(_) => 36,
            Value::Double(_) => 48,
            Value::Nil => 20,
            Value::String(s) => 32 + s.len(),
            Value::DateTime(s) => 48 + s.len(),
            Value::Base64(b) => 32 + b.len().div_ceil(3) * 4 + b.len() / 57,
            Value::Array(items) => items
                .iter()
                .fold(40usize, |n, v| n.saturating_add(v.encoded_len())),
            Value::Struct(members) => members.iter().fold(36usize, |n, (k, v)| {
                n.saturating_add(40 + k.len())
                    .saturating_add(v.encoded_len())
            }),
        }
    }

    /// An `Int` holding `v` capped to the int32 range, like Supervisor's
    /// `capped_int` for timestamps: XML-RPC ints are 32 bits and Python's
    /// client refuses anything larger.
    pub fn int_saturating(v: i64) -> Value {
        Value::Int(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
    }

    /// A struct from `(name, value)` pairs, in that order.
    pub fn structure<K, I>(members: I) -> Value
    where
        K: Into<String>,
        I: IntoIterator<Item = (K, Value)>,
    {
        Value::Struct(members.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The text of a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number in an `Int`.
    pub fn as_i32(&self) -> Option<i32> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The truth value of a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements of an `Array`.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The member called `name` of a `Struct` (the last one if the name is
    /// repeated, as in a Python dict built from the pairs).
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(members) => members
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The XML-RPC type name of this value, as Supervisor's
    /// `system.methodSignature` spells types (`int`, `boolean`, `string`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Bool(_) => "boolean",
            Value::String(_) => "string",
            Value::Double(_) => "double",
            Value::DateTime(_) => "dateTime.iso8601",
            Value::Base64(_) => "base64",
            Value::Array(_) => "array",
            Value::Struct(_) => "struct",
            Value::Nil => "nil",
        }
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Double(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::Array(v)
    }
}
