//! Where the daemon's socket is: `--socket`, `TEND_SOCKET`, or the config file.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::config;

/// The socket to talk to: `explicit` (from `--socket` or `TEND_SOCKET`), else
/// `[daemon] socket` of the config file, else `tend.sock` beside it.
///
/// Client verbs only need the socket, so this reads just the `[daemon]` table
/// instead of validating every process: `tend status` stays fast with a
/// thousand processes. When the file does not even parse, the full loader
/// runs to print its precise diagnostics.
pub fn discover(explicit: Option<&Path>, config_file: &Path) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let text = match config::read::read_text(config_file, &mut config::read::Budget::new()) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => bail!(
            "no daemon socket given and {} does not exist (use --socket PATH, TEND_SOCKET, or -c FILE)",
            config_file.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", config_file.display()));
        }
    };
    if !config::is_supervisord(config_file, Some(&text))
        && let Some(path) = socket_from_text(config_file, &text)
    {
        return Ok(path);
    }
    match config::load_any(config_file) {
        Ok(loaded) => Ok(loaded.config.daemon.socket),
        Err(errors) => bail!(
            "cannot find the daemon's socket: {} has errors (or use --socket PATH):\n{errors}",
            config_file.display()
        ),
    }
}

/// The socket as the config loader resolves it, from the `[daemon]` table
/// alone; `None` when the file does not parse.
pub fn socket_from_text(config_file: &Path, text: &str) -> Option<PathBuf> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        daemon: Daemon,
    }
    #[derive(Deserialize, Default)]
    struct Daemon {
        socket: Option<PathBuf>,
    }
    // Parsing a thousand process tables costs the client more than the
    // whole round trip to the daemon; the `[daemon]` table alone is enough
    // when it can be cut out unambiguously.
    let file: File = match daemon_table(text).and_then(|t| toml::from_str(t).ok()) {
        Some(f) => f,
        None => toml::from_str(text).ok()?,
    };
    let dir = match config_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = std::path::absolute(dir).ok()?;
    match file.daemon.socket {
        Some(socket) => Some(dir.join(socket)),
        // Where the daemon put it (beside the file, unless that is read-only).
        None => Some(config::default_socket(
            &std::path::absolute(config_file).ok()?,
        )),
    }
}

/// The text of the `[daemon]` table, header included, when the file plainly
/// has one: exactly one line that is `[daemon]` (spaces and a comment
/// allowed), the table running to the next line that opens a table, and no
/// other line that could define `daemon` keys (`daemon.x = ...`, `daemon =
/// {...}`, `[daemon.x]`). `None` in any other case, and the caller parses
/// the whole file. A cut inside a multi-line string makes the slice fail to
/// parse, which also falls back.
fn daemon_table(text: &str) -> Option<&str> {
    let mut start = None;
    let mut end = text.len();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.split('#').next().unwrap_or("").trim_end() == "[daemon]" {
            if start.is_some() {
                return None;
            }
            start = Some(offset);
        } else if t.starts_with("daemon")
            || t.starts_with("\"daemon")
            || t.starts_with("'daemon")
            || t.starts_with("[daemon")
            || t.starts_with("[ daemon")
        {
            return None;
        } else if t.starts_with('[') && start.is_some() && end == text.len() {
            end = offset;
        }
        offset += line.len();
    }
    start.map(|s| &text[s..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_out_the_daemon_table_only_when_it_is_plain() {
        let t = "[process.a]\ncommand = \"true\"\n[daemon] # ours\nsocket = \"x\"\n\n[process.b]\n";
        assert_eq!(daemon_table(t), Some("[daemon] # ours\nsocket = \"x\"\n\n"));
        assert_eq!(
            daemon_table("[daemon]\nsocket = \"x\"\n"),
            Some("[daemon]\nsocket = \"x\"\n")
        );
        for ambiguous in [
            "[process.a]\ncommand = \"true\"\n",
            "[daemon]\n[daemon]\n",
            "daemon.socket = \"x\"\n[daemon]\n",
            "[daemon]\nsocket = \"x\"\n[daemon.extra]\n",
            "[ daemon ]\nsocket = \"x\"\n",
            "\"daemon\" = { socket = \"x\" }\n",
        ] {
            assert_eq!(daemon_table(ambiguous), None, "{ambiguous}");
        }
    }

    /// The fast path must find the same socket as the full loader.
    #[test]
    fn agrees_with_the_config_loader() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let cases = [
            "[process.a]\ncommand = \"true\"\n",
            "[daemon]\nsocket = \"x.sock\"\n[process.a]\ncommand = \"true\"\n",
            "[daemon]\nsocket = \"../up.sock\"\n",
            "[daemon]\nsocket = \"/run/abs.sock\"\nsocket_mode = \"0660\"\n",
            // The daemon table between others, and a header-like line
            // inside a multi-line string of it (the cut fails to parse, so
            // the whole file is read).
            "[process.a]\ncommand = \"true\"\n[daemon]\nsocket = \"mid.sock\"\n[process.b]\ncommand = \"true\"\n",
            "[daemon]\nlog_dir = \"\"\"\nlogs\n[not a table]\"\"\"\nsocket = \"late.sock\"\n",
            "[ daemon ]\nsocket = \"spaced.sock\"\n",
        ];
        for (i, text) in cases.iter().enumerate() {
            let file = dir.path().join("sub").join(format!("c{i}.toml"));
            std::fs::write(&file, text).expect("write");
            let full = config::native::load(&file)
                .map(|c| c.daemon.socket)
                .map_err(|e| e.to_string());
            let fast = socket_from_text(&file, text);
            assert_eq!(fast.as_ref(), full.as_ref().ok(), "{text}");
            assert_eq!(discover(None, &file).ok(), fast, "{text}");
        }
        let explicit = Path::new("/tmp/explicit.sock");
        assert_eq!(
            discover(Some(explicit), Path::new("/nonexistent.toml"))
                .ok()
                .as_deref(),
            Some(explicit)
        );
    }
}
