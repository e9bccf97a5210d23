//! Typed reads of TOML values. Each reader records an error at the value and
//! returns `None` when the value does not fit, so callers simply skip it.

use std::time::Duration;

use toml::Spanned;
use toml::de::{DeArray, DeString, DeTable, DeValue};

use crate::diag::{Cx, Span, did_you_mean};

/// A key as parsed, with its span.
pub(super) type Key<'i> = Spanned<DeString<'i>>;
/// A value as parsed, with its span.
pub(super) type Item<'i> = Spanned<DeValue<'i>>;

/// One known key of a table and what to do with its value.
///
/// Every table is described by a slice of these, so the list of known keys
/// (for "unknown key" errors and their suggestions) cannot drift from the
/// code that reads them, and a new key is one more line.
pub(super) struct Field<T> {
    pub(super) key: &'static str,
    /// Called with the key's span and the value.
    pub(super) read: fn(&mut Cx<'_>, &mut T, Span, &Item<'_>),
}

/// Reads every entry of `table` through `fields`; unknown keys are errors.
/// `section` names the table in messages, e.g. `[process.web]`. `aliases`
/// maps known wrong spellings to the right one, for the suggestion.
pub(super) fn walk<T>(
    cx: &mut Cx<'_>,
    section: &str,
    table: &DeTable<'_>,
    fields: &[Field<T>],
    aliases: &[(&str, &str)],
    target: &mut T,
) {
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        match fields.iter().find(|f| f.key == name) {
            Some(field) => (field.read)(cx, target, key.span(), value),
            None => {
                let hint = match aliases
                    .iter()
                    .find(|(wrong, _)| wrong.eq_ignore_ascii_case(name))
                {
                    Some((_, right)) => format!(" (did you mean {right:?}?)"),
                    None => did_you_mean(name, fields.iter().map(|f| f.key)),
                };
                cx.error(
                    key.span(),
                    format!("unknown key {name:?} in {section}{hint}"),
                );
            }
        }
    }
}

/// `[process.web]`, quoting a part that holds a dot: `[process."a.b"]`.
pub(super) fn section_name(parts: &[&str]) -> String {
    let parts: Vec<String> = parts
        .iter()
        .map(|p| {
            if p.contains('.') {
                format!("{p:?}")
            } else {
                (*p).to_string()
            }
        })
        .collect();
    format!("[{}]", parts.join("."))
}

impl Cx<'_> {
    /// Records "expected WHAT, found TYPE" at `v`.
    pub(super) fn wrong_type(&mut self, v: &Item<'_>, what: &str) {
        self.error(
            v.span(),
            format!("expected {what}, found {}", v.get_ref().type_str()),
        );
    }

    pub(super) fn table<'v, 'i>(&mut self, v: &'v Item<'i>) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(v, "a table");
                None
            }
        }
    }

    pub(super) fn array<'v, 'i>(&mut self, v: &'v Item<'i>, what: &str) -> Option<&'v DeArray<'i>> {
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.wrong_type(v, what);
                None
            }
        }
    }

    pub(super) fn string<'v>(&mut self, v: &'v Item<'_>) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s),
            _ => {
                self.wrong_type(v, "a string");
                None
            }
        }
    }

    pub(super) fn bool(&mut self, v: &Item<'_>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(v, "a boolean (true or false)");
                None
            }
        }
    }

    /// An integer that fits `T`; `what` describes the range in the error.
    pub(super) fn int<T: TryFrom<i64>>(&mut self, v: &Item<'_>, what: &str) -> Option<T> {
        let DeValue::Integer(i) = v.get_ref() else {
            self.wrong_type(v, what);
            return None;
        };
        let n = i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .and_then(|n| T::try_from(n).ok());
        if n.is_none() {
            self.error(v.span(), format!("{i} is out of range: expected {what}"));
        }
        n
    }

    /// A duration: a string for `tend_core::duration::parse`, or a number of seconds.
    pub(super) fn duration(&mut self, v: &Item<'_>) -> Option<Duration> {
        let secs = match v.get_ref() {
            DeValue::String(s) => {
                return tend_core::duration::parse(s)
                    .map_err(|e| self.error(v.span(), e.to_string()))
                    .ok();
            }
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            _ => {
                self.wrong_type(v, "a duration (such as \"5s\") or a number of seconds");
                return None;
            }
        };
        match secs {
            Some(s) if s.is_finite() && (0.0..1e12).contains(&s) => {
                Some(Duration::from_secs_f64(s))
            }
            _ => {
                self.error(
                    v.span(),
                    format!(
                        "invalid duration {}: expected a non-negative number of seconds",
                        self.slice(v.span())
                    ),
                );
                None
            }
        }
    }

    /// An array of strings or a string.
    pub(super) fn string_list(&mut self, v: &Item<'_>) -> Option<Vec<String>> {
        let arr = self.array(v, "an array of strings")?;
        let mut out = Vec::with_capacity(arr.len());
        let mut ok = true;
        for e in arr.iter() {
            match self.string(e) {
                Some(s) => out.push(s.to_string()),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A file mode or umask, at most `max`: an octal string (`"0660"`, `"0o660"`)
    /// or a TOML integer. A decimal integer above 7 is refused because
    /// `660` and `0o660` are easy to confuse and the difference is a security hole.
    pub(super) fn mode(&mut self, v: &Item<'_>, max: u32) -> Option<u32> {
        let value = match v.get_ref() {
            DeValue::String(s) => {
                let digits = s.trim().strip_prefix("0o").unwrap_or(s.trim());
                match u32::from_str_radix(digits, 8) {
                    Ok(n) if !digits.starts_with('+') => n,
                    _ => {
                        self.error(
                            v.span(),
                            format!(
                                "invalid octal mode {s:?} (expected digits 0-7, such as \"0640\")"
                            ),
                        );
                        return None;
                    }
                }
            }
            DeValue::Integer(i) => {
                let n = self.int::<u32>(v, "an octal mode such as \"0640\"")?;
                if i.radix() == 10 && n > 7 {
                    let digits = n.to_string();
                    let msg = if digits.bytes().all(|b| b < b'8') {
                        format!(
                            "ambiguous mode {n}: write it as an octal string (\"0{n}\") or a TOML octal integer (0o{n})"
                        )
                    } else {
                        format!("invalid mode {n}: write it as an octal string such as \"0640\"")
                    };
                    self.error(v.span(), msg);
                    return None;
                }
                n
            }
            _ => {
                self.wrong_type(v, "an octal mode such as \"0640\"");
                return None;
            }
        };
        if value > max {
            self.error(v.span(), format!("mode {value:o} is larger than {max:o}"));
            return None;
        }
        Some(value)
    }

    /// A user or group: a name or a numeric id, as a string.
    pub(super) fn id_or_name(&mut self, v: &Item<'_>, what: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            DeValue::Integer(_) => self
                .int::<u32>(v, &format!("a {what} id (0 to 4294967295)"))
                .map(|n| n.to_string()),
            _ => {
                self.wrong_type(v, &format!("a {what} name or numeric id"));
                None
            }
        }
    }
}
