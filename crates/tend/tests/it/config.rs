//! `tend check` and `tend up` with bad configs.

use crate::harness::TestEnv;

const BAD: &str = r#"
[process.web]
command = "sleep 1000"
autostrat = true

[process.web.stop]
timeout = "1 fortnight"
"#;

fn assert_diagnostics(env: &TestEnv, stderr: &str) {
    let file = env.config.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 2, "every error is reported: {stderr}");
    for l in &lines {
        let rest = l
            .strip_prefix(&format!("{file}:"))
            .unwrap_or_else(|| panic!("not FILE:LINE:COL: {l}"));
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().and_then(|n| n.parse::<u32>().ok());
        let col = parts.next().and_then(|n| n.parse::<u32>().ok());
        assert!(
            line.is_some() && col.is_some() && parts.next().is_some_and(|m| m.starts_with(' ')),
            "{l}"
        );
    }
    assert!(stderr.contains("autostrat"), "{stderr}");
    assert!(stderr.contains("1 fortnight"), "{stderr}");
}

#[test]
fn check_reports_every_error_as_file_line_col() {
    let env = TestEnv::new(BAD);
    let run = env.tend(&["check"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert_diagnostics(&env, &run.stderr);
}

#[test]
fn check_accepts_a_good_config() {
    let env = TestEnv::new("[process.a]\ncommand = \"true\"\n[process.b]\ncommand = \"true\"\n");
    let run = env.ok(&["check"]);
    assert_eq!(
        run.stdout,
        format!("{}: OK (2 processes)\n", env.config.display())
    );
}

#[test]
fn up_refuses_a_bad_config() {
    let env = TestEnv::new(BAD);
    let run = env.tend(&["up"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert_diagnostics(&env, &run.stderr);
    assert!(crate::harness::gone(&env.socket));
}

#[test]
fn clients_explain_a_missing_daemon() {
    let env = TestEnv::new("[process.a]\ncommand = \"true\"\n");
    let run = env.tend(&["status"]);
    // LSB's "status unknown", as supervisorctl's status exits.
    assert_eq!(run.code, Some(4), "{run}");
    let want = format!(
        "error: cannot reach the tend daemon at {}: ",
        env.socket.display()
    );
    assert!(run.stderr.starts_with(&want), "{run}");
    assert!(
        run.stderr.trim_end().ends_with("(is 'tend up' running?)"),
        "{run}"
    );

    let run = env.tend_bare(&["-c", "missing.toml", "status"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("missing.toml does not exist"), "{run}");

    // Without -c, ./tend.toml is the default; TEND_SOCKET and --socket win over it.
    let run = env.tend_bare(&["status"]);
    assert!(
        run.stderr.contains(&env.socket.display().to_string()),
        "{run}"
    );
    let other = env.dir.path().join("other.sock");
    let run = env.tend_bare(&["--socket", other.to_str().expect("utf-8"), "status"]);
    assert!(run.stderr.contains("other.sock"), "{run}");
    let mut cmd = env.bare_command(&["status"]);
    cmd.env("TEND_SOCKET", &other);
    let run = env.run(cmd);
    assert!(run.stderr.contains("other.sock"), "{run}");

    // A config that does not parse says so instead of guessing a socket.
    std::fs::write(&env.config, "[process.a\n").expect("write");
    let run = env.tend(&["status"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains("has errors") && run.stderr.contains("tend.toml:1:"),
        "{run}"
    );
}

/// `[include] files=/dev/zero` (which grew `tend check` without end) and a
/// config file that is a FIFO (whose open waits for a writer) are refused at
/// once, naming the file.
#[test]
fn config_files_that_are_not_regular_files_are_refused_fast() {
    use std::time::{Duration, Instant};
    let env = TestEnv::new("");
    let conf = env.dir.path().join("supervisord.conf");
    std::fs::write(
        &conf,
        "[supervisord]\n[program:a]\ncommand=true\n[include]\nfiles=/dev/zero\n",
    )
    .expect("write");
    let conf_s = conf.to_string_lossy().into_owned();
    for verb in ["check", "up"] {
        let t = Instant::now();
        let run = env.tend_bare(&["-c", &conf_s, verb]);
        assert!(t.elapsed() < Duration::from_secs(5), "{run}");
        assert_eq!(run.code, Some(2), "{run}");
        assert!(
            run.stderr.contains(
                "cannot read included file /dev/zero: it is a character device, not a regular file"
            ),
            "{run}"
        );
    }

    let fifo = env.dir.path().join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let fifo_s = fifo.to_string_lossy().into_owned();
    for args in [
        vec!["-c", &fifo_s, "check"],
        vec!["-c", &fifo_s, "up"],
        vec!["-c", &fifo_s, "status"],
    ] {
        let t = Instant::now();
        let run = env.tend_bare(&args);
        assert!(t.elapsed() < Duration::from_secs(5), "{run}");
        assert_ne!(run.code, Some(0), "{run}");
        assert!(
            run.stderr.contains(&fifo_s) && run.stderr.contains("it is a FIFO, not a regular file"),
            "{run}"
        );
    }
}
