//! Output capture: one reader for every output pipe, and the registry that
//! owns every log file and every in-memory tail.
//!
//! For each run of a process the launcher returns the read ends of its pipes
//! (none for a `null` stream: that is `/dev/null` in the child). They all go
//! into one level-triggered epoll set, which is itself the only thing
//! registered with tokio; one task reads whichever pipes are ready, so a
//! thousand quiet processes cost a slot each in a table and no task, no
//! reactor registration and no buffer. Per pipe, the reader strips escape
//! sequences when asked, splits whole lines, and hands each batch of complete
//! lines to three places: the log file (one `writev(2)` per batch, so lines of
//! processes sharing a file never interleave), the process's bounded tail,
//! and subscribers. It never stops reading because a file cannot be written:
//! the bytes are dropped and counted instead, so a child never blocks for
//! good on a full disk.
//!
//! # The capture path, and why it is built so
//!
//! A chatty child is as fast as its pipe is emptied. Each read asks for
//! [`READ_SIZE`] (128 KiB, one shared buffer for every pipe; larger reads
//! cost more CPU, measured), and a read that returns less than it asked for
//! has emptied the pipe, so it is that pipe's last read of the round (no
//! `EAGAIN` read to find out). A pipe found full (its writer was blocked)
//! grows from 64 KiB to 1 MiB, so the writer runs on while the daemon writes
//! the file, and a round moves up to a megabyte instead of 8 KiB; at most
//! [`MAX_GROWN`] pipes are grown at a
//! time (the kernel charges pipe buffers to the user). The lines are not
//! copied for the file: the completion of the line held from the last read is
//! copied (one line), the rest is written straight from the read buffer in the
//! same `writev`. Only what the tail keeps (its last 64 KiB) is copied, and a
//! copy for subscribers is made only when someone subscribes.
//!
//! A writer slower than the reader (any that makes its lines) would wake the
//! daemon at every write: `yes | head` writes 8 KiB at a time, 24,000 times
//! for 200 MB, and those wake-ups (an epoll report through two sets, a read,
//! a `writev`, two context switches) cost more than the copies. So a pipe
//! read [`STREAK`] times in a row, each within [`QUICK`] of the last, is
//! *held*: its input reports go off (`EPOLL_CTL_MOD`; a hang-up is still
//! reported) for [`HOLD`], 150 µs, on a `timerfd` in the same epoll set
//! (tokio's timer counts in milliseconds). Meanwhile the writer runs on
//! into the pipe without waking anyone (the kernel wakes a reader only when
//! a write finds the pipe empty), and the next read takes what a few dozen
//! writes left, in one round. A held pipe read again at once stays busy and
//! is held again; a pause ends it. Measured on issue 16's writer (one
//! `yes | head -c 200000000`, docs/benchmarks.md): the daemon's CPU from
//! 349-388 ms to 247-252 ms in the same runs (supervisord 385-448 ms), the
//! writer's wall time 1.11-1.16x of `cat`'s against 1.06-1.08x without. The
//! cost: a busy pipe's lines are at most 150 µs later. A pipe that was found
//! full and could not grow is never held: its writer is waiting.
//!
//! # Partial lines
//!
//! A line without its newline (a `Password: ` prompt, a `\r` progress bar) is
//! held by the splitter, and *shown* [`PARTIAL_AFTER`] after its first byte
//! not shown yet was read (as supervisord, which writes every read as it
//! comes, shows it at once; a line written in a few quick pieces stays
//! whole): to subscribers as a chunk marked `partial` (its continuation
//! comes marked `continues`), to the tail as the stream's partial line, and to
//! a log file that is the process's own (no other registered process or
//! stream logs to that path), which gets the bytes as they are and the rest of
//! the line when it comes. A file shared by several streams gets the line only
//! whole, when it ends (or its pipe closes, or it reaches [`MAX_LINE`]): lines
//! of two processes never share a line there, however long one waits for its
//! newline. A timer runs only while some pipe holds bytes not shown yet, so an
//! idle daemon still never wakes.
//!
//! A log file is opened on the first output that goes to it, shared by every
//! pipe writing to the same path, and closed when the last of them ends: a
//! quiet process costs no descriptor and creates no file.
//!
//! When the reaper reports a process's exit, its pipes are read to the end
//! and closed there and then, before anything restarts it: a crash loop can
//! never pile up pipes at end of file, however busy spawning keeps the
//! daemon, and a run's last lines always come before the next run's first.
//!
//! All pipe ends live here (the read ends in `Pipes`, stdin write ends with
//! each process's tail) and all files in the registry: one place to hand over for a
//! re-exec upgrade later.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

// The partial-line timer runs on tokio's clock (virtual time in tests).
use tokio::time::Instant as TokioInstant;

use jiff::Timestamp;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, broadcast, mpsc};

use crate::logs::{
    AnsiStripper, Chunk, LineSplitter, LogFile, Split, Stream, Tail, WriterId, lines, prefix_lines,
};
use crate::model::name::Name;
use crate::model::spec::{LogSpec, LogTarget, ProcessSpec};
use crate::unix::epoll::{self, Epoll, Registered, Timer};

/// A line longer than this without a newline is cut, so a child that never
/// writes `\n` cannot grow the daemon's memory.
const MAX_LINE: usize = 1 << 20;
/// Bytes one `read(2)` asks for: two default pipes' worth, an eighth of a
/// grown one (a round reads a grown pipe in up to eight reads). Measured on
/// issue 16's writer: a reader asking for 32-128 KiB at a time spends a
/// fifth to a quarter less CPU for the same bytes than one asking for
/// 256 KiB or 1 MiB, though most reads return ~11 KiB either way (the copies
/// stay within the core's cache).
const READ_SIZE: usize = 128 * 1024;
/// A pipe's capacity as the kernel makes it (16 pages).
const PIPE_DEFAULT: usize = 64 * 1024;
/// What a pipe found full grows to (the kernel's default `pipe-max-size`).
const PIPE_GROWN: usize = 1 << 20;
/// Pipes grown at a time, at most: 64 MiB of pipe buffers if all were full
/// (a fourth of the default `pipe-user-pages-soft` of an unprivileged user).
pub(crate) const MAX_GROWN: usize = 16;
/// Bytes read from one pipe per round, so one chatty child cannot starve
/// others (one read of a grown pipe).
const BYTES_PER_ROUND: usize = PIPE_GROWN;
/// Ready pipes taken per round; the epoll set hands out the rest next round,
/// oldest first.
const EVENTS: usize = 64;
/// How long a busy pipe is left to fill before it is read again (see "The
/// capture path" above): a tenth of what a grown pipe holds at a writer's
/// full speed here (~740 MB/s), so the writer never waits for it, and far
/// below anything a person watching a log can see. Measured: 100-300 µs save
/// about as much CPU, and the longer holds cost the writer some speed (the
/// pipe's pages pile up instead of being reused).
const HOLD: Duration = Duration::from_micros(150);
/// Reads of a pipe this close together, [`STREAK`] times in a row, make it
/// busy (a hold and the read after it are this close too, so a busy pipe
/// stays held while its writer keeps writing).
const QUICK: Duration = Duration::from_millis(1);
/// Quick reads in a row before a pipe is held.
const STREAK: u8 = 4;
/// Holds due this soon after the timer fired end with it (one wake, not two).
const HOLD_SLACK: Duration = Duration::from_micros(50);
/// The hold timer's token in the epoll set (pipe slots are small numbers).
const TIMER_TOKEN: u64 = u64::MAX;
/// A work buffer that grew past this (long lines) is given back after a round.
const KEEP_CAPACITY: usize = 256 * 1024;
/// A partial line is shown once its first unshown byte has waited this
/// long (however busy or quiet its pipe is).
pub const PARTIAL_AFTER: Duration = Duration::from_millis(100);
/// `Outlet::in_file` of a line the file lost (a failed write removed its
/// start): the rest of it is not written.
const LOST: usize = usize::MAX;

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

/// A batch of output from one stream of one process, as published to
/// subscribers ([`crate::Supervisor::subscribe_logs`]): complete lines,
/// except around a partial line (see "Partial lines" in the module docs).
///
/// Every byte is published once, in order: concatenating the chunks of one
/// stream gives the stream. A line shown before its newline came is a chunk
/// with `partial` set (its data has no newline); the rest of that line
/// starts the next chunk of the stream, which has `continues` set (and may
/// itself be `partial` again: a progress bar).
#[derive(Debug, Clone)]
pub struct LogChunk {
    /// The process.
    pub name: Name,
    /// Which stream.
    pub stream: Stream,
    /// When it was read.
    pub time: Timestamp,
    /// Bytes exactly as written (after escape stripping when the process
    /// asked for it): complete lines, each ending in `\n`, but for the two
    /// flags below.
    pub data: Arc<[u8]>,
    /// `data` ends inside a line (no newline yet): the line goes on in a
    /// later chunk of this stream.
    pub partial: bool,
    /// `data` starts inside a line that an earlier chunk of this stream
    /// began (one marked `partial`).
    pub continues: bool,
}

impl LogChunk {
    /// The lines, without their newlines (a partial one included).
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
    /// A partial line: the newest of its stream, whose newline has not
    /// come yet (a prompt, a progress bar).
    pub partial: bool,
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
    /// The current run's pipes: (epoll slot, writer id), to read them to the
    /// end when it exits.
    pipes: [Option<(usize, WriterId)>; 2],
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

#[derive(Default)]
struct Registry {
    /// Log files that a pipe has written to, by path. Weak: a file is closed
    /// when the last pipe writing to it ends.
    files: HashMap<PathBuf, Weak<Mutex<LogFile>>>,
    procs: HashMap<Name, Arc<Mutex<ProcLog>>>,
    /// Stdout taps by process name; kept across runs (and a remove and an
    /// add again), until untapped or the receiver is gone.
    taps: HashMap<Name, Tap>,
    /// How many streams of registered processes log to each file: a file
    /// with one is that stream's own, and gets its partial lines.
    declared: HashMap<PathBuf, u32>,
    /// The files each registered process declared (to undo it).
    declared_by: HashMap<Name, Vec<PathBuf>>,
}

/// Every output pipe, in one level-triggered epoll set that a single task reads.
#[derive(Default)]
struct Pipes {
    /// Created with the first pipe, then kept.
    epoll: Option<Arc<Epoll>>,
    /// Ends holds; in the epoll set with [`TIMER_TOKEN`], made with it.
    /// Without one (it could not be made), no pipe is held.
    timer: Option<Timer>,
    /// Held pipes, oldest first (so by due time), with when each is due;
    /// the timer is armed for the first while there is one. An entry whose
    /// pipe has gone (or whose slot holds another pipe now) is skipped.
    held: VecDeque<(usize, Instant)>,
    /// Holds so far (a pipe held once per hold).
    holds: u64,
    /// Per-pipe state; the index is the pipe's epoll token; `None` is a free slot.
    slots: Vec<Option<Pipe>>,
    free: Vec<usize>,
    /// Pipes not yet at end of file.
    open: usize,
    /// The reader task is running (or about to).
    reading: bool,
    /// Slots whose pipe may hold a line with bytes not shown yet (a slot may
    /// be listed after its pipe is gone, or twice; checked when used).
    unshown: Vec<usize>,
    /// Pipes grown to [`PIPE_GROWN`] now.
    grown: usize,
    /// The next pipe's writer id (0 is [`LogFile::write`]'s).
    next_id: WriterId,
    /// The reader's buffers, made when first needed.
    scratch: Option<Scratch>,
}

impl Pipes {
    fn insert(&mut self, pipe: Pipe) -> std::io::Result<usize> {
        let epoll = match &mut self.epoll {
            Some(e) => e,
            None => {
                let epoll = Epoll::new()?;
                self.timer = Timer::new()
                    .and_then(|t| epoll.add(t.fd(), TIMER_TOKEN).map(|()| t))
                    .inspect_err(|e| tracing::debug!(error = %e, "no hold timer: busy pipes are read at every write"))
                    .ok();
                self.epoll.insert(Arc::new(epoll))
            }
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
        Ok(slot)
    }

    fn remove(&mut self, slot: usize) -> Option<Pipe> {
        let pipe = self.slots.get_mut(slot)?.take()?;
        if let Some(epoll) = &self.epoll {
            epoll.delete(pipe.fd.as_fd());
        }
        if pipe.grown {
            self.grown -= 1;
        }
        self.free.push(slot);
        self.open -= 1;
        Some(pipe)
    }

    /// When the earliest partial line is due to be shown.
    fn next_show(&self) -> Option<TokioInstant> {
        self.unshown
            .iter()
            .filter_map(|&slot| self.slots.get(slot)?.as_ref()?.show_at())
            .min()
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
    file: Option<Arc<Mutex<LogFile>>>,
}

/// The state of one output pipe between reads.
struct Pipe {
    fd: OwnedFd,
    stripper: Option<AnsiStripper>,
    splitter: LineSplitter,
    /// Where its lines go, and what it knows of its partial line there.
    out: Outlet,
    /// The pipe holds [`PIPE_GROWN`] bytes (else [`PIPE_DEFAULT`]).
    grown: bool,
    /// It was found full and could not grow: its writer waits for every
    /// read, so it is never held.
    cramped: bool,
    /// When the held line first had bytes that are not shown yet.
    unshown_since: Option<TokioInstant>,
    /// When it was last read after a readiness report (the real clock, as
    /// the hold timer's).
    last_read: Option<Instant>,
    /// Reads in a row, each within [`QUICK`] of the one before.
    streak: u8,
    /// Held: its input reports are off until then.
    held_until: Option<Instant>,
}

impl Pipe {
    /// When its held line is due to be shown, if it has unshown bytes.
    fn show_at(&self) -> Option<TokioInstant> {
        Some(self.unshown_since? + PARTIAL_AFTER)
    }
}

/// Where one pipe's lines go.
struct Outlet {
    proc: Arc<Mutex<ProcLog>>,
    stream: Stream,
    timestamps: bool,
    sink: Sink,
    /// A protocol stdout: not published to subscribers.
    protocol: bool,
    /// Where every batch of a tapped stdout also goes.
    tap: Option<Tap>,
    /// Who this pipe is to a shared [`LogFile`].
    id: WriterId,
    /// Bytes of the held line that are in the file already (shown while
    /// the file was this stream's own); [`LOST`]: the file lost that line.
    in_file: usize,
}

/// The reader's buffers, shared by every pipe: one read buffer for all, so a
/// thousand quiet processes cost no buffers at all.
struct Scratch {
    read: Vec<u8>,
    stripped: Vec<u8>,
    stamped: Vec<u8>,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            // Pages are touched only as far as reads fill them.
            read: vec![0; READ_SIZE],
            stripped: Vec::new(),
            stamped: Vec::new(),
        }
    }

    /// Gives back what a burst of long lines made the work buffers grow to.
    fn trim(&mut self) {
        for v in [&mut self.stripped, &mut self.stamped] {
            if v.capacity() > KEEP_CAPACITY {
                *v = Vec::new();
            }
        }
    }
}

enum Read {
    /// Read until it was empty.
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
                    pipes: [None, None],
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

    /// Records the log files `spec` writes to, so that a file only one
    /// stream writes to is known as that stream's own (see "Partial lines").
    pub(crate) fn declare(&self, spec: &ProcessSpec) {
        let (stdout, stderr) = spec.logs.captured();
        let mut paths = Vec::new();
        for (read, target) in [(stdout, &spec.logs.stdout), (stderr, &spec.logs.stderr)] {
            if let (true, LogTarget::File(p)) = (read, target) {
                paths.push(p.clone());
            }
        }
        let mut reg = locked(&self.registry);
        for p in &paths {
            *reg.declared.entry(p.clone()).or_default() += 1;
        }
        if let Some(old) = reg.declared_by.insert(spec.name.clone(), paths) {
            undeclare(&mut reg.declared, old);
        }
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
        let mut slots = [None, None];
        let mut pipes = locked(&self.pipes);
        for (i, (stream, fd, target)) in streams.into_iter().enumerate() {
            let Some(fd) = fd else { continue };
            let sink = match target {
                LogTarget::Null | LogTarget::Memory => Sink::Null,
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
            pipes.next_id += 1;
            let id = pipes.next_id;
            let pipe = Pipe {
                fd,
                stripper: spec.strip_ansi.then(AnsiStripper::new),
                splitter: LineSplitter::new(MAX_LINE),
                out: Outlet {
                    proc: proc.clone(),
                    stream,
                    timestamps: spec.timestamps,
                    sink,
                    protocol: stream == Stream::Stdout && spec.protocol_stdout,
                    tap: (stream == Stream::Stdout).then(|| tap.clone()).flatten(),
                    id,
                    in_file: 0,
                },
                grown: false,
                cramped: false,
                unshown_since: None,
                last_read: None,
                streak: 0,
                held_until: None,
            };
            match pipes.insert(pipe) {
                Ok(slot) => slots[i] = Some((slot, id)),
                Err(e) => {
                    tracing::error!(process = %name, stream = ?stream, error = %e, "cannot read the output pipe")
                }
            }
        }
        // Under the pipes lock (the order is pipes, then a `ProcLog`), so
        // that `exited` finds them.
        locked(&proc).pipes = slots;
        if pipes.open > 0
            && !pipes.reading
            && let Some(epoll) = pipes.epoll.clone()
        {
            pipes.reading = true;
            tokio::spawn(read_pipes(self.clone(), epoll));
        }
    }

    /// The current run of `name` exited: reads its pipes to the end (they are
    /// at end of file unless something it started still holds them) and
    /// closes them, before anything can start it again. Spawning therefore
    /// never outruns the closing of pipes, and a run's last lines come
    /// before the next run's first.
    pub(crate) fn exited(&self, name: &Name) {
        let Some(p) = locked(&self.registry).procs.get(name).cloned() else {
            return;
        };
        let slots = std::mem::take(&mut locked(&p).pipes);
        if slots.iter().all(Option::is_none) {
            return;
        }
        let now = TokioInstant::now();
        let mut pipes = locked(&self.pipes);
        let mut ended = Vec::new();
        {
            let Pipes {
                slots: table,
                scratch,
                grown,
                unshown,
                ..
            } = &mut *pipes;
            let scratch = scratch.get_or_insert_with(Scratch::new);
            for (slot, id) in slots.into_iter().flatten() {
                let Some(Some(pipe)) = table.get_mut(slot) else {
                    continue;
                };
                if pipe.out.id != id {
                    continue;
                }
                // Bounded: the pipe holds at most what it can, and its writer
                // is gone; something that kept it open gets one round.
                match self.read_pipe(pipe, scratch, now, grown, true) {
                    Read::Eof => ended.push(slot),
                    Read::Drained | Read::More => {
                        if pipe.unshown_since.is_some() {
                            unshown.push(slot);
                        }
                    }
                }
            }
        }
        for slot in ended {
            self.end(&mut pipes, slot);
        }
    }

    /// How many times a busy pipe was held so far.
    #[cfg(test)]
    pub(crate) fn holds(&self) -> u64 {
        locked(&self.pipes).holds
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

    /// Forgets a removed process's tail and the files it declared (pipes
    /// still open finish on their own).
    pub(crate) fn forget(&self, name: &Name) {
        let mut reg = locked(&self.registry);
        reg.procs.remove(name);
        if let Some(paths) = reg.declared_by.remove(name) {
            undeclare(&mut reg.declared, paths);
        }
    }

    /// Whether `path` is written by one stream of one registered process
    /// (or by nobody registered any more: a pipe still draining).
    fn is_own(&self, path: &Path) -> bool {
        locked(&self.registry)
            .declared
            .get(path)
            .is_none_or(|&n| n <= 1)
    }

    /// For each of `names`, in their order: the bytes of its output that
    /// could not be written so far, and the bytes read so far (both
    /// streams). Under one lock of the registry: a status of 10,000
    /// processes took 40,000 locks, 20,000 lookups and `Arc` clones.
    pub(crate) fn counts<'a>(&self, names: impl IntoIterator<Item = &'a Name>) -> Vec<(u64, u64)> {
        let reg = locked(&self.registry);
        names
            .into_iter()
            .map(|n| {
                reg.procs.get(n).map_or((0, 0), |p| {
                    let p = locked(p);
                    (p.dropped, p.written)
                })
            })
            .collect()
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
            all.extend(
                got.into_iter()
                    .map(|(time, stream, line, partial)| LogLine {
                        name: name.clone(),
                        stream,
                        time,
                        line,
                        partial,
                    }),
            );
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
        let files: Vec<Arc<Mutex<LogFile>>> = {
            let mut reg = locked(&self.registry);
            reg.files.retain(|_, f| f.strong_count() > 0);
            reg.files.values().filter_map(Weak::upgrade).collect()
        };
        let mut errors = Vec::new();
        for f in files {
            let mut f = locked(&f);
            if let Err(e) = f.reopen() {
                errors.push((f.path().to_path_buf(), e));
            }
        }
        errors
    }

    /// The open file at `path`, shared with every pipe already writing to it.
    fn shared_file(&self, path: &Path, max_size: u64, backups: u32) -> Arc<Mutex<LogFile>> {
        let mut reg = locked(&self.registry);
        if let Some(f) = reg.files.get(path).and_then(Weak::upgrade) {
            return f;
        }
        let f = Arc::new(Mutex::new(LogFile::new(
            path.to_path_buf(),
            max_size,
            backups,
        )));
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
        }) = pipe.out.sink
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
    fn round(&self) -> Round {
        let mut pipes = locked(&self.pipes);
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
        let now = TokioInstant::now();
        let real_now = Instant::now();
        let mut busy = n == EVENTS;
        let mut ended = Vec::new();
        {
            let Pipes {
                epoll,
                timer,
                held,
                holds: count,
                slots,
                scratch,
                grown,
                unshown,
                ..
            } = &mut *pipes;
            let mut holds = Holds {
                epoll: epoll.as_deref(),
                timer: timer.as_ref(),
                held,
                count,
            };
            let scratch = scratch.get_or_insert_with(Scratch::new);
            let mut fired = false;
            for ev in &events[..n] {
                if epoll::token(ev) == TIMER_TOKEN {
                    fired = true;
                    continue;
                }
                let slot = usize::try_from(epoll::token(ev)).unwrap_or(usize::MAX);
                let Some(Some(pipe)) = slots.get_mut(slot) else {
                    continue;
                };
                let had_unshown = pipe.unshown_since.is_some();
                // Hung up: its end of file was reported already, so it must be
                // read to the end now (no event will say so again). A held
                // pipe is reported only so.
                match self.read_pipe(pipe, scratch, now, grown, epoll::hung_up(ev)) {
                    Read::Drained => holds.after_read(pipe, slot, real_now),
                    Read::More => busy = true,
                    Read::Eof => ended.push(slot),
                }
                if !had_unshown && pipe.unshown_since.is_some() {
                    unshown.push(slot);
                }
            }
            if fired {
                holds.release(slots, real_now);
                // The pipes let go report what they hold from the next poll.
                busy = true;
            }
            scratch.trim();
        }
        for slot in ended {
            self.end(&mut pipes, slot);
        }
        if busy { Round::Busy } else { Round::Drained }
    }

    /// A pipe reached its end: the held line goes out with a newline, and
    /// the pipe is closed.
    fn end(&self, pipes: &mut Pipes, slot: usize) {
        let Some(mut pipe) = pipes.remove(slot) else {
            return;
        };
        let stamped = &mut pipes.scratch.get_or_insert_with(Scratch::new).stamped;
        let split = pipe.splitter.finish();
        self.emit(&mut pipe.out, split, stamped);
        pipe.splitter.release();
        locked(&pipe.out.proc).tail.end_partial(pipe.out.stream);
        self.release(pipe);
        if pipes.open == 0 {
            self.drained.notify_waiters();
        }
    }

    /// Reads `pipe` until it is empty (a short read: the read took all there
    /// was), at its end, or after [`BYTES_PER_ROUND`]. With `to_end` a short
    /// read is not enough: only `EAGAIN` or the end is.
    fn read_pipe(
        &self,
        pipe: &mut Pipe,
        scratch: &mut Scratch,
        now: TokioInstant,
        grown: &mut usize,
        to_end: bool,
    ) -> Read {
        let Scratch {
            read,
            stripped,
            stamped,
        } = scratch;
        let mut taken = 0;
        while taken < BYTES_PER_ROUND {
            match epoll::read(pipe.fd.as_fd(), read) {
                Ok(0) => return Read::Eof,
                Ok(n) => {
                    taken += n;
                    if !pipe.grown && n >= PIPE_DEFAULT {
                        if *grown < MAX_GROWN && grow(&pipe.fd) {
                            pipe.grown = true;
                            *grown += 1;
                        } else {
                            pipe.cramped = true;
                        }
                    }
                    let data = &read[..n];
                    let input: &[u8] = match &mut pipe.stripper {
                        Some(s) => {
                            stripped.clear();
                            s.strip_into(data, stripped);
                            stripped
                        }
                        None => data,
                    };
                    let split = pipe.splitter.split(input);
                    let completed = !split.is_empty();
                    self.emit(&mut pipe.out, split, stamped);
                    pipe.unshown_since = if pipe.splitter.unshown() == 0 {
                        None
                    } else if completed {
                        // A new line started.
                        Some(now)
                    } else {
                        pipe.unshown_since.or(Some(now))
                    };
                    if n < read.len() && !to_end {
                        // It took everything there was: the pipe is empty, and
                        // what is written next raises a new event.
                        return Read::Drained;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Read::Drained,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let name = locked(&pipe.out.proc).name.clone();
                    tracing::error!(process = %name, stream = ?pipe.out.stream, error = %e, "reading the output pipe failed");
                    return Read::Eof;
                }
            }
        }
        Read::More
    }

    /// Shows the partial lines that are due (their first unshown byte read
    /// [`PARTIAL_AFTER`] ago or more).
    fn show_due(&self, now: TokioInstant) {
        let mut pipes = locked(&self.pipes);
        let Pipes {
            slots,
            unshown,
            scratch,
            ..
        } = &mut *pipes;
        let stamped = &mut scratch.get_or_insert_with(Scratch::new).stamped;
        unshown.sort_unstable();
        unshown.dedup();
        unshown.retain(|&slot| {
            let Some(Some(pipe)) = slots.get_mut(slot) else {
                return false;
            };
            match pipe.show_at() {
                None => false,
                Some(at) if at <= now => {
                    self.show(pipe, stamped);
                    pipe.unshown_since = None;
                    false
                }
                Some(_) => true,
            }
        });
    }

    /// Shows what `pipe` holds of a line and has not shown yet.
    fn show(&self, pipe: &mut Pipe, stamped: &mut Vec<u8>) {
        let Some(from) = pipe.splitter.show_partial() else {
            return;
        };
        let partial = pipe.splitter.partial();
        let out = &mut pipe.out;
        let time = Timestamp::now();
        if let Sink::File(sink) = &mut out.sink
            && out.in_file != LOST
            && self.is_own(&sink.path)
        {
            let file = sink
                .file
                .get_or_insert_with(|| self.shared_file(&sink.path, sink.max_size, sink.backups));
            let rest = &partial[out.in_file.min(partial.len())..];
            let data: &[u8] = if out.timestamps && out.in_file == 0 {
                stamped.clear();
                prefix_lines(rest, format!("{time:.3}").as_bytes(), stamped);
                stamped
            } else {
                rest
            };
            let report = locked(file).write_from(out.id, &[data], true, self.origin.elapsed());
            out.in_file = if report.dropped > 0 || report.line_lost {
                LOST
            } else {
                partial.len()
            };
            self.account(out, &report);
        }
        let mut proc = locked(&out.proc);
        proc.written += (partial.len() - from.min(partial.len())) as u64;
        proc.tail.set_partial(Chunk {
            time,
            stream: out.stream,
            data: Arc::from(partial),
        });
        let name = proc.name.clone();
        drop(proc);
        if !out.protocol && self.chunks.receiver_count() > 0 {
            let _ = self.chunks.send(LogChunk {
                name,
                stream: out.stream,
                time,
                data: Arc::from(&partial[from..]),
                partial: true,
                continues: from > 0,
            });
        }
    }

    /// Counts what a write dropped and says so once per failure.
    fn account(&self, out: &Outlet, report: &crate::logs::WriteReport) {
        if report.dropped == 0 && !report.resumed && report.started_dropping.is_none() {
            return;
        }
        let mut proc = locked(&out.proc);
        proc.dropped += report.dropped as u64;
        // The file reports each transition once, to whichever pipe (of the
        // processes sharing it) wrote at that moment.
        if let Some(why) = &report.started_dropping {
            tracing::warn!(process = %proc.name, stream = ?out.stream, error = %why,
                "log file cannot be written; output is dropped (and counted) until it can");
        } else if report.resumed {
            tracing::warn!(process = %proc.name, stream = ?out.stream, dropped_bytes = proc.dropped,
                "log file writable again; resumed writing");
        }
    }

    /// Sends the complete lines of `split` to the sink, the tail and
    /// subscribers.
    fn emit(&self, out: &mut Outlet, split: Split<'_>, stamped: &mut Vec<u8>) {
        if split.is_empty() {
            return;
        }
        let time = Timestamp::now();
        let in_file = std::mem::take(&mut out.in_file);
        match &mut out.sink {
            Sink::File(FileSink {
                path,
                max_size,
                backups,
                file,
            }) => {
                let file = file.get_or_insert_with(|| self.shared_file(path, *max_size, *backups));
                // The start of the held line is in the file already (or the
                // file lost it: then none of that line goes in).
                let (head, lost) = match in_file {
                    LOST => {
                        let end = memchr::memchr(b'\n', split.head).map_or(0, |k| k + 1);
                        (&split.head[end..], end)
                    }
                    k => (&split.head[k.min(split.head.len())..], 0),
                };
                let report = if out.timestamps {
                    stamped.clear();
                    let stamp = format!("{time:.3}");
                    stamp_lines(
                        head,
                        in_file > 0 && in_file != LOST,
                        split.body,
                        stamp.as_bytes(),
                        stamped,
                    );
                    locked(file).write_from(out.id, &[stamped], false, self.origin.elapsed())
                } else {
                    locked(file).write_from(
                        out.id,
                        &[head, split.body],
                        false,
                        self.origin.elapsed(),
                    )
                };
                let mut report = report;
                report.dropped += lost;
                self.account(out, &report);
            }
            // The daemon's own streams: a failure there has nowhere to be told.
            Sink::Stdout => {
                let mut o = std::io::stdout().lock();
                let _ = o
                    .write_all(split.head)
                    .and_then(|()| o.write_all(split.body));
            }
            Sink::Stderr => {
                let mut o = std::io::stderr().lock();
                let _ = o
                    .write_all(split.head)
                    .and_then(|()| o.write_all(split.body));
            }
            Sink::Null => {}
        }
        let mut proc = locked(&out.proc);
        // Counted once: the part of the line shown before was counted then.
        proc.written +=
            (split.head.len() - split.shown.min(split.head.len()) + split.body.len()) as u64;
        proc.tail.end_partial(out.stream);
        let tapped = out.tap.as_ref().is_some_and(|t| !t.is_closed());
        let published = !out.protocol && self.chunks.receiver_count() > 0;
        let whole = (tapped || published).then(|| concat(&[split.head, split.body]));
        let kept = match &whole {
            Some(data) => data.clone(),
            // Nobody follows: copy only what the tail can keep, not every
            // byte a chatty child writes.
            None => tail_part(split.head, split.body, self.tail_bytes),
        };
        proc.tail.push(Chunk {
            time,
            stream: out.stream,
            data: kept,
        });
        let name = proc.name.clone();
        drop(proc);
        let Some(data) = whole else { return };
        if let Some(tap) = out.tap.as_ref().filter(|_| tapped) {
            let _ = tap.send(TapChunk {
                name: name.clone(),
                data: data.clone(),
            });
        }
        if published {
            let shown = split.shown.min(split.head.len());
            let data = if shown == 0 {
                data
            } else {
                Arc::from(&data[shown..])
            };
            let _ = self.chunks.send(LogChunk {
                name,
                stream: out.stream,
                time,
                data,
                partial: false,
                continues: shown > 0,
            });
        }
    }
}

/// Takes back what a removed process declared.
fn undeclare(declared: &mut HashMap<PathBuf, u32>, paths: Vec<PathBuf>) {
    for p in paths {
        if let Some(n) = declared.get_mut(&p) {
            *n -= 1;
            if *n == 0 {
                declared.remove(&p);
            }
        }
    }
}

/// The holds of busy pipes, for one round: see "The capture path" in the
/// module docs.
struct Holds<'a> {
    epoll: Option<&'a Epoll>,
    timer: Option<&'a Timer>,
    held: &'a mut VecDeque<(usize, Instant)>,
    count: &'a mut u64,
}

impl Holds<'_> {
    /// `pipe` (in `slot`) was read until it was empty, at `now`: if it has
    /// been read quickly [`STREAK`] times in a row, its input reports go off
    /// for [`HOLD`], so that what its writer writes meanwhile is read in one
    /// go instead of a wake-up per write.
    fn after_read(&mut self, pipe: &mut Pipe, slot: usize, now: Instant) {
        if pipe.held_until.is_some() {
            return;
        }
        let quick = pipe
            .last_read
            .is_some_and(|t| now.saturating_duration_since(t) < QUICK);
        pipe.streak = if quick {
            pipe.streak.saturating_add(1)
        } else {
            0
        };
        pipe.last_read = Some(now);
        if pipe.streak < STREAK || pipe.cramped {
            return;
        }
        let (Some(epoll), Some(timer)) = (self.epoll, self.timer) else {
            return;
        };
        if self.held.is_empty() && timer.arm(HOLD).is_err() {
            return;
        }
        if epoll.watch(pipe.fd.as_fd(), slot as u64, false).is_err() {
            return;
        }
        let due = now + HOLD;
        pipe.held_until = Some(due);
        self.held.push_back((slot, due));
        *self.count += 1;
    }

    /// The timer fired: the pipes due by `now` (or within [`HOLD_SLACK`])
    /// report their input again, and the timer is armed for the next.
    fn release(&mut self, slots: &mut [Option<Pipe>], now: Instant) {
        let (Some(epoll), Some(timer)) = (self.epoll, self.timer) else {
            return;
        };
        timer.clear();
        let mut all = false;
        while let Some(&(slot, due)) = self.held.front() {
            if !all && due > now + HOLD_SLACK {
                if timer.arm(due - now).is_ok() {
                    break;
                }
                // No timer for the rest: let them all go now, rather than
                // leave a writer blocked.
                all = true;
            }
            self.held.pop_front();
            let Some(Some(pipe)) = slots.get_mut(slot) else {
                continue;
            };
            if pipe.held_until != Some(due) {
                continue;
            }
            pipe.held_until = None;
            if let Err(e) = epoll.watch(pipe.fd.as_fd(), slot as u64, true) {
                let name = locked(&pipe.out.proc).name.clone();
                tracing::error!(process = %name, stream = ?pipe.out.stream, error = %e, "cannot watch the output pipe again; it is read when its writer closes it");
            }
        }
    }
}

/// Grows a pipe found full to [`PIPE_GROWN`]; false if the kernel says no
/// (the user's pipe buffers are over `pipe-user-pages-soft`, or
/// `pipe-max-size` is smaller).
fn grow(fd: &OwnedFd) -> bool {
    let size = libc::c_int::try_from(PIPE_GROWN).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_SETPIPE_SZ on a pipe we own; no pointers.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size) >= 0 }
}

/// `parts`, concatenated into one shared buffer (one allocation, one copy).
fn concat(parts: &[&[u8]]) -> Arc<[u8]> {
    let len = parts.iter().map(|p| p.len()).sum();
    // Not zeroed first: the buffer is written once, straight from the parts
    // (a zero-fill cost as much as the copy itself on a chatty child).
    let mut out = Arc::<[u8]>::new_uninit_slice(len);
    let Some(buf) = Arc::get_mut(&mut out) else {
        unreachable!("a new Arc has no other owner")
    };
    let mut at = 0;
    for p in parts {
        let dst = &mut buf[at..at + p.len()];
        // SAFETY: `dst` is `p.len()` bytes of a buffer no one else holds,
        // and it cannot overlap `p` (it was allocated just now).
        // (`write_copy_of_slice` says this safely from Rust 1.93, above our
        // MSRV.)
        unsafe {
            std::ptr::copy_nonoverlapping(p.as_ptr(), dst.as_mut_ptr().cast::<u8>(), p.len())
        };
        at += p.len();
    }
    debug_assert_eq!(at, len);
    // SAFETY: the parts' lengths sum to `len`, so the loop wrote every byte.
    unsafe { out.assume_init() }
}

/// The last complete lines of `head` + `body` that fit in `limit` bytes
/// (at least the last line), copied once.
fn tail_part(head: &[u8], body: &[u8], limit: usize) -> Arc<[u8]> {
    if body.len() >= limit || head.is_empty() {
        return Arc::from(last_lines_within(body, limit));
    }
    if head.len() + body.len() <= limit {
        return concat(&[head, body]);
    }
    let room = limit - body.len();
    concat(&[last_lines_within(head, room), body])
}

/// Prefixes the lines of `head` + `body` with `stamp` into `out`; with
/// `continues`, the first line of `head` is the rest of a line that was
/// stamped when it began, and is not stamped again.
fn stamp_lines(head: &[u8], continues: bool, body: &[u8], stamp: &[u8], out: &mut Vec<u8>) {
    let head = if continues {
        let end = memchr::memchr(b'\n', head).map_or(head.len(), |k| k + 1);
        out.extend_from_slice(&head[..end]);
        &head[end..]
    } else {
        head
    };
    prefix_lines(head, stamp, out);
    prefix_lines(body, stamp, out);
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
/// reached end of file; the next attach starts it again. Besides readiness
/// it waits for one timer, only while a partial line waits to be shown.
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
    let show = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(show);
    let mut armed: Option<TokioInstant> = None;
    loop {
        let Some(fd) = &task.fd else { return };
        let due = locked(&task.hub.pipes).next_show();
        if due != armed {
            if let Some(at) = due {
                show.as_mut().reset(at);
            }
            armed = due;
        }
        let ready = tokio::select! {
            r = fd.readable() => Some(r),
            () = &mut show, if armed.is_some() => None,
        };
        match ready {
            None => {
                armed = None;
                task.hub.show_due(TokioInstant::now());
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot watch the output pipes");
                return;
            }
            Some(Ok(mut ready)) => match task.hub.round() {
                // Every pipe reported ready was read until it was empty, so the
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
            },
        }
        let mut pipes = locked(&task.hub.pipes);
        if pipes.open == 0 {
            // Under the lock: an attach from now on sees `reading == false`
            // and starts a new reader, which registers the epoll again.
            task.fd = None;
            pipes.reading = false;
            // Quiet again: the buffers go (a megabyte for a busy pipe).
            pipes.scratch = None;
            pipes.unshown.clear();
            return;
        }
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
