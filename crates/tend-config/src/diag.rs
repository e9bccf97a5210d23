//! Error collection: byte offsets to `LINE:COL`, and did-you-mean suggestions.

use std::ops::Range;
use std::path::{Path, PathBuf};

use std::fmt;

/// Every problem found, each rendered as `FILE:LINE:COL: message` on its own line by Display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The problems, in file order.
    pub errors: Vec<Diagnostic>,
}

/// One problem at one place in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as given to the reader.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    pub(crate) fn single(path: &Path, message: String) -> Self {
        ConfigErrors {
            errors: vec![Diagnostic {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                message,
            }],
        }
    }
}

/// Byte range in the config text.
pub(super) type Span = Range<usize>;

/// The state shared by every part of the walk: where relative paths start and
/// the errors found so far.
pub(super) struct Cx<'a> {
    /// The config's directory (absolute), base of relative paths.
    pub(super) dir: PathBuf,
    file: &'a Path,
    text: &'a str,
    errors: Vec<(usize, String)>,
    /// The variables `${NAME}` may name (off outside tend.toml).
    pub(super) vars: crate::native::expand::Vars,
}

impl<'a> Cx<'a> {
    pub(super) fn new(file: &'a Path, text: &'a str, dir: PathBuf) -> Self {
        Cx {
            dir,
            file,
            text,
            errors: Vec::new(),
            vars: Default::default(),
        }
    }

    /// Records an error at the start of `span`.
    pub(super) fn error(&mut self, span: Span, message: impl Into<String>) {
        self.errors.push((span.start, message.into()));
    }

    /// The file, as given to the reader.
    pub(super) fn file_path(&self) -> &'a Path {
        self.file
    }

    /// The whole text.
    pub(super) fn text(&self) -> &'a str {
        self.text
    }

    /// How many errors have been recorded so far.
    pub(super) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// The text under `span` (empty if the span is not a valid slice).
    pub(super) fn slice(&self, span: Span) -> &'a str {
        self.text.get(span).unwrap_or("")
    }

    /// The collected errors as diagnostics, in file order.
    pub(super) fn into_diagnostics(self) -> Vec<Diagnostic> {
        let mut errors = self.errors;
        // Stable: two errors at one offset keep the order they were found in.
        errors.sort_by_key(|(offset, _)| *offset);
        errors
            .into_iter()
            .map(|(offset, message)| diagnostic_at(self.file, self.text, offset, message))
            .collect()
    }
}

/// A diagnostic at byte `offset` of `text`, as 1-based line and column
/// (the column counts characters, not bytes).
pub(super) fn diagnostic_at(file: &Path, text: &str, offset: usize, message: String) -> Diagnostic {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Diagnostic {
        file: file.to_path_buf(),
        line: before.matches('\n').count() + 1,
        col: before[line_start..].chars().count() + 1,
        message,
    }
}

/// The candidate closest to `word` if it is close enough to be a plausible
/// typo (at most two edits, and fewer edits than `word` has characters).
pub(super) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let lower = word.to_lowercase();
    let limit = 2.min(word.chars().count().saturating_sub(1));
    candidates
        .into_iter()
        .map(|c| (distance(&lower, &c.to_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// `" (did you mean \"x\"?)"` or nothing.
pub(super) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> String {
    suggest(word, candidates)
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default()
}

/// Edit distance in characters, counting a swap of two neighbours as one edit
/// (optimal string alignment), since `TREM` for `TERM` is the typical typo.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: distance between the first i chars of a and the first j of b.
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("autostrat", "autostart"), 1);
        assert_eq!(distance("TREM", "TERM"), 1);
        assert_eq!(distance("TREM", "TRAP"), 2);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("é", "e"), 1);
    }

    #[test]
    fn suggestions() {
        let keys = ["autostart", "command", "cwd", "env"];
        assert_eq!(suggest("autostrat", keys), Some("autostart"));
        assert_eq!(suggest("Command", keys), Some("command"));
        assert_eq!(suggest("envv", keys), Some("env"));
        assert_eq!(suggest("x", keys), None);
        assert_eq!(suggest("totally", keys), None);
    }

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "ab\nçd\n\nx";
        let at = |o| {
            let d = diagnostic_at(Path::new("f"), text, o, String::new());
            (d.line, d.col)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(2), (1, 3));
        assert_eq!(at(3), (2, 1));
        assert_eq!(at(5), (2, 2)); // after the two-byte 'ç'
        assert_eq!(at(4), (2, 1)); // inside 'ç': rounded down
        assert_eq!(at(8), (4, 1));
        assert_eq!(at(999), (4, 2));
    }
}
