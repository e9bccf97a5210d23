//! `[process.NAME] watch`, `watch_ignore` and `watch_debounce`: restart the
//! process when files that match change (pm2's `watch` and `ignore_watch`,
//! process-compose's `watch`). The patterns are relative to the process's
//! `cwd`, or to the config file's directory when it has none, and expand
//! `${VAR}` as `cwd` does (in a table with `replicas`, each copy's own).

use std::time::Duration;

use tend_core::model::watch::{DEFAULT_DEBOUNCE, WatchSpec, glob};

use super::expand::{escape_path, substitute_replica};
use super::process::{Draft, positive_duration};
use super::value::{Field, Item};
use crate::diag::{Cx, Span};

/// The watch keys as written.
#[derive(Debug, Default)]
pub(super) struct WatchDraft {
    patterns: Option<(Vec<String>, Span)>,
    ignore: Option<(Vec<String>, Span)>,
    debounce: Option<(Duration, Span)>,
}

/// The keys of a `[process.NAME]` only.
pub(super) const FIELDS: &[Field<Draft>] = &[
    Field {
        key: "watch",
        read: |cx, d, k, v| d.watch.patterns = patterns(cx, v, "watch").map(|p| (p, k)),
    },
    Field {
        key: "watch_ignore",
        read: |cx, d, k, v| d.watch.ignore = patterns(cx, v, "watch_ignore").map(|p| (p, k)),
    },
    Field {
        key: "watch_debounce",
        read: |cx, d, k, v| {
            d.watch.debounce = positive_duration(cx, v, "watch_debounce").map(|t| (t, k));
        },
    },
];

/// Other tools' spellings.
pub(super) const ALIASES: &[(&str, &str)] = &[
    ("ignore_watch", "watch_ignore"),
    ("watch_delay", "watch_debounce"),
    ("watch_ignores", "watch_ignore"),
];

/// An array of glob patterns, each `${VAR}` expanded (as `cwd`), then checked.
fn patterns(cx: &mut Cx<'_>, v: &Item<'_>, key: &str) -> Option<Vec<String>> {
    let arr = cx.array(v, "an array of file patterns such as \"src/**/*.py\"")?;
    let mut out = Vec::new();
    let mut ok = true;
    for e in arr.iter() {
        let Some(pattern) = cx.expanded(e, key) else {
            ok = false;
            continue;
        };
        // Template text in a table with `replicas`: checked as copy 0's.
        let checked = if cx.vars.keeps_replica() {
            substitute_replica(&pattern, "0")
        } else {
            pattern.clone()
        };
        let s = checked.as_str();
        if s.is_empty() || s.starts_with('/') {
            cx.error(
                e.span(),
                format!("{key} pattern {s:?}: write it relative to the process's cwd (or the config file's directory)"),
            );
            ok = false;
            continue;
        }
        if let Err(why) = glob(s) {
            cx.error(e.span(), format!("{key}: {why}"));
            ok = false;
            continue;
        }
        out.push(pattern);
    }
    if ok && out.is_empty() && key == "watch" {
        cx.error(
            v.span(),
            "watch is empty: list the files whose changes restart the process, or leave it out",
        );
        return None;
    }
    ok.then_some(out)
}

/// Once the table is read: the spec's watch, rooted at its `cwd`.
pub(super) fn finish(cx: &mut Cx<'_>, d: &mut Draft) {
    let w = std::mem::take(&mut d.watch);
    let Some((patterns, _)) = w.patterns else {
        for (key, span) in [
            ("watch_ignore", w.ignore.map(|(_, s)| s)),
            ("watch_debounce", w.debounce.map(|(_, s)| s)),
        ] {
            if let Some(span) = span {
                cx.error(
                    span,
                    format!("{key} in {} applies to watch, which it has not", d.section),
                );
            }
        }
        return;
    };
    // Template text in a table with `replicas` (each copy's is made in
    // replicas.rs), as the cwd is.
    let dir = if cx.vars.keeps_replica() {
        escape_path(&cx.dir)
    } else {
        cx.dir.clone()
    };
    d.spec.watch = Some(WatchSpec {
        root: d.spec.cwd.clone().unwrap_or(dir),
        patterns,
        ignore: w.ignore.map(|(p, _)| p).unwrap_or_default(),
        debounce: w.debounce.map_or(DEFAULT_DEBOUNCE, |(t, _)| t),
    });
}
