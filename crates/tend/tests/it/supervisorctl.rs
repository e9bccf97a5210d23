//! The real `supervisorctl` against the real `supervisord` and against
//! `tend up`, side by side.
//!
//! Each test writes one `supervisord.conf` twice, into `sup/` and `tend/` of a
//! temp dir (the text is the same: every path in it is `%(here)s/...`), starts
//! `supervisord -n -c sup/supervisord.conf` and `tend -c tend/supervisord.conf
//! up`, runs the same `supervisorctl -c DIR/supervisord.conf CMD` against each,
//! and compares exit status, stdout and stderr after normalising what must
//! differ: pids, uptimes, dates, the temp dirs, TCP ports and the random part
//! of AUTO log names. supervisord's answers are also checked against what Supervisor's
//! documentation and `supervisor.md` say, so that a test where both sides fail
//! the same way still fails.
//!
//! Differences are collected, not raised one at a time: a failing test lists
//! every command whose output differs, with both outputs, so one run shows the
//! whole state of the compatibility work.
//!
//! The programs come from a Python venv with `supervisor` 4.3.0:
//! `scripts/test` makes it at the repository's `.venv` and exports
//! `TEND_SUPERVISORCTL` and `TEND_SUPERVISORD`. Without them (and without
//! `.venv`), the tests fail under `CI=true` and are counted skips elsewhere.

// This test binary has no reaper: waiting for the programs it starts is its job.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{TEND, TestEnv};

/// How long one `supervisorctl` run may take (a `start` waits `startsecs`).
const CTL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long processes may take to reach the states a test waits for.
const SETTLE: Duration = Duration::from_secs(30);

/// The programs of the supervisor venv.
#[derive(Debug, Clone)]
pub struct Venv {
    pub ctl: PathBuf,
    pub supervisord: PathBuf,
    pub python: PathBuf,
}

/// The venv, or `None` when it is not there: then the test fails under CI
/// and is a counted skip elsewhere (`tend_testkit::require`).
/// `TEND_SUPERVISORCTL` set to a missing file is a broken setup: a failure.
pub fn venv() -> Option<Venv> {
    let (ctl, supervisord) = match (
        std::env::var_os("TEND_SUPERVISORCTL"),
        std::env::var_os("TEND_SUPERVISORD"),
    ) {
        (Some(ctl), Some(sd)) => {
            let (ctl, sd) = (PathBuf::from(ctl), PathBuf::from(sd));
            assert!(
                ctl.is_file() && sd.is_file(),
                "TEND_SUPERVISORCTL={} / TEND_SUPERVISORD={}: not files (run scripts/test)",
                ctl.display(),
                sd.display()
            );
            (ctl, sd)
        }
        _ => {
            // The repository's .venv, two levels above this crate.
            let repo = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
            let bin = repo.expect("crates/tend").join(".venv/bin");
            let (ctl, sd) = (bin.join("supervisorctl"), bin.join("supervisord"));
            let found = ctl.is_file() && sd.is_file();
            if !tend_testkit::require(
                found,
                format_args!(
                    "no supervisor venv: TEND_SUPERVISORCTL is not set and {} is missing \
                     (scripts/test creates it)",
                    ctl.display()
                ),
            ) {
                return None;
            }
            (ctl, sd)
        }
    };
    let python = ctl.with_file_name("python");
    Some(Venv {
        ctl,
        supervisord,
        python,
    })
}

/// Which daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Supervisord,
    Tend,
}

impl Kind {
    fn dir_name(self) -> &'static str {
        match self {
            Kind::Supervisord => "sup",
            Kind::Tend => "tend",
        }
    }
}

/// One daemon and its directory.
pub struct Side {
    pub kind: Kind,
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub child: Option<Child>,
    /// The daemon's stdout and stderr.
    pub out: PathBuf,
    /// A free TCP port for this side: `{PORT}` in a config.
    pub port: u16,
}

impl Side {
    fn out_text(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.out).unwrap_or_default()).into_owned()
    }

    /// Whether the daemon has exited (reaping it if so).
    fn exited(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(_))) | None => true,
            Some(_) => false,
        }
    }
}

/// The outcome of one `supervisorctl` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// How to compare two outputs beyond the common normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Byte for byte.
    Exact,
    /// Lines in any order: group and `all` operations report each process as
    /// it finishes, in an order that depends on timing in supervisord too.
    AnyOrder,
    /// Lines of digits are pids (`supervisorctl pid`).
    Pids,
}

/// Both daemons, the config they share, and the differences found so far.
pub struct Pair {
    pub venv: Venv,
    pub sides: Vec<Side>,
    pub diffs: Vec<String>,
    // Last: its leak check runs once both daemons are gone.
    pub env: TestEnv,
}

/// How both daemons are started.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// tend as `tend supervisord -n -c FILE` (as a `supervisord` link runs
    /// it) instead of `tend -c FILE up`.
    pub supervisord_cli: bool,
    /// A command both daemons run under (`unshare -m sh -c '...' sh`).
    pub prefix: Vec<String>,
}

impl Pair {
    /// Writes `files` (name, text) into the temp dir and `conf` as
    /// `sup/supervisord.conf` and `tend/supervisord.conf`; `{ROOT}` in
    /// either is the temp dir, `{PYTHON}` the venv's python, `{PORT}` a free
    /// TCP port (one per side). Starts both daemons and waits until both
    /// answer `supervisorctl status`.
    pub fn start(venv: Venv, conf: &str, files: &[(&str, &str)]) -> Pair {
        Pair::start_as(venv, conf, files, &Launch::default())
    }

    /// [`Pair::start`], with the daemons started as `launch` says.
    pub fn start_as(venv: Venv, conf: &str, files: &[(&str, &str)], launch: &Launch) -> Pair {
        let env = TestEnv::new("");
        let root = env.dir.path().to_path_buf();
        let fill = |text: &str| {
            text.replace("{ROOT}", &root.to_string_lossy())
                .replace("{PYTHON}", &venv.python.to_string_lossy())
        };
        for (name, text) in files {
            fs::write(root.join(name), fill(text)).expect("write file");
        }
        // Both bound at once, so the two ports differ.
        let probes: Vec<std::net::TcpListener> = (0..2)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
            .collect();
        let ports: Vec<u16> = probes
            .iter()
            .map(|l| l.local_addr().expect("port").port())
            .collect();
        drop(probes);
        let mut sides = Vec::new();
        for (kind, port) in [Kind::Supervisord, Kind::Tend].into_iter().zip(ports) {
            let dir = root.join(kind.dir_name());
            fs::create_dir_all(dir.join("logs")).expect("mkdir");
            let conf_path = dir.join("supervisord.conf");
            fs::write(&conf_path, fill(conf).replace("{PORT}", &port.to_string()))
                .expect("write conf");
            let out = dir.join("daemon.out");
            let out_file = fs::File::create(&out).expect("daemon.out");
            let err_file = out_file.try_clone().expect("dup");
            let argv: Vec<std::ffi::OsString> = match kind {
                Kind::Supervisord => vec![
                    venv.supervisord.clone().into(),
                    "-n".into(),
                    "-c".into(),
                    conf_path.clone().into(),
                ],
                Kind::Tend if launch.supervisord_cli => vec![
                    TEND.into(),
                    "supervisord".into(),
                    "-n".into(),
                    "-c".into(),
                    conf_path.clone().into(),
                ],
                Kind::Tend => vec![
                    TEND.into(),
                    "-c".into(),
                    conf_path.clone().into(),
                    "up".into(),
                ],
            };
            let mut all: Vec<std::ffi::OsString> = launch.prefix.iter().map(Into::into).collect();
            all.extend(argv);
            let mut cmd = Command::new(&all[0]);
            cmd.args(&all[1..]);
            cmd.current_dir(&dir)
                .env("TEND_TEST_MARKER", &env.marker)
                .env_remove("TEND_SOCKET")
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(out_file)
                .stderr(err_file);
            let child = cmd.spawn().expect("spawn daemon");
            sides.push(Side {
                kind,
                dir,
                conf: conf_path,
                child: Some(child),
                out,
                port,
            });
        }
        let mut pair = Pair {
            venv,
            sides,
            diffs: Vec::new(),
            env,
        };
        for i in 0..pair.sides.len() {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if pair.sides[i].exited() {
                    let msg = format!(
                        "{:?} exited at start-up:\n{}",
                        pair.sides[i].kind,
                        pair.sides[i].out_text()
                    );
                    // supervisord must run; tend not running is the first
                    // difference, and every comparison after it another.
                    assert_eq!(pair.sides[i].kind, Kind::Tend, "{msg}");
                    pair.diffs.push(msg);
                    break;
                }
                let out = pair.ctl(pair.sides[i].kind, &["status"]);
                if matches!(out.code, Some(0 | 3)) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{:?} did not answer `supervisorctl status`: {out:?}\n{}",
                    pair.sides[i].kind,
                    pair.sides[i].out_text()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        pair
    }

    pub fn root(&self) -> PathBuf {
        self.env.dir.path().to_path_buf()
    }

    pub fn side(&self, kind: Kind) -> &Side {
        self.sides
            .iter()
            .find(|s| s.kind == kind)
            .expect("both sides exist")
    }

    fn side_mut(&mut self, kind: Kind) -> &mut Side {
        self.sides
            .iter_mut()
            .find(|s| s.kind == kind)
            .expect("both sides exist")
    }

    /// A `supervisorctl -c DIR/supervisord.conf ARGS` command for one side.
    /// `{PORT}` in an argument is the side's port.
    pub fn ctl_command(&self, kind: Kind, args: &[&str]) -> Command {
        let side = self.side(kind);
        let mut cmd = Command::new(&self.venv.ctl);
        cmd.arg("-c")
            .arg(&side.conf)
            .args(
                args.iter()
                    .map(|a| a.replace("{PORT}", &side.port.to_string())),
            )
            .current_dir(&side.dir)
            .env("TEND_TEST_MARKER", &self.env.marker);
        cmd
    }

    /// Runs `supervisorctl ARGS` against one side, with a deadline.
    pub fn ctl(&self, kind: Kind, args: &[&str]) -> Out {
        run_with_timeout(self.ctl_command(kind, args), None, CTL_TIMEOUT)
    }

    /// Runs `supervisorctl ARGS` against both sides, supervisord first.
    pub fn both(&self, args: &[&str]) -> (Out, Out) {
        (
            self.ctl(Kind::Supervisord, args),
            self.ctl(Kind::Tend, args),
        )
    }

    /// Normalises what must differ between the two sides.
    pub fn norm(&self, kind: Kind, text: &str, how: How) -> String {
        let side = self.side(kind);
        let mut s = text.replace(&*side.dir.to_string_lossy(), "{HERE}");
        s = s.replace(&*self.root().to_string_lossy(), "{ROOT}");
        s = s.replace(&format!(":{}", side.port), ":{PORT}");
        s = normalize(&s);
        match how {
            How::Exact => s,
            How::AnyOrder => {
                let mut lines: Vec<&str> = s.lines().collect();
                lines.sort_unstable();
                lines.join("\n")
            }
            How::Pids => s
                .lines()
                .map(|l| {
                    if !l.is_empty() && l != "0" && l.bytes().all(|b| b.is_ascii_digit()) {
                        "{PID}"
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// Records a difference between supervisord's `want` and tend's `got`.
    pub fn differ(&mut self, what: &str, want: &Out, got: &Out) {
        self.diffs.push(format!(
            "`supervisorctl {what}`\n  supervisord: exit {:?}, stdout {:?}, stderr {:?}\n  \
             tend:        exit {:?}, stdout {:?}, stderr {:?}",
            want.code, want.stdout, want.stderr, got.code, got.stdout, got.stderr
        ));
    }

    /// Runs `ARGS` on both sides and records any difference. `code` is
    /// what supervisord must exit with (checked, so the oracle is sane).
    /// Returns supervisord's and tend's normalised outputs.
    pub fn same(&mut self, args: &[&str], code: i32, how: How) -> (Out, Out) {
        let (sup, tend) = self.both(args);
        assert_eq!(
            sup.code,
            Some(code),
            "supervisord's `supervisorctl {}` is not what Supervisor does: {sup:?}",
            args.join(" ")
        );
        self.compare(&args.join(" "), sup, tend, how)
    }

    /// Compares two raw outputs, recording a difference; returns them normalised.
    pub fn compare(&mut self, what: &str, sup: Out, tend: Out, how: How) -> (Out, Out) {
        let n = |p: &Pair, kind, o: &Out| Out {
            code: o.code,
            stdout: p.norm(kind, &o.stdout, how),
            stderr: p.norm(kind, &o.stderr, how),
        };
        let (ns, nt) = (n(self, Kind::Supervisord, &sup), n(self, Kind::Tend, &tend));
        if ns != nt {
            self.differ(what, &ns, &nt);
        }
        (ns, nt)
    }

    /// The state of each process as `supervisorctl status` shows it, or
    /// `None` when the command did not give a process list.
    pub fn states(&self, kind: Kind) -> Option<BTreeMap<String, String>> {
        let out = self.ctl(kind, &["status"]);
        if !matches!(out.code, Some(0 | 3)) {
            return None;
        }
        Some(
            out.stdout
                .lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    Some((w.next()?.to_string(), w.next()?.to_string()))
                })
                .collect(),
        )
    }

    /// Waits until, on both sides, each named process is in its state.
    /// A side that never gets there is a recorded difference (supervisord
    /// not getting there is a broken test: a panic).
    pub fn wait_states(&mut self, want: &[(&str, &str)]) {
        for kind in [Kind::Supervisord, Kind::Tend] {
            if self.side_mut(kind).exited() {
                continue;
            }
            let deadline = Instant::now() + SETTLE;
            loop {
                let got = self.states(kind);
                let ok = got.as_ref().is_some_and(|got| {
                    want.iter()
                        .all(|(n, s)| got.get(*n).map(String::as_str) == Some(*s))
                });
                if ok {
                    break;
                }
                if Instant::now() >= deadline {
                    let msg = format!(
                        "{kind:?} did not reach {want:?} within {SETTLE:?}; status: {got:?}"
                    );
                    assert_eq!(kind, Kind::Tend, "{msg}");
                    self.diffs.push(msg);
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Rewrites the config of both sides.
    pub fn rewrite(&self, conf: &str) {
        let root = self.root();
        for side in &self.sides {
            let text = conf
                .replace("{ROOT}", &root.to_string_lossy())
                .replace("{PYTHON}", &self.venv.python.to_string_lossy())
                .replace("{PORT}", &side.port.to_string());
            fs::write(&side.conf, text).expect("rewrite conf");
        }
    }

    /// Waits (with a deadline) for one daemon to exit; its exit status.
    pub fn wait_daemon_exit(&mut self, kind: Kind, timeout: Duration) -> Option<i32> {
        let side = self.side_mut(kind);
        let mut child = side.child.take()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails the test with every difference found, if any.
    pub fn finish(mut self) {
        let diffs = std::mem::take(&mut self.diffs);
        if !diffs.is_empty() {
            let logs: Vec<String> = self
                .sides
                .iter()
                .map(|s| format!("--- {:?} daemon output:\n{}", s.kind, s.out_text()))
                .collect();
            drop(self);
            panic!(
                "{} difference(s) between supervisord and tend:\n\n{}\n\n{}",
                diffs.len(),
                diffs.join("\n\n"),
                logs.join("\n")
            );
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for side in &mut self.sides {
            if let Some(child) = &side.child {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            }
        }
        for side in &mut self.sides {
            let Some(mut child) = side.child.take() else {
                continue;
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Runs `cmd` with stdout and stderr to files (so it can never block on a
/// full pipe), `input` on its stdin, and kills it after `timeout`.
pub fn run_with_timeout(mut cmd: Command, input: Option<&[u8]>, timeout: Duration) -> Out {
    let mut out = tempfile::tempfile().expect("tempfile");
    let mut err = tempfile::tempfile().expect("tempfile");
    cmd.stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"))
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("spawn supervisorctl");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(input);
    }
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read = |f: &mut fs::File| {
        let mut v = Vec::new();
        let _ = std::io::Seek::rewind(f);
        let _ = f.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    };
    let mut stderr = read(&mut err);
    if code.is_none() {
        stderr.push_str(&format!("[killed after {timeout:?}]"));
    }
    Out {
        code,
        stdout: read(&mut out),
        stderr,
    }
}

/// A `supervisorctl` left running (`tail -f`, `fg`): its output as it comes.
pub struct Background {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn spawn(mut cmd: Command, with_stdin: bool) -> Background {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(if with_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().expect("spawn supervisorctl");
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("stdout piped");
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        Background {
            child,
            stdin,
            output,
            reader: Some(reader),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("lock")).into_owned()
    }

    /// Waits until the output contains `needle`; false after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.text().contains(needle) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    pub fn write(&mut self, data: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(data);
            let _ = stdin.flush();
        }
    }

    /// Closes stdin (EOF), then waits for the exit; SIGKILL after `timeout`.
    pub fn close_and_wait(mut self, timeout: Duration) -> Out {
        self.stdin = None;
        self.wait(timeout)
    }

    /// Ctrl-C (SIGINT), then waits for the exit; SIGKILL after `timeout`.
    /// Whether supervisorctl prints an empty line as it goes depends on
    /// where in its loop the signal lands (the same against either daemon):
    /// trailing empty lines are dropped.
    pub fn interrupt(self, timeout: Duration) -> Out {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let mut out = self.wait(timeout);
        let kept = out.stdout.trim_end_matches('\n').len();
        if kept < out.stdout.len() {
            out.stdout.truncate(kept + 1);
        }
        out
    }

    fn wait(mut self, timeout: Duration) -> Out {
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.code();
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Out {
            code,
            stdout: self.text(),
            stderr: String::new(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Masks pids, uptimes, dates and the random part of AUTO log names.
pub fn normalize(s: &str) -> String {
    let s = mask_after(s, "pid ", |b| b.is_ascii_digit(), "{PID}");
    let s = mask_after(&s, "pid:", |b| b.is_ascii_digit(), "{PID}");
    // `uptime 0:00:13`, `uptime 1 day, 2:03:04`: up to the end of the line.
    let s = mask_after(&s, "uptime ", |b| b != b'\n', "{UPTIME}");
    // `Nov 20 09:42 PM`: when a stopped process stopped.
    let s = mask_pattern(&s, "Aaa 99 99:99 AM", "{DATE}");
    let s = mask_pattern(&s, "Aaa 99 99:99 PM", "{DATE}");
    mask_after(
        &s,
        "---supervisor-",
        |b| b.is_ascii_alphanumeric() || b == b'_',
        "{RND}",
    )
}

/// Replaces the run of bytes satisfying `keep` after each `prefix`.
fn mask_after(s: &str, prefix: &str, keep: impl Fn(u8) -> bool, with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(prefix) {
        let after = i + prefix.len();
        out.push_str(&rest[..after]);
        let tail = &rest[after..];
        let n = tail.bytes().take_while(|&b| keep(b)).count();
        if n > 0 {
            out.push_str(with);
        }
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

/// Replaces each match of `pat`, where `9` is a digit, `A` an upper-case
/// and `a` a lower-case ASCII letter, and anything else itself.
fn mask_pattern(s: &str, pat: &str, with: &str) -> String {
    let (sb, pb) = (s.as_bytes(), pat.as_bytes());
    let matches_at = |i: usize| {
        sb.len() >= i + pb.len()
            && pb.iter().zip(&sb[i..]).all(|(&p, &c)| match p {
                b'9' => c.is_ascii_digit(),
                b'A' => c.is_ascii_uppercase(),
                b'a' => c.is_ascii_lowercase(),
                _ => p == c,
            })
    };
    let mut out = Vec::with_capacity(sb.len());
    let mut i = 0;
    while i < sb.len() {
        if matches_at(i) {
            out.extend_from_slice(with.as_bytes());
            i += pb.len();
        } else {
            out.push(sb[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------
// The configs and helper programs.

/// The programs every comparison starts from.
const BASE: &str = supervisord_conf!(
    r#"[program:sleeper]
command=/bin/sleep 100000

[program:printer]
command={PYTHON} -u {ROOT}/printer.py

[program:failer]
command=/bin/sh -c "echo failing; echo failing err >&2; exit 1"
startretries=1

[program:a]
command=/bin/sleep 100001

[program:b]
command=/bin/sleep 100002

[group:grp]
programs=a,b

[program:worker]
command=/bin/sleep 100003
process_name=%(program_name)s_%(process_num)02d
numprocs=2
numprocs_start=1

[program:cat]
command=/bin/cat
"#
);

/// Writes two lines to each stream at start, one more to each per SIGUSR1,
/// and `printer got LINE` for each line of input.
const PRINTER: &str = r#"import signal, sys
n = 0
def out(s, f=sys.stdout):
    f.write(s + "\n")
    f.flush()
out("printer out 1"); out("printer err 1", sys.stderr)
out("printer out 2"); out("printer err 2", sys.stderr)
def tick(*_):
    global n
    n += 1
    out("printer tick %d" % n); out("printer tick err %d" % n, sys.stderr)
signal.signal(signal.SIGUSR1, tick)
for line in sys.stdin:
    out("printer got " + line.rstrip("\n"))
while True:
    signal.pause()
"#;

/// Every process of [`BASE`] once it has settled.
const SETTLED: &[(&str, &str)] = &[
    ("cat", "RUNNING"),
    ("failer", "FATAL"),
    ("grp:a", "RUNNING"),
    ("grp:b", "RUNNING"),
    ("printer", "RUNNING"),
    ("sleeper", "RUNNING"),
    ("worker:worker_01", "RUNNING"),
    ("worker:worker_02", "RUNNING"),
];

fn base_pair() -> Option<Pair> {
    let venv = venv()?;
    let mut pair = Pair::start(venv, BASE, &[("printer.py", PRINTER)]);
    pair.wait_states(SETTLED);
    Some(pair)
}

// ---------------------------------------------------------------------------
// The comparisons.

/// status (all, one, group), pid, avail, version: commands that change
/// nothing; then reload.
#[test]
fn status_pid_avail_version() {
    let Some(mut p) = base_pair() else { return };
    use How::*;
    p.same(&["status"], 3, Exact);
    p.same(&["status", "sleeper"], 0, Exact);
    p.same(&["status", "grp:*"], 0, Exact);
    p.same(&["status", "grp:"], 0, Exact);
    p.same(&["status", "grp:a", "worker:worker_02"], 0, Exact);
    p.same(&["status", "worker:*"], 0, Exact);
    p.same(&["status", "failer"], 3, Exact);
    p.same(&["status", "all"], 3, Exact);
    p.same(&["status", "nosuch"], 4, Exact);
    p.same(&["status", "nosuch:*"], 4, Exact);
    p.same(&["status", "grp"], 4, Exact);
    p.same(&["status", "a"], 4, Exact);
    p.same(&["pid"], 0, Pids);
    p.same(&["pid", "sleeper"], 0, Pids);
    p.same(&["pid", "grp:a"], 0, Pids);
    p.same(&["pid", "all"], 0, Pids);
    p.same(&["pid", "failer"], 7, Pids);
    p.same(&["pid", "nosuch"], 1, Pids);
    p.same(&["pid", "worker_01"], 1, Pids);
    p.same(&["avail"], 0, Exact);
    p.same(&["version"], 0, Exact);
    // The daemon's pid is the daemon's, not a child's.
    let tend_pid = p.ctl(Kind::Tend, &["pid"]);
    let want = p.side(Kind::Tend).child.as_ref().map(Child::id);
    if tend_pid.stdout.trim().parse::<u32>().ok() != want {
        p.diffs.push(format!(
            "`supervisorctl pid` against tend: {:?}, the daemon is {want:?}",
            tend_pid.stdout
        ));
    }
    // reload: everything restarts in the same daemon process.
    p.same(&["reload"], 0, Exact);
    p.wait_states(SETTLED);
    p.same(&["status"], 3, Exact);
    let again = p.ctl(Kind::Tend, &["pid"]);
    if again.stdout != tend_pid.stdout {
        p.diffs.push(format!(
            "the daemon's pid changed across `supervisorctl reload`: {:?} then {:?}",
            tend_pid.stdout, again.stdout
        ));
    }
    p.finish();
}

/// start, stop, restart: one, several, a group, all.
#[test]
fn start_stop_restart() {
    let Some(mut p) = base_pair() else { return };
    use How::*;
    p.same(&["stop", "sleeper"], 0, Exact);
    p.same(&["stop", "sleeper"], 0, Exact); // ERROR (not running), still 0
    p.same(&["status", "sleeper"], 3, Exact);
    p.same(&["start", "sleeper"], 0, Exact);
    p.same(&["start", "sleeper"], 0, Exact); // ERROR (already started)
    p.same(&["restart", "sleeper"], 0, Exact);
    p.same(&["status", "sleeper"], 0, Exact);

    p.same(&["stop", "grp:*"], 0, AnyOrder);
    p.same(&["status", "grp:*"], 3, Exact);
    p.same(&["start", "grp:*"], 0, AnyOrder);
    p.same(&["restart", "grp:*"], 0, AnyOrder);
    p.same(&["stop", "grp:a"], 0, Exact);
    p.same(&["start", "grp:a", "grp:b"], 0, Exact);
    p.same(&["stop", "worker:worker_01", "sleeper"], 0, Exact);
    p.same(&["status"], 3, Exact);
    p.same(&["start", "worker:*", "sleeper"], 0, AnyOrder);

    p.same(&["stop", "all"], 0, AnyOrder);
    p.same(&["status"], 3, Exact);
    p.same(&["start", "all"], 7, AnyOrder); // failer: ERROR (spawn error)
    p.wait_states(SETTLED);
    p.same(&["restart", "all"], 7, AnyOrder);
    p.wait_states(SETTLED);
    p.same(&["status"], 3, Exact);
    p.finish();
}

/// signal, and the errors of start, stop and restart.
#[test]
fn signal_and_errors() {
    let Some(mut p) = base_pair() else { return };
    use How::*;
    p.same(&["signal", "USR1", "printer"], 0, Exact);
    p.same(&["signal", "SIGUSR1", "printer"], 0, Exact);
    p.same(&["signal", "10", "printer"], 0, Exact);
    p.same(&["signal", "BOGUS", "printer"], 1, Exact);
    p.same(&["signal", "USR1", "failer"], 7, Exact);
    p.same(&["signal", "USR1", "nosuch"], 1, Exact);
    p.same(&["signal", "USR1"], 1, Exact);
    // sleep dies of SIGHUP: EXITED, not expected, so restarted.
    p.same(&["signal", "HUP", "grp:*"], 0, AnyOrder);
    p.wait_states(SETTLED);

    p.same(&["start", "nosuch"], 1, Exact);
    p.same(&["start", "nosuch:*"], 2, Exact);
    p.same(&["stop", "nosuch"], 1, Exact);
    p.same(&["stop", "nosuch:*"], 1, Exact);
    p.same(&["restart", "nosuch"], 1, Exact);
    p.same(&["start"], 2, Exact);
    p.same(&["stop"], 1, Exact);
    // failer is FATAL: a start fails again within startsecs.
    p.same(&["start", "failer"], 7, Exact);
    p.wait_states(SETTLED);
    p.same(&["status"], 3, Exact);
    p.finish();
}

/// A prompt without a newline: supervisord writes what it reads at once, so
/// `tail` and `tail -f` show `Password: ` while the program waits; so must
/// tend (it shows a partial line 100 ms after its first byte).
#[test]
fn a_prompt_without_a_newline_shows_in_tail_and_tail_f() {
    let Some(venv) = venv() else { return };
    let conf = supervisord_conf!(
        r#"[program:prompt]
command=/bin/sh -c "printf 'Password: '; exec sleep 100000"
startsecs=0
stdout_logfile=%(here)s/logs/prompt.log
"#
    );
    let mut p = Pair::start(venv, conf, &[]);
    p.wait_states(&[("prompt", "RUNNING")]);
    let mut outs = Vec::new();
    for kind in [Kind::Supervisord, Kind::Tend] {
        let log = p.side(kind).dir.join("logs/prompt.log");
        let deadline = Instant::now() + SETTLE;
        while fs::read(&log).unwrap_or_default() != b"Password: " && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let bg = Background::spawn(p.ctl_command(kind, &["tail", "-f", "prompt"]), false);
        let shown = bg.wait_for("Password: ", Duration::from_secs(10));
        let out = bg.interrupt(Duration::from_secs(10));
        if kind == Kind::Supervisord {
            assert!(shown, "supervisord's tail -f: {out:?}");
        }
        outs.push(out);
    }
    let tend = outs.pop().expect("two");
    let sup = outs.pop().expect("two");
    p.compare("tail -f prompt", sup, tend, How::Exact);
    p.same(&["tail", "prompt"], 0, How::Exact);
    p.finish();
}

/// tail (stdout, stderr, -N, -f), clear, fg, maintail.
#[test]
fn tail_clear_fg_maintail() {
    let Some(mut p) = base_pair() else { return };
    use How::*;
    p.same(&["tail", "printer"], 0, Exact);
    p.same(&["tail", "printer", "stdout"], 0, Exact);
    p.same(&["tail", "printer", "stderr"], 0, Exact);
    p.same(&["tail", "-100", "printer"], 0, Exact);
    p.same(&["tail", "-5", "printer", "stderr"], 0, Exact);
    p.same(&["tail", "failer"], 0, Exact);
    p.same(&["tail", "failer", "stderr"], 0, Exact);
    p.same(&["tail", "sleeper"], 0, Exact);
    p.same(&["tail", "nosuch"], 1, Exact);
    p.same(&["tail", "printer", "bogus"], 1, Exact);
    p.same(&["tail"], 1, Exact);

    // tail -f: the end of the log, then what comes, until Ctrl-C.
    for stream in ["stdout", "stderr"] {
        // Each round signals once more: tick 1, then tick 2.
        let want = if stream == "stdout" {
            "printer tick 1\n"
        } else {
            "printer tick err 2\n"
        };
        let mut outs = Vec::new();
        for kind in [Kind::Supervisord, Kind::Tend] {
            let bg = Background::spawn(
                p.ctl_command(kind, &["tail", "-f", "printer", stream]),
                false,
            );
            let started = bg.wait_for("printer", Duration::from_secs(10));
            let sig = p.ctl(kind, &["signal", "USR1", "printer"]);
            let followed = started && bg.wait_for(want, Duration::from_secs(10));
            let out = bg.interrupt(Duration::from_secs(10));
            if kind == Kind::Supervisord {
                assert!(
                    followed && sig.code == Some(0),
                    "supervisord's tail -f: {out:?}"
                );
            }
            outs.push(out);
        }
        let tend = outs.pop().expect("two");
        let sup = outs.pop().expect("two");
        p.compare(&format!("tail -f printer {stream}"), sup, tend, Exact);
        // The ticks are in the logs: plain tail again.
        p.same(&["tail", "printer", stream], 0, Exact);
    }

    p.same(&["clear", "printer"], 0, Exact);
    p.same(&["tail", "printer"], 0, Exact);
    p.same(&["tail", "printer", "stderr"], 0, Exact);
    p.same(&["clear", "nosuch"], 1, Exact);
    p.same(&["clear", "all"], 0, Exact);
    // Documented difference: supervisord clears only the logs of running
    // processes (a stopped one has no log dispatchers) but says "cleared";
    // tend clears them.
    let (sup, tend) = p.both(&["tail", "failer"]);
    assert_eq!(
        sup.stdout, "failing\nfailing\n\n",
        "supervisord kept failer's log"
    );
    if tend.stdout != "\n" || tend.code != Some(0) {
        p.differ(
            "tail failer (after clear all: tend's log is empty)",
            &sup,
            &tend,
        );
    }

    // fg: stdin goes to the process, its output comes back, EOF ends it.
    let mut outs = Vec::new();
    for kind in [Kind::Supervisord, Kind::Tend] {
        let mut bg = Background::spawn(p.ctl_command(kind, &["fg", "printer"]), true);
        let banner = bg.wait_for("==> Press Ctrl-C to exit <==\n", Duration::from_secs(10));
        bg.write(b"hello from fg\n");
        let echoed = banner && bg.wait_for("printer got hello from fg\n", Duration::from_secs(10));
        bg.stdin = None;
        let ended = bg.wait_for("Exiting foreground\n", Duration::from_secs(10));
        // supervisorctl's output thread notices that it should end only when
        // its poll returns: output wakes it (or its 30 s timeout).
        let _ = p.ctl(kind, &["signal", "USR1", "printer"]);
        let out = bg.close_and_wait(Duration::from_secs(45));
        if kind == Kind::Supervisord {
            assert!(
                echoed && ended && out.code == Some(0),
                "supervisord's fg: {out:?}"
            );
        }
        outs.push(out);
    }
    let tend = outs.pop().expect("two");
    let sup = outs.pop().expect("two");
    p.compare("fg printer (stdin: hello from fg, EOF)", sup, tend, Exact);
    p.same(&["tail", "printer"], 0, Exact);
    p.same(&["fg", "failer"], 1, Exact);
    p.same(&["fg", "nosuch"], 1, Exact);
    p.same(&["fg"], 1, Exact);

    // maintail: the end of each daemon's own log, whose lines differ by
    // nature; both must print the tail of their `[supervisord] logfile`.
    for args in [&["maintail"][..], &["maintail", "-200"][..]] {
        let (sup, tend) = p.both(args);
        assert_eq!(sup.code, Some(0), "supervisord maintail: {sup:?}");
        for (kind, out) in [(Kind::Supervisord, &sup), (Kind::Tend, &tend)] {
            let log =
                fs::read_to_string(p.side(kind).dir.join("supervisord.log")).unwrap_or_default();
            let printed = out.stdout.strip_suffix('\n').unwrap_or(&out.stdout);
            let limit = if args.len() == 2 { 200 } else { 1600 };
            let ok = out.code == Some(0)
                && !printed.is_empty()
                && printed.len() <= limit
                && log.contains(printed);
            if !ok {
                assert_eq!(kind, Kind::Tend, "supervisord's maintail: {out:?}");
                p.diffs.push(format!(
                    "`supervisorctl {}` against tend is not the end of {{HERE}}/supervisord.log \
                     (log is {} bytes): {out:?}",
                    args.join(" "),
                    log.len()
                ));
            }
        }
    }
    p.finish();
}

/// maintail -f: the banner, then the end of the main log, until Ctrl-C.
#[test]
fn maintail_follow() {
    let Some(mut p) = base_pair() else { return };
    for kind in [Kind::Supervisord, Kind::Tend] {
        let bg = Background::spawn(p.ctl_command(kind, &["maintail", "-f"]), false);
        let banner = bg.wait_for("==> Press Ctrl-C to exit <==\n", Duration::from_secs(10));
        // A stop and a start write to the main log in both daemons.
        let _ = p.ctl(kind, &["restart", "sleeper"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut grew = false;
        while Instant::now() < deadline && !grew {
            let t = bg.text();
            grew = t.len() > "==> Press Ctrl-C to exit <==\n".len() + 1 && t.contains("sleeper");
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = bg.interrupt(Duration::from_secs(10));
        if !(banner && grew) {
            assert_eq!(kind, Kind::Tend, "supervisord's maintail -f: {out:?}");
            p.diffs.push(format!(
                "`supervisorctl maintail -f` against tend did not follow the main log \
                 (a restart of sleeper should appear): {out:?}"
            ));
        }
    }
    p.finish();
}

/// reread, update, add, remove, avail after the config file changed.
#[test]
fn reread_update_add_remove() {
    let Some(venv) = venv() else { return };
    let conf = supervisord_conf!(
        r#"[program:sleeper]
command=/bin/sleep 100000

[program:keeper]
command=/bin/sleep 100004

[program:failer]
command=/bin/sh -c "exit 1"
startretries=0

[program:a]
command=/bin/sleep 100001

[program:b]
command=/bin/sleep 100002

[group:grp]
programs=a,b
"#
    );
    let mut p = Pair::start(venv, conf, &[]);
    use How::*;
    let settled = [
        ("failer", "FATAL"),
        ("grp:a", "RUNNING"),
        ("grp:b", "RUNNING"),
        ("keeper", "RUNNING"),
        ("sleeper", "RUNNING"),
    ];
    p.wait_states(&settled);
    p.same(&["reread"], 0, Exact); // No config updates to processes
    p.same(&["update"], 0, Exact); // nothing
    p.same(&["avail"], 0, Exact);

    // sleeper changed, failer gone, cat new (not autostarted), grp:b changed.
    let changed = conf
        .replace("/bin/sleep 100000", "/bin/sleep 100009")
        .replace(
            "[program:failer]\ncommand=/bin/sh -c \"exit 1\"\nstartretries=0\n",
            "",
        )
        .replace("/bin/sleep 100002", "/bin/sleep 100008")
        + "\n[program:cat]\ncommand=/bin/cat\nautostart=false\n";
    p.rewrite(&changed);
    p.same(&["reread"], 0, Exact);
    p.same(&["avail"], 0, Exact);
    p.same(&["status"], 3, Exact);
    p.same(&["update", "sleeper"], 0, Exact);
    p.wait_states(&[("sleeper", "RUNNING")]);
    p.same(&["status"], 3, Exact);
    p.same(&["update", "nosuch"], 1, Exact);
    p.same(&["update"], 0, Exact);
    p.wait_states(&[("grp:a", "RUNNING"), ("grp:b", "RUNNING")]);
    p.same(&["status"], 3, Exact);
    p.same(&["avail"], 0, Exact);
    p.same(&["reread"], 0, Exact);

    p.same(&["remove", "cat"], 0, Exact);
    p.same(&["remove", "cat"], 1, Exact); // no such process/group
    p.same(&["remove", "sleeper"], 1, Exact); // still running
    p.same(&["avail"], 0, Exact);
    p.same(&["add", "cat"], 0, Exact);
    p.same(&["add", "cat"], 0, Exact); // already active
    p.same(&["add", "nosuch"], 1, Exact);
    p.same(&["status", "cat"], 3, Exact);
    p.same(&["start", "cat"], 0, Exact);
    p.same(&["stop", "grp:*"], 0, AnyOrder);
    p.same(&["remove", "grp"], 0, Exact);
    p.same(&["status"], 0, Exact);
    p.same(&["reread"], 0, Exact); // grp: available again
    p.same(&["add", "grp"], 0, Exact);
    p.wait_states(&[("grp:a", "RUNNING"), ("grp:b", "RUNNING")]);
    p.same(&["status"], 0, Exact);

    // A broken file: the error, and nothing changes.
    p.rewrite(&changed.replace("[program:cat]", "[program:cat]\nnumprocs=x"));
    // Documented difference: the message of CANT_REREAD is tend's own
    // diagnostic (FILE:LINE:COL: ...), not Python's exception text.
    for args in [&["reread"][..], &["update"][..]] {
        let (sup, tend) = p.both(args);
        let here = p.side(Kind::Tend).dir.join("supervisord.conf:");
        let ok = tend.code == sup.code
            && tend.stdout.contains("CANT_REREAD: ")
            && tend.stdout.contains(&*here.to_string_lossy())
            && tend
                .stdout
                .contains("invalid literal for int() with base 10: 'x'");
        assert_eq!(sup.code, Some(1), "supervisord: {sup:?}");
        if !ok {
            p.differ(&format!("{} (a broken file)", args[0]), &sup, &tend);
        }
    }
    p.same(&["status"], 0, Exact);
    p.finish();
}

/// shutdown; then the socket is gone.
#[test]
fn shutdown() {
    let Some(mut p) = base_pair() else { return };
    p.same(&["shutdown"], 0, How::Exact);
    let mut codes = Vec::new();
    for kind in [Kind::Supervisord, Kind::Tend] {
        let code = p.wait_daemon_exit(kind, Duration::from_secs(30));
        codes.push(code);
    }
    assert_eq!(codes[0], Some(0), "supervisord's exit after shutdown");
    if codes[1] != codes[0] {
        p.diffs.push(format!(
            "exit status of the daemon after `supervisorctl shutdown`: supervisord {:?}, tend {:?}",
            codes[0], codes[1]
        ));
    }
    for kind in [Kind::Supervisord, Kind::Tend] {
        if p.side(kind).dir.join("supervisor.sock").exists() {
            assert_eq!(kind, Kind::Tend, "supervisord left its socket");
            p.diffs
                .push("tend left {HERE}/supervisor.sock behind after shutdown".to_string());
        }
    }
    p.same(&["status"], 4, How::Exact); // ... no such file
    p.same(&["shutdown"], 1, How::Exact); // ERROR: ... (already shut down?)
    p.same(&["pid"], 7, How::Exact);
    p.finish();
}

// ---------------------------------------------------------------------------
// Event listeners: the same Python listener (superlance-style, on
// `supervisor.childutils`) under both daemons.

/// Records every event as a JSON line; rejects (`FAIL`) the first delivery
/// of each event about `rejected`, so the resend can be seen.
const LISTENER: &str = r#"import json, sys
from supervisor import childutils
path = sys.argv[1]
failed = set()
while True:
    headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
    with open(path, "a") as f:
        f.write(json.dumps({"headers": headers, "payload": payload}) + "\n")
    if "processname:rejected " in payload and headers["serial"] not in failed:
        failed.add(headers["serial"])
        childutils.listener.fail(sys.stdout)
    else:
        childutils.listener.ok(sys.stdout)
"#;

const EVENTS_CONF: &str = r#"[unix_http_server]
file=%(here)s/supervisor.sock

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s/logs
identifier=evsup

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:sleeper]
command=/bin/sleep 100000

[program:crasher]
command=/bin/sh -c "sleep 2; exit 3"
autorestart=false

[program:finisher]
command=/bin/sh -c "sleep 2; exit 0"

[program:failer]
command=/bin/sh -c "exit 1"
startretries=1

[program:rejected]
command=/bin/sleep 100005
startsecs=0

[program:talker]
command=/bin/sh -c "echo hello from talker; echo oops from talker >&2; exec sleep 100006"
stdout_events_enabled=true
stderr_events_enabled=true

[program:member]
command=/bin/sleep 100007

[group:grp]
programs=member

[eventlistener:listener]
command={PYTHON} -u {ROOT}/listener.py %(here)s/events.jsonl
events=PROCESS_STATE,TICK_5,PROCESS_LOG
; Everything that happens before the listener is RUNNING waits in the buffer;
; with the default 10 the oldest would be dropped, in an order that depends
; on timing.
buffer_size=100
"#;

/// One delivered event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub headers: BTreeMap<String, String>,
    pub payload: String,
}

pub fn read_events(path: &Path) -> Vec<Delivered> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| Delivered {
            headers: v["headers"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            payload: v["payload"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// The `(eventname, payload)` of each process-state event about `name`,
/// pids masked.
fn about(events: &[Delivered], name: &str) -> Vec<String> {
    let needle = format!("processname:{name} ");
    events
        .iter()
        .filter(|e| e.payload.starts_with(&needle))
        .map(|e| format!("{} {}", e.headers["eventname"], normalize(&e.payload)))
        .collect()
}

#[test]
fn event_listener_gets_what_supervisord_sends() {
    let Some(venv) = venv() else { return };
    let mut p = Pair::start(venv, EVENTS_CONF, &[("listener.py", LISTENER)]);
    p.wait_states(&[
        ("crasher", "EXITED"),
        ("failer", "FATAL"),
        ("finisher", "EXITED"),
        ("listener", "RUNNING"),
        ("rejected", "RUNNING"),
        ("sleeper", "RUNNING"),
        ("talker", "RUNNING"),
        ("grp:member", "RUNNING"),
    ]);
    p.same(&["stop", "sleeper"], 0, How::Exact);
    let files: Vec<PathBuf> = [Kind::Supervisord, Kind::Tend]
        .iter()
        .map(|&k| p.side(k).dir.join("events.jsonl"))
        .collect();
    // Everything so far has been delivered once a TICK_5 has come after it.
    let mut all = Vec::new();
    for (kind, file) in [Kind::Supervisord, Kind::Tend].into_iter().zip(&files) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut events = read_events(file);
        loop {
            let stopped_at = events.iter().position(|e| {
                e.headers.get("eventname").map(String::as_str) == Some("PROCESS_STATE_STOPPED")
                    && e.payload.starts_with("processname:sleeper ")
            });
            let tick_after = stopped_at.is_some_and(|i| {
                events[i..]
                    .iter()
                    .any(|e| e.headers.get("eventname").map(String::as_str) == Some("TICK_5"))
            });
            if tick_after || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            events = read_events(file);
        }
        assert!(
            kind == Kind::Tend || !events.is_empty(),
            "supervisord's listener got nothing"
        );
        all.push(events);
    }
    let (sup, tend) = (&all[0], &all[1]);

    for name in [
        "sleeper", "crasher", "finisher", "failer", "rejected", "listener", "talker", "member",
    ] {
        let (want, got) = (about(sup, name), about(tend, name));
        assert!(!want.is_empty(), "supervisord sent nothing about {name}");
        if want != got {
            p.diffs.push(format!(
                "events about {name}:\n  supervisord: {want:#?}\n  tend: {got:#?}"
            ));
        }
    }
    for (kind, events) in [(Kind::Supervisord, sup), (Kind::Tend, tend)] {
        let mut problems = Vec::new();
        let mut last_serial = -1i64;
        for e in events {
            let h = &e.headers;
            let field = |k: &str| h.get(k).map(String::as_str).unwrap_or("");
            if field("ver") != "3.0" || field("server") != "evsup" || field("pool") != "listener" {
                problems.push(format!("bad header {h:?}"));
            }
            if field("len").parse::<usize>().ok() != Some(e.payload.chars().count()) {
                problems.push(format!("len does not match the payload: {e:?}"));
            }
            let serial: i64 = field("serial").parse().unwrap_or(-2);
            // A rejected event comes again with its serial; otherwise serials grow.
            let resent = e.payload.starts_with("processname:rejected ") && serial == last_serial;
            if serial <= last_serial && !resent {
                problems.push(format!("serial {serial} after {last_serial}"));
            }
            last_serial = last_serial.max(serial);
            if field("eventname") == "TICK_5" {
                let when: i64 = e
                    .payload
                    .strip_prefix("when:")
                    .and_then(|w| w.parse().ok())
                    .unwrap_or(1);
                if when % 5 != 0 {
                    problems.push(format!("TICK_5 not on a 5 s boundary: {e:?}"));
                }
            }
        }
        if !events
            .iter()
            .any(|e| e.headers.get("eventname").map(String::as_str) == Some("TICK_5"))
        {
            problems.push("no TICK_5".to_string());
        }
        if !problems.is_empty() {
            assert_eq!(kind, Kind::Tend, "supervisord: {problems:#?}");
            p.diffs.push(format!("tend's envelopes: {problems:#?}"));
        }
    }
    p.finish();
}

/// What each side's listener wrote to `file` (in its directory), one
/// `EVENTNAME payload` per event with pids masked, read again until `done`
/// holds for it or 20 s have passed: (supervisord's, tend's).
fn events_when(
    p: &Pair,
    file: &str,
    done: impl Fn(&[String]) -> bool,
) -> (Vec<String>, Vec<String>) {
    let read = |kind: Kind| -> Vec<String> {
        read_events(&p.side(kind).dir.join(file))
            .iter()
            .map(|e| format!("{} {}", e.headers["eventname"], normalize(&e.payload)))
            .collect()
    };
    let until_done = |kind: Kind| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut events = read(kind);
        while !done(&events) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            events = read(kind);
        }
        events
    };
    (until_done(Kind::Supervisord), until_done(Kind::Tend))
}

const GROUP_EVENTS_CONF: &str = r#"[unix_http_server]
file=%(here)s/supervisor.sock

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s/logs
identifier=evsup

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:late]
command=/bin/sleep 100010
priority=50

[program:early]
command=/bin/sleep 100011
priority=5

[program:member]
command=/bin/sleep 100012

[group:grp]
programs=member
priority=20

; Equal priorities (999): supervisord adds [group:x] sections before
; programs, each kind in file order.
[program:zeta]
command=/bin/sleep 100014

[program:omega]
command=/bin/sleep 100015

[group:tail]
programs=omega

[eventlistener:listener]
command={PYTHON} -u {ROOT}/listener.py %(here)s/events.jsonl
events=PROCESS_GROUP,SUPERVISOR_STATE_CHANGE
buffer_size=100
"#;

/// `PROCESS_GROUP_ADDED` for every group at start (by priority, before
/// `SUPERVISOR_STATE_CHANGE_RUNNING`), then for a group `update` adds, and
/// `PROCESS_GROUP_REMOVED` for one `remove` takes away: the same events in
/// the same order as supervisord's.
#[test]
fn process_group_events_match_supervisord() {
    let Some(venv) = venv() else { return };
    let mut p = Pair::start(venv, GROUP_EVENTS_CONF, &[("listener.py", LISTENER)]);
    p.wait_states(&[
        ("early", "RUNNING"),
        ("grp:member", "RUNNING"),
        ("late", "RUNNING"),
        ("listener", "RUNNING"),
        ("tail:omega", "RUNNING"),
        ("zeta", "RUNNING"),
    ]);
    p.rewrite(&format!(
        "{GROUP_EVENTS_CONF}\n[program:added]\ncommand=/bin/sleep 100013\n"
    ));
    p.same(&["update"], 0, How::Exact);
    p.wait_states(&[
        ("added", "RUNNING"),
        ("early", "RUNNING"),
        ("grp:member", "RUNNING"),
        ("late", "RUNNING"),
        ("listener", "RUNNING"),
        ("tail:omega", "RUNNING"),
        ("zeta", "RUNNING"),
    ]);
    p.same(&["stop", "late"], 0, How::Exact);
    p.same(&["remove", "late"], 0, How::Exact);
    let want_last = "PROCESS_GROUP_REMOVED groupname:late\n";
    let (sup, tend) = events_when(&p, "events.jsonl", |events| {
        events.last().map(String::as_str) == Some(want_last)
    });
    let (sup, tend) = (&sup, &tend);
    assert!(
        sup.last().map(String::as_str) == Some(want_last),
        "supervisord's listener did not get the removal: {sup:#?}"
    );
    if sup != tend {
        p.diffs.push(format!(
            "PROCESS_GROUP events:\n  supervisord: {sup:#?}\n  tend: {tend:#?}"
        ));
    }
    p.finish();
}

const NO_LISTENER_CONF: &str = r#"[unix_http_server]
file=%(here)s/supervisor.sock

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s/logs
identifier=evsup

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:sleeper]
command=/bin/sleep 100020
"#;

/// An `[eventlistener:x]` that `update` adds to a running daemon (which had
/// none) gets events from then on: its own start, the groups added after
/// it, a stop. The same events in the same order as under supervisord.
#[test]
fn a_listener_pool_added_by_update_gets_events() {
    let Some(venv) = venv() else { return };
    let mut p = Pair::start(venv, NO_LISTENER_CONF, &[("listener.py", LISTENER)]);
    p.wait_states(&[("sleeper", "RUNNING")]);
    p.rewrite(&format!(
        "{NO_LISTENER_CONF}\n[eventlistener:late]\n\
         command={{PYTHON}} -u {{ROOT}}/listener.py %(here)s/late.jsonl\n\
         events=PROCESS_STATE,PROCESS_GROUP\nbuffer_size=100\n"
    ));
    p.same(&["update"], 0, How::Exact);
    p.wait_states(&[("late", "RUNNING"), ("sleeper", "RUNNING")]);
    p.same(&["stop", "sleeper"], 0, How::Exact);
    let want_last = "PROCESS_STATE_STOPPED";
    let (sup, tend) = events_when(&p, "late.jsonl", |events| {
        events.last().is_some_and(|l| l.starts_with(want_last))
    });
    let (sup, tend) = (&sup, &tend);
    assert!(
        sup.last().is_some_and(|l| l.starts_with(want_last)),
        "supervisord's new listener did not see the stop: {sup:#?}"
    );
    if sup != tend {
        p.diffs.push(format!(
            "events of the pool added by update:\n  supervisord: {sup:#?}\n  tend: {tend:#?}"
        ));
    }
    p.finish();
}

/// A pool that `update` removes stops hearing events, and when `update`
/// adds it again it starts afresh: nothing that happened meanwhile reaches
/// it. The same events in the same order as under supervisord.
#[test]
fn a_listener_pool_removed_by_update_starts_afresh_when_added_again() {
    let Some(venv) = venv() else { return };
    let with_pool = format!(
        "{NO_LISTENER_CONF}\n[eventlistener:late]\n\
         command={{PYTHON}} -u {{ROOT}}/listener.py %(here)s/late.jsonl\n\
         events=PROCESS_STATE,PROCESS_GROUP\nbuffer_size=100\n"
    );
    let mut p = Pair::start(venv, &with_pool, &[("listener.py", LISTENER)]);
    p.wait_states(&[("late", "RUNNING"), ("sleeper", "RUNNING")]);
    p.rewrite(NO_LISTENER_CONF);
    p.same(&["update"], 0, How::Exact);
    p.wait_states(&[("sleeper", "RUNNING")]);
    // While the pool is gone.
    p.same(&["stop", "sleeper"], 0, How::Exact);
    p.same(&["start", "sleeper"], 0, How::Exact);
    p.rewrite(&with_pool);
    p.same(&["update"], 0, How::Exact);
    p.wait_states(&[("late", "RUNNING"), ("sleeper", "RUNNING")]);
    let second_run = |events: &[String]| {
        events
            .iter()
            .filter(|e| e.starts_with("PROCESS_STATE_RUNNING processname:late "))
            .count()
            >= 2
    };
    let (sup, tend) = events_when(&p, "late.jsonl", second_run);
    assert!(
        second_run(&sup),
        "supervisord's listener did not run twice: {sup:#?}"
    );
    if sup != tend {
        p.diffs.push(format!(
            "events of a pool removed and added again:\n  supervisord: {sup:#?}\n  tend: {tend:#?}"
        ));
    }
    p.finish();
}

/// HTTP Basic auth on the Unix socket (`{SHA}` password) and on TCP
/// (`[inet_http_server]`), for XML-RPC and for `tail -f`.
#[test]
fn authentication_on_the_socket_and_on_tcp() {
    let Some(venv) = venv() else { return };
    // {SHA} of "secret".
    let conf = r#"[unix_http_server]
file=%(here)s/supervisor.sock
username=admin
password={SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4

[inet_http_server]
port=127.0.0.1:{PORT}
username=admin
password=secret

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s/logs

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock
username=admin
password=secret

[program:printer]
command={PYTHON} -u {ROOT}/printer.py

[program:sleeper]
command=/bin/sleep 100000
"#;
    let mut p = Pair::start(venv, conf, &[("printer.py", PRINTER)]);
    use How::*;
    p.wait_states(&[("printer", "RUNNING"), ("sleeper", "RUNNING")]);
    let tcp = "http://127.0.0.1:{PORT}";
    p.same(&["status"], 0, Exact);
    p.same(&["-s", tcp, "status"], 0, Exact);
    p.same(&["-s", tcp, "stop", "sleeper"], 0, Exact);
    p.same(&["-s", tcp, "start", "sleeper"], 0, Exact);
    p.same(&["-s", tcp, "tail", "printer"], 0, Exact);
    // Wrong credentials: "Server requires authentication", then the error.
    p.same(&["-p", "wrong", "status"], 1, Exact);
    p.same(&["-s", tcp, "-p", "wrong", "status"], 1, Exact);
    p.same(&["-s", tcp, "-u", "nobody", "status"], 1, Exact);
    p.same(&["-p", "wrong", "pid"], 1, Exact);

    // tail -f over TCP sends the credentials on its own HTTP request.
    let mut outs = Vec::new();
    for kind in [Kind::Supervisord, Kind::Tend] {
        let bg = Background::spawn(
            p.ctl_command(kind, &["-s", tcp, "tail", "-f", "printer"]),
            false,
        );
        let started = bg.wait_for("printer out 2\n", Duration::from_secs(10));
        let sig = p.ctl(kind, &["signal", "USR1", "printer"]);
        let followed = started && bg.wait_for("printer tick 1\n", Duration::from_secs(10));
        let out = bg.interrupt(Duration::from_secs(10));
        if kind == Kind::Supervisord {
            assert!(
                followed && sig.code == Some(0),
                "supervisord's tail -f: {out:?}"
            );
        }
        outs.push(out);
    }
    let tend = outs.pop().expect("two");
    let sup = outs.pop().expect("two");
    p.compare(
        "-s http://127.0.0.1:{PORT} tail -f printer",
        sup,
        tend,
        Exact,
    );
    p.finish();
}

/// What a multi-host dashboard built on Supervisor's XML-RPC does (cesi,
/// multivisor): poll `getAllProcessInfo` (and `getState`,
/// `getSupervisorVersion`) on each machine's `http://HOST:PORT/RPC2`, and
/// show name, group, state, exit status, spawn error and whether a pid is
/// there. Printed per poll, the pids and times reduced to "there or not".
const POLLER: &str = r#"
import json, sys, time, xmlrpc.client
url = sys.argv[1]
proxy = xmlrpc.client.ServerProxy(url)
polls = []
for _ in range(3):
    state = proxy.supervisor.getState()
    procs = []
    for p in proxy.supervisor.getAllProcessInfo():
        procs.append({
            'name': p['name'], 'group': p['group'], 'statename': p['statename'],
            'state': p['state'], 'exitstatus': p['exitstatus'],
            'spawnerr': p['spawnerr'], 'has_pid': p['pid'] > 0,
            'started': p['start'] > 0, 'now': p['now'] > 0,
            'keys': sorted(p.keys()),
        })
    polls.append({'state': state, 'procs': procs,
                  'version': isinstance(proxy.supervisor.getSupervisorVersion(), str)})
    time.sleep(0.2)
print(json.dumps(polls, sort_keys=True))
"#;

/// The poller of a dashboard sees on tend what it sees on supervisord, over
/// TCP (`http://127.0.0.1:PORT`), one daemon per "machine".
#[test]
fn a_getallprocessinfo_poller_sees_the_same_as_against_supervisord() {
    let Some(venv) = venv() else { return };
    let conf = r#"[unix_http_server]
file=%(here)s/supervisor.sock

[inet_http_server]
port=127.0.0.1:{PORT}

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s/logs

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:sleeper]
command=/bin/sleep 100000

[program:idle]
command=/bin/sleep 100000
autostart=false

[program:quitter]
command=/bin/sh -c "exit 3"
startsecs=0
autorestart=false

[group:pair]
programs=sleeper,idle
"#;
    let mut p = Pair::start(venv, conf, &[("poller.py", POLLER)]);
    p.wait_states(&[
        ("pair:sleeper", "RUNNING"),
        ("pair:idle", "STOPPED"),
        ("quitter", "EXITED"),
    ]);
    let poll = |p: &Pair, kind: Kind| {
        let side = p.side(kind);
        let mut cmd = Command::new(&p.venv.python);
        cmd.arg(p.root().join("poller.py"))
            .arg(format!("http://127.0.0.1:{}/RPC2", side.port));
        run_with_timeout(cmd, None, CTL_TIMEOUT)
    };
    let sup = poll(&p, Kind::Supervisord);
    assert_eq!(sup.code, Some(0), "the poller against supervisord: {sup:?}");
    assert!(sup.stdout.contains("\"statename\": \"EXITED\""), "{sup:?}");
    let tend = poll(&p, Kind::Tend);
    p.compare("(getAllProcessInfo poller)", sup, tend, How::Exact);
    p.finish();
}
