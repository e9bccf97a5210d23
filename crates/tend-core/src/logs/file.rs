//! An append-only log file with Supervisor's rotation, reopen and drop
//! accounting.
//!
//! Writes go straight to the file with `write(2)` (no buffering in user
//! space), so a reader such as `tail -f` sees whole lines as soon as
//! [`LogFile::write`] returns. A file that cannot be written never stops the
//! caller: the data is dropped and counted, and writing is tried again later.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Mode of a log file tend creates (before the umask): the owner writes, the
/// group reads (the `adm` convention), others see nothing, because a
/// program's output often holds things such as tokens or user data.
/// An existing file keeps its mode.
pub const FILE_MODE: u32 = 0o640;
/// Mode of directories created to hold a log file (before the umask).
pub const DIR_MODE: u32 = 0o755;
/// After a failure, (re)opening is tried at most this often.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How often, at most, a write looks at the open file (`fstat`) to see it
/// removed or truncated by someone else. A busy pipe is written thousands of
/// times a second; one look per interval is enough to follow an operator.
pub const LOOK_INTERVAL: Duration = Duration::from_millis(10);

/// What one [`LogFile::write`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Bytes of this write that are in the file.
    pub written: usize,
    /// Bytes dropped because the file could not be written: the rest of this
    /// write, and the start of a line that earlier writes had left open
    /// (removed again so that the file holds whole lines only).
    pub dropped: usize,
    /// Why writing fails, set once when it starts failing (the first failure,
    /// or the first since writing last worked), so the caller can log it once.
    pub started_dropping: Option<String>,
    /// Writing works again after a failure that was reported through
    /// `started_dropping`.
    pub resumed: bool,
    /// The line this writer had left open in the file is not there any more
    /// (a failed write removed it): the rest of that line must not follow.
    pub line_lost: bool,
}

/// Who writes a line: each writer of a shared file has a number of its own.
/// [`LogFile::write`] writes as writer 0.
pub type WriterId = u64;

/// The writer of a line that a failed write broke and that could not be
/// removed: whoever writes next starts a new line first.
const BROKEN: WriterId = WriterId::MAX;

/// The file ends inside a line.
#[derive(Debug, Clone, Copy)]
struct OpenLine {
    /// Who continues it.
    writer: WriterId,
    /// Its offset in the file.
    start: u64,
}

/// An append-only log file, rotated by size the way Supervisor does it.
///
/// Rotation: before a write, if the file is not empty and the write would take
/// it past `max_size` bytes, the file is rotated first: `f.N-1` becomes `f.N`,
/// ..., `f.1` becomes `f.2`, `f` becomes `f.1`, and a new `f` is created; with
/// `N = backups`, the old `f.N` is replaced (deleted). Only the run of
/// consecutive backups starting at `f.1` is shifted, stopping at the first
/// missing one, so a hole is filled instead of renaming stale files above it.
/// With `backups = 0` the file is truncated in place (as Supervisor does).
/// A file therefore never exceeds `max_size` unless a single write is bigger
/// than `max_size` (such a write goes whole into a fresh file), or a line is
/// open: a file is rotated only between lines. `max_size = 0` never rotates,
/// nor does a path that is not a regular file (a FIFO, `/dev/stdout`).
///
/// Lines: a write is whole lines, except that a writer may leave its last
/// line open ([`LogFile::write_from`] with `open_end`, for a partial line
/// shown before its newline came) and continue it with its next write. A
/// write by anyone else while a line is open first ends that line with a
/// `\n`, so two writers' bytes never share a line.
///
/// Failures (ENOSPC, EIO, EACCES, a directory that is gone, a rotation that
/// cannot rename): the data of that write is dropped and counted, and what it
/// had written of a line that did not end is cut off again (`ftruncate` back
/// to the end of the last whole line, together with an open line's start),
/// so a full disk never leaves a torn line to be glued to the next one. Then
/// the file is closed, and later writes reopen the path (creating the
/// directories again) at most once per [`RETRY_INTERVAL`], dropping their
/// data in between without a syscall. Should the cut fail too, the next write
/// starts with a `\n`. A file removed while open (`st_nlink == 0`) is noticed
/// before the first write `LOOK_INTERVAL` after the last look and
/// recreated, under the same limit. A file renamed
/// away (logrotate) is not noticed: call [`LogFile::reopen`].
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Option<File>,
    /// Bytes in the file (its length, refreshed with `fstat` before a write
    /// at most once per [`LOOK_INTERVAL`]).
    size: u64,
    /// When `fstat` last looked at the open file.
    looked: Option<Duration>,
    /// The open file is a regular file (the only kind that is rotated).
    regular: bool,
    max_size: u64,
    backups: u32,
    dropped: u64,
    /// Why the last attempt failed, while writing does not work.
    error: Option<String>,
    /// `error` was handed out as `started_dropping` and not yet resolved.
    reported: bool,
    /// When the file was last opened by `write`, or when writing last failed.
    last_attempt: Option<Duration>,
    /// The file ends inside this line.
    open: Option<OpenLine>,
}

/// Why a write did not (fully) happen.
struct Failed {
    /// Bytes of the write left in the file.
    written: usize,
    /// Bytes of earlier writes cut off with it (an open line's start).
    cut_earlier: u64,
    why: String,
}

impl LogFile {
    /// Opens `path` in append mode, creating it ([`FILE_MODE`]) and its parent
    /// directories ([`DIR_MODE`]) when missing. The size starts at the file's
    /// current length.
    ///
    /// An open failure is not fatal: the file starts in the "dropping" state
    /// ([`LogFile::error`] says why) and the next write tries again.
    pub fn open(path: PathBuf, max_size: u64, backups: u32) -> Self {
        let mut f = LogFile::new(path, max_size, backups);
        if let Err(e) = f.open_file() {
            f.error = Some(f.describe("cannot open", &e));
        }
        f
    }

    /// A log file for `path` that is not opened (nor created) yet: the first
    /// [`LogFile::write`] opens it as [`LogFile::open`] would, and
    /// [`LogFile::reopen`] leaves it alone until then. No syscall.
    pub fn new(path: PathBuf, max_size: u64, backups: u32) -> Self {
        LogFile {
            path,
            file: None,
            size: 0,
            regular: false,
            max_size,
            backups,
            dropped: 0,
            error: None,
            reported: false,
            last_attempt: None,
            looked: None,
            open: None,
        }
    }

    /// Writes `data` (complete lines) with one `write(2)` when possible, rotating first when
    /// needed. Never blocks on a retry delay and never panics; see the type's documentation for
    /// what happens on errors. `now` is a monotonic time (any origin) that rate-limits reopening.
    pub fn write(&mut self, data: &[u8], now: Duration) -> WriteReport {
        self.write_from(0, &[data], false, now)
    }

    /// Writes `parts`, in order, with one `writev(2)` when possible, for
    /// `writer`: whole lines, but with `open_end` the last line has no `\n`
    /// yet and `writer`'s next write continues it. A line another writer left
    /// open is ended first. Otherwise as [`LogFile::write`].
    pub fn write_from(
        &mut self,
        writer: WriterId,
        parts: &[&[u8]],
        open_end: bool,
        now: Duration,
    ) -> WriteReport {
        let mut report = WriteReport::default();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len == 0 {
            return report;
        }
        let continuing = self.open.is_some_and(|o| o.writer == writer);
        match self.try_write(writer, parts, len, open_end, now) {
            Ok(()) => {
                report.written = len;
                self.error = None;
                report.resumed = std::mem::take(&mut self.reported);
            }
            Err(Failed {
                written,
                cut_earlier,
                why,
            }) => {
                report.written = written;
                report.dropped = len - written + usize::try_from(cut_earlier).unwrap_or(0);
                report.line_lost = continuing || open_end;
                self.dropped += report.dropped as u64;
                if !self.reported {
                    self.reported = true;
                    report.started_dropping = Some(why.clone());
                }
                self.error = Some(why);
            }
        }
        report
    }

    fn try_write(
        &mut self,
        writer: WriterId,
        parts: &[&[u8]],
        len: usize,
        open_end: bool,
        now: Duration,
    ) -> Result<(), Failed> {
        let failed = |written, why| Failed {
            written,
            cut_earlier: 0,
            why,
        };
        let look = self
            .looked
            .is_none_or(|t| now.checked_sub(t).is_none_or(|d| d >= LOOK_INTERVAL));
        if let Some(f) = self.file.as_ref().filter(|_| look) {
            self.looked = Some(now);
            match f.metadata() {
                Ok(m) if m.nlink() == 0 => {
                    self.file = None;
                    self.error = Some(format!("{} was removed", self.path.display()));
                }
                Ok(m) => self.size = m.len(),
                // Keep counting ourselves; the write will tell if the file is broken.
                Err(_) => {}
            }
        }
        if self.file.is_none() {
            let due = self
                .last_attempt
                .is_none_or(|t| now.checked_sub(t).is_none_or(|d| d >= RETRY_INTERVAL));
            if !due {
                let why = self
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("cannot write to {}", self.path.display()));
                return Err(failed(0, why));
            }
            self.last_attempt = Some(now);
            if let Err(e) = self.open_file() {
                return Err(failed(0, self.describe("cannot open", &e)));
            }
        }
        let continuing = self.open.filter(|o| o.writer == writer);
        let end_other = self.open.is_some() && continuing.is_none();
        if self.open.is_none()
            && self.regular
            && self.max_size > 0
            && self.size > 0
            && self.size.saturating_add(len as u64) > self.max_size
            && let Err(e) = self.rotate()
        {
            self.fail(now);
            return Err(failed(0, self.describe("cannot rotate", &e)));
        }
        let newline: &[u8] = if end_other { b"\n" } else { b"" };
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len() + 1);
        slices.extend(
            std::iter::once(newline)
                .chain(parts.iter().copied())
                .filter(|p| !p.is_empty())
                .map(IoSlice::new),
        );
        let total = newline.len() + len;
        let before = self.size;
        let mut done = 0;
        let mut rest = &mut slices[..];
        while done < total {
            let Some(file) = self.file.as_mut() else {
                // rotate() always leaves a file open on success; this is defensive.
                self.fail(now);
                return Err(failed(0, format!("{} is not open", self.path.display())));
            };
            let e = match file.write_vectored(rest) {
                Ok(0) => io::Error::from(io::ErrorKind::WriteZero),
                Ok(n) => {
                    done += n;
                    self.size += n as u64;
                    IoSlice::advance_slices(&mut rest, n);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            let why = self.describe("cannot write to", &e);
            let (kept, cut_earlier) = self.cut_torn(newline, parts, before, done, continuing);
            self.fail(now);
            return Err(Failed {
                written: kept,
                cut_earlier,
                why,
            });
        }
        self.open = if open_end {
            let start = match last_newline(newline, parts) {
                Some(at) => before + at + 1,
                None => continuing.map_or(before, |o| o.start),
            };
            Some(OpenLine { writer, start })
        } else {
            None
        };
        Ok(())
    }

    /// After a write failed with `done` bytes of `newline` + `parts` in the
    /// file, cuts the file back to its last whole line (removing the start of
    /// a line this write continued too). Returns the bytes of `parts` kept,
    /// and the bytes of earlier writes removed.
    fn cut_torn(
        &mut self,
        newline: &[u8],
        parts: &[&[u8]],
        before: u64,
        done: usize,
        continuing: Option<OpenLine>,
    ) -> (usize, u64) {
        let end = before + done as u64;
        let whole = last_newline_within(newline, parts, done).map(|at| before + at + 1);
        let cut = match (whole, continuing) {
            (Some(at), _) => at,
            (None, Some(o)) => o.start,
            (None, None) => before,
        };
        let kept_of_write = |cut: u64| {
            usize::try_from(cut.saturating_sub(before))
                .unwrap_or(usize::MAX)
                .saturating_sub(newline.len())
        };
        if cut >= end {
            // What was written ends a line (or nothing was written at all,
            // and the file is as it was).
            if done > 0 {
                self.open = None;
            }
            return (kept_of_write(end), 0);
        }
        let truncated = self.file.as_ref().is_some_and(|f| f.set_len(cut).is_ok());
        if truncated {
            self.size = cut;
            self.open = None;
            (kept_of_write(cut), before.saturating_sub(cut))
        } else {
            // The torn bytes stay: whoever writes next ends their line first.
            self.open = Some(OpenLine {
                writer: BROKEN,
                start: 0,
            });
            (kept_of_write(end), 0)
        }
    }

    /// Closes the file after a failure; the next attempt waits [`RETRY_INTERVAL`].
    fn fail(&mut self, now: Duration) {
        self.file = None;
        self.last_attempt = Some(now);
    }

    fn describe(&self, what: &str, e: &io::Error) -> String {
        format!("{what} {}: {e}", self.path.display())
    }

    fn open_file(&mut self) -> io::Result<()> {
        self.file = None;
        if let Some(dir) = self.path.parent()
            && !dir.as_os_str().is_empty()
        {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)?;
        }
        let open = |read: bool| {
            OpenOptions::new()
                .read(read)
                .append(true)
                .create(true)
                .mode(FILE_MODE)
                .open(&self.path)
        };
        // Readable too, to see how the file ends; write-only when that is
        // all we may do.
        let file = match open(true) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => open(false)?,
            r => r?,
        };
        let meta = file.metadata()?;
        self.size = meta.len();
        // A file that does not end with a newline (a line torn by a crash, or
        // cut by a failure we could not undo) gets one before our first line.
        self.open = (meta.is_file() && self.size > 0 && !ends_with_newline(&file, self.size))
            .then_some(OpenLine {
                writer: BROKEN,
                start: 0,
            });
        self.regular = meta.is_file();
        self.file = Some(file);
        Ok(())
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.backups == 0 {
            if let Some(f) = &self.file {
                f.set_len(0)?;
            }
            self.size = 0;
            return Ok(());
        }
        let mut run = 0;
        while run + 1 < self.backups && self.numbered(run + 1).symlink_metadata().is_ok() {
            run += 1;
        }
        for n in (1..=run).rev() {
            ignore_missing(std::fs::rename(self.numbered(n), self.numbered(n + 1)))?;
        }
        ignore_missing(std::fs::rename(&self.path, self.numbered(1)))?;
        self.open_file()
    }

    /// Closes and reopens the path (for logrotate users: SIGUSR2 / `tend logs --reopen`).
    /// On failure the file is in the "dropping" state and writes retry as usual.
    /// A file made with [`LogFile::new`] and never written is left alone (not
    /// created): its first write opens it anyway.
    pub fn reopen(&mut self) -> io::Result<()> {
        if self.file.is_none() && self.error.is_none() && self.last_attempt.is_none() {
            return Ok(());
        }
        self.open_file().inspect_err(|e| {
            self.error = Some(self.describe("cannot open", e));
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Total bytes dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes in the file as of the last write (or open).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Why the file cannot be written, while that is so.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Whether the byte before `size` is a newline (and can be read).
fn ends_with_newline(file: &File, size: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut last = [0u8; 1];
    // A file opened for appending only cannot be read: assume it is whole.
    !matches!(file.read_at(&mut last, size - 1), Ok(1) if last[0] != b'\n')
}

/// The offset of the last `\n` in `newline` + `parts`.
fn last_newline(newline: &[u8], parts: &[&[u8]]) -> Option<u64> {
    let total: usize = newline.len() + parts.iter().map(|p| p.len()).sum::<usize>();
    last_newline_within(newline, parts, total)
}

/// The offset of the last `\n` in the first `limit` bytes of `newline` + `parts`.
fn last_newline_within(newline: &[u8], parts: &[&[u8]], limit: usize) -> Option<u64> {
    let mut at = 0usize;
    let mut found = None;
    for p in std::iter::once(newline).chain(parts.iter().copied()) {
        if at >= limit {
            break;
        }
        let seen = &p[..p.len().min(limit - at)];
        if let Some(k) = memchr::memrchr(b'\n', seen) {
            found = Some((at + k) as u64);
        }
        at += p.len();
    }
    found
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    const T0: Duration = Duration::from_secs(100);

    fn ms(n: u64) -> Duration {
        T0 + Duration::from_millis(n)
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
    }

    fn line(i: u32) -> Vec<u8> {
        format!("{i:03}\n").into_bytes()
    }

    fn ok(r: WriteReport, n: usize) {
        assert_eq!(
            r,
            WriteReport {
                written: n,
                ..Default::default()
            }
        );
    }

    #[test]
    fn appends_to_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        fs::write(&p, "old\n").unwrap();
        let mut f = LogFile::open(p.clone(), 0, 3);
        assert_eq!(f.size(), 4);
        assert_eq!(f.error(), None);
        ok(f.write(b"new\n", T0), 4);
        assert_eq!(f.size(), 8);
        assert_eq!(read(&p), "old\nnew\n");
        assert_eq!(f.path(), p);
    }

    #[test]
    fn new_creates_nothing_until_the_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/app.log");
        let mut f = LogFile::new(p.clone(), 0, 3);
        assert_eq!((f.size(), f.error()), (0, None));
        f.reopen().unwrap();
        assert!(!p.exists() && !dir.path().join("sub").exists());
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(&p, "old\n").unwrap();
        ok(f.write(b"new\n", T0), 4);
        assert_eq!(f.size(), 8);
        assert_eq!(read(&p), "old\nnew\n");
        // Once opened, reopen works as for any file.
        fs::remove_file(&p).unwrap();
        f.reopen().unwrap();
        assert_eq!(read(&p), "");
    }

    #[test]
    fn new_reports_a_failure_on_the_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("blocker");
        fs::write(&blocker, "a file\n").unwrap();
        let mut f = LogFile::new(blocker.join("app.log"), 0, 0);
        let r = f.write(b"one\n", T0);
        assert_eq!(r.dropped, 4);
        assert!(
            r.started_dropping
                .is_some_and(|m| m.contains("cannot open"))
        );
        // Tried and failed: reopen tries again (and fails again).
        assert!(f.reopen().is_err());
    }

    #[test]
    fn creates_parent_directories_with_modes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/app.log");
        let mut f = LogFile::open(p.clone(), 0, 3);
        ok(f.write(b"x\n", T0), 2);
        assert_eq!(read(&p), "x\n");
        let mode = fs::metadata(&p).unwrap().mode() & 0o777;
        // The umask may only remove bits.
        assert_eq!(mode & !FILE_MODE, 0, "mode {mode:o}");
        assert_eq!(mode & 0o600, 0o600);
    }

    #[test]
    fn rotation_with_backups() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let mut f = LogFile::open(p.clone(), 10, 2);
        let name = |n: u32| dir.path().join(format!("app.log.{n}"));
        // Lines of 4 bytes, files of at most 10: two lines per file.
        for i in 1..=4 {
            ok(f.write(&line(i), T0), 4);
        }
        assert_eq!(read(&p), "003\n004\n");
        assert_eq!(read(&name(1)), "001\n002\n");
        assert!(!name(2).exists());
        ok(f.write(&line(5), T0), 4);
        assert_eq!(read(&p), "005\n");
        assert_eq!(f.size(), 4);
        assert_eq!(read(&name(1)), "003\n004\n");
        assert_eq!(read(&name(2)), "001\n002\n");
        for i in 6..=7 {
            ok(f.write(&line(i), T0), 4);
        }
        // The oldest (001, 002) is gone; nothing beyond .2.
        assert_eq!(read(&p), "007\n");
        assert_eq!(read(&name(1)), "005\n006\n");
        assert_eq!(read(&name(2)), "003\n004\n");
        assert!(!name(3).exists());
        assert_eq!(f.dropped(), 0);
    }

    #[test]
    fn rotation_limits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let name = |n: u32| dir.path().join(format!("app.log.{n}"));
        // Exactly max_size fits.
        let mut f = LogFile::open(p.clone(), 8, 5);
        ok(f.write(b"0123456\n", T0), 8);
        assert!(!name(1).exists());
        // A write bigger than max_size goes whole into a fresh file...
        ok(f.write(b"a big write of many bytes\n", T0), 26);
        assert_eq!(read(&name(1)), "0123456\n");
        assert_eq!(read(&p), "a big write of many bytes\n");
        // ...and the next write rotates it away.
        ok(f.write(b"z\n", T0), 2);
        assert_eq!(read(&p), "z\n");
        assert_eq!(read(&name(1)), "a big write of many bytes\n");
        assert_eq!(read(&name(2)), "0123456\n");
        // The size of an existing file counts.
        drop(f);
        let mut f = LogFile::open(p.clone(), 3, 5);
        assert_eq!(f.size(), 2);
        ok(f.write(b"y\n", T0), 2);
        assert_eq!(read(&p), "y\n");
        assert_eq!(read(&name(1)), "z\n");
        assert_eq!(read(&name(3)), "0123456\n");
    }

    #[test]
    fn rotation_fills_a_hole_and_keeps_stale_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let name = |n: u32| dir.path().join(format!("app.log.{n}"));
        fs::write(name(1), "one\n").unwrap();
        fs::write(name(3), "three\n").unwrap();
        fs::write(&p, "cur\n").unwrap();
        let mut f = LogFile::open(p.clone(), 4, 5);
        ok(f.write(b"new\n", T0), 4);
        assert_eq!(read(&p), "new\n");
        assert_eq!(read(&name(1)), "cur\n");
        assert_eq!(read(&name(2)), "one\n");
        assert_eq!(read(&name(3)), "three\n");
        assert!(!name(4).exists());
    }

    #[test]
    fn zero_backups_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let mut f = LogFile::open(p.clone(), 10, 0);
        for i in 1..=3 {
            ok(f.write(&line(i), T0), 4);
        }
        assert_eq!(read(&p), "003\n");
        assert_eq!(f.size(), 4);
        assert!(!dir.path().join("app.log.1").exists());
    }

    #[test]
    fn zero_max_size_never_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let mut f = LogFile::open(p.clone(), 0, 3);
        for i in 1..=100 {
            ok(f.write(&line(i), T0), 4);
        }
        assert_eq!(f.size(), 400);
        assert!(!dir.path().join("app.log.1").exists());
    }

    #[test]
    fn reopen_after_logrotate_renamed_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let moved = dir.path().join("app.log.moved");
        let mut f = LogFile::open(p.clone(), 0, 0);
        ok(f.write(b"a\n", T0), 2);
        fs::rename(&p, &moved).unwrap();
        // Until reopened, writes follow the open file (as with Supervisor).
        ok(f.write(b"b\n", T0), 2);
        assert!(!p.exists());
        f.reopen().unwrap();
        assert_eq!(f.size(), 0);
        ok(f.write(b"c\n", T0), 2);
        assert_eq!(read(&moved), "a\nb\n");
        assert_eq!(read(&p), "c\n");
    }

    #[test]
    fn a_removed_file_is_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let mut f = LogFile::open(p.clone(), 0, 0);
        ok(f.write(b"a\n", ms(0)), 2);
        fs::remove_file(&p).unwrap();
        ok(f.write(b"b\n", ms(10)), 2);
        assert_eq!(read(&p), "b\n");
        // Removed again within a second of that reopen: dropped until a
        // second has passed, then recreated.
        fs::remove_file(&p).unwrap();
        let r = f.write(b"c\n", ms(500));
        assert_eq!((r.written, r.dropped), (0, 2));
        assert!(
            r.started_dropping
                .as_deref()
                .is_some_and(|m| m.contains("was removed")),
            "{r:?}"
        );
        assert!(!p.exists());
        let r = f.write(b"d\n", ms(1010));
        assert_eq!(
            r,
            WriteReport {
                written: 2,
                resumed: true,
                ..Default::default()
            }
        );
        assert_eq!(read(&p), "d\n");
        assert_eq!(f.dropped(), 2);
    }

    #[test]
    fn drops_under_a_non_directory_then_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("blocker");
        fs::write(&blocker, "i am a file\n").unwrap();
        let p = blocker.join("sub/app.log");
        let mut f = LogFile::open(p.clone(), 0, 0);
        let why = f.error().map(str::to_owned).unwrap();
        assert!(
            why.contains("cannot open") && why.contains("blocker/sub/app.log"),
            "{why}"
        );

        // The first write tries again, fails, and reports once.
        let r = f.write(b"one\n", ms(0));
        assert_eq!((r.written, r.dropped, r.resumed), (0, 4, false));
        assert!(
            r.started_dropping
                .is_some_and(|m| m.contains("cannot open"))
        );
        // Further failures are counted but not reported again.
        let r = f.write(b"two\n", ms(1000));
        assert_eq!(
            r,
            WriteReport {
                dropped: 4,
                ..Default::default()
            }
        );
        // Fixed, but the last attempt was less than a second ago: still dropped.
        fs::remove_file(&blocker).unwrap();
        let r = f.write(b"three\n", ms(1500));
        assert_eq!(
            r,
            WriteReport {
                dropped: 6,
                ..Default::default()
            }
        );
        assert!(f.error().is_some());
        let r = f.write(b"four\n", ms(2000));
        assert_eq!(
            r,
            WriteReport {
                written: 5,
                resumed: true,
                ..Default::default()
            }
        );
        assert_eq!(read(&p), "four\n");
        assert_eq!(f.dropped(), 14);
        assert_eq!(f.error(), None);
        // Working again: no more reports.
        ok(f.write(b"five\n", ms(2001)), 5);
    }

    #[test]
    fn failed_rotation_drops_and_retries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let mut f = LogFile::open(p.clone(), 4, 1);
        ok(f.write(b"abc\n", ms(0)), 4);
        // A directory where the backup must go: the rename fails.
        let one = dir.path().join("app.log.1");
        fs::create_dir(&one).unwrap();
        fs::write(one.join("x"), "x").unwrap();
        let r = f.write(b"def\n", ms(0));
        assert_eq!(r.dropped, 4);
        assert!(
            r.started_dropping
                .is_some_and(|m| m.contains("cannot rotate"))
        );
        fs::remove_dir_all(&one).unwrap();
        let r = f.write(b"ghi\n", ms(1000));
        assert_eq!(
            r,
            WriteReport {
                written: 4,
                resumed: true,
                ..Default::default()
            }
        );
        assert_eq!(read(&p), "ghi\n");
        assert_eq!(read(&one), "abc\n");
    }

    #[test]
    fn reopen_failure_then_success() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        let p = sub.join("app.log");
        let mut f = LogFile::open(p.clone(), 0, 0);
        ok(f.write(b"a\n", ms(0)), 2);
        fs::remove_dir_all(&sub).unwrap();
        fs::write(&sub, "now a file").unwrap();
        assert!(f.reopen().is_err());
        assert!(f.error().is_some());
        let r = f.write(b"b\n", ms(10));
        assert_eq!(r.dropped, 2);
        assert!(r.started_dropping.is_some());
        fs::remove_file(&sub).unwrap();
        f.reopen().unwrap();
        let r = f.write(b"c\n", ms(20));
        assert_eq!(
            r,
            WriteReport {
                written: 2,
                resumed: true,
                ..Default::default()
            }
        );
        assert_eq!(read(&p), "c\n");
    }

    /// Root ignores directory permissions. As root, this thread's file
    /// accesses are `nobody`'s (its filesystem uid and gid, which are per
    /// thread, so other tests are not affected) until this is dropped.
    struct FsUser(Option<(u32, u32)>);

    impl FsUser {
        /// `nobody` as root (after giving it `owned`), else nothing to do.
        fn nobody_if_root(owned: &Path) -> FsUser {
            if !nix::unistd::geteuid().is_root() {
                return FsUser(None);
            }
            let nobody = nix::unistd::User::from_name("nobody")
                .unwrap()
                .expect("user nobody exists");
            nix::unistd::chown(owned, Some(nobody.uid), Some(nobody.gid)).unwrap();
            // SAFETY: plain system calls; they change only this thread.
            let (uid, gid) = unsafe {
                (
                    libc::setfsgid(nobody.gid.as_raw()),
                    libc::setfsuid(nobody.uid.as_raw()),
                )
            };
            FsUser(Some((
                u32::try_from(uid).unwrap(),
                u32::try_from(gid).unwrap(),
            )))
        }
    }

    impl Drop for FsUser {
        fn drop(&mut self) {
            if let Some((uid, gid)) = self.0 {
                // SAFETY: as above; back to root's filesystem ids.
                unsafe {
                    libc::setfsuid(uid);
                    libc::setfsgid(gid);
                }
            }
        }
    }

    #[test]
    fn drops_in_a_read_only_directory() {
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        // The temp dir is 0700: whoever writes must be able to enter it.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let _user = FsUser::nobody_if_root(&ro);
        let p = ro.join("app.log");
        let mut f = LogFile::open(p.clone(), 0, 0);
        let r = f.write(b"one\n", ms(0));
        assert_eq!(r.dropped, 4);
        assert!(
            r.started_dropping
                .is_some_and(|m| m.contains("ermission denied"))
        );
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
        let r = f.write(b"two\n", ms(1000));
        assert_eq!(
            r,
            WriteReport {
                written: 4,
                resumed: true,
                ..Default::default()
            }
        );
        assert_eq!(read(&p), "two\n");
    }

    #[test]
    fn an_open_line_is_continued_by_its_writer_and_ended_for_another() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let mut f = LogFile::open(p.clone(), 0, 0);
        // Writer 1 shows a prompt, then finishes its line.
        ok(f.write_from(1, &[b"Password: "], true, T0), 10);
        assert_eq!(read(&p), "Password: ");
        ok(f.write_from(1, &[b"***", b"\nnext\n"], false, T0), 9);
        assert_eq!(read(&p), "Password: ***\nnext\n");
        // Writer 1 leaves a line open; writer 2's line does not join it.
        ok(f.write_from(1, &[b"10%"], true, T0), 3);
        ok(f.write_from(2, &[b"other\n"], false, T0), 6);
        assert_eq!(read(&p), "Password: ***\nnext\n10%\nother\n");
        // A file that does not end with a newline when opened (a crash
        // tore its last line) gets one before the first line.
        fs::write(&p, "torn").unwrap();
        let mut f = LogFile::open(p.clone(), 0, 0);
        ok(f.write(b"whole\n", T0), 6);
        assert_eq!(read(&p), "torn\nwhole\n");
    }

    #[test]
    fn a_file_is_rotated_only_between_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        let mut f = LogFile::open(p.clone(), 10, 1);
        ok(f.write_from(1, &[b"12345678"], true, T0), 8);
        // Past max_size, but the line is open: it ends in this file.
        ok(f.write_from(1, &[b"9abc\n"], false, T0), 5);
        assert_eq!(read(&p), "123456789abc\n");
        ok(f.write(b"next\n", T0), 5);
        assert_eq!(read(&p), "next\n");
        assert_eq!(read(&dir.path().join("app.log.1")), "123456789abc\n");
    }

    /// Unmounts when dropped, so a failing test leaves no mount behind.
    struct Mount(PathBuf);

    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = nix::mount::umount(&self.0);
        }
    }

    /// A tmpfs of `size` (`"64k"`) mounted in a new temporary directory,
    /// unmounted when the guard drops; `None` after a counted skip (not
    /// root, or no tmpfs here).
    fn small_tmpfs(size: &str) -> Option<(tempfile::TempDir, PathBuf, Mount)> {
        if !tend_testkit::require_root("mounting a small tmpfs") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        // Not `mount(8)`: a reaper in another test of this binary may take
        // the exit status of any child.
        let flags = nix::mount::MsFlags::empty();
        let data = format!("size={size}");
        if let Err(e) = nix::mount::mount(
            Some("tmpfs"),
            &mnt,
            Some("tmpfs"),
            flags,
            Some(data.as_str()),
        ) {
            tend_testkit::require(false, format_args!("cannot mount a tmpfs here: {e}"));
            return None;
        }
        Some((dir, mnt.clone(), Mount(mnt)))
    }

    #[test]
    fn drops_on_a_full_disk() {
        let Some((_dir, mnt, _guard)) = small_tmpfs("64k") else {
            return;
        };
        let p = mnt.join("app.log");
        let mut f = LogFile::open(p.clone(), 0, 0);
        let chunk = [b"x".repeat(999), b"\n".to_vec()].concat();
        let (mut written, mut dropped, mut reports) = (0, 0, 0);
        let mut first_failure = None;
        for i in 0..200u64 {
            let r = f.write(&chunk, ms(i));
            assert!(!r.resumed);
            assert_eq!(r.written + r.dropped, chunk.len());
            written += r.written;
            dropped += r.dropped;
            if let Some(m) = r.started_dropping {
                assert!(m.contains("No space left on device"), "{m}");
                reports += 1;
                first_failure.get_or_insert(i);
            }
        }
        assert_eq!(reports, 1);
        // 64 KiB hold 65 writes of 1000 bytes and part of the 66th, which is
        // cut off again: the file ends with a whole line.
        assert_eq!(first_failure, Some(65));
        assert_eq!(written, 65 * 1000);
        assert_eq!(dropped as u64, f.dropped());
        assert_eq!(fs::metadata(&p).unwrap().len(), written as u64);
        assert!(fs::read(&p).unwrap().ends_with(b"x\n"));
        // Free the space (as if an operator deleted it): writing resumes once
        // the retry delay has passed.
        fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        let r = f.write(&chunk, ms(199));
        assert_eq!(r.dropped, chunk.len());
        let r = f.write(&chunk, ms(199 + 1000));
        assert_eq!(
            r,
            WriteReport {
                written: chunk.len(),
                resumed: true,
                ..Default::default()
            }
        );
        assert_eq!(fs::metadata(&p).unwrap().len(), chunk.len() as u64);
    }

    /// The line a full disk cut off is not glued to the first line written
    /// once there is room again, also when it was a line left open.
    #[test]
    fn a_full_disk_leaves_only_whole_lines() {
        let Some((_dir, mnt, _guard)) = small_tmpfs("16k") else {
            return;
        };
        let p = mnt.join("app.log");
        let mut f = LogFile::open(p.clone(), 0, 0);
        // 16 KiB: 16 lines of 1000 bytes fit, with 384 bytes to spare.
        let line = [b"y".repeat(999), b"\n".to_vec()].concat();
        for _ in 0..16 {
            ok(f.write(&line, ms(0)), 1000);
        }
        // A prompt left open, then its end and more lines: the disk fills
        // inside them, and both the open line and the torn one go.
        ok(f.write_from(7, &[b"Password: "], true, ms(1)), 10);
        let more = [b"***".to_vec(), b"z".repeat(999), b"\n".to_vec()].concat();
        let r = f.write_from(7, &[&more], false, ms(2));
        assert!(r.line_lost, "{r:?}");
        assert_eq!((r.written, r.dropped), (0, more.len() + 10));
        let data = fs::read(&p).unwrap();
        assert_eq!(data.len(), 16_000);
        assert!(data.ends_with(b"y\n"));
        // Room again: the next line starts a line of its own.
        fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        let r = f.write_from(7, &[b"after\n"], false, ms(2000));
        assert_eq!((r.written, r.resumed), (6, true));
        assert_eq!(fs::read(&p).unwrap(), b"after\n");
    }
}
