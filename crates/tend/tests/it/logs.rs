//! Output capture end to end: files, rotation, reopen, `tend logs`, the
//! foreground view and tend's own log.

// The follower of `tend logs -f` is a child this test waits for.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Daemon, TestEnv};

const LONG: Duration = Duration::from_secs(30);

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

fn text(path: &Path) -> String {
    String::from_utf8_lossy(&read(path)).into_owned()
}

impl Daemon {
    fn logs_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.logs_dir().join(name)
    }

    /// Waits until the file at `path` holds exactly `want`.
    fn wait_content(&mut self, path: &Path, want: &[u8]) {
        let what = format!(
            "{} to hold {:?}",
            path.display(),
            String::from_utf8_lossy(want)
        );
        self.wait_for(&what, LONG, |_| read(path) == want);
    }

    /// `tend ARGS...` with its stdout as bytes.
    fn raw_stdout(&self, args: &[&str]) -> Vec<u8> {
        let out = self.command(args).output().expect("run tend");
        assert!(
            out.status.success(),
            "tend {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

#[test]
fn lines_of_two_processes_never_interleave_in_a_shared_file() {
    const LINES: usize = 2000;
    const LEN: usize = 3000;
    let script = |c: char| {
        format!(
            "command = [\"sh\", \"-c\", \"line=$(head -c {LEN} /dev/zero | tr '\\\\0' {c}); yes \\\"$line\\\" | head -n {LINES}\"]\nrestart = \"never\"\nlogs.stdout = \"shared.log\"\n"
        )
    };
    let mut d = Daemon::start(&format!(
        "[process.a]\n{}\n[process.b]\n{}",
        script('a'),
        script('b')
    ));
    let shared = d.file("shared.log");
    let total = 2 * LINES * (LEN + 1);
    d.wait_for("both writers' output in the file", LONG, |_| {
        std::fs::metadata(&shared).map_or(0, |m| m.len()) as usize >= total
    });
    let data = read(&shared);
    assert_eq!(data.len(), total);
    let (line_a, line_b) = ("a".repeat(LEN), "b".repeat(LEN));
    let (mut a, mut b) = (0, 0);
    for (i, line) in data.split(|&c| c == b'\n').enumerate() {
        if line == line_a.as_bytes() {
            a += 1;
        } else if line == line_b.as_bytes() {
            b += 1;
        } else if !line.is_empty() || i != 2 * LINES {
            panic!(
                "line {i} is torn: {} bytes starting {:?}",
                line.len(),
                String::from_utf8_lossy(&line[..line.len().min(20)])
            );
        }
    }
    assert_eq!((a, b), (LINES, LINES));
}

#[test]
fn a_last_line_without_newline_is_written_at_exit() {
    let mut d = Daemon::start(
        "[process.p]\ncommand = [\"printf\", \"first\\\\nno newline\"]\nrestart = \"never\"\n",
    );
    let path = d.file("p.out.log");
    d.wait_content(&path, b"first\nno newline\n");
}

#[test]
fn bytes_that_are_not_utf8_are_kept_in_files_and_in_tend_logs() {
    let mut d = Daemon::start(
        "[process.bin]\ncommand = [\"printf\", \"\\\\377\\\\376ok\\\\n\"]\nrestart = \"never\"\n",
    );
    let path = d.file("bin.out.log");
    d.wait_content(&path, b"\xff\xfeok\n");
    assert_eq!(d.raw_stdout(&["logs", "bin"]), b"bin | \xff\xfeok\n");
}

#[test]
fn strip_ansi_removes_escapes_and_keeps_tabs_and_carriage_returns() {
    let mut d = Daemon::start(
        r#"
[process.colour]
command = ['printf', '\033[1;31mred\033[0m\tTab\r\n\033]0;title\007plain \033(Bcharset\n']
restart = "never"
logs.strip_ansi = true
"#,
    );
    let path = d.file("colour.out.log");
    d.wait_content(&path, b"red\tTab\r\nplain charset\n");
}

#[test]
fn timestamps_prefix_each_line_with_an_rfc3339_time() {
    let before = jiff::Timestamp::now();
    let mut d = Daemon::start(
        "[process.t]\ncommand = [\"printf\", \"a\\\\nb\\\\n\"]\nrestart = \"never\"\nlogs.timestamps = true\n",
    );
    let path = d.file("t.out.log");
    d.wait_for("two stamped lines", LONG, |_| {
        text(&path).lines().count() == 2
    });
    let after = jiff::Timestamp::now();
    let content = text(&path);
    let mut rest = Vec::new();
    for line in content.lines() {
        let (stamp, r) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let t: jiff::Timestamp = stamp
            .parse()
            .unwrap_or_else(|e| panic!("{stamp:?} is not RFC 3339: {e}"));
        assert!(before <= t && t <= after, "{t} not in [{before}, {after}]");
        rest.push(r);
    }
    assert_eq!(rest, ["a", "b"]);
}

#[test]
fn files_rotate_keeping_the_configured_backups() {
    // 50 lines of 100 bytes, written one by one so that each write is small.
    let mut d = Daemon::start(
        r#"
[process.r]
command = ["sh", "-c", "for i in $(seq 1 50); do printf 'line %02d %090d\n' $i 0; sleep 0.005; done"]
restart = "never"
logs.max_size = "1KB"
logs.backups = 2
"#,
    );
    let expected: String = (1..=50)
        .map(|i| format!("line {i:02} {:090}\n", 0))
        .collect();
    let base = d.file("r.out.log");
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", base.display()));
    d.wait_for("the last line", LONG, |_| text(&base).contains("line 50 "));
    assert!(numbered(1).exists() && numbered(2).exists());
    assert!(!numbered(3).exists(), "only two backups are kept");
    let parts = [numbered(2), numbered(1), base.clone()];
    let mut kept = String::new();
    for p in &parts {
        let t = text(p);
        assert!(t.len() <= 1024, "{} has {} bytes", p.display(), t.len());
        // A file is rotated when the next write would not fit: nearly full.
        assert!(
            *p == base || t.len() >= 500,
            "{} has only {} bytes",
            p.display(),
            t.len()
        );
        kept.push_str(&t);
    }
    assert!(
        expected.ends_with(&kept),
        "the three files hold the most recent output, in order:\n{kept}"
    );
}

/// The ticks in `text` (`tick N` lines), checked to be consecutive.
fn ticks(text: &str) -> Vec<u64> {
    let v: Vec<u64> = text
        .lines()
        .map(|l| {
            l.strip_prefix("tick ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("odd line {l:?}"))
        })
        .collect();
    for w in v.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a tick is missing or repeated: {v:?}");
    }
    v
}

const TICKER: &str = r#"
[process.tick]
command = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.02; done"]
"#;

#[test]
fn reopen_after_logrotate_moved_the_file() {
    let mut d = Daemon::start(TICKER);
    let path = d.file("tick.out.log");
    d.wait_for("some ticks", LONG, |_| text(&path).lines().count() >= 3);

    let mut previous: Vec<u64> = Vec::new();
    for (round, how) in ["--reopen", "SIGUSR2"].iter().enumerate() {
        let moved = d.file(&format!("tick.out.log.moved{round}"));
        std::fs::rename(&path, &moved).expect("rename");
        if *how == "--reopen" {
            assert_eq!(d.ok(&["logs", "--reopen"]).stdout, "log files reopened\n");
        } else {
            kill(Pid::from_raw(d.daemon_pid() as i32), Signal::SIGUSR2).expect("kill");
        }
        d.wait_for("ticks in a fresh file", LONG, |_| {
            text(&path).lines().count() >= 3
        });
        let old = ticks(&text(&moved));
        let new = ticks(&text(&path));
        assert_eq!(
            old.last().map(|t| t + 1),
            new.first().copied(),
            "{how}: the fresh file goes on where the moved one stopped"
        );
        if !previous.is_empty() {
            assert_eq!(old.first(), previous.first(), "the same file, moved");
        }
        previous = new;
    }
    assert!(
        d.log_text()
            .contains("SIGUSR2 received; log files reopened"),
        "{}",
        d.log_text()
    );
}

/// A child `tend logs -f` whose stdout is collected by a thread.
struct Follower {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Follower {
    fn start(env: &TestEnv, args: &[&str]) -> Follower {
        let mut child = env
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tend logs -f");
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().expect("stdout");
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        Follower { child, out }
    }

    /// Everything it printed so far, as it came (a line without its
    /// newline included).
    fn raw(&self) -> Vec<u8> {
        self.out.lock().expect("lock").clone()
    }

    /// The complete lines it printed so far.
    fn lines(&self) -> Vec<String> {
        let raw = self.raw();
        let text = String::from_utf8_lossy(&raw);
        let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
        lines.pop();
        lines
    }

    /// Interrupts it as Ctrl-C would and returns its stderr.
    fn interrupt(mut self) -> (std::process::ExitStatus, String) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let status = self.child.wait().expect("wait");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (status, err)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn logs_follow_goes_on_across_a_rotation_and_a_restart() {
    let mut d = Daemon::start(
        r#"
[process.tick]
command = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i $$$$; sleep 0.02; done"]
logs.max_size = "200"
logs.backups = 1
"#,
    );
    let pid = d.pid("tick");
    let f = Follower::start(&d, &["logs", "-f", "-n", "1", "tick"]);
    // About 14 lines fill 200 bytes: 20 lines followed span a rotation.
    d.wait_for("20 lines in the follower", LONG, |_| f.lines().len() >= 20);
    assert!(d.file("tick.out.log.1").exists(), "the file was rotated");
    d.ok(&["restart", "tick"]);
    let new_pid = d.pid("tick");
    assert_ne!(pid, new_pid);
    d.wait_for("the new run's lines in the follower", LONG, |_| {
        f.lines()
            .iter()
            .filter(|l| l.ends_with(&format!(" {new_pid}")))
            .count()
            >= 3
    });
    let lines = f.lines();
    let of = |p: u32| -> Vec<u64> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("tick | tick "))
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, owner)| *owner == p.to_string())
            .map(|(n, _)| n.parse().expect("tick number"))
            .collect()
    };
    let (old, new) = (of(pid), of(new_pid));
    assert_eq!(old.len() + new.len(), lines.len(), "only ticks: {lines:#?}");
    // Every line of the first run from the first one shown on, with no gap
    // across the rotations; the new run from its first line.
    for run in [&old, &new] {
        for w in run.windows(2) {
            assert_eq!(w[1], w[0] + 1, "{lines:#?}");
        }
    }
    assert!(old.len() >= 20, "{lines:#?}");
    assert_eq!(new.first(), Some(&1), "{lines:#?}");
    let (status, err) = f.interrupt();
    assert!(err.is_empty(), "Ctrl-C ends it quietly: {status} {err}");
}

/// A prompt without a newline is in the file, in `tend logs` and in
/// `tend logs -f` while the process still waits (it would be held back until
/// the newline or the exit otherwise); so is each step of a `\r` progress
/// bar, and the line's end continues it.
#[test]
fn a_partial_line_is_shown_before_its_newline() {
    let env = TestEnv::new("");
    let dir = env.dir.path().to_path_buf();
    let go = |n: &str| dir.join(format!("go-{n}"));
    // Each waits for a file before it goes on.
    let wait = |n: &str| format!("while [ ! -e {} ]; do sleep 0.02; done", go(n).display());
    let config = format!(
        r#"
[process.p]
command = ["sh", "-c", "printf 'Password: '; {w1}; echo ok; exec sleep 1000"]

[process.bar]
command = ["sh", "-c", "printf '\\r10%%'; {b1}; printf '\\r20%%'; {b2}; printf '\\r30%%'; {b3}; echo; exec sleep 1000"]
"#,
        w1 = wait("p"),
        b1 = wait("b1"),
        b2 = wait("b2"),
        b3 = wait("b3"),
    );
    std::fs::write(&env.config, config).expect("write config");
    let touch = |n: &str| std::fs::write(go(n), "").expect("touch");
    let mut d = Daemon::start_in(env);
    let path = d.file("p.out.log");
    d.wait_content(&path, b"Password: ");
    let f = Follower::start(&d, &["logs", "-f", "p"]);
    d.wait_for("the prompt in tend logs -f", LONG, |_| {
        f.raw() == b"p | Password: "
    });
    assert_eq!(d.raw_stdout(&["logs", "p"]), b"p | Password: \n");
    // The line's end goes on with it, on the same line.
    touch("p");
    d.wait_content(&path, b"Password: ok\n");
    d.wait_for("the end of the line in tend logs -f", LONG, |_| {
        f.raw() == b"p | Password: ok\n"
    });
    assert_eq!(d.raw_stdout(&["logs", "p"]), b"p | Password: ok\n");
    let bar = d.file("bar.out.log");
    let fb = Follower::start(&d, &["logs", "-f", "bar"]);
    for (step, want) in [
        ("b1", "\r10%"),
        ("b2", "\r10%\r20%"),
        ("b3", "\r10%\r20%\r30%"),
    ] {
        d.wait_content(&bar, want.as_bytes());
        let shown = format!("bar | {want}");
        d.wait_for(&format!("{want:?} followed"), LONG, |_| {
            fb.raw() == shown.as_bytes()
        });
        touch(step);
    }
    d.wait_content(&bar, b"\r10%\r20%\r30%\n");
    d.wait_for("the bar's end followed", LONG, |_| {
        fb.raw() == b"bar | \r10%\r20%\r30%\n"
    });
}

#[test]
fn nothing_is_lost_from_a_fast_writer() {
    const LINES: usize = 200_000;
    let mut d = Daemon::start(&format!(
        r#"
[process.fast]
command = ["python3", "-c", "import sys; sys.stdout.buffer.write((b'x' * 99 + b'\\n') * {LINES})"]
restart = "never"
logs.max_size = "0"
"#
    ));
    let path = d.file("fast.out.log");
    let want = (LINES * 100) as u64;
    d.wait_for("20 MB in the file", LONG, |d| {
        std::fs::metadata(&path).map_or(0, |m| m.len()) >= want && d.state("fast") == "exited"
    });
    let data = read(&path);
    assert_eq!(data.len() as u64, want);
    let line = [&[b'x'; 99][..], b"\n"].concat();
    assert!(data.chunks(100).all(|c| c == line.as_slice()));
    assert_eq!(d.proc("fast")["log_dropped_bytes"], 0);
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("needs root (mounting a small tmpfs)".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_does_not_block_the_child_and_writing_resumes() {
    // Declared first, so it is unmounted after the daemon is gone.
    let Ok(fs) = Tmpfs::mount("256k").map_err(|why| tend_testkit::require(false, why)) else {
        return;
    };
    let log = fs.dir.path().join("big.log");
    let env = TestEnv::new("");
    // Outside the full file system, where the child can still write.
    let marker = env.dir.path().join("marker");
    let config = format!(
        r#"
[process.big]
command = ["python3", "-c", '''
import sys, time
out = sys.stdout.buffer
for i in range(10000):
    out.write(b'%05d ' % i + b'x' * 94 + b'\n')
out.flush()
open(sys.argv[1], 'w').close()
i = 0
while True:
    i += 1
    out.write(b'after %d\n' % i)
    out.flush()
    time.sleep(0.05)
''', "{marker}"]
logs.stdout = "{log}"
logs.max_size = "0"
"#,
        marker = marker.display(),
        log = log.display(),
    );
    std::fs::write(&env.config, config).expect("write config");
    let mut d = Daemon::start_in(env);
    d.wait_for("the child to get past its 1 MB", LONG, |_| marker.exists());
    let _ = std::fs::remove_file(&marker);
    d.wait_for("dropped bytes in the status", LONG, |d| {
        d.proc("big")["log_dropped_bytes"].as_u64().unwrap_or(0) > 0
    });
    d.wait_for("the drop in the daemon's log", LONG, |d| {
        d.log_text().contains("output is dropped")
    });
    // Free the space: the file is recreated and writing goes on.
    std::fs::remove_file(&log).expect("remove the full log");
    d.wait_for("lines in a fresh file", LONG, |_| {
        text(&log)
            .lines()
            .filter(|l| l.starts_with("after "))
            .count()
            >= 3
    });
    d.wait_for("the resume in the daemon's log", LONG, |d| {
        d.log_text().contains("resumed writing")
    });
    assert_eq!(d.state("big"), "running");
}

#[test]
fn up_in_the_foreground_prints_prefixed_lines() {
    let mut d = Daemon::start(
        r#"
[process.hello]
command = ["sh", "-c", "echo hi there; echo on stderr >&2; exec sleep 1000"]

[process.a-longer-name]
command = ["sh", "-c", "echo x; exec sleep 1000"]

[process.raw]
command = ["sh", "-c", "echo raw line; exec sleep 1000"]
logs.stdout = "inherit"
"#,
    );
    d.wait_for("the output of every process", LONG, |d| {
        let out = d.out_text();
        ["hi there", "on stderr", "| x", "raw line"]
            .iter()
            .all(|s| out.contains(s))
    });
    let out = d.out_text();
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "a-longer-name | x",
            "hello         | hi there",
            "hello         | on stderr",
            "raw line",
        ],
        "no colour into a file, and an inherited stream is not shown twice"
    );
}

/// A prompt (no newline after it) shows at once in the foreground view, in
/// `tend logs` and in the log file; the rest of the line continues it.
#[test]
fn a_line_without_its_newline_shows_everywhere() {
    let env = TestEnv::new("");
    let go = env.dir.path().join("go");
    let config = format!(
        r#"
[process.prompt]
command = ["sh", "-c", "printf 'Password: '; while [ ! -e '{go}' ]; do sleep 0.05; done; echo got it; exec sleep 1000"]
"#,
        go = go.display()
    );
    std::fs::write(&env.config, config).expect("write config");
    let mut d = Daemon::start_in(env);
    d.wait_for("the prompt in the foreground view", LONG, |d| {
        d.out_text() == "prompt | Password: "
    });
    d.wait_for("the prompt in tend logs", LONG, |d| {
        d.raw_stdout(&["logs", "prompt"]) == b"prompt | Password: \n"
    });
    assert_eq!(text(&d.file("prompt.out.log")), "Password: ");
    std::fs::write(&go, "").expect("the go file");
    d.wait_for("the rest on the same line", LONG, |d| {
        d.out_text() == "prompt | Password: got it\n"
    });
    assert_eq!(
        d.raw_stdout(&["logs", "prompt"]),
        b"prompt | Password: got it\n"
    );
    assert_eq!(text(&d.file("prompt.out.log")), "Password: got it\n");
}

#[test]
fn json_log_format_into_a_log_file() {
    let mut d = Daemon::start(
        r#"
[daemon]
log_format = "json"
log_file = "own/tend.log"

[process.p]
command = "sleep 1000"
"#,
    );
    let path = d.dir.path().join("own/tend.log");
    d.wait_for("spawned in tend's log", LONG, |_| {
        text(&path).contains("spawned")
    });
    for line in text(&path).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(
            v.is_object() && v["fields"]["message"].is_string(),
            "{line}"
        );
    }
    assert!(
        !d.log_text().contains("spawned"),
        "nothing on stderr: {}",
        d.log_text()
    );
}

#[test]
fn a_memory_target_serves_tend_logs_and_a_null_one_is_dev_null() {
    let mut d = Daemon::start(
        r#"
[process.kept]
command = ["sh", "-c", "echo hello-memory; exec sleep 1000"]
logs.stdout = "memory"

[process.quiet]
command = ["sh", "-c", "echo hello-null && echo err >&2 && touch wrote; exec sleep 1000"]
logs = { stdout = "null", stderr = "null" }
"#,
    );
    d.wait_for("the line in the tail", LONG, |d| {
        d.raw_stdout(&["logs", "kept"]) == b"kept | hello-memory\n"
    });
    assert!(!d.file("kept.out.log").exists(), "memory writes no file");
    // `null` is /dev/null itself: the writes succeed, nothing is read.
    d.wait_for("the null process's writes", LONG, |d| {
        d.dir.path().join("wrote").exists()
    });
    let pid = d.proc("quiet")["pid"].as_u64().expect("pid");
    for fd in [1, 2] {
        let to = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).expect("fd");
        assert_eq!(to, Path::new("/dev/null"), "fd {fd}");
    }
    assert_eq!(d.raw_stdout(&["logs", "quiet"]), b"");
    assert!(!d.file("quiet.out.log").exists(), "null writes no file");
}
