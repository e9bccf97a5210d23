//! One page for the fleet: a daemon whose tend.toml names two `[[peer]]`
//! daemons (each on its own loopback address, with TLS and a token) shows
//! them beside its own processes in a real Chromium, live: a state change on
//! a peer, a peer that goes away and one that comes back, and a restart
//! asked for on the page done by the peer (or refused by it, with the
//! peer's own words).

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::browser::{Browser, http_get, tcp_to_unix};
use crate::harness::{Daemon, TestEnv, free_port};
use crate::pki::Ca;

const SEE: Duration = Duration::from_secs(30);

/// The token with every right on the peers (`[access.token.ops]`).
const ADMIN: &str = "peer-admin-token-0123456789";
/// The token that may only look (`[access.token.watcher]`).
const VIEWER: &str = "peer-viewer-token-0123456789";

/// A peer daemon on `addr:port` with TLS (its certificate from `ca`) that
/// knows both tokens; `web` and `worker` run on it.
fn peer(ca: &Ca, addr: &str, port: u16) -> Daemon {
    let env = TestEnv::new("");
    let dir = env.dir.path().to_path_buf();
    ca.write(&dir.join("ca.pem"));
    ca.leaf(&dir, "server", "tend", &[addr], false);
    fs::write(
        &env.config,
        format!(
            "[http]\nlisten = [\"{addr}:{port}\"]\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n\n\
             [access.role.look]\nview = [\"*\"]\n\n\
             [access.token.ops]\nhash = \"{{PLAIN}}{ADMIN}\"\nroles = [\"admin\"]\n\n\
             [access.token.watcher]\nhash = \"{{PLAIN}}{VIEWER}\"\nroles = [\"look\"]\n\n\
             [process.web]\ncommand = [\"sleep\", \"1000\"]\nstop.timeout = \"2s\"\n\n\
             [process.worker]\ncommand = [\"sleep\", \"1000\"]\nstop.timeout = \"2s\"\n"
        ),
    )
    .expect("write config");
    let d = Daemon::start_in(env);
    d.wait_for_running(&["web", "worker"]);
    d
}

trait Running {
    fn wait_for_running(&self, names: &[&str]);
}

impl Running for Daemon {
    fn wait_for_running(&self, names: &[&str]) {
        crate::harness::wait_until("the processes to run", SEE, || {
            names.iter().all(|n| self.state(n) == "running")
        });
    }
}

/// Whether 127.0.0.2 and .3 can be bound (Linux routes all of 127/8 to lo).
fn loopbacks() -> bool {
    tend_testkit::require(
        std::net::TcpListener::bind("127.0.0.3:0").is_ok(),
        "127.0.0.3 cannot be bound here (no 127.0.0.0/8 on lo)",
    )
}

/// The JSON body of `GET path` through the page's port.
fn get_json(port: u16, path: &str) -> Value {
    let raw = http_get(port, path);
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn health(b: &mut Browser, peer: &str) -> String {
    b.eval(&format!(
        "document.querySelector('section.peer[data-peer=\"{peer}\"] .peer-health').textContent"
    ))
    .as_str()
    .unwrap_or_default()
    .to_string()
}

fn peer_cell(peer: &str, name: &str, k: &str) -> String {
    format!(
        "document.querySelector('section.peer[data-peer=\"{peer}\"] tr[data-name=\"{name}\"] [data-k={k}]').textContent"
    )
}

#[test]
fn the_page_shows_two_peers_live_and_acts_on_them_with_their_rights() {
    if !loopbacks() {
        return;
    }
    let Some(mut b) = Browser::launch() else {
        return;
    };
    let ca = Ca::new("peers test CA");
    // Fixed ports: a peer started again comes back where it was.
    let (pa, pb) = (free_port(), free_port());
    let mut alpha = peer(&ca, "127.0.0.2", pa);
    let beta = peer(&ca, "127.0.0.3", pb);

    let env = TestEnv::new("");
    ca.write(&env.dir.path().join("ca.pem"));
    fs::write(env.dir.path().join("viewer.token"), format!("{VIEWER}\n")).expect("token file");
    fs::write(
        &env.config,
        format!(
            "[[peer]]\nname = \"alpha\"\nurl = \"https://127.0.0.2:{pa}\"\nca = \"ca.pem\"\ntoken = \"{ADMIN}\"\n\n\
             [[peer]]\nname = \"beta\"\nurl = \"https://127.0.0.3:{pb}\"\nca = \"ca.pem\"\ntoken_file = \"viewer.token\"\n\n\
             [process.local]\ncommand = [\"sleep\", \"1000\"]\nstop.timeout = \"2s\"\n"
        ),
    )
    .expect("write config");
    let home = Daemon::start_in(env);
    home.wait_for_running(&["local"]);

    let port = tcp_to_unix(&home.socket);
    // Nobody watches: the peers are not connected to.
    let idle = get_json(port, "/v1/peers");
    assert_eq!(idle["watched"], false, "{idle}");
    assert_eq!(idle["peers"][0]["state"], "idle", "{idle}");

    b.goto(&format!("http://127.0.0.1:{port}/ui/"));
    b.wait(
        "the page to connect to its event stream",
        SEE,
        "window.tend && window.tend.ready && document.querySelector('#conn').textContent === 'live'",
    );
    for peer in ["alpha", "beta"] {
        b.wait(
            &format!("{peer}'s section with its two processes running"),
            SEE,
            &format!(
                "{} === 'running' && {} === 'running' && \
                 document.querySelector('section.peer[data-peer=\"{peer}\"] .peer-health').textContent.includes('2 running')",
                peer_cell(peer, "web", "state"),
                peer_cell(peer, "worker", "state")
            ),
        );
    }
    let h = health(&mut b, "alpha");
    assert!(h.starts_with("reachable · tend "), "{h}");
    // The local processes are still there, beside them.
    assert_eq!(
        b.eval("document.querySelector('tr.proc[data-name=\"local\"] [data-k=state]').textContent"),
        "running"
    );
    b.screenshot("peers-two-sections");

    // The same view over the API while the page watches.
    let live = get_json(port, "/v1/peers");
    assert_eq!(live["watched"], true, "{live}");
    assert_eq!(live["peers"][1]["name"], "beta", "{live}");
    assert_eq!(live["peers"][1]["counts"]["running"], 2, "{live}");
    let procs = get_json(port, "/v1/peers/alpha/processes");
    let names: Vec<&str> = procs
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["web", "worker"], "{procs}");

    // A change on the peer, made there, shows without a reload.
    alpha.ok(&["stop", "worker"]);
    b.wait(
        "alpha's worker to show as stopped",
        SEE,
        &format!(
            "{} === 'stopped' && document.querySelector('section.peer[data-peer=\"alpha\"] .peer-health').textContent.includes('1 stopped')",
            peer_cell("alpha", "worker", "state")
        ),
    );

    // Restart on the page: done by the peer (the admin token may).
    let before = alpha.pid("web");
    b.click(
        "section.peer[data-peer=\"alpha\"] tr[data-name=\"web\"] button[data-peer-act=\"restart\"]",
    );
    b.wait(
        "the restart's result on alpha's row",
        SEE,
        "document.querySelector('section.peer[data-peer=\"alpha\"] tr[data-name=\"web\"] output.result').textContent === 'restart: done'",
    );
    crate::harness::wait_until("web to run again on alpha", SEE, || {
        alpha.state("web") == "running" && alpha.pid("web") != before
    });

    // On beta the token may only look: beta refuses, and says so.
    let beta_pid = beta.pid("web");
    b.click(
        "section.peer[data-peer=\"beta\"] tr[data-name=\"web\"] button[data-peer-act=\"restart\"]",
    );
    b.wait(
        "beta's refusal on its row",
        SEE,
        "(() => { const o = document.querySelector('section.peer[data-peer=\"beta\"] tr[data-name=\"web\"] output.result'); \
         return o.className.includes('bad') && /not allowed|denied|may not/i.test(o.textContent); })()",
    );
    assert_eq!(beta.pid("web"), beta_pid, "beta's web was not touched");

    // alpha goes away: unreachable, with since when; beta is unaffected.
    alpha.signal_and_wait(nix::sys::signal::Signal::SIGTERM, SEE);
    b.wait(
        "alpha to show as unreachable",
        SEE,
        "document.querySelector('section.peer[data-peer=\"alpha\"] .peer-health').textContent.startsWith('unreachable since ')",
    );
    assert!(health(&mut b, "beta").starts_with("reachable"));
    b.screenshot("peers-one-unreachable");

    // It comes back, and the page reconnects by itself.
    alpha.start_again();
    alpha.wait_for_running(&["web", "worker"]);
    b.wait(
        "alpha to be reachable again",
        SEE,
        &format!(
            "document.querySelector('section.peer[data-peer=\"alpha\"] .peer-health').textContent.startsWith('reachable') && {} === 'running'",
            peer_cell("alpha", "worker", "state")
        ),
    );

    // A process added on the peer at run time gets a row tagged `added`,
    // as on the peer's own page; the file's processes stay untagged.
    alpha.ok(&["add", "extra", "--", "sleep", "1000"]);
    b.wait(
        "alpha's added process, tagged",
        SEE,
        &format!("{} === 'added'", peer_cell("alpha", "extra", "origin")),
    );
    assert_eq!(b.eval(&peer_cell("alpha", "web", "origin")), "");
}

#[test]
fn a_reload_adds_and_removes_peers_and_a_peer_that_cannot_load_fails_it() {
    let env = TestEnv::new("");
    let peer = |name: &str, port: u16| {
        format!("[[peer]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{port}\"\ntoken = \"t\"\n\n")
    };
    let local = "[process.local]\ncommand = [\"sleep\", \"1000\"]\nstop.timeout = \"2s\"\n";
    fs::write(
        &env.config,
        format!("{}{}{local}", peer("one", 1), peer("two", 2)),
    )
    .expect("write");
    let home = Daemon::start_in(env);
    let port = tcp_to_unix(&home.socket);
    let names = |port: u16| -> Vec<String> {
        get_json(port, "/v1/peers")["peers"]
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(names(port), ["one", "two"]);

    fs::write(
        &home.config,
        format!("{}{}{local}", peer("three", 3), peer("one", 1)),
    )
    .expect("write");
    home.ok(&["reload"]);
    assert_eq!(names(port), ["three", "one"]);

    // A CA that cannot be read fails the reload, names the peer, changes nothing.
    fs::write(
        &home.config,
        format!("[[peer]]\nname = \"four\"\nurl = \"https://127.0.0.1:4\"\nca = \"missing-ca.pem\"\n\n{local}"),
    )
    .expect("write");
    let r = home.tend(&["reload"]);
    assert_ne!(r.code, Some(0), "{}", r.stdout);
    assert!(r.stderr.contains("[[peer]] four"), "{}", r.stderr);
    assert_eq!(names(port), ["three", "one"]);
}
