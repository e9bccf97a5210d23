//! Every file of `examples/` for a platform, parsed as that platform reads
//! it and run as it would run it: the Dockerfile with tend as PID 1 of a new
//! PID namespace (`unshare --pid --fork --mount-proc`, as a container
//! engine starts it), the systemd unit with a notify socket the test
//! listens on and a delegated cgroup the test makes, and the Kubernetes
//! pod with its probes sent by curl as a kubelet sends them.
//!
//! What cannot be the same outside a container is rewritten, and only that:
//! fixed ports become free ones (the tests share one network), and the
//! image's directories (`/srv`, `/var/log/tend`, `/run`) become the test's.

#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{TEND, TestEnv, alive, children, cmdline, free_port, wait_until};
use crate::platform::{FakeSystemd, probe};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// --- Docker ------------------------------------------------------------------------

/// One instruction of a Dockerfile: its keyword (upper case) and the rest,
/// continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The instructions of a Dockerfile, as Docker's parser reads them:
/// comments and blank lines skipped, a trailing backslash continues.
fn dockerfile(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if pending.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(t);
                let (k, a) = pending
                    .split_once(char::is_whitespace)
                    .unwrap_or((&pending, ""));
                out.push(Instruction {
                    keyword: k.to_ascii_uppercase(),
                    args: a.trim().to_string(),
                });
                pending.clear();
            }
        }
    }
    assert!(pending.is_empty(), "a continuation runs off the end");
    out
}

/// A JSON-array (exec form) argument, as ENTRYPOINT and CMD take it.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not the exec form ({e}): {args}"))
}

/// The Dockerfile's final stage, checked: what it runs, what it copies where.
struct Image {
    entrypoint: Vec<String>,
    /// Destination in the image -> file in the repository.
    copies: BTreeMap<String, PathBuf>,
    healthcheck: String,
    stopsignal: String,
    expose: Vec<u16>,
}

fn image() -> Image {
    let text = read(&examples().join("Dockerfile"));
    let all = dockerfile(&text);
    let stages: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "FROM")
        .map(|(n, _)| n)
        .collect();
    assert!(stages.len() >= 2, "a build stage and a runtime stage");
    let last = &all[*stages.last().unwrap_or(&0)..];
    let known = [
        "FROM",
        "RUN",
        "COPY",
        "ENTRYPOINT",
        "CMD",
        "EXPOSE",
        "HEALTHCHECK",
        "STOPSIGNAL",
        "WORKDIR",
        "ENV",
        "LABEL",
        "USER",
        "ARG",
    ];
    for i in &all {
        assert!(
            known.contains(&i.keyword.as_str()),
            "unknown instruction {i:?}"
        );
    }
    let one = |k: &str| {
        let found: Vec<&Instruction> = last.iter().filter(|i| i.keyword == k).collect();
        assert_eq!(found.len(), 1, "one {k} in the final stage: {found:?}");
        found[0].args.clone()
    };
    let root = examples().join("..");
    let copies = last
        .iter()
        .filter(|i| i.keyword == "COPY" && !i.args.starts_with("--from"))
        .map(|i| {
            let parts: Vec<&str> = i.args.split_whitespace().collect();
            assert_eq!(parts.len(), 2, "COPY SRC DEST: {i:?}");
            let src = root.join(parts[0]);
            assert!(
                src.is_file(),
                "COPY of a file the repository has: {}",
                src.display()
            );
            (parts[1].to_string(), src)
        })
        .collect();
    Image {
        entrypoint: exec_form(&one("ENTRYPOINT")),
        copies,
        healthcheck: one("HEALTHCHECK"),
        stopsignal: one("STOPSIGNAL"),
        expose: one("EXPOSE")
            .split_whitespace()
            .map(|p| p.parse().expect("a port"))
            .collect(),
    }
}

/// `-c FILE` of a command line.
fn config_arg(argv: &[String]) -> String {
    let i = argv.iter().position(|a| a == "-c").expect("-c CONFIG");
    argv[i + 1].clone()
}

/// What `tend -c CONFIG up` is started as, with the config copied (and
/// rewritten) into `dir`.
struct Rewritten {
    config: PathBuf,
    ports: BTreeMap<u16, u16>,
}

fn rewrite(text: &str, dir: &Path, ports: &[u16], paths: &[(&str, &str)]) -> Rewritten {
    let mut text = text.to_string();
    let mut map = BTreeMap::new();
    for &p in ports {
        let to = free_port();
        text = text.replace(&format!(":{p}"), &format!(":{to}"));
        text = text.replace(&format!("\"{p}\""), &format!("\"{to}\""));
        map.insert(p, to);
    }
    for (from, to) in paths {
        let target = dir.join(to);
        std::fs::create_dir_all(&target).expect("mkdir");
        text = text.replace(from, &target.display().to_string());
    }
    let config = dir.join("tend.toml");
    std::fs::write(&config, text).expect("write config");
    Rewritten { config, ports: map }
}

/// The pid in its own PID namespace (the last `NSpid` field).
fn ns_pid(pid: u32) -> Option<u32> {
    read(Path::new(&format!("/proc/{pid}/status")))
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().last()?.parse().ok())
}

/// Zombies whose parent is `pid`.
fn zombies_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                s.rsplit_once(')').is_some_and(|(_, r)| {
                    let f: Vec<&str> = r.split_whitespace().collect();
                    f.first() == Some(&"Z") && f.get(1) == Some(&pid.to_string().as_str())
                })
            })
        })
        .collect()
}

/// `unshare --pid --fork --mount-proc tend ...`: tend as PID 1 of a new PID
/// namespace, as a container engine starts an image's entrypoint.
struct Container {
    unshare: Child,
    tend: u32,
    out: PathBuf,
}

impl Container {
    fn start(env: &TestEnv, argv: &[String], out: &Path) -> Container {
        let out_file = std::fs::File::create(out).expect("out");
        let err_file = std::fs::File::create(env.dir.path().join("tend.err")).expect("err");
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc", TEND])
            .args(&argv[1..])
            .current_dir(env.dir.path())
            .env("TEND_TEST_MARKER", &env.marker)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(err_file);
        let unshare = cmd.spawn().expect("unshare");
        let parent = unshare.id();
        let mut tend = 0;
        wait_until(
            "tend to start in its namespace",
            Duration::from_secs(10),
            || {
                tend = children(parent)
                    .into_iter()
                    .find(|&p| cmdline(p).starts_with(TEND))
                    .unwrap_or(0);
                tend != 0
            },
        );
        Container {
            unshare,
            tend,
            out: out.to_path_buf(),
        }
    }

    fn out(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.out).unwrap_or_default()).into_owned()
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.tend as i32), sig).expect("signal tend");
    }

    /// `docker stop`/`wait`: the exit status of the namespace's PID 1.
    fn wait(mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(st)) = self.unshare.try_wait() {
                return st.code();
            }
            assert!(
                Instant::now() < deadline,
                "tend did not exit in {within:?}:\n{}",
                self.out()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Ok(None) = self.unshare.try_wait() {
            let _ = kill(Pid::from_raw(self.tend as i32), Signal::SIGKILL);
            let _ = self.unshare.wait();
        }
    }
}

fn can_run_containers() -> bool {
    tend_testkit::require_root("a PID namespace of its own (unshare --pid)")
        && tend_testkit::require_program("unshare").is_some()
        && tend_testkit::require_program("python3").is_some()
        && tend_testkit::require_program("curl").is_some()
}

/// The image's config in the test's directory: ports free, the image's
/// directories the test's, `/srv` with a page to serve.
fn docker_config(env: &TestEnv, image: &Image, extra: &str) -> (Vec<String>, Rewritten) {
    let inside = config_arg(&image.entrypoint);
    let src = image
        .copies
        .get(&inside)
        .unwrap_or_else(|| panic!("the image gets {inside} from a COPY"));
    let mut text = read(src);
    text.push_str(extra);
    let rw = rewrite(
        &text,
        env.dir.path(),
        &image.expose,
        &[("/var/log/tend", "logs"), ("/srv", "srv")],
    );
    std::fs::write(env.dir.path().join("srv/index.html"), "hello\n").expect("page");
    let mut argv = image.entrypoint.clone();
    let i = argv.iter().position(|a| a == "-c").expect("-c") + 1;
    argv[i] = rw.config.display().to_string();
    (argv, rw)
}

#[test]
fn the_dockerfile_runs_tend_as_pid_1_reaping_forwarding_and_exiting_cleanly() {
    let image = image();
    assert_eq!(image.entrypoint[0], "tend");
    assert_eq!(image.entrypoint.last().map(String::as_str), Some("up"));
    assert_eq!(image.stopsignal, "SIGTERM");
    let loaded = tend_config::load_any(&image.copies[&config_arg(&image.entrypoint)])
        .unwrap_or_else(|e| panic!("the image's config: {e}"));
    let health = loaded
        .config
        .daemon
        .platform
        .health
        .clone()
        .expect("[http] health");
    assert!(
        image.expose.contains(&health.port),
        "EXPOSE the health port"
    );
    assert!(
        image
            .healthcheck
            .contains(&format!("127.0.0.1:{}/readyz", health.port)),
        "{}",
        image.healthcheck
    );
    if !can_run_containers() {
        return;
    }
    let env = TestEnv::new("");
    let (argv, rw) = docker_config(&env, &image, "");
    // Faster jobs, so that the test sees several orphans.
    let text = read(&rw.config).replace("sleep 2; done", "sleep 0.3; done");
    std::fs::write(&rw.config, text).expect("write");
    let c = Container::start(&env, &argv, &env.dir.path().join("tend.out"));
    assert_eq!(ns_pid(c.tend), Some(1), "tend is PID 1 of its namespace");
    let ready = format!("http://127.0.0.1:{}/readyz", rw.ports[&health.port]);
    wait_until("the container to be ready", Duration::from_secs(15), || {
        probe(&ready).0 == 200
    });
    let web = format!("http://127.0.0.1:{}/", rw.ports[&8000]);
    assert_eq!(probe(&web), (200, "hello\n".into()));

    // Orphans: each job's shell is re-parented to tend, PID 1, which reaps it.
    wait_until(
        "an orphan of the worker under PID 1",
        Duration::from_secs(10),
        || {
            children(c.tend)
                .iter()
                .any(|&p| cmdline(p).starts_with("sh -c sleep 0.2"))
        },
    );
    wait_until("three jobs done", Duration::from_secs(10), || {
        c.out().matches("worker: job done").count() >= 3
    });
    let z = zombies_of(c.tend);
    std::thread::sleep(Duration::from_millis(300));
    let still: Vec<u32> = zombies_of(c.tend)
        .into_iter()
        .filter(|p| z.contains(p))
        .collect();
    assert!(still.is_empty(), "zombies left unreaped: {still:?}");

    // Signals: HUP is forwarded to the services; one tend does not handle
    // is ignored, as PID 1 must.
    c.signal(Signal::SIGHUP);
    wait_until("the worker to get HUP", Duration::from_secs(5), || {
        c.out().contains("worker: settings reloaded")
    });
    c.signal(Signal::SIGALRM);
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(c.tend), "tend died of a signal it did not ask for");

    // docker stop: SIGTERM, every service stopped in order, exit 0.
    c.signal(Signal::SIGTERM);
    assert_eq!(c.wait(Duration::from_secs(15)), Some(0));
}

#[test]
fn the_dockerfile_with_exit_with_exits_as_its_service_did() {
    let image = image();
    if !can_run_containers() {
        return;
    }
    let env = TestEnv::new("");
    // `docker run` of one service: web's end is the container's end.
    let (argv, rw) = docker_config(&env, &image, "");
    let text = read(&rw.config).replace("ready_gate = true", "ready_gate = true\nexit_with = true");
    std::fs::write(&rw.config, text).expect("write");
    let c = Container::start(&env, &argv, &env.dir.path().join("tend.out"));
    let ready = format!("http://127.0.0.1:{}/readyz", rw.ports[&8080]);
    wait_until("ready", Duration::from_secs(15), || probe(&ready).0 == 200);
    let python = children(c.tend)
        .into_iter()
        .find(|&p| cmdline(p).contains("http.server"))
        .expect("web's pid");
    kill(Pid::from_raw(python as i32), Signal::SIGKILL).expect("kill web");
    assert_eq!(c.wait(Duration::from_secs(15)), Some(128 + 9));
}

// --- systemd ----------------------------------------------------------------------

/// `[Section]` -> key -> values (a key may repeat), as systemd reads a unit.
fn unit_file(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
        assert!(!section.is_empty(), "{line} outside a section");
        out.entry(section.clone())
            .or_default()
            .entry(k.trim().to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    out
}

fn seconds(v: &str) -> u64 {
    v.trim_end_matches('s').parse().expect("seconds")
}

#[test]
fn the_systemd_unit_runs_tend_as_systemd_would() {
    let unit = unit_file(&read(&examples().join("tend.service")));
    let svc = &unit["Service"];
    let get = |k: &str| {
        svc.get(k)
            .and_then(|v| v.last())
            .unwrap_or_else(|| panic!("no {k}="))
            .clone()
    };
    assert_eq!(get("Type"), "notify");
    assert_eq!(get("Delegate"), "yes");
    assert_eq!(get("KillSignal"), "SIGTERM");
    let exec: Vec<String> = get("ExecStart")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(
        exec[0].ends_with("/tend") && exec.last().map(String::as_str) == Some("up"),
        "{exec:?}"
    );
    let reload: Vec<String> = get("ExecReload")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(reload.last().map(String::as_str), Some("reload"));
    let stop_timeout = Duration::from_secs(seconds(&get("TimeoutStopSec")));
    let watchdog = Duration::from_secs(seconds(&get("WatchdogSec")));
    assert!(watchdog > Duration::ZERO);
    assert!(unit.contains_key("Install"));

    let env = TestEnv::new(
        r#"
[process.web]
command = ["sh", "-c", "setsid sleep 1237 & exec sleep 1238"]
[process.web.stop]
timeout = "2s"
"#,
    );
    // Delegate=yes: the unit gets a cgroup of its own, tend alone in it.
    let unit_cg = delegated_cgroup(&env);
    let mut systemd = FakeSystemd::new(env.dir.path());
    let mut argv: Vec<String> = exec.clone();
    argv[0] = TEND.to_string();
    let i = argv.iter().position(|a| a == "-c").expect("-c") + 1;
    argv[i] = env.config.display().to_string();
    let log = std::fs::File::create(env.dir.path().join("daemon.log")).expect("log");
    let mut start = Command::new("sh");
    start.arg("-c");
    match &unit_cg {
        Some(cg) => start.arg(format!(
            "echo $$ > {}/cgroup.procs && exec \"$@\"",
            cg.display()
        )),
        None => start.arg("exec \"$@\""),
    };
    let mut child = start
        .arg("sh")
        .args(&argv)
        .current_dir(env.dir.path())
        .env("TEND_TEST_MARKER", &env.marker)
        .env("NOTIFY_SOCKET", &systemd.path)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("ExecStart");
    let ready = systemd.until("READY=1", Duration::from_secs(10));
    assert!(ready.contains("STATUS=1 process: 1 running"), "{ready}");
    let web = env.pid("web");
    if let Some(cg) = &unit_cg {
        // Its process runs in a cgroup of its own below the unit's.
        let inside = std::fs::read_to_string(format!("/proc/{web}/cgroup")).expect("cgroup");
        let rel = inside
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or_default();
        let unit_name = cg.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(rel.contains(&format!("/{unit_name}/tend-")), "{rel}");
        assert!(rel.ends_with("/web.proc"), "{rel}");
    }

    // systemctl reload: ExecReload.
    let mut args: Vec<String> = reload[1..].to_vec();
    let i = args.iter().position(|a| a == "-c").expect("-c") + 1;
    args[i] = env.config.display().to_string();
    let out = Command::new(TEND)
        .args(&args)
        .env("TEND_TEST_MARKER", &env.marker)
        .output()
        .expect("ExecReload");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // systemctl stop: KillSignal to the main process, within TimeoutStopSec.
    let t = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("TERM");
    systemd.until("STOPPING=1", Duration::from_secs(5));
    let status = child.wait().expect("wait");
    assert!(t.elapsed() < stop_timeout);
    let ok: Vec<i32> = svc
        .get("SuccessExitStatus")
        .into_iter()
        .flatten()
        .flat_map(|v| {
            v.split_whitespace()
                .map(|c| c.parse::<i32>().expect("a code"))
        })
        .chain([0])
        .collect();
    assert!(ok.contains(&status.code().unwrap_or(-1)), "{status}");
    // KillMode=mixed leaves systemd nothing to kill: the unit's cgroup is empty.
    if let Some(cg) = unit_cg {
        let events = std::fs::read_to_string(cg.join("cgroup.events")).expect("events");
        assert!(events.contains("populated 0"), "{events}");
        let _ = std::fs::remove_dir(&cg);
    }
}

/// A cgroup for the "unit" in the machine's cgroup v2 hierarchy, found the
/// way tend finds its own; `None` (tested without it) where none can be made.
fn delegated_cgroup(env: &TestEnv) -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let point = mounts.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split_whitespace().next()? == "cgroup2" && pre.split_whitespace().nth(3)? == "/")
            .then(|| pre.split_whitespace().nth(4).map(PathBuf::from))?
    })?;
    let name = format!("tend-test-unit-{}.service", env.marker);
    let dir = point.join(path.trim_start_matches('/')).join(name);
    std::fs::create_dir(&dir).ok()?;
    Some(dir)
}

// --- Kubernetes --------------------------------------------------------------------

use yaml_rust2::{Yaml, YamlLoader};

fn yaml_str<'a>(y: &'a Yaml, path: &[&str]) -> &'a Yaml {
    path.iter().fold(y, |y, k| &y[*k])
}

/// The `containerPort` of a named or numbered port.
fn port_of(container: &Yaml, port: &Yaml) -> u16 {
    if let Some(n) = port.as_i64() {
        return u16::try_from(n).expect("a port");
    }
    let name = port.as_str().expect("a port name");
    container["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_i64())
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or_else(|| panic!("no port named {name}"))
}

#[test]
fn the_kubernetes_pod_is_probed_by_its_kubelet_and_stops_within_its_grace() {
    let docs = YamlLoader::load_from_str(&read(&examples().join("kubernetes/tend.yaml")))
        .expect("valid YAML");
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let cm = kind("ConfigMap");
    let pod = kind("Pod");
    assert_eq!(pod["apiVersion"].as_str(), Some("v1"));
    let spec = &pod["spec"];
    let grace = Duration::from_secs(
        spec["terminationGracePeriodSeconds"]
            .as_i64()
            .and_then(|n| u64::try_from(n).ok())
            .expect("terminationGracePeriodSeconds"),
    );
    let container = &spec["containers"][0];
    let command: Vec<String> = container["command"]
        .as_vec()
        .expect("command")
        .iter()
        .map(|a| a.as_str().expect("a string").to_string())
        .collect();
    assert_eq!(command[0], "tend");
    assert_eq!(command.last().map(String::as_str), Some("up"));
    // The config file the command names comes from the ConfigMap's volume.
    let config_path = PathBuf::from(config_arg(&command));
    let mount = container["volumeMounts"]
        .as_vec()
        .expect("volumeMounts")
        .iter()
        .find(|m| config_path.starts_with(m["mountPath"].as_str().unwrap_or("/nowhere")))
        .expect("a volume holds the config");
    let volume = spec["volumes"]
        .as_vec()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the volume");
    assert_eq!(volume["configMap"]["name"], cm["metadata"]["name"]);
    let key = config_path
        .file_name()
        .and_then(|f| f.to_str())
        .expect("a file name");
    let toml = cm["data"][key]
        .as_str()
        .expect("the config in the ConfigMap");

    let live = yaml_str(container, &["livenessProbe", "httpGet"]);
    let ready = yaml_str(container, &["readinessProbe", "httpGet"]);
    assert_eq!(live["path"].as_str(), Some("/healthz"));
    assert_eq!(ready["path"].as_str(), Some("/readyz"));
    let health_port = port_of(container, &ready["port"]);
    let app_port = port_of(container, &Yaml::String("http".into()));

    let env = TestEnv::new("");
    let rw = rewrite(
        toml,
        env.dir.path(),
        &[health_port, app_port],
        &[("/var/log/tend", "logs"), ("/srv", "srv"), ("/run", "run")],
    );
    let loaded = tend_config::load_any(&rw.config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded
            .config
            .daemon
            .platform
            .health
            .as_ref()
            .map(|h| h.port),
        Some(rw.ports[&health_port]),
        "the probes point at tend's health listener"
    );
    // The grace period covers the ordered stop: each priority level waits
    // for its slowest process, one level after another.
    let mut levels: BTreeMap<i32, Duration> = BTreeMap::new();
    for p in &loaded.config.processes {
        let t = levels.entry(p.priority).or_default();
        *t = (*t).max(p.stop.timeout);
    }
    let needed: Duration = levels.values().sum();
    assert!(
        grace >= needed + Duration::from_secs(5),
        "terminationGracePeriodSeconds {grace:?} leaves no margin over {needed:?}"
    );
    if tend_testkit::require_program("curl").is_none()
        || tend_testkit::require_program("python3").is_none()
    {
        return;
    }
    let mut argv = command.clone();
    let i = argv.iter().position(|a| a == "-c").expect("-c") + 1;
    argv[i] = rw.config.display().to_string();
    let log = std::fs::File::create(env.dir.path().join("daemon.log")).expect("log");
    let mut child = Command::new(TEND)
        .args(&argv[1..])
        .current_dir(env.dir.path())
        .env("TEND_TEST_MARKER", &env.marker)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("tend up");
    let base = format!("http://127.0.0.1:{}", rw.ports[&health_port]);
    // startupProbe, then liveness; readiness once web serves.
    wait_until("the startup probe", Duration::from_secs(10), || {
        probe(&format!("{base}/healthz")).0 == 200
    });
    wait_until("the readiness probe", Duration::from_secs(15), || {
        probe(&format!("{base}/readyz")) == (200, "ready\n".into())
    });
    assert_eq!(probe(&format!("{base}/healthz")), (200, "ok\n".into()));
    // The pod is deleted: SIGTERM, and the end well within the grace period.
    let t = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("TERM");
    let deadline = Instant::now() + grace;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "not stopped within the grace period"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(t.elapsed() < grace);
}

/// `Delegate=yes` for a service with `User=`: systemd makes the unit's
/// cgroup, moves the service's process into it as root, hands the cgroup
/// to the user (its directory, `cgroup.procs`, `cgroup.subtree_control`,
/// `cgroup.threads`) and drops privileges. tend, unprivileged, then gives
/// each process a cgroup of its own inside it.
#[test]
fn unprivileged_tend_uses_a_delegated_subtree() {
    if !tend_testkit::require_root("to hand a cgroup to another user, as systemd does")
        || tend_testkit::require_program("setpriv").is_none()
    {
        return;
    }
    let env = TestEnv::new(
        "[process.web]\ncommand = [\"sh\", \"-c\", \"setsid sleep 1239 & exec sleep 1240\"]\n[process.web.stop]\ntimeout = \"1s\"\n",
    );
    let unit = delegated_cgroup(&env);
    tend_testkit::require!(
        unit.is_some(),
        "no cgroup v2 where a unit's cgroup can be made"
    );
    let unit = unit.unwrap_or_default();
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    for p in [
        unit.clone(),
        unit.join("cgroup.procs"),
        unit.join("cgroup.subtree_control"),
        unit.join("cgroup.threads"),
    ] {
        nix::unistd::chown(&p, Some(nobody), Some(nogroup)).expect("chown");
    }
    // The user needs its config directory too.
    let dir = env.dir.path();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$@\"",
            unit.display()
        ))
        .arg("sh")
        .arg(TEND)
        .arg("-c")
        .arg(&env.config)
        .arg("up")
        .current_dir(dir)
        .env("TEND_TEST_MARKER", &env.marker)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("tend up as nobody");
    let log_text = || std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    wait_until("web to run", Duration::from_secs(10), || {
        log_text().contains("web: spawned")
    });
    let daemon_log = log_text();
    assert!(
        daemon_log.contains(&format!(
            "processes run in cgroups under {}/tend-",
            unit.display()
        )),
        "{daemon_log}"
    );
    let mut web = 0;
    wait_until("web's pid", Duration::from_secs(5), || {
        web = children(child.id())
            .into_iter()
            .find(|&p| cmdline(p).starts_with("sleep 1240"))
            .unwrap_or(0);
        web != 0
    });
    let cg = read(Path::new(&format!("/proc/{web}/cgroup")));
    assert!(cg.trim_end().ends_with("/web.proc"), "{cg}");
    let uid = read(Path::new(&format!("/proc/{web}/status")))
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|u| u.split_whitespace().next().unwrap_or("").to_string())
        })
        .unwrap_or_default();
    assert_eq!(uid, "65534");
    // A stop reaches the grandchild that left its group: the cgroup empties.
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("TERM");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{}", log_text());
    let events = read(&unit.join("cgroup.events"));
    assert!(events.contains("populated 0"), "{events}");
    let _ = std::fs::remove_dir(&unit);
}

/// Docker's default: the cgroup file system is mounted read-only. tend says
/// so once, naming the limits it cannot apply, and runs with process groups.
#[test]
fn a_read_only_cgroup_file_system_is_one_clear_warning() {
    if !tend_testkit::require_root("a mount namespace of its own (unshare --mount)")
        || tend_testkit::require_program("unshare").is_none()
    {
        return;
    }
    let env = TestEnv::new(
        "[process.web]\ncommand = \"sleep 1000\"\nlimits = { memory_max = \"64MB\" }\n\n[process.worker]\ncommand = \"sleep 1000\"\n",
    );
    let mounts = read(Path::new("/proc/self/mountinfo"));
    let points: Vec<String> = mounts
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            post.starts_with("cgroup2 ")
                .then(|| pre.split_whitespace().nth(4).map(str::to_string))?
        })
        .collect();
    tend_testkit::require!(!points.is_empty(), "no cgroup2 mount to make read-only");
    let remount: Vec<String> = points
        .iter()
        .map(|p| format!("mount -o remount,bind,ro {p}"))
        .collect();
    let log = std::fs::File::create(env.dir.path().join("daemon.log")).expect("log");
    // unshare without --fork, and the shell's exec: tend has the child's pid.
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("{} && exec \"$@\"", remount.join(" && ")))
        .arg("sh")
        .arg(TEND)
        .arg("-c")
        .arg(&env.config)
        .arg("up")
        .current_dir(env.dir.path())
        .env("TEND_TEST_MARKER", &env.marker)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("unshare");
    let log_text =
        || std::fs::read_to_string(env.dir.path().join("daemon.log")).unwrap_or_default();
    wait_until("both to run", Duration::from_secs(10), || {
        let l = log_text();
        l.contains("web: spawned") && l.contains("worker: spawned")
    });
    let l = log_text();
    let warnings: Vec<&str> = l.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{l}");
    let w = warnings[0];
    assert!(w.contains("no cgroups for the processes"), "{w}");
    assert!(w.contains("read-only"), "{w}");
    assert!(w.contains("the limits of web are not applied"), "{w}");
    // Still a working supervisor, stopped cleanly. (Its guard is a child of
    // it with the same command line, so tend is not looked for among those.)
    let tend = child.id();
    wait_until(
        "unshare's shell to exec tend",
        Duration::from_secs(5),
        || cmdline(tend).starts_with(TEND),
    );
    kill(Pid::from_raw(tend as i32), Signal::SIGTERM).expect("TERM");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{}", log_text());
    // Nothing of it is left (TestEnv fails the test on drop otherwise).
    let left = env.marked();
    assert!(left.is_empty(), "left running: {left:?}");
}
