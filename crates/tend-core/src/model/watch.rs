//! `watch = [...]`: the files whose changes restart a process, as data. The
//! runtime's watcher ([`crate::runtime::watch`]) turns it into inotify
//! watches and a debounce timer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

/// The debounce of a watch when none is given.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);

/// What to watch for one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSpec {
    /// The directory the patterns are relative to (absolute).
    pub root: PathBuf,
    /// Glob patterns of the files whose changes restart the process
    /// (`src/**/*.py`: `*` stays within a directory, `**` crosses them).
    pub patterns: Vec<String>,
    /// Patterns of files whose changes do not, even if they match.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// How long the files must be quiet after a change before the restart:
    /// a burst of writes restarts once.
    pub debounce: Duration,
}

/// One glob as tend reads them: `*` does not cross `/`, `**` does.
pub fn glob(pattern: &str) -> Result<Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("invalid pattern {pattern:?}: {}", e.kind()))
}

impl WatchSpec {
    /// The patterns and the ignore patterns, compiled.
    pub fn compile(&self) -> Result<(GlobSet, GlobSet), String> {
        let set = |pats: &[String]| {
            let mut b = GlobSetBuilder::new();
            for p in pats {
                b.add(glob(p)?);
            }
            b.build().map_err(|e| e.to_string())
        };
        Ok((set(&self.patterns)?, set(&self.ignore)?))
    }

    /// The directories to watch: for each pattern, the directory its
    /// literal leading part names (`src/**/*.py` watches `ROOT/src`, and
    /// everything beneath it), without those inside another.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .patterns
            .iter()
            .map(|p| self.root.join(literal_dir(p)))
            .collect();
        dirs.sort();
        dirs.dedup();
        let mut out: Vec<PathBuf> = Vec::new();
        for d in dirs {
            if !out.iter().any(|o| d.starts_with(o)) {
                out.push(d);
            }
        }
        out
    }

    /// Whether a change of `path` (absolute) restarts the process: under the
    /// root, matching a pattern and no ignore pattern.
    pub fn matches(&self, sets: &(GlobSet, GlobSet), path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        sets.0.is_match(rel) && !sets.1.is_match(rel)
    }
}

/// The leading directories of `pattern` without a glob character in them.
fn literal_dir(pattern: &str) -> PathBuf {
    let mut out = PathBuf::new();
    let parts: Vec<&str> = pattern.split('/').collect();
    // The last part is a file name (or a pattern of one).
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        if part.contains(['*', '?', '[', '{', '\\']) {
            break;
        }
        out.push(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{DEFAULT_DEBOUNCE, WatchSpec};

    fn spec(patterns: &[&str], ignore: &[&str]) -> WatchSpec {
        WatchSpec {
            root: PathBuf::from("/app"),
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            ignore: ignore.iter().map(|s| s.to_string()).collect(),
            debounce: DEFAULT_DEBOUNCE,
        }
    }

    #[test]
    fn patterns_match_relative_to_the_root_and_ignores_win() {
        let s = spec(&["src/**/*.py", "*.toml"], &["src/gen/**", "**/test_*.py"]);
        let sets = s.compile().unwrap_or_else(|e| panic!("{e}"));
        let m = |p: &str| s.matches(&sets, Path::new(p));
        assert!(m("/app/src/a.py"));
        assert!(m("/app/src/deep/er/b.py"));
        assert!(m("/app/app.toml"));
        assert!(!m("/app/conf/app.toml"), "* does not cross /");
        assert!(!m("/app/src/a.pyc"));
        assert!(!m("/app/src/gen/x.py"), "ignored");
        assert!(!m("/app/src/test_a.py"), "ignored");
        assert!(!m("/elsewhere/src/a.py"));
    }

    #[test]
    fn it_watches_the_literal_directories_of_the_patterns() {
        let s = spec(
            &["src/**/*.py", "src/lib/*.rs", "*.toml", "a/b*/c.txt"],
            &[],
        );
        assert_eq!(
            s.dirs(),
            [PathBuf::from("/app")],
            "*.toml is in the root, which holds the rest"
        );
        let s = spec(&["src/**/*.py", "src/lib/*.rs", "conf/*.toml"], &[]);
        assert_eq!(
            s.dirs(),
            [PathBuf::from("/app/conf"), PathBuf::from("/app/src")]
        );
    }

    #[test]
    fn a_bad_pattern_says_why() {
        let e = spec(&["src/[a.py"], &[]).compile().err();
        assert!(
            e.as_deref().is_some_and(|e| e.contains("src/[a.py")),
            "{e:?}"
        );
    }
}

#[cfg(test)]
mod spec_tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::WatchSpec;
    use crate::{Name, ProcessSpec};

    #[test]
    fn a_spec_with_a_watch_that_cannot_be_made_is_invalid() {
        let mut s = ProcessSpec::new(
            Name::new("p").unwrap_or_else(|e| panic!("{e}")),
            vec!["x".into()],
        );
        let ok = WatchSpec {
            root: PathBuf::from("/app"),
            patterns: vec!["*.py".into()],
            ignore: Vec::new(),
            debounce: Duration::from_millis(10),
        };
        s.watch = Some(ok.clone());
        assert!(s.validate().is_ok());
        for (bad, want) in [
            (
                WatchSpec {
                    root: PathBuf::from("app"),
                    ..ok.clone()
                },
                "not an absolute path",
            ),
            (
                WatchSpec {
                    patterns: Vec::new(),
                    ..ok.clone()
                },
                "no patterns",
            ),
            (
                WatchSpec {
                    debounce: Duration::ZERO,
                    ..ok.clone()
                },
                "debounce",
            ),
            (
                WatchSpec {
                    ignore: vec!["[".into()],
                    ..ok.clone()
                },
                "invalid pattern",
            ),
        ] {
            s.watch = Some(bad);
            let e = s.validate().err().map(|e| e.to_string());
            assert!(e.as_deref().is_some_and(|e| e.contains(want)), "{e:?}");
        }
    }
}
