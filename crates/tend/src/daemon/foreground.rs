//! The foreground view of `tend up`: every process's output as `name |
//! line` on stdout, without the streams that go there already.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tend_core::logs::Stream;
use tend_core::runtime::LogChunk;
use tend_core::spec::LogTarget;
use tend_core::{Name, ProcessSpec};
use tokio::sync::broadcast;

use super::lock;
use crate::output::{LinePrinter, Prefixer};

/// Which streams of which processes go to the daemon's own stdout/stderr
/// (`"inherit"`): the foreground view does not print them a second time.
/// Only processes with such a stream are listed (usually none of a thousand).
#[derive(Clone, Default)]
pub(super) struct Inherited(Arc<Mutex<HashMap<Name, [bool; 2]>>>);

impl Inherited {
    pub(super) fn record(&self, spec: &ProcessSpec) {
        let l = &spec.logs;
        let flags = [
            l.stdout == LogTarget::Inherit,
            !l.merge_stderr && l.stderr == LogTarget::Inherit,
        ];
        let mut map = lock(&self.0);
        if flags == [false, false] {
            map.remove(&spec.name);
        } else {
            map.insert(spec.name.clone(), flags);
        }
    }

    fn contains(&self, name: &Name, stream: Stream) -> bool {
        let i = match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        lock(&self.0).get(name).is_some_and(|f| f[i])
    }
}

/// Whether the daemon's stdout is `/dev/null` (the same character device),
/// where the foreground view would print for nobody.
pub(super) fn stdout_is_dev_null() -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(null) = std::fs::metadata("/dev/null") else {
        return false;
    };
    let stdout = std::io::stdout();
    let Ok(fd) = std::os::fd::AsFd::as_fd(&stdout).try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => m.file_type().is_char_device() && m.rdev() == null.rdev(),
        Err(_) => false,
    }
}

/// The foreground view: every process's output as `name | line` on stdout,
/// like `docker compose up`.
///
/// It runs on a thread of its own, so a stdout that is slow to drain (a
/// pager, a terminal scrolled back) never stalls the daemon: the view falls
/// behind, says how much it skipped, and catches up.
pub(super) struct Printer {
    done: std::sync::mpsc::Receiver<()>,
}

impl Printer {
    pub(super) fn spawn(
        mut rx: broadcast::Receiver<LogChunk>,
        inherited: Inherited,
        names: &[Name],
    ) -> std::io::Result<Printer> {
        let mut printer = LinePrinter::new(Prefixer::new(
            names.iter().map(Name::as_str),
            std::io::stdout().is_terminal(),
        ));
        let (tx, done) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("tend-output".into())
            .spawn(move || {
                let mut buf = Vec::with_capacity(64 * 1024);
                loop {
                    buf.clear();
                    match rx.blocking_recv() {
                        Ok(c) => {
                            if inherited.contains(&c.name, c.stream) {
                                continue;
                            }
                            let p = &mut printer.prefixer;
                            p.width = p.width.max(c.name.as_str().chars().count());
                            // A partial line stays open until it goes on or
                            // something else is printed.
                            let n = c.lines().count();
                            for (i, line) in c.lines().enumerate() {
                                let (partial, continues) =
                                    (c.partial && i + 1 == n, c.continues && i == 0);
                                printer.line(
                                    &mut buf,
                                    c.name.as_str(),
                                    c.stream,
                                    line,
                                    partial,
                                    continues,
                                );
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            printer.finish(&mut buf);
                            let note = format!(
                                "(tend: {n} batches of output not shown here; see the log files)\n"
                            );
                            buf.extend_from_slice(note.as_bytes());
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            printer.finish(&mut buf);
                            let mut out = std::io::stdout().lock();
                            let _ = out.write_all(&buf).and_then(|()| out.flush());
                            break;
                        }
                    }
                    let mut out = std::io::stdout().lock();
                    // Flushed: stdout is line-buffered, and a line in part must show.
                    if out.write_all(&buf).and_then(|()| out.flush()).is_err() {
                        // Nobody reads stdout any more; the log files still get everything.
                        break;
                    }
                }
                let _ = tx.send(());
            })?;
        Ok(Printer { done })
    }

    /// Waits (a little) until everything published has been printed.
    pub(super) fn finish(self, timeout: Duration) {
        let _ = self.done.recv_timeout(timeout);
    }
}
