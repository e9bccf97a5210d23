//! The conveniences of issue 17: completions and man pages, `--json` on the
//! read verbs, `tend logs --timestamps` and `--files`, the help text, one
//! rule for start and restart with stopped dependencies, `${VAR}` in
//! tend.toml, `tend add` marked and `--save`d, counts that read right, and
//! the example's comments.

// These tests run short-lived tools (bash, `tend completions`) to completion.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

use serde_json::Value;

use crate::harness::{Daemon, TEND, TestEnv, wait_until};
use std::time::Duration;

#[test]
fn bash_completion_loads_into_a_real_bash() {
    let Some(bash) = tend_testkit::require_program("bash") else {
        return;
    };
    // The script registers a completion function for `tend`, and bash can
    // complete a verb with it.
    let script = format!(
        "source <({TEND} completions bash) && complete -p tend && \
         COMP_WORDS=(tend sta); COMP_CWORD=1; COMP_LINE='tend sta'; COMP_POINT=8; \
         _tend tend sta tend; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let out = Command::new(bash)
        .args(["--norc", "--noprofile", "-c", &script])
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("complete ") && l.ends_with("-F _tend tend")),
        "{stdout}"
    );
    let words: Vec<&str> = stdout.lines().skip(1).collect();
    assert!(
        words.contains(&"start") && words.contains(&"status"),
        "{words:?}"
    );
}

#[test]
fn zsh_and_fish_completions_name_the_verbs() {
    for shell in ["zsh", "fish"] {
        let out = Command::new(TEND)
            .args(["completions", shell])
            .output()
            .expect("run tend");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}");
        assert!(
            text.contains("reload") && text.contains("completions"),
            "{shell}: {text}"
        );
    }
}

#[test]
fn man_writes_a_page_per_command_that_man_can_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(TEND)
        .arg("man")
        .arg(dir.path())
        .output()
        .expect("run tend man");
    assert!(out.status.success(), "{out:?}");
    for page in [
        "tend.1",
        "tend-status.1",
        "tend-logs.1",
        "tend-reload.1",
        "tend-top.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is roff: {text}");
    }
    let top = std::fs::read_to_string(dir.path().join("tend.1")).expect("tend.1");
    assert!(top.contains("process supervisor"), "{top}");
}

#[test]
fn help_opens_with_what_tend_is() {
    let out = Command::new(TEND).arg("--help").output().expect("run tend");
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("tend: a process supervisor."), "{text}");
    assert!(!text.contains("client and daemon main"), "{text}");
}

#[test]
fn the_readme_command_table_lists_every_command() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    let out = Command::new(TEND).arg("--help").output().expect("run tend");
    let help = String::from_utf8_lossy(&out.stdout);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A command's line, not a wrapped description.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 10, "{help}");
    // The words of the first cell of each row of the table (`tend start\|stop\|restart`).
    let listed: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `tend "))
        .filter_map(|l| l.split('`').next())
        .flat_map(|cell| cell.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')))
        .collect();
    for c in commands {
        assert!(
            listed.contains(&c),
            "README's command table lacks `tend {c}`"
        );
    }
}

#[test]
fn check_says_one_process_and_answers_in_json() {
    let env = TestEnv::new("[process.a]\ncommand = \"true\"\n");
    let run = env.ok(&["check"]);
    assert_eq!(
        run.stdout,
        format!("{}: OK (1 process)\n", env.config.display())
    );
    let run = env.ok(&["check", "--json"]);
    let v: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["processes"], 1, "{v}");

    let bad = TestEnv::new("[process.a]\ncommand = \"true\"\nautostrat = true\n");
    let run = bad.tend(&["check", "--json"]);
    assert_eq!(run.code, Some(2), "{run}");
    let v: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(v["ok"], false, "{v}");
    let errors = v["errors"].as_array().expect("errors");
    assert!(
        errors.iter().any(|e| e.as_str().is_some_and(
            |e| e.contains("autostrat") && e.contains(&bad.config.display().to_string())
        )),
        "{v}"
    );
}

const TWO: &str = r#"
[process.talk]
command = ["sh", "-c", "echo hello; echo oops >&2; exec sleep 1000"]

[process.quiet]
command = ["sleep", "1000"]
logs.merge_stderr = true
"#;

#[test]
fn pid_logs_and_reload_answer_in_json() {
    let d = Daemon::start(TWO);
    wait_until("talk to be running", Duration::from_secs(10), || {
        d.state("talk") == "running" && d.state("quiet") == "running"
    });
    let v: Value = serde_json::from_str(&d.ok(&["pid", "--json"]).stdout).expect("JSON");
    assert_eq!(v["pid"], d.daemon_pid(), "{v}");
    let v: Value = serde_json::from_str(&d.ok(&["pid", "--json", "talk"]).stdout).expect("JSON");
    assert_eq!(v["pid"], d.pid("talk"), "{v}");
    assert_eq!(v["name"], "talk");

    wait_until("talk's lines", Duration::from_secs(10), || {
        d.ok(&["logs", "talk"]).stdout.contains("oops")
    });
    let run = d.ok(&["logs", "--json", "talk"]);
    let items: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        items
            .iter()
            .any(|i| i["line"] == "hello" && i["stream"] == "stdout" && i["time"].is_string()),
        "{items:?}"
    );

    let run = d.ok(&["logs", "--timestamps", "talk"]);
    let line = run
        .stdout
        .lines()
        .find(|l| l.ends_with("hello"))
        .expect("hello");
    let (time, rest) = line.split_once(' ').expect("a time first");
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "{line}");
    assert!(rest.starts_with("talk"), "{line}");

    let run = d.ok(&["logs", "--files"]);
    assert!(
        run.stdout.contains("talk") && run.stdout.contains("stderr"),
        "{run}"
    );
    let v: Value =
        serde_json::from_str(&d.ok(&["logs", "--files", "--json"]).stdout).expect("JSON");
    let list = v.as_array().expect("array");
    let talk = list.iter().find(|i| i["name"] == "talk").expect("talk");
    let quiet = list.iter().find(|i| i["name"] == "quiet").expect("quiet");
    let out = talk["stdout"].as_str().expect("a path");
    assert!(
        std::fs::read_to_string(out).is_ok_and(|t| t.contains("hello")),
        "{out}"
    );
    assert!(talk["stderr"].is_string(), "{talk}");
    assert!(quiet["stderr"].is_null(), "merged: {quiet}");

    std::fs::write(
        &d.config,
        format!("{TWO}\n[process.new]\ncommand = [\"sleep\", \"1000\"]\n"),
    )
    .expect("write");
    let v: Value = serde_json::from_str(&d.ok(&["reload", "--json"]).stdout).expect("JSON");
    assert_eq!(v["added"], serde_json::json!(["new"]), "{v}");
}

const DEPS: &str = r#"
[process.db]
command = ["sleep", "1000"]

[process.worker]
command = ["sleep", "1000"]
depends_on = ["db"]
"#;

/// One rule: `start` and `restart` both start the stopped dependencies
/// first, and print what was done to each process.
#[test]
fn start_and_restart_start_a_stopped_dependency_and_say_so() {
    let d = Daemon::start(DEPS);
    wait_until("both running", Duration::from_secs(10), || {
        d.state("db") == "running" && d.state("worker") == "running"
    });
    for verb in ["start", "restart"] {
        d.ok(&["stop", "db"]);
        assert_eq!(d.state("db"), "stopped");
        let run = d.ok(&[verb, "worker"]);
        assert!(run.stdout.contains("db: started"), "{verb}: {run}");
        let worker = if verb == "start" {
            "worker: already running"
        } else {
            "worker: restarted"
        };
        assert!(run.stdout.contains(worker), "{verb}: {run}");
        assert_eq!(d.state("db"), "running", "{verb}");
        assert_eq!(d.state("worker"), "running", "{verb}");
    }
}

/// `${VAR}` comes from the daemon's environment and the process's own `env`;
/// `$$` is a `$` for the shell, whose `$$` is then its own pid.
#[test]
fn variables_expand_and_dollar_dollar_is_the_shells_pid() {
    let d = Daemon::start(
        r#"
[process.pidof]
command = ["sh", "-c", "echo $$$$ > ${OUT:-shell}.pid; echo \"$GREETING\" > greeting; exec sleep 1000"]
env = { GREETING = "hello ${TEND_TEST_MARKER}" }
"#,
    );
    let dir = d.dir.path().to_path_buf();
    wait_until("the shell's files", Duration::from_secs(10), || {
        std::fs::read_to_string(dir.join("greeting")).is_ok_and(|s| s.ends_with('\n'))
            && std::fs::read_to_string(dir.join("shell.pid")).is_ok_and(|s| s.ends_with('\n'))
    });
    let pid: u32 = std::fs::read_to_string(dir.join("shell.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    // `exec` keeps the shell's pid: the one tend started.
    assert_eq!(pid, d.pid("pidof"));
    let greeting = std::fs::read_to_string(dir.join("greeting")).expect("greeting");
    assert_eq!(greeting.trim(), format!("hello {}", d.marker));
}

/// An unknown variable is a config error naming the file, line, key and variable.
#[test]
fn check_names_an_unknown_variable() {
    let env = TestEnv::new("[process.a]\ncommand = \"true\"\ncwd = \"/srv/${TEND_NO_SUCH_VAR}\"\n");
    let run = env.tend(&["check"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr.contains(
            "tend.toml:3:13: unknown variable ${TEND_NO_SUCH_VAR} in cwd: set TEND_NO_SUCH_VAR"
        ),
        "{run}"
    );
}

/// A process added at run time is shown as added; `tend add --save` writes
/// it into tend.toml (the file otherwise as it was), and a reload keeps both
/// without touching them.
#[test]
fn added_processes_are_marked_and_saved_ones_are_the_files() {
    let original = "# my services\n[process.base]\ncommand = [\"sleep\", \"1000\"]   # stays\n";
    let d = Daemon::start(original);
    d.ok(&["add", "temp", "--", "sleep", "1001"]);
    let run = d.ok(&[
        "add",
        "--save",
        "keeper",
        "--env",
        "COST=5$",
        "--restart",
        "on-failure",
        "--",
        "sh",
        "-c",
        "echo \"$COST\" > cost; exec sleep 1002",
    ]);
    assert_eq!(run.stdout, "keeper: added and saved in the config file\n");
    let origin = |name: &str| d.proc(name)["origin"].as_str().unwrap_or("").to_string();
    assert_eq!(origin("base"), "config");
    assert_eq!(origin("temp"), "added");
    assert_eq!(origin("keeper"), "config");
    let table = d.ok(&["status"]).stdout;
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("temp").ends_with("added (not in the config file)"),
        "{table}"
    );
    assert!(!line("keeper").contains("added"), "{table}");

    let text = std::fs::read_to_string(&d.config).expect("config");
    assert!(text.starts_with(original), "the file is kept:\n{text}");
    assert!(text.contains("[process.keeper]"), "{text}");
    assert!(!text.contains("temp"), "{text}");
    // What runs is what the file says, `$` and all.
    let dir = d.dir.path().to_path_buf();
    wait_until("keeper's file", Duration::from_secs(10), || {
        std::fs::read_to_string(dir.join("cost")).is_ok_and(|s| s == "5$\n")
    });
    d.ok(&["check"]);

    let (keeper, temp) = (d.pid("keeper"), d.pid("temp"));
    d.ok(&["reload"]);
    assert_eq!(d.pid("keeper"), keeper, "the reload left keeper alone");
    assert_eq!(d.pid("temp"), temp, "an added process outlives a reload");
    assert_eq!(origin("keeper"), "config");
    assert_eq!(origin("temp"), "added");

    // A name the file has is refused, and nothing is added.
    let run = d.tend(&["add", "--save", "again", "--in-group", "g", "--", "true"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("group g"), "{run}");
    assert!(d.status(&[]).iter().all(|p| p["name"] != "again"));
}

/// `--save` refuses a supervisord.conf with a clear message, and adds nothing.
#[test]
fn add_save_refuses_a_supervisord_conf() {
    let mut env = TestEnv::new("");
    let conf = env.dir.path().join("supervisord.conf");
    std::fs::create_dir(env.dir.path().join("logs")).expect("mkdir");
    std::fs::write(
        &conf,
        supervisord_conf!("[program:base]\ncommand=sleep 1000\n"),
    )
    .expect("write");
    env.config = conf;
    env.socket = env.dir.path().join("supervisor.sock");
    let d = Daemon::start_in(env);
    let run = d.tend(&["add", "--save", "x", "--", "sleep", "1"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        run.stderr
            .contains("is a supervisord.conf, and --save writes tend.toml only"),
        "{run}"
    );
    assert!(d.status(&[]).iter().all(|p| p["name"] != "x"));
}

/// One quick death is "1 quick death", one process "1 process", and the
/// daemon's log says "gave up" once.
#[test]
fn counts_of_one_read_right() {
    let d = Daemon::start(
        "[process.bad]\ncommand = [\"sh\", \"-c\", \"exit 3\"]\nbackoff = { give_up_after = 1, initial = \"100ms\" }\n",
    );
    wait_until("bad to give up", Duration::from_secs(10), || {
        d.state("bad") == "fatal"
    });
    assert_eq!(
        d.proc("bad")["error"],
        "gave up after 1 quick death in a row (last: exit code 3)"
    );
    let log = d.log_text();
    assert!(log.contains("serving 1 process on"), "{log}");
    assert!(
        log.contains("bad: gave up after 1 quick death in a row"),
        "{log}"
    );
    assert!(!log.contains("gave up: gave up"), "{log}");
}

/// examples/tend.toml does what its comments say: the group, the order,
/// `starting` then `running`, and flaky's back-off (1 s, then 2 s, fatal at
/// the third quick death, `tend start` tries again).
#[test]
fn the_examples_comments_are_true() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let port = crate::harness::free_port();
    let text = std::fs::read_to_string(examples.join("tend.toml"))
        .expect("example")
        .replace("8765", &port.to_string());
    let deps = TestEnv::new(&std::fs::read_to_string(examples.join("deps.toml")).expect("deps"));
    deps.ok(&["check"]);
    if tend_testkit::require_program("python3").is_none() {
        return;
    }
    let started = std::time::Instant::now();
    let d = Daemon::start(&text);
    // "tend restart workers:*" addresses the group.
    let workers: Vec<String> = d
        .status(&["workers:*"])
        .iter()
        .map(|p| p["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(workers, ["ticker", "flaky"]);
    // Priority 10: started first.
    let started_at = |n: &str| d.proc(n)["started_at"].as_str().unwrap_or("").to_string();
    assert!(started_at("ticker") <= started_at("web"), "ticker first");
    // `starting` for a second, then `running`.
    wait_until("web to run", Duration::from_secs(10), || {
        d.state("web") == "running"
    });
    assert!(started.elapsed() >= Duration::from_secs(1));
    // Runs of 1 s, waits of 1 s and 2 s: fatal after about 5 s, not before.
    wait_until("flaky to give up", Duration::from_secs(20), || {
        d.state("flaky") == "fatal"
    });
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(4800),
        "gave up after {took:?}"
    );
    let flaky = d.proc("flaky");
    assert_eq!(flaky["restarts"], 2);
    assert_eq!(
        flaky["error"],
        "gave up after 3 quick deaths in a row (last: exit code 1)"
    );
    d.ok(&["start", "flaky"]);
    assert_ne!(d.state("flaky"), "fatal");
}
