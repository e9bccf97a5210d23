//! Supervisor's methods against a real supervisor with real processes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tend_core::spec::LogTarget;
use tend_core::{Backoff, BackoffMode, Name, Options, ProcessSpec, Supervisor};
use tower::ServiceExt;

use tend_config::Declared;
use tend_server::{BasicAuth, Daemon, Shutdown};

use super::rpc::Rpc;
use super::{Face, FaceOptions, require_auth, routes};
use crate::xmlrpc::{Fault, Value, dispatch, parse_call, write_call};

struct F {
    sup: Supervisor,
    face: Arc<Face>,
    rpc: Rpc,
    shutdown: Shutdown,
    next: Arc<Mutex<Declared>>,
    dir: tempfile::TempDir,
}

/// A spec that runs `argv`, stopped until started, logging into `dir`.
fn spec(dir: &Path, name: &str, group: &str, argv: &[&str]) -> ProcessSpec {
    let mut s = ProcessSpec::new(
        Name::new(name).expect("name"),
        argv.iter().map(|a| a.to_string()).collect(),
    );
    s.group = Name::new(group).expect("group");
    s.autostart = false;
    s.stop.timeout = Duration::from_secs(2);
    s.logs.stdout = LogTarget::File(dir.join(format!("{name}.out.log")));
    s.logs.stderr = LogTarget::File(dir.join(format!("{name}.err.log")));
    s
}

/// Supervisor's start model: running after `secs`, 1 s, 2 s ... between
/// failed starts, fatal after `retries` retries.
fn supervisor_like(mut s: ProcessSpec, secs: u64, retries: u32) -> ProcessSpec {
    s.start_secs = Duration::from_secs(secs);
    s.backoff = Backoff {
        mode: BackoffMode::Linear {
            step: Duration::from_secs(1),
        },
        min_uptime: Duration::ZERO,
        give_up_after: Some(retries + 1),
        ..Backoff::default()
    };
    s
}

impl F {
    async fn new(specs: Vec<ProcessSpec>) -> F {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::with_dir(dir, specs).await
    }

    async fn with_dir(dir: tempfile::TempDir, specs: Vec<ProcessSpec>) -> F {
        let (sup, _driver) = Supervisor::spawn(Options::default(), false).expect("supervisor");
        let shutdown = Shutdown::new();
        let declared = Declared::from_specs(specs);
        let next = Arc::new(Mutex::new(declared.clone()));
        let mut opts = FaceOptions::new("testsupervisor");
        opts.main_log = Some(dir.path().join("main.log"));
        let n = next.clone();
        let loader: tend_server::state::Loader = Arc::new(move || {
            n.lock()
                .map(|d| d.clone())
                .map_err(|_| "poisoned".to_string())
        });
        let daemon = Daemon::new(sup.clone(), shutdown.clone(), declared, Some(loader));
        daemon.config().add_declared().await.expect("add");
        let face = Face::new(daemon, opts);
        F {
            rpc: Rpc::new(face.clone()),
            sup,
            face,
            shutdown,
            next,
            dir,
        }
    }

    async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, Fault> {
        dispatch(&self.rpc, method, params).await
    }

    async fn ok(&self, method: &str, params: Vec<Value>) -> Value {
        match self.call(method, params).await {
            Ok(v) => v,
            Err(f) => panic!("{method}: {f}"),
        }
    }

    async fn fault(&self, method: &str, params: Vec<Value>) -> (i32, String) {
        match self.call(method, params).await {
            Ok(v) => panic!("{method}: expected a fault, got {v:?}"),
            Err(f) => (f.code, f.string),
        }
    }

    async fn state(&self, name: &str) -> String {
        let info = self.ok("supervisor.getProcessInfo", vec![s(name)]).await;
        info.get("statename")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    async fn finish(self) {
        self.sup.shutdown().await.expect("shutdown");
    }
}

fn s(v: &str) -> Value {
    Value::from(v)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn int_of(v: &Value, key: &str) -> i32 {
    v.get(key).and_then(Value::as_i32).unwrap_or(i32::MIN)
}

/// `(name, status, description)` of each result struct.
fn results(v: &Value) -> Vec<(String, i32, String)> {
    v.as_array()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                str_of(r, "name").to_string(),
                int_of(r, "status"),
                str_of(r, "description").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn process_info_has_supervisors_fourteen_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sleeper = spec(dir.path(), "sleeper", "sleeper", &["sleep", "1000"]);
    let idle = spec(dir.path(), "idle", "idle", &["sleep", "1000"]);
    let f = F::with_dir(dir, vec![sleeper, idle]).await;

    let info = f.ok("supervisor.getProcessInfo", vec![s("idle")]).await;
    let Value::Struct(members) = &info else {
        panic!("not a struct: {info:?}")
    };
    let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "name",
            "group",
            "start",
            "stop",
            "now",
            "state",
            "statename",
            "spawnerr",
            "exitstatus",
            "logfile",
            "stdout_logfile",
            "stderr_logfile",
            "pid",
            "description"
        ]
    );
    assert_eq!(str_of(&info, "description"), "Not started");
    assert_eq!((int_of(&info, "state"), int_of(&info, "pid")), (0, 0));
    assert_eq!(int_of(&info, "start"), 0);
    let out = f.path("idle.out.log").display().to_string();
    assert_eq!(str_of(&info, "logfile"), out);
    assert_eq!(str_of(&info, "stdout_logfile"), out);

    assert_eq!(
        f.ok("supervisor.startProcess", vec![s("sleeper")]).await,
        Value::Bool(true)
    );
    let info = f.ok("supervisor.getProcessInfo", vec![s("sleeper")]).await;
    assert_eq!(str_of(&info, "statename"), "RUNNING");
    assert_eq!(int_of(&info, "state"), 20);
    let pid = int_of(&info, "pid");
    assert!(pid > 0);
    let desc = str_of(&info, "description");
    assert!(
        desc.starts_with(&format!("pid {pid}, uptime 0:00:0")),
        "{desc}"
    );
    assert!(int_of(&info, "now") >= int_of(&info, "start"));

    assert_eq!(
        f.ok("supervisor.stopProcess", vec![s("sleeper")]).await,
        Value::Bool(true)
    );
    let info = f.ok("supervisor.getProcessInfo", vec![s("sleeper")]).await;
    assert_eq!(str_of(&info, "statename"), "STOPPED");
    assert_eq!(int_of(&info, "exitstatus"), -1, "killed by SIGTERM");
    assert!(int_of(&info, "stop") >= int_of(&info, "start"));
    // Started again, it has no exit status yet: 0, as supervisord says.
    assert_eq!(
        f.ok("supervisor.startProcess", vec![s("sleeper")]).await,
        Value::Bool(true)
    );
    let running = f.ok("supervisor.getProcessInfo", vec![s("sleeper")]).await;
    assert_eq!(int_of(&running, "exitstatus"), 0, "running after a stop");
    assert_eq!(
        f.ok("supervisor.stopProcess", vec![s("sleeper")]).await,
        Value::Bool(true)
    );
    let info = f.ok("supervisor.getProcessInfo", vec![s("sleeper")]).await;
    // `Nov 20 09:42 PM`
    let desc = str_of(&info, "description").to_string();
    let b = desc.as_bytes();
    assert!(
        desc.len() == 15
            && b[3] == b' '
            && b[6] == b' '
            && b[9] == b':'
            && (desc.ends_with(" AM") || desc.ends_with(" PM")),
        "{desc:?}"
    );

    let all = f.ok("supervisor.getAllProcessInfo", vec![]).await;
    let names: Vec<&str> = all
        .as_array()
        .unwrap_or_default()
        .iter()
        .map(|i| str_of(i, "name"))
        .collect();
    assert_eq!(names, ["idle", "sleeper"], "lexical by group then name");
    f.finish().await;
}

#[tokio::test]
async fn namespecs_groups_and_result_structs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = vec![
        spec(dir.path(), "a", "g", &["sleep", "1000"]),
        spec(dir.path(), "b", "g", &["sleep", "1000"]),
    ];
    let f = F::with_dir(dir, specs).await;

    assert_eq!(
        f.fault("supervisor.getProcessInfo", vec![s("a")]).await,
        (10, "BAD_NAME: a".into())
    );
    assert_eq!(
        f.fault("supervisor.getProcessInfo", vec![s("g:*")]).await,
        (10, "BAD_NAME: g:*".into())
    );
    assert_eq!(
        f.fault("supervisor.startProcess", vec![s("nosuch:*")])
            .await,
        (10, "BAD_NAME: nosuch:*".into())
    );
    assert_eq!(
        f.fault("supervisor.stopProcess", vec![s("g:a")]).await,
        (70, "NOT_RUNNING: g:a".into())
    );
    assert_eq!(
        f.fault("supervisor.stopProcessGroup", vec![s("nosuch")])
            .await,
        (10, "BAD_NAME: nosuch".into())
    );

    let r = f.ok("supervisor.startProcess", vec![s("g:*")]).await;
    assert_eq!(
        results(&r),
        [("a".into(), 80, "OK".into()), ("b".into(), 80, "OK".into())]
    );
    assert_eq!(
        f.fault("supervisor.startProcess", vec![s("g:a")]).await,
        (60, "ALREADY_STARTED: g:a".into())
    );
    // Only the processes that are not running are started.
    let r = f.ok("supervisor.startProcessGroup", vec![s("g")]).await;
    assert_eq!(r, Value::Array(vec![]));

    let r = f
        .ok("supervisor.signalProcessGroup", vec![s("g"), s("BOGUS")])
        .await;
    assert_eq!(
        results(&r),
        [
            ("a".into(), 11, "BAD_SIGNAL: BOGUS".into()),
            ("b".into(), 11, "BAD_SIGNAL: BOGUS".into())
        ]
    );
    assert_eq!(
        f.fault("supervisor.signalProcess", vec![s("g:a"), s("NOPE")])
            .await,
        (11, "BAD_SIGNAL: NOPE".into())
    );
    assert_eq!(
        f.ok("supervisor.signalProcess", vec![s("g:a"), s("CONT")])
            .await,
        Value::Bool(true)
    );

    let r = f.ok("supervisor.stopAllProcesses", vec![]).await;
    assert_eq!(
        results(&r),
        [("a".into(), 80, "OK".into()), ("b".into(), 80, "OK".into())]
    );
    assert_eq!(
        f.fault("supervisor.signalProcess", vec![s("g:a"), s("HUP")])
            .await,
        (70, "NOT_RUNNING: g:a".into())
    );

    // wait=false answers at once, with the process on its way.
    assert_eq!(
        f.ok(
            "supervisor.startProcess",
            vec![s("g:a"), Value::Bool(false)]
        )
        .await,
        Value::Bool(true)
    );
    let st = f.state("g:a").await;
    assert!(st == "STARTING" || st == "RUNNING", "{st}");
    f.finish().await;
}

#[tokio::test]
async fn start_faults_are_supervisors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = vec![
        spec(dir.path(), "ghost", "ghost", &["no-such-program-for-tend"]),
        spec(dir.path(), "tmpdir", "tmpdir", &["/tmp"]),
        supervisor_like(
            spec(dir.path(), "failer", "failer", &["sh", "-c", "exit 1"]),
            1,
            0,
        ),
    ];
    let f = F::with_dir(dir, specs).await;
    assert_eq!(
        f.fault("supervisor.startProcess", vec![s("ghost")]).await,
        (
            20,
            "NO_FILE: can't find command 'no-such-program-for-tend'".into()
        )
    );
    assert_eq!(
        f.fault("supervisor.startProcess", vec![s("tmpdir")]).await,
        (
            21,
            "NOT_EXECUTABLE: command at '/tmp' is a directory".into()
        )
    );
    assert_eq!(
        f.fault("supervisor.startProcess", vec![s("failer")]).await,
        (50, "SPAWN_ERROR: failer".into())
    );
    let info = f.ok("supervisor.getProcessInfo", vec![s("failer")]).await;
    let st = str_of(&info, "statename");
    assert!(st == "BACKOFF" || st == "FATAL", "{st}");
    assert_eq!(
        str_of(&info, "description"),
        "Exited too quickly (process log may have details)"
    );
    assert_eq!(int_of(&info, "exitstatus"), 0);
    f.finish().await;
}

#[tokio::test]
async fn arity_unknown_methods_system_and_multicall() {
    let f = F::new(vec![]).await;
    assert_eq!(
        f.fault("supervisor.getPID", vec![Value::Int(1)]).await,
        (2, "INCORRECT_PARAMETERS".into())
    );
    assert_eq!(
        f.fault("supervisor.startProcess", vec![]).await,
        (2, "INCORRECT_PARAMETERS".into())
    );
    assert_eq!(
        f.fault("supervisor.nope", vec![]).await,
        (1, "UNKNOWN_METHOD".into())
    );
    assert_eq!(f.ok("supervisor.getVersion", vec![]).await, s("3.0"));
    assert_eq!(f.ok("supervisor.getAPIVersion", vec![]).await, s("3.0"));
    assert_eq!(
        f.ok("supervisor.getSupervisorVersion", vec![]).await,
        s("4.3.0")
    );
    assert_eq!(
        f.ok("supervisor.getIdentification", vec![]).await,
        s("testsupervisor")
    );
    assert_eq!(
        f.ok("supervisor.getPID", vec![]).await,
        Value::Int(i32::try_from(std::process::id()).expect("pid"))
    );
    assert_eq!(
        f.ok("supervisor.getState", vec![]).await,
        Value::structure([("statecode", Value::Int(1)), ("statename", s("RUNNING"))])
    );
    let methods = f.ok("system.listMethods", vec![]).await;
    let names: Vec<&str> = methods
        .as_array()
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // The 41 names supervisord 4.3.0 lists (5.5 of the reference).
    let expected = "supervisor.addProcessGroup supervisor.clearAllProcessLogs supervisor.clearLog supervisor.clearProcessLog supervisor.clearProcessLogs supervisor.getAPIVersion supervisor.getAllConfigInfo supervisor.getAllProcessInfo supervisor.getIdentification supervisor.getPID supervisor.getProcessInfo supervisor.getState supervisor.getSupervisorVersion supervisor.getVersion supervisor.readLog supervisor.readMainLog supervisor.readProcessLog supervisor.readProcessStderrLog supervisor.readProcessStdoutLog supervisor.reloadConfig supervisor.removeProcessGroup supervisor.restart supervisor.sendProcessStdin supervisor.sendRemoteCommEvent supervisor.shutdown supervisor.signalAllProcesses supervisor.signalProcess supervisor.signalProcessGroup supervisor.startAllProcesses supervisor.startProcess supervisor.startProcessGroup supervisor.stopAllProcesses supervisor.stopProcess supervisor.stopProcessGroup supervisor.tailProcessLog supervisor.tailProcessStderrLog supervisor.tailProcessStdoutLog system.listMethods system.methodHelp system.methodSignature system.multicall";
    assert_eq!(names, expected.split(' ').collect::<Vec<_>>());
    assert_eq!(
        f.ok("system.methodSignature", vec![s("supervisor.startProcess")])
            .await,
        Value::Array(vec![s("boolean"), s("string"), s("boolean")])
    );
    let help = f
        .ok("system.methodHelp", vec![s("supervisor.getVersion")])
        .await;
    assert_eq!(
        help,
        s(
            " Return the version of the RPC API used by supervisord\n\n        @return string version id\n        "
        )
    );

    let call = |name: &str, params: Vec<Value>| {
        Value::structure([("methodName", s(name)), ("params", Value::Array(params))])
    };
    let r = f
        .ok(
            "system.multicall",
            vec![Value::Array(vec![
                call("supervisor.getAPIVersion", vec![]),
                call("supervisor.getProcessInfo", vec![s("nosuch")]),
                call("system.multicall", vec![]),
            ])],
        )
        .await;
    assert_eq!(
        r,
        Value::Array(vec![
            s("3.0"),
            Fault::bad_name("nosuch").to_value(),
            Fault::incorrect_parameters(Some("Recursive system.multicall forbidden")).to_value(),
        ])
    );
    f.finish().await;
}

#[tokio::test]
async fn logs_are_read_tailed_and_cleared_with_supervisors_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let printer = spec(
        dir.path(),
        "printer",
        "printer",
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 20 ]; do i=$((i+1)); echo line $i; done; echo oops >&2; exec sleep 1000",
        ],
    );
    let mut quiet = spec(dir.path(), "quiet", "quiet", &["sleep", "1000"]);
    quiet.logs.stdout = LogTarget::Null;
    let f = F::with_dir(dir, vec![printer, quiet]).await;
    f.ok("supervisor.startProcess", vec![s("printer")]).await;
    let out = f.path("printer.out.log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .count()
        < 20
        || !f.path("printer.err.log").exists()
    {
        assert!(tokio::time::Instant::now() < deadline, "no output");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = std::fs::read_to_string(&out).expect("log");
    let size = i32::try_from(text.len()).expect("small");

    let read = |o: i32, l: i32| vec![s("printer"), Value::Int(o), Value::Int(l)];
    assert_eq!(
        f.ok("supervisor.readProcessStdoutLog", read(-8, 0)).await,
        s("line 20\n")
    );
    assert_eq!(
        f.ok("supervisor.readProcessLog", read(0, 7)).await,
        s("line 1\n")
    );
    assert_eq!(
        f.fault("supervisor.readProcessStdoutLog", read(-8, 3))
            .await,
        (3, "BAD_ARGUMENTS".into())
    );
    assert_eq!(
        f.ok("supervisor.readProcessStderrLog", read(0, 0)).await,
        s("oops\n")
    );
    assert_eq!(
        f.ok("supervisor.tailProcessStdoutLog", read(0, 8)).await,
        Value::Array(vec![s("line 20\n"), Value::Int(size), Value::Bool(true)])
    );
    assert_eq!(
        f.ok("supervisor.tailProcessLog", read(size, 100)).await,
        Value::Array(vec![s(""), Value::Int(size), Value::Bool(false)])
    );
    // No log file: a fault for read, an empty triple for tail.
    let q = |o: i32, l: i32| vec![s("quiet"), Value::Int(o), Value::Int(l)];
    assert_eq!(
        f.fault("supervisor.readProcessStdoutLog", q(0, 0)).await,
        (20, "NO_FILE".into())
    );
    assert_eq!(
        f.ok("supervisor.tailProcessStdoutLog", q(0, 10)).await,
        Value::Array(vec![s(""), Value::Int(0), Value::Bool(false)])
    );

    assert_eq!(
        f.ok("supervisor.clearProcessLogs", vec![s("printer")])
            .await,
        Value::Bool(true)
    );
    assert_eq!(std::fs::read(&out).expect("log"), b"");
    let r = f.ok("supervisor.clearAllProcessLogs", vec![]).await;
    assert_eq!(
        results(&r),
        [
            ("printer".into(), 80, "OK".into()),
            ("quiet".into(), 80, "OK".into())
        ]
    );

    // The main log.
    assert_eq!(
        f.fault("supervisor.readLog", vec![Value::Int(0), Value::Int(0)])
            .await,
        (20, format!("NO_FILE: {}", f.path("main.log").display()))
    );
    std::fs::write(f.path("main.log"), "hello main\n").expect("write");
    assert_eq!(
        f.ok(
            "supervisor.readMainLog",
            vec![Value::Int(-5), Value::Int(0)]
        )
        .await,
        s("main\n")
    );
    assert_eq!(f.ok("supervisor.clearLog", vec![]).await, Value::Bool(true));
    assert_eq!(std::fs::read(f.path("main.log")).expect("log"), b"");
    f.finish().await;
}

#[tokio::test]
async fn stdin_reaches_the_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cat = spec(dir.path(), "cat", "cat", &["cat"]);
    cat.stdin_pipe = true;
    let f = F::with_dir(dir, vec![cat]).await;
    assert_eq!(
        f.fault("supervisor.sendProcessStdin", vec![s("cat"), s("x\n")])
            .await,
        (70, "NOT_RUNNING: cat".into())
    );
    f.ok("supervisor.startProcess", vec![s("cat")]).await;
    assert_eq!(
        f.fault("supervisor.sendProcessStdin", vec![s("cat"), Value::Int(3)])
            .await
            .0,
        2
    );
    assert_eq!(
        f.ok(
            "supervisor.sendProcessStdin",
            vec![s("cat"), s("hello from fg\n")]
        )
        .await,
        Value::Bool(true)
    );
    let out = f.path("cat.out.log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&out).unwrap_or_default() != "hello from fg\n" {
        assert!(tokio::time::Instant::now() < deadline, "cat did not echo");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut remote = f.face.subscribe_remote();
    assert_eq!(
        f.ok("supervisor.sendRemoteCommEvent", vec![s("t"), s("d")])
            .await,
        Value::Bool(true)
    );
    let ev = remote.recv().await.expect("event");
    assert_eq!((ev.kind.as_str(), ev.data.as_str()), ("t", "d"));
    f.finish().await;
}

#[tokio::test]
async fn reload_config_then_add_and_remove_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_path_buf();
    let a = spec(&d, "a", "a", &["sleep", "1000"]);
    let b = spec(&d, "b", "b", &["sleep", "1000"]);
    let f = F::with_dir(dir, vec![a.clone(), b.clone()]).await;
    assert_eq!(
        f.ok("supervisor.reloadConfig", vec![]).await,
        Value::Array(vec![Value::Array(vec![
            Value::Array(vec![]),
            Value::Array(vec![]),
            Value::Array(vec![])
        ])])
    );
    let mut b2 = b.clone();
    b2.command = vec!["sleep".into(), "2000".into()];
    let mut c = spec(&d, "c", "c", &["sleep", "1000"]);
    c.autostart = true;
    *f.next.lock().expect("lock") = Declared::from_specs(vec![b2, c]);
    assert_eq!(
        f.ok("supervisor.reloadConfig", vec![]).await,
        Value::Array(vec![Value::Array(vec![
            Value::Array(vec![s("c")]),
            Value::Array(vec![s("b")]),
            Value::Array(vec![s("a")])
        ])])
    );
    // getAllConfigInfo shows the file as read: c is available, not in use.
    let info = f.ok("supervisor.getAllConfigInfo", vec![]).await;
    let rows: Vec<(&str, bool)> = info
        .as_array()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                str_of(r, "name"),
                r.get("inuse") == Some(&Value::Bool(true)),
            )
        })
        .collect();
    assert_eq!(rows, [("b", true), ("c", false)]);

    f.ok("supervisor.startProcess", vec![s("a")]).await;
    assert_eq!(
        f.fault("supervisor.removeProcessGroup", vec![s("a")]).await,
        (91, "STILL_RUNNING: a".into())
    );
    f.ok("supervisor.stopProcessGroup", vec![s("a")]).await;
    assert_eq!(
        f.ok("supervisor.removeProcessGroup", vec![s("a")]).await,
        Value::Bool(true)
    );
    assert_eq!(
        f.fault("supervisor.removeProcessGroup", vec![s("a")]).await,
        (10, "BAD_NAME: a".into())
    );
    assert_eq!(
        f.ok("supervisor.addProcessGroup", vec![s("c")]).await,
        Value::Bool(true)
    );
    assert_eq!(
        f.fault("supervisor.addProcessGroup", vec![s("c")]).await,
        (90, "ALREADY_ADDED: c".into())
    );
    assert_eq!(
        f.fault("supervisor.addProcessGroup", vec![s("zzz")]).await,
        (10, "BAD_NAME: zzz".into())
    );
    // c autostarts once added.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while f.state("c").await != "RUNNING" {
        assert!(tokio::time::Instant::now() < deadline, "c did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A file that cannot be read is CANT_REREAD with the reason.
    let loader: tend_server::state::Loader = Arc::new(|| Err("x.conf:3:1: bad things".to_string()));
    let daemon = Daemon::new(
        f.sup.clone(),
        Shutdown::new(),
        Declared::default(),
        Some(loader),
    );
    let broken = Face::new(daemon, FaceOptions::new("x"));
    assert_eq!(
        dispatch(&Rpc::new(broken), "supervisor.reloadConfig", vec![])
            .await
            .map_err(|f| (f.code, f.string)),
        Err((92, "CANT_REREAD: x.conf:3:1: bad things".into()))
    );
    f.finish().await;
}

#[tokio::test]
async fn reload_applies_the_file_process_by_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_path_buf();
    let keep = spec(&d, "keep", "keep", &["sleep", "1000"]);
    let change = spec(&d, "change", "change", &["sleep", "1000"]);
    let drop = spec(&d, "drop", "drop", &["sleep", "1000"]);
    let f = F::with_dir(dir, vec![keep.clone(), change.clone(), drop]).await;
    f.ok("supervisor.startAllProcesses", vec![]).await;
    let pid_of = |v: Value| int_of(&v, "pid");
    let keep_pid = pid_of(f.ok("supervisor.getProcessInfo", vec![s("keep")]).await);

    let mut change2 = change.clone();
    change2.command = vec!["sleep".into(), "2000".into()];
    let mut new = spec(&d, "new", "new", &["sleep", "1000"]);
    new.autostart = true;
    *f.next.lock().expect("lock") = Declared::from_specs(vec![keep, change2, new]);
    let report = f.face.config().reload().await.expect("reload");
    assert_eq!(report.added, ["new"]);
    assert_eq!(report.changed, ["change"]);
    assert_eq!(report.removed, ["drop"]);
    assert_eq!(
        pid_of(f.ok("supervisor.getProcessInfo", vec![s("keep")]).await),
        keep_pid,
        "unchanged processes are not touched"
    );
    assert_eq!(
        f.fault("supervisor.getProcessInfo", vec![s("drop")])
            .await
            .0,
        10
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while f.state("change").await != "RUNNING" || f.state("new").await != "RUNNING" {
        assert!(tokio::time::Instant::now() < deadline, "not restarted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A second reload finds nothing to do.
    let again = f.face.config().reload().await.expect("reload");
    assert!(again.added.is_empty() && again.changed.is_empty() && again.removed.is_empty());
    f.finish().await;
}

#[tokio::test]
async fn shutdown_state_after_shutdown() {
    let f = F::new(vec![]).await;
    assert_eq!(f.ok("supervisor.shutdown", vec![]).await, Value::Bool(true));
    assert!(f.shutdown.is_triggered());
    assert_eq!(
        f.fault("supervisor.getState", vec![]).await,
        (6, "SHUTDOWN_STATE".into())
    );
    f.finish().await;
}

async fn send(
    router: axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = router.oneshot(req).await.expect("infallible");
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
    (parts.status, parts.headers, bytes.to_vec())
}

fn post(body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/RPC2")
        .header("content-type", "text/xml")
        .body(body.into())
        .expect("request")
}

#[tokio::test]
async fn rpc2_over_http_with_and_without_auth() {
    let f = F::new(vec![]).await;
    let app = routes(f.face.clone());
    let body = write_call("supervisor.getAPIVersion", &[]);
    let (status, headers, out) = send(app.clone(), post(body.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/xml");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><string>3.0</string></value>\n</param>\n</params>\n</methodResponse>\n"
    );
    let (status, headers, _) = send(app.clone(), post("garbage")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["content-type"], "text/html");
    let get = Request::builder()
        .uri("/RPC2")
        .body(Body::empty())
        .expect("req");
    assert_eq!(send(app.clone(), get).await.0, StatusCode::BAD_REQUEST);

    let guarded = require_auth(app, BasicAuth::plain("admin", "secret"), false);
    let (status, headers, out) = send(guarded.clone(), post(body.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Basic realm=\"default\"");
    assert_eq!(headers["connection"], "close");
    assert_eq!(out.len(), 137);
    let mut req = post(body);
    req.headers_mut().insert(
        "authorization",
        "Basic YWRtaW46c2VjcmV0".parse().expect("header"),
    );
    let (status, _, out) = send(guarded, req).await;
    assert_eq!(status, StatusCode::OK);
    let call = parse_call(&out);
    assert!(call.is_err(), "a response, not a call");
    f.finish().await;
}

#[tokio::test]
async fn random_bodies_never_break_rpc2() {
    let f = F::new(vec![]).await;
    let app = routes(f.face.clone());
    // A small xorshift: varied, reproducible bodies, some of them XML-ish.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let pieces: [&[u8]; 8] = [
        b"<methodCall>",
        b"<methodName>supervisor.getState</methodName>",
        b"<params><param><value>",
        b"<int>99999999999</int>",
        b"</value></param></params>",
        b"</methodCall>",
        b"<struct><member><name>x</name>",
        b"\xff\xfe\x00<!DOCTYPE x [<!ENTITY a \"b\">]>",
    ];
    for _ in 0..300 {
        let mut body = Vec::new();
        for _ in 0..(x % 7) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(3) {
                body.extend_from_slice(&x.to_le_bytes());
            } else {
                body.extend_from_slice(pieces[(x % 8) as usize]);
            }
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (status, _, _) = send(app.clone(), post(body)).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
            "{status}"
        );
    }
    // Still answering.
    assert_eq!(f.ok("supervisor.getAPIVersion", vec![]).await, s("3.0"));
    f.finish().await;
}

#[tokio::test]
async fn logtail_streams_the_last_kilobyte_then_what_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = spec(dir.path(), "p", "p", &["sleep", "1000"]);
    let f = F::with_dir(dir, vec![p]).await;
    let app = routes(f.face.clone());
    let get = |uri: &str| {
        Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("req")
    };
    // Unknown process, unknown channel, no main log: 404.
    for uri in ["/logtail/nosuch", "/logtail/p/stdlog", "/mainlogtail"] {
        let (status, headers, _) = send(app.clone(), get(uri)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(headers["content-type"], "text/html");
    }
    let post = Request::builder()
        .method("POST")
        .uri("/logtail/p")
        .body(Body::empty())
        .expect("req");
    assert_eq!(send(app.clone(), post).await.0, StatusCode::BAD_REQUEST);

    // No file yet (nothing written): an empty tail that streams the file
    // once it appears, from its start.
    let log = f.path("p.out.log");
    let resp = app
        .clone()
        .oneshot(get("/logtail/p"))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut early = resp.into_body().into_data_stream();
    std::fs::write(&log, "first output\n").expect("write");
    assert_eq!(futures_util_lite::next(&mut early).await, b"first output\n");
    drop(early);

    let old: String = (0..300).map(|i| format!("{i:04}\n")).collect();
    std::fs::write(&log, &old).expect("write");
    let resp = app
        .clone()
        .oneshot(get("/logtail/p/stdout"))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h["content-type"], "text/plain;charset=utf-8");
    assert_eq!(h["x-accel-buffering"], "no");
    assert!(h.contains_key("last-modified"));
    assert!(!h.contains_key("content-length"));
    let mut body = resp.into_body().into_data_stream();
    use futures_util_lite::next;
    let first = next(&mut body).await;
    assert_eq!(first, old.as_bytes()[old.len() - 1024..]);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        f.write_all(b"fresh line\n").expect("append");
    }
    assert_eq!(next(&mut body).await, b"fresh line\n");
    std::fs::write(&log, "").expect("truncate");
    assert_eq!(next(&mut body).await, b"==> File truncated <==\n");
    f.shutdown.end_streams();
    f.finish().await;
}

/// Just enough of a stream combinator for the test above.
mod futures_util_lite {
    use std::pin::Pin;

    use futures_core::Stream;

    pub async fn next<S>(s: &mut S) -> Vec<u8>
    where
        S: Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin,
    {
        let item = std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx));
        match tokio::time::timeout(std::time::Duration::from_secs(10), item).await {
            Ok(Some(Ok(b))) => b.to_vec(),
            other => panic!("no chunk: {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_method_and_every_multicall_entry_is_checked_for_its_caller() {
    use tend_config::access::{AccessConfig, Right, RoleConf, Scope};
    use tend_server::access::{Caller, Identity, Policy};
    let dir = tempfile::tempdir().expect("tempdir");
    let specs = ["web", "db", "secret"]
        .map(|n| spec(dir.path(), n, n, &["sleep", "1000"]))
        .to_vec();
    let f = F::with_dir(dir, specs).await;
    let scopes = |p: &[&str]| {
        p.iter()
            .map(|t| Scope::parse(t).expect("pattern"))
            .collect()
    };
    let access = AccessConfig {
        configured: true,
        roles: vec![RoleConf {
            name: "operator".into(),
            grants: [
                (Right::View, scopes(&["web", "db"])),
                (Right::Control, scopes(&["web"])),
            ]
            .into_iter()
            .collect(),
        }],
        users: vec![tend_config::access::UserConf {
            name: "alice".into(),
            password: Some(tend_config::access::Secret::Plain("x".into())),
            certificates: Vec::new(),
            roles: vec!["operator".into()],
        }],
        ..AccessConfig::default()
    };
    let policy = Policy::new(&access, [], 0);
    let who = Identity::User("alice".into());
    let caller = Caller::new(who.clone(), None, policy.grants(&who));
    let rpc = Rpc::for_caller(f.face.clone(), caller);
    let call = |m: &'static str, p: Vec<Value>| {
        let rpc = rpc.clone();
        async move { dispatch(&rpc, m, p).await }
    };

    // Only what it may view exists.
    let all = call("supervisor.getAllProcessInfo", vec![])
        .await
        .expect("info");
    let names: Vec<&str> = all
        .as_array()
        .unwrap_or_default()
        .iter()
        .map(|p| str_of(p, "name"))
        .collect();
    assert_eq!(names, ["db", "web"]);
    let f10 = call("supervisor.getProcessInfo", vec![s("secret")]).await;
    assert_eq!(f10.map_err(|f| f.string), Err("BAD_NAME: secret".into()));
    let configs = call("supervisor.getAllConfigInfo", vec![])
        .await
        .expect("config");
    assert_eq!(configs.as_array().unwrap_or_default().len(), 2);

    assert_eq!(
        call("supervisor.startProcess", vec![s("web")]).await,
        Ok(Value::Bool(true))
    );
    let denied = call("supervisor.startProcess", vec![s("db")])
        .await
        .expect_err("denied");
    assert_eq!(denied.code, Fault::FAILED);
    assert_eq!(
        denied.string,
        "FAILED: permission denied: alice may not control db: needs \"control\""
    );
    let denied = call("supervisor.shutdown", vec![])
        .await
        .expect_err("denied");
    assert!(
        denied
            .string
            .ends_with("may not shut the daemon down: needs \"admin\" over every process"),
        "{denied:?}"
    );
    assert!(!f.shutdown.is_triggered());

    // system.multicall: each entry on its own.
    let entry = |m: &str, p: Vec<Value>| {
        Value::structure([("methodName", Value::from(m)), ("params", Value::Array(p))])
    };
    let out = call(
        "system.multicall",
        vec![Value::Array(vec![
            entry("supervisor.stopProcess", vec![s("web")]),
            entry("supervisor.stopProcess", vec![s("db")]),
            entry("supervisor.stopProcess", vec![s("secret")]),
            entry("supervisor.shutdown", vec![]),
        ])],
    )
    .await
    .expect("multicall");
    let out = out.as_array().unwrap_or_default();
    assert_eq!(out[0], Value::Bool(true));
    assert_eq!(int_of(&out[1], "faultCode"), Fault::FAILED);
    assert_eq!(int_of(&out[2], "faultCode"), Fault::BAD_NAME);
    assert_eq!(int_of(&out[3], "faultCode"), Fault::FAILED);
    assert!(!f.shutdown.is_triggered());

    // Groups and all: refused stops are FAILED results; refused starts are left out.
    f.sup
        .start_many(vec![Name::new("db").expect("name")])
        .await
        .expect("start");
    let stopped = call("supervisor.stopAllProcesses", vec![])
        .await
        .expect("stop all");
    let r = results(&stopped);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].0.as_str(), r[0].1), ("db", Fault::FAILED));
    let started = call("supervisor.startAllProcesses", vec![])
        .await
        .expect("start all");
    let r = results(&started);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].0.as_str(), r[0].1), ("web", Fault::SUCCESS));
    assert_eq!(f.state("db").await, "RUNNING");
    assert_eq!(f.state("secret").await, "STOPPED");
    f.finish().await;
}
