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
use crate::output::Prefixer;

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
        let mut prefixer = Prefixer::new(
            names.iter().map(Name::as_str),
            std::io::stdout().is_terminal(),
        );
        let (tx, done) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("tend-output".into())
            .spawn(move || {
                let mut buf = Vec::with_capacity(64 * 1024);
                // The process and stream whose last line is printed in part.
                let mut open: Option<(Name, Stream)> = None;
                loop {
                    buf.clear();
                    match rx.blocking_recv() {
                        Ok(c) => {
                            if inherited.contains(&c.name, c.stream) {
                                continue;
                            }
                            prefixer.width = prefixer.width.max(c.name.as_str().len());
                            let mut data: &[u8] = &c.data;
                            let mine = open
                                .as_ref()
                                .is_some_and(|(n, s)| *n == c.name && *s == c.stream);
                            if mine && c.continues {
                                // The rest of the line printed in part.
                                let end = data
                                    .iter()
                                    .position(|&b| b == b'\n')
                                    .map_or(data.len(), |i| i + 1);
                                prefixer.more(&mut buf, &data[..end]);
                                data = &data[end..];
                                if end > 0 && c.data[end - 1] == b'\n' {
                                    open = None;
                                }
                            } else if open.take().is_some() {
                                // Another's line: the one in part ends here.
                                buf.push(b'\n');
                            }
                            if c.continues && !mine && data.first() == Some(&b'\n') {
                                data = &data[1..];
                            }
                            for line in lines_of(data) {
                                prefixer.line(&mut buf, c.name.as_str(), line);
                            }
                            if !data.is_empty() && data.last() != Some(&b'\n') {
                                buf.pop();
                                open = Some((c.name.clone(), c.stream));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let note = format!(
                                "(tend: {n} batches of output not shown here; see the log files)\n"
                            );
                            buf.extend_from_slice(note.as_bytes());
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
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

/// The lines of `data`, each without its `\n` (a last one without it too).
fn lines_of(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split_inclusive(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\n").unwrap_or(l))
}
