//! Clients that try to hurt the daemon, bounded in count and time, against
//! loopback only: huge requests must be refused without the daemon's memory
//! growing (VmRSS and VmHWM from /proc), idle and slow connections must not
//! stop `tend status` nor the respawn of a crashing process, many honest
//! clients at once must all be served, and too few descriptors must be told
//! at start.

// This test binary has no reaper: waiting for the programs it starts is its job.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Daemon, TestEnv};
use crate::pki;

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .expect(name)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Raises this test process's open-files limit to its hard limit.
fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    hard
}

/// Sends `head` and then `body` from another thread, while this one reads
/// the answer (which may come before the body is all sent: then the rest
/// is not sent), and returns its status.
fn send(addr: SocketAddr, head: &str, body: impl Iterator<Item = Vec<u8>> + Send + 'static) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(head.as_bytes()).expect("head");
    let mut w = s.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        for chunk in body {
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The status line is all we need.
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no answer: {text:?}"))
}

fn multicall(n: usize, method: &str) -> String {
    let one = format!(
        "<value><struct><member><name>methodName</name><value><string>{method}</string></value></member><member><name>params</name><value><array><data></data></array></value></member></struct></value>"
    );
    format!(
        "<?xml version='1.0'?><methodCall><methodName>system.multicall</methodName><params><param><value><array><data>{}</data></array></value></param></params></methodCall>",
        one.repeat(n)
    )
}

const AUTH: &str = "Authorization: Basic YWRtaW46c2VjcmV0\r\n";

/// The attacks on the XML-RPC door: a 70,000-call multicall (14.8 MB), a
/// body of 1 GB (declared, and chunked), bodies without credentials; then
/// the bounds that hold inside max_body: max_multicall and max_response.
#[test]
fn huge_requests_are_refused_without_growing_the_daemon() {
    let env = TestEnv::new("");
    let port = pki::free_port();
    std::fs::create_dir_all(env.dir.path().join("logs")).expect("logs");
    let mut conf = format!(
        "[supervisord]\nlogfile=%(here)s/sd.log\npidfile=%(here)s/sd.pid\nchildlogdir=%(here)s/logs\n\
         [unix_http_server]\nfile=%(here)s/supervisor.sock\n\
         [inet_http_server]\nport=127.0.0.1:{port}\nusername=admin\npassword=secret\n"
    );
    for i in 0..20 {
        conf.push_str(&format!("[program:p{i}]\ncommand=sleep 1000\n"));
    }
    let mut env = env;
    let path = env.dir.path().join("supervisord.conf");
    std::fs::write(&path, conf).expect("conf");
    env.config = path;
    env.socket = env.dir.path().join("supervisor.sock");
    let d = Daemon::start_in(env);
    let pid = d.daemon_pid();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let ok = send(
        addr,
        &format!(
            "POST /RPC2 HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: 73\r\nConnection: close\r\n\r\n"
        ),
        std::iter::once(
            b"<methodCall><methodName>supervisor.getState</methodName></methodCall>    ".to_vec(),
        ),
    );
    assert_eq!(ok, 200);
    let (rss0, hwm0) = memory(pid);

    // 70,000 calls of getAllProcessInfo: 14.8 MB.
    let body = multicall(70_000, "supervisor.getAllProcessInfo");
    assert!(body.len() > 14_000_000, "{}", body.len());
    let head = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: {}\r\n\r\n",
        body.len()
    );
    let chunks: Vec<Vec<u8>> = body
        .into_bytes()
        .chunks(1 << 16)
        .map(<[u8]>::to_vec)
        .collect();
    let status = send(addr, &head, chunks.into_iter());
    assert_eq!(status, 413);

    // 1 GB declared: refused on the head (a few MB are sent meanwhile).
    let mb = vec![b'x'; 1 << 20];
    let status = send(
        addr,
        &format!("POST /RPC2 HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: 1000000000\r\n\r\n"),
        std::iter::repeat_n(mb.clone(), 8),
    );
    assert_eq!(status, 413);
    // 1 GB chunked: cut at max_body (at most 64 MB are sent).
    let mut chunk = format!("{:x}\r\n", mb.len()).into_bytes();
    chunk.extend_from_slice(&mb);
    chunk.extend_from_slice(b"\r\n");
    let status = send(
        addr,
        &format!("POST /RPC2 HTTP/1.1\r\nHost: x\r\n{AUTH}Transfer-Encoding: chunked\r\n\r\n"),
        std::iter::repeat_n(chunk, 64),
    );
    assert_eq!(status, 413);
    // Without credentials: 401 at once, whatever is declared.
    let t = Instant::now();
    for _ in 0..50 {
        let status = send(
            addr,
            "POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n\r\n",
            std::iter::once(vec![b'y'; 900_000]),
        );
        assert_eq!(status, 401);
    }
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());

    let (rss1, hwm1) = memory(pid);
    assert!(
        rss1 < rss0 + 10 * 1024 && hwm1 < hwm0 + 10 * 1024,
        "the daemon grew: VmRSS {rss0} -> {rss1} KiB, VmHWM {hwm0} -> {hwm1} KiB"
    );

    // Inside max_body: 4,097 calls are more than max_multicall allows...
    let body = multicall(4097, "system.listMethods");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(
        format!(
            "POST /RPC2 HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .expect("send");
    let (status, text) = pki::read_response(&mut s);
    assert_eq!(status, 200);
    assert!(
        text.contains("INCORRECT_PARAMETERS: system.multicall takes at most 4096 calls"),
        "{text}"
    );
    // ... and 4,000 getAllProcessInfo of 20 processes answer more than max_response.
    let body = multicall(4000, "supervisor.getAllProcessInfo");
    s.write_all(
        format!(
            "POST /RPC2 HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .expect("send");
    let (status, text) = pki::read_response(&mut s);
    assert_eq!(status, 200);
    assert!(text.contains("the answer would be larger than"), "{text}");
}

/// Connections that send nothing, or their headers a byte at a time, from
/// many addresses (127.0.0.2 to .21, so that the per-peer bound alone does
/// not stop them) against a daemon of 1,024 descriptors: `tend status`
/// still answers in under 100 ms and a crashing process is still respawned.
#[test]
fn idle_and_slow_connections_stop_neither_status_nor_respawns() {
    raise_nofile();
    let config = "[http]\nlisten = [\"127.0.0.1:0\"]\nheader_timeout = \"30s\"\n\n\
        [process.crash]\ncommand = [\"sh\", \"-c\", \"sleep 0.2; exit 3\"]\n\
        [process.crash.backoff]\nschedule = [\"100ms\"]\n";
    let env = TestEnv::new(config);
    let log = env.dir.path().join("daemon.log");
    // The daemon under `ulimit -n 1024` (soft and hard: it cannot raise it).
    let child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 1024 && exec \"$0\" -c \"$1\" up")
        .arg(crate::harness::TEND)
        .arg(&env.config)
        .current_dir(env.dir.path())
        .env("TEND_TEST_MARKER", &env.marker)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn");
    let mut d = Daemon {
        child: Some(child),
        log,
        out: env.dir.path().join("daemon.out"),
        env,
    };
    let socket = d.socket.clone();
    d.wait_for("the socket", Duration::from_secs(10), |_| {
        UnixStream::connect(&socket).is_ok()
    });
    let port = pki::port_of(&pki::wait_urls(&mut d, 1)[0]);
    let restarts = |d: &Daemon| d.proc("crash")["restarts"].as_u64().unwrap_or(0);
    let before = restarts(&d);

    let connect_from = |last: u8| {
        let sock = socket2_like_bind(last, port);
        sock.ok()
    };
    let mut held = Vec::new();
    // 2,000 idle connections.
    for i in 0..2000u32 {
        if let Some(s) = connect_from(2 + (i % 20) as u8) {
            held.push(s);
        }
    }
    // 200 slow ones: a request line, then a header byte now and then.
    let mut slow = Vec::new();
    for i in 0..200u32 {
        if let Some(mut s) = connect_from(2 + (i % 20) as u8) {
            let _ = s.write_all(b"GET /RPC2 HTTP/1.1\r\nX-Slow: ");
            slow.push(s);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut took = Vec::new();
    while Instant::now() < deadline {
        for s in &mut slow {
            let _ = s.write_all(b"a");
        }
        let t = Instant::now();
        let run = d.tend(&["status", "crash"]);
        took.push(t.elapsed());
        // 3: crash is in back-off or running between two crashes (0); an
        // answer either way, never 4 (the daemon out of reach).
        assert!(matches!(run.code, Some(0 | 3)), "{run}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The median, over about twenty runs: a machine shared with other builds
    // can make any one start of the CLI slow; the worst must still be no hang.
    took.sort();
    let median = took[took.len() / 2];
    let worst = took[took.len() - 1];
    assert!(
        median < Duration::from_millis(100) && worst < Duration::from_secs(1),
        "tend status took {median:?} (median), {worst:?} at worst: {took:?}"
    );
    let after = restarts(&d);
    assert!(
        after >= before + 5,
        "the crashing process was respawned {before} -> {after} times"
    );
    let text = d.log_text();
    assert!(!text.contains("Too many open files"), "{text}");
    assert!(
        text.contains("refused a connection from"),
        "no connection was refused"
    );
    drop(held);
    drop(slow);
}

/// A TCP connection to 127.0.0.1:`port` from 127.0.0.`last`.
fn socket2_like_bind(last: u8, port: u16) -> std::io::Result<TcpStream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: socket(2) returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned to us and is owned by nothing else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let sockaddr = |a: [u8; 4], p: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: p.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let from = sockaddr([127, 0, 0, last], 0);
    let to = sockaddr([127, 0, 0, 1], port);
    // SAFETY: the addresses are valid sockaddr_in of `len` bytes.
    if unsafe { libc::bind(fd, (&raw const from).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::connect(fd, (&raw const to).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(TcpStream::from(owned))
}

/// 1,000 clients connected at once, each with a request: all are answered.
#[test]
fn a_thousand_concurrent_clients_are_all_served() {
    raise_nofile();
    let d = Daemon::start("[process.a]\ncommand = \"sleep 1000\"\n");
    let mut clients = Vec::new();
    for _ in 0..1000 {
        let mut s = UnixStream::connect(&d.socket).expect("connect");
        s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("send");
        clients.push(s);
    }
    let mut served = 0;
    for mut s in clients {
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let (status, body) = pki::read_response(&mut s);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"a\""), "{body}");
        served += 1;
    }
    assert_eq!(served, 1000);
}

/// 200 processes under `ulimit -n 256`: the daemon refuses to start, says
/// why and what to raise, and leaves nothing behind.
#[test]
fn too_few_descriptors_for_the_processes_refuse_to_start() {
    let mut config = String::new();
    for i in 0..200 {
        config.push_str(&format!("[process.p{i}]\ncommand = \"sleep 1000\"\n"));
    }
    let env = TestEnv::new(&config);
    let t = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" -c \"$1\" up")
        .arg(crate::harness::TEND)
        .arg(&env.config)
        .current_dir(env.dir.path())
        .env("TEND_TEST_MARKER", &env.marker)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(t.elapsed() < Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the open-files limit is 256, too low for 200 processes")
            && stderr.contains("ulimit -n"),
        "{stderr}"
    );
    assert!(crate::harness::gone(&env.socket));
}
