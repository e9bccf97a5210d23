//! A real daemon in a temp dir, the CLI to talk to it, and a leak check.
//!
//! Every process a test starts (the daemon, the CLI, and through the daemon's
//! environment every supervised process) carries `TEND_TEST_MARKER=<unique>`.
//! When a [`TestEnv`] is dropped it waits (with a deadline) until no live
//! process carries its marker, kills any that do, and fails the test.

// This test binary is not the daemon and has no reaper: waiting for the
// children it starts (the daemon, CLI runs) is its job.
#![allow(clippy::disallowed_methods)]

/// A supervisord.conf for a side-by-side test: the sections every one of
/// them starts with (a socket, a log and a pid file in `%(here)s`, the RPC
/// interface, supervisorctl's URL), then `$rest` (a string literal: the
/// programs). A literal itself, so it also makes a `const`.
macro_rules! supervisord_conf {
    ($rest:literal) => {
        concat!(
            "[unix_http_server]\nfile=%(here)s/supervisor.sock\n\n[supervisord]\nlogfile=%(here)s/supervisord.log\npidfile=%(here)s/supervisord.pid\nchildlogdir=%(here)s/logs\n\n[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n[supervisorctl]\nserverurl=unix://%(here)s/supervisor.sock\n\n",
            $rest
        )
    };
}

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

pub const TEND: &str = env!("CARGO_BIN_EXE_tend");

/// A temp dir with a config file, a marker, and the CLI.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub marker: String,
}

impl TestEnv {
    /// A temp dir whose `tend.toml` holds `config`.
    pub fn new(config: &str) -> TestEnv {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tend.toml");
        fs::write(&path, config).expect("write config");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let marker = format!(
            "{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let socket = dir.path().join("tend.sock");
        TestEnv {
            dir,
            config: path,
            socket,
            marker,
        }
    }

    /// A `tend` command with the marker, run in the temp dir, `-c` the config.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.bare_command(&[]);
        cmd.arg("-c").arg(&self.config).args(args);
        cmd
    }

    /// Like [`TestEnv::command`] without `-c`.
    pub fn bare_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(TEND);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("TEND_TEST_MARKER", &self.marker)
            .env_remove("TEND_SOCKET")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `tend ARGS...` to completion.
    pub fn tend(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run tend");
        Run::from(out, args)
    }

    /// Runs a command made by [`TestEnv::command`] to completion.
    pub fn run(&self, mut cmd: Command) -> Run {
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let out = cmd.output().expect("run tend");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Run::from(out, &args)
    }

    /// Runs `tend ARGS...` without `-c` to completion.
    pub fn tend_bare(&self, args: &[&str]) -> Run {
        let out = self.bare_command(args).output().expect("run tend");
        Run::from(out, args)
    }

    /// Runs `tend ARGS...` and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.tend(args);
        assert_eq!(run.code, Some(0), "tend {args:?} failed:\n{run}");
        run
    }

    /// `tend status --json [PATTERN...]`, decoded.
    pub fn status(&self, patterns: &[&str]) -> Vec<Value> {
        let mut args = vec!["status", "--json"];
        args.extend_from_slice(patterns);
        let run = self.tend(&args);
        // 3: some process is fatal or in back-off (the answer is still whole).
        assert!(
            matches!(run.code, Some(0 | 3)),
            "tend {args:?} failed:\n{run}"
        );
        match serde_json::from_str::<Value>(&run.stdout) {
            Ok(Value::Array(v)) => v,
            other => panic!("status --json is not an array: {other:?}\n{run}"),
        }
    }

    /// The status of one process.
    pub fn proc(&self, name: &str) -> Value {
        let mut v = self.status(&[name]);
        let i = v
            .iter()
            .position(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in status"));
        v.swap_remove(i)
    }

    /// The state of one process.
    pub fn state(&self, name: &str) -> String {
        self.proc(name)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The pid of one process (it must be up).
    pub fn pid(&self, name: &str) -> u32 {
        let p = self.proc(name);
        let pid = p["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has no pid: {p}"));
        u32::try_from(pid).expect("pid fits")
    }

    /// Live processes that carry this test's marker.
    pub fn marked(&self) -> Vec<u32> {
        processes_with_env(&format!("TEND_TEST_MARKER={}", self.marker))
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut left = self.marked();
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            left = self.marked();
        }
        if left.is_empty() {
            return;
        }
        let described: Vec<String> = left
            .iter()
            .map(|&p| format!("{p} {}", cmdline(p)))
            .collect();
        for &p in &left {
            let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
        }
        if !std::thread::panicking() {
            panic!("processes left behind by the test: {described:#?}");
        }
    }
}

/// A daemon running `tend up` in the foreground for a [`TestEnv`].
pub struct Daemon {
    pub child: Option<Child>,
    /// The daemon's stderr (its own log, unless `log_file` is set).
    pub log: PathBuf,
    /// The daemon's stdout (the merged output of its processes).
    pub out: PathBuf,
    // Last, so the leak check runs after the daemon is gone.
    pub env: TestEnv,
}

impl std::ops::Deref for Daemon {
    type Target = TestEnv;
    fn deref(&self) -> &TestEnv {
        &self.env
    }
}

impl Daemon {
    /// Writes `config`, starts the daemon and waits until its socket answers.
    pub fn start(config: &str) -> Daemon {
        Self::start_in(TestEnv::new(config))
    }

    /// Writes the supervisord.conf `text` into `env`'s directory, with a
    /// `logs` folder beside it, and starts a daemon for it whose socket is
    /// `supervisor.sock` there (what such configs give `[unix_http_server]`).
    pub fn start_supervisord_in(mut env: TestEnv, text: &str) -> Daemon {
        fs::create_dir_all(env.dir.path().join("logs")).expect("logs dir");
        let conf = env.dir.path().join("supervisord.conf");
        fs::write(&conf, text).expect("write conf");
        env.config = conf;
        env.socket = env.dir.path().join("supervisor.sock");
        Self::start_in(env)
    }

    /// Starts the daemon for `env` and waits until its socket answers.
    pub fn start_in(env: TestEnv) -> Daemon {
        // Files, not pipes: the daemon can never block writing its output.
        let log = env.dir.path().join("daemon.log");
        let log_file = fs::File::create(&log).expect("log file");
        let out = env.dir.path().join("daemon.out");
        let out_file = fs::File::create(&out).expect("out file");
        let child = env
            .command(&["up"])
            .env("RUST_LOG", "debug")
            .stdout(out_file)
            .stderr(log_file)
            .spawn()
            .expect("spawn tend up");
        let mut d = Daemon {
            child: Some(child),
            log,
            out,
            env,
        };
        let socket = d.env.socket.clone();
        d.wait_for(
            "the daemon's socket to accept connections",
            Duration::from_secs(10),
            |d| {
                if let Some(Ok(Some(status))) = d.child.as_mut().map(Child::try_wait) {
                    panic!("tend up exited early ({status}):\n{}", d.log_text());
                }
                std::os::unix::net::UnixStream::connect(&socket).is_ok()
            },
        );
        d
    }

    /// Starts the daemon again in the same directory, with the same config
    /// (after it exited), and waits until its socket answers. Its log and
    /// output go on in the same files.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the daemon still runs");
        let append = |p: &PathBuf| {
            fs::OpenOptions::new()
                .append(true)
                .open(p)
                .expect("log file")
        };
        let child = self
            .env
            .command(&["up"])
            .env("RUST_LOG", "debug")
            .stdout(append(&self.out))
            .stderr(append(&self.log))
            .spawn()
            .expect("spawn tend up");
        self.child = Some(child);
        let socket = self.env.socket.clone();
        self.wait_for(
            "the daemon's socket to accept connections again",
            Duration::from_secs(10),
            |d| {
                if let Some(Ok(Some(status))) = d.child.as_mut().map(Child::try_wait) {
                    panic!("tend up exited early ({status}):\n{}", d.log_text());
                }
                std::os::unix::net::UnixStream::connect(&socket).is_ok()
            },
        );
    }

    /// The daemon's pid.
    pub fn daemon_pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("daemon running")
    }

    /// The daemon's log so far: its stderr, and, for a supervisord.conf,
    /// its stdout too, where its log goes in supervisord's format (in the
    /// foreground, as supervisord's does).
    pub fn log_text(&self) -> String {
        let mut text = fs::read_to_string(&self.log).unwrap_or_default();
        if fs::read_to_string(&self.env.config).is_ok_and(|c| c.contains("[supervisord]")) {
            text.push_str(&self.out_text());
        }
        text
    }

    /// What the daemon printed on its stdout so far.
    pub fn out_text(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.out).unwrap_or_default()).into_owned()
    }

    /// Sends `sig` to the daemon and waits (with a deadline) for it to exit.
    pub fn signal_and_wait(&mut self, sig: Signal, timeout: Duration) -> std::process::ExitStatus {
        let pid = self.daemon_pid();
        let _ = kill(Pid::from_raw(pid as i32), sig);
        self.wait_exit(timeout)
    }

    /// Waits (with a deadline) for the daemon to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the daemon did not exit within {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls `cond` until it holds or `timeout` passes (then panics with `what`).
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&mut Daemon) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\ndaemon log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The outcome of one CLI run.
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output, args: &[&str]) -> Run {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tend {:?} -> {:?}\n--- stdout\n{}--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

/// Polls `cond` until it holds or `timeout` passes (then panics with `what`).
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Live children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    all_pids()
        .filter(|&p| {
            fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .is_some_and(|stat| {
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| {
                            rest.split_whitespace()
                                .nth(1)
                                .map(|pp| pp == pid.to_string())
                        })
                        .unwrap_or(false)
                })
        })
        .filter(|&p| alive(p))
        .collect()
}

/// The command line of `pid`, spaces between arguments.
pub fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim_end()
                .to_string()
        })
        .unwrap_or_default()
}

fn all_pids() -> impl Iterator<Item = u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
}

fn processes_with_env(needle: &str) -> Vec<u32> {
    let needle = needle.as_bytes();
    all_pids()
        .filter(|&p| p != std::process::id())
        .filter(|&p| {
            fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle))
        })
        .filter(|&p| alive(p))
        .collect()
}

/// Whether a path is gone.
pub fn gone(path: &Path) -> bool {
    fs::symlink_metadata(path).is_err()
}

/// A TCP port that nothing listens on now, for a daemon to listen on.
///
/// Not one the kernel hands out for `bind(0)` or outgoing connections: those
/// come from `ip_local_port_range`, where the port could be taken again
/// (by a curl of another test, or another test's `bind(0)`) between this
/// answer and the daemon's bind. Ports below that range are tried from a
/// point that depends on the test process's pid (nextest runs each test in
/// a process of its own) and a counter, and the first one that binds on
/// every interface is given.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (first, last) = if low > 12000 {
        (10000, low)
    } else {
        (low.max(1024), 65535)
    };
    let span = last - first;
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(first + (start + n.wrapping_mul(13)) % span).expect("a port");
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port between {first} and {last}");
}
