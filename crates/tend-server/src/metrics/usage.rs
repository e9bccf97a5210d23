//! What a process uses, read from `/proc` at scrape time only (nothing
//! samples in the background).
//!
//! One function, [`read`], so that the engine's own stats (from the
//! process's cgroup, when the engine reports them) can take its place.

use std::sync::OnceLock;

/// CPU, memory and descriptors of one process.
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

/// The usage of `pid` from `/proc/PID/stat` and `/proc/PID/fd`; `None`
/// when it is gone (or `/proc` is not there).
pub fn read(pid: u32) -> Option<Usage> {
    let mut buf = [0u8; 1024];
    let stat = read_small(&format!("/proc/{pid}/stat"), &mut buf)?;
    let mut usage = parse_stat(stat)?;
    usage.open_fds = open_fds(pid);
    Some(usage)
}

/// The number of open descriptors of `pid`. Linux 6.2 and later tell it as
/// the size of `/proc/PID/fd` (one `stat(2)`, where listing the directory
/// costs a `getdents(2)` and a dentry per descriptor: most of a scrape's
/// time with a thousand processes); older kernels say 0 there, and then the
/// directory is listed.
fn open_fds(pid: u32) -> Option<u64> {
    let dir = format!("/proc/{pid}/fd");
    match std::fs::metadata(&dir) {
        Ok(m) if m.len() > 0 => Some(m.len()),
        _ => std::fs::read_dir(&dir).ok().map(|d| d.count() as u64),
    }
}

/// Reads a small file into `buf` with one `read(2)`.
fn read_small<'a>(path: &str, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let n = f.read(buf).ok()?;
    Some(&buf[..n])
}

/// `utime`, `stime` (fields 14 and 15) and `rss` (24) of a `/proc/PID/stat`
/// line. The command name (field 2) may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
fn parse_stat(stat: &[u8]) -> Option<Usage> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After ")": field 3 (state) is the first.
    let mut fields = rest.split_ascii_whitespace();
    let utime: u64 = fields.nth(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let rss: u64 = fields.nth(24 - 16)?.parse().ok()?;
    let (tick, page) = system();
    Some(Usage {
        cpu_seconds: (utime + stime) as f64 / tick as f64,
        resident_bytes: rss.saturating_mul(page),
        open_fds: None,
    })
}

/// Clock ticks per second and the page size.
fn system() -> (u64, u64) {
    static SYSTEM: OnceLock<(u64, u64)> = OnceLock::new();
    *SYSTEM.get_or_init(|| {
        // SAFETY: sysconf only reads a system constant.
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        (
            u64::try_from(tick).ok().filter(|&t| t > 0).unwrap_or(100),
            u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command() {
        let line = b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 123 4096000 300 18446744073709551615\n";
        let u = parse_stat(line).expect("parsed");
        let (tick, page) = system();
        assert_eq!(u.cpu_seconds, 300.0 / tick as f64);
        assert_eq!(u.resident_bytes, 300 * page);
    }

    #[test]
    fn reads_this_process() {
        let u = read(std::process::id()).expect("our own /proc entry");
        assert!(u.resident_bytes > 0);
        assert!(u.open_fds.is_some_and(|n| n >= 3), "{u:?}");
    }

    #[test]
    // A test's own child, waited for by the test (no reaper runs here).
    #[allow(clippy::disallowed_methods)]
    fn counts_the_descriptors_of_a_child() {
        // A child whose descriptors do not change (stdin, stdout, stderr,
        // and whatever the test runner let it inherit).
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
        let counted = open_fds(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(listed >= 3, "{listed}");
        assert_eq!(counted, Some(listed));
        assert!(read(u32::MAX).is_none());
    }
}
