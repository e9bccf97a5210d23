//! Supervisor's XML-RPC face of a real daemon, through Python's own
//! `xmlrpc.client` (what supervisorctl is built on) over the Unix socket and
//! TCP, and raw HTTP where the bytes matter: `tend up`, `check` and `import`
//! on a supervisord.conf, every method family, faults, multicall, auth, the
//! streaming `/logtail`, `reloadConfig` and friends, `restart`, `shutdown`,
//! and `tend reload` on a native config.

// This test binary has no reaper: waiting for the programs it starts is its job.
#![allow(clippy::disallowed_methods)]

use std::cell::RefCell;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Daemon, TestEnv, free_port, wait_until};

/// Runs calls through `xmlrpc.client.ServerProxy`: for each line
/// `[url, [[method, params], ...]]` on stdin it prints a line with, per call,
/// `{"ok": result}`, `{"fault": [code, string]}` or `{"protocol": [code, msg]}`
/// (or `{"error": traceback}` when the calls could not be made).
const CLIENT: &str = r#"
import http.client, json, socket, sys, traceback, xmlrpc.client

class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__('localhost')
        self.unix_path = path
    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.unix_path)
        self.sock = s

class UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path):
        super().__init__()
        self.unix_path = path
    def make_connection(self, host):
        # Sets the Authorization header from user:password@ in the host.
        _, self._extra_headers, _ = self.get_host_info(host)
        return UnixConnection(self.unix_path)

def calls(url, calls):
    if url.startswith('unix://'):
        creds, _, path = url[7:].rpartition('@')
        host = 'http://' + (creds + '@' if creds else '') + 'localhost'
        proxy = xmlrpc.client.ServerProxy(host, transport=UnixTransport(path))
    else:
        proxy = xmlrpc.client.ServerProxy(url)
    out = []
    for method, params in calls:
        try:
            out.append({'ok': getattr(proxy, method)(*params)})
        except xmlrpc.client.Fault as f:
            out.append({'fault': [f.faultCode, f.faultString]})
        except xmlrpc.client.ProtocolError as e:
            out.append({'protocol': [e.errcode, e.errmsg]})
    return out

for line in sys.stdin:
    try:
        out = calls(*json.loads(line))
    except Exception:
        out = {'error': traceback.format_exc()}
    print(json.dumps(out), flush=True)
"#;

/// The python client of one test thread, started at its first call and ended
/// with the thread: a python start with xmlrpc.client's imports takes about
/// 0.1 s, and a test makes dozens of calls.
struct Client {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(CLIENT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (the tests need it, for xmlrpc.client)");
        Client {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().expect("stdout")),
            child,
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // End of input: the client exits.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

thread_local! {
    static CLIENT_PROCESS: RefCell<Option<Client>> = const { RefCell::new(None) };
}

/// Calls `method(params...)` at `url` (`unix://[user:pass@]/path` or `http://...`).
fn rpc_all(url: &str, calls: &[(&str, Value)]) -> Vec<Value> {
    let calls: Vec<Value> = calls.iter().map(|(m, p)| json!([m, p])).collect();
    let request = json!([url, calls]).to_string();
    let line = CLIENT_PROCESS.with_borrow_mut(|client| {
        let client = client.get_or_insert_with(Client::start);
        let stdin = client.stdin.as_mut().expect("open");
        writeln!(stdin, "{request}")
            .and_then(|()| stdin.flush())
            .expect("write to the python client");
        let mut line = String::new();
        client
            .stdout
            .read_line(&mut line)
            .expect("read the python client");
        line
    });
    match serde_json::from_str(&line) {
        Ok(Value::Array(v)) => v,
        Ok(Value::Object(e)) if e.contains_key("error") => {
            panic!(
                "python client failed: {}",
                e["error"].as_str().unwrap_or_default()
            )
        }
        _ => panic!("bad client output {line:?} (see its stderr above)"),
    }
}

pub(crate) fn rpc(url: &str, method: &str, params: Value) -> Value {
    rpc_all(url, &[(method, params)]).remove(0)
}

/// The result of a call that must succeed.
fn ok(url: &str, method: &str, params: Value) -> Value {
    let r = rpc(url, method, params.clone());
    match r.get("ok") {
        Some(v) => v.clone(),
        None => panic!("{method}({params}) failed: {r}"),
    }
}

/// The `[code, string]` of a call that must fault.
fn fault(url: &str, method: &str, params: Value) -> (i64, String) {
    let r = rpc(url, method, params.clone());
    match r.get("fault") {
        Some(f) => (
            f[0].as_i64().unwrap_or_default(),
            f[1].as_str().unwrap_or_default().to_string(),
        ),
        None => panic!("{method}({params}) did not fault: {r}"),
    }
}

/// The lab config of the reference (5.1), in a temp dir, with a TCP
/// listener behind `admin`/`secret` (as `{SHA}`).
fn lab_conf(port: u16) -> String {
    format!(
        r#"[unix_http_server]
file=%(here)s/supervisor.sock
chmod=0700

[inet_http_server]
port=127.0.0.1:{port}
username=admin
password={{SHA}}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s/logs
identifier=labsupervisor

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:sleeper]
command=/bin/sleep 100000
priority=10
stopwaitsecs=2

[program:failer]
command=/bin/sh -c "echo failing; exit 1"
startretries=0

[program:printer]
command=/bin/sh -c 'i=0; while true; do i=$((i+1)); echo "printer line $i"; echo "printer err $i" >&2; sleep 0.2; done'
stdout_logfile=%(here)s/logs/printer.out.log
stderr_logfile=%(here)s/logs/printer.err.log
stopwaitsecs=2

[program:cat]
command=/bin/cat
autostart=false
startsecs=0

[program:worker]
command=/bin/sleep 100000
process_name=%(program_name)s_%(process_num)02d
numprocs=2
numprocs_start=1
startsecs=0
stopwaitsecs=2
"#
    )
}

fn unix_url(d: &Daemon) -> String {
    format!("unix://{}", d.socket.display())
}

/// Waits until `name` (a namespec) is in `state`.
fn wait_state(d: &mut Daemon, name: &str, state: &str) {
    let url = unix_url(d);
    d.wait_for(
        &format!("{name} to be {state}"),
        Duration::from_secs(20),
        |_| {
            let r = rpc(&url, "supervisor.getProcessInfo", json!([name]));
            r["ok"]["statename"] == state
        },
    );
}

#[test]
fn supervisor_methods_on_a_supervisord_conf() {
    let mut d = Daemon::start_supervisord_in(TestEnv::new(""), &lab_conf(free_port()));
    let url = unix_url(&d);
    wait_state(&mut d, "failer", "FATAL");
    wait_state(&mut d, "sleeper", "RUNNING");
    wait_state(&mut d, "printer", "RUNNING");

    let r = rpc_all(
        &url,
        &[
            ("supervisor.getVersion", json!([])),
            ("supervisor.getAPIVersion", json!([])),
            ("supervisor.getSupervisorVersion", json!([])),
            ("supervisor.getIdentification", json!([])),
            ("supervisor.getState", json!([])),
            ("supervisor.getPID", json!([])),
        ],
    );
    assert_eq!(r[0]["ok"], "3.0");
    assert_eq!(r[1]["ok"], "3.0");
    assert_eq!(r[2]["ok"], "4.3.0");
    assert_eq!(r[3]["ok"], "labsupervisor");
    assert_eq!(r[4]["ok"], json!({"statecode": 1, "statename": "RUNNING"}));
    assert_eq!(r[5]["ok"], d.daemon_pid());

    let all = ok(&url, "supervisor.getAllProcessInfo", json!([]));
    let names: Vec<(&str, &str)> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|i| {
            (
                i["group"].as_str().unwrap_or(""),
                i["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("cat", "cat"),
            ("failer", "failer"),
            ("printer", "printer"),
            ("sleeper", "sleeper"),
            ("worker", "worker_01"),
            ("worker", "worker_02")
        ]
    );
    for info in all.as_array().expect("array") {
        assert_eq!(info.as_object().map(|o| o.len()), Some(14), "{info}");
    }
    let by = |n: &str| {
        all.as_array()
            .expect("array")
            .iter()
            .find(|i| i["name"] == n)
            .cloned()
            .expect("present")
    };
    let failer = by("failer");
    assert_eq!(
        (failer["state"].clone(), failer["statename"].clone()),
        (json!(200), json!("FATAL"))
    );
    assert_eq!(
        failer["description"],
        "Exited too quickly (process log may have details)"
    );
    assert_eq!(failer["spawnerr"], failer["description"]);
    assert_eq!(failer["pid"], 0);
    assert_eq!(by("cat")["description"], "Not started");
    let sleeper = by("sleeper");
    let desc = sleeper["description"].as_str().expect("text");
    let pid = sleeper["pid"].as_i64().expect("pid");
    assert!(
        desc.starts_with(&format!("pid {pid}, uptime 0:00:")),
        "{desc}"
    );
    let printer = by("printer");
    assert_eq!(
        printer["stdout_logfile"],
        d.dir
            .path()
            .join("logs/printer.out.log")
            .display()
            .to_string()
    );
    assert_eq!(printer["logfile"], printer["stdout_logfile"]);
    // AUTO logs live in childlogdir, named as Supervisor names them.
    let auto = failer["stdout_logfile"].as_str().expect("path");
    assert!(
        auto.contains("/logs/failer-stdout---labsupervisor-"),
        "{auto}"
    );

    assert_eq!(
        fault(&url, "supervisor.getProcessInfo", json!(["nosuch"])),
        (10, "BAD_NAME: nosuch".into())
    );
    assert_eq!(
        fault(&url, "supervisor.getProcessInfo", json!(["worker"])),
        (10, "BAD_NAME: worker".into())
    );
    assert_eq!(
        ok(
            &url,
            "supervisor.getProcessInfo",
            json!(["worker:worker_01"])
        )["statename"],
        "RUNNING"
    );
    assert_eq!(
        fault(&url, "supervisor.nope", json!([])),
        (1, "UNKNOWN_METHOD".into())
    );
    assert_eq!(
        fault(&url, "supervisor.getPID", json!([1])),
        (2, "INCORRECT_PARAMETERS".into())
    );

    // stop, start, and their faults
    assert_eq!(ok(&url, "supervisor.stopProcess", json!(["sleeper"])), true);
    assert_eq!(
        fault(&url, "supervisor.stopProcess", json!(["sleeper"])),
        (70, "NOT_RUNNING: sleeper".into())
    );
    let info = ok(&url, "supervisor.getProcessInfo", json!(["sleeper"]));
    assert_eq!(info["statename"], "STOPPED");
    assert!(info["stop"].as_i64() >= info["start"].as_i64());
    assert_eq!(
        ok(&url, "supervisor.startProcess", json!(["sleeper"])),
        true
    );
    // startProcess waited for startsecs: RUNNING already.
    assert_eq!(
        ok(&url, "supervisor.getProcessInfo", json!(["sleeper"]))["statename"],
        "RUNNING"
    );
    assert_eq!(
        fault(&url, "supervisor.startProcess", json!(["sleeper"])),
        (60, "ALREADY_STARTED: sleeper".into())
    );
    assert_eq!(
        fault(&url, "supervisor.startProcess", json!(["failer"])),
        (50, "SPAWN_ERROR: failer".into())
    );
    assert_eq!(
        fault(&url, "supervisor.startProcess", json!(["nosuch:*"])),
        (10, "BAD_NAME: nosuch:*".into())
    );
    assert_eq!(
        ok(&url, "supervisor.stopProcessGroup", json!(["worker"])),
        json!([
            {"name": "worker_01", "group": "worker", "status": 80, "description": "OK"},
            {"name": "worker_02", "group": "worker", "status": 80, "description": "OK"}
        ])
    );
    assert_eq!(
        ok(&url, "supervisor.startProcess", json!(["worker:*"])),
        json!([
            {"name": "worker_01", "group": "worker", "status": 80, "description": "OK"},
            {"name": "worker_02", "group": "worker", "status": 80, "description": "OK"}
        ])
    );
    assert_eq!(
        fault(
            &url,
            "supervisor.signalProcess",
            json!(["printer", "BOGUS"])
        ),
        (11, "BAD_SIGNAL: BOGUS".into())
    );
    assert_eq!(
        fault(&url, "supervisor.signalProcess", json!(["cat", "HUP"])),
        (70, "NOT_RUNNING: cat".into())
    );
    assert_eq!(
        ok(&url, "supervisor.signalProcess", json!(["sleeper", "CONT"])),
        true
    );
    assert_eq!(
        fault(&url, "supervisor.removeProcessGroup", json!(["sleeper"])),
        (91, "STILL_RUNNING: sleeper".into())
    );

    // logs
    let tail = ok(
        &url,
        "supervisor.readProcessStdoutLog",
        json!(["printer", -1600, 0]),
    );
    assert!(
        tail.as_str()
            .is_some_and(|t| t.contains("printer line 1\n")),
        "{tail}"
    );
    let err = ok(
        &url,
        "supervisor.readProcessStderrLog",
        json!(["printer", 0, 0]),
    );
    assert!(
        err.as_str()
            .is_some_and(|t| t.starts_with("printer err 1\n")),
        "{err}"
    );
    let t = ok(
        &url,
        "supervisor.tailProcessStdoutLog",
        json!(["printer", 0, 5]),
    );
    assert_eq!(t[0].as_str().map(str::len), Some(5));
    assert_eq!(t[2], true, "overflow");
    let size = fs::metadata(d.dir.path().join("logs/printer.out.log"))
        .expect("log")
        .len();
    assert!(t[1].as_u64().is_some_and(|o| o <= size && o > 5), "{t}");
    assert_eq!(
        fault(
            &url,
            "supervisor.readProcessStdoutLog",
            json!(["printer", -5, 5])
        ),
        (3, "BAD_ARGUMENTS".into())
    );
    let main = ok(&url, "supervisor.readLog", json!([0, 0]));
    assert!(
        main.as_str().is_some_and(|m| m.contains("serving")),
        "{main}"
    );

    // config info
    let conf = ok(&url, "supervisor.getAllConfigInfo", json!([]));
    let rows: Vec<String> = conf
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            format!(
                "{} {} {}:{} {} {}",
                c["name"].as_str().unwrap_or(""),
                c["inuse"],
                c["group_prio"],
                c["process_prio"],
                c["autostart"],
                c["stopsignal"]
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "cat true 999:999 false 15",
            "failer true 999:999 true 15",
            "printer true 999:999 true 15",
            "sleeper true 10:10 true 15",
            "worker_01 true 999:999 true 15",
            "worker_02 true 999:999 true 15"
        ]
    );
    let sleeper_conf = &conf[3];
    assert_eq!(sleeper_conf["command"], "/bin/sleep 100000");
    assert_eq!(sleeper_conf["directory"], "none");
    assert_eq!(sleeper_conf["serverurl"], "none");
    assert_eq!(sleeper_conf["exitcodes"], json!([0]));
    assert_eq!(sleeper_conf["startretries"], 3);

    // multicall returns raw values (not one-element arrays) and fault structs
    let m = ok(
        &url,
        "system.multicall",
        json!([[
            {"methodName": "supervisor.getAPIVersion", "params": []},
            {"methodName": "supervisor.getProcessInfo", "params": ["nosuch"]},
            {"methodName": "system.multicall", "params": []}
        ]]),
    );
    assert_eq!(
        m,
        json!([
            "3.0",
            {"faultCode": 10, "faultString": "BAD_NAME: nosuch"},
            {"faultCode": 2, "faultString": "INCORRECT_PARAMETERS: Recursive system.multicall forbidden"}
        ])
    );
    assert_eq!(
        ok(
            &url,
            "system.methodSignature",
            json!(["supervisor.startProcess"])
        ),
        json!(["boolean", "string", "boolean"])
    );
    assert_eq!(
        ok(&url, "system.listMethods", json!([]))
            .as_array()
            .map(Vec::len),
        Some(41)
    );

    // stdin, as `supervisorctl fg` sends it
    assert_eq!(ok(&url, "supervisor.startProcess", json!(["cat"])), true);
    assert_eq!(
        ok(
            &url,
            "supervisor.sendProcessStdin",
            json!(["cat", "hello from fg\n"])
        ),
        true
    );
    wait_until("cat to echo its stdin", Duration::from_secs(10), || {
        rpc(
            &url,
            "supervisor.readProcessStdoutLog",
            json!(["cat", 0, 0]),
        )["ok"]
            == "hello from fg\n"
    });
    assert_eq!(
        ok(
            &url,
            "supervisor.sendRemoteCommEvent",
            json!(["type", "data"])
        ),
        true
    );

    // clearing logs
    assert_eq!(
        ok(&url, "supervisor.clearProcessLogs", json!(["cat"])),
        true
    );
    assert_eq!(
        ok(
            &url,
            "supervisor.readProcessStdoutLog",
            json!(["cat", 0, 0])
        ),
        ""
    );
    assert_eq!(ok(&url, "supervisor.clearLog", json!([])), true);
}

/// One raw HTTP exchange; returns everything the server sent before it
/// closed the connection or went quiet for a moment.
fn raw(stream: &mut (impl Read + Write), request: &[u8]) -> String {
    stream.write_all(request).expect("send");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if complete(&out) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `resp` holds a whole response with a Content-Length.
fn complete(resp: &[u8]) -> bool {
    let text = String::from_utf8_lossy(resp);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .is_some_and(|n| body.len() >= n)
}

fn tcp(port: u16) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

#[test]
fn tcp_listener_auth_and_malformed_requests() {
    let port = free_port();
    let d = Daemon::start_supervisord_in(TestEnv::new(""), &lab_conf(port));
    let anon = format!("http://127.0.0.1:{port}");
    let authed = format!("http://admin:secret@127.0.0.1:{port}");
    let wrong = format!("http://admin:nope@127.0.0.1:{port}");

    assert_eq!(
        rpc(&anon, "supervisor.getState", json!([])),
        json!({"protocol": [401, "Unauthorized"]})
    );
    assert_eq!(
        rpc(&wrong, "supervisor.getState", json!([])),
        json!({"protocol": [401, "Unauthorized"]})
    );
    assert_eq!(
        ok(&authed, "supervisor.getIdentification", json!([])),
        "labsupervisor"
    );
    // The Unix socket has no credentials configured.
    assert_eq!(
        ok(&unix_url(&d), "supervisor.getIdentification", json!([])),
        "labsupervisor"
    );

    let body = "<?xml version=\"1.0\"?>\n<methodCall><methodName>supervisor.getAllProcessInfo</methodName><params></params></methodCall>";
    let req = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = raw(&mut tcp(port), req.as_bytes());
    let (head, page) = resp.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("\r\nwww-authenticate: basic realm=\"default\""),
        "{head}"
    );
    assert!(lower.contains("\r\nconnection: close"), "{head}");
    assert!(lower.contains("\r\ncontent-type: text/html"), "{head}");
    assert!(lower.contains("\r\ncontent-length: 137"), "{head}");
    assert_eq!(
        page,
        "<head>\r\n<title>Error response</title>\r\n</head>\r\n<body>\r\n<h1>Error response</h1>\r\n<p>Error code 401.\r\n<p>Message: Unauthorized.\r\n</body>\r\n"
    );
    // The JSON API is behind the same credentials on TCP.
    let resp = raw(
        &mut tcp(port),
        b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    let resp = raw(
        &mut tcp(port),
        b"GET /v1/version HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46c2VjcmV0\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let auth = "Authorization: Basic YWRtaW46c2VjcmV0\r\n";
    let resp = raw(
        &mut tcp(port),
        format!("GET /RPC2 HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes(),
    );
    assert!(resp.starts_with("HTTP/1.1 400 Bad Request"), "{resp}");
    let resp = raw(
        &mut tcp(port),
        format!("POST /RPC2 HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 7\r\n\r\ngarbage")
            .as_bytes(),
    );
    assert!(resp.starts_with("HTTP/1.1 400 Bad Request"), "{resp}");
    let resp = raw(
        &mut tcp(port),
        b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWI\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(
        resp.starts_with("HTTP/1.1 400"),
        "a malformed cookie is 400: {resp}"
    );

    // Random bodies never hurt the daemon.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..150 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 600) as usize;
        let mut body: Vec<u8> = (0..len)
            .map(|j| (x.rotate_left((j % 64) as u32) as u8) ^ (j as u8))
            .collect();
        if i % 3 == 0 {
            body.splice(
                0..0,
                b"<?xml version='1.0'?><methodCall><methodName>"
                    .iter()
                    .copied(),
            );
        }
        let mut req = format!(
            "POST /RPC2 HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        let resp = raw(&mut tcp(port), &req);
        assert!(
            resp.starts_with("HTTP/1.1 400") || resp.starts_with("HTTP/1.1 200"),
            "{resp}"
        );
    }
    assert_eq!(ok(&authed, "supervisor.getAPIVersion", json!([])), "3.0");
}

/// Reads one chunk of a chunked body: `(hex size line, data)`.
fn read_chunk(r: &mut impl Read) -> (String, Vec<u8>) {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        r.read_exact(&mut b).expect("chunk size");
        line.push(b[0]);
    }
    let size_line = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
    let size = usize::from_str_radix(&size_line, 16).expect("hex size");
    let mut data = vec![0u8; size + 2];
    r.read_exact(&mut data).expect("chunk data");
    data.truncate(size);
    (size_line, data)
}

/// Reads the head of a response, up to the blank line.
fn read_head(r: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        r.read_exact(&mut b).expect("head");
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn logtail_streams_as_supervisorctl_tail_f_reads_it() {
    // The lab's printer, but its first 150 lines (2.5 KB) at once, so the
    // log holds more than the 1 KB tail without 26 s of waiting; then a line
    // every 0.2 s as before, to show new lines streaming.
    let slow = "sleep 0.2; done";
    let conf = lab_conf(free_port());
    assert!(conf.contains(slow), "the lab's printer changed");
    let mut d = Daemon::start_supervisord_in(
        TestEnv::new(""),
        &conf.replace(slow, "[ $i -gt 150 ] && sleep 0.2; done"),
    );
    let log = d.dir.path().join("logs/printer.out.log");
    d.wait_for("printer to write 2 KB", Duration::from_secs(60), |_| {
        fs::read_to_string(&log).is_ok_and(|t| t.len() > 2048 && t.contains("printer line 151\n"))
    });
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // Byte for byte what supervisorctl's http_client sends, extra CRLF included.
    s.write_all(
        b"GET /logtail/printer/stdout HTTP/1.1\r\nHost: \r\nAccept-Encoding: chunked\r\nAccept: */*\r\nUser-agent: Supervisor HTTP Client\r\n\r\n\r\n",
    )
    .expect("send");
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    for h in [
        "content-type: text/plain;charset=utf-8",
        "x-accel-buffering: no",
        "transfer-encoding: chunked",
        "last-modified: ",
    ] {
        assert!(lower.contains(&format!("\r\n{h}")), "{h} in {head}");
    }
    assert!(!lower.contains("content-length"), "{head}");
    let (size, first) = read_chunk(&mut s);
    assert_eq!(
        size.to_ascii_lowercase(),
        "400",
        "the last 1024 bytes first"
    );
    let first = String::from_utf8_lossy(&first).into_owned();
    assert!(first.ends_with('\n'), "{first:?}");
    // Then what the process writes next, as it writes it: the line after the
    // tail's last, none lost or repeated.
    let last: u32 = first
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("printer line "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no printer line at the end of {first:?}"));
    assert!(last > 150, "the tail is the end of the log: {first:?}");
    let (_, next) = read_chunk(&mut s);
    let next = String::from_utf8_lossy(&next).into_owned();
    assert!(
        next.starts_with(&format!("printer line {}\n", last + 1)),
        "after line {last}: {next:?}"
    );
    drop(s);

    // stderr and a group:name namespec; unknown names are 404.
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /logtail/printer%3Aprinter/stderr HTTP/1.1\r\nHost: \r\n\r\n")
        .expect("send");
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let (_, first) = read_chunk(&mut s);
    assert!(String::from_utf8_lossy(&first).contains("printer err "));
    drop(s);
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let resp = raw(&mut s, b"GET /logtail/nosuch HTTP/1.1\r\nHost: \r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 404 Not Found"), "{resp}");

    // The main log.
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /mainlogtail HTTP/1.1\r\nHost: \r\n\r\n")
        .expect("send");
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("x-accel-buffering"),
        "{head}"
    );
    let (_, first) = read_chunk(&mut s);
    assert!(!first.is_empty());
}

#[test]
fn reload_config_groups_restart_and_shutdown() {
    let port = free_port();
    let mut d = Daemon::start_supervisord_in(TestEnv::new(""), &lab_conf(port));
    let url = unix_url(&d);
    wait_state(&mut d, "sleeper", "RUNNING");
    assert_eq!(
        ok(&url, "supervisor.reloadConfig", json!([])),
        json!([[[], [], []]])
    );

    // sleeper changed, failer gone, new added.
    let text = lab_conf(port)
        .replace(
            "command=/bin/sleep 100000\npriority=10",
            "command=/bin/sleep 200000\npriority=10",
        )
        .replace(
            "[program:failer]\ncommand=/bin/sh -c \"echo failing; exit 1\"\nstartretries=0\n",
            "[program:new]\ncommand=/bin/sleep 300000\nstartsecs=0\n",
        );
    fs::write(&d.config, text).expect("rewrite");
    assert_eq!(
        ok(&url, "supervisor.reloadConfig", json!([])),
        json!([[["new"], ["sleeper"], ["failer"]]])
    );
    let conf = ok(&url, "supervisor.getAllConfigInfo", json!([]));
    let new = conf
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["name"] == "new")
        .expect("new is available");
    assert_eq!(new["inuse"], false);

    // What `supervisorctl update` does.
    assert_eq!(
        ok(&url, "supervisor.stopProcessGroup", json!(["failer"])),
        json!([])
    );
    assert_eq!(
        ok(&url, "supervisor.removeProcessGroup", json!(["failer"])),
        true
    );
    ok(&url, "supervisor.stopProcessGroup", json!(["sleeper"]));
    assert_eq!(
        ok(&url, "supervisor.removeProcessGroup", json!(["sleeper"])),
        true
    );
    assert_eq!(
        ok(&url, "supervisor.addProcessGroup", json!(["sleeper"])),
        true
    );
    assert_eq!(ok(&url, "supervisor.addProcessGroup", json!(["new"])), true);
    assert_eq!(
        fault(&url, "supervisor.addProcessGroup", json!(["new"])),
        (90, "ALREADY_ADDED: new".into())
    );
    assert_eq!(
        fault(&url, "supervisor.addProcessGroup", json!(["nosuch"])),
        (10, "BAD_NAME: nosuch".into())
    );
    assert_eq!(
        fault(&url, "supervisor.getProcessInfo", json!(["failer"])),
        (10, "BAD_NAME: failer".into())
    );
    wait_state(&mut d, "new", "RUNNING");
    wait_state(&mut d, "sleeper", "RUNNING");
    assert_eq!(
        d.proc("sleeper")["pid"]
            .as_u64()
            .map(|p| crate::harness::cmdline(p as u32)),
        Some("/bin/sleep 200000".into())
    );
    assert_eq!(
        ok(&url, "supervisor.reloadConfig", json!([])),
        json!([[[], [], []]])
    );

    // restart(): everything again, same daemon.
    let pid = d.daemon_pid();
    let before = d.pid("new");
    assert_eq!(ok(&url, "supervisor.restart", json!([])), true);
    d.wait_for("new to be restarted", Duration::from_secs(30), |d| {
        let r = rpc(&unix_url(d), "supervisor.getProcessInfo", json!(["new"]));
        r["ok"]["statename"] == "RUNNING" && r["ok"]["pid"] != json!(before)
    });
    assert_eq!(ok(&url, "supervisor.getPID", json!([])), pid);

    // shutdown(): true, then the daemon goes.
    assert_eq!(ok(&url, "supervisor.shutdown", json!([])), true);
    let status = d.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}");
}

#[test]
fn check_import_and_up_on_the_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/supervisord.conf");
    let env = TestEnv::new("");
    let run = env.tend_bare(&["-c", example.to_str().expect("utf-8"), "check"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stdout.ends_with("supervisord.conf: OK (6 processes)\n"),
        "{run}"
    );
    for line in run.stderr.lines() {
        assert!(line.contains(": warning: "), "{line}");
    }
    let run = env.tend_bare(&["import", example.to_str().expect("utf-8")]);
    assert_eq!(run.code, Some(0), "{run}");
    for section in [
        "[process.web]",
        "[process.worker]\nreplicas = 3\n",
        "[process.flaky]",
    ] {
        assert!(run.stdout.contains(section), "{section} in\n{run}");
    }
    assert!(
        run.stdout.contains("WORKER_ID = \"${TEND_REPLICA}\""),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("# tend import: supervisord numbers them from numprocs_start = 1"),
        "{run}"
    );
    assert!(
        toml_parses(&run.stdout),
        "import prints TOML:\n{}",
        run.stdout
    );

    // `up` on a copy whose paths point into a temp dir.
    let port = free_port();
    let text = fs::read_to_string(&example)
        .expect("example")
        .replace("/tmp/", "%(here)s/")
        .replace("127.0.0.1:9001", &format!("127.0.0.1:{port}"))
        .replace("8765", &free_port().to_string());
    let mut d = Daemon::start_supervisord_in(TestEnv::new(""), &text);
    let url = unix_url(&d);
    wait_state(&mut d, "workers:worker_01", "RUNNING");
    wait_state(&mut d, "workers:flaky", "FATAL");
    assert_eq!(
        ok(&url, "supervisor.getIdentification", json!([])),
        "example"
    );
    let url_tcp = format!("http://admin:secret@127.0.0.1:{port}");
    assert_eq!(ok(&url_tcp, "supervisor.getAPIVersion", json!([])), "3.0");
    // The JSON API and the CLI work on the same socket.
    assert_eq!(d.state("worker_02"), "running");
    // Supervisor's environment reaches the children.
    let pid = d.pid("worker_01");
    let environ = fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let environ = String::from_utf8_lossy(&environ);
    for var in [
        "SUPERVISOR_ENABLED=1",
        "SUPERVISOR_PROCESS_NAME=worker_01",
        "SUPERVISOR_GROUP_NAME=workers",
        "APP_ENV=example",
        "WORKER_ID=1",
    ] {
        assert!(environ.split('\0').any(|kv| kv == var), "{var}");
    }
    assert!(d.dir.path().join("supervisord-example.pid").exists());
}

#[test]
fn credentials_on_the_unix_socket() {
    let text =
        lab_conf(free_port()).replace("chmod=0700\n", "chmod=0700\nusername=user\npassword=pass\n");
    let d = Daemon::start_supervisord_in(TestEnv::new(""), &text);
    let path = d.socket.display().to_string();
    assert_eq!(
        rpc(&format!("unix://{path}"), "supervisor.getState", json!([])),
        json!({"protocol": [401, "Unauthorized"]})
    );
    assert_eq!(
        rpc(
            &format!("unix://user:nope@{path}"),
            "supervisor.getState",
            json!([])
        ),
        json!({"protocol": [401, "Unauthorized"]})
    );
    assert_eq!(
        ok(
            &format!("unix://user:pass@{path}"),
            "supervisor.getAPIVersion",
            json!([])
        ),
        "3.0"
    );
    // tend's own CLI runs as the daemon's user: the JSON API lets it in.
    assert!(!d.status(&[]).is_empty());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(&d.socket).expect("socket").permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
}

fn toml_parses(text: &str) -> bool {
    text.parse::<toml::Table>().is_ok()
}

#[test]
fn tend_reload_adds_changes_and_removes() {
    let config = r#"
[process.keep]
command = "sleep 1000"
[process.change]
command = "sleep 1000"
[process.drop]
command = "sleep 1000"
"#;
    let d = Daemon::start(config);
    wait_until("all running", Duration::from_secs(20), || {
        ["keep", "change", "drop"]
            .iter()
            .all(|n| d.state(n) == "running")
    });
    let keep = d.pid("keep");
    fs::write(
        &d.config,
        r#"
[process.keep]
command = "sleep 1000"
[process.change]
command = "sleep 2000"
[process.new]
command = "sleep 1000"
"#,
    )
    .expect("rewrite");
    let run = d.ok(&["reload"]);
    assert_eq!(run.stdout, "added: new\nchanged: change\nremoved: drop\n");
    assert_eq!(d.pid("keep"), keep, "unchanged processes are untouched");
    wait_until("change and new running", Duration::from_secs(20), || {
        d.state("change") == "running" && d.state("new") == "running"
    });
    assert_eq!(crate::harness::cmdline(d.pid("change")), "sleep 2000");
    let names: Vec<String> = d
        .status(&[])
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    assert!(!names.contains(&"drop".to_string()), "{names:?}");
    assert_eq!(d.ok(&["reload"]).stdout, "no changes\n");

    // A broken file changes nothing and says why.
    fs::write(&d.config, "[process.x]\ncommand = 3\n").expect("rewrite");
    let run = d.tend(&["reload"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("tend.toml:2:"), "{run}");
    assert_eq!(d.pid("keep"), keep);
}
