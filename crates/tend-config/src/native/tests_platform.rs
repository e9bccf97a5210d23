//! `[daemon] cgroup` and `forward_signals`, `[http] health`, a process's
//! `limits`, `exit_with` and `ready_gate`, and the socket's directory.

use std::path::{Path, PathBuf};

use tend_core::{RestartPolicy, Signal};

use super::*;
use crate::platform::{CgroupMode, HealthListen};

const FAKE: &str = "/nonexistent-tend-test/app/tend.toml";

fn ok(text: &str) -> Config {
    parse(Path::new(FAKE), text).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("tend.toml"), text) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_platform_defaults() {
    let c = ok("");
    assert_eq!(c.daemon.platform.cgroup, CgroupMode::Auto);
    assert!(c.daemon.platform.forward_signals.is_empty());
    assert_eq!(c.daemon.platform.health, None);
}

#[test]
fn daemon_and_http_keys() {
    let c = ok(r#"
[daemon]
cgroup = "/sys/fs/cgroup/tend"
forward_signals = ["USR1", "SIGHUP", "WINCH"]

[http]
health = "0.0.0.0:8080"
listen = ["127.0.0.1:9001"]
max_body = "4MiB"
"#);
    // One [http] table: the probes' listener beside the API's.
    assert_eq!(c.daemon.http.listen.len(), 1);
    assert_eq!(c.daemon.http.listen[0].port, 9001);
    assert_eq!(c.daemon.http.limits.max_body, 4 << 20);
    let p = &c.daemon.platform;
    assert_eq!(
        p.cgroup,
        CgroupMode::Path(PathBuf::from("/sys/fs/cgroup/tend"))
    );
    assert_eq!(
        p.forward_signals,
        [Signal::USR1, Signal::HUP, "WINCH".parse().expect("WINCH")]
    );
    assert_eq!(
        p.health,
        Some(HealthListen {
            host: "0.0.0.0".into(),
            port: 8080
        })
    );
    assert_eq!(
        ok("[daemon]\ncgroup = \"off\"\n").daemon.platform.cgroup,
        CgroupMode::Off
    );
}

#[test]
fn bad_daemon_and_http_keys_say_why() {
    let e = errors(
        "[daemon]\ncgroup = \"atuo\"\nforward_signals = [\"TERM\", \"NOPE\"]\n[http]\nhealth = \"8080\"\nlisten2 = 1\n",
    );
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(
        e[0].starts_with("tend.toml:2:10: cgroup must be")
            && e[0].contains("did you mean \"auto\""),
        "{}",
        e[0]
    );
    assert!(e[1].contains("SIGTERM cannot be forwarded"), "{}", e[1]);
    assert!(e[2].contains("unknown signal"), "{}", e[2]);
    assert!(
        e[3].contains("health: \"8080\" is not HOST:PORT"),
        "{}",
        e[3]
    );
    assert!(
        e[4].contains("unknown key \"listen2\" in [http]"),
        "{}",
        e[4]
    );
    assert!(errors("[daemon]\ncgroup = \"relative/x\"\n")[0].contains("absolute path"));
}

#[test]
fn limits_exit_with_and_ready_gate() {
    let c = ok(r#"
[process.web]
command = "web"
ready_gate = true
limits = { memory_max = "512MB", memory_high = 400000000, cpu_max = "150%", pids_max = 64, io_weight = 500 }

[process.job]
command = "job"
exit_with = true

[process.retry]
command = "retry"
exit_with = true
restart = "on-failure"
"#);
    let web = &c.processes[0];
    assert!(web.ready_gate && !web.exit_with);
    assert_eq!(web.limits.memory_max, Some(512 << 20));
    assert_eq!(web.limits.memory_high, Some(400_000_000));
    assert_eq!(web.limits.cpu_max, Some(150));
    assert_eq!(web.limits.pids_max, Some(64));
    assert_eq!(web.limits.io_weight, Some(500));
    assert_eq!(web.restart, RestartPolicy::Always);
    // exit_with: not restarted, unless the table says otherwise.
    assert!(c.processes[1].exit_with);
    assert_eq!(c.processes[1].restart, RestartPolicy::Never);
    assert_eq!(c.processes[2].restart, RestartPolicy::OnFailure);
}

#[test]
fn bad_limits_say_why() {
    let e = errors(
        "[process.web]\ncommand = \"web\"\nmemory_max = \"1G\"\n[process.web.limits]\ncpu_max = \"50\"\nio_weight = 0\nmemory_max = \"0\"\npids_max = 0\nswap = 1\n",
    );
    assert_eq!(e.len(), 6, "{e:#?}");
    assert!(
        e[0].contains("did you mean \"limits.memory_max\""),
        "{}",
        e[0]
    );
    assert!(
        e[1].contains("cpu_max \"50\" is not a percentage"),
        "{}",
        e[1]
    );
    assert!(e[2].contains("io_weight 0"), "{}", e[2]);
    assert!(e[3].contains("limit of 0"), "{}", e[3]);
    assert!(e[4].contains("pids_max must be at least 1"), "{}", e[4]);
    assert!(
        e[5].contains("unknown key \"swap\" in [process.web.limits]"),
        "{}",
        e[5]
    );
}

#[test]
fn a_socket_in_a_missing_directory_is_an_error() {
    let e = errors("[daemon]\nsocket = \"/nonexistent-tend-dir/tend.sock\"\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with(
            "tend.toml:2:10: the socket's directory /nonexistent-tend-dir does not exist"
        ),
        "{}",
        e[0]
    );
}
