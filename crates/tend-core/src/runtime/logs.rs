//! Output capture: one reader for every output pipe, and the registry that
//! owns every log file and every in-memory tail.
//!
//! For each run of a process the launcher returns the read ends of its pipes.
//! They all go into one level-triggered epoll set, which is itself the only
//! thing registered with tokio; one task reads whichever pipes are ready (a
//! bounded number of reads per pipe per round, one shared read buffer, a
//! yield between rounds), so a thousand quiet processes cost a slot each in a
//! table and no task, no reactor registration and no buffer. Per pipe, the
//! reader strips escape sequences when asked, splits whole lines, and hands
//! each batch of complete lines to three places: the log file (one `write(2)`
//! per batch, so lines of processes sharing a file never interleave), the
//! process's bounded tail, and subscribers. It never stops reading because a
//! file cannot be written: the bytes are dropped and counted instead, so a
//! child never blocks for good on a full disk.
//!
//! A line that has no `\n` yet (a `Password: ` prompt, a `\r` progress
//! bar) is not held back for long: [`PARTIAL_AFTER`] after its first byte
//! came, what there is of it goes out like a line, and the next chunk of the
//! stream continues it. In a file (or the daemon's stdout) written by several
//! pipes, the others' lines wait until that line is complete, so a line of
//! one process is never split by another's.
//!
//! A log file is opened on the first output that goes to it, shared by every
//! pipe writing to the same path, and closed when the last of them ends: a
//! quiet process costs no descriptor and creates no file.
//!
//! All pipe ends live here (the read ends in `Pipes`, stdin write ends with
//! each process's tail) and all files in the registry: one place to hand over for a
//! re-exec upgrade later.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, broadcast, mpsc};

use crate::logs::{
    AnsiStripper, Chunk, LineSplitter, LogFile, Stream, Tail, WriteReport, lines, prefix_lines,
};
use crate::model::name::Name;
use crate::model::spec::{LogSpec, LogTarget};
use crate::unix::epoll::{self, Epoll, Registered};

/// A line longer than this without a newline is cut, so a child that never
/// writes `\n` cannot grow the daemon's memory.
const MAX_LINE: usize = 1 << 20;
/// Bytes read per `read(2)`.
const READ_SIZE: usize = 64 * 1024;
/// Reads of one pipe per round, so one chatty child cannot starve others.
const READS_PER_WAKE: usize = 8;
/// Ready pipes taken per round; the epoll set hands out the rest next round,
/// oldest first.
const EVENTS: usize = 64;
/// A work buffer that grew past this (long lines) is given back after a round.
const KEEP_CAPACITY: usize = 256 * 1024;
/// A line without its `\n` yet is shown this long after its first byte was
/// read: a prompt or a progress bar is seen at once, as under supervisord
/// (which writes every read as it is), yet a line written in a few quick
/// pieces stays whole.
pub const PARTIAL_AFTER: Duration = Duration::from_millis(100);

/// What a stdout tap receives: a batch of complete lines of one process's
/// stdout, every batch, in order ([`crate::Supervisor::tap_stdout`]).
#[derive(Debug, Clone)]
pub struct TapChunk {
    /// The process.
    pub name: Name,
    /// One or more complete lines, each ending in `\n`.
    pub data: Arc<[u8]>,
}

/// Where a stdout tap sends its chunks: unbounded, so nothing is ever lost;
/// the reader on the other end only parses what it gets.
pub type Tap = mpsc::UnboundedSender<TapChunk>;

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
    /// Lines, each ending in `\n`, bytes exactly as written (after escape
    /// stripping when the process asked for it). The last line has no `\n`
    /// when it was shown before its end came ([`PARTIAL_AFTER`]); the next
    /// chunk of this stream then has [`LogChunk::continues`] set.
    pub data: Arc<[u8]>,
    /// The first bytes of `data` are the rest of the previous chunk's last
    /// line (of the same process and stream), not a line of their own.
    pub continues: bool,
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

/// A process's tail, drop count and stdin, shared by the pipes of its runs.
struct ProcLog {
    name: Name,
    tail: Tail,
    dropped: u64,
    /// Bytes of output read (complete lines, before timestamps), whatever
    /// became of them: what `/metrics` counts as written.
    written: u64,
    stdin: Stdin,
}

/// The stdin of a process's current run.
enum Stdin {
    /// No run is going on.
    NotRunning,
    /// The run has no stdin pipe.
    Absent,
    /// Nothing was sent yet: no task, just the write end.
    Idle(OwnedFd),
    /// A writer task drains this queue into the pipe.
    Writing(mpsc::UnboundedSender<Vec<u8>>),
}

/// Keeps the lines of several writers (pipes) to one place whole: while one
/// writer's last line has no `\n` yet, what the others write waits, in
/// order, until that line is complete.
#[derive(Debug, Default)]
struct Joiner {
    /// The writer whose last line is not complete.
    open_by: Option<u64>,
    deferred: VecDeque<(u64, Vec<u8>)>,
    bytes: usize,
}

impl Joiner {
    /// Writes `data` of `writer` through `put`, now or (behind another
    /// writer's open line) later.
    fn write(&mut self, writer: u64, data: &[u8], put: &mut dyn FnMut(&[u8])) {
        if self.open_by.is_some_and(|o| o != writer) {
            self.bytes += data.len();
            self.deferred.push_back((writer, data.to_vec()));
            if self.bytes <= MAX_LINE {
                return;
            }
            // The open line waited too long: it ends here, as a line too
            // long is cut.
            put(b"\n");
            self.open_by = None;
        } else {
            self.put(writer, data, put);
        }
        // Whoever waited goes now; a writer whose line opens goes on alone.
        loop {
            let next = match self.open_by {
                None => (!self.deferred.is_empty()).then_some(0),
                Some(o) => self.deferred.iter().position(|(w, _)| *w == o),
            };
            let Some((w, d)) = next.and_then(|i| self.deferred.remove(i)) else {
                break;
            };
            self.bytes -= d.len();
            self.put(w, &d, put);
        }
    }

    fn put(&mut self, writer: u64, data: &[u8], put: &mut dyn FnMut(&[u8])) {
        if data.is_empty() {
            return;
        }
        put(data);
        self.open_by = (data.last() != Some(&b'\n')).then_some(writer);
    }
}

/// A log file with the [`Joiner`] of the pipes that write to it.
#[derive(Debug)]
struct SharedFile {
    file: LogFile,
    joiner: Joiner,
}

impl SharedFile {
    fn write(&mut self, writer: u64, data: &[u8], now: Duration) -> WriteReport {
        let mut all = WriteReport::default();
        let file = &mut self.file;
        self.joiner.write(writer, data, &mut |d| {
            let r = file.write(d, now);
            all.written += r.written;
            all.dropped += r.dropped;
            if all.started_dropping.is_none() {
                all.started_dropping = r.started_dropping;
            }
            all.resumed |= r.resumed;
        });
        all
    }
}

#[derive(Default)]
struct Registry {
    /// Log files that a pipe has written to, by path. Weak: a file is closed
    /// when the last pipe writing to it ends.
    files: HashMap<PathBuf, Weak<Mutex<SharedFile>>>,
    procs: HashMap<Name, Arc<Mutex<ProcLog>>>,
    /// Stdout taps by process name; kept across runs (and a remove and an
    /// add again), until untapped or the receiver is gone.
    taps: HashMap<Name, Tap>,
}

/// Every output pipe, in one level-triggered epoll set that a single task reads.
#[derive(Default)]
struct Pipes {
    /// Created with the first pipe, then kept.
    epoll: Option<Arc<Epoll>>,
    /// Per-pipe state; the index is the pipe's epoll token; `None` is a free slot.
    slots: Vec<Option<Pipe>>,
    free: Vec<usize>,
    /// Pipes not yet at end of file.
    open: usize,
    /// Slots of pipes holding part of a line (some may have been read on
    /// since, or ended): looked at when the first is due.
    held: Vec<usize>,
    /// The reader task is running (or about to).
    reading: bool,
}

impl Pipes {
    fn insert(&mut self, pipe: Pipe) -> std::io::Result<()> {
        let epoll = match &mut self.epoll {
            Some(e) => e,
            None => self.epoll.insert(Arc::new(Epoll::new()?)),
        };
        epoll::set_nonblocking(pipe.fd.as_fd())?;
        let slot = self.free.last().copied().unwrap_or(self.slots.len());
        epoll.add(pipe.fd.as_fd(), slot as u64)?;
        if slot == self.slots.len() {
            self.slots.push(Some(pipe));
        } else {
            self.free.pop();
            self.slots[slot] = Some(pipe);
        }
        self.open += 1;
        Ok(())
    }

    fn remove(&mut self, slot: usize) -> Option<Pipe> {
        let pipe = self.slots.get_mut(slot)?.take()?;
        if let Some(epoll) = &self.epoll {
            epoll.delete(pipe.fd.as_fd());
        }
        self.free.push(slot);
        self.open -= 1;
        Some(pipe)
    }
}

/// Owns every output pipe, every log file, every tail and the subscriber channel.
pub struct LogHub {
    registry: Mutex<Registry>,
    /// Lock order: `pipes`, then `registry`, then a file or a `ProcLog`.
    pipes: Mutex<Pipes>,
    /// Told when the last open pipe reaches end of file.
    drained: Notify,
    chunks: broadcast::Sender<LogChunk>,
    tail_bytes: usize,
    origin: Instant,
    /// Where stdin writers run when input is sent from outside the runtime.
    runtime: OnceLock<tokio::runtime::Handle>,
    /// Each pipe's number, for the joiners.
    next_pipe: AtomicU64,
    /// The pipes writing to the daemon's own stdout and stderr.
    stdout: Mutex<Joiner>,
    stderr: Mutex<Joiner>,
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

/// Where a pipe's lines go.
enum Sink {
    File(FileSink),
    Stdout,
    Stderr,
    Null,
}

/// A log file, opened (or shared with the processes already writing to it)
/// on the pipe's first output.
struct FileSink {
    path: PathBuf,
    max_size: u64,
    backups: u32,
    file: Option<Arc<Mutex<SharedFile>>>,
}

/// The state of one output pipe between reads.
struct Pipe {
    /// Unique among the pipes of this hub.
    id: u64,
    fd: OwnedFd,
    proc: Arc<Mutex<ProcLog>>,
    stream: Stream,
    timestamps: bool,
    sink: Sink,
    stripper: Option<AnsiStripper>,
    splitter: LineSplitter,
    /// A protocol stdout: not published to subscribers.
    protocol: bool,
    /// Where every batch of a tapped stdout also goes.
    tap: Option<Tap>,
    /// When the splitter started holding the part of a line it holds.
    held_since: Option<tokio::time::Instant>,
    /// The last bytes sent out are a line without its `\n` yet.
    line_open: bool,
}

impl Pipe {
    /// Part of a line is shown before its end: not on a protocol stdout,
    /// whose reader wants the bytes as they come, in whole lines.
    fn shows_partial(&self) -> bool {
        !self.protocol && self.tap.is_none()
    }
}

/// The reader's buffers, shared by every pipe: one read buffer for all, so a
/// thousand quiet processes cost no buffers at all.
struct Scratch {
    read: Vec<u8>,
    stripped: Vec<u8>,
    lines: Vec<u8>,
    stamped: Vec<u8>,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            read: vec![0; READ_SIZE],
            stripped: Vec::new(),
            lines: Vec::new(),
            stamped: Vec::new(),
        }
    }

    /// Gives back what a burst of long lines made the work buffers grow to.
    fn trim(&mut self) {
        for v in [&mut self.stripped, &mut self.lines, &mut self.stamped] {
            if v.capacity() > KEEP_CAPACITY {
                *v = Vec::new();
            }
        }
    }
}

enum Read {
    /// Read until it would block.
    Drained,
    /// Still readable after this round's reads.
    More,
    Eof,
}

enum Round {
    /// Every pipe that was ready has been read until it would block (or to
    /// its end), or none was ready: wait for tokio to say there is more.
    Drained,
    /// A pipe still has data after its share of reads, or more pipes were
    /// ready than one round takes: look again after yielding.
    Busy,
}

impl LogHub {
    /// A hub whose tails keep `tail_bytes` per process, publishing to
    /// subscribers through a channel of `capacity` chunks.
    pub(crate) fn new(tail_bytes: usize, capacity: usize) -> Self {
        let (chunks, _) = broadcast::channel(capacity.max(1));
        LogHub {
            registry: Mutex::new(Registry::default()),
            pipes: Mutex::new(Pipes::default()),
            drained: Notify::new(),
            chunks,
            tail_bytes,
            origin: Instant::now(),
            runtime: OnceLock::new(),
            next_pipe: AtomicU64::new(0),
            stdout: Mutex::new(Joiner::default()),
            stderr: Mutex::new(Joiner::default()),
        }
    }

    /// Subscribes to every chunk of output from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LogChunk> {
        self.chunks.subscribe()
    }

    /// Sends every batch of `name`'s stdout from its next run on to `tap`
    /// (replacing an earlier tap); `None` removes the tap.
    pub(crate) fn tap(&self, name: &Name, tap: Option<Tap>) {
        let mut reg = locked(&self.registry);
        match tap {
            Some(t) => {
                reg.taps.insert(name.clone(), t);
            }
            None => {
                reg.taps.remove(name);
            }
        }
        reg.taps.retain(|_, t| !t.is_closed());
    }

    fn proc_log(&self, name: &Name) -> Arc<Mutex<ProcLog>> {
        locked(&self.registry)
            .procs
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(ProcLog {
                    name: name.clone(),
                    tail: Tail::new(self.tail_bytes),
                    dropped: 0,
                    written: 0,
                    stdin: Stdin::NotRunning,
                }))
            })
            .clone()
    }

    /// Keeps the write end of a fresh run's stdin pipe. The task that writes
    /// to it starts with the first [`LogHub::send_stdin`], so programs that
    /// never get input cost no task.
    pub(crate) fn attach_stdin(&self, name: &Name, fd: Option<OwnedFd>) {
        let stdin = match fd {
            Some(fd) => {
                if self.runtime.get().is_none()
                    && let Ok(handle) = tokio::runtime::Handle::try_current()
                {
                    let _ = self.runtime.set(handle);
                }
                Stdin::Idle(fd)
            }
            None => Stdin::Absent,
        };
        locked(&self.proc_log(name)).stdin = stdin;
    }

    /// The process is gone: input for it is refused from now on.
    pub(crate) fn close_stdin(&self, name: &Name) {
        let p = locked(&self.registry).procs.get(name).cloned();
        if let Some(p) = p {
            locked(&p).stdin = Stdin::NotRunning;
        }
    }

    /// Queues `data` for `name`'s stdin. A small task writes the queue as the
    /// child reads it, so a child that does not read never blocks the caller.
    pub(crate) fn send_stdin(&self, name: &Name, data: Vec<u8>) -> Result<(), crate::Error> {
        let not_running = || crate::Error::NotRunning(name.clone());
        let p = locked(&self.registry).procs.get(name).cloned();
        let Some(p) = p else {
            return Err(not_running());
        };
        let mut p = locked(&p);
        if let Stdin::Idle(_) = p.stdin {
            let (tx, rx) = mpsc::unbounded_channel();
            if let Stdin::Idle(fd) = std::mem::replace(&mut p.stdin, Stdin::Writing(tx)) {
                self.spawn_stdin_writer(name.clone(), fd, rx);
            }
        }
        match &p.stdin {
            Stdin::Writing(tx) => tx.send(data).map_err(|_| not_running()),
            Stdin::Absent => Err(crate::Error::NoStdin(name.clone())),
            Stdin::NotRunning | Stdin::Idle(_) => Err(not_running()),
        }
    }

    fn spawn_stdin_writer(
        &self,
        name: Name,
        fd: OwnedFd,
        mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    ) {
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| self.runtime.get().cloned());
        let Some(handle) = handle else {
            // Dropping `rx` makes the send fail: the caller hears "not running".
            tracing::error!(process = %name, "no tokio runtime to write stdin from");
            return;
        };
        handle.spawn(async move {
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

    /// Adds the output pipes of a fresh run of `name` to the reader (starting
    /// it if it is not running). Must run inside a tokio runtime. Log files are
    /// not touched until the first output.
    pub(crate) fn attach(
        self: &Arc<Self>,
        name: &Name,
        spec: &LogSpec,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) {
        if stdout.is_none() && stderr.is_none() {
            return;
        }
        let proc = self.proc_log(name);
        let tap = locked(&self.registry).taps.get(name).cloned();
        let streams = [
            (Stream::Stdout, stdout, &spec.stdout),
            (Stream::Stderr, stderr, &spec.stderr),
        ];
        let mut pipes = locked(&self.pipes);
        for (stream, fd, target) in streams {
            let Some(fd) = fd else { continue };
            let sink = match target {
                LogTarget::Null => Sink::Null,
                LogTarget::Inherit => match stream {
                    Stream::Stdout => Sink::Stdout,
                    Stream::Stderr => Sink::Stderr,
                },
                LogTarget::File(path) => Sink::File(FileSink {
                    path: path.clone(),
                    max_size: spec.max_size,
                    backups: spec.backups,
                    file: None,
                }),
            };
            let pipe = Pipe {
                id: self.next_pipe.fetch_add(1, Ordering::Relaxed),
                fd,
                proc: proc.clone(),
                stream,
                timestamps: spec.timestamps,
                sink,
                stripper: spec.strip_ansi.then(AnsiStripper::new),
                splitter: LineSplitter::new(MAX_LINE),
                protocol: stream == Stream::Stdout && spec.protocol_stdout,
                tap: (stream == Stream::Stdout).then(|| tap.clone()).flatten(),
                held_since: None,
                line_open: false,
            };
            if let Err(e) = pipes.insert(pipe) {
                tracing::error!(process = %name, stream = ?stream, error = %e, "cannot read the output pipe");
            }
        }
        if pipes.open > 0
            && !pipes.reading
            && let Some(epoll) = pipes.epoll.clone()
        {
            pipes.reading = true;
            tokio::spawn(read_pipes(self.clone(), epoll));
        }
    }

    /// Waits until every pipe has been read to the end (the processes are
    /// gone, so their pipes close), at most `limit`: a process that left its
    /// group may hold a pipe open forever.
    pub(crate) async fn drained(&self, limit: std::time::Duration) {
        let wait = async {
            loop {
                let notified = self.drained.notified();
                if locked(&self.pipes).open == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            let left = locked(&self.pipes).open;
            tracing::warn!(
                pipes = left,
                "output pipes still open at shutdown (held by escaped processes?); not waiting for them"
            );
        }
    }

    /// Forgets a removed process's tail (pipes still open finish on their own).
    pub(crate) fn forget(&self, name: &Name) {
        locked(&self.registry).procs.remove(name);
    }

    /// Bytes of `name`'s output that could not be written so far.
    pub(crate) fn dropped(&self, name: &Name) -> u64 {
        let p = locked(&self.registry).procs.get(name).cloned();
        p.map_or(0, |p| locked(&p).dropped)
    }

    /// Bytes of `name`'s output read so far (both streams).
    pub(crate) fn written(&self, name: &Name) -> u64 {
        let p = locked(&self.registry).procs.get(name).cloned();
        p.map_or(0, |p| locked(&p).written)
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

    /// Closes and reopens every open log file (after logrotate moved them).
    /// A file no running process has written to yet is not open, so there is
    /// nothing to reopen: its first output creates it.
    pub(crate) fn reopen(&self) -> Vec<(PathBuf, std::io::Error)> {
        let files: Vec<Arc<Mutex<SharedFile>>> = {
            let mut reg = locked(&self.registry);
            reg.files.retain(|_, f| f.strong_count() > 0);
            reg.files.values().filter_map(Weak::upgrade).collect()
        };
        let mut errors = Vec::new();
        for f in files {
            let f = &mut locked(&f).file;
            if let Err(e) = f.reopen() {
                errors.push((f.path().to_path_buf(), e));
            }
        }
        errors
    }

    /// The open file at `path`, shared with every pipe already writing to it.
    fn shared_file(&self, path: &Path, max_size: u64, backups: u32) -> Arc<Mutex<SharedFile>> {
        let mut reg = locked(&self.registry);
        if let Some(f) = reg.files.get(path).and_then(Weak::upgrade) {
            return f;
        }
        let f = Arc::new(Mutex::new(SharedFile {
            file: LogFile::new(path.to_path_buf(), max_size, backups),
            joiner: Joiner::default(),
        }));
        reg.files.insert(path.to_path_buf(), Arc::downgrade(&f));
        f
    }

    /// A pipe reached its end: its file closes if no other pipe writes to it.
    fn release(&self, pipe: Pipe) {
        drop(pipe.fd);
        let Sink::File(FileSink {
            path,
            file: Some(file),
            ..
        }) = pipe.sink
        else {
            return;
        };
        // Under the lock, so no other pipe takes a new reference meanwhile.
        let mut reg = locked(&self.registry);
        if Arc::strong_count(&file) == 1
            && reg
                .files
                .get(&path)
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&file)))
        {
            reg.files.remove(&path);
        }
        drop(file);
    }

    /// Reads every ready pipe once (a bounded number of reads each) and
    /// handles the ones that ended.
    fn round(&self, scratch: &mut Scratch) -> Round {
        let mut pipes = locked(&self.pipes);
        let pipes = &mut *pipes;
        let mut events = [epoll::EMPTY; EVENTS];
        let n = match pipes.epoll.as_ref().map(|e| e.poll(&mut events)) {
            None | Some(Ok(0)) => return Round::Drained,
            Some(Ok(n)) => n,
            Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => return Round::Busy,
            Some(Err(e)) => {
                tracing::error!(error = %e, "waiting for output failed");
                return Round::Drained;
            }
        };
        let mut busy = n == EVENTS;
        let mut ended = Vec::new();
        for ev in &events[..n] {
            let slot = usize::try_from(epoll::token(ev)).unwrap_or(usize::MAX);
            let Some(Some(pipe)) = pipes.slots.get_mut(slot) else {
                continue;
            };
            match self.read_pipe(slot, pipe, &mut pipes.held, scratch) {
                Read::Drained => {}
                Read::More => busy = true,
                Read::Eof => ended.push(slot),
            }
        }
        for slot in ended {
            if let Some(mut pipe) = pipes.remove(slot) {
                pipe.splitter.finish(&mut scratch.lines);
                if pipe.line_open && scratch.lines.is_empty() {
                    // The end of a line shown in part is the end of the stream.
                    scratch.lines.push(b'\n');
                }
                self.emit(&mut pipe, &mut scratch.lines, &mut scratch.stamped);
                self.release(pipe);
                if pipes.open == 0 {
                    self.drained.notify_waiters();
                }
            }
        }
        scratch.trim();
        if busy { Round::Busy } else { Round::Drained }
    }

    fn read_pipe(
        &self,
        slot: usize,
        pipe: &mut Pipe,
        held: &mut Vec<usize>,
        scratch: &mut Scratch,
    ) -> Read {
        let Scratch {
            read,
            stripped,
            lines,
            stamped,
        } = scratch;
        for _ in 0..READS_PER_WAKE {
            match epoll::read(pipe.fd.as_fd(), read) {
                Ok(0) => return Read::Eof,
                Ok(n) => {
                    let data = &read[..n];
                    match &mut pipe.stripper {
                        Some(s) => {
                            stripped.clear();
                            s.strip_into(data, stripped);
                            pipe.splitter.feed(stripped, lines);
                        }
                        None => pipe.splitter.feed(data, lines),
                    }
                    self.emit(pipe, lines, stamped);
                    if pipe.splitter.pending() == 0 {
                        pipe.held_since = None;
                    } else if pipe.held_since.is_none() && pipe.shows_partial() {
                        pipe.held_since = Some(tokio::time::Instant::now());
                        held.push(slot);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Read::Drained,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let name = locked(&pipe.proc).name.clone();
                    tracing::error!(process = %name, stream = ?pipe.stream, error = %e, "reading the output pipe failed");
                    return Read::Eof;
                }
            }
        }
        Read::More
    }

    /// Shows the part of a line each held pipe has had for [`PARTIAL_AFTER`]
    /// (or longer); returns when the next one is due.
    fn flush_held(&self, scratch: &mut Scratch) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        let mut pipes = locked(&self.pipes);
        let pipes = &mut *pipes;
        let mut next = None;
        let mut held = std::mem::take(&mut pipes.held);
        held.sort_unstable();
        held.dedup();
        held.retain(|&slot| {
            let Some(Some(pipe)) = pipes.slots.get_mut(slot) else {
                return false;
            };
            let Some(since) = pipe.held_since else {
                return false;
            };
            let due = since + PARTIAL_AFTER;
            if due > now {
                next = Some(next.map_or(due, |n: tokio::time::Instant| n.min(due)));
                return true;
            }
            pipe.held_since = None;
            pipe.splitter.take_partial(&mut scratch.lines);
            self.emit(pipe, &mut scratch.lines, &mut scratch.stamped);
            false
        });
        pipes.held = held;
        next
    }

    /// Sends the lines gathered so far to the sink, the tail and
    /// subscribers, and empties `lines`. They end in a line without its
    /// `\n` when a held part of a line is shown early.
    fn emit(&self, pipe: &mut Pipe, lines: &mut Vec<u8>, stamped: &mut Vec<u8>) {
        if lines.is_empty() {
            return;
        }
        let continues = std::mem::replace(&mut pipe.line_open, lines.last() != Some(&b'\n'));
        let time = Timestamp::now();
        let mut report = None;
        match &mut pipe.sink {
            Sink::File(FileSink {
                path,
                max_size,
                backups,
                file,
            }) => {
                let file = file.get_or_insert_with(|| self.shared_file(path, *max_size, *backups));
                let data: &[u8] = if pipe.timestamps {
                    stamped.clear();
                    let stamp = format!("{time:.3}");
                    // The rest of a line shown in part has its stamp already.
                    let rest = if continues {
                        let end = memchr::memchr(b'\n', lines).map_or(lines.len(), |i| i + 1);
                        stamped.extend_from_slice(&lines[..end]);
                        end
                    } else {
                        0
                    };
                    prefix_lines(&lines[rest..], stamp.as_bytes(), stamped);
                    stamped
                } else {
                    lines
                };
                report = Some(locked(file).write(pipe.id, data, self.origin.elapsed()));
            }
            // The daemon's own streams: a failure there has nowhere to be told.
            Sink::Stdout => {
                locked(&self.stdout).write(pipe.id, lines, &mut |d| {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(d).and_then(|()| out.flush());
                });
            }
            Sink::Stderr => {
                locked(&self.stderr).write(pipe.id, lines, &mut |d| {
                    let _ = std::io::stderr().lock().write_all(d);
                });
            }
            Sink::Null => {}
        }
        let mut proc = locked(&pipe.proc);
        proc.written += lines.len() as u64;
        if let Some(report) = report {
            proc.dropped += report.dropped as u64;
            // The file reports each transition once, to whichever pipe (of
            // the processes sharing it) wrote at that moment.
            if let Some(why) = report.started_dropping {
                tracing::warn!(process = %proc.name, stream = ?pipe.stream, error = %why,
                    "log file cannot be written; output is dropped (and counted) until it can");
            } else if report.resumed {
                tracing::warn!(process = %proc.name, stream = ?pipe.stream, dropped_bytes = proc.dropped,
                    "log file writable again; resumed writing");
            }
        }
        let tapped = pipe.tap.as_ref().is_some_and(|t| !t.is_closed());
        if tapped || (!pipe.protocol && self.chunks.receiver_count() > 0) {
            let data: Arc<[u8]> = Arc::from(lines.as_slice());
            proc.tail.push(Chunk {
                time,
                stream: pipe.stream,
                data: data.clone(),
            });
            let name = proc.name.clone();
            drop(proc);
            if let Some(tap) = pipe.tap.as_ref().filter(|_| tapped) {
                let _ = tap.send(TapChunk {
                    name: name.clone(),
                    data: data.clone(),
                });
            }
            if !pipe.protocol {
                let _ = self.chunks.send(LogChunk {
                    name,
                    stream: pipe.stream,
                    time,
                    data,
                    continues,
                });
            }
        } else {
            // Nobody follows: copy only what the tail can keep, not every
            // byte a chatty child writes.
            let keep = last_lines_within(lines, self.tail_bytes);
            proc.tail.push(Chunk {
                time,
                stream: pipe.stream,
                data: Arc::from(keep),
            });
        }
        lines.clear();
    }
}

/// The reader task's registration with tokio; dropping it (also when the
/// runtime shuts down under the task) lets the next attach start a reader.
struct ReaderTask {
    hub: Arc<LogHub>,
    fd: Option<AsyncFd<Registered>>,
}

impl Drop for ReaderTask {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            let mut pipes = locked(&self.hub.pipes);
            drop(fd);
            pipes.reading = false;
        }
    }
}

/// The one task that reads every output pipe. It ends when the last pipe has
/// reached end of file; the next attach starts it again.
async fn read_pipes(hub: Arc<LogHub>, epoll: Arc<Epoll>) {
    let fd = match Registered::register(epoll) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the output pipes");
            locked(&hub.pipes).reading = false;
            return;
        }
    };
    let mut task = ReaderTask { hub, fd: Some(fd) };
    let mut scratch = Scratch::new();
    // When the next held part of a line is due to be shown.
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let Some(fd) = &task.fd else { return };
        let readable = tokio::select! {
            r = fd.readable() => Some(r),
            () = sleep_until(due) => None,
        };
        let mut ready = match readable {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot watch the output pipes");
                return;
            }
            None => {
                due = task.hub.flush_held(&mut scratch);
                continue;
            }
        };
        match task.hub.round(&mut scratch) {
            // Every pipe reported ready was read until it would block, so the
            // inner set is empty but for data that arrived since; such data
            // woke the inner epoll's waiters, which queued a new event for
            // tokio that the clearing below does not lose (tokio only clears
            // the readiness this guard saw).
            Round::Drained => ready.clear_ready(),
            Round::Busy => {
                drop(ready);
                // Let the driver and the rest run between rounds.
                tokio::task::yield_now().await;
            }
        }
        if due.is_none() && !locked(&task.hub.pipes).held.is_empty() {
            due = task.hub.flush_held(&mut scratch);
        }
        let mut pipes = locked(&task.hub.pipes);
        if pipes.open == 0 {
            // Under the lock: an attach from now on sees `reading == false`
            // and starts a new reader, which registers the epoll again.
            task.fd = None;
            pipes.reading = false;
            return;
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
