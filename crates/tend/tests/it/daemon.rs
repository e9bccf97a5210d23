//! `tend up -d`, `tend shutdown`, the socket.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::harness::{Daemon, TestEnv, alive, gone, wait_until};

const ONE: &str = "[process.a]\ncommand = \"sleep 1000\"\n";

#[test]
fn the_socket_is_private_and_a_second_daemon_is_refused() {
    let d = Daemon::start(ONE);
    let mode = std::fs::metadata(&d.socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let run = d.tend(&["up"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains(&format!(
            "another tend is already running on {}",
            d.socket.display()
        )),
        "{run}"
    );
    assert_eq!(d.state("a"), "running", "the first daemon is unharmed");
}

#[test]
fn up_detached_then_shutdown() {
    let env = TestEnv::new(&format!(
        "[daemon]\nsocket = \"d.sock\"\nsocket_mode = \"0660\"\n{ONE}"
    ));
    let run = env.ok(&["up", "-d"]);
    let socket = env.dir.path().join("d.sock");
    let rest = run
        .stdout
        .trim()
        .strip_prefix("tend started (pid ")
        .unwrap_or_else(|| panic!("{run}"));
    let (pid, tail) = rest.split_once(')').unwrap_or_else(|| panic!("{run}"));
    let pid: u32 = pid.parse().unwrap_or_else(|_| panic!("{run}"));
    let log = env.dir.path().join("tend.log");
    assert_eq!(
        tail,
        format!(", socket {}, log {}", socket.display(), log.display())
    );
    assert!(alive(pid));
    // Ready means the socket answers at once.
    assert_eq!(env.ok(&["pid"]).stdout.trim(), pid.to_string());
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
    wait_until("a to run", Duration::from_secs(5), || {
        env.state("a") == "running"
    });
    let child = env.pid("a");

    let run = env.ok(&["shutdown"]);
    assert_eq!(run.stdout, "tend stopped\n");
    // `shutdown` waited for the daemon to exit.
    assert!(!alive(pid), "the daemon is gone");
    assert!(!alive(child), "its process is gone");
    assert!(gone(&socket));
    let run = env.tend(&["shutdown"]);
    assert_eq!(run.code, Some(1), "{run}");
}

#[test]
fn up_detached_reports_a_failure_to_start() {
    let d = Daemon::start(ONE);
    let run = d.tend(&["up", "-d"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains("another tend is already running"),
        "{run}"
    );
}

#[test]
fn shutdown_of_a_foreground_daemon() {
    let mut d = Daemon::start(ONE);
    let run = d.ok(&["shutdown"]);
    assert_eq!(run.stdout, "tend stopped\n");
    let status = d.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status}");
    assert!(gone(&d.socket));
}

#[test]
fn up_listens_where_the_socket_flag_says() {
    let env = TestEnv::new(ONE);
    let custom = env.dir.path().join("custom.sock");
    let custom_s = custom.to_str().expect("utf-8 path");
    let run = env.ok(&["--socket", custom_s, "up", "-d"]);
    assert!(
        run.stdout.contains(&format!("socket {custom_s}, log ")),
        "{run}"
    );
    assert!(gone(&env.socket), "the config's socket is not used");
    let mut cmd = env.command(&["status", "--json"]);
    cmd.env("TEND_SOCKET", &custom);
    let run = env.run(cmd);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.starts_with('['), "{run}");
    env.ok(&["--socket", custom_s, "shutdown"]);
    assert!(gone(&custom));
}

/// `[supervisord]` settings of the daemon itself: `loglevel` sets the level
/// of tend's own log (without `RUST_LOG`), `umask` applies once detached (as
/// supervisord applies it when it daemonizes) and children inherit it, and
/// `minprocs` is a limit the daemon raises to.
#[test]
fn supervisord_settings_of_the_daemon_apply_when_detached() {
    let env = TestEnv::new("");
    let dir = env.dir.path();
    let conf = dir.join("supervisord.conf");
    // The daemon starts with its soft processes limit lowered below
    // `minprocs` (the hard one left alone), so it has to raise it.
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
        .expect("getrlimit");
    let lowered = soft.min(hard).min(100_000).saturating_sub(1_000).max(100);
    let minprocs = lowered + 500;
    let nproc_limit = |limits: &str| -> Option<u64> {
        limits
            .lines()
            .find(|l| l.starts_with("Max processes"))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse().ok())
    };
    std::fs::write(
        &conf,
        format!(
            "[unix_http_server]\nfile=%(here)s/s.sock\n\n\
         [supervisord]\nlogfile=%(here)s/main.log\npidfile=%(here)s/sd.pid\n\
         loglevel=warn\numask=077\nminprocs={minprocs}\n\n\
         [program:um]\ncommand=sh -c 'umask > %(here)s/umask.txt; exec sleep 1000'\n\
         stdout_logfile=NONE\nstderr_logfile=NONE\n"
        ),
    )
    .expect("write supervisord.conf");
    let conf_arg = conf.to_str().expect("utf-8 path");
    let run = env.run({
        let mut c = env.bare_command(&["-c", conf_arg, "up", "-d"]);
        c.env_remove("RUST_LOG");
        // SAFETY: setrlimit is async-signal-safe and touches no memory of ours.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_NPROC,
                    lowered,
                    hard,
                )
                .map_err(std::io::Error::from)
            });
        }
        c
    });
    assert_eq!(run.code, Some(0), "{run}");
    let umask_file = dir.join("umask.txt");
    wait_until(
        "the program to write its umask",
        Duration::from_secs(10),
        || std::fs::read_to_string(&umask_file).is_ok_and(|s| s.ends_with('\n')),
    );
    let umask = std::fs::read_to_string(&umask_file).expect("umask.txt");
    let pid: u32 = std::fs::read_to_string(dir.join("sd.pid"))
        .expect("pidfile")
        .trim()
        .parse()
        .expect("a pid");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let nproc_soft = nproc_limit(&limits);
    let run = env.run(env.bare_command(&["-c", conf_arg, "shutdown"]));
    assert_eq!(run.code, Some(0), "{run}");

    assert_eq!(umask.trim(), "0077");
    let n = nproc_soft.expect("a finite processes limit");
    assert!(n >= minprocs, "Max processes {n}, minprocs {minprocs}");
    let log = std::fs::read_to_string(dir.join("main.log")).expect("main.log");
    assert!(
        !log.contains(" INFO "),
        "loglevel=warn, yet info lines were logged:\n{log}"
    );
}

/// tend's own log rotates by `log_max_size` and `log_backups`, like the
/// processes' files.
#[test]
fn the_daemons_own_log_rotates() {
    let d = Daemon::start(
        "[daemon]\nlog_file = \"own.log\"\nlog_max_size = \"1KB\"\nlog_backups = 2\n\
         [process.a]\ncommand = \"sleep 1000\"\n",
    );
    let own = |n: &str| d.dir.path().join(format!("own.log{n}"));
    // Every restart logs a few lines at the harness's debug level.
    wait_until("the log to rotate twice", Duration::from_secs(20), || {
        d.ok(&["restart", "a"]);
        own(".2").exists()
    });
    for n in ["", ".1", ".2"] {
        let size = std::fs::metadata(own(n)).map_or(0, |m| m.len());
        assert!(size <= 1024, "own.log{n} is {size} bytes");
    }
    assert!(!own(".3").exists(), "only 2 backups are kept");
    let text = std::fs::read_to_string(own(".1")).expect("own.log.1");
    assert!(text.ends_with('\n'), "whole lines: {text:?}");
}
