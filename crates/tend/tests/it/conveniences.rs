//! The conveniences of issue 17: completions and man pages, `--json` on the
//! read verbs, `tend logs --timestamps` and `--files`, the help text, and
//! one rule for start and restart with stopped dependencies.

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
