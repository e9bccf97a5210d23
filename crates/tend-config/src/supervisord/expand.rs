//! Supervisor's `%(name)s` expansion: Python's `str % dict`
//! (`Objects/unicodeobject.c: PyUnicode_Format`), for the conversions a config
//! can use: `s`, `r`, `a`, `d`, `i`, `u`, `x`, `X`, `o`, `c` and `%%`, with
//! flags (`-`, `+`, space, `#`, `0`), width and precision.
//!
//! Depends only on `std` and [`super::ini`], so the fuzz target can include it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::ini::py_repr;

/// A value in the expansion dictionary: Supervisor puts strings and two
/// integers (`process_num`, `numprocs`) in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// A string.
    Str(String),
    /// An integer (wide: Python's have no bound, and `numprocs_start` may
    /// pass the 64-bit range).
    Int(i128),
}

/// The names an expansion can use: a shared base (the environment) and the
/// names of one section or one process on top.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    layers: [&'a BTreeMap<String, Val>; 2],
}

impl<'a> Names<'a> {
    /// `top` shadows `base`.
    pub fn new(base: &'a BTreeMap<String, Val>, top: &'a BTreeMap<String, Val>) -> Self {
        Names {
            layers: [top, base],
        }
    }

    fn get(&self, key: &str) -> Option<&'a Val> {
        self.layers.iter().find_map(|l| l.get(key))
    }

    /// Every name, sorted, as Supervisor lists them in its error.
    pub fn sorted(&self) -> Vec<&'a str> {
        let mut all: Vec<&str> = self
            .layers
            .iter()
            .flat_map(|l| l.keys().map(String::as_str))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// Why an expansion failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// `%(name)s` with a name that is not in the dictionary.
    Unknown(String),
    /// Anything else: Python's message.
    Bad(String),
}

impl ExpandError {
    /// Supervisor's message (`supervisor/options.py: expand`): `value` is the
    /// string and `what` is `section.option` or the option name.
    pub fn message(&self, value: &str, what: &str, names: &Names<'_>) -> String {
        match self {
            ExpandError::Unknown(key) => format!(
                "Format string {} for {} contains names ({}) which cannot be expanded. Available names: {}",
                py_repr(value),
                py_repr(what),
                py_repr(key),
                names.sorted().join(", ")
            ),
            ExpandError::Bad(why) => format!(
                "Format string {} for {} is badly formatted: {why}",
                py_repr(value),
                py_repr(what)
            ),
        }
    }
}

#[derive(Default)]
struct Spec {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
}

/// `s % names`.
pub fn expand(s: &str, names: &Names<'_>) -> Result<String, ExpandError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let incomplete = || ExpandError::Bad("incomplete format".into());
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.get(i) == Some(&'%') {
            out.push('%');
            i += 1;
            continue;
        }
        let mut key = None;
        if chars.get(i) == Some(&'(') {
            // The key runs to the matching parenthesis; nested pairs are part of it.
            let mut depth = 1;
            let start = i + 1;
            let mut j = start;
            while j < chars.len() {
                match chars[j] {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            if depth > 0 {
                return Err(ExpandError::Bad("incomplete format key".into()));
            }
            key = Some(chars[start..j].iter().collect::<String>());
            i = j + 1;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.get(i) {
            match f {
                '-' => spec.left = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '#' => spec.alt = true,
                '0' => spec.zero = true,
                _ => break,
            }
            i += 1;
        }
        if chars.get(i) == Some(&'*') {
            return Err(ExpandError::Bad(
                "not enough arguments for format string".into(),
            ));
        }
        spec.width = digits(&chars, &mut i)?.unwrap_or(0);
        if chars.get(i) == Some(&'.') {
            i += 1;
            if chars.get(i) == Some(&'*') {
                return Err(ExpandError::Bad(
                    "not enough arguments for format string".into(),
                ));
            }
            spec.precision = Some(digits(&chars, &mut i)?.unwrap_or(0));
        }
        while matches!(chars.get(i), Some('h' | 'l' | 'L')) {
            i += 1;
        }
        let Some(&conv) = chars.get(i) else {
            return Err(incomplete());
        };
        let conv_index = i;
        i += 1;
        let unsupported = || {
            ExpandError::Bad(format!(
                "unsupported format character {} (0x{:x}) at index {conv_index}",
                py_repr(&conv.to_string()),
                conv as u32
            ))
        };
        if !matches!(
            conv,
            's' | 'r'
                | 'a'
                | 'd'
                | 'i'
                | 'u'
                | 'x'
                | 'X'
                | 'o'
                | 'c'
                | 'e'
                | 'E'
                | 'f'
                | 'F'
                | 'g'
                | 'G'
        ) {
            return Err(unsupported());
        }
        let Some(key) = key else {
            // Python would format the whole dictionary here.
            return Err(ExpandError::Bad(format!(
                "%{conv} has no name: write %(name){conv} (supervisord would insert its whole expansion dictionary)"
            )));
        };
        let Some(val) = names.get(&key) else {
            return Err(ExpandError::Unknown(key));
        };
        let piece = convert(conv, val, &spec)?;
        pad(&mut out, &piece, &spec);
    }
    Ok(out)
}

fn digits(chars: &[char], i: &mut usize) -> Result<Option<usize>, ExpandError> {
    let start = *i;
    while chars.get(*i).is_some_and(char::is_ascii_digit) {
        *i += 1;
    }
    if *i == start {
        return Ok(None);
    }
    // Python takes any size (and may run out of memory); a config has no use
    // for more than this.
    const LIMIT: usize = 4096;
    match chars[start..*i].iter().collect::<String>().parse::<usize>() {
        Ok(n) if n <= LIMIT => Ok(Some(n)),
        _ => Err(ExpandError::Bad(format!(
            "width or precision above {LIMIT} (a limit of tend)"
        ))),
    }
}

/// The converted value, before width padding (numbers are zero-padded here).
fn convert(conv: char, val: &Val, spec: &Spec) -> Result<String, ExpandError> {
    match (conv, val) {
        ('s', Val::Str(s)) => Ok(truncate(s, spec.precision)),
        ('r' | 'a', Val::Str(s)) => Ok(truncate(&py_repr(s), spec.precision)),
        ('s' | 'r' | 'a', Val::Int(n)) => Ok(truncate(&n.to_string(), spec.precision)),
        ('d' | 'i' | 'u' | 'x' | 'X' | 'o', Val::Int(n)) => Ok(integer(conv, *n, spec)),
        ('d' | 'i' | 'u', Val::Str(_)) => Err(ExpandError::Bad(format!(
            "%{conv} format: a real number is required, not str"
        ))),
        ('x' | 'X' | 'o', Val::Str(_)) => Err(ExpandError::Bad(format!(
            "%{conv} format: an integer is required, not str"
        ))),
        ('c', Val::Str(s)) if s.chars().count() == 1 => Ok(s.clone()),
        ('c', Val::Str(_)) => Err(ExpandError::Bad("%c requires int or char".into())),
        ('c', Val::Int(n)) => u32::try_from(*n)
            .ok()
            .and_then(char::from_u32)
            .map(String::from)
            .ok_or_else(|| ExpandError::Bad("%c arg not in range(0x110000)".into())),
        (_, Val::Str(_)) => Err(ExpandError::Bad(format!(
            "must be real number, not str (%{conv})"
        ))),
        (_, Val::Int(_)) => Err(ExpandError::Bad(format!(
            "tend does not support %{conv} (floating point) in a config"
        ))),
    }
}

fn truncate(s: &str, precision: Option<usize>) -> String {
    match precision {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

fn integer(conv: char, n: i128, spec: &Spec) -> String {
    let magnitude = n.unsigned_abs();
    let mut body = match conv {
        'x' => format!("{magnitude:x}"),
        'X' => format!("{magnitude:X}"),
        'o' => format!("{magnitude:o}"),
        _ => magnitude.to_string(),
    };
    if let Some(p) = spec.precision
        && body.len() < p
    {
        body = "0".repeat(p - body.len()) + &body;
    }
    let sign = if n < 0 {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let prefix = match (spec.alt, conv) {
        (true, 'x') => "0x",
        (true, 'X') => "0X",
        (true, 'o') => "0o",
        _ => "",
    };
    let head = format!("{sign}{prefix}");
    // The zero flag pads between the sign (and prefix) and the digits.
    if spec.zero && !spec.left {
        let len = head.len() + body.len();
        if len < spec.width {
            body = "0".repeat(spec.width - len) + &body;
        }
    }
    head + &body
}

fn pad(out: &mut String, piece: &str, spec: &Spec) {
    let len = piece.chars().count();
    let fill = spec.width.saturating_sub(len);
    if spec.left {
        out.push_str(piece);
        let _ = write!(out, "{:fill$}", "");
    } else {
        let _ = write!(out, "{:fill$}", "");
        out.push_str(piece);
    }
}
