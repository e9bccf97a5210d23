//! tend as a drop-in for supervisord, side by side with the real one on the
//! same config, comparing what a user sees: the command line (every flag,
//! run through a `supervisord` link made by `tend
//! install-supervisor-links`), the main log (the sentences for each event at
//! each level), the respawn rate of a program that exits at once, odd names
//! through supervisorctl and XML-RPC, a file with a broken program, a
//! read-only config folder, `exitstatus`, `numprocs_start`, pidproxy, and
//! a line without its newline in the log file, `tail -f` and `fg`.

// This test binary has no reaper: waiting for the programs it starts is its job.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::harness::{TEND, TestEnv, wait_until};
use crate::supervisorctl::{
    Background, How, Kind, Launch, Out, Pair, Venv, normalize, run_with_timeout, venv,
};

const RUN: Duration = Duration::from_secs(30);

/// `supervisord` and `pidproxy` links to tend in `dir`, made as a user would.
fn links(env: &TestEnv) -> PathBuf {
    let dir = env.dir.path().join("bin");
    fs::create_dir_all(&dir).expect("mkdir bin");
    let run = env.tend_bare(&["install-supervisor-links", &dir.to_string_lossy()]);
    assert_eq!(run.code, Some(0), "install-supervisor-links: {run}");
    for name in ["supervisord", "pidproxy"] {
        assert!(
            run.stdout
                .contains(&format!("{} -> ", dir.join(name).display())),
            "{run}"
        );
        assert!(fs::symlink_metadata(dir.join(name)).is_ok());
    }
    // Again: nothing to do, and said so.
    let again = env.tend_bare(&["install-supervisor-links", &dir.to_string_lossy()]);
    assert_eq!(again.code, Some(0), "{again}");
    assert!(again.stdout.contains("(already)"), "{again}");
    dir
}

fn python_dirname(p: &Path) -> String {
    p.parent()
        .and_then(Path::parent)
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `PROG ARGS` for both, in `cwd`, with the marker; outputs with each
/// program's path as `PROG` and its installation directory as `{HERE}`.
fn both_cli(venv: &Venv, link: &Path, env: &TestEnv, cwd: &Path, args: &[&str]) -> (Out, Out) {
    let run = |prog: &Path| {
        let mut c = Command::new(prog);
        c.args(args)
            .current_dir(cwd)
            .env("TEND_TEST_MARKER", &env.marker);
        let out = run_with_timeout(c, None, RUN);
        let here = python_dirname(prog);
        let fix = |s: &str| {
            // Python's warning names its own file and line; ours the program.
            let s: String = s
                .lines()
                .filter(|l| l.trim() != "self.warnings.warn(")
                .map(|l| {
                    if l.contains("UserWarning: Supervisord is running as root") {
                        "{WARNING}"
                    } else {
                        l
                    }
                })
                .map(|l| format!("{l}\n"))
                .collect();
            s.replace(&*prog.to_string_lossy(), "PROG")
                .replace(&here, "{HERE}")
        };
        Out {
            code: out.code,
            stdout: fix(&out.stdout),
            stderr: fix(&out.stderr),
        }
    };
    (run(&venv.supervisord), run(&link.join("supervisord")))
}

#[test]
fn the_command_line_is_supervisords() {
    let Some(venv) = venv() else { return };
    let env = TestEnv::new("");
    let bin = links(&env);
    let empty = env.dir.path().join("empty");
    fs::create_dir_all(&empty).expect("mkdir");
    let missing = "/nonexistent-tend-test/supervisord.conf";
    let mut cases: Vec<Vec<&str>> = [
        "-x",
        "--foo",
        "--no",
        "--nodaemon=1",
        "-m x",
        "--umask x",
        "-d /nope",
        "-l /nope/x.log",
        "-y x",
        "-z x",
        "-e loud",
        "--loglevel=loud",
        "-a x",
        "--minprocs x",
        "-j /nope/p",
        "-q /nope",
        "-n -n",
        "-c a -c b",
        "-nkts",
        "-u nosuchuser",
        "-i ident -m 022 -e debug -y 1MB -z 2 -a 100 --minprocs 10 --profile_options=calls",
        "--user=root --strip_ansi --nocleanup --silent --nodaemon",
        "pos1 pos2",
        "-v",
        "--version",
        "--vers",
        "-h",
        "-?",
        "--help",
    ]
    .iter()
    .map(|c| c.split_whitespace().collect())
    .collect();
    // With a config that is not there, supervisord and tend stop at it.
    for c in &mut cases {
        c.extend(["-c", missing]);
    }
    cases.push(vec!["-c"]);
    cases.push(vec!["--configuration"]);
    let mut diffs = Vec::new();
    for case in &cases {
        let (sup, tend) = both_cli(&venv, &bin, &env, &empty, case);
        // The oracle: supervisord itself gives usage errors (2), or 0 for
        // -h and -v.
        assert!(matches!(sup.code, Some(0 | 2)), "{case:?}: {sup:?}");
        if sup != tend {
            diffs.push(format!(
                "{case:?}\n  supervisord: {sup:?}\n  tend:        {tend:?}"
            ));
        }
    }
    // Without -c, the search (when no config is at the default paths).
    let defaults = ["/etc/supervisord.conf", "/etc/supervisor/supervisord.conf"];
    if defaults.iter().all(|p| !Path::new(p).exists()) {
        let (sup, tend) = both_cli(&venv, &bin, &env, &empty, &[]);
        assert_eq!(sup.code, Some(2), "{sup:?}");
        if sup != tend {
            diffs.push(format!(
                "(no -c)\n  supervisord: {sup:?}\n  tend:        {tend:?}"
            ));
        }
    }
    // `tend supervisord ARGS` is the same command.
    let v = env.tend_bare(&["supervisord", "-v"]);
    assert_eq!((v.code, v.stdout.as_str()), (Some(0), "4.3.0\n"), "{v}");
    assert!(diffs.is_empty(), "{}", diffs.join("\n\n"));
}

/// A config whose every path is `%(here)s/...` but the ones the command
/// line gives, and a program that says where it runs, its umask, and
/// something in colour.
const OPTIONS_CONF: &str = r#"[unix_http_server]
file=%(here)s/supervisor.sock

[supervisord]
logfile=%(here)s/file.log
pidfile=%(here)s/file.pid

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:where]
command=/bin/sh -c "pwd; umask; printf '\033[31mred\033[0m\n'; exec sleep 100000"
"#;

/// A daemon that went to the background: killed by its pid file when dropped.
struct Detached(PathBuf);

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(pid) = read_pid(&self.0) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if alive(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    // A zombie (reaped by init later) counts as gone.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn command_line_options_take_effect_and_the_daemon_detaches() {
    let Some(venv) = venv() else { return };
    let env = TestEnv::new("");
    let bin = links(&env);
    let root = env.dir.path().to_path_buf();
    let mut facts: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (kind, prog) in [
        ("supervisord", venv.supervisord.clone()),
        ("tend", bin.join("supervisord")),
    ] {
        let dir = root.join(kind);
        let (childlogs, work, run) = (dir.join("childlogs"), dir.join("work"), dir.join("run"));
        for d in [&childlogs, &work, &run] {
            fs::create_dir_all(d).expect("mkdir");
        }
        let conf = dir.join("supervisord.conf");
        fs::write(&conf, OPTIONS_CONF).expect("conf");
        let log = run.join("cli.log");
        let pidfile = run.join("cli.pid");
        let mut c = Command::new(&prog);
        c.args(["-c", &conf.to_string_lossy()])
            .args([
                "-l",
                &log.to_string_lossy(),
                "-j",
                &pidfile.to_string_lossy(),
            ])
            .args(["-i", "cliident", "-q", &childlogs.to_string_lossy()])
            .args(["-e", "debug", "-y", "1MB", "-z", "2", "-a", "256"])
            .args(["--minprocs", "50", "-k", "-t", "-m", "027"])
            .args(["-d", &work.to_string_lossy(), "-u", "root"])
            .current_dir(&dir)
            .env("TEND_TEST_MARKER", &env.marker);
        let started = Instant::now();
        let out = run_with_timeout(c, None, RUN);
        let _guard = Detached(pidfile.clone());
        // It forks and returns at once, quietly, as supervisord does.
        assert_eq!(out.code, Some(0), "{kind}: {out:?}");
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str()),
            ("", ""),
            "{kind}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{kind}");
        let ctl = |args: &[&str]| {
            let mut c = Command::new(&venv.ctl);
            c.arg("-c").arg(&conf).args(args).current_dir(&dir);
            run_with_timeout(c, None, RUN)
        };
        wait_until(&format!("{kind}: where RUNNING"), RUN, || {
            ctl(&["status", "where"]).stdout.contains("RUNNING")
        });
        let pid = read_pid(&pidfile);
        assert!(
            pid.is_some_and(alive),
            "{kind}: the pid file names the daemon"
        );
        let text = fs::read_to_string(&log).unwrap_or_default();
        let mut f = Vec::new();
        for (label, want) in [
            ("-u", "INFO Set uid to user 0 succeeded".to_string()),
            (
                "daemonizing",
                "INFO daemonizing the supervisord process".to_string(),
            ),
            (
                "-d",
                format!("INFO set current directory: '{}'", work.display()),
            ),
            (
                "the pid",
                format!("INFO supervisord started with pid {}", pid.unwrap_or(0)),
            ),
            ("-e debug", "DEBG ".to_string()),
        ] {
            f.push(format!("log has {label}: {}", text.contains(&want)));
        }
        f.push(format!(
            "no root warning with -u: {}",
            !text.contains("CRIT Supervisor is running as root")
        ));
        // -q and -i: the AUTO log is in childlogs, named with the identifier.
        let autos: Vec<String> = fs::read_dir(&childlogs)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("where-stdout---cliident-"))
                    .collect()
            })
            .unwrap_or_default();
        f.push(format!("AUTO logs in -q named by -i: {}", autos.len()));
        let tail = ctl(&["tail", "where"]);
        // -d, -m and -t: its directory, its umask, colours stripped.
        f.push(format!(
            "tail: {:?}",
            tail.stdout.replace(&*work.to_string_lossy(), "{WORK}")
        ));
        let id = crate::xmlrpc::rpc(
            &format!("unix://{}", dir.join("supervisor.sock").display()),
            "supervisor.getIdentification",
            json!([]),
        );
        f.push(format!("identification: {id}"));
        let shut = ctl(&["shutdown"]);
        f.push(format!("shutdown: {:?} {:?}", shut.code, shut.stdout));
        let gone = pid.is_some_and(|p| {
            let deadline = Instant::now() + Duration::from_secs(15);
            while alive(p) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            !alive(p)
        });
        f.push(format!("gone after shutdown: {gone}"));
        f.push(format!("pid file removed: {}", !pidfile.exists()));
        facts.insert(kind, f);
    }
    assert_eq!(facts["tend"], facts["supervisord"]);
    assert!(
        facts["supervisord"]
            .iter()
            .all(|f| !f.ends_with(": false") && !f.ends_with(": 0")),
        "the oracle: {:#?}",
        facts["supervisord"]
    );
}

// ---------------------------------------------------------------------------
// The main log.

/// One line of a main log: its level and message (a message may span lines).
fn log_lines(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        // `2026-12-03 10:15:01,234 INFO message`
        let b = line.as_bytes();
        let stamped = b.len() > 29
            && b[4] == b'-'
            && b[10] == b' '
            && b[19] == b','
            && b[23] == b' '
            && b[28] == b' ';
        if stamped {
            out.push((line[24..28].to_string(), line[29..].to_string()));
        } else if let Some(last) = out.last_mut() {
            last.1.push('\n');
            last.1.push_str(line);
        }
    }
    out
}

/// Pids, pool serials and fd numbers masked.
fn mask(msg: &str) -> String {
    let mut s = normalize(msg);
    for prefix in ["with pid ", "' (", "event ", "fd "] {
        let mut out = String::new();
        let mut rest = s.as_str();
        while let Some(i) = rest.find(prefix) {
            let after = i + prefix.len();
            out.push_str(&rest[..after]);
            let tail = &rest[after..];
            let n = tail.bytes().take_while(u8::is_ascii_digit).count();
            if n > 0 {
                out.push_str("{N}");
            }
            rest = &tail[n..];
        }
        out.push_str(rest);
        s = out;
    }
    s
}

/// Which process a line is about, if any.
fn about(msg: &str, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|n| {
            [
                format!("spawned: '{n}' "),
                format!("success: {n} "),
                format!("exited: {n} "),
                format!("gave up: {n} "),
                format!("stopped: {n} "),
                format!("waiting for {n} to stop"),
                format!("killing '{n}' "),
                format!("killing {n} "),
                format!("'{n}' stdout output:"),
                format!("'{n}' stderr output:"),
                format!("Attempted to kill {n},"),
                format!("{n}: "),
            ]
            .iter()
            .any(|p| msg.starts_with(p.as_str()))
        })
        .map(|n| (*n).to_string())
}

/// Lines supervisord writes that have no counterpart by design: reprs of
/// its Python objects and file descriptors.
fn python_internal(msg: &str) -> bool {
    msg.starts_with("fd ") && msg.contains("closed, stopped monitoring")
}

/// Compares two main logs: per process, the same sentences at the same
/// levels in the same order; the daemon's own lines (start-up, signals,
/// shutdown) all of supervisord's present in tend's. Returns the differences.
fn compare_logs(sup: &str, tend: &str, names: &[&str]) -> Vec<String> {
    let split = |text: &str| {
        let mut per: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut global: Vec<String> = Vec::new();
        for (level, msg) in log_lines(text) {
            if python_internal(&msg) {
                continue;
            }
            let line = format!("{level} {}", mask(&msg));
            match about(&msg, names) {
                Some(n) => per.entry(n).or_default().push(line),
                None => global.push(line),
            }
        }
        (per, global)
    };
    let (sp, sg) = split(sup);
    let (tp, tg) = split(tend);
    let mut diffs = Vec::new();
    for n in names {
        let (mut s, mut t) = (
            sp.get(*n).cloned().unwrap_or_default(),
            tp.get(*n).cloned().unwrap_or_default(),
        );
        // supervisord reports "waiting for X to stop" only when its main
        // loop finds X still stopping, which a process that dies at once
        // may or may not be: where supervisord wrote it, tend must have
        // it; where it did not, tend's is not a difference.
        let waiting = format!("INFO waiting for {n} to stop");
        if s.contains(&waiting) && !t.contains(&waiting) {
            diffs.push(format!("{n}: tend has no {waiting:?}: {t:#?}"));
        }
        s.retain(|l| *l != waiting);
        t.retain(|l| *l != waiting);
        if s != t {
            diffs.push(format!(
                "{n}:\n  supervisord: {s:#?}\n  tend:        {t:#?}"
            ));
        }
    }
    for line in &sg {
        // Whether a shutdown report ("waiting for a, b to die") is written
        // at all, and which processes it names, depends on timing: each
        // daemon writes it only while something is still up at its next
        // report (supervisord's loop ticks once a second; tend stops a
        // `sleep` in milliseconds). Its sentence is checked in
        // tend-supervisor's mainlog tests; here it is no difference.
        if line.contains("waiting for ") && line.ends_with(" to die") {
            continue;
        }
        if !tg.contains(line) {
            diffs.push(format!("tend has no {line:?} (it has {tg:#?})"));
        }
    }
    diffs
}

const LOG_CONF: &str = r#"[unix_http_server]
file=%(here)s/supervisor.sock

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s/logs
loglevel={LEVEL}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:ok]
command=/bin/sh -c "echo hello; sleep 1.5; exit 0"
autorestart=false

[program:bad]
command=/bin/sh -c "sleep 1.5; exit 3"
autorestart=false

[program:fails]
command=/bin/sh -c "echo oops >&2; exit 1"
startretries=1

[program:sleeper]
command=/bin/sleep 100000

[program:stubborn]
command=/bin/sh -c "trap '' TERM; while :; do sleep 0.1; done"
stopwaitsecs=1
"#;

const LOG_NAMES: &[&str] = &["ok", "bad", "fails", "sleeper", "stubborn"];

/// Runs the events of [`LOG_CONF`] at `level` under both daemons (tend as
/// `tend supervisord -n`), and compares their logs.
fn log_at(level: &str) -> (Pair, String, String) {
    let venv = venv().expect("checked by the caller");
    let conf = LOG_CONF.replace("{LEVEL}", level);
    let launch = Launch {
        supervisord_cli: true,
        ..Launch::default()
    };
    let mut p = Pair::start_as(venv, &conf, &[], &launch);
    p.wait_states(&[
        ("ok", "EXITED"),
        ("bad", "EXITED"),
        ("fails", "FATAL"),
        ("sleeper", "RUNNING"),
        ("stubborn", "RUNNING"),
    ]);
    p.same(&["stop", "sleeper"], 0, How::Exact);
    p.same(&["stop", "stubborn"], 0, How::Exact);
    p.same(&["start", "sleeper"], 0, How::Exact);
    for kind in [Kind::Supervisord, Kind::Tend] {
        if let Some(c) = &p.side(kind).child {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        }
    }
    for kind in [Kind::Supervisord, Kind::Tend] {
        let code = p.wait_daemon_exit(kind, RUN);
        assert_eq!(code, Some(0), "{kind:?} exits 0 after SIGTERM");
    }
    let read = |k| fs::read_to_string(p.side(k).dir.join("supervisord.log")).unwrap_or_default();
    let (s, t) = (read(Kind::Supervisord), read(Kind::Tend));
    (p, s, t)
}

#[test]
fn the_log_says_what_supervisords_says_for_each_event() {
    if venv().is_none() {
        return;
    }
    let (mut p, sup, tend) = log_at("info");
    // The oracle: supervisord wrote the sentences this test is about.
    for want in [
        "INFO spawned: 'ok' with pid ",
        "INFO success: ok entered RUNNING state, process has stayed up for > than 1 seconds (startsecs)",
        "INFO exited: ok (exit status 0; expected)",
        "WARN exited: bad (exit status 3; not expected)",
        "WARN exited: fails (exit status 1; not expected)",
        "INFO gave up: fails entered FATAL state, too many start retries too quickly",
        "WARN stopped: sleeper (terminated by SIGTERM)",
        "WARN killing 'stubborn' (",
        "WARN stopped: stubborn (terminated by SIGKILL)",
        "WARN received SIGTERM indicating exit request",
        "INFO supervisord started with pid ",
        "CRIT Server 'unix_http_server' running without any HTTP authentication checking",
    ] {
        assert!(
            sup.contains(want),
            "supervisord's log has no {want:?}:\n{sup}"
        );
    }
    let diffs = compare_logs(&sup, &tend, LOG_NAMES);
    p.diffs.extend(diffs);
    // In the foreground the log is on stdout too, and nothing else is:
    // the programs' output went to their files (no `name | line` echo).
    let out = fs::read_to_string(&p.side(Kind::Tend).out).unwrap_or_default();
    let echoed: Vec<&str> = out.lines().filter(|l| l.contains(" | ")).collect();
    if !echoed.is_empty() || !out.contains("INFO spawned: 'ok' with pid ") {
        p.diffs.push(format!("tend's stdout: {out}"));
    }
    p.finish();
}

#[test]
fn the_log_at_debug_has_the_output_and_at_critical_only_crit() {
    if venv().is_none() {
        return;
    }
    let (mut p, sup, tend) = log_at("debug");
    assert!(
        sup.contains("DEBG 'ok' stdout output:\nhello\n"),
        "supervisord's debug log:\n{sup}"
    );
    p.diffs.extend(compare_logs(&sup, &tend, LOG_NAMES));
    p.finish();
    let (mut p, sup, tend) = log_at("critical");
    let levels = |t: &str| {
        log_lines(t)
            .into_iter()
            .map(|(l, m)| format!("{l} {}", mask(&m)))
            .collect::<Vec<_>>()
    };
    assert!(levels(&sup).iter().all(|l| l.starts_with("CRIT")), "{sup}");
    if levels(&sup) != levels(&tend) {
        p.diffs.push(format!(
            "at critical:\n  supervisord: {:#?}\n  tend: {:#?}",
            levels(&sup),
            levels(&tend)
        ));
    }
    p.finish();
}

#[test]
fn undecodable_output_is_escaped_in_the_debug_log_and_the_event_exchange_is_logged() {
    let Some(venv) = venv() else { return };
    let conf = r#"[unix_http_server]
file=%(here)s/supervisor.sock

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s/logs
loglevel=debug

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:binary]
command=/bin/sh -c "printf 'hi\n\377\376x\n'; exec sleep 100000"

[eventlistener:listener]
command={PYTHON} -u {ROOT}/listener.py
events=PROCESS_STATE_RUNNING
"#;
    let listener = r#"import sys
from supervisor import childutils
while True:
    headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
    childutils.listener.ok(sys.stdout)
"#;
    let mut p = Pair::start(venv, conf, &[("listener.py", listener)]);
    p.wait_states(&[("binary", "RUNNING"), ("listener", "RUNNING")]);
    let deadline = Instant::now() + RUN;
    let read =
        |p: &Pair, k| fs::read_to_string(p.side(k).dir.join("supervisord.log")).unwrap_or_default();
    let wants = [
        "DEBG 'binary' stdout output:\nUndecodable: b'hi\\n\\xff\\xfex\\n'",
        "DEBG listener: ACKNOWLEDGED -> READY",
        "DEBG listener: event was processed",
        "DEBG listener: BUSY -> ACKNOWLEDGED",
        "DEBG 'listener' stdout output:\nb'READY\\n'",
    ];
    for kind in [Kind::Supervisord, Kind::Tend] {
        while Instant::now() < deadline && !wants.iter().all(|w| read(&p, kind).contains(w)) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let (sup, tend) = (read(&p, Kind::Supervisord), read(&p, Kind::Tend));
    for w in wants {
        assert!(sup.contains(w), "supervisord's log has no {w:?}:\n{sup}");
        if !tend.contains(w) {
            p.diffs.push(format!("tend's log has no {w:?}"));
        }
    }
    let sent = |t: &str| t.contains("DEBG event ") && t.contains(" sent to listener listener");
    if sent(&sup) != sent(&tend) {
        p.diffs.push("event sent to listener".into());
    }
    // No byte of the output is in the log raw.
    if tend.as_bytes().windows(2).any(|w| w == b"\xff\xfe") {
        p.diffs.push("tend's log has the raw bytes".into());
    }
    p.finish();
}

// ---------------------------------------------------------------------------
// A program that exits at once.

#[test]
fn a_program_that_exits_at_once_respawns_at_supervisords_pace() {
    let Some(venv) = venv() else { return };
    let conf = supervisord_conf!(
        r#"[program:hot]
command=/bin/true
startsecs=0
autorestart=true
"#
    );
    let mut p = Pair::start(venv, conf, &[]);
    std::thread::sleep(Duration::from_secs(6));
    let count = |p: &Pair, k| {
        fs::read_to_string(p.side(k).dir.join("supervisord.log"))
            .unwrap_or_default()
            .matches("spawned: 'hot' with pid ")
            .count()
    };
    let (sup, tend) = (count(&p, Kind::Supervisord), count(&p, Kind::Tend));
    // supervisord: about one a second (its loop wakes once a second).
    assert!((3..=12).contains(&sup), "supervisord spawned {sup} in 6 s");
    if !(sup / 2..=sup * 2 + 2).contains(&tend) {
        p.diffs.push(format!(
            "in 6 s supervisord spawned hot {sup} times, tend {tend} times"
        ));
    }
    let text =
        fs::read_to_string(p.side(Kind::Tend).dir.join("supervisord.log")).unwrap_or_default();
    if text.matches("hot: exits as soon as it starts").count() != 1 {
        p.diffs
            .push(format!("tend tells the respawn loop once:\n{text}"));
    }
    p.finish();
}

#[test]
fn a_native_program_that_exits_at_once_is_held_to_the_floor_and_told_once() {
    let d = crate::harness::Daemon::start(
        "[process.hot2]\ncommand = \"true\"\nbackoff = { schedule = [\"0\", \"0\"] }\n",
    );
    std::thread::sleep(Duration::from_secs(3));
    let restarts = d.proc("hot2")["restarts"].as_u64().unwrap_or(0);
    // 100 ms between spawns: about 30 in 3 s, where it used to be thousands.
    assert!((10..=40).contains(&restarts), "{restarts} restarts in 3 s");
    let log = fs::read_to_string(&d.log).unwrap_or_default();
    assert_eq!(
        log.matches("hot2: exits as soon as it starts").count(),
        1,
        "{log}"
    );
    // Its spawns are no longer an info line each.
    assert!(log.matches("hot2: spawned").count() <= 5, "{log}");
}

// ---------------------------------------------------------------------------
// Names, broken programs, exitstatus, numprocs_start.

const NAMES_CONF: &str = supervisord_conf!(
    r#"[program:web@8000]
command=/bin/sh -c "echo web up; exec sleep 100000"

[group:grp]
programs=app+worker

[program:app+worker]
command=/bin/sh -c "echo worker up; exec sleep 100000"

[program:test_öäü]
command=/bin/sh -c "echo umlauts up; exec sleep 100000"

[program:many]
command=/bin/sleep 100000
process_name=%(program_name)s_%(process_num)d
numprocs=2
numprocs_start=9223372036854775807
"#
);

#[test]
fn odd_names_through_supervisorctl_and_xmlrpc() {
    let Some(venv) = venv() else { return };
    let mut p = Pair::start(venv, NAMES_CONF, &[]);
    let names = [
        "web@8000",
        "grp:app+worker",
        "test_öäü",
        "many:many_9223372036854775807",
        "many:many_9223372036854775808",
    ];
    p.wait_states(&names.map(|n| (n, "RUNNING")));
    p.same(&["status"], 0, How::Exact);
    for spec in ["web@8000", "grp:app+worker", "grp:*", "test_öäü", "many:*"] {
        p.same(&["status", spec], 0, How::Exact);
        p.same(&["stop", spec], 0, How::AnyOrder);
        p.same(&["start", spec], 0, How::AnyOrder);
        p.same(&["restart", spec], 0, How::AnyOrder);
    }
    p.same(&["pid", "test_öäü"], 0, How::Pids);
    for spec in ["web@8000", "grp:app+worker", "test_öäü"] {
        p.same(&["tail", spec], 0, How::Exact);
        // tail -f: /logtail/NAME with the name as supervisorctl sends it.
        let mut got = Vec::new();
        for kind in [Kind::Supervisord, Kind::Tend] {
            let bg = Background::spawn(p.ctl_command(kind, &["tail", "-f", spec]), false);
            let seen = bg.wait_for(" up", Duration::from_secs(10));
            got.push((
                seen,
                normalize(&bg.interrupt(Duration::from_secs(10)).stdout),
            ));
        }
        if got[0] != got[1] {
            p.diffs.push(format!("tail -f {spec}: {got:?}"));
        }
    }
    // XML-RPC: the same structs (exitstatus 0 after the restarts: running).
    for spec in ["web@8000", "grp:app+worker", "test_öäü"] {
        let mut got = Vec::new();
        for kind in [Kind::Supervisord, Kind::Tend] {
            let url = format!(
                "unix://{}",
                p.side(kind).dir.join("supervisor.sock").display()
            );
            let mut v = crate::xmlrpc::rpc(&url, "supervisor.getProcessInfo", json!([spec]));
            if let Some(o) = v.get_mut("ok").and_then(Value::as_object_mut) {
                for k in [
                    "pid",
                    "start",
                    "now",
                    "stop",
                    "description",
                    "stdout_logfile",
                    "stderr_logfile",
                    "logfile",
                ] {
                    o.remove(k);
                }
            }
            got.push(v);
        }
        assert_eq!(got[0]["ok"]["exitstatus"], 0, "supervisord: {}", got[0]);
        if got[0] != got[1] {
            p.diffs
                .push(format!("getProcessInfo({spec}): {} vs {}", got[0], got[1]));
        }
    }
    p.finish();
}

#[test]
fn a_file_with_a_broken_program_runs_the_rest() {
    let Some(venv) = venv() else { return };
    let conf = supervisord_conf!(
        r#"[group:a]
programs=worker

[group:b]
programs=worker

[program:worker]
command=/bin/sleep 100000

[program:bad]
command=/bin/sh -c "echo a ; echo b"
startretries=0

[program:good]
command=/bin/sleep 100001
"#
    );
    let mut p = Pair::start(venv, conf, &[]);
    p.wait_states(&[
        ("good", "RUNNING"),
        ("a:worker", "RUNNING"),
        ("bad", "FATAL"),
    ]);
    p.same(&["status", "good"], 0, How::Exact);
    p.same(&["status", "a:worker"], 0, How::Exact);
    p.same(&["status", "bad"], 3, How::Exact);
    let (s, t) = p.both(&["start", "bad"]);
    p.compare("start bad", s, t, How::Exact);
    // supervisord runs b:worker too; tend's names are unique (documented).
    let b = p.ctl(Kind::Tend, &["status", "b:worker"]);
    assert_eq!(b.code, Some(4), "{b:?}");
    // tend check reports both problems with their lines, and fails.
    let conf_path = p.side(Kind::Tend).conf.clone();
    let mut c = Command::new(TEND);
    c.args(["check", "-c"]).arg(&conf_path);
    let out = run_with_timeout(c, None, RUN);
    assert_eq!(out.code, Some(1), "{out:?}");
    let at = |line: usize| format!("{}:{line}:1: error: ", conf_path.display());
    assert!(out.stderr.contains(&at(25)), "{out:?}");
    assert!(out.stderr.contains(&at(21)), "{out:?}");
    assert!(
        out.stderr
            .contains("can't parse command '/bin/sh -c \"echo a': No closing quotation"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("process name \"worker\" of [program:worker] is already used"),
        "{out:?}"
    );
    p.finish();
}

// ---------------------------------------------------------------------------
// A read-only config folder.

#[test]
fn a_config_in_a_read_only_folder_starts() {
    let Some(venv) = venv() else { return };
    let unshare_works = Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !tend_testkit::require(
        unshare_works,
        "unshare -m (root, for a read-only bind mount) is not available",
    ) {
        return;
    }
    let conf = r#"[inet_http_server]
port=127.0.0.1:{PORT}

[supervisord]
logfile=%(here)s/logs/supervisord.log
pidfile=%(here)s/logs/supervisord.pid
childlogdir=%(here)s/logs

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=http://127.0.0.1:{PORT}

[program:sleeper]
command=/bin/sleep 100000
"#;
    // The folder read-only, as a ConfigMap is; its logs/ writable.
    let script = r#"d=$PWD; mount --bind "$d/logs" "$d/logs" && mount --rbind "$d" "$d" && mount -o remount,bind,ro "$d" && touch "$d/probe" 2>/dev/null && exit 9; exec "$@""#;
    let launch = Launch {
        supervisord_cli: false,
        prefix: vec![
            "unshare".into(),
            "-m".into(),
            "sh".into(),
            "-c".into(),
            script.into(),
            "sh".into(),
        ],
    };
    let mut p = Pair::start_as(venv, conf, &[], &launch);
    p.wait_states(&[("sleeper", "RUNNING")]);
    p.same(&["status"], 0, How::Exact);
    // tend's own CLI finds the socket where the daemon put it.
    let tconf = p.side(Kind::Tend).conf.clone();
    let mut c = Command::new("unshare");
    c.args(["-m", "sh", "-c", script, "sh"])
        .current_dir(&p.side(Kind::Tend).dir)
        .arg(TEND)
        .arg("-c")
        .arg(&tconf)
        .arg("status");
    let out = run_with_timeout(c, None, RUN);
    if out.code != Some(0) || !out.stdout.contains("sleeper") {
        p.diffs
            .push(format!("tend status in the same namespace: {out:?}"));
    }
    let log =
        fs::read_to_string(p.side(Kind::Tend).dir.join("logs/supervisord.log")).unwrap_or_default();
    if !log.contains("is in a read-only folder: its socket is ") {
        p.diffs.push(format!(
            "tend's log does not say where the socket is:\n{log}"
        ));
    }
    p.finish();
}

// ---------------------------------------------------------------------------
// pidproxy.

#[test]
fn pidproxy_passes_signals_to_the_pid_in_the_file() {
    let Some(venv) = venv() else { return };
    let env = TestEnv::new("");
    let bin = links(&env);
    let sup_pidproxy = venv.supervisord.with_file_name("pidproxy");
    let mut facts = Vec::new();
    for prog in [sup_pidproxy, bin.join("pidproxy")] {
        // Usage without a command.
        let mut c = Command::new(&prog);
        c.arg("only-a-pidfile");
        let usage = run_with_timeout(c, None, RUN);
        let usage_text = usage.stdout.replace(&*prog.to_string_lossy(), "PROG");
        // A "daemon" that forks, writes its pid and waits for TERM. It writes
        // the pid itself once its trap is set: a TERM sent on the pid written
        // by its parent could come first, and kill it untrapped.
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("d.pid");
        let got = dir.path().join("got");
        let script = format!(
            "sh -c 'trap \"echo TERM > {got}; exit 0\" TERM; echo $$ > {pid}; while :; do sleep 0.1; done' & wait",
            got = got.display(),
            pid = pidfile.display()
        );
        let mut c = Command::new(&prog);
        c.arg(&pidfile)
            .args(["/bin/sh", "-c", &script])
            .env("TEND_TEST_MARKER", &env.marker);
        let mut child = c.spawn().expect("pidproxy");
        wait_until("the pid file", RUN, || read_pid(&pidfile).is_some());
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        let code = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break s.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        wait_until("the daemon got TERM", RUN, || got.exists());
        if let Some(pid) = read_pid(&pidfile) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        facts.push(format!(
            "usage exit {:?}: {usage_text:?}; after TERM: exit {code:?}, the daemon got {:?}",
            usage.code,
            fs::read_to_string(&got).unwrap_or_default()
        ));
        drop(dir);
    }
    // The shell in the middle may outlive pidproxy: end what carries the marker.
    for pid in env.marked() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    assert_eq!(facts[0], facts[1]);
}

// ---------------------------------------------------------------------------
// Output without a trailing newline.

const PROMPT_CONF: &str = supervisord_conf!(
    r#"[program:prompt]
command=/bin/sh -c 'printf "Password: "; read pw; echo "got $pw"; printf "step 1\r"; sleep 2; printf "step 2\r"; exec sleep 100000'
stdout_logfile=%(here)s/prompt.log
startsecs=0
"#
);

/// A `Password: ` prompt and a `\r` progress bar show at once in the log
/// file, `tail`, `tail -f` and `fg`, under both daemons.
#[test]
fn a_line_without_its_newline_shows_in_tail_f_and_fg() {
    let Some(venv) = venv() else { return };
    let mut p = Pair::start(venv, PROMPT_CONF, &[]);
    p.wait_states(&[("prompt", "RUNNING")]);
    let soon = Duration::from_secs(3);
    // tail -f: the prompt, though no newline follows it.
    let mut outs = Vec::new();
    for kind in [Kind::Supervisord, Kind::Tend] {
        let bg = Background::spawn(p.ctl_command(kind, &["tail", "-f", "prompt"]), false);
        let shown = bg.wait_for("Password: ", soon);
        let out = bg.interrupt(RUN);
        if kind == Kind::Supervisord {
            assert!(shown, "supervisord's tail -f shows the prompt: {out:?}");
        } else if !shown {
            p.diffs
                .push(format!("tend's tail -f did not show the prompt: {out:?}"));
        }
        outs.push(out);
    }
    let tend = outs.pop().expect("two");
    let sup = outs.pop().expect("two");
    p.compare(
        "tail -f prompt (a prompt, no newline)",
        sup,
        tend,
        How::Exact,
    );
    p.same(&["tail", "prompt"], 0, How::Exact);
    for kind in [Kind::Supervisord, Kind::Tend] {
        let file = fs::read(p.side(kind).dir.join("prompt.log")).unwrap_or_default();
        if file != b"Password: " {
            p.diffs.push(format!(
                "{kind:?}: the log file holds {:?}",
                String::from_utf8_lossy(&file)
            ));
        }
    }

    // fg: the prompt, the answer, then the progress bar's first step.
    let mut outs = Vec::new();
    for kind in [Kind::Supervisord, Kind::Tend] {
        let mut bg = Background::spawn(p.ctl_command(kind, &["fg", "prompt"]), true);
        let prompt = bg.wait_for("Password: ", soon);
        bg.write(b"hunter2\n");
        let answered = prompt && bg.wait_for("got hunter2\nstep 1\r", soon);
        // EOF ends fg; supervisorctl notices at the next output (step 2).
        let out = bg.close_and_wait(RUN);
        if kind == Kind::Supervisord {
            assert!(answered, "supervisord's fg: {out:?}");
        } else if !answered {
            p.diffs.push(format!("tend's fg: {out:?}"));
        }
        outs.push(out);
    }
    let tend = outs.pop().expect("two");
    let sup = outs.pop().expect("two");
    p.compare(
        "fg prompt (a prompt, an answer, a \\r step)",
        sup,
        tend,
        How::Exact,
    );
    p.same(&["tail", "prompt"], 0, How::Exact);
    for kind in [Kind::Supervisord, Kind::Tend] {
        let file = fs::read(p.side(kind).dir.join("prompt.log")).unwrap_or_default();
        if file != b"Password: got hunter2\nstep 1\rstep 2\r" {
            p.diffs.push(format!(
                "{kind:?}: after fg the log file holds {:?}",
                String::from_utf8_lossy(&file)
            ));
        }
    }
    p.finish();
}
