use std::time::Duration;

use proptest::prelude::*;
use tend_core::spec::LogTarget;
use tend_core::{BackoffMode, RestartPolicy, Signal};

use super::*;

/// A config path whose directory does not exist: fine as long as the text
/// sets no `cwd`.
const FAKE: &str = "/nonexistent-tend-test/app/tend.toml";

fn name(s: &str) -> Name {
    Name::new(s).expect("test names are valid")
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn ok(text: &str) -> Config {
    parse(Path::new(FAKE), text).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

/// The errors of `text`, rendered, with the file as `tend.toml`.
fn errors(text: &str) -> Vec<String> {
    errors_at(Path::new("tend.toml"), text)
}

fn errors_at(path: &Path, text: &str) -> Vec<String> {
    match parse(path, text) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

fn one_error(text: &str) -> String {
    let mut errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.remove(0)
}

/// `ProcessSpec::new` with the logs a config gives by default under `log_dir`.
fn spec_in(dir: &Path, n: &str, command: &[&str]) -> ProcessSpec {
    let mut spec = ProcessSpec::new(name(n), argv(command));
    spec.logs.stdout = LogTarget::File(dir.join(format!("logs/{n}.out.log")));
    spec.logs.stderr = LogTarget::File(dir.join(format!("logs/{n}.err.log")));
    spec
}

fn process<'c>(config: &'c Config, n: &str) -> &'c ProcessSpec {
    config
        .processes
        .iter()
        .find(|p| p.name.as_str() == n)
        .unwrap_or_else(|| panic!("no process {n}"))
}

#[test]
fn full_config_maps_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("srv")).expect("mkdir");
    std::fs::create_dir(dir.path().join("run")).expect("mkdir");
    let path = dir.path().join("tend.toml");
    let text = r#"
[daemon]
socket = "run/tend.sock"
socket_mode = "0660"

[group.web]
processes = ["api"]

[process.api]
command = ["python3", "-m", "http.server", "8080"]
cwd = "srv"
env = { PORT = "8080", EMPTY = "" }
clear_env = true
user = "root"
group = 0
umask = "027"
autostart = false
priority = -5
restart = "on-failure"
success_exit_codes = [0, 2]
start_secs = "1.5s"

[process.api.backoff]
min_uptime = "2s"
initial = "100ms"
max = 60
give_up_after = 5

[process.api.stop]
signal = "SIGINT"
timeout = 2.5
"#;
    let config = parse(&path, text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.path, path);
    assert_eq!(config.daemon.socket, dir.path().join("run/tend.sock"));
    assert_eq!(config.daemon.socket_mode, 0o660);

    let mut want = spec_in(dir.path(), "api", &["python3", "-m", "http.server", "8080"]);
    want.group = name("web");
    want.cwd = Some(dir.path().join("srv"));
    want.env = [("PORT", "8080"), ("EMPTY", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.clear_env = true;
    want.user = Some("root".into());
    want.unix_group = Some("0".into());
    want.umask = Some(0o027);
    want.autostart = false;
    want.priority = -5;
    want.restart = RestartPolicy::OnFailure;
    want.success_exit_codes = vec![0, 2];
    want.start_secs = Duration::from_millis(1500);
    want.backoff.min_uptime = Duration::from_secs(2);
    want.backoff.mode = BackoffMode::Doubling {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(60),
    };
    want.backoff.give_up_after = Some(5);
    want.stop.signal = Signal::INT;
    want.stop.timeout = Duration::from_millis(2500);
    assert_eq!(config.processes, vec![Arc::new(want)]);
}

#[test]
fn defaults() {
    let config = ok("[process.a]\ncommand = [\"true\"]\n");
    assert_eq!(config.path, Path::new(FAKE));
    assert_eq!(
        config.daemon.socket,
        Path::new("/nonexistent-tend-test/app/tend.sock")
    );
    assert_eq!(config.daemon.socket_mode, 0o600);
    assert_eq!(
        config.daemon.log_dir,
        Path::new("/nonexistent-tend-test/app/logs")
    );
    assert_eq!(config.daemon.log_format, LogFormat::Text);
    assert_eq!(config.daemon.log_file, None);
    assert_eq!(
        config.processes,
        vec![Arc::new(spec_in(
            Path::new("/nonexistent-tend-test/app"),
            "a",
            &["true"]
        ))]
    );
    let logs = &config.processes[0].logs;
    assert_eq!(
        (logs.max_size, logs.backups, logs.merge_stderr),
        (50 * 1024 * 1024, 10, false)
    );

    let empty = ok("");
    assert!(empty.processes.is_empty());
    assert_eq!(
        empty.daemon.socket,
        Path::new("/nonexistent-tend-test/app/tend.sock")
    );
}

#[test]
fn string_command_is_split_shell_style() {
    let config = ok(r#"
[process.a]
command = "sh -c 'echo \"hi there\"; sleep 1' x\\ y"
"#);
    assert_eq!(
        config.processes[0].command,
        argv(&["sh", "-c", "echo \"hi there\"; sleep 1", "x y"])
    );
}

#[test]
fn processes_keep_file_order() {
    let config = ok(
        "[process.zeta]\ncommand = \"a\"\n[process.alpha]\ncommand = \"b\"\n[process.mid]\ncommand = \"c\"\n",
    );
    let names: Vec<&str> = config.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
}

#[test]
fn socket_paths() {
    // The socket's directory must exist (tend makes none for it).
    let dir = tempfile::tempdir().expect("tempdir");
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("run")).expect("mkdir");
    let conf = app.join("tend.toml");
    let relative = parse(&conf, "[daemon]\nsocket = \"../run/x.sock\"\n").expect("valid");
    assert_eq!(relative.daemon.socket, app.join("../run/x.sock"));
    let abs = dir.path().join("run/t.sock");
    let text = format!(
        "[daemon]\nsocket = {:?}\nsocket_mode = 0o660\n",
        abs.display().to_string()
    );
    let absolute = parse(&conf, &text).expect("valid");
    assert_eq!(absolute.daemon.socket, abs);
    assert_eq!(absolute.daemon.socket_mode, 0o660);

    // A relative config path is made absolute against the current directory.
    let cwd = std::env::current_dir().expect("cwd");
    let config = parse(Path::new("sub/tend.toml"), "").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.path, cwd.join("sub/tend.toml"));
    assert_eq!(config.daemon.socket, cwd.join("sub/tend.sock"));
}

#[test]
fn schedule_mode() {
    let config = ok(r#"
[process.a]
command = "a"
backoff.schedule = ["100ms", "1s", 30, "5m"]
backoff.give_up_after = 1

[process.b]
command = "b"
[process.b.backoff]
schedule = []
reset_after = "1h"
min_uptime = 0

[process.c]
command = "c"
backoff = { schedule = ["0"] }
"#);
    let a = process(&config, "a");
    assert_eq!(
        a.backoff.mode,
        BackoffMode::Schedule {
            steps: vec![
                Duration::from_millis(100),
                Duration::from_secs(1),
                Duration::from_secs(30),
                Duration::from_secs(300)
            ],
            reset_after: Duration::from_secs(1800),
        }
    );
    assert_eq!(a.backoff.min_uptime, Duration::from_secs(1));
    assert_eq!(a.backoff.give_up_after, Some(1));
    let b = process(&config, "b");
    assert_eq!(
        b.backoff.mode,
        BackoffMode::Schedule {
            steps: vec![],
            reset_after: Duration::from_secs(3600),
        }
    );
    assert_eq!(b.backoff.min_uptime, Duration::ZERO);
    assert_eq!(
        process(&config, "c").backoff.mode,
        BackoffMode::Schedule {
            steps: vec![Duration::ZERO],
            reset_after: Duration::from_secs(1800),
        }
    );
}

#[test]
fn groups_set_the_group_of_their_members() {
    let config = ok(r#"
[group.web]
processes = ["api", "static"]
[group.bg]
processes = ["worker"]
[process.api]
command = "a"
[process.static]
command = "s"
[process.worker]
command = "w"
[process.lonely]
command = "l"
"#);
    let groups: Vec<(&str, &str)> = config
        .processes
        .iter()
        .map(|p| (p.name.as_str(), p.group.as_str()))
        .collect();
    assert_eq!(
        groups,
        [
            ("api", "web"),
            ("static", "web"),
            ("worker", "bg"),
            ("lonely", "lonely")
        ]
    );
    // A group may share its name with a process that is one of its members.
    let same = ok(
        "[group.api]\nprocesses = [\"api\", \"b\"]\n[process.api]\ncommand = \"a\"\n[process.b]\ncommand = \"b\"\n",
    );
    assert_eq!(process(&same, "b").group.as_str(), "api");
}

#[test]
fn unknown_key_with_suggestion() {
    let text = "[process.web]\ncommand = \"x\"\n\n\n\n\nautostrat = true\n";
    assert_eq!(
        one_error(text),
        r#"tend.toml:7:1: unknown key "autostrat" in [process.web] (did you mean "autostart"?)"#
    );
    assert_eq!(
        one_error("[process.web]\ncommand = \"x\"\nsignal = \"INT\"\n"),
        r#"tend.toml:3:1: unknown key "signal" in [process.web] (did you mean "stop.signal"?)"#
    );
    assert_eq!(
        one_error("[process.web]\ncommand = \"x\"\nwhatever = 1\n"),
        r#"tend.toml:3:1: unknown key "whatever" in [process.web]"#
    );
    assert_eq!(
        one_error("[process.web]\ncommand = \"x\"\n[process.web.stop]\nsignl = \"INT\"\n"),
        r#"tend.toml:4:1: unknown key "signl" in [process.web.stop] (did you mean "signal"?)"#
    );
    assert_eq!(
        one_error("[daemon]\n  sockt = \"x\"\n"),
        r#"tend.toml:2:3: unknown key "sockt" in [daemon] (did you mean "socket"?)"#
    );
}

#[test]
fn unknown_sections() {
    assert_eq!(
        one_error("[proces.web]\ncommand = \"x\"\n"),
        "tend.toml:1:2: unknown section [proces] (did you mean [process]?)"
    );
    assert_eq!(
        one_error("[taks.x]\ncommand = \"x\"\n"),
        "tend.toml:1:2: unknown section [taks] (did you mean [task]?)"
    );
    assert_eq!(
        one_error("socket = \"x\"\n"),
        "tend.toml:1:1: unknown top-level key \"socket\" (sections are [daemon], [http], [[peer]], [group.NAME], [process.NAME], [task.NAME] and [access])"
    );
}

#[test]
fn wrong_types() {
    assert_eq!(
        one_error("[process.a]\ncommand = 42\n"),
        "tend.toml:2:11: expected an array of strings or a string, found integer"
    );
    assert_eq!(
        one_error("[process.a]\ncommand = [\"a\", 1]\n"),
        "tend.toml:2:17: expected a string, found integer"
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nautostart = \"yes\"\n"),
        "tend.toml:3:13: expected a boolean (true or false), found string"
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nenv = { PORT = 8080 }\n"),
        r#"tend.toml:3:16: expected a string, found integer (quote it: PORT = "8080")"#
    );
    assert_eq!(
        one_error("process = 1\n"),
        "tend.toml:1:11: expected a table, found integer"
    );
    assert_eq!(
        one_error("[process]\ncommand = \"x\"\n"),
        "tend.toml:2:11: expected a table for process \"command\" (write a [process.command] section), found string"
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\npriority = 3000000000\n"),
        "tend.toml:3:12: 3000000000 is out of range: expected an integer priority"
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nsuccess_exit_codes = [0, 256]\n"),
        "tend.toml:3:26: 256 is out of range: expected an exit code (0 to 255)"
    );
}

#[test]
fn bad_values() {
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nstart_secs = \"fast\"\n"),
        r#"tend.toml:3:14: invalid duration "fast": it does not start with a number (examples: "100ms", "1s", "1.5s", "5m", "1h")"#
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nstart_secs = -1\n"),
        "tend.toml:3:14: invalid duration -1: expected a non-negative number of seconds"
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nstop.signal = \"TREM\"\n"),
        r#"tend.toml:3:15: unknown signal "TREM" (expected a name such as TERM, HUP, KILL, or a number) (did you mean "TERM"?)"#
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nstop.signal = 0\n"),
        "tend.toml:3:15: unknown signal number 0"
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nrestart = \"alwyas\"\n"),
        r#"tend.toml:3:11: unknown restart policy "alwyas": expected "always", "on-failure" or "never" (did you mean "always"?)"#
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a 'b\"\n"),
        r#"tend.toml:2:11: command "a 'b" has unbalanced quotes or a trailing backslash"#
    );
    assert_eq!(
        one_error("[process.a]\ncommand = []\n"),
        "tend.toml:2:11: command is empty"
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"  \"\n"),
        "tend.toml:2:11: command is empty"
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\numask = 22\n"),
        r#"tend.toml:3:9: ambiguous mode 22: write it as an octal string ("022") or a TOML octal integer (0o22)"#
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\numask = \"0999\"\n"),
        r#"tend.toml:3:9: invalid octal mode "0999" (expected digits 0-7, such as "0640")"#
    );
    assert_eq!(
        one_error("[daemon]\nsocket_mode = \"01777\"\n"),
        "tend.toml:2:15: mode 1777 is larger than 777"
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nenv = { \"A=B\" = \"x\" }\n"),
        r#"tend.toml:3:9: environment variable name "A=B" is empty or contains '=' or NUL"#
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nbackoff.give_up_after = 0\n"),
        "tend.toml:3:25: give_up_after must be at least 1 (leave it out to never give up)"
    );
}

#[test]
fn names_must_be_valid() {
    assert_eq!(
        one_error("[process.\"a b\"]\ncommand = \"x\"\n"),
        r#"tend.toml:1:10: invalid process name: name "a b" contains ' '; a name cannot contain a space, ':', '/' or a control character"#
    );
    assert_eq!(
        one_error("[group.\"g:1\"]\nprocesses = []\n"),
        r#"tend.toml:1:8: invalid group name: name "g:1" contains ':'; a name cannot contain a space, ':', '/' or a control character"#
    );
    // Every name supervisord accepts is a name here too.
    let c =
        ok("[process.\"web@8000\"]\ncommand = \"x\"\n[process.\"test_öäü\"]\ncommand = \"x\"\n");
    assert_eq!(c.processes[1].name.as_str(), "test_öäü");
}

#[test]
fn backoff_conflicts() {
    assert_eq!(
        errors(
            "[process.a]\ncommand = \"a\"\n[process.a.backoff]\ninitial = \"1s\"\nschedule = [\"1s\"]\nmax = \"2s\"\n"
        ),
        [
            r#"tend.toml:4:1: "initial" cannot be combined with "schedule" in [process.a.backoff] (use initial/max for doubling, or schedule/reset_after)"#,
            r#"tend.toml:6:1: "max" cannot be combined with "schedule" in [process.a.backoff] (use initial/max for doubling, or schedule/reset_after)"#,
        ]
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nbackoff.reset_after = \"1m\"\n"),
        r#"tend.toml:3:9: "reset_after" applies only with "schedule" in [process.a.backoff]"#
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nbackoff.initial = \"2h\"\n"),
        "tend.toml:3:9: backoff initial (2h) is larger than max (1h)"
    );
    // A bad schedule is reported once, not also as a mode conflict.
    assert_eq!(
        one_error(
            "[process.a]\ncommand = \"a\"\nbackoff.schedule = [\"1s\", true]\nbackoff.reset_after = \"1m\"\n"
        ),
        "tend.toml:3:27: expected a duration (such as \"5s\") or a number of seconds, found boolean"
    );
}

#[test]
fn missing_command() {
    assert_eq!(
        one_error("[process.a]\ncwd = \"/\"\n"),
        r#"tend.toml:1:1: missing required key "command" in [process.a]"#
    );
    assert_eq!(
        one_error("[process.a.stop]\nsignal = \"INT\"\n"),
        r#"tend.toml:1:10: missing required key "command" in [process.a]"#
    );
}

#[test]
fn group_errors() {
    let text = r#"[process.api]
command = "a"
[process.worker]
command = "w"
[group.web]
processes = ["api", "workr", "worker"]
[group.bg]
processes = ["worker", 3]
[group.api]
processes = []
[group.x]
"#;
    assert_eq!(
        errors(text),
        [
            r#"tend.toml:6:21: unknown process "workr" in [group.web] (did you mean "worker"?)"#,
            r#"tend.toml:8:14: process "worker" is already in group "web""#,
            r#"tend.toml:8:24: expected a string, found integer"#,
            r#"tend.toml:9:8: group "api" has the name of process "api", which is not one of its members"#,
            r#"tend.toml:11:1: missing required key "processes" in [group.x]"#,
        ]
    );
}

#[test]
fn users_groups_and_directories_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("file"), "").expect("write");
    let path = dir.path().join("tend.toml");
    let text = r#"[process.a]
command = "a"
user = "no-such-user-tend-test"
group = "no-such-group-tend-test"
cwd = "missing"
[process.b]
command = "b"
cwd = "file"
user = 4000000
[process.c]
command = "c"
cwd = "/"
user = 0
group = "root"
"#;
    let shown = path.display().to_string();
    let d = dir.path().display().to_string();
    assert_eq!(
        errors_at(&path, text),
        [
            format!(r#"{shown}:3:8: no user named "no-such-user-tend-test" on this machine"#),
            format!(r#"{shown}:4:9: no group named "no-such-group-tend-test" on this machine"#),
            format!("{shown}:5:7: working directory {d}/missing does not exist"),
            format!("{shown}:8:7: working directory {d}/file is not a directory"),
        ]
    );
}

#[test]
fn all_errors_are_collected_in_file_order() {
    let text = r#"[daemon]
socket_mode = "rw"
[process.a]
command = 1
autostrat = true
[process.a.stop]
timeout = "soon"
[process.b]
restart = "sometimes"
[bogus]
"#;
    let errs = errors(text);
    assert_eq!(
        errs,
        [
            r#"tend.toml:2:15: invalid octal mode "rw" (expected digits 0-7, such as "0640")"#,
            "tend.toml:4:11: expected an array of strings or a string, found integer",
            r#"tend.toml:5:1: unknown key "autostrat" in [process.a] (did you mean "autostart"?)"#,
            r#"tend.toml:7:11: invalid duration "soon": it does not start with a number (examples: "100ms", "1s", "1.5s", "5m", "1h")"#,
            r#"tend.toml:8:1: missing required key "command" in [process.b]"#,
            r#"tend.toml:9:11: unknown restart policy "sometimes": expected "always", "on-failure" or "never""#,
            "tend.toml:10:2: unknown section [bogus]",
        ]
    );
    let err = parse(Path::new("tend.toml"), text).expect_err("invalid");
    assert_eq!(err.to_string(), errs.join("\n"));
}

#[test]
fn syntax_errors_are_one_diagnostic() {
    assert_eq!(
        one_error("[process.a]\ncommand = \"unterminated\nautostart = true\n"),
        "tend.toml:2:24: invalid basic string, expected `\"`"
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\n[process.a]\n"),
        r#"tend.toml:3:10: duplicate key "a""#
    );
}

#[test]
fn unreadable_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.toml");
    let err = load(&path).expect_err("missing");
    let shown = path.display();
    assert_eq!(
        err.to_string(),
        format!(
            "{shown}:1:1: cannot read config file {shown}: No such file or directory (os error 2)"
        )
    );
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tend.toml");
    let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<(&str, &str)> = config
        .processes
        .iter()
        .map(|p| (p.name.as_str(), p.group.as_str()))
        .collect();
    assert_eq!(
        names,
        [("ticker", "workers"), ("web", "web"), ("flaky", "workers")]
    );
    let flaky = process(&config, "flaky");
    assert_eq!(flaky.backoff.give_up_after, Some(3));
    assert_eq!(flaky.restart, RestartPolicy::OnFailure);
    let web = process(&config, "web");
    assert_eq!(web.cwd.as_deref(), path.parent());
    assert_eq!(
        config.daemon.socket,
        path.parent()
            .map(|d| d.join("tend.sock"))
            .unwrap_or_default()
    );
}

#[test]
fn logs_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tend.toml");
    let text = r#"
[daemon]
log_dir = "var/log"
log_format = "json"
log_file = "tend.log"
log_level = "warn"
log_max_size = "1MB"
log_backups = 3

[process.a]
command = "a"
logs = { stdout = "shared.log", stderr = "inherit", strip_ansi = true, timestamps = true, max_size = "1KB", backups = 2 }

[process.b]
command = "b"
[process.b.logs]
stdout = "shared.log"
merge_stderr = true
max_size = 1024
backups = 2

[process.c]
command = "c"
logs.stdout = "null"
logs.stderr = "/abs/c.err"
logs.max_size = "0"
"#;
    let config = parse(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let log_dir = dir.path().join("var/log");
    assert_eq!(config.daemon.log_dir, log_dir);
    assert_eq!(config.daemon.log_format, LogFormat::Json);
    assert_eq!(config.daemon.log_file, Some(dir.path().join("tend.log")));
    assert_eq!(config.daemon.log_level, Some(crate::LogLevel::Warn));
    assert_eq!(
        (config.daemon.log_max_size, config.daemon.log_backups),
        (1 << 20, 3)
    );
    let a = &process(&config, "a").logs;
    assert_eq!(a.stdout, LogTarget::File(log_dir.join("shared.log")));
    assert_eq!(a.stderr, LogTarget::Inherit);
    assert!(a.strip_ansi && a.timestamps && !a.merge_stderr);
    assert_eq!((a.max_size, a.backups), (1024, 2));
    let b = &process(&config, "b").logs;
    assert!(b.merge_stderr && !b.strip_ansi && !b.timestamps);
    assert_eq!(b.stdout, LogTarget::File(log_dir.join("shared.log")));
    assert_eq!(b.stderr, b.stdout, "merged stderr goes where stdout goes");
    let c = &process(&config, "c").logs;
    assert_eq!(c.stdout, LogTarget::Null);
    assert_eq!(c.stderr, LogTarget::File("/abs/c.err".into()));
    assert_eq!((c.max_size, c.backups), (0, 10));
}

#[test]
fn log_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("file"), "").expect("write");
    std::fs::create_dir(dir.path().join("logs")).expect("mkdir");
    std::fs::create_dir(dir.path().join("logs/d.out.log")).expect("mkdir");
    let path = dir.path().join("tend.toml");
    let text = r#"[process.a]
command = "a"
logs.stdout = 3
logs.stderr = ""
logs.max_size = "5 parsecs"
logs.backups = -1
logs.colour = true
stdout_logfile = "x"
[process.b]
command = "b"
logs.merge_stderr = true
logs.stderr = "b.err"
[process.c]
command = "c"
logs.stdout = "../file/c.log"
logs.stderr = "."
[process.d]
command = "d"
[process.e]
command = "e"
logs.stdout = "shared.log"
[process.f]
command = "f"
logs = { stdout = "shared.log", max_size = "1MB" }
[daemon]
log_format = "xml"
log_file = "file/x"
"#;
    let shown = path.display().to_string();
    let d = dir.path().display().to_string();
    assert_eq!(
        errors_at(&path, text),
        [
            format!(
                "{shown}:3:15: expected a file path, \"inherit\", \"memory\" or \"null\", found integer"
            ),
            format!(
                "{shown}:4:15: log target is empty (write a file path, \"inherit\", \"memory\" or \"null\")"
            ),
            format!(
                "{shown}:5:17: invalid size \"5 parsecs\": the unit is not one of B, KB, MB, GB (examples: \"0\", \"4096\", \"10KB\", \"50MB\", \"1GB\")"
            ),
            format!(
                "{shown}:6:16: -1 is out of range: expected a number of rotated files to keep (0 or more)"
            ),
            format!(r#"{shown}:7:6: unknown key "colour" in [process.a.logs]"#),
            format!(
                r#"{shown}:8:1: unknown key "stdout_logfile" in [process.a] (did you mean "logs.stdout"?)"#
            ),
            format!(
                r#"{shown}:12:15: "stderr" cannot be set with merge_stderr = true in [process.b.logs] (stderr goes where stdout goes)"#
            ),
            format!(
                "{shown}:15:15: cannot create log file {d}/logs/../file/c.log: {d}/logs/../file is not a directory"
            ),
            format!("{shown}:16:15: log file {d}/logs/. is a directory"),
            format!(
                "{shown}:17:10: log file {d}/logs/d.out.log is a directory (the default stdout log; set [daemon] log_dir or stdout in [process.d.logs])"
            ),
            format!(
                r#"{shown}:22:10: log file {d}/logs/shared.log is shared with process "e", which rotates it differently (max_size and backups must be the same)"#
            ),
            format!(
                r#"{shown}:26:14: unknown log format "xml": expected "text", "json" or "supervisord""#
            ),
            format!("{shown}:27:12: cannot create {d}/file/x: {d}/file is not a directory"),
        ]
    );
    assert_eq!(
        one_error("[process.a]\ncommand = \"a\"\nlogs.redirect_stderr = true\n"),
        r#"tend.toml:3:6: unknown key "redirect_stderr" in [process.a.logs] (did you mean "merge_stderr"?)"#
    );
    assert_eq!(
        one_error("[daemon]\nlog_level = \"wran\"\n"),
        r#"tend.toml:2:13: unknown log level "wran": expected trace, debug, info, warn or error (did you mean "warn"?)"#
    );
    assert_eq!(
        one_error("[daemon]\nlog_format = \"jsno\"\n"),
        r#"tend.toml:2:14: unknown log format "jsno": expected "text", "json" or "supervisord" (did you mean "json"?)"#
    );
}

/// Characters that make up TOML, so that random edits hit interesting cases.
const TOMLISH: &[char] = &[
    '[', ']', '{', '}', '"', '\'', '=', ',', '.', '\n', ' ', '#', '\\', '0', '1', '-', '_', 'a',
    'é', '\u{0}',
];

fn garbled() -> impl Strategy<Value = String> {
    let base = include_str!("../../../../examples/tend.toml");
    let edits = proptest::collection::vec(
        (
            any::<prop::sample::Index>(),
            0..3usize,
            prop::sample::select(TOMLISH),
        ),
        1..8,
    );
    edits.prop_map(move |edits| {
        let mut chars: Vec<char> = base.chars().collect();
        for (at, kind, c) in edits {
            if chars.is_empty() {
                break;
            }
            let i = at.index(chars.len());
            match kind {
                0 => {
                    chars.remove(i);
                }
                1 => chars.insert(i, c),
                _ => chars[i] = c,
            }
        }
        chars.into_iter().collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_random_text(text in "\\PC{0,200}") {
        let _ = parse(Path::new(FAKE), &text);
    }

    #[test]
    fn never_panics_on_garbled_configs(text in garbled()) {
        if let Err(e) = parse(Path::new(FAKE), &text) {
            prop_assert!(!e.errors.is_empty());
            for d in &e.errors {
                prop_assert!(d.line >= 1 && d.col >= 1);
                prop_assert!(d.line <= text.lines().count() + 1);
            }
        }
    }
}

#[test]
fn on_hup_says_what_sighup_does() {
    let path = Path::new("/nonexistent-tend-test/tend.toml");
    let cfg = |text: &str| parse(path, text);
    let base = "[process.a]\ncommand = [\"true\"]\n";
    assert_eq!(
        cfg(base).expect("valid").daemon.on_hup,
        crate::OnHup::Reload
    );
    let restart = format!("[daemon]\non_hup = \"restart\"\n{base}");
    assert_eq!(
        cfg(&restart).expect("valid").daemon.on_hup,
        crate::OnHup::Restart
    );
    let bad = format!("[daemon]\non_hup = \"restrat\"\n{base}");
    let err = cfg(&bad).expect_err("refused").to_string();
    assert!(
        err.contains("2:10: unknown on_hup \"restrat\"")
            && err.contains("did you mean \"restart\"?"),
        "{err}"
    );
}

#[test]
fn access_tables_read_as_written() {
    let c = ok(r#"
[daemon]
socket_mode = "0660"
socket_group = "root"

[process.web-1]
command = ["true"]

[access.role.operator]
view = ["*"]
logs = ["web-*"]
control = ["web-*", "front:*"]

[access.user.alice]
password = "{SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4"
roles = ["operator"]

[access.token.deploy]
hash = "{PLAIN}tok"
roles = ["operator", "admin"]

[access.unix]
"group:root" = ["operator"]
"uid:1001" = ["operator"]
"#);
    assert_eq!(c.daemon.socket_group.as_deref(), Some("root"));
    let a = &c.access;
    assert!(a.configured);
    let role = a.role("operator").expect("role");
    let control: Vec<&str> = role.grants[&crate::access::Right::Control]
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(control, ["web-*", "front:*"]);
    assert!(role.grants[&crate::access::Right::View][0].is_everything());
    assert_eq!(a.users[0].name, "alice");
    assert!(
        a.users[0]
            .password
            .as_ref()
            .expect("password")
            .verify(b"secret")
    );
    assert_eq!(a.tokens[0].roles, ["operator", "admin"]);
    assert_eq!(a.unix.len(), 2);
    assert!(!ok("[process.x]\ncommand = [\"true\"]\n").access.configured);
}

#[test]
fn access_errors_name_the_key() {
    let errs = errors(
        r#"
[access.role.operator]
veiw = ["*"]
control = ["[bad"]

[access.role.admin]
view = ["*"]

[access.user.alice]
password = "hunter2"
roles = ["operater"]

[access.token.deploy]
roles = ["operator"]

[access.unix]
"bob" = ["operator"]
"user:no-such-user-on-this-box" = ["operator"]

[access.who]
"#,
    );
    let all = errs.join("\n");
    for needle in [
        "tend.toml:3:1: unknown right \"veiw\" in [access.role.operator]",
        "(did you mean \"view\"?)",
        "tend.toml:4:12: bad pattern \"[bad\"",
        "the role \"admin\" is built in",
        "tend.toml:10:12: password in [access.user.alice]: not a password hash tend knows",
        "tend.toml:11:10: unknown role \"operater\" in [access.user.alice]",
        "(did you mean \"operator\"?)",
        "missing required key \"hash\" in [access.token.deploy]",
        "\"bob\" is not a peer",
        "no user named \"no-such-user-on-this-box\"",
        "unknown key \"who\" in [access]",
    ] {
        assert!(all.contains(needle), "{needle:?} not in:\n{all}");
    }
    assert!(
        one_error("[daemon]\nsocket_group = \"no-such-group-here\"\n")
            .contains("socket_group: no group named")
    );
    let e = one_error("[process.x]\ncommand = [\"true\"]\nsuccess_exit_codes = [256]\n");
    assert!(e.contains("3:23: 256 is out of range"), "{e}");
}

#[test]
fn users_may_log_in_with_a_client_certificate() {
    let c = ok(r#"
[access.role.operator]
view = ["*"]

[access.user.robot]
certificate = ["robot.example", "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"]
roles = ["operator"]

[access.user.carol]
certificate = "carol"
password = "{PLAIN}pw"
roles = ["operator"]
"#);
    let robot = &c.access.users[0];
    assert_eq!(robot.password, None);
    assert_eq!(robot.certificates.len(), 2);
    assert_eq!(c.access.users[1].certificates, ["carol"]);
    assert!(c.access.users[1].password.is_some());
    let e = one_error("[access.user.x]\ncertificate = \"sha256:abc\"\nroles = []\n");
    assert!(
        e.contains("tend.toml:2:") && e.contains("not a SHA-256 fingerprint"),
        "{e}"
    );
    let e = one_error("[access.user.x]\nroles = []\n");
    assert!(e.contains("missing required key \"password\""), "{e}");
    let e = one_error("[access.token.t]\ncertificate = \"x\"\nhash = \"{PLAIN}t\"\nroles = []\n");
    assert!(
        e.contains("unknown key \"certificate\" in [access.token.t]"),
        "{e}"
    );
}

/// `env_file` per process and in `[daemon]`, relative to the config file:
/// the process's `env` wins over its `env_file`, which wins over the daemon's.
#[test]
fn env_files_are_read_relative_to_the_config_and_layered() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("all.env"), "SHARED=daemon\nOVER=daemon\n").expect("write");
    std::fs::create_dir(dir.path().join("web")).expect("mkdir");
    std::fs::write(
        dir.path().join("web/.env"),
        "# web's\nexport OVER=file\nMINE='from file'\nKEPT=file\n",
    )
    .expect("write");
    let path = dir.path().join("tend.toml");
    let text = r#"
[process.web]
env = { KEPT = "env" }
env_file = "web/.env"
command = "true"

[process.other]
command = "true"

[daemon]
env_file = "all.env"
"#;
    std::fs::write(&path, text).expect("write");
    let c = load(&path).expect("loads");
    let web = c
        .processes
        .iter()
        .find(|p| p.name == name("web"))
        .expect("web");
    assert_eq!(web.env["MINE"], "from file");
    assert_eq!(web.env["KEPT"], "env", "env wins over env_file");
    assert_eq!(web.env["OVER"], "file", "env_file wins over [daemon]'s");
    assert_eq!(web.env["SHARED"], "daemon");
    let other = c
        .processes
        .iter()
        .find(|p| p.name == name("other"))
        .expect("other");
    assert_eq!(other.env["OVER"], "daemon");

    // A missing file and a bad line are errors at the key, naming the file (and line).
    std::fs::write(dir.path().join("bad.env"), "A=1\nnot a line\n").expect("write");
    let text = "[process.a]\ncommand = \"true\"\nenv_file = \"bad.env\"\n[process.b]\ncommand = \"true\"\nenv_file = \"nope.env\"\n";
    std::fs::write(&path, text).expect("write");
    let errs: Vec<String> = load(&path)
        .expect_err("errors")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errs.iter()
            .any(|e| e.contains("tend.toml:3:") && e.contains("bad.env:2:")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("tend.toml:6:") && e.contains("nope.env")),
        "{errs:?}"
    );
}

#[test]
fn peers_are_read_like_hosts_with_a_name() {
    let c = ok(r#"
[[peer]]
name = "web1"
url = "https://web1:9100"
ca = "ca.pem"
token_file = "web1.token"

[[peer]]
name = "local2"
url = "unix:///run/tend2.sock"
token = "abc"
timeout = "2s"
"#);
    let p = &c.daemon.peers;
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].name, "web1");
    assert_eq!(p[0].url, "https://web1:9100");
    assert_eq!(
        p[0].ca.as_deref(),
        Some(Path::new("/nonexistent-tend-test/app/ca.pem"))
    );
    assert_eq!(
        p[0].auth,
        Some(crate::hosts::HostAuth::TokenFile(
            "/nonexistent-tend-test/app/web1.token".into()
        ))
    );
    assert_eq!(p[1].timeout, Some(Duration::from_secs(2)));
    assert!(ok("").daemon.peers.is_empty());
}

#[test]
fn bad_peers_are_errors_at_their_line() {
    let e = one_error("[[peer]]\nurl = \"https://a:1\"\n");
    assert!(
        e.starts_with("tend.toml:1:") && e.contains("no name"),
        "{e}"
    );
    let e = one_error(
        "[[peer]]\nname = \"a\"\nurl = \"https://a:1\"\ntoken_command = [\"pass\", \"a\"]\n",
    );
    assert!(
        e.starts_with("tend.toml:4:1:") && e.contains("token_command") && e.contains("token_file"),
        "{e}"
    );
    let e = errors("[[peer]]\nname = \"a\"\nurl = \"ftp://a\"\n");
    assert!(
        e.iter()
            .any(|e| e.starts_with("tend.toml:3:7:") && e.contains("expected https://")),
        "{e:?}"
    );
    let e = one_error("[[peer]]\nname = \"a\"\nurl = \"https://a:1\"\ncert = \"c.pem\"\n");
    assert!(e.contains("cert and key go together"), "{e}");
    let e = one_error("[[peer]]\nname = \"a\"\nurl = \"https://a:1\"\ntokn = \"x\"\n");
    assert!(
        e.starts_with("tend.toml:4:1:")
            && e.contains("unknown key \"tokn\" in [[peer]] a")
            && e.contains("\"token\""),
        "{e}"
    );
    let e = one_error(
        "[[peer]]\nname = \"a\"\nurl = \"https://a:1\"\n[[peer]]\nname = \"a\"\nurl = \"https://b:1\"\n",
    );
    assert!(
        e.starts_with("tend.toml:5:8:") && e.contains("a second peer named \"a\""),
        "{e}"
    );
    let e = one_error("[peer]\nname = \"a\"\n");
    assert!(e.contains("[[peer]]"), "{e}");
    let e = one_error("[[peer]]\nname = \"a\"\n");
    assert!(e.contains("no url"), "{e}");
}
