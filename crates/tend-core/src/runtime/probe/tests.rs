//! Probes against real peers: tiny tokio servers written here for exact
//! answers, Python's `http.server`, a real `redis-server`, sockets held by the
//! test for `tcp` and `port_free`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::model::signal::Signal;
use crate::model::status::ExitInfo;

/// Real-time checks against local peers answer in milliseconds; this only
/// bounds a broken test.
const GENEROUS: Duration = Duration::from_secs(10);

fn json(value: serde_json::Value) -> Result<ProbeSpec, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

// ---- pure parsers --------------------------------------------------------

#[test]
fn http_urls() {
    let t = |host: &str, port, path: &str| HttpTarget {
        host: host.into(),
        port,
        path: path.into(),
    };
    assert_eq!(
        parse_http_url("http://example.com"),
        Ok(t("example.com", 80, "/"))
    );
    assert_eq!(
        parse_http_url("HTTP://127.0.0.1:8080/health?full=1#frag"),
        Ok(t("127.0.0.1", 8080, "/health?full=1"))
    );
    assert_eq!(parse_http_url("http://h?x=1"), Ok(t("h", 80, "/?x=1")));
    assert_eq!(
        parse_http_url("http://[::1]:9000/"),
        Ok(t("::1", 9000, "/"))
    );
    assert_eq!(parse_http_url("http://[::1]/"), Ok(t("::1", 80, "/")));

    let err = |url: &str| parse_http_url(url).expect_err(url);
    assert!(err("https://example.com/").contains("https is not supported"));
    assert!(err("ftp://example.com/").contains("only http://"));
    assert!(err("127.0.0.1:8080/health").contains("expected a URL"));
    assert!(err("http://user:pw@host/").contains("credentials"));
    assert!(err("http://host/a b").contains("space"));
    assert!(err("http://host/a\r\nX-Injected: 1").contains("control"));
    assert!(err("http:///path").contains("no host"));
    assert!(err("http://host:0/").contains("not a port"));
    assert!(err("http://host:99999/").contains("not a port"));
    assert!(err("http://host:/").contains("not a port"));
    assert!(err("http://::1/").contains("brackets"));
    assert!(err("http://[::1/").contains("missing its `]`"));
}

#[test]
fn host_headers() {
    let h = |url| parse_http_url(url).expect(url).host_header();
    assert_eq!(h("http://example.com/"), "example.com");
    assert_eq!(h("http://example.com:8080/"), "example.com:8080");
    assert_eq!(h("http://[::1]:8080/"), "[::1]:8080");
}

#[test]
fn status_lines() {
    assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), Ok(200));
    assert_eq!(parse_status_line(b"HTTP/1.0 302 Found"), Ok(302));
    assert_eq!(parse_status_line(b"HTTP/1.1 204"), Ok(204));
    assert_eq!(parse_status_line(b"HTTP/2 503 "), Ok(503));
    for bad in [
        &b""[..],
        b"SSH-2.0-OpenSSH_9.2",
        b"HTTP/1.1",
        b"HTTP/1.1 20",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 abc OK",
        b"HTTP/1.1 999 What",
        b"\xff\xfe",
    ] {
        assert!(parse_status_line(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn resp_simple_lines() {
    assert_eq!(parse_resp_simple(b"+PONG\r\n"), Ok("PONG".into()));
    assert_eq!(parse_resp_simple(b"+OK"), Ok("OK".into()));
    assert_eq!(
        parse_resp_simple(b"-NOAUTH Authentication required.\r\n"),
        Err("NOAUTH Authentication required.".into())
    );
    assert_eq!(parse_resp_simple(b""), Err("empty answer".into()));
    assert!(parse_resp_simple(b"-").is_err());
    assert!(
        parse_resp_simple(b":1\r\n")
            .expect_err("integer")
            .contains("unexpected answer")
    );
    assert!(parse_resp_simple(b"HTTP/1.1 400 Bad Request").is_err());
}

#[test]
fn addresses() {
    assert_eq!(split_host_port("db:5432", None), Ok(("db".into(), 5432)));
    assert_eq!(split_host_port("[::1]:1", None), Ok(("::1".into(), 1)));
    assert_eq!(split_host_port("db", Some(6379)), Ok(("db".into(), 6379)));
    for bad in ["", "db", ":80", "db:x", "db:0", "::1:80", "db :80"] {
        assert!(split_host_port(bad, None).is_err(), "{bad:?}");
    }
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = parse_status_line(&bytes);
        let _ = parse_resp_simple(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_http_url(&text);
        let _ = parse_http_url(&format!("http://{text}"));
        let _ = split_host_port(&text, Some(1));
    }

    #[test]
    fn status_lines_give_their_code(code in 100u16..600, reason in "[ -~]{0,20}") {
        let line = format!("HTTP/1.1 {code} {reason}");
        proptest::prop_assert_eq!(parse_status_line(line.as_bytes()), Ok(code));
    }

    #[test]
    fn urls_give_their_parts(
        host in "[a-z][a-z0-9.-]{0,20}",
        port in 1u16..,
        path in "(/[a-zA-Z0-9._~%-]{0,8}){0,4}",
    ) {
        let target = parse_http_url(&format!("http://{host}:{port}{path}"));
        let path = if path.is_empty() { "/".to_string() } else { path };
        proptest::prop_assert_eq!(target, Ok(HttpTarget { host, port, path }));
    }
}

// ---- the spec as configured ----------------------------------------------

#[test]
fn spec_defaults_are_kubernetes() {
    let spec = json(serde_json::json!({ "tcp": "127.0.0.1:5432" })).expect("valid");
    assert_eq!(spec, ProbeSpec::new(Check::Tcp("127.0.0.1:5432".into())));
    assert_eq!(spec.initial_delay, Duration::ZERO);
    assert_eq!(spec.period, Duration::from_secs(10));
    assert_eq!(spec.timeout, Duration::from_secs(1));
    assert_eq!(spec.failure_threshold, 3);
    assert_eq!(spec.success_threshold, 1);
}

#[test]
fn spec_kinds_and_timing() {
    let spec = json(serde_json::json!({
        "http": "http://127.0.0.1:8080/health",
        "initial_delay": "2s", "period": "500ms", "timeout": 0.25,
        "failure_threshold": 5, "success_threshold": 2,
    }))
    .expect("valid");
    assert_eq!(
        spec.check,
        Check::Http("http://127.0.0.1:8080/health".into())
    );
    assert_eq!(spec.initial_delay, Duration::from_secs(2));
    assert_eq!(spec.period, Duration::from_millis(500));
    assert_eq!(spec.timeout, Duration::from_millis(250));
    assert_eq!((spec.failure_threshold, spec.success_threshold), (5, 2));

    let check = |v| json(v).expect("valid").check;
    assert_eq!(
        check(serde_json::json!({ "port_free": 8080 })),
        Check::PortFree(8080)
    );
    assert_eq!(
        check(serde_json::json!({ "exec": ["pg_isready", "-q"] })),
        Check::Exec(vec!["pg_isready".into(), "-q".into()])
    );
    assert_eq!(
        check(serde_json::json!({ "redis": "127.0.0.1" })),
        Check::Redis {
            addr: "127.0.0.1".into(),
            password: None,
            username: None
        }
    );
    assert_eq!(
        check(serde_json::json!({ "redis": { "addr": "r:1", "password": "pw", "username": "u" } })),
        Check::Redis {
            addr: "r:1".into(),
            password: Some("pw".into()),
            username: Some("u".into())
        }
    );
}

#[test]
fn spec_errors_say_what_is_wrong() {
    let err = |v| json(v).expect_err("invalid");
    assert!(err(serde_json::json!({ "period": "1s" })).contains("needs one of"));
    assert!(
        err(serde_json::json!({ "tcp": "h:1", "http": "http://h/" }))
            .contains("found `http` and `tcp`")
    );
    assert!(err(serde_json::json!({ "tcp": "h:1", "perod": "1s" })).contains("perod"));
    assert!(err(serde_json::json!({ "http": "https://h/" })).contains("https is not supported"));
    assert!(err(serde_json::json!({ "tcp": "h" })).contains("has no port"));
    assert!(err(serde_json::json!({ "port_free": 0 })).contains("not a port"));
    assert!(err(serde_json::json!({ "port_free": 70000 })).contains("70000"));
    assert!(err(serde_json::json!({ "exec": [] })).contains("command is empty"));
    assert!(err(serde_json::json!({ "exec": "pg_isready" })).contains("sequence"));
    assert!(
        err(serde_json::json!({ "redis": { "addr": "h", "username": "u" } }))
            .contains("username needs a password")
    );
    assert!(err(serde_json::json!({ "redis": { "adr": "h" } })).contains("adr"));
    assert!(err(serde_json::json!({ "redis": 5 })).contains("host:port"));
    assert!(err(serde_json::json!({ "tcp": "h:1", "period": "0s" })).contains("period"));
    assert!(err(serde_json::json!({ "tcp": "h:1", "timeout": 0 })).contains("timeout"));
    assert!(
        err(serde_json::json!({ "tcp": "h:1", "failure_threshold": 0 }))
            .contains("failure_threshold")
    );
    assert!(
        err(serde_json::json!({ "tcp": "h:1", "success_threshold": 0 }))
            .contains("success_threshold")
    );
}

#[test]
fn spec_round_trips_flat() {
    let mut spec = ProbeSpec::new(Check::Redis {
        addr: "127.0.0.1:6379".into(),
        password: Some("pw".into()),
        username: None,
    });
    spec.period = Duration::from_millis(1500);
    let value = serde_json::to_value(&spec).expect("serialize");
    assert_eq!(
        value,
        serde_json::json!({
            "redis": { "addr": "127.0.0.1:6379", "password": "pw" },
            "initial_delay": "0s", "period": "1.5s", "timeout": "1s",
            "failure_threshold": 3, "success_threshold": 1,
        })
    );
    assert_eq!(json(value), Ok(spec));
    for check in [
        Check::Http("http://h/".into()),
        Check::Tcp("h:1".into()),
        Check::PortFree(1),
        Check::Exec(vec!["true".into()]),
    ] {
        let spec = ProbeSpec::new(check);
        assert_eq!(
            json(serde_json::to_value(&spec).expect("serialize")),
            Ok(spec)
        );
    }
}

#[test]
fn checks_print_without_passwords() {
    let redis = Check::Redis {
        addr: "r:6379".into(),
        password: Some("hunter2".into()),
        username: Some("app".into()),
    };
    assert_eq!(redis.to_string(), "redis r:6379");
    let debug = format!("{redis:?}");
    assert!(
        !debug.contains("hunter2") && debug.contains("redacted"),
        "{debug}"
    );
    assert_eq!(
        Check::Exec(vec!["sh".into(), "-c".into(), "exit 1".into()]).to_string(),
        "exec sh -c 'exit 1'"
    );
    assert_eq!(Check::PortFree(80).to_string(), "port_free 80");
}

#[test]
fn exec_outcomes_come_from_exits() {
    assert_eq!(
        ProbeOutcome::from_exit(&ExitInfo::Code(0)),
        ProbeOutcome::pass("exit code 0")
    );
    assert!(!ProbeOutcome::from_exit(&ExitInfo::Code(1)).ok);
    assert!(!ProbeOutcome::from_exit(&ExitInfo::Signal(Signal::KILL)).ok);
}

#[tokio::test]
async fn exec_is_not_run_here() {
    let out = run_check(&Check::Exec(vec!["true".into()]), GENEROUS).await;
    assert!(!out.ok);
    assert!(out.detail.contains("driver"), "{}", out.detail);
}

// ---- http ----------------------------------------------------------------

/// A server that answers every connection with `reply`, after reading the
/// request head, which it reports.
async fn http_server(reply: &'static [u8]) -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
            let _ = conn.write_all(reply).await;
        }
    });
    (port, rx)
}

async fn http(url: &str) -> ProbeOutcome {
    run_check(&Check::Http(url.into()), GENEROUS).await
}

#[tokio::test]
async fn http_sends_a_plain_get() {
    let (port, mut requests) = http_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
    let out = http(&format!("http://127.0.0.1:{port}/health?full=1")).await;
    assert_eq!(out, ProbeOutcome::pass("HTTP 200"));
    assert_eq!(
        requests.recv().await.expect("a request"),
        format!(
            "GET /health?full=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: tend\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        )
    );
}

#[tokio::test]
async fn http_2xx_and_3xx_pass_4xx_and_5xx_fail() {
    for (reply, ok, detail) in [
        (&b"HTTP/1.1 200 OK\r\n\r\n"[..], true, "HTTP 200"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", true, "HTTP 204"),
        (
            b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\n",
            true,
            "HTTP 302",
        ),
        (b"HTTP/1.0 404 Not Found\r\n\r\n", false, "HTTP 404"),
        (
            b"HTTP/1.1 500 Internal Server Error\r\n\r\n",
            false,
            "HTTP 500",
        ),
        (b"HTTP/1.1 503 Service Unavailable\n\n", false, "HTTP 503"),
    ] {
        let (port, _requests) = http_server(reply).await;
        let out = http(&format!("http://127.0.0.1:{port}/")).await;
        assert_eq!((out.ok, out.detail.as_str()), (ok, detail));
    }
}

#[tokio::test]
async fn http_peers_that_are_not_http_servers() {
    let (port, _r) = http_server(b"SSH-2.0-OpenSSH_9.2\r\n").await;
    let out = http(&format!("http://127.0.0.1:{port}/")).await;
    assert!(!out.ok);
    assert!(
        out.detail.starts_with("not an HTTP answer"),
        "{}",
        out.detail
    );

    let (port, _r) = http_server(b"").await;
    let out = http(&format!("http://localhost:{port}/")).await;
    assert_eq!(
        out,
        ProbeOutcome::fail("connection closed without an answer")
    );

    // A status line that never ends is not read forever.
    let (port, _r) = http_server(&[b'x'; 8192]).await;
    let out = http(&format!("http://127.0.0.1:{port}/")).await;
    assert!(out.detail.contains("longer than"), "{}", out.detail);
}

#[tokio::test]
async fn http_reads_only_the_status_line_of_an_endless_body() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let Ok((mut conn, _)) = listener.accept().await else {
            return;
        };
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
        // Until the probe hangs up.
        while conn.write_all(&[b'y'; 65536]).await.is_ok() {}
    });
    assert_eq!(
        http(&format!("http://127.0.0.1:{port}/stream")).await,
        ProbeOutcome::pass("HTTP 200")
    );
}

#[tokio::test]
async fn http_closed_port_is_refused() {
    let port = closed_port().await;
    assert_eq!(
        http(&format!("http://127.0.0.1:{port}/")).await,
        ProbeOutcome::fail("connection refused")
    );
}

#[tokio::test]
async fn http_bad_url_fails_without_network() {
    let out = http("https://127.0.0.1/").await;
    assert!(!out.ok);
    assert!(
        out.detail.contains("https is not supported"),
        "{}",
        out.detail
    );
}

/// The kernel completes the handshake for the listener's backlog, so the
/// request is sent; no answer ever comes. Under the paused clock the timeout
/// passes without waiting a real second.
#[tokio::test(start_paused = true)]
async fn silent_servers_time_out() {
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = silent.local_addr().expect("addr");
    let timeout = Duration::from_secs(1);
    for check in [
        Check::Http(format!("http://{addr}/")),
        Check::Redis {
            addr: addr.to_string(),
            password: None,
            username: None,
        },
    ] {
        let out = run_check(&check, timeout).await;
        assert_eq!(out, ProbeOutcome::fail("timed out after 1s"), "{check}");
    }
    drop(silent);
}

#[tokio::test]
async fn http_against_python_http_server() {
    if tend_testkit::require_program("python3").is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("health"), "ok").expect("write");
    let mut cmd = Command::new("python3");
    cmd.args([
        "-u",
        "-m",
        "http.server",
        "0",
        "--bind",
        "127.0.0.1",
        "--directory",
    ])
    .arg(dir.path());
    let mut server = Server::spawn(cmd);
    // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
    let line = server
        .line_containing("Serving HTTP")
        .await
        .expect("http.server started");
    let port: u16 = line
        .split("port ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));

    assert_eq!(
        http(&format!("http://127.0.0.1:{port}/health")).await,
        ProbeOutcome::pass("HTTP 200")
    );
    assert_eq!(
        http(&format!("http://localhost:{port}/missing")).await,
        ProbeOutcome::fail("HTTP 404")
    );
    // A directory without its slash redirects.
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    assert_eq!(
        http(&format!("http://127.0.0.1:{port}/sub")).await,
        ProbeOutcome::pass("HTTP 301")
    );
}

// ---- tcp and port_free ---------------------------------------------------

#[tokio::test]
async fn tcp_passes_while_a_socket_listens() {
    let held = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = held.local_addr().expect("addr").port();
    for addr in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        assert_eq!(
            run_check(&Check::Tcp(addr.clone()), GENEROUS).await,
            ProbeOutcome::pass("connected"),
            "{addr}"
        );
    }
    drop(held);
    assert_eq!(
        run_check(&Check::Tcp(format!("127.0.0.1:{port}")), GENEROUS).await,
        ProbeOutcome::fail("connection refused")
    );
    let out = run_check(&Check::Tcp("no-port".into()), GENEROUS).await;
    assert!(
        !out.ok && out.detail.contains("has no port"),
        "{}",
        out.detail
    );
}

#[tokio::test]
async fn port_free_fails_while_any_socket_listens_on_the_port() {
    for host in ["127.0.0.1", "0.0.0.0"] {
        let held = TcpListener::bind((host, 0)).await.expect("bind");
        let port = held.local_addr().expect("addr").port();
        assert_eq!(
            run_check(&Check::PortFree(port), GENEROUS).await,
            ProbeOutcome::fail(format!("port {port} is in use")),
            "held on {host}"
        );
        drop(held);
        assert_eq!(
            run_check(&Check::PortFree(port), GENEROUS).await,
            ProbeOutcome::pass(format!("port {port} is free")),
        );
    }
}

/// A port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

// ---- redis ---------------------------------------------------------------

fn redis(addr: &str, password: Option<&str>, username: Option<&str>) -> Check {
    Check::Redis {
        addr: addr.into(),
        password: password.map(Into::into),
        username: username.map(Into::into),
    }
}

/// A `redis-server` on a free loopback port, or `None` when it is not
/// installed (a failure under CI, a counted skip elsewhere).
async fn redis_server(extra: &[&str]) -> Option<(Server, u16, tempfile::TempDir)> {
    tend_testkit::require_program("redis-server")?;
    // Another test may take the port between its release and redis's bind:
    // then redis exits, and we try another.
    for _ in 0..5 {
        let port = closed_port().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .args(extra);
        let mut server = Server::spawn(cmd);
        if server
            .line_containing("Ready to accept connections")
            .await
            .is_some()
        {
            return Some((server, port, dir));
        }
    }
    panic!("redis-server did not start; see its output above");
}

#[tokio::test]
async fn redis_ping_pong() {
    let Some((_server, port, _dir)) = redis_server(&[]).await else {
        return;
    };
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(
        run_check(&redis(&addr, None, None), GENEROUS).await,
        ProbeOutcome::pass("PONG")
    );
    // With no password configured, AUTH is an error the check reports.
    let out = run_check(&redis(&addr, Some("pw"), None), GENEROUS).await;
    assert!(!out.ok);
    assert!(out.detail.starts_with("ERR"), "{}", out.detail);
}

#[tokio::test]
async fn redis_with_a_password() {
    let Some((_server, port, _dir)) = redis_server(&["--requirepass", "secret"]).await else {
        return;
    };
    let addr = format!("127.0.0.1:{port}");
    let out = run_check(&redis(&addr, None, None), GENEROUS).await;
    assert!(!out.ok);
    assert!(out.detail.starts_with("NOAUTH"), "{}", out.detail);

    let out = run_check(&redis(&addr, Some("wrong"), None), GENEROUS).await;
    assert!(!out.ok);
    // Redis 6 and later say WRONGPASS; older ones ERR invalid password.
    assert!(
        out.detail.starts_with("WRONGPASS") || out.detail.starts_with("ERR"),
        "{}",
        out.detail
    );

    for username in [None, Some("default")] {
        assert_eq!(
            run_check(&redis(&addr, Some("secret"), username), GENEROUS).await,
            ProbeOutcome::pass("PONG"),
            "{username:?}"
        );
    }
}

#[tokio::test]
async fn redis_checks_against_other_peers() {
    let port = closed_port().await;
    assert_eq!(
        run_check(&redis(&format!("127.0.0.1:{port}"), None, None), GENEROUS).await,
        ProbeOutcome::fail("connection refused")
    );
    let port = greeting_server(b"SSH-2.0-OpenSSH_9.2\r\n").await;
    let out = run_check(&redis(&format!("127.0.0.1:{port}"), None, None), GENEROUS).await;
    assert!(!out.ok);
    assert!(
        out.detail.starts_with("unexpected answer \"SSH-2.0"),
        "{}",
        out.detail
    );
    let port = greeting_server(b"-DENIED Redis is running in protected mode\r\n").await;
    let out = run_check(&redis(&format!("127.0.0.1:{port}"), None, None), GENEROUS).await;
    assert_eq!(
        out,
        ProbeOutcome::fail("DENIED Redis is running in protected mode")
    );
}

/// A server that writes `greeting` as soon as it accepts a connection (as
/// SSH servers, or a Redis refusing a client, do), then reads until the peer
/// hangs up.
async fn greeting_server(greeting: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let _ = conn.write_all(greeting).await;
            let mut sink = Vec::new();
            let _ = conn.read_to_end(&mut sink).await;
        }
    });
    port
}

// ---- helpers -------------------------------------------------------------

/// A server process of the test's own, killed and waited for on drop. Its
/// stdout is read line by line on a thread (to the end, so it never blocks on
/// a full pipe) and handed over here.
struct Server {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Server {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server { child, lines }
    }

    /// The first output line containing `needle`; `None` if the server's
    /// output ends first (it died), after printing what it said.
    async fn line_containing(&mut self, needle: &str) -> Option<String> {
        let mut before = Vec::new();
        let found = tokio::time::timeout(GENEROUS, async {
            while let Some(line) = self.lines.recv().await {
                if line.contains(needle) {
                    return Some(line);
                }
                before.push(line);
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => Some(line),
            Ok(None) => {
                eprintln!("the server exited:\n{}", before.join("\n"));
                None
            }
            Err(_) => panic!(
                "no {needle:?} from the server in {GENEROUS:?}; it said:\n{}",
                before.join("\n")
            ),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        #[expect(
            clippy::disallowed_methods,
            reason = "the test reaps its own server, not one of the launcher's children"
        )]
        let _ = self.child.wait();
    }
}
