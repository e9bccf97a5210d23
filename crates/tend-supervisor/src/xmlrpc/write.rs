//! Writing XML-RPC documents byte for byte as Python's
//! `xmlrpc.client.dumps` does (Python 3.11's pure-Python `Marshaller`).
//!
//! supervisorctl does not care about the layout, but scripts and tests that
//! compare raw bodies with supervisord's do, so the quirks are kept: a newline
//! after every value except `<nil/>`, struct members on their own lines, only
//! `&`, `<` and `>` escaped, `repr()` for doubles, and base64 in 76-column lines.

use super::Value;

const HEADER: &str = "<?xml version='1.0'?>\n";

/// A successful response: `xmlrpc.client.dumps((value,), methodresponse=True,
/// allow_none=True)`.
pub fn write_response(value: &Value) -> Vec<u8> {
    let mut out = String::from(HEADER);
    out.push_str("<methodResponse>\n<params>\n<param>\n");
    write_value(&mut out, value);
    out.push_str("</param>\n</params>\n</methodResponse>\n");
    out.into_bytes()
}

/// A fault response: `xmlrpc.client.dumps(Fault(code, string))`.
pub fn write_fault(code: i32, string: &str) -> Vec<u8> {
    let mut out = String::from(HEADER);
    out.push_str("<methodResponse>\n<fault>\n");
    write_value(
        &mut out,
        &Value::Struct(vec![
            ("faultCode".to_owned(), Value::Int(code)),
            ("faultString".to_owned(), Value::String(string.to_owned())),
        ]),
    );
    out.push_str("</fault>\n</methodResponse>\n");
    out.into_bytes()
}

/// A request: `xmlrpc.client.dumps(tuple(params), method, allow_none=True)`,
/// what supervisorctl sends.
///
/// Unlike Python, the method name is escaped, so that any name gives
/// well-formed XML; the usual names (`supervisor.getPID`) need no escaping and
/// come out identical.
pub fn write_call(method: &str, params: &[Value]) -> Vec<u8> {
    let mut out = String::from(HEADER);
    out.push_str("<methodCall>\n<methodName>");
    escape_into(&mut out, method);
    out.push_str("</methodName>\n<params>\n");
    for p in params {
        out.push_str("<param>\n");
        write_value(&mut out, p);
        out.push_str("</param>\n");
    }
    out.push_str("</params>\n</methodCall>\n");
    out.into_bytes()
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Int(i) => {
            out.push_str("<value><int>");
            out.push_str(&i.to_string());
            out.push_str("</int></value>\n");
        }
        Value::Bool(b) => {
            out.push_str("<value><boolean>");
            out.push_str(if *b { "1" } else { "0" });
            out.push_str("</boolean></value>\n");
        }
        Value::String(s) => {
            out.push_str("<value><string>");
            escape_into(out, s);
            out.push_str("</string></value>\n");
        }
        Value::Double(d) => {
            out.push_str("<value><double>");
            out.push_str(&python_float_repr(*d));
            out.push_str("</double></value>\n");
        }
        Value::DateTime(s) => {
            // Python writes the text unescaped; escaping keeps odd text
            // well-formed and changes nothing in a real ISO 8601 stamp.
            out.push_str("<value><dateTime.iso8601>");
            escape_into(out, s);
            out.push_str("</dateTime.iso8601></value>\n");
        }
        Value::Base64(bytes) => {
            out.push_str("<value><base64>\n");
            base64_lines_into(out, bytes);
            out.push_str("</base64></value>\n");
        }
        Value::Array(items) => {
            out.push_str("<value><array><data>\n");
            for item in items {
                write_value(out, item);
            }
            out.push_str("</data></array></value>\n");
        }
        Value::Struct(members) => {
            out.push_str("<value><struct>\n");
            for (name, v) in members {
                out.push_str("<member>\n<name>");
                escape_into(out, name);
                out.push_str("</name>\n");
                write_value(out, v);
                out.push_str("</member>\n");
            }
            out.push_str("</struct></value>\n");
        }
        // Python's dump_nil is the one writer without a trailing newline.
        Value::Nil => out.push_str("<value><nil/></value>"),
    }
}

/// Python's `xmlrpc.client.escape`: only `&`, `<` and `>`.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

/// `v` (finite, positive) in scientific notation with the fewest digits that
/// read back to `v`, and among those the closest to `v`, exact ties going to
/// the even digit, as Python's `repr` (David Gay's `dtoa` mode 0) picks them.
/// Rust's `{:e}` finds the same number of digits but breaks an exact tie
/// upwards (86991125246116.125 gives `...13`, Python `...12`); `{:.N e}` rounds
/// correctly, ties to even, so it is preferred whenever it reads back to `v`.
fn shortest_sci(v: f64) -> String {
    let shortest = format!("{v:e}");
    let digits = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let rounded = format!("{:.*e}", digits.saturating_sub(1), v);
    if rounded.parse::<f64>() == Ok(v) {
        rounded
    } else {
        shortest
    }
}

/// Python's `repr(float)`: the shortest digits that read back to the same
/// double (see `shortest_sci`), laid out in positional
/// notation when the decimal exponent is in `-4 < decpt <= 16`, otherwise as
/// `d.ddde±XX` with at least two exponent digits.
pub(crate) fn python_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v == 0.0 {
        return format!("{sign}0.0");
    }
    let sci = shortest_sci(v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // The decimal point sits after `decpt` digits.
    let decpt = exp + 1;
    let mut out = String::from(sign);
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        ));
    } else if decpt <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat(decpt.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let decpt = decpt as usize;
        if decpt >= digits.len() {
            out.push_str(&digits);
            out.push_str(&"0".repeat(decpt - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt]);
            out.push('.');
            out.push_str(&digits[decpt..]);
        }
    }
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Python's `base64.encodebytes`: standard alphabet with padding, a newline
/// after every 76 characters (57 input bytes) and after the last line.
fn base64_lines_into(out: &mut String, bytes: &[u8]) {
    for line in bytes.chunks(57) {
        for chunk in line.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
                if i <= chunk.len() {
                    out.push(char::from(B64[((n >> shift) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out.push('\n');
    }
}
