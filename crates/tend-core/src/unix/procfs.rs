//! `/proc`: the one reader of what a process uses (CPU, memory, threads,
//! descriptors), for the engine's stats (processes without a cgroup),
//! `GET /v1/resources` and `GET /metrics`.
//!
//! A scrape reads this for a thousand processes at once, so every read is
//! cheap:
//!
//! - `/proc` is opened once ([`ProcFs::shared`], one descriptor for the
//!   daemon's life) and every file is opened relative to it (`openat` of
//!   `PID/stat`: a path walk of two components, not three from `/`);
//! - the path is written into a stack buffer and the file read into one
//!   (one `read(2)`), and the line is parsed in place: nothing is
//!   allocated per process;
//! - one file gives CPU, resident memory and threads (`/proc/PID/stat`;
//!   its `rss` is the same count as `statm`'s resident pages and
//!   `status`'s `VmRSS`), and the descriptors are the size of
//!   `/proc/PID/fd` (one `fstatat`, Linux 6.2 and later; the directory is
//!   listed on older kernels, which say 0 there). `/proc/PID/status` is
//!   read only for the peak (`VmHWM`), which the metrics do not expose.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

/// The fields of a `/proc/PID/stat` line tend uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    /// User CPU time, in clock ticks (field 14).
    pub utime: u64,
    /// System CPU time, in clock ticks (field 15).
    pub stime: u64,
    /// Threads (field 20).
    pub threads: u64,
    /// When it started, in clock ticks after boot (field 22).
    pub start_ticks: u64,
    /// Resident memory, in pages (field 24).
    pub rss_pages: u64,
}

impl Stat {
    /// The fields of one `/proc/PID/stat` line. The command name (field 2)
    /// may hold spaces and parentheses, so the fields are counted from its
    /// last `)`. Nothing is allocated.
    ///
    /// ```
    /// use tend_core::unix::procfs::Stat;
    /// let line = b"7 ((a) b)) S 1 7 7 0 -1 0 0 0 0 0 250 50 0 0 20 0 3 0 99 4096 12 0\n";
    /// let st = Stat::parse(line).expect("parsed");
    /// assert_eq!((st.utime, st.stime, st.threads, st.start_ticks, st.rss_pages), (250, 50, 3, 99, 12));
    /// ```
    pub fn parse(line: &[u8]) -> Option<Stat> {
        let close = line.iter().rposition(|&b| b == b')')?;
        let mut st = Stat::default();
        // The first field after ")" is field 3 (state).
        let mut n = 3;
        for field in line[close + 1..]
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty())
        {
            let slot = match n {
                14 => &mut st.utime,
                15 => &mut st.stime,
                20 => &mut st.threads,
                22 => &mut st.start_ticks,
                24 => &mut st.rss_pages,
                _ => {
                    n += 1;
                    continue;
                }
            };
            *slot = number(field)?;
            if n == 24 {
                return Some(st);
            }
            n += 1;
        }
        None
    }

    /// User and system CPU time, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.utime.saturating_add(self.stime)
    }
}

/// A decimal number, without allocating (`None` for anything else or an
/// overflow).
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// What `GET /metrics` shows of a process: CPU, memory and descriptors.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// Open file descriptors (`None` when `/proc/PID/fd` cannot be read,
    /// as for another user's process when the daemon is not root).
    pub open_fds: Option<u64>,
}

/// `/proc`, opened once. Every method reads now (nothing is cached but the
/// directory and two system constants) and answers `None` when the process
/// is gone or `/proc` is not there.
#[derive(Debug)]
pub struct ProcFs {
    dir: Option<OwnedFd>,
    ticks: u64,
    page: u64,
}

impl ProcFs {
    /// The daemon's `/proc` reader, opened on first use and kept.
    pub fn shared() -> &'static ProcFs {
        static SHARED: OnceLock<ProcFs> = OnceLock::new();
        SHARED.get_or_init(ProcFs::open)
    }

    /// A reader of `/proc` (one that answers nothing when `/proc` cannot
    /// be opened).
    pub fn open() -> ProcFs {
        // SAFETY: the path is a NUL-terminated constant; the result is
        // checked before it is owned.
        let fd = unsafe {
            libc::open(
                c"/proc".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        let dir = if fd >= 0 {
            // SAFETY: `fd` was just opened and is owned by nothing else.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        } else {
            tracing::debug!(error = %io::Error::last_os_error(), "cannot open /proc");
            None
        };
        // SAFETY: sysconf only reads a system constant.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        ProcFs {
            dir,
            ticks: u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100),
            page: u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096),
        }
    }

    /// Clock ticks per second (the unit of [`Stat`]'s times).
    pub fn ticks_per_second(&self) -> u64 {
        self.ticks
    }

    /// The page size (the unit of [`Stat::rss_pages`]).
    pub fn page_size(&self) -> u64 {
        self.page
    }

    /// `/proc/PID/stat`.
    pub fn stat(&self, pid: u32) -> Option<Stat> {
        let mut buf = [0u8; 2048];
        Stat::parse(self.read(pid, b"stat", &mut buf)?)
    }

    /// Resident memory of `pid`, in bytes.
    pub fn resident_bytes(&self, pid: u32) -> Option<u64> {
        self.stat(pid)
            .map(|s| s.rss_pages.saturating_mul(self.page))
    }

    /// The most resident memory `pid` had at once (`VmHWM` of
    /// `/proc/PID/status`), in bytes.
    pub fn peak_bytes(&self, pid: u32) -> Option<u64> {
        // VmHWM is among the first lines; a longer file is cut short.
        let mut buf = [0u8; 4096];
        let status = self.read(pid, b"status", &mut buf)?;
        let line = status
            .split(|&b| b == b'\n')
            .find_map(|l| l.strip_prefix(b"VmHWM:"))?;
        let kb = line
            .split(|b| b.is_ascii_whitespace())
            .find(|f| !f.is_empty())?;
        number(kb).map(|kb| kb.saturating_mul(1024))
    }

    /// Open descriptors of `pid`: the size of `/proc/PID/fd` (one stat,
    /// where listing it costs a `getdents(2)` and a dentry per descriptor);
    /// older kernels than 6.2 say 0 there, and then it is listed.
    pub fn open_fds(&self, pid: u32) -> Option<u64> {
        let dir = self.dir.as_ref()?;
        let mut path = [0u8; 32];
        let p = pid_path(&mut path, pid, b"fd")?;
        // SAFETY: an all-zero `stat` is valid; fstatat fills it in.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `dir` is an open directory, `p` NUL-terminated, `st`
        // writable.
        let rc = unsafe { libc::fstatat(dir.as_raw_fd(), p.as_ptr(), &mut st, 0) };
        if rc != 0 {
            return None;
        }
        match u64::try_from(st.st_size) {
            Ok(n) if n > 0 => Some(n),
            _ => std::fs::read_dir(format!("/proc/{pid}/fd"))
                .ok()
                .map(|d| d.count() as u64),
        }
    }

    /// CPU, memory and descriptors of `pid`: one `/proc/PID/stat` and one
    /// stat of `/proc/PID/fd`.
    pub fn usage(&self, pid: u32) -> Option<Usage> {
        let st = self.stat(pid)?;
        Some(Usage {
            cpu_seconds: st.cpu_ticks() as f64 / self.ticks as f64,
            resident_bytes: st.rss_pages.saturating_mul(self.page),
            open_fds: self.open_fds(pid),
        })
    }

    /// Reads `/proc/PID/LEAF` into `buf` with one `read(2)` (the kernel
    /// writes a small `/proc` file whole).
    fn read<'a>(&self, pid: u32, leaf: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
        let dir = self.dir.as_ref()?;
        let mut path = [0u8; 32];
        let p = pid_path(&mut path, pid, leaf)?;
        let fd = open_at(dir.as_raw_fd(), p)?;
        // SAFETY: `fd` is open, `buf` writable for its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let n = usize::try_from(n).ok()?;
        Some(&buf[..n])
    }
}

fn open_at(dir: RawFd, path: &CStr) -> Option<OwnedFd> {
    // SAFETY: `dir` is an open directory and `path` NUL-terminated; the
    // result is checked before it is owned.
    let fd = unsafe {
        libc::openat(
            dir,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY,
        )
    };
    // SAFETY: a descriptor openat just returned, owned by nothing else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `PID/LEAF` and a NUL in `buf`.
fn pid_path<'a>(buf: &'a mut [u8; 32], pid: u32, leaf: &[u8]) -> Option<&'a CStr> {
    let mut digits = [0u8; 10];
    let mut n = pid;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = &digits[i..];
    let len = digits.len() + 1 + leaf.len();
    if len >= buf.len() {
        return None;
    }
    buf[..digits.len()].copy_from_slice(digits);
    buf[digits.len()] = b'/';
    buf[digits.len() + 1..len].copy_from_slice(leaf);
    buf[len] = 0;
    CStr::from_bytes_with_nul(&buf[..=len]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_the_last_parenthesis() {
        // A command `(a) b)`: spaces and parentheses of its own.
        let line = b"4242 ((a) b)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 123 4096000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let st = Stat::parse(line).expect("parsed");
        assert_eq!(
            st,
            Stat {
                utime: 250,
                stime: 50,
                threads: 7,
                start_ticks: 123,
                rss_pages: 300,
            }
        );
        assert_eq!(st.cpu_ticks(), 300);
    }

    #[test]
    fn a_bad_line_is_none_not_a_panic() {
        assert_eq!(Stat::parse(b""), None);
        assert_eq!(Stat::parse(b"1 (x"), None);
        assert_eq!(Stat::parse(b"1 (x) S 1 2 3"), None);
        let bad = b"1 (x) S 1 1 1 0 -1 0 0 0 0 0 2x0 50 0 0 20 0 1 0 1 1 1\n";
        assert_eq!(Stat::parse(bad), None);
        let huge = b"1 (x) S 1 1 1 0 -1 0 0 0 0 0 99999999999999999999999 50 0 0 20 0 1 0 1 1 1\n";
        assert_eq!(Stat::parse(huge), None);
    }

    #[test]
    fn paths_are_written_without_allocating() {
        let mut buf = [0u8; 32];
        assert_eq!(
            pid_path(&mut buf, 0, b"stat").map(CStr::to_bytes),
            Some(&b"0/stat"[..])
        );
        assert_eq!(
            pid_path(&mut buf, u32::MAX, b"fd").map(CStr::to_bytes),
            Some(&b"4294967295/fd"[..])
        );
        assert_eq!(pid_path(&mut buf, 1, &[b'x'; 40]), None);
    }

    #[test]
    fn reads_this_process() {
        let proc = ProcFs::open();
        let me = std::process::id();
        let st = proc.stat(me).expect("our own /proc/PID/stat");
        assert!(
            st.threads >= 1 && st.rss_pages > 0 && st.start_ticks > 0,
            "{st:?}"
        );
        // The same count as statm's resident pages (both are the kernel's
        // get_mm_rss); it moves a little between two reads.
        let statm = std::fs::read_to_string(format!("/proc/{me}/statm")).expect("statm");
        let resident: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("resident pages");
        assert!(st.rss_pages.abs_diff(resident) < 1024, "{st:?} {statm}");
        let u = proc.usage(me).expect("usage");
        assert!(u.resident_bytes > 0 && u.cpu_seconds >= 0.0, "{u:?}");
        let listed = std::fs::read_dir("/proc/self/fd").expect("fd").count() as u64;
        let fds = u.open_fds.expect("descriptors");
        assert!(fds >= 3 && fds.abs_diff(listed) <= 4, "{fds} {listed}");
        assert!(proc.peak_bytes(me).is_some_and(|b| b >= 4096));
        assert_eq!(proc.stat(u32::MAX), None);
        assert_eq!(proc.usage(u32::MAX), None);
        assert_eq!(proc.open_fds(u32::MAX), None);
    }

    #[test]
    // A test's own child, waited for by the test (no reaper runs here).
    #[allow(clippy::disallowed_methods)]
    fn counts_the_descriptors_of_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let listed = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
            .expect("its fd directory")
            .count() as u64;
        let counted = ProcFs::shared().open_fds(child.id());
        let st = ProcFs::shared().stat(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(listed >= 3, "{listed}");
        assert_eq!(counted, Some(listed));
        assert_eq!(st.map(|s| s.threads), Some(1));
    }
}
