//! Escaping for the pages the daemon writes: text and attribute values in
//! HTML, parts of URLs, and values put inside a `<script>`.
//!
//! Every process name, group, description or log line that goes into a page
//! goes through one of these; the templates are plain `format!` strings
//! around them (see `docs/ARCHITECTURE.md` for why not a template engine).

use std::fmt::Write;

/// `s` as HTML text or as a quoted attribute value: `& < > " '` escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Python's `urllib.parse.quote(s)`: every byte but letters, digits, `_.-~`
/// and `/` as `%XX`.
pub fn quote(s: &str) -> String {
    quote_safe(s, "/")
}

/// Like [`quote`], keeping the bytes of `safe` as they are.
pub fn quote_safe(s: &str, safe: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || safe.as_bytes().contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A JSON value that is safe inside a `<script>` element (no `</script>`,
/// no `<!--`): `<`, `>` and `&` as `\u003c`... escapes, which JSON allows.
pub fn script_json(v: &impl serde::Serialize) -> String {
    let json = serde_json::to_string(v).unwrap_or_else(|_| "null".to_string());
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(quote("g:web 1/é"), "g%3Aweb%201/%C3%A9");
        assert_eq!(quote_safe("a/b", ""), "a%2Fb");
        assert_eq!(
            script_json(&"</script><!--&"),
            r#""\u003c/script\u003e\u003c!--\u0026""#
        );
    }
}
