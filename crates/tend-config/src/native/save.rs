//! `tend add --save`: a process added at run time, written into tend.toml as
//! a `[process.NAME]` table at the end, the rest of the file (comments,
//! layout, order) kept as it is.

use std::path::{Path, PathBuf};

use tend_core::{ProcessSpec, RestartPolicy};
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, value};

/// Writes `spec` into the tend.toml at `path`. `logs_given` says whether the
/// request set the process's logs (without, the file's defaults apply, as
/// they did when it was added). Fails, leaving the file as it was, when the
/// file does not parse or already names the process, or when the spec has a
/// setting a `[process.NAME]` table cannot say the way `tend add` set it.
pub fn append_process(
    path: &Path,
    spec: &ProcessSpec,
    logs_given: bool,
) -> Result<PathBuf, String> {
    // A symlinked config is written where it points.
    let path = std::fs::canonicalize(path)
        .map_err(|e| format!("cannot find the config file {}: {e}", path.display()))?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let out =
        with_process(&text, spec, logs_given).map_err(|e| format!("{}: {e}", path.display()))?;
    write_atomically(&path, &out)?;
    Ok(path)
}

/// `text` with `spec` as a `[process.NAME]` table at its end.
pub fn with_process(text: &str, spec: &ProcessSpec, logs_given: bool) -> Result<String, String> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| format!("cannot edit the file, it does not parse: {e}"))?;
    let name = spec.name.as_str();
    for section in ["process", "task"] {
        if doc
            .get(section)
            .and_then(Item::as_table_like)
            .is_some_and(|t| t.contains_key(name))
        {
            return Err(format!("it already has [{section}.{name}]"));
        }
    }
    if spec.group != spec.name {
        return Err(format!(
            "{name} is in group {}: add it to that [group] table by hand",
            spec.group
        ));
    }
    if logs_given {
        return Err(format!(
            "{name} was added with its own log settings: write its [process.{name}.logs] by hand"
        ));
    }
    let table = process_table(spec);
    let processes = doc
        .entry("process")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_like_mut()
        .ok_or("its \"process\" key is not a table")?;
    processes.insert(name, Item::Table(table));
    let mut out = doc.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// `$` is written `$$`, so that the file says what was run (see expand.rs).
fn literal(s: &str) -> String {
    s.replace('$', "$$")
}

fn process_table(spec: &ProcessSpec) -> Table {
    let defaults = ProcessSpec::new(spec.name.clone(), Vec::new());
    let mut t = Table::new();
    t.decor_mut()
        .set_prefix("\n# Added with `tend add --save`.\n");
    let mut argv = Array::new();
    for a in &spec.command {
        argv.push(literal(a));
    }
    t["command"] = value(argv);
    if let Some(cwd) = &spec.cwd {
        t["cwd"] = value(literal(&cwd.to_string_lossy()));
    }
    if !spec.env.is_empty() {
        let mut env = InlineTable::new();
        for (k, v) in &spec.env {
            env.insert(k, literal(v).into());
        }
        t["env"] = value(env);
    }
    if let Some(u) = &spec.user {
        t["user"] = value(u.as_str());
    }
    if let Some(g) = &spec.unix_group {
        t["group"] = value(g.as_str());
    }
    if spec.priority != defaults.priority {
        t["priority"] = value(i64::from(spec.priority));
    }
    if spec.restart != defaults.restart {
        t["restart"] = value(match spec.restart {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        });
    }
    if spec.autostart != defaults.autostart {
        t["autostart"] = value(spec.autostart);
    }
    let mut stop = InlineTable::new();
    if spec.stop.signal != defaults.stop.signal {
        stop.insert("signal", spec.stop.signal.name().into());
    }
    if spec.stop.timeout != defaults.stop.timeout {
        stop.insert(
            "timeout",
            tend_core::duration::format(spec.stop.timeout).into(),
        );
    }
    if !stop.is_empty() {
        t["stop"] = value(stop);
    }
    t
}

/// Writes `text` to a file beside `path` and renames it over `path`, with
/// `path`'s permissions: a crash leaves the old file or the new one, never half.
fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut tmp = tempfile_in(dir, path)?;
    let result = (|| {
        tmp.1.write_all(text.as_bytes())?;
        tmp.1.sync_all()?;
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp.0, meta.permissions())?;
        }
        std::fs::rename(&tmp.0, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp.0);
        format!("cannot write {}: {e}", path.display())
    })
}

/// A new file `.NAME.tend-save.PID` in `dir`.
fn tempfile_in(dir: &Path, path: &Path) -> Result<(PathBuf, std::fs::File), String> {
    let base = path
        .file_name()
        .map_or_else(|| "tend.toml".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{base}.tend-save.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map(|f| (tmp.clone(), f))
        .map_err(|e| format!("cannot write beside {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tend_core::{Name, Signal};

    use super::*;

    fn spec(name: &str, argv: &[&str]) -> ProcessSpec {
        ProcessSpec::new(
            Name::new(name).expect("name"),
            argv.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn the_table_is_appended_and_the_rest_is_kept() {
        let text = "# my services\n[daemon]\nlog_dir = \"logs\" # here\n\n[process.web]\ncommand = \"serve\"  # port 80\n";
        let mut s = spec("worker", &["sh", "-c", "echo $$ ${X}"]);
        s.env.insert("A".into(), "1".into());
        s.restart = RestartPolicy::OnFailure;
        s.autostart = false;
        s.priority = 5;
        s.stop.signal = Signal::INT;
        s.stop.timeout = Duration::from_secs(9);
        let out = with_process(text, &s, false).expect("edits");
        assert!(out.starts_with(text), "the file is kept as it was:\n{out}");
        // Read back, it is the same process, `$` and all.
        let c = crate::native::parse_with_env(
            Path::new("/nonexistent-tend-test/tend.toml"),
            &out,
            Default::default(),
        )
        .unwrap_or_else(|e| panic!("{e}\n{out}"));
        let back = c
            .processes
            .iter()
            .find(|p| p.name.as_str() == "worker")
            .expect("worker");
        assert_eq!(back.command, s.command);
        assert_eq!(back.env, s.env);
        assert_eq!(back.restart, s.restart);
        assert_eq!(back.autostart, s.autostart);
        assert_eq!(back.priority, 5);
        assert_eq!(back.stop, s.stop);
        assert!(out.contains("# Added with `tend add --save`."), "{out}");
    }

    #[test]
    fn a_name_the_file_has_is_refused() {
        let e = with_process(
            "[process.web]\ncommand = \"x\"\n",
            &spec("web", &["y"]),
            false,
        )
        .unwrap_err();
        assert_eq!(e, "it already has [process.web]");
        let e =
            with_process("[task.web]\ncommand = \"x\"\n", &spec("web", &["y"]), false).unwrap_err();
        assert_eq!(e, "it already has [task.web]");
    }
}
