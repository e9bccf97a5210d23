//! Access control against real daemons: real Unix users (made here as
//! root, removed after), the real supervisorctl run as one of them, HTTP
//! users and tokens over TCP with curl, cross-site requests, the audit log,
//! and `tend check --who`.

// This test binary has no reaper: waiting for the programs it starts is its job.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Daemon, TEND, TestEnv, free_port, wait_until};

/// Unix users and groups made for one test, removed when dropped.
struct Accounts {
    users: Vec<String>,
    groups: Vec<String>,
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Accounts {
    fn new() -> Accounts {
        Accounts {
            users: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// A fresh name: `tnd<pid><n><what>`, short enough for useradd.
    fn name(what: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        format!(
            "tnd{}{}{what}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn group(&mut self, what: &str) -> String {
        let name = Self::name(what);
        run_ok(Command::new("groupadd").arg(&name));
        self.groups.push(name.clone());
        name
    }

    fn user(&mut self, what: &str, groups: &[&str]) -> String {
        let name = Self::name(what);
        let mut cmd = Command::new("useradd");
        cmd.args(["-M", "-U", "-s", "/usr/sbin/nologin"]);
        if !groups.is_empty() {
            cmd.arg("-G").arg(groups.join(","));
        }
        run_ok(cmd.arg(&name));
        self.users.push(name.clone());
        name
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = Command::new("userdel").arg(u).output();
        }
        for g in &self.groups {
            let _ = Command::new("groupdel").arg(g).output();
        }
    }
}

/// Whether the test can make users (root with useradd and setpriv).
fn can_make_users() -> bool {
    if !tend_testkit::require_root("the test makes Unix users") {
        return false;
    }
    ["useradd", "groupadd", "setpriv", "curl"]
        .iter()
        .all(|p| tend_testkit::require_program(p).is_some())
}

/// A temp dir other users can enter, with a copy of `tend` they can run
/// (the build tree may be under a directory they cannot read).
fn open_env(env: TestEnv) -> (TestEnv, PathBuf) {
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let tend = env.dir.path().join("tend-bin");
    fs::copy(TEND, &tend).expect("copy tend");
    fs::set_permissions(&tend, fs::Permissions::from_mode(0o755)).expect("chmod");
    (env, tend)
}

/// `setpriv` as `user` (with its groups) running `program args...`.
fn as_user(user: &str, program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={user}"))
        .arg(format!("--regid={user}"))
        .arg("--init-groups")
        .arg(program)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ran(cmd: &mut Command) -> Ran {
    let out = cmd.output().expect("run");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `tend -c CONFIG ARGS...` as `user`.
fn tend_as(env: &TestEnv, tend: &Path, user: &str, args: &[&str]) -> Ran {
    let mut full = vec!["-c", env.config.to_str().expect("utf-8 path")];
    full.extend_from_slice(args);
    let mut cmd = as_user(user, tend, &full);
    cmd.current_dir(env.dir.path())
        .env("TEND_TEST_MARKER", &env.marker)
        .env_remove("TEND_SOCKET");
    ran(&mut cmd)
}

fn names(status_json: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(status_json).expect("status JSON");
    v.as_array()
        .expect("array")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A program that prints a line now and then (for the logs).
const TALKER: &str = r#"["sh", "-c", "while true; do echo tick; sleep 0.2; done"]"#;

#[test]
fn a_member_of_the_socket_group_gets_its_roles_and_nothing_more() {
    if !can_make_users() {
        return;
    }
    let mut acc = Accounts::new();
    let ops = acc.group("ops");
    let member = acc.user("in", &[&ops]);
    let outsider = acc.user("out", &[]);
    let config = format!(
        r#"
[daemon]
socket_mode = "0660"
socket_group = "{ops}"

[process.web]
command = {TALKER}
[process.db]
command = {TALKER}
[process.secret]
command = {TALKER}

[access.role.operator]
view = ["web", "db"]
logs = ["web"]
control = ["web"]

[access.unix]
"group:{ops}" = ["operator"]
"#
    );
    let (env, tend) = open_env(TestEnv::new(&config));
    let mut d = Daemon::start_in(env);
    d.wait_for("every process running", Duration::from_secs(10), |d| {
        d.status(&[]).iter().all(|p| p["state"] == "running")
    });

    // What it may view is all that exists for it.
    let r = tend_as(&d, &tend, &member, &["status", "--json"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let mut seen = names(&r.stdout);
    seen.sort();
    assert_eq!(seen, ["db", "web"]);
    let r = tend_as(&d, &tend, &member, &["status", "secret"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("no such process: secret"), "{r:?}");

    // It restarts web; db is refused with the missing right named.
    let before = d.pid("web");
    let r = tend_as(&d, &tend, &member, &["restart", "web"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_ne!(d.pid("web"), before);
    let db = d.pid("db");
    let r = tend_as(&d, &tend, &member, &["restart", "db"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "error: {member} (uid {}) may not control db: needs \"control\"",
            uid_of(&member)
        )),
        "{r:?}"
    );
    assert_eq!(d.pid("db"), db, "db was not touched");
    // A pattern acts on what it may act on and lists the rest as refused.
    let r = tend_as(&d, &tend, &member, &["stop", "all"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("web: stopped"), "{r:?}");
    assert!(r.stdout.contains("db: ERROR"), "{r:?}");
    assert!(!r.stdout.contains("secret"), "{r:?}");
    assert_eq!(d.state("db"), "running");
    assert_eq!(d.state("secret"), "running");
    let r = tend_as(&d, &tend, &member, &["shutdown"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("may not shut the daemon down: needs \"admin\" over every process"),
        "{r:?}"
    );
    let r = tend_as(&d, &tend, &member, &["add", "evil", "--", "true"]);
    assert!(
        r.stderr
            .contains("may not add a process with a new command"),
        "{r:?}"
    );

    // Logs: only web's; db's are refused; secret's do not exist.
    let r = tend_as(&d, &tend, &member, &["start", "web"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    d.wait_for("web to talk", Duration::from_secs(10), |d| {
        d.tend(&["logs", "-n", "5", "web"]).stdout.contains("tick")
    });
    let r = tend_as(&d, &tend, &member, &["logs", "-n", "200"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("web"), "{r:?}");
    assert!(
        r.stdout
            .lines()
            .all(|l| !l.starts_with("db") && !l.starts_with("secret")),
        "{r:?}"
    );
    let r = tend_as(&d, &tend, &member, &["logs", "db"]);
    assert!(
        r.stderr
            .contains("may not read the logs of db: needs \"logs\""),
        "{r:?}"
    );
    let r = tend_as(&d, &tend, &member, &["logs", "secret"]);
    assert!(r.stderr.contains("no such process: secret"), "{r:?}");

    // Outside the group, the socket's file mode keeps it out (status's
    // exit for a daemon it cannot reach, as for one that is down).
    let r = tend_as(&d, &tend, &outsider, &["status"]);
    assert_eq!(r.code, Some(4), "{r:?}");
    assert!(r.stderr.contains("Permission denied"), "{r:?}");

    let log = d.log_text();
    let who = format!("audit: {member}(uid {})@unix:", uid_of(&member));
    for end in [
        "restart web: ok",
        "restart db: denied (needs \"control\")",
        "shutdown: denied (needs \"admin\" over every process)",
        "add evil: denied (needs \"admin\" over every process)",
    ] {
        assert!(
            log.lines().any(|l| l.contains(&who) && l.ends_with(end)),
            "no line {who}... {end:?} in the log:\n{log}"
        );
    }
}

fn uid_of(user: &str) -> u32 {
    nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
        .expect("the user exists")
}

#[test]
fn a_world_writable_socket_never_lets_another_user_add_a_command() {
    if !can_make_users() {
        return;
    }
    let mut acc = Accounts::new();
    let user = acc.user("any", &[]);
    let config = format!("[daemon]\nsocket_mode = \"0666\"\n\n[process.web]\ncommand = {TALKER}\n");
    let (env, tend) = open_env(TestEnv::new(&config));
    let d = Daemon::start_in(env);
    let proof = d.dir.path().join("pwned");
    let touch = format!("touch {}", proof.display());

    // supervisord's rights: it may see and control the processes...
    let r = tend_as(&d, &tend, &user, &["status"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("web"), "{r:?}");
    let r = tend_as(&d, &tend, &user, &["restart", "web"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    // ...but never run a command of its own as the daemon's user.
    let r = tend_as(&d, &tend, &user, &["add", "evil", "--", "sh", "-c", &touch]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains(
            "may not add a process with a new command: needs \"admin\" over every process"
        ),
        "{r:?}"
    );
    // The JSON API directly, as that user.
    let body = format!(r#"{{"name": "evil2", "command": ["sh", "-c", "{touch}"]}}"#);
    let socket = d.socket.to_str().expect("path").to_string();
    let r = ran(&mut as_user(
        &user,
        Path::new("/usr/bin/curl"),
        &[
            "-s",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
            &socket,
            "-X",
            "POST",
            "-d",
            &body,
            "http://localhost/v1/processes",
        ],
    ));
    assert!(r.stdout.ends_with("\n403"), "{r:?}");
    let r = tend_as(&d, &tend, &user, &["remove", "web"]);
    assert!(r.stderr.contains("needs \"admin\""), "{r:?}");
    let r = tend_as(&d, &tend, &user, &["shutdown"]);
    assert!(r.stderr.contains("needs \"admin\""), "{r:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!proof.exists(), "the command ran");
    assert_eq!(d.status(&[]).len(), 1, "nothing was added");
    // Root (the daemon's own user) still may.
    d.ok(&["add", "job", "--", "sleep", "100"]);
    let log = d.log_text();
    assert!(
        log.contains("has mode 0666: every local user can view"),
        "no warning naming the mode:\n{log}"
    );
    assert!(
        log.contains("add evil: denied") && log.contains("add evil2: denied"),
        "{log}"
    );
}

#[test]
fn a_supervisord_socket_with_chmod_0777_never_lets_another_user_add_a_command() {
    if !can_make_users() {
        return;
    }
    let mut acc = Accounts::new();
    let user = acc.user("sup", &[]);
    let (mut env, tend) = open_env(TestEnv::new(""));
    let conf = env.dir.path().join("supervisord.conf");
    fs::write(
        &conf,
        "[supervisord]\nlogfile = %(here)s/supervisord.log\npidfile = %(here)s/supervisord.pid\nchildlogdir = %(here)s\n\n\
         [unix_http_server]\nfile = %(here)s/tend.sock\nchmod = 0777\n\n\
         [program:web]\ncommand = sleep 1000\nstartsecs = 0\n",
    )
    .expect("write");
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).expect("chmod");
    env.config = conf;
    let d = Daemon::start_in(env);
    let proof = d.dir.path().join("pwned");
    let r = tend_as(
        &d,
        &tend,
        &user,
        &["add", "evil", "--", "touch", proof.to_str().expect("path")],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains(
            "may not add a process with a new command: needs \"admin\" over every process"
        ),
        "{r:?}"
    );
    // What supervisord gives whoever can connect still works.
    let r = tend_as(&d, &tend, &user, &["restart", "web"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!proof.exists(), "the command ran");
    assert!(
        d.log_text()
            .contains("has mode 0777: every local user can view"),
        "{}",
        d.log_text()
    );
}

/// The supervisor package copied where `user` can read it, and a python3
/// that user can run; `None` (a counted skip, or a failure in CI) without.
fn supervisorctl_for(user: &str, dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let venv = crate::supervisorctl::venv()?;
    let lib = venv.ctl.parent()?.parent()?.join("lib");
    let site = fs::read_dir(&lib)
        .ok()?
        .flatten()
        .map(|e| e.path().join("site-packages/supervisor"))
        .find(|p| p.is_dir());
    if !tend_testkit::require(
        site.is_some(),
        format_args!("no supervisor package under {}", lib.display()),
    ) {
        return None;
    }
    let py = dir.join("py");
    fs::create_dir_all(&py).expect("mkdir");
    run_ok(Command::new("cp").arg("-r").arg(site?).arg(&py));
    run_ok(Command::new("chmod").args(["-R", "a+rX"]).arg(&py));
    let python = [venv.python.clone(), PathBuf::from("/usr/bin/python3")]
        .into_iter()
        .find(|p| {
            as_user(user, p, &["-c", "pass"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if !tend_testkit::require(
        python.is_some(),
        format_args!("no python3 that user {user} may run"),
    ) {
        return None;
    }
    Some((python?, py))
}

const CTL: &str = "import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'supervisorctl'; from supervisor.supervisorctl import main; main()";

#[test]
fn supervisorctl_as_a_group_member_sees_and_does_only_what_it_may() {
    if !can_make_users() {
        return;
    }
    let mut acc = Accounts::new();
    let ops = acc.group("ctl");
    let member = acc.user("ctl", &[&ops]);
    let (env, _) = open_env(TestEnv::new(""));
    let dir = env.dir.path().to_path_buf();
    let Some((python, py)) = supervisorctl_for(&member, &dir) else {
        return;
    };
    let conf = dir.join("supervisord.conf");
    fs::write(
        &conf,
        format!(
            "[supervisord]\nlogfile = %(here)s/supervisord.log\npidfile = %(here)s/supervisord.pid\nchildlogdir = %(here)s\n\n\
             [unix_http_server]\nfile = %(here)s/tend.sock\nchmod = 0770\nchown = root:{ops}\n\n\
             [supervisorctl]\nserverurl = unix://%(here)s/tend.sock\n\n\
             [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
             [program:web]\ncommand = sleep 1000\nstartsecs = 0\n\n\
             [program:db]\ncommand = sleep 1000\nstartsecs = 0\n\n\
             [program:secret]\ncommand = sleep 1000\nstartsecs = 0\n\n\
             [tend:role:operator]\nview = web db\ncontrol = web\nlogs = web\n\n\
             [tend:unix:group:{ops}]\nroles = operator\n"
        ),
    )
    .expect("write");
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).expect("chmod");

    // supervisord itself reads the file and ignores tend's sections.
    let venv = crate::supervisorctl::venv().expect("venv");
    let check = Command::new(&venv.python)
        .arg("-c")
        .arg(
            "import sys; from supervisor.options import ServerOptions; o = ServerOptions(); \
             o.realize(['-c', sys.argv[1]]); print(sorted(g.name for g in o.process_group_configs))",
        )
        .arg(&conf)
        .output()
        .expect("python");
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "['db', 'secret', 'web']",
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let mut env = env;
    env.config = conf;
    let mut d = Daemon::start_in(env);
    d.wait_for("every process running", Duration::from_secs(10), |d| {
        d.status(&[]).iter().all(|p| p["state"] == "running")
    });
    let ctl = |args: &[&str]| {
        let mut full = vec!["-c", CTL, py.to_str().expect("path"), "-c"];
        full.push(d.config.to_str().expect("path"));
        full.extend_from_slice(args);
        ran(as_user(&member, &python, &full).current_dir(&dir))
    };
    let r = ctl(&["status"]);
    assert!(
        r.stdout.contains("web ") && r.stdout.contains("db "),
        "{r:?}"
    );
    assert!(!r.stdout.contains("secret"), "{r:?}");
    let r = ctl(&["stop", "web"]);
    assert_eq!(r.stdout.trim(), "web: stopped", "{r:?}");
    let r = ctl(&["start", "web"]);
    assert_eq!(r.stdout.trim(), "web: started", "{r:?}");
    let denied = format!(
        "FAILED: permission denied: {member} (uid {}) may not control db: needs \"control\"",
        uid_of(&member)
    );
    let r = ctl(&["stop", "db"]);
    assert_eq!(r.stdout.trim(), denied, "{r:?}");
    assert_eq!(r.code, Some(1), "{r:?}");
    let r = ctl(&["stop", "secret"]);
    assert_eq!(r.stdout.trim(), "secret: ERROR (no such process)", "{r:?}");
    // stop all: web is stopped, db refused by name; secret does not exist.
    let r = ctl(&["stop", "all"]);
    assert!(r.stdout.contains("web: stopped"), "{r:?}");
    assert!(r.stdout.contains(&denied), "{r:?}");
    assert!(!r.stdout.contains("secret"), "{r:?}");
    let r = ctl(&["shutdown"]);
    assert!(
        r.stdout
            .contains("may not shut the daemon down: needs \\\"admin\\\" over every process")
            || r.stdout
                .contains("may not shut the daemon down: needs \"admin\" over every process"),
        "{r:?}"
    );
    assert_eq!(d.state("db"), "running");
    assert_eq!(d.state("secret"), "running");
    let log = d.log_text();
    assert!(log.contains("stop db: denied (needs \"control\")"), "{log}");
    assert!(log.contains("stop web: ok"), "{log}");
}

/// `curl -s -i ARGS...`: the status code, the headers (lower case) and the body.
fn curl(args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_ascii_lowercase(), body.to_string())
}

fn supervisord_conf(port_line: &str, credentials: &str, extra: &str) -> String {
    format!(
        "[supervisord]\nlogfile = %(here)s/supervisord.log\npidfile = %(here)s/supervisord.pid\nchildlogdir = %(here)s\n\n\
         [unix_http_server]\nfile = %(here)s/tend.sock\n\n\
         [inet_http_server]\nport = {port_line}\n{credentials}\n\
         [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
         [program:web]\ncommand = sleep 1000\nstartsecs = 0\n\n\
         [program:db]\ncommand = sleep 1000\nstartsecs = 0\n\n{extra}"
    )
}

/// A daemon for a supervisord.conf.
fn start_supervisord_conf(text: &str) -> Daemon {
    let mut env = TestEnv::new("");
    let conf = env.dir.path().join("supervisord.conf");
    fs::write(&conf, text).expect("write");
    env.config = conf;
    Daemon::start_in(env)
}

/// A new bearer token from `tend passwd --token`: the token and its hash.
fn new_token() -> (String, String) {
    let out = Command::new(TEND)
        .args(["passwd", "--token"])
        .output()
        .expect("tend passwd --token");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .expect("a field")
            .to_string()
    };
    (field("token: "), field("hash: "))
}

/// `tend passwd` with the password on stdin.
fn passwd(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(TEND)
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("tend passwd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const RPC_STOP_DB: &str = "<?xml version='1.0'?><methodCall><methodName>supervisor.stopProcess</methodName><params><param><value><string>db</string></value></param></params></methodCall>";

#[test]
fn http_users_and_tokens_over_tcp() {
    if tend_testkit::require_program("curl").is_none() {
        return;
    }
    let port = free_port();
    let argon = passwd("argon-pw");
    assert!(argon.starts_with("$argon2id$"), "{argon}");
    let bcrypt = bcrypt::hash("bcrypt-pw", 4).expect("bcrypt");
    let (token, token_hash) = new_token();
    let extra = format!(
        "[tend:role:operator]\nview = *\nlogs = web\ncontrol = web\n\n\
         [tend:user:argon]\npassword = {argon}\nroles = operator\n\n\
         [tend:user:bc]\npassword = {bcrypt}\nroles = operator\n\n\
         [tend:user:sha]\npassword = {{SHA}}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4\nroles = operator\n\n\
         [tend:user:plain]\npassword = {{PLAIN}}plain-pw\nroles = operator\n\n\
         [tend:token:deploy]\nhash = {token_hash}\nroles = operator\n"
    );
    let d = start_supervisord_conf(&supervisord_conf(
        &format!("127.0.0.1:{port}"),
        "username = admin\npassword = secret\n",
        &extra,
    ));
    let base = format!("http://127.0.0.1:{port}");
    let status = format!("{base}/v1/status");
    wait_until("the TCP listener", Duration::from_secs(10), || {
        curl(&["-u", "admin:secret", &status]).0 == 200
    });

    // Each form of password; each sees what its role lets it see.
    for (user, pw) in [
        ("argon", "argon-pw"),
        ("bc", "bcrypt-pw"),
        ("sha", "secret"),
        ("plain", "plain-pw"),
    ] {
        let (code, _, body) = curl(&["-u", &format!("{user}:{pw}"), &status]);
        assert_eq!(code, 200, "{user}: {body}");
        assert_eq!(names(&body).len(), 2, "{user}: {body}");
        let (code, head, _) = curl(&["-u", &format!("{user}:wrong"), &status]);
        assert_eq!(code, 401, "{user}");
        assert!(
            head.contains("www-authenticate: basic realm=\"default\""),
            "{head}"
        );
    }
    // A wrong password on Supervisor's face: supervisord's 401, byte for byte.
    let (code, head, body) = curl(&[
        "-u",
        "argon:nope",
        "-H",
        "Content-Type: text/xml",
        "--data-binary",
        RPC_STOP_DB,
        &format!("{base}/RPC2"),
    ]);
    assert_eq!(code, 401);
    assert!(head.contains("connection: close"), "{head}");
    assert!(head.contains("content-length: 137"), "{head}");
    assert!(
        body.contains("<p>Error code 401.\r\n<p>Message: Unauthorized."),
        "{body}"
    );
    // An unknown user is a 401 too, not a hint; no credentials likewise.
    assert_eq!(curl(&["-u", "mallory:x", &status]).0, 401);
    assert_eq!(curl(&[&status]).0, 401);

    // The token: control web, not db.
    let bearer = format!("Authorization: Bearer {token}");
    let restart = format!("{base}/v1/restart");
    let (code, _, body) = curl(&[
        "-H",
        &bearer,
        "-X",
        "POST",
        "-d",
        r#"{"targets":["web"]}"#,
        &restart,
    ]);
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = curl(&[
        "-H",
        &bearer,
        "-X",
        "POST",
        "-d",
        r#"{"targets":["db"]}"#,
        &restart,
    ]);
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#"token deploy may not control db: needs \"control\""#),
        "{body}"
    );
    // XML-RPC: Supervisor's FAILED fault naming the right.
    let (code, _, body) = curl(&[
        "-H",
        &bearer,
        "-H",
        "Content-Type: text/xml",
        "--data-binary",
        RPC_STOP_DB,
        &format!("{base}/RPC2"),
    ]);
    assert_eq!(code, 200);
    assert!(body.contains("<int>30</int>"), "{body}");
    assert!(
        body.contains("FAILED: permission denied: token deploy may not control db"),
        "{body}"
    );
    assert_eq!(
        curl(&["-H", "Authorization: Bearer tend_nope", &status]).0,
        401
    );

    // supervisord.conf's own username: everything but a new command.
    let (code, _, body) = curl(&[
        "-u",
        "admin:secret",
        "-X",
        "POST",
        "-d",
        r#"{"name":"evil","command":["true"]}"#,
        &format!("{base}/v1/processes"),
    ]);
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("may not add a process with a new command"),
        "{body}"
    );

    // Cross-site posts are refused before anything else; curl's are not.
    let rpc = format!("{base}/RPC2");
    for header in ["Origin: http://evil.example", "Sec-Fetch-Site: cross-site"] {
        let (code, _, _) = curl(&[
            "-u",
            "admin:secret",
            "-H",
            header,
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
            RPC_STOP_DB,
            &rpc,
        ]);
        assert_eq!(code, 403, "{header}");
    }
    assert_eq!(d.state("db"), "running", "the cross-site stop did nothing");
    let (code, _, body) = curl(&[
        "-u",
        "admin:secret",
        "-H",
        &format!("Origin: http://127.0.0.1:{port}"),
        "--data-binary",
        RPC_STOP_DB,
        &rpc,
    ]);
    assert_eq!(code, 200, "same origin is fine: {body}");
    assert_eq!(d.state("db"), "stopped");

    // Revoked by editing the config and reloading.
    let conf = fs::read_to_string(&d.config).expect("read");
    let without = conf
        .split("[tend:token:deploy]")
        .next()
        .expect("text")
        .to_string();
    fs::write(&d.config, without).expect("write");
    d.ok(&["reload"]);
    assert_eq!(
        curl(&["-H", &bearer, &status]).0,
        401,
        "the token is revoked"
    );

    // Repeated failures from one peer are throttled.
    let codes: Vec<u16> = (0..8)
        .map(|_| curl(&["-u", "argon:nope", &status]).0)
        .collect();
    assert!(codes.contains(&429), "{codes:?}");

    let log = d.log_text();
    for needle in [
        "audit: token:deploy@127.0.0.1 restart web: ok",
        "audit: token:deploy@127.0.0.1 restart db: denied (needs \"control\")",
        "audit: failed login as user \"argon\" from 127.0.0.1",
        "audit: failed login as user \"mallory\" from 127.0.0.1",
        "audit: admin@127.0.0.1 stop db: ok",
        "audit: refused a cross-site POST /RPC2 from 127.0.0.1",
        "is stored as {SHA}",
    ] {
        assert!(log.contains(needle), "{needle:?} not in the log:\n{log}");
    }
}

#[test]
fn an_open_tcp_listener_is_an_error_and_anonymous_clients_get_supervisords_rights() {
    if tend_testkit::require_program("curl").is_none() {
        return;
    }
    let port = free_port();
    // Without credentials on every interface tend refuses to start (the
    // transport's rule, docs/security.md) unless the section says
    // insecure=true, which supervisord ignores.
    let d = start_supervisord_conf(&supervisord_conf(
        &format!("0.0.0.0:{port}"),
        "insecure = true",
        "",
    ));
    let base = format!("http://127.0.0.1:{port}");
    wait_until("the TCP listener", Duration::from_secs(10), || {
        curl(&[&format!("{base}/v1/status")]).0 == 200
    });
    let (code, _, body) = curl(&[
        "-X",
        "POST",
        "-d",
        r#"{"targets":["web"]}"#,
        &format!("{base}/v1/restart"),
    ]);
    assert_eq!(code, 200, "{body}");
    // With nothing to check them against, credentials are ignored, as
    // supervisord ignores them (supervisorctl sends [supervisorctl]'s).
    let (code, _, body) = curl(&["-u", "user:123", &format!("{base}/v1/status")]);
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = curl(&[
        "-H",
        "Authorization: Basic YWI",
        &format!("{base}/v1/status"),
    ]);
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = curl(&[
        "-X",
        "POST",
        "-d",
        r#"{"name":"evil","command":["true"]}"#,
        &format!("{base}/v1/processes"),
    ]);
    assert_eq!(code, 403, "{body}");
    let log = d.log_text();
    assert!(
        // supervisord's sentence, at its level (CRIT in its format).
        log.lines().any(|l| l.contains(" CRIT ")
            && l.contains("running without any HTTP authentication checking")),
        "{log}"
    );
    assert!(log.contains("INSECURE: serving http://0.0.0.0:"), "{log}");
}

#[test]
fn the_api_refuses_what_the_config_file_refuses() {
    if tend_testkit::require_program("curl").is_none() {
        return;
    }
    let d = Daemon::start("[process.web]\ncommand = [\"sleep\", \"100\"]\n");
    let socket = d.socket.to_str().expect("path").to_string();
    let post = |body: &str| {
        curl(&[
            "--unix-socket",
            &socket,
            "-X",
            "POST",
            "-d",
            body,
            "http://localhost/v1/processes",
        ])
    };
    let (code, _, body) = post(r#"{"name":"a","command":["true"],"cwd":"relative/dir"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("cwd: relative/dir is relative"), "{body}");
    let (code, _, body) = post(r#"{"name":"b","command":["true"],"success_exit_codes":[256]}"#);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("success_exit_codes: 256 is out of range: expected an exit code (0 to 255)"),
        "{body}"
    );
    let (code, _, body) = post(r#"{"name":"c","command":["true"],"cwd":"/nonexistent/x"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("does not exist"), "{body}");
    assert_eq!(d.status(&[]).len(), 1);
}

#[test]
fn check_who_tells_what_an_identity_may_do() {
    let env = TestEnv::new(
        r#"
[process.web-1]
command = ["true"]
[process.web-2]
command = ["true"]
[process.db]
command = ["true"]

[access.role.operator]
view = ["*"]
logs = ["web-*"]
control = ["web-*"]

[access.user.alice]
password = "{PLAIN}x"
roles = ["operator"]

[access.token.deploy]
hash = "{PLAIN}y"
roles = ["admin"]

[access.unix]
"uid:4242" = ["operator"]
"#,
    );
    let out = env.ok(&["check", "--who", "alice"]).stdout;
    assert!(
        out.starts_with("alice: an HTTP user ([access.user])\n"),
        "{out}"
    );
    assert!(out.contains("  rights from: role operator\n"), "{out}");
    assert!(
        out.contains("  view     every process (web-1, web-2, db)\n"),
        "{out}"
    );
    assert!(out.contains("  control  web-1, web-2 (web-*)\n"), "{out}");
    assert!(out.contains("  admin    none\n"), "{out}");
    assert!(
        out.contains("  add processes with new commands: no\n"),
        "{out}"
    );
    let out = env.ok(&["check", "--who", "token:deploy"]).stdout;
    assert!(
        out.contains("  add processes with new commands: yes\n"),
        "{out}"
    );
    let out = env.ok(&["check", "--who", "uid:4242"]).stdout;
    assert!(out.contains("  logs     web-1, web-2 (web-*)\n"), "{out}");
    let out = env.ok(&["check", "--who", "uid:4243"]).stdout;
    assert!(out.contains("  view     none\n"), "{out}");
    let out = env.ok(&["check", "--who", "anonymous"]).stdout;
    assert!(out.contains("  control  none\n"), "{out}");
    let r = env.tend(&["check", "--who", "mallory"]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("no user named \"mallory\""), "{r}");
    let r = env.tend(&["check", "--who", "unix-user:root"]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.starts_with("root (uid 0)"), "{r}");
}

/// Supervisor's pages and tend's dashboard show and do only what the caller
/// may: a viewer of `web` alone sees one row, its action links on `db` do
/// nothing, and an action link followed from another site is refused.
#[test]
fn the_web_pages_follow_the_callers_rights() {
    if tend_testkit::require_program("curl").is_none() {
        return;
    }
    let port = free_port();
    let extra = "[tend:role:webonly]\nview = web\ncontrol = web\n\n\
                 [tend:user:w]\npassword = {PLAIN}w-pw\nroles = webonly\n";
    let d = start_supervisord_conf(&supervisord_conf(
        &format!("127.0.0.1:{port}"),
        "username = admin\npassword = secret\n",
        extra,
    ));
    let base = format!("http://127.0.0.1:{port}");
    wait_until("both running", Duration::from_secs(15), || {
        let (code, _, body) = curl(&["-u", "admin:secret", &format!("{base}/v1/status")]);
        code == 200 && body.matches("\"running\"").count() == 2
    });

    // The status page: only web for w, both for admin.
    let (code, _, page) = curl(&["-u", "w:w-pw", &format!("{base}/index.html")]);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains(">web<"), "{page}");
    assert!(!page.contains(">db<"), "w must not see db: {page}");
    let (_, _, page) = curl(&["-u", "admin:secret", &format!("{base}/index.html")]);
    assert!(page.contains(">web<") && page.contains(">db<"), "{page}");

    // An action link on db does nothing for w (db is not there for it).
    let (code, head, _) = curl(&[
        "-u",
        "w:w-pw",
        &format!("{base}/index.html?processname=db&action=stop"),
    ]);
    assert_eq!(code, 301, "{head}");
    assert!(head.contains("no%20such%20process"), "{head}");
    let (_, _, body) = curl(&["-u", "admin:secret", &format!("{base}/v1/status")]);
    assert_eq!(
        body.matches("\"running\"").count(),
        2,
        "db kept running: {body}"
    );

    // The same link followed from another site is refused, even for admin.
    let (code, _, _) = curl(&[
        "-u",
        "admin:secret",
        "-H",
        "Sec-Fetch-Site: cross-site",
        &format!("{base}/index.html?processname=web&action=stop"),
    ]);
    assert_eq!(code, 403);
    let (_, _, body) = curl(&["-u", "admin:secret", &format!("{base}/v1/status")]);
    assert_eq!(body.matches("\"running\"").count(), 2, "{body}");

    // The dashboard's data and stream carry only what w may view.
    let (code, _, body) = curl(&["-u", "w:w-pw", &format!("{base}/v1/resources")]);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"web\"") && !body.contains("\"db\""),
        "{body}"
    );
    let (_, _, body) = curl(&[
        "-u",
        "w:w-pw",
        "--max-time",
        "2",
        &format!("{base}/v1/events?snapshot=1"),
    ]);
    assert!(
        body.contains("\"web\"") && !body.contains("\"db\""),
        "{body}"
    );
    // w may stop web through the page.
    let (code, head, _) = curl(&[
        "-u",
        "w:w-pw",
        &format!("{base}/index.html?processname=web&action=stop"),
    ]);
    assert_eq!(code, 301, "{head}");
    assert!(head.contains("process%20web%20stopped"), "{head}");

    drop(d);
}

/// The rule of docs/security.md: rights are checked on the processes a
/// request names; a start that must first start a stopped dependency the
/// caller may not control starts it (reported and audited as a dependency),
/// while naming that dependency is still refused.
#[test]
fn a_permitted_start_starts_its_dependency_and_says_so() {
    if tend_testkit::require_program("curl").is_none() {
        return;
    }
    let (token, token_hash) = new_token();
    let port = free_port();
    let d = Daemon::start(&format!(
        "[http]\nlisten = [\"127.0.0.1:{port}\"]\n\n\
         [access.role.worker-op]\nview = [\"*\"]\ncontrol = [\"worker\"]\n\n\
         [access.token.ci]\nhash = \"{token_hash}\"\nroles = [\"worker-op\"]\n\n\
         [process.db]\ncommand = [\"sleep\", \"1000\"]\nautostart = false\n\n\
         [process.worker]\ncommand = [\"sleep\", \"1000\"]\nautostart = false\n\
         depends_on = [\"db\"]\n"
    ));
    let base = format!("http://127.0.0.1:{port}");
    let bearer = format!("Authorization: Bearer {token}");
    wait_until("the TCP listener", Duration::from_secs(10), || {
        curl(&["-H", &bearer, &format!("{base}/v1/status")]).0 == 200
    });
    let post = |path: &str, body: &str| {
        curl(&[
            "-H",
            &bearer,
            "-X",
            "POST",
            "-d",
            body,
            &format!("{base}{path}"),
        ])
    };

    // Naming db is refused: the token may not control it.
    let (code, _, body) = post("/v1/start", r#"{"targets":["db"]}"#);
    assert_eq!(code, 403, "{body}");
    assert_eq!(d.state("db"), "stopped");

    // Starting worker starts db first, and the answer says db was a dependency.
    let (code, _, body) = post("/v1/start", r#"{"targets":["worker"]}"#);
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json");
    let results = answer["results"].as_array().expect("results");
    let db = results
        .iter()
        .find(|r| r["name"] == "db")
        .unwrap_or_else(|| panic!("db is in the answer: {body}"));
    assert_eq!(db["dependency"], true, "{body}");
    let worker = results
        .iter()
        .find(|r| r["name"] == "worker")
        .unwrap_or_else(|| panic!("worker is in the answer: {body}"));
    assert_ne!(worker["dependency"], true, "{body}");
    wait_until("db and worker running", Duration::from_secs(10), || {
        d.state("db") == "running" && d.state("worker") == "running"
    });

    // Stopping db by name is still refused, and db keeps running.
    let (code, _, body) = post("/v1/stop", r#"{"targets":["db"]}"#);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("may not control db"), "{body}");
    assert_eq!(d.state("db"), "running");

    let log = d.log_text();
    for needle in [
        "audit: token:ci@127.0.0.1 start db: denied (needs \"control\")",
        "audit: token:ci@127.0.0.1 start db: ok",
        "audit: token:ci@127.0.0.1 start worker: ok",
        "audit: token:ci@127.0.0.1 stop db: denied (needs \"control\")",
    ] {
        assert!(log.contains(needle), "{needle:?} not in the log:\n{log}");
    }
}
