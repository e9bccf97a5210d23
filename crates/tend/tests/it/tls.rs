//! TLS on the TCP listeners of a real daemon, with certificates made in the
//! test: curl and the tend client over TLS, a wrong CA and a wrong pin
//! refused, client certificates (mutual TLS), certificates replaced on disk
//! and reloaded by SIGHUP while an open connection keeps its own, and the
//! refusal of a listener other machines reach without TLS or credentials.

// This test binary has no reaper: waiting for the programs it starts is its job.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::harness::{Daemon, TestEnv, wait_until};
use crate::pki::{self, Ca};

fn curl() -> Option<std::path::PathBuf> {
    tend_testkit::require_program("curl")
}

/// `[inet_http_server]` with TLS and a password: curl and `tend --host`
/// over TLS, the password from TEND_PASSWORD; an untrusted CA, a wrong pin
/// and a missing password refused with their reasons.
#[test]
fn tls_with_a_password_for_curl_and_the_tend_client() {
    let Some(curl) = curl() else { return };
    let env = TestEnv::new("");
    let dir = env.dir.path().to_path_buf();
    let ca = Ca::new("tend test CA");
    let ca_file = ca.write(&dir.join("ca.pem"));
    let server = ca.leaf(&dir, "server", "tend", &["127.0.0.1", "localhost"], false);
    let port = pki::free_port();
    let mut d = Daemon::start_supervisord_in(
        env,
        &format!(
            "[supervisord]\nlogfile=%(here)s/sd.log\npidfile=%(here)s/sd.pid\nchildlogdir=%(here)s/logs\n\
             [unix_http_server]\nfile=%(here)s/supervisor.sock\n\
             [inet_http_server]\nport=127.0.0.1:{port}\nusername=admin\npassword=secret\n\
             tls_cert=%(here)s/server.pem\ntls_key=%(here)s/server.key\n\
             [program:web]\ncommand=sleep 1000\n"
        ),
    );
    assert_eq!(
        pki::wait_urls(&mut d, 1),
        [format!("https://127.0.0.1:{port}")]
    );
    let url = format!("https://127.0.0.1:{port}");

    // curl: XML-RPC and the JSON API, with the password; none without.
    let out = Command::new(&curl)
        .args(["-sS", "--cacert"])
        .arg(&ca_file)
        .args(["-u", "admin:secret", "-d"])
        .arg("<methodCall><methodName>supervisor.getState</methodName></methodCall>")
        .arg(format!("{url}/RPC2"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("<name>statename</name>"), "{text}");
    let out = Command::new(&curl)
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&ca_file)
        .arg(format!("{url}/v1/status"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");

    // The tend client.
    let tend = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = d.bare_command(&[]);
        cmd.args(["--host", &url]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        d.run(cmd)
    };
    let ca_s = ca_file.to_string_lossy().into_owned();
    let run = tend(
        &["--ca", &ca_s, "--user", "admin", "status", "--json"],
        &[("TEND_PASSWORD", "secret")],
    );
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("\"name\":\"web\""), "{run}");
    let pin = format!("sha256:{}", server.sha256);
    let run = tend(
        &["--pin", &pin, "--user", "admin", "status"],
        &[("TEND_PASSWORD", "secret")],
    );
    assert_eq!(run.code, Some(0), "{run}");
    // USER:PASSWORD works, with a warning.
    let run = tend(&["--ca", &ca_s, "--user", "admin:secret", "status"], &[]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("shows in the process list"), "{run}");

    // Refusals, each with its reason.
    let other = Ca::new("another CA");
    let other_file = other.write(&dir.join("other-ca.pem"));
    let run = tend(
        &[
            "--ca",
            &other_file.to_string_lossy(),
            "--user",
            "admin",
            "status",
        ],
        &[("TEND_PASSWORD", "secret")],
    );
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains("TLS with the tend daemon at")
            && run.stderr.contains("invalid peer certificate"),
        "{run}"
    );
    let wrong_pin = format!("sha256:{}", "0".repeat(64));
    let run = tend(&["--pin", &wrong_pin, "status"], &[]);
    assert!(run.stderr.contains("not the pinned one"), "{run}");
    let out = Command::new(&curl)
        .args(["-sS", "--cacert"])
        .arg(&other_file)
        .arg(format!("{url}/RPC2"))
        .output()
        .expect("curl");
    assert!(!out.status.success(), "curl trusted another CA");
    let run = tend(&["--ca", &ca_s, "status"], &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains("wants credentials: --user USER"),
        "{run}"
    );
    let run = tend(
        &["--ca", &ca_s, "--user", "admin", "status"],
        &[("TEND_PASSWORD", "wrong")],
    );
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("refused these credentials"), "{run}");
    // Plain HTTP on the TLS port is no answer at all.
    let run = d.run({
        let mut c = d.bare_command(&["--host", &format!("http://127.0.0.1:{port}"), "status"]);
        c.stdin(Stdio::null());
        c
    });
    assert_eq!(run.code, Some(1), "{run}");
}

/// `client_ca`: only clients with a certificate the CA signed get through;
/// theirs names them on the request (`TlsClient`, here through the JSON API
/// that such a listener serves without a password), and the tend client
/// presents one with --cert and --key.
#[test]
fn client_certificates_are_required_verified_and_named() {
    let Some(curl) = curl() else { return };
    let env = TestEnv::new("");
    let dir = env.dir.path().to_path_buf();
    let ca = Ca::new("tend test CA");
    let ca_file = ca.write(&dir.join("ca.pem"));
    ca.leaf(&dir, "server", "tend", &["127.0.0.1"], false);
    let alice = ca.leaf(&dir, "alice", "alice", &["alice.example"], true);
    let mallory = Ca::new("mallory's CA").leaf(&dir, "mallory", "mallory", &[], true);
    let config = "[http]\nlisten = [\"127.0.0.1:0\"]\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\nclient_ca = \"ca.pem\"\n\n[process.web]\ncommand = \"sleep 1000\"\n";
    fs::write(&env.config, config).expect("config");
    let mut d = Daemon::start_in(env);
    let urls = pki::wait_urls(&mut d, 1);
    let port = pki::port_of(&urls[0]);

    // Alice's certificate: the handshake passes, requests are served.
    let mut s = pki::connect(port, &ca.pem, Some(&alice)).expect("alice connects");
    let (status, body) = pki::get_state(&mut s);
    assert_eq!(status, 200, "{body}");
    // No certificate, or one from another CA: refused in the handshake
    // (TLS 1.3 tells the client at its first read).
    for who in [None, Some(&mallory)] {
        let refused = match pki::connect(port, &ca.pem, who) {
            Err(_) => true,
            Ok(mut s) => {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n");
                let mut buf = [0u8; 64];
                !matches!(s.read(&mut buf), Ok(n) if n > 0)
            }
        };
        assert!(refused, "a client without a good certificate was served");
    }

    // The tend client with --cert/--key: the JSON API, no password.
    let run = d.run({
        let mut c = d.bare_command(&[]);
        c.args(["--host", &urls[0], "--ca"])
            .arg(&ca_file)
            .arg("--cert")
            .arg(&alice.cert)
            .arg("--key")
            .arg(&alice.key)
            .args(["status", "--json"]);
        c
    });
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("\"name\":\"web\""), "{run}");
    // curl too.
    let out = Command::new(&curl)
        .args(["-sS", "--cacert"])
        .arg(&ca_file)
        .arg("--cert")
        .arg(&alice.cert)
        .arg("--key")
        .arg(&alice.key)
        .arg(format!("{}/v1/status", urls[0]))
        .output()
        .expect("curl");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"web\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mutual TLS maps a certificate to a user of `[access.user.NAME]` by its
/// `certificate` (a subject it names, or its SHA-256): that user's roles
/// apply, with no password; a certificate the CA signed that names no user
/// gets no rights.
#[test]
fn client_certificates_map_to_users_and_their_rights() {
    let Some(_curl) = curl() else { return };
    let env = TestEnv::new("");
    let dir = env.dir.path().to_path_buf();
    let ca = Ca::new("tend test CA");
    let ca_file = ca.write(&dir.join("ca.pem"));
    ca.leaf(&dir, "server", "tend", &["127.0.0.1"], false);
    let alice = ca.leaf(&dir, "alice", "alice", &["alice.example"], true);
    let robot = ca.leaf(&dir, "robot", "robot-7", &[], true);
    let stranger = ca.leaf(&dir, "stranger", "stranger", &[], true);
    let config = format!(
        r#"[http]
listen = ["127.0.0.1:0"]
tls_cert = "server.pem"
tls_key = "server.key"
client_ca = "ca.pem"

[access.role.operator]
view = ["*"]
control = ["web"]

[access.role.viewer]
view = ["db"]

[access.user.alice]
certificate = "alice.example"
roles = ["operator"]

[access.user.robot]
certificate = "sha256:{}"
roles = ["viewer"]

[process.web]
command = "sleep 1000"

[process.db]
command = "sleep 1000"
"#,
        robot.sha256
    );
    fs::write(&env.config, config).expect("config");
    let mut d = Daemon::start_in(env);
    let urls = pki::wait_urls(&mut d, 1);
    let as_leaf = |d: &Daemon, leaf: &pki::Leaf, args: &[&str]| {
        d.run({
            let mut c = d.bare_command(&[]);
            c.args(["--host", &urls[0], "--ca"])
                .arg(&ca_file)
                .arg("--cert")
                .arg(&leaf.cert)
                .arg("--key")
                .arg(&leaf.key)
                .args(args);
            c
        })
    };
    // alice, by a DNS name of her certificate: restarts web, not db.
    let run = as_leaf(&d, &alice, &["restart", "web"]);
    assert_eq!(run.code, Some(0), "{run}");
    let run = as_leaf(&d, &alice, &["stop", "db"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        run.stderr.contains("control"),
        "the missing right is named: {run}"
    );
    // robot, by its fingerprint: sees db only, and may not restart it.
    let run = as_leaf(&d, &robot, &["status", "--json"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("\"name\":\"db\""), "{run}");
    assert!(!run.stdout.contains("\"name\":\"web\""), "{run}");
    let run = as_leaf(&d, &robot, &["restart", "db"]);
    assert_ne!(run.code, Some(0), "{run}");
    // A certificate of the right CA that is nobody's: nothing.
    let run = as_leaf(&d, &stranger, &["status", "--json"]);
    assert!(!run.stdout.contains("\"name\""), "{run}");
    let run = as_leaf(&d, &stranger, &["restart", "web"]);
    assert_ne!(run.code, Some(0), "{run}");
    // The audit trail names the user the certificate is.
    let log = d.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("audit: alice@127.0.0.1") && l.contains("restart web: ok")),
        "{log}"
    );
}

/// SIGHUP reads the certificate files again: new connections get the new
/// certificate, a connection opened before keeps working on the old one. A
/// broken file fails the reload and leaves the certificate in use.
#[test]
fn certificates_reload_on_sighup_without_dropping_connections() {
    let env = TestEnv::new("");
    let dir = env.dir.path().to_path_buf();
    let ca = Ca::new("tend test CA");
    let first = ca.leaf(&dir, "server", "tend", &["127.0.0.1"], false);
    let config = "[http]\nlisten = [\"127.0.0.1:0\"]\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\nheader_timeout = \"60s\"\n\n[process.web]\ncommand = \"sleep 1000\"\n";
    fs::write(&env.config, config).expect("config");
    let mut d = Daemon::start_in(env);
    let port = pki::port_of(&pki::wait_urls(&mut d, 1)[0]);

    let mut old = pki::connect(port, &ca.pem, None).expect("connect");
    assert_eq!(pki::server_sha256(&old), first.sha256);
    assert_eq!(pki::get_state(&mut old).0, 200);

    let second = ca.leaf(&dir, "server", "tend", &["127.0.0.1"], false);
    assert_ne!(first.sha256, second.sha256);
    let pid = nix::unistd::Pid::from_raw(d.daemon_pid() as i32);
    nix::sys::signal::kill(pid, Signal::SIGHUP).expect("SIGHUP");
    d.wait_for(
        "the certificates to be reloaded",
        Duration::from_secs(10),
        |d| {
            d.log_text()
                .contains("reloaded the TLS certificates of 1 listeners")
        },
    );
    let new = pki::connect(port, &ca.pem, None).expect("connect after the reload");
    assert_eq!(pki::server_sha256(&new), second.sha256);
    // The old connection: still open, still answering, still the old certificate.
    assert_eq!(pki::get_state(&mut old).0, 200);
    assert_eq!(pki::server_sha256(&old), first.sha256);

    // A broken key: the reload fails, the second certificate stays.
    fs::write(dir.join("server.key"), "not a key").expect("break the key");
    let run = d.tend(&["reload"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        run.stderr.contains("cannot reload the TLS certificate"),
        "{run}"
    );
    let after = pki::connect(port, &ca.pem, None).expect("connect after a failed reload");
    assert_eq!(pki::server_sha256(&after), second.sha256);
    // `tend reload` reloads them too, once the files are good.
    let third = ca.leaf(&dir, "server", "tend", &["127.0.0.1"], false);
    d.ok(&["reload"]);
    let last = pki::connect(port, &ca.pem, None).expect("connect");
    assert_eq!(pki::server_sha256(&last), third.sha256);
}

/// A listener on an address other machines reach (here every interface,
/// 0.0.0.0) without TLS or credentials is refused before anything is bound,
/// unless the config says `insecure = true`; then it starts and warns. The
/// started daemon runs in a network namespace of its own (`unshare --net`),
/// where 0.0.0.0 reaches nothing but its loopback.
#[test]
fn a_listener_other_machines_reach_needs_tls_and_credentials() {
    let env = TestEnv::new(
        "[http]\nlisten = [\"0.0.0.0:0\"]\n\n[process.web]\ncommand = \"sleep 1000\"\n",
    );
    let t = Instant::now();
    let run = env.tend(&["up"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr
            .contains("refusing to serve http://0.0.0.0:0 without TLS and without authentication")
            && run.stderr.contains("insecure = true"),
        "{run}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(crate::harness::gone(&env.socket), "the socket was bound");
    // TLS without client certificates is not enough either.
    let ca = Ca::new("ca");
    ca.leaf(env.dir.path(), "server", "tend", &["127.0.0.1"], false);
    fs::write(
        &env.config,
        "[http]\nlisten = [\"0.0.0.0:0\"]\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n",
    )
    .expect("config");
    let run = env.tend(&["up"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("without authentication"), "{run}");

    // insecure = true: it starts, with the warning.
    if !tend_testkit::require_root("to run the daemon in a network namespace of its own") {
        return;
    }
    let Some(unshare) = tend_testkit::require_program("unshare") else {
        return;
    };
    let Some(ip) = tend_testkit::require_program("ip") else {
        return;
    };
    fs::write(
        &env.config,
        "[http]\nlisten = [\"0.0.0.0:0\"]\ninsecure = true\n\n[process.web]\ncommand = \"sleep 1000\"\n",
    )
    .expect("config");
    let log = env.dir.path().join("daemon.log");
    let mut child = Command::new(unshare)
        .arg("--net")
        .arg("sh")
        .arg("-c")
        .arg(format!(
            "{} link set lo up && exec \"$0\" -c \"$1\" up",
            ip.display()
        ))
        .arg(crate::harness::TEND)
        .arg(&env.config)
        .current_dir(env.dir.path())
        .env("TEND_TEST_MARKER", &env.marker)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).expect("log"))
        .spawn()
        .expect("unshare");
    let socket = env.socket.clone();
    wait_until(
        "the daemon in its namespace to answer",
        Duration::from_secs(10),
        || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
    );
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("INSECURE: serving http://0.0.0.0:0 without TLS and without authentication"),
        "{text}"
    );
    env.ok(&["status"]);
    env.ok(&["shutdown"]);
    let _ = child.wait();
}
