//! Output capture: one small task per pipe, and the registry that owns every
//! log file and every in-memory tail.
//!
//! For each run of a process the launcher returns the read ends of its pipes.
//! A pump task reads each one in chunks, strips escape sequences when asked,
//! splits whole lines, and hands each batch of complete lines to three places:
//! the log file (one `write(2)` per batch, so lines of processes sharing a file
//! never interleave), the process's bounded tail, and subscribers. A pump never
//! stops reading because a file cannot be written: the bytes are dropped and
//! counted instead, so a child never blocks for good on a full disk.
//!
//! All pipe read ends live in pump tasks that this hub starts, and all files
//! in its registry: one place to hand over for a re-exec upgrade later.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use jiff::Timestamp;
use tokio::sync::broadcast;

use crate::logs::{AnsiStripper, Chunk, LineSplitter, LogFile, Stream, Tail, lines, prefix_lines};
use crate::name::Name;
use crate::spec::{LogSpec, LogTarget};

/// A line longer than this without a newline is cut, so a child that never
/// writes `\n` cannot grow the daemon's memory.
const MAX_LINE: usize = 1 << 20;
/// Bytes read per `read(2)`.
const READ_SIZE: usize = 64 * 1024;
/// Reads per wake-up before yielding, so one chatty child cannot starve others.
const READS_PER_WAKE: usize = 8;

/// A batch of complete lines from one stream of one process, as published to
/// subscribers ([`crate::Supervisor::subscribe_logs`]).
#[derive(Debug, Clone)]
pub struct LogChunk {
    /// The process.
    pub name: Name,
    /// Which stream.
    pub stream: Stream,
    /// When it was read.
    pub time: Timestamp,
    /// Complete lines, each ending in `\n`, bytes exactly as written (after
    /// escape stripping when the process asked for it).
    pub data: Arc<[u8]>,
}

impl LogChunk {
    /// The lines, without their newlines.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        lines(&self.data)
    }
}

/// One line of output, as returned by [`crate::Supervisor::log_lines`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The process.
    pub name: Name,
    /// Which stream.
    pub stream: Stream,
    /// When it was read.
    pub time: Timestamp,
    /// The line, without its newline.
    pub line: Vec<u8>,
}

/// What to read from the tails.
#[derive(Debug, Clone)]
pub struct LogQuery {
    /// Which processes.
    pub names: Vec<Name>,
    /// The last `last` lines (over all the processes together).
    pub last: usize,
    /// Only this stream; both when `None`.
    pub stream: Option<Stream>,
    /// Only lines read at or after this time.
    pub since: Option<Timestamp>,
}

#[derive(Debug)]
struct ProcLog {
    tail: Tail,
    dropped: u64,
}

#[derive(Default)]
struct Registry {
    files: HashMap<PathBuf, Arc<Mutex<LogFile>>>,
    procs: HashMap<Name, Arc<Mutex<ProcLog>>>,
    /// Writers of the stdin pipes of running processes that have one.
    stdin: HashMap<Name, tokio::sync::mpsc::UnboundedSender<Vec<u8>>>,
    /// Running processes started without a stdin pipe.
    no_stdin: std::collections::HashSet<Name>,
}

/// Owns every log file, every tail and the subscriber channel.
pub struct LogHub {
    registry: Mutex<Registry>,
    /// Pump tasks still reading; shutdown waits for them so no output is lost.
    pumps: std::sync::atomic::AtomicUsize,
    drained: tokio::sync::Notify,
    chunks: broadcast::Sender<LogChunk>,
    tail_bytes: usize,
    origin: Instant,
}

impl std::fmt::Debug for LogHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHub")
            .field("tail_bytes", &self.tail_bytes)
            .finish_non_exhaustive()
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (every
    // update is a single push or counter bump), so keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Sink {
    File(Arc<Mutex<LogFile>>),
    Stdout,
    Stderr,
    Null,
}

impl LogHub {
    /// A hub whose tails keep `tail_bytes` per process, publishing to
    /// subscribers through a channel of `capacity` chunks.
    pub(crate) fn new(tail_bytes: usize, capacity: usize) -> Self {
        let (chunks, _) = broadcast::channel(capacity.max(1));
        LogHub {
            registry: Mutex::new(Registry::default()),
            pumps: std::sync::atomic::AtomicUsize::new(0),
            drained: tokio::sync::Notify::new(),
            chunks,
            tail_bytes,
            origin: Instant::now(),
        }
    }

    /// Subscribes to every chunk of output from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LogChunk> {
        self.chunks.subscribe()
    }

    fn proc_log(&self, name: &Name) -> Arc<Mutex<ProcLog>> {
        locked(&self.registry)
            .procs
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(ProcLog {
                    tail: Tail::new(self.tail_bytes),
                    dropped: 0,
                }))
            })
            .clone()
    }

    fn sink(&self, target: &LogTarget, spec: &LogSpec, stream: Stream) -> Sink {
        match target {
            LogTarget::Null => Sink::Null,
            LogTarget::Inherit => match stream {
                Stream::Stdout => Sink::Stdout,
                Stream::Stderr => Sink::Stderr,
            },
            LogTarget::File(path) => {
                let mut reg = locked(&self.registry);
                let file = reg
                    .files
                    .entry(path.clone())
                    .or_insert_with(|| {
                        Arc::new(Mutex::new(LogFile::open(
                            path.clone(),
                            spec.max_size,
                            spec.backups,
                        )))
                    })
                    .clone();
                Sink::File(file)
            }
        }
    }

    /// Keeps the write end of a fresh run's stdin pipe. A small task writes
    /// what [`LogHub::send_stdin`] queues, as the child reads it, so a child
    /// that does not read never blocks the caller.
    pub(crate) fn attach_stdin(&self, name: &Name, fd: Option<OwnedFd>) {
        let Some(fd) = fd else {
            let mut reg = locked(&self.registry);
            reg.stdin.remove(name);
            reg.no_stdin.insert(name.clone());
            return;
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        locked(&self.registry).stdin.insert(name.clone(), tx);
        let name = name.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut pipe = match tokio::net::unix::pipe::Sender::from_owned_fd(fd) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(process = %name, error = %e, "cannot use the stdin pipe");
                    return;
                }
            };
            while let Some(buf) = rx.recv().await {
                if let Err(e) = pipe.write_all(&buf).await {
                    tracing::debug!(process = %name, error = %e, "stdin closed");
                    return;
                }
            }
        });
    }

    /// The process is gone: input for it is refused from now on.
    pub(crate) fn close_stdin(&self, name: &Name) {
        let mut reg = locked(&self.registry);
        reg.stdin.remove(name);
        reg.no_stdin.remove(name);
    }

    /// Queues `data` for `name`'s stdin.
    pub(crate) fn send_stdin(&self, name: &Name, data: Vec<u8>) -> Result<(), crate::Error> {
        let reg = locked(&self.registry);
        match reg.stdin.get(name) {
            Some(tx) => tx
                .send(data)
                .map_err(|_| crate::Error::NotRunning(name.clone())),
            None if reg.no_stdin.contains(name) => Err(crate::Error::NoStdin(name.clone())),
            None => Err(crate::Error::NotRunning(name.clone())),
        }
    }

    /// Starts the pumps for a fresh run of `name`. Must run inside a tokio runtime.
    pub(crate) fn attach(
        self: &Arc<Self>,
        name: &Name,
        spec: &LogSpec,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) {
        let streams = [
            (Stream::Stdout, stdout, &spec.stdout),
            (Stream::Stderr, stderr, &spec.stderr),
        ];
        for (stream, fd, target) in streams {
            let Some(fd) = fd else { continue };
            let pump = Pump {
                hub: self.clone(),
                name: name.clone(),
                stream,
                sink: self.sink(target, spec, stream),
                proc: self.proc_log(name),
                stripper: spec.strip_ansi.then(AnsiStripper::new),
                splitter: LineSplitter::new(MAX_LINE),
                timestamps: spec.timestamps,
                stripped: Vec::new(),
                lines: Vec::new(),
                stamped: Vec::new(),
            };
            self.pumps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(pump.run(fd));
        }
    }

    /// Waits until every pump has read its pipe to the end (the processes
    /// are gone, so their pipes close), at most `limit`: a process that left
    /// its group may hold a pipe open forever.
    pub(crate) async fn drained(&self, limit: std::time::Duration) {
        let wait = async {
            loop {
                let notified = self.drained.notified();
                if self.pumps.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            let left = self.pumps.load(std::sync::atomic::Ordering::SeqCst);
            tracing::warn!(
                pipes = left,
                "output pipes still open at shutdown (held by escaped processes?); not waiting for them"
            );
        }
    }

    /// Forgets a removed process's tail (its pumps finish on their own).
    pub(crate) fn forget(&self, name: &Name) {
        locked(&self.registry).procs.remove(name);
    }

    /// Bytes of `name`'s output that could not be written so far.
    pub(crate) fn dropped(&self, name: &Name) -> u64 {
        let p = locked(&self.registry).procs.get(name).cloned();
        p.map_or(0, |p| locked(&p).dropped)
    }

    /// The last lines of the given processes, merged in time order.
    pub(crate) fn lines(&self, q: &LogQuery) -> Vec<LogLine> {
        let procs: Vec<(Name, Arc<Mutex<ProcLog>>)> = {
            let reg = locked(&self.registry);
            q.names
                .iter()
                .filter_map(|n| reg.procs.get(n).map(|p| (n.clone(), p.clone())))
                .collect()
        };
        let mut all: Vec<LogLine> = Vec::new();
        for (name, p) in procs {
            let got = locked(&p).tail.last_lines(q.last, q.stream, q.since);
            all.extend(got.into_iter().map(|(time, stream, line)| LogLine {
                name: name.clone(),
                stream,
                time,
                line,
            }));
        }
        // Stable: lines of one process keep their order within equal times.
        all.sort_by_key(|l| l.time);
        let skip = all.len().saturating_sub(q.last);
        all.drain(..skip);
        all
    }

    /// Closes and reopens every log file (after logrotate moved them).
    pub(crate) fn reopen(&self) -> Vec<(PathBuf, std::io::Error)> {
        let files: Vec<Arc<Mutex<LogFile>>> =
            locked(&self.registry).files.values().cloned().collect();
        let mut errors = Vec::new();
        for f in files {
            let mut f = locked(&f);
            if let Err(e) = f.reopen() {
                errors.push((f.path().to_path_buf(), e));
            }
        }
        errors
    }
}

thread_local! {
    /// One read buffer per thread, shared by every pump on it: a thousand
    /// quiet processes cost no buffers at all.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_SIZE]);
}

struct Pump {
    hub: Arc<LogHub>,
    name: Name,
    stream: Stream,
    sink: Sink,
    proc: Arc<Mutex<ProcLog>>,
    stripper: Option<AnsiStripper>,
    splitter: LineSplitter,
    timestamps: bool,
    stripped: Vec<u8>,
    lines: Vec<u8>,
    stamped: Vec<u8>,
}

enum Read {
    More,
    Eof,
}

impl Pump {
    async fn run(mut self, fd: OwnedFd) {
        let rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            Ok(rx) => rx,
            Err(e) => {
                tracing::error!(process = %self.name, stream = ?self.stream, error = %e, "cannot read the output pipe");
                return;
            }
        };
        loop {
            if rx.readable().await.is_err() {
                break;
            }
            if let Read::Eof = self.read_some(&rx) {
                break;
            }
        }
        self.splitter.finish(&mut self.lines);
        self.emit();
        if self
            .hub
            .pumps
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            self.hub.drained.notify_waiters();
        }
    }

    fn read_some(&mut self, rx: &tokio::net::unix::pipe::Receiver) -> Read {
        SCRATCH.with(|cell| {
            let mut buf = cell.borrow_mut();
            for _ in 0..READS_PER_WAKE {
                match rx.try_read(&mut buf) {
                    Ok(0) => return Read::Eof,
                    Ok(n) => self.feed(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Read::More,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::error!(process = %self.name, stream = ?self.stream, error = %e, "reading the output pipe failed");
                        return Read::Eof;
                    }
                }
            }
            Read::More
        })
    }

    fn feed(&mut self, data: &[u8]) {
        match &mut self.stripper {
            Some(s) => {
                self.stripped.clear();
                s.strip_into(data, &mut self.stripped);
                self.splitter.feed(&self.stripped, &mut self.lines);
            }
            None => self.splitter.feed(data, &mut self.lines),
        }
        self.emit();
    }

    /// Sends the complete lines gathered so far to the sink, the tail and subscribers.
    fn emit(&mut self) {
        if self.lines.is_empty() {
            return;
        }
        let time = Timestamp::now();
        match &self.sink {
            Sink::File(file) => {
                let data: &[u8] = if self.timestamps {
                    self.stamped.clear();
                    let stamp = format!("{time:.3}");
                    prefix_lines(&self.lines, stamp.as_bytes(), &mut self.stamped);
                    &self.stamped
                } else {
                    &self.lines
                };
                let report = locked(file).write(data, self.hub.origin.elapsed());
                if report.dropped > 0 {
                    locked(&self.proc).dropped += report.dropped as u64;
                }
                // The file reports each transition once, to whichever pump
                // (of the processes sharing it) wrote at that moment.
                if let Some(why) = report.started_dropping {
                    tracing::warn!(process = %self.name, stream = ?self.stream, error = %why,
                        "log file cannot be written; output is dropped (and counted) until it can");
                } else if report.resumed {
                    let dropped = locked(&self.proc).dropped;
                    tracing::warn!(process = %self.name, stream = ?self.stream, dropped_bytes = dropped,
                        "log file writable again; resumed writing");
                }
            }
            // The daemon's own streams: a failure there has nowhere to be told.
            Sink::Stdout => {
                let _ = std::io::stdout().lock().write_all(&self.lines);
            }
            Sink::Stderr => {
                let _ = std::io::stderr().lock().write_all(&self.lines);
            }
            Sink::Null => {}
        }
        if self.hub.chunks.receiver_count() > 0 {
            let data: Arc<[u8]> = Arc::from(self.lines.as_slice());
            let chunk = Chunk {
                time,
                stream: self.stream,
                data: data.clone(),
            };
            locked(&self.proc).tail.push(chunk);
            let chunk = LogChunk {
                name: self.name.clone(),
                stream: self.stream,
                time,
                data,
            };
            let _ = self.hub.chunks.send(chunk);
        } else {
            // Nobody follows: copy only what the tail can keep, not every
            // byte a chatty child writes.
            let keep = last_lines_within(&self.lines, self.hub.tail_bytes);
            let chunk = Chunk {
                time,
                stream: self.stream,
                data: Arc::from(keep),
            };
            locked(&self.proc).tail.push(chunk);
        }
        self.lines.clear();
    }
}

/// The complete lines at the end of `lines` (complete lines, each ending in
/// `\n`) that fit in `limit` bytes; at least the last line, even if it alone
/// is longer (the tail trims it).
fn last_lines_within(lines: &[u8], limit: usize) -> &[u8] {
    if lines.len() <= limit {
        return lines;
    }
    // The first line start at or after len - limit: just past a newline at
    // index >= len - limit - 1 (the final newline itself does not count).
    let from = lines.len() - limit - 1;
    let body = &lines[..lines.len() - 1];
    match memchr::memchr(b'\n', &body[from..]) {
        Some(i) => &lines[from + i + 1..],
        None => {
            let start = memchr::memrchr(b'\n', body).map_or(0, |i| i + 1);
            &lines[start..]
        }
    }
}

#[cfg(test)]
mod tail_slice_tests {
    use super::last_lines_within;

    #[test]
    fn keeps_whole_lines_within_the_limit() {
        let l = b"aaaa\nbbbb\ncccc\n";
        assert_eq!(last_lines_within(l, 100), l);
        assert_eq!(last_lines_within(l, 15), l);
        assert_eq!(last_lines_within(l, 14), b"bbbb\ncccc\n");
        assert_eq!(last_lines_within(l, 10), b"bbbb\ncccc\n");
        assert_eq!(last_lines_within(l, 9), b"cccc\n");
        assert_eq!(last_lines_within(l, 5), b"cccc\n");
        assert_eq!(last_lines_within(l, 3), b"cccc\n");
        assert_eq!(last_lines_within(b"xxxxxxxxxx\n", 4), b"xxxxxxxxxx\n");
        assert_eq!(last_lines_within(b"a\nxxxxxxxxxx\n", 4), b"xxxxxxxxxx\n");
    }
}
