//! The synchronous pieces of the log pipeline: pure transformations of bytes,
//! and [`LogFile`], which writes and rotates files (and so does I/O).
//!
//! A process's output goes through these, in this order, once per read from
//! its pipe:
//!
//! ```text
//! raw pipe bytes (one read(2), up to 1 MiB)
//!   -> AnsiStripper       (only with `strip_ansi`; state kept across reads)
//!   -> LineSplitter       (a partial last line waits for the next read, or is
//!                          shown 100 ms after its first byte)
//!   -> complete lines: the held line's completion (copied) + a slice of the read
//!        -> prefix_lines  (only with `timestamps`) -> LogFile (one writev(2), rotation)
//!        -> the same lines without timestamps      -> Tail and subscribers
//! ```
//!
//! Everything works on whole chunks: `memchr` scans, no copy of the read for
//! the file (the lines after the first are a slice of the read buffer), no
//! allocation per line. None of it reads a clock
//! or knows about tokio: times are arguments. The reader of the pipes, which
//! calls these, lives in [`crate::runtime`].

mod ansi;
mod file;
mod lines;
mod tail;

pub use file::{DIR_MODE, FILE_MODE, LogFile, RETRY_INTERVAL, WriteReport, WriterId};
pub use tail::Stream;

pub(crate) use ansi::AnsiStripper;
pub(crate) use lines::{LineSplitter, Split, count_lines, lines};
pub(crate) use tail::{Chunk, Tail};

use memchr::memchr_iter;

/// Prefixes every line of `lines` (complete lines) with `stamp` and a space, appending to `out`.
///
/// A last line without a `\n` is prefixed too and left without one.
pub(crate) fn prefix_lines(lines: &[u8], stamp: &[u8], out: &mut Vec<u8>) {
    out.reserve(lines.len() + count_lines(lines) * (stamp.len() + 1));
    let mut start = 0;
    for nl in memchr_iter(b'\n', lines) {
        out.extend_from_slice(stamp);
        out.push(b' ');
        out.extend_from_slice(&lines[start..=nl]);
        start = nl + 1;
    }
    if start < lines.len() {
        out.extend_from_slice(stamp);
        out.push(b' ');
        out.extend_from_slice(&lines[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn prefixes_every_line() {
        let mut out = b"kept ".to_vec();
        prefix_lines(b"a\n\nbc\r\n", b"T", &mut out);
        assert_eq!(out, b"kept T a\nT \nT bc\r\n");
        let mut out = Vec::new();
        prefix_lines(b"a\nb", b"2024-01-01T00:00:00Z", &mut out);
        assert_eq!(out, b"2024-01-01T00:00:00Z a\n2024-01-01T00:00:00Z b");
        let mut out = Vec::new();
        prefix_lines(b"", b"T", &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn the_pieces_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let mut file = LogFile::open(path.clone(), 0, 0);
        let mut tail = Tail::new(1024);
        let mut strip = AnsiStripper::new();
        let mut split = LineSplitter::new(1024);
        let (mut stripped, mut lines_buf, mut stamped) = (Vec::new(), Vec::new(), Vec::new());
        let reads: [&[u8]; 4] = [
            b"\x1b[32mok\x1b",
            b"[0m one\ntw",
            b"o\n\x1b]0;t\x07three",
            b"",
        ];
        for (i, read) in reads.iter().enumerate() {
            stripped.clear();
            strip.strip_into(read, &mut stripped);
            split.feed(&stripped, &mut lines_buf);
            if i == reads.len() - 1 {
                split.finish().append_to(&mut lines_buf);
            }
            if lines_buf.is_empty() {
                continue;
            }
            stamped.clear();
            prefix_lines(&lines_buf, format!("t{i}").as_bytes(), &mut stamped);
            assert_eq!(file.write(&stamped, Duration::ZERO).dropped, 0);
            let time = jiff::Timestamp::from_second(i as i64).unwrap();
            tail.push(Chunk {
                time,
                stream: Stream::Stdout,
                data: Arc::from(lines_buf.as_slice()),
            });
            lines_buf.clear();
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"t1 ok one\nt2 two\nt3 three\n"
        );
        let got: Vec<Vec<u8>> = tail
            .last_lines(10, None, None)
            .into_iter()
            .map(|l| l.2)
            .collect();
        assert_eq!(
            got,
            [b"ok one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }

    fn cpu_time() -> Duration {
        let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF);
        usage.map_or(Duration::ZERO, |u| {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
            };
            t(u.user_time()) + t(u.system_time())
        })
    }

    /// `cargo test --release -p tend-core logs::tests::throughput -- --ignored --nocapture`
    ///
    /// Pushes 200 MB of 100-byte lines, in 64 KiB reads, through the stripper,
    /// the splitter, the timestamp prefix, a log file (rotating at 50 MB) and a
    /// tail, and prints the rate and the CPU time (user + system, this process,
    /// which runs nothing else meanwhile).
    #[test]
    #[ignore = "benchmark; run with --release --ignored --nocapture"]
    fn throughput() {
        const TOTAL: usize = 200 * 1000 * 1000;
        const READ: usize = 64 * 1024;
        // Lines of 100 bytes with some colour, so the stripper has work.
        let mut source = Vec::with_capacity(READ * 2);
        let mut i = 0u64;
        while source.len() < READ * 2 {
            let mut l =
                format!("\x1b[32mINFO\x1b[0m request {i:>10} served in 12ms path=/api/v1/items");
            l.truncate(99);
            while l.len() < 99 {
                l.push('.');
            }
            l.push('\n');
            source.extend_from_slice(l.as_bytes());
            i += 1;
        }
        let reads: Vec<&[u8]> = source.chunks(READ).filter(|c| c.len() == READ).collect();

        let runs = [
            ("strip+split+tail (no file)", true, false, false),
            ("split+file+tail", false, false, true),
            ("strip+split+file+tail", true, false, true),
            ("strip+split+stamp+file+tail", true, true, true),
        ];
        // Each twice: the first run to a fresh file also pays for the kernel
        // finding free pages, which says more about the machine than the code.
        for (label, do_strip, do_stamp, do_file) in runs.into_iter().flat_map(|r| [r, r]) {
            let dir = tempfile::tempdir().unwrap();
            let mut file = LogFile::open(dir.path().join("bench.log"), 50 * 1000 * 1000, 2);
            let mut tail = Tail::new(1 << 20);
            let mut strip = AnsiStripper::new();
            let mut split = LineSplitter::new(1 << 20);
            let (mut stripped, mut lines_buf, mut stamped) = (Vec::new(), Vec::new(), Vec::new());
            let (cpu0, wall0) = (cpu_time(), Instant::now());
            let mut fed = 0;
            let mut n = 0;
            while fed < TOTAL {
                let read = reads[n % reads.len()];
                n += 1;
                fed += read.len();
                let input: &[u8] = if do_strip {
                    stripped.clear();
                    strip.strip_into(read, &mut stripped);
                    &stripped
                } else {
                    read
                };
                split.feed(input, &mut lines_buf);
                let data: &[u8] = if do_stamp {
                    stamped.clear();
                    prefix_lines(&lines_buf, b"2026-01-01T00:00:00.000Z", &mut stamped);
                    &stamped
                } else {
                    &lines_buf
                };
                if do_file {
                    let r = file.write(data, wall0.elapsed());
                    assert_eq!(r.dropped, 0, "{r:?}");
                }
                let time = jiff::Timestamp::UNIX_EPOCH;
                tail.push(Chunk {
                    time,
                    stream: Stream::Stdout,
                    data: Arc::from(lines_buf.as_slice()),
                });
                lines_buf.clear();
            }
            let (cpu, wall) = (cpu_time().saturating_sub(cpu0), wall0.elapsed());
            let mb = fed as f64 / 1e6;
            eprintln!(
                "{label:>28}: {mb:.0} MB in {:.3} s wall, {:.3} s CPU: {:.0} MB/s",
                wall.as_secs_f64(),
                cpu.as_secs_f64(),
                mb / wall.as_secs_f64()
            );
        }
    }
}
