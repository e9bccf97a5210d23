//! Reading an XML-RPC `methodCall`, hand-written on quick-xml's pull `Reader`.
//!
//! What is accepted follows what Python's `xmlrpc.client` sends and what
//! Python's parsers (expat under `xmlrpc.client.loads` and under Supervisor's
//! `iterparse`) accept, with these decisions where they differ or say nothing:
//!
//! - `<i8>` is read into [`Value::Int`] when it fits in 32 bits; a larger
//!   `<i8>`, `<int>` or `<i4>` is an error. (Supervisor's own server reads
//!   `<i8>` as a string, and none of its methods takes a 64-bit number.)
//! - `<boolean>` takes `0`/`1` (as Python) and also `false`/`true`, with
//!   surrounding whitespace ignored; anything else is an error, where
//!   Supervisor would silently read `false`.
//! - Namespace prefixes on element names are ignored (`<ex:nil/>` is `<nil/>`),
//!   as Python's unmarshaller does.
//! - A struct that repeats a member name keeps the first position and the
//!   last value, as the Python dict it becomes.
//! - Encodings: UTF-8 (the default), US-ASCII and ISO-8859-1/Latin-1, the ones
//!   expat knows natively. Others, UTF-16 included, are refused.
//! - `<!DOCTYPE>` is refused (no client sends one; it only opens the door to
//!   entity expansion). Only the five predefined entities and character
//!   references exist.
//! - Control characters in text are accepted (expat refuses them); nothing is
//!   lost by letting a careless client's text through.
//! - Line ends in text are normalised (`\r\n` and `\r` become `\n`) as the XML
//!   spec and expat do; `&#13;` stays a carriage return.

use std::borrow::Cow;
use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesRef, Event};

use super::Value;

/// The largest request body [`parse_call`] reads by default (16 MiB).
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// How deeply arrays and structs may nest by default.
pub const MAX_DEPTH: usize = 64;

/// Bounds on what [`parse_call_with`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest body, in bytes.
    pub max_body: usize,
    /// The deepest nesting of arrays and structs inside one parameter.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: MAX_BODY_BYTES,
            max_depth: MAX_DEPTH,
        }
    }
}

/// A parsed `<methodCall>`.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    /// The `<methodName>` text, as sent (never empty).
    pub method: String,
    /// The parameters; empty for `<params/>` or no `<params>` at all.
    pub params: Vec<Value>,
}

/// Why a request body is not an XML-RPC call. Its message is meant for the
/// client, in the body of the HTTP 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid XML-RPC request: {message}")]
pub struct ParseError {
    message: String,
}

impl ParseError {
    fn new(message: impl Into<String>) -> Self {
        ParseError {
            message: message.into(),
        }
    }

    /// What is wrong, without the "invalid XML-RPC request" prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

type Result<T> = std::result::Result<T, ParseError>;

/// Parses a request body with the default [`Limits`].
///
/// Malformed XML, a document that is not a `methodCall`, or one that breaks
/// the limits is an error; the HTTP layer answers it with 400.
pub fn parse_call(body: &[u8]) -> Result<MethodCall> {
    parse_call_with(body, &Limits::default())
}

/// Parses a request body within `limits`.
pub fn parse_call_with(body: &[u8], limits: &Limits) -> Result<MethodCall> {
    if body.len() > limits.max_body {
        return Err(ParseError::new(format!(
            "the body is {} bytes, more than the limit of {}",
            body.len(),
            limits.max_body
        )));
    }
    let text = decode(body)?;
    let mut parser = Parser {
        lexer: Lexer::new(&text),
        max_depth: limits.max_depth,
    };
    parser.document()
}

/// The body as text, following its byte order mark and XML declaration.
fn decode(body: &[u8]) -> Result<Cow<'_, str>> {
    if body.starts_with(b"\xFE\xFF") || body.starts_with(b"\xFF\xFE") {
        return Err(ParseError::new(
            "UTF-16 bodies are not supported; send UTF-8",
        ));
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match declared_encoding(body).as_deref() {
        None | Some("utf-8" | "utf8" | "us-ascii" | "ascii") => match std::str::from_utf8(body) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(e) => Err(ParseError::new(format!(
                "the body is not valid UTF-8 (at byte {})",
                e.valid_up_to()
            ))),
        },
        // Latin-1 bytes are the first 256 code points.
        Some("iso-8859-1" | "iso8859-1" | "latin-1" | "latin1" | "l1") => {
            Ok(Cow::Owned(body.iter().map(|&b| char::from(b)).collect()))
        }
        Some(other) => Err(ParseError::new(format!(
            "unsupported encoding {other:?}; send UTF-8"
        ))),
    }
}

/// The lower-cased `encoding` of a leading `<?xml ...?>` declaration.
fn declared_encoding(body: &[u8]) -> Option<String> {
    let rest = body.strip_prefix(b"<?xml")?;
    if !rest.first().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    let end = rest.windows(2).position(|w| w == b"?>")?;
    let decl = &rest[..end];
    let at = decl.windows(8).position(|w| w == b"encoding")?;
    let after = decl[at + 8..]
        .trim_ascii_start()
        .strip_prefix(b"=")?
        .trim_ascii_start();
    let (&quote, after) = after.split_first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let len = after.iter().position(|&b| b == quote)?;
    Some(String::from_utf8_lossy(&after[..len]).to_ascii_lowercase())
}

/// What the parser sees: elements and merged text.
#[derive(Debug)]
enum Tok {
    /// A start tag, by local name (without a namespace prefix).
    Open(String),
    /// An end tag (quick-xml checks that it matches).
    Close,
    /// Character data, CDATA and references between two tags, joined.
    Text(String),
    Eof,
}

struct Lexer<'a> {
    reader: Reader<&'a [u8]>,
    pending: Option<Event<'a>>,
    first: bool,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        Lexer {
            reader,
            pending: None,
            first: true,
        }
    }

    fn position(&self) -> u64 {
        self.reader.buffer_position()
    }

    fn read(&mut self) -> Result<Event<'a>> {
        if let Some(ev) = self.pending.take() {
            return Ok(ev);
        }
        let ev = self.reader.read_event().map_err(|e| {
            ParseError::new(format!(
                "malformed XML at byte {}: {e}",
                self.reader.error_position()
            ))
        })?;
        let first = std::mem::replace(&mut self.first, false);
        if matches!(ev, Event::Decl(_)) && !first {
            return Err(ParseError::new(format!(
                "malformed XML at byte {}: an XML declaration is allowed only at the very start",
                self.reader.buffer_position()
            )));
        }
        Ok(ev)
    }

    fn next(&mut self) -> Result<Tok> {
        let mut text: Option<String> = None;
        loop {
            let ev = self.read()?;
            match ev {
                Event::Text(t) => text.get_or_insert_default().push_str(&t.xml10_content()),
                Event::CData(c) => text.get_or_insert_default().push_str(&c.xml10_content()),
                Event::GeneralRef(r) => {
                    let c = self.resolve(&r)?;
                    text.get_or_insert_default().push(c);
                }
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
                other => {
                    if let Some(text) = text {
                        self.pending = Some(other);
                        return Ok(Tok::Text(text));
                    }
                    return match other {
                        Event::Start(s) => Ok(Tok::Open(s.local_name().as_ref().to_owned())),
                        Event::End(_) => Ok(Tok::Close),
                        Event::Eof => Ok(Tok::Eof),
                        Event::DocType(_) => Err(ParseError::new(format!(
                            "<!DOCTYPE> is not allowed (at byte {})",
                            self.position()
                        ))),
                        // Cannot happen with `expand_empty_elements`, and the
                        // other events are handled above.
                        _ => Err(ParseError::new(format!(
                            "unexpected XML event at byte {}",
                            self.position()
                        ))),
                    };
                }
            }
        }
    }

    fn resolve(&self, r: &BytesRef<'_>) -> Result<char> {
        let at = self.position();
        let c = match r.resolve_char_ref() {
            Ok(Some(c)) => c,
            Ok(None) => match r.as_ref() {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                other => {
                    return Err(ParseError::new(format!(
                        "unknown entity &{other}; (before byte {at})"
                    )));
                }
            },
            Err(e) => {
                return Err(ParseError::new(format!(
                    "bad character reference &{}; (before byte {at}): {e}",
                    r.as_ref()
                )));
            }
        };
        // XML 1.0's Char production: what a character reference may name.
        let legal =
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}');
        if !legal {
            return Err(ParseError::new(format!(
                "character reference &{}; (before byte {at}) names a character XML does not allow",
                r.as_ref()
            )));
        }
        Ok(c)
    }
}

fn is_xml_space(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn xml_trim(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\n', '\r'])
}

/// Quotes at most 40 characters of `s` for an error message.
fn excerpt(s: &str) -> String {
    let mut cut: String = s.chars().take(40).collect();
    if cut.len() < s.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    max_depth: usize,
}

impl Parser<'_> {
    fn error(&self, what: impl std::fmt::Display) -> ParseError {
        ParseError::new(format!("{what} (at byte {})", self.lexer.position()))
    }

    /// The next tag, skipping whitespace; other text is an error.
    fn next_tag(&mut self, within: &str) -> Result<Tok> {
        loop {
            match self.lexer.next()? {
                Tok::Text(t) if is_xml_space(&t) => continue,
                Tok::Text(t) => {
                    return Err(self.error(format!("unexpected text {} in {within}", excerpt(&t))));
                }
                Tok::Eof => return Err(self.error(format!("the document ends inside {within}"))),
                tok => return Ok(tok),
            }
        }
    }

    /// The text of an element that holds nothing else, up to its end tag.
    fn text_only(&mut self, element: &str) -> Result<String> {
        let mut text = String::new();
        loop {
            match self.lexer.next()? {
                Tok::Text(t) => text.push_str(&t),
                Tok::Close => return Ok(text),
                Tok::Open(name) => {
                    return Err(self.error(format!("unexpected <{name}> inside <{element}>")));
                }
                Tok::Eof => return Err(self.error(format!("the document ends inside <{element}>"))),
            }
        }
    }

    fn document(&mut self) -> Result<MethodCall> {
        loop {
            match self.lexer.next()? {
                Tok::Text(t) if is_xml_space(&t) => {}
                Tok::Text(t) => {
                    return Err(self.error(format!("text {} before <methodCall>", excerpt(&t))));
                }
                Tok::Open(name) => return self.method_call(&name),
                Tok::Eof => return Err(ParseError::new("the body holds no XML element")),
                Tok::Close => return Err(self.error("unexpected end tag")),
            }
        }
    }

    fn method_call(&mut self, root: &str) -> Result<MethodCall> {
        if root != "methodCall" {
            return Err(self.error(format!("expected <methodCall>, found <{root}>")));
        }
        let mut method = None;
        let mut params = None;
        loop {
            match self.next_tag("<methodCall>")? {
                Tok::Open(name) if name == "methodName" => {
                    if method.is_some() {
                        return Err(self.error("more than one <methodName>"));
                    }
                    method = Some(self.text_only("methodName")?);
                }
                Tok::Open(name) if name == "params" => {
                    if params.is_some() {
                        return Err(self.error("more than one <params>"));
                    }
                    params = Some(self.params()?);
                }
                Tok::Open(name) => {
                    return Err(self.error(format!("unexpected <{name}> in <methodCall>")));
                }
                _ => break,
            }
        }
        loop {
            match self.lexer.next()? {
                Tok::Eof => break,
                Tok::Text(t) if is_xml_space(&t) => {}
                Tok::Text(t) => {
                    return Err(self.error(format!("text {} after </methodCall>", excerpt(&t))));
                }
                Tok::Open(name) => return Err(self.error(format!("<{name}> after </methodCall>"))),
                Tok::Close => return Err(self.error("unexpected end tag after </methodCall>")),
            }
        }
        let method = method.ok_or_else(|| ParseError::new("no <methodName> in <methodCall>"))?;
        if method.is_empty() {
            return Err(ParseError::new("empty <methodName>"));
        }
        Ok(MethodCall {
            method,
            params: params.unwrap_or_default(),
        })
    }

    fn params(&mut self) -> Result<Vec<Value>> {
        let mut params = Vec::new();
        loop {
            match self.next_tag("<params>")? {
                Tok::Open(name) if name == "param" => {
                    match self.next_tag("<param>")? {
                        Tok::Open(name) if name == "value" => params.push(self.value(0)?),
                        Tok::Open(name) => {
                            return Err(
                                self.error(format!("expected <value> in <param>, found <{name}>"))
                            );
                        }
                        _ => return Err(self.error("empty <param>")),
                    }
                    if let Tok::Open(name) = self.next_tag("<param>")? {
                        return Err(self.error(format!(
                            "unexpected <{name}> after the <value> of a <param>"
                        )));
                    }
                }
                Tok::Open(name) => {
                    return Err(self.error(format!("unexpected <{name}> in <params>")));
                }
                _ => return Ok(params),
            }
        }
    }

    /// A value, after its `<value>` start tag; `depth` counts the arrays and
    /// structs around it.
    fn value(&mut self, depth: usize) -> Result<Value> {
        let (text, tok) = match self.lexer.next()? {
            Tok::Text(t) => (Some(t), self.lexer.next()?),
            tok => (None, tok),
        };
        match tok {
            // No type element: a string, whitespace included (as in Python).
            Tok::Close => Ok(Value::String(text.unwrap_or_default())),
            Tok::Open(kind) => {
                if let Some(t) = text.filter(|t| !is_xml_space(t)) {
                    return Err(
                        self.error(format!("text {} before <{kind}> in <value>", excerpt(&t)))
                    );
                }
                let v = self.typed(&kind, depth)?;
                match self.next_tag("<value>")? {
                    Tok::Close => Ok(v),
                    Tok::Open(name) => {
                        Err(self.error(format!("<{name}> after <{kind}> in one <value>")))
                    }
                    _ => Err(self.error("malformed <value>")),
                }
            }
            Tok::Eof => Err(self.error("the document ends inside <value>")),
            Tok::Text(_) => Err(self.error("malformed <value>")),
        }
    }

    fn typed(&mut self, kind: &str, depth: usize) -> Result<Value> {
        match kind {
            "string" => Ok(Value::String(self.text_only(kind)?)),
            "int" | "i4" | "i8" => {
                let text = self.text_only(kind)?;
                let t = xml_trim(&text);
                match t.parse::<i64>() {
                    Ok(n) => i32::try_from(n).map(Value::Int).map_err(|_| {
                        self.error(format!("<{kind}>{t}</{kind}> does not fit in 32 bits"))
                    }),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::num::IntErrorKind::PosOverflow
                                | std::num::IntErrorKind::NegOverflow
                        ) =>
                    {
                        Err(self.error(format!("<{kind}> {} does not fit in 32 bits", excerpt(t))))
                    }
                    Err(_) => {
                        Err(self
                            .error(format!("<{kind}> holds {}, not an integer", excerpt(&text))))
                    }
                }
            }
            "boolean" => {
                let text = self.text_only(kind)?;
                match xml_trim(&text) {
                    "1" | "true" => Ok(Value::Bool(true)),
                    "0" | "false" => Ok(Value::Bool(false)),
                    _ => Err(self.error(format!("<boolean> holds {}, not 0 or 1", excerpt(&text)))),
                }
            }
            "double" => {
                let text = self.text_only(kind)?;
                xml_trim(&text)
                    .parse::<f64>()
                    .map(Value::Double)
                    .map_err(|_| {
                        self.error(format!("<double> holds {}, not a number", excerpt(&text)))
                    })
            }
            "dateTime.iso8601" => Ok(Value::DateTime(self.text_only(kind)?)),
            "base64" => {
                let text = self.text_only(kind)?;
                decode_base64(&text)
                    .map(Value::Base64)
                    .map_err(|why| self.error(format!("<base64>: {why}")))
            }
            "nil" => {
                let text = self.text_only(kind)?;
                if is_xml_space(&text) {
                    Ok(Value::Nil)
                } else {
                    Err(self.error(format!("<nil/> holds text {}", excerpt(&text))))
                }
            }
            "array" => {
                self.check_depth(depth)?;
                self.array(depth + 1)
            }
            "struct" => {
                self.check_depth(depth)?;
                self.structure(depth + 1)
            }
            other => Err(self.error(format!("unknown value type <{other}>"))),
        }
    }

    fn check_depth(&self, depth: usize) -> Result<()> {
        if depth >= self.max_depth {
            Err(self.error(format!(
                "arrays and structs nest deeper than {} levels",
                self.max_depth
            )))
        } else {
            Ok(())
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value> {
        match self.next_tag("<array>")? {
            Tok::Open(name) if name == "data" => {}
            Tok::Open(name) => {
                return Err(self.error(format!("expected <data> in <array>, found <{name}>")));
            }
            _ => return Err(self.error("<array> without <data>")),
        }
        let mut items = Vec::new();
        loop {
            match self.next_tag("<data>")? {
                Tok::Open(name) if name == "value" => items.push(self.value(depth)?),
                Tok::Open(name) => return Err(self.error(format!("unexpected <{name}> in <data>"))),
                _ => break,
            }
        }
        match self.next_tag("<array>")? {
            Tok::Close => Ok(Value::Array(items)),
            _ => Err(self.error("unexpected element after </data> in <array>")),
        }
    }

    fn structure(&mut self, depth: usize) -> Result<Value> {
        let mut members: Vec<(String, Value)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        loop {
            match self.next_tag("<struct>")? {
                Tok::Open(name) if name == "member" => {}
                Tok::Open(name) => {
                    return Err(self.error(format!("unexpected <{name}> in <struct>")));
                }
                _ => return Ok(Value::Struct(members)),
            }
            let name = match self.next_tag("<member>")? {
                Tok::Open(tag) if tag == "name" => self.text_only("name")?,
                Tok::Open(tag) => {
                    return Err(self.error(format!("expected <name> in <member>, found <{tag}>")));
                }
                _ => return Err(self.error("<member> without <name>")),
            };
            let value = match self.next_tag("<member>")? {
                Tok::Open(tag) if tag == "value" => self.value(depth)?,
                Tok::Open(tag) => {
                    return Err(self.error(format!("expected <value> in <member>, found <{tag}>")));
                }
                _ => return Err(self.error("<member> without <value>")),
            };
            if let Tok::Open(tag) = self.next_tag("<member>")? {
                return Err(self.error(format!(
                    "unexpected <{tag}> after the <value> of a <member>"
                )));
            }
            match index.get(&name) {
                Some(&i) => members[i].1 = value,
                None => {
                    index.insert(name.clone(), members.len());
                    members.push((name, value));
                }
            }
        }
    }
}

/// Decodes standard base64 as Python's `base64.decodebytes` does: whitespace
/// is skipped (Python's encoder wraps lines) and a last partial group needs
/// its `=` padding. Unlike Python, data after the padding is an error rather
/// than silently dropped.
fn decode_base64(text: &str) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut chars = 0usize;
    let mut padding = 0usize;
    for (i, c) in text.char_indices() {
        let v = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '+' => 62,
            '/' => 63,
            '=' => {
                padding += 1;
                continue;
            }
            ' ' | '\t' | '\n' | '\r' => continue,
            _ => {
                return Err(format!(
                    "{c:?} (at character {i}) is not a base64 character"
                ));
            }
        };
        if padding > 0 {
            return Err("data after the '=' padding".to_owned());
        }
        chars += 1;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    match chars % 4 {
        1 => Err("truncated data (one character too many)".to_owned()),
        2 if padding < 2 => Err("incorrect padding".to_owned()),
        3 if padding < 1 => Err("incorrect padding".to_owned()),
        _ => Ok(out),
    }
}
