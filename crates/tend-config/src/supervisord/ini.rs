//! The INI reader Supervisor uses: Python 3's
//! `configparser.RawConfigParser(inline_comment_prefixes=(';', '#'), strict=False)`,
//! rule for rule (`Lib/configparser.py: RawConfigParser._read`).
//!
//! - A line whose stripped text starts with `#` or `;` is a comment.
//! - An inline comment starts at a `;` or `#` that begins the line or follows
//!   whitespace; `a;b` is a value. Python searches the two prefixes in rounds
//!   (the next `;` and the next `#` each round) and stops at the first round
//!   that finds a comment, which can skip an earlier `#` that is preceded by
//!   whitespace: that quirk is kept.
//! - `[name]` opens a section (the name is everything up to the *last* `]`,
//!   case-sensitive, not stripped); a repeated section is reopened and its keys
//!   merged, a repeated key replaces the value but keeps its position.
//! - `key = value` or `key: value`, split at the first delimiter; keys are
//!   stripped and lower-cased, values stripped.
//! - A line indented deeper than the line that started the option continues its
//!   value (`\n`-joined). Blank lines inside a value are kept as empty lines;
//!   trailing ones are trimmed when the file ends.
//! - `[DEFAULT]` holds defaults seen by every section.
//! - Each file starts with no section; an option before any header is an error.
//!
//! This file depends on nothing but `std`, so the fuzz target includes it
//! directly (`fuzz/fuzz_targets/ini.rs`).

use std::collections::HashMap;
use std::path::PathBuf;

/// Every file read so far and the sections they define, merged.
#[derive(Debug, Default, Clone)]
pub struct Ini {
    /// The files read, in order; entries point into this list.
    pub files: Vec<PathBuf>,
    /// Sections in order of first appearance (`[DEFAULT]` excluded).
    pub sections: Vec<Section>,
    /// The `[DEFAULT]` entries, seen by every section.
    pub defaults: Vec<Entry>,
    index: HashMap<String, usize>,
}

/// One section, merged across its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name between the brackets, exactly as written.
    pub name: String,
    /// The file of its first header (Supervisor's `section_to_file`).
    pub file: usize,
    /// The line of its first header.
    pub line: usize,
    /// Options in order of first appearance.
    pub entries: Vec<Entry>,
}

/// One `key = value` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Lower-cased, stripped key.
    pub key: String,
    /// The value, continuation lines joined with `\n`.
    pub value: String,
    /// Index in [`Ini::files`] of the file that last set it.
    pub file: usize,
    /// Line (1-based) of the key in that file.
    pub line: usize,
    /// The value's lines while its file is being read.
    parts: Vec<String>,
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniError {
    /// Index in [`Ini::files`].
    pub file: usize,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Where the current option lives.
#[derive(Clone, Copy)]
enum Target {
    Default,
    Section(usize),
}

impl Ini {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one more file into the merged result; returns its errors.
    ///
    /// Like Python, a bad line is reported and skipped, but an option before
    /// the first section header ends the file.
    pub fn read(&mut self, path: PathBuf, text: &str) -> Vec<IniError> {
        let file = self.files.len();
        self.files.push(path);
        let mut errors = Vec::new();
        let mut current: Option<Target> = None;
        // (target, entry index) of the option that continuation lines extend.
        let mut option: Option<(Target, usize)> = None;
        let mut indent_level = 0usize;
        for (i, line) in lines(text).enumerate() {
            let lineno = i + 1;
            let comment = comment_start(line);
            let value = py_strip(&line[..comment.unwrap_or(line.len())]);
            if value.is_empty() {
                // empty_lines_in_values: a blank line (not a comment line)
                // belongs to the value being read; trailing ones are trimmed later.
                if comment.is_none()
                    && let Some((t, e)) = option
                {
                    self.entries_mut(t)[e].parts.push(String::new());
                }
                continue;
            }
            let cur_indent = line.chars().take_while(|&c| py_isspace(c)).count();
            if let (Some(_), Some((t, e))) = (current, option)
                && cur_indent > indent_level
            {
                self.entries_mut(t)[e].parts.push(value.to_string());
                continue;
            }
            indent_level = cur_indent;
            if let Some(name) = section_header(value) {
                current = Some(if name == "DEFAULT" {
                    Target::Default
                } else {
                    Target::Section(self.open_section(name, file, lineno))
                });
                option = None;
                continue;
            }
            let Some(target) = current else {
                let bom = if line.starts_with('\u{feff}') {
                    " (the file starts with a byte order mark, which supervisord refuses too)"
                } else {
                    ""
                };
                errors.push(IniError {
                    file,
                    line: lineno,
                    message: format!(
                        "File contains no section headers: {} comes before any [section]{bom}",
                        py_repr(line)
                    ),
                });
                // Python raises at once (MissingSectionHeaderError).
                break;
            };
            let Some(d) = value.find(['=', ':']) else {
                errors.push(IniError {
                    file,
                    line: lineno,
                    message: format!(
                        "parsing error: {} is neither a [section] header nor a `key = value` option",
                        py_repr(line)
                    ),
                });
                continue;
            };
            let key = py_rstrip(&value[..d]).to_lowercase();
            if key.is_empty() {
                // Python reports it, stores it anyway, and (its option name
                // being falsy) does not continue it.
                errors.push(IniError {
                    file,
                    line: lineno,
                    message: format!("parsing error: {} has no option name", py_repr(line)),
                });
            }
            let val = py_strip(&value[d + 1..]).to_string();
            let entries = self.entries_mut(target);
            let idx = match entries.iter().position(|e| e.key == key) {
                Some(idx) => idx,
                None => {
                    entries.push(Entry {
                        key,
                        value: String::new(),
                        file,
                        line: lineno,
                        parts: Vec::new(),
                    });
                    entries.len() - 1
                }
            };
            let entry = &mut entries[idx];
            entry.file = file;
            entry.line = lineno;
            entry.parts = vec![val];
            option = (!entry.key.is_empty()).then_some((target, idx));
        }
        self.join_values();
        errors
    }

    /// The section called `name`, if any file had it.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.index.get(name).map(|&i| &self.sections[i])
    }

    /// `key` in `section`, falling back to `[DEFAULT]` as Python does.
    pub fn get<'a>(&'a self, section: &'a Section, key: &str) -> Option<&'a Entry> {
        section
            .entries
            .iter()
            .chain(&self.defaults)
            .find(|e| e.key == key)
    }

    fn open_section(&mut self, name: &str, file: usize, line: usize) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.sections.push(Section {
            name: name.to_string(),
            file,
            line,
            entries: Vec::new(),
        });
        self.index.insert(name.to_string(), self.sections.len() - 1);
        self.sections.len() - 1
    }

    fn entries_mut(&mut self, target: Target) -> &mut Vec<Entry> {
        match target {
            Target::Default => &mut self.defaults,
            Target::Section(i) => &mut self.sections[i].entries,
        }
    }

    /// `_join_multiline_values`: run at the end of every file.
    fn join_values(&mut self) {
        let all = self
            .defaults
            .iter_mut()
            .chain(self.sections.iter_mut().flat_map(|s| s.entries.iter_mut()));
        for entry in all {
            if !entry.parts.is_empty() {
                entry.value = py_rstrip(&entry.parts.join("\n")).to_string();
                entry.parts.clear();
            }
        }
    }
}

/// The lines of `text` as Python's universal-newline reading splits them:
/// at `\n`, `\r\n` and `\r`, terminators removed.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, tail) = match rest.find(['\n', '\r']) {
            Some(i) => {
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                (&rest[..i], &rest[i + skip..])
            }
            None => (rest, ""),
        };
        rest = tail;
        Some(line)
    })
}

/// Byte offset where the comment of `line` starts, if it has one.
fn comment_start(line: &str) -> Option<usize> {
    let stripped = py_strip(line);
    if stripped.starts_with('#') || stripped.starts_with(';') {
        return Some(0);
    }
    // Python's rounds: each round advances every prefix to its next
    // occurrence; the first round with a valid one decides.
    let mut active: Vec<(char, usize)> = vec![(';', 0), ('#', 0)];
    while !active.is_empty() {
        let mut found: Option<usize> = None;
        let mut next = Vec::new();
        for (prefix, from) in active {
            let Some(offset) = line.get(from..).and_then(|s| s.find(prefix)) else {
                continue;
            };
            let at = from + offset;
            next.push((prefix, at + 1));
            let after_space = at == 0 || line[..at].chars().next_back().is_some_and(py_isspace);
            if after_space {
                found = Some(found.map_or(at, |f| f.min(at)));
            }
        }
        if found.is_some() {
            return found;
        }
        active = next;
    }
    None
}

/// `\[(?P<header>.+)\]` matched at the start: the name runs to the last `]`.
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| &rest[..end])
}

/// Python's `str.isspace`: Unicode whitespace plus the four separators
/// U+001C..U+001F.
pub fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// Python's `str.rstrip()`.
pub fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(py_isspace)
}

/// Python's `repr()` of a string, for messages that quote Supervisor's.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || ('\u{7f}'..='\u{a0}').contains(&c) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            // Python escapes what is not printable; these are the usual
            // invisible ones (spaces, joiners, marks, separators, the BOM).
            '\u{1680}'
            | '\u{2000}'..='\u{200f}'
            | '\u{2028}'..='\u{202f}'
            | '\u{205f}'..='\u{206f}'
            | '\u{3000}'
            | '\u{feff}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}
