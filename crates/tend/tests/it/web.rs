//! The web pages in a real Chromium: tend's dashboard against a real daemon,
//! and Supervisor's pages side by side with the real supervisord's for the
//! same config. Screenshots of each page go to `target/browser-artifacts/`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::browser::{Browser, tcp_to_unix};
use crate::harness::Daemon;
use crate::supervisorctl::{Kind, Pair, normalize, venv};

const SEE: Duration = Duration::from_secs(20);

const DASHBOARD: &str = r#"
[process.web]
command = ["sleep", "1000"]
stop.timeout = "2s"

[process.db]
command = ["sleep", "1000"]
stop.timeout = "2s"

[process.api]
command = ["sleep", "1000"]
depends_on = { db = "started" }
stop.timeout = "2s"

[process.flaky]
command = ["sh", "-c", "sleep 0.2; exit 3"]
autostart = false
backoff = { initial = "100ms", max = "200ms", min_uptime = "1s" }

[process.talker]
command = ["sh", "-c", "trap 'echo ping-$$$$-$(date +%s%N)' HUP; echo talker-up; while :; do sleep 0.05; done"]
stop.timeout = "2s"

[group.front]
processes = ["web", "api"]

[task.tick]
command = ["true"]
every = "1h"
"#;

fn dashboard() -> Option<(Daemon, Browser, u16)> {
    let mut browser = Browser::launch()?;
    let mut d = Daemon::start(DASHBOARD);
    d.wait_for("web, api and talker to run", SEE, |d| {
        ["web", "api", "talker"]
            .iter()
            .all(|n| d.state(n) == "running")
    });
    let port = tcp_to_unix(&d.socket);
    browser.goto(&format!("http://127.0.0.1:{port}/ui/"));
    browser.wait(
        "the page to connect to its event stream",
        SEE,
        "window.tend && window.tend.ready && document.querySelector('#conn').textContent === 'live'",
    );
    Some((d, browser, port))
}

fn row_state(b: &mut Browser, name: &str) -> String {
    b.eval(&format!(
        "document.querySelector('tr.proc[data-name=\"{name}\"] [data-k=state]').textContent"
    ))
    .as_str()
    .unwrap_or_default()
    .to_string()
}

#[test]
fn the_dashboard_stops_a_process_and_shows_it_stopped() {
    let Some((d, mut b, port)) = dashboard() else {
        return;
    };
    // A tend.toml's `/` is the dashboard; Supervisor's page stays at /index.html.
    let root = crate::browser::http_get(port, "/");
    assert!(root.starts_with("HTTP/1.1 302"), "{root}");
    assert!(
        root.to_ascii_lowercase().contains("location: /ui/"),
        "{root}"
    );
    let index = crate::browser::http_get(port, "/index.html");
    assert!(index.contains("Supervisor Status"), "{index}");
    b.screenshot("dashboard");
    // CPU and memory, read when the page opened: from web's cgroup when it
    // has one (the cell says so on hover), from /proc otherwise.
    let from = if d.log_text().contains("processes run in cgroups under") {
        "from its cgroup (1 process)"
    } else {
        "from its main process (/proc)"
    };
    b.wait(
        "web's memory to show, and where it was read",
        SEE,
        &format!(
            "(() => {{ const c = document.querySelector('tr.proc[data-name=\"web\"] [data-k=mem]'); \
             return /[0-9.]+ (B|KiB|MiB)/.test(c.textContent) && c.title.endsWith('{from}'); }})()"
        ),
    );
    // What the page shows is the daemon's status.
    assert_eq!(row_state(&mut b, "web"), "running");
    let pid = d.pid("web");
    let shown =
        b.eval("document.querySelector('tr.proc[data-name=\"web\"] [data-k=pid]').textContent");
    assert_eq!(shown, json!(pid.to_string()));
    // Groups and tasks are there.
    assert_eq!(
        b.eval("!!document.querySelector('tbody[data-group=\"front\"] tr.grp')"),
        json!(true)
    );
    assert_eq!(
        b.eval("!!document.querySelector('tr[data-task=\"tick\"]')"),
        json!(true)
    );
    assert_eq!(
        b.eval("document.querySelector('#edges tr[data-from=\"api\"]').dataset.to"),
        json!("db")
    );
    b.click("tr.proc[data-name=\"web\"] button[data-act=\"stop\"]");
    b.wait(
        "web to show as stopped, with the result where it was asked",
        SEE,
        "document.querySelector('tr.proc[data-name=\"web\"] [data-k=state]').textContent === 'stopped' \
         && document.querySelector('tr.proc[data-name=\"web\"] output.result').textContent === 'stop: done'",
    );
    assert_eq!(d.state("web"), "stopped", "tend status agrees");
    b.screenshot("dashboard-stopped");
    // And back, from the page too.
    b.click("tr.proc[data-name=\"web\"] button[data-act=\"start\"]");
    b.wait(
        "web to run again",
        SEE,
        "document.querySelector('tr.proc[data-name=\"web\"] [data-k=state]').textContent === 'running'",
    );
    assert_eq!(d.state("web"), "running");
}

#[test]
fn the_dashboard_counts_a_crash_loops_restarts_live() {
    let Some((d, mut b, _)) = dashboard() else {
        return;
    };
    let before = b.eval("window.tend.events").as_u64().unwrap_or(0);
    // Started from the command line: the page hears of it through the stream only.
    let _ = d.tend(&["start", "flaky"]);
    b.wait(
        "the restarts of flaky to count up in the page",
        SEE,
        "Number(document.querySelector('tr.proc[data-name=\"flaky\"] [data-k=restarts]').textContent) >= 3",
    );
    let after = b.eval("window.tend.events").as_u64().unwrap_or(0);
    assert!(after > before, "events arrived: {before} -> {after}");
    let restarts = d.proc("flaky")["restarts"].as_u64().unwrap_or(0);
    assert!(restarts >= 3, "tend status agrees: {restarts}");
    b.screenshot("dashboard-crash-loop");
    d.ok(&["stop", "flaky"]);
}

#[test]
fn the_dashboard_tags_a_process_added_at_run_time() {
    let Some((d, mut b, port)) = dashboard() else {
        return;
    };
    // Added from the command line: the page hears of it through the stream
    // only, and makes its row from the event.
    d.ok(&["add", "extra", "--", "sleep", "1000"]);
    let tag = "document.querySelector('tr.proc[data-name=\"extra\"] [data-k=origin]')";
    b.wait(
        "the new row, tagged added",
        SEE,
        &format!(
            "!!{tag} && {tag}.textContent === 'added' && getComputedStyle({tag}).display !== 'none'"
        ),
    );
    assert_eq!(d.proc("extra")["origin"], "added", "tend status agrees");
    // The file's processes have the tag's place, empty and not shown.
    let web = "document.querySelector('tr.proc[data-name=\"web\"] [data-k=origin]')";
    assert_eq!(
        b.eval(&format!(
            "[{web}.textContent, getComputedStyle({web}).display]"
        )),
        json!(["", "none"])
    );
    // It stays tagged as it starts (each event's status says so), and on a
    // page loaded afresh.
    d.ok(&["start", "extra"]);
    b.wait(
        "extra to run, still tagged",
        SEE,
        &format!(
            "document.querySelector('tr.proc[data-name=\"extra\"] [data-k=state]').textContent === 'running' \
             && {tag}.textContent === 'added'"
        ),
    );
    b.screenshot("dashboard-added");
    b.goto(&format!("http://127.0.0.1:{port}/ui/"));
    b.wait(
        "the reloaded page to connect, extra still tagged",
        SEE,
        &format!(
            "window.tend && window.tend.ready && document.querySelector('#conn').textContent === 'live' \
             && !!{tag} && {tag}.textContent === 'added'"
        ),
    );
    d.ok(&["remove", "extra"]);
}

#[test]
fn the_dashboard_log_view_shows_a_new_line_as_it_comes() {
    let Some((d, mut b, _)) = dashboard() else {
        return;
    };
    b.click("a[data-logs=\"talker\"]");
    b.wait(
        "the log view to show talker's first line",
        SEE,
        "document.querySelector('#log').textContent.includes('talker-up')",
    );
    assert_eq!(
        b.eval("document.querySelector('#log-download').hidden"),
        json!(false)
    );
    d.ok(&["signal", "HUP", "talker"]);
    b.wait(
        "a new line to arrive in the open log",
        SEE,
        "document.querySelector('#log').textContent.includes('ping-')",
    );
    // Search keeps only matching lines, and marks the match.
    b.eval("(() => { const s = document.querySelector('#log-search'); s.value = 'ping'; s.dispatchEvent(new Event('input')); })()");
    assert_eq!(
        b.eval("document.querySelectorAll('#log mark').length > 0"),
        json!(true)
    );
    assert_eq!(
        b.eval("document.querySelector('#log').textContent.includes('talker-up')"),
        json!(false)
    );
    b.screenshot("dashboard-logs");
    // A phone, in the dark.
    b.viewport(Some((390, 844)));
    b.dark(true);
    b.eval("window.scrollTo(0, 0)");
    b.screenshot("dashboard-phone-dark");
}

// --- Supervisor's pages, side by side with supervisord ------------------------

const SUPERVISOR_CONF: &str = r#"
[unix_http_server]
file=%(here)s/supervisor.sock

[inet_http_server]
port=127.0.0.1:{PORT}
username=admin
password=secret

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s/logs

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:web]
command=sh -c 'echo web says hello; exec sleep 1000'
startsecs=0
stopwaitsecs=2

[program:idle]
command=sleep 1000
autostart=false
startsecs=0

[program:bad]
command=sh -c 'exit 3'
startretries=0
startsecs=1

[group:pool]
programs=w1,w2

[program:w1]
command=sleep 1000
startsecs=0
stopwaitsecs=2

[program:w2]
command=sleep 1000
autostart=false
startsecs=0
"#;

/// What a person sees on the status page, read from the DOM.
const SEE_STATUS: &str = r#"(() => {
  const vis = (e) => e && e.offsetParent !== null && getComputedStyle(e).visibility !== 'hidden';
  const text = (e) => (e ? e.textContent.trim() : null);
  const msg = document.querySelector('.status_msg');
  const rows = Array.from(document.querySelectorAll('table tbody tr')).map((tr) => {
    const td = tr.querySelectorAll('td');
    const name = td[2].querySelector('a');
    return {
      state: text(td[0]), state_class: td[0].querySelector('span').className,
      description: text(td[1]), name: text(name), name_href: name.getAttribute('href'),
      name_target: name.getAttribute('target'),
      actions: Array.from(td[3].querySelectorAll('a')).filter(vis).map((a) => [text(a), a.getAttribute('href'), a.getAttribute('target')]),
    };
  });
  const buttons = Array.from(document.querySelectorAll('#buttons a')).map((a) => [text(a), a.getAttribute('href')]);
  return { title: document.title, message: vis(msg) ? text(msg) : null, buttons, rows,
           empty: document.querySelector('table') ? null : document.body.textContent.includes('No programs to manage') };
})()"#;

/// What a person sees on the tail page.
const SEE_TAIL: &str = r#"(() => {
  const a = document.querySelector('a[href^="tail.html"]');
  return { title: document.title, text: document.querySelector('pre').textContent,
           refresh: a ? a.getAttribute('href') : null,
           button: a ? a.querySelector('input').value : null };
})()"#;

fn masked(v: &Value) -> Value {
    match v {
        Value::String(s) => {
            let mut s = normalize(s);
            // `time.ctime()` in the messages of the page-wide actions.
            if let Some(i) = s.find(" at ")
                && (s.starts_with("All") || s.starts_with("Page"))
            {
                s.truncate(i);
                s.push_str(" at {TIME}");
            }
            Value::String(s)
        }
        Value::Array(a) => Value::Array(a.iter().map(masked).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), masked(v))).collect()),
        v => v.clone(),
    }
}

struct Sides {
    pair: Pair,
    browsers: BTreeMap<&'static str, (Browser, u16)>,
    diffs: Vec<String>,
}

impl Sides {
    fn url(&self, side: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.browsers[side].1)
    }

    /// Loads `path` on both sides, waits for `ready`, and compares what `see` reads.
    fn compare(&mut self, what: &str, path: &str, see: &str, ready: &str) -> Value {
        let mut seen = Vec::new();
        for side in ["supervisord", "tend"] {
            let url = self.url(side, path);
            let b = &mut self.browsers.get_mut(side).expect("side").0;
            b.goto(&url);
            b.wait(&format!("{side}: {what}"), SEE, ready);
            let shot = format!(
                "supervisor-{}-{side}",
                what.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
            );
            b.screenshot(&shot);
            seen.push(masked(&b.eval(see)));
        }
        if seen[0] != seen[1] {
            self.diffs.push(format!(
                "{what} ({path}):\n  supervisord: {}\n  tend:        {}",
                seen[0], seen[1]
            ));
        }
        seen.swap_remove(0)
    }
}

/// Every process has settled: nothing starting or stopping.
const SETTLED: &str = "document.readyState === 'complete' && !/\\b(starting|stopping|backoff)\\b/.test(document.body.textContent)";

#[test]
fn supervisors_pages_match_supervisord_page_by_page() {
    let Some(venv) = venv() else {
        return;
    };
    let mut browsers = BTreeMap::new();
    for side in ["supervisord", "tend"] {
        let Some(mut b) = Browser::launch() else {
            return;
        };
        // The listener's credentials (admin:secret): with them, supervisord
        // and tend both let the holder clear logs.
        b.headers(json!({"Authorization": "Basic YWRtaW46c2VjcmV0"}));
        browsers.insert(side, (b, 0));
    }
    let pair = Pair::start(venv, SUPERVISOR_CONF, &[]);
    let mut s = Sides {
        browsers,
        diffs: Vec::new(),
        pair,
    };
    s.pair
        .wait_states(&[("web", "RUNNING"), ("bad", "FATAL"), ("pool:w1", "RUNNING")]);
    for (side, kind) in [("supervisord", Kind::Supervisord), ("tend", Kind::Tend)] {
        let port = s.pair.side(kind).port;
        s.browsers.get_mut(side).expect("side").1 = port;
    }
    let first = s.compare("status", "index.html", SEE_STATUS, SETTLED);
    assert_eq!(first["title"], "Supervisor Status");
    assert_eq!(first["rows"].as_array().map(Vec::len), Some(5), "{first}");
    s.compare("root", "", SEE_STATUS, SETTLED);
    // The stylesheet and images the page loads are there.
    for side in ["supervisord", "tend"] {
        let b = &mut s.browsers.get_mut(side).expect("side").0;
        let broken = b.eval(
            "Promise.all(Array.from(document.images).map((i) => i.decode().then(() => null, () => i.src)))\
             .then((r) => r.filter(Boolean))",
        );
        assert_eq!(broken, json!([]), "{side}: images that do not load");
        let sheets = b
            .eval("document.styleSheets.length > 0 && document.styleSheets[0].cssRules.length > 0");
        assert_eq!(sheets, json!(true), "{side}: the stylesheet loads");
    }
    // Every action link of every row, as a person would follow it (in a
    // state both sides reach), then the page it lands on.
    let links = [
        ("stop web", "index.html?processname=web&action=stop"),
        ("start web", "index.html?processname=web&action=start"),
        ("restart web", "index.html?processname=web&action=restart"),
        (
            "clear web's log",
            "index.html?processname=web&action=clearlog",
        ),
        ("start idle", "index.html?processname=idle&action=start"),
        (
            "start idle again",
            "index.html?processname=idle&action=start",
        ),
        (
            "stop pool:w1",
            "index.html?processname=pool%3Aw1&action=stop",
        ),
        (
            "stop a stopped one",
            "index.html?processname=pool%3Aw1&action=stop",
        ),
        (
            "start pool:w2",
            "index.html?processname=pool%3Aw2&action=start",
        ),
        ("start bad", "index.html?processname=bad&action=start"),
        (
            "an unknown process",
            "index.html?processname=nope&action=start",
        ),
        (
            "a whole group",
            "index.html?processname=pool%3A*&action=stop",
        ),
        ("refresh", "index.html?action=refresh"),
        ("stop all", "index.html?action=stopall"),
        ("restart all", "index.html?action=restartall"),
    ];
    for (what, path) in links {
        let seen = s.compare(
            what,
            path,
            SEE_STATUS,
            // The page after an action is static: one drawn while a
            // process was still in a passing state (supervisord's `bad` in
            // BACKOFF on a loaded machine) is read again, as a person would
            // press Refresh, until it has settled. Only the message page is
            // reloaded, never the action.
            &format!(
                "location.search.startsWith('?message=') && ({SETTLED} || \
                 (window.__again || (window.__again = setTimeout(() => location.reload(), 500)), false))"
            ),
        );
        assert!(
            seen["message"].is_string(),
            "{what}: supervisord shows a message: {seen}"
        );
    }
    // The tail page, from the name link, and with a bigger limit.
    s.pair.wait_states(&[("web", "RUNNING")]);
    let tail = s.compare(
        "tail",
        "tail.html?processname=web",
        SEE_TAIL,
        "!!document.querySelector('pre')",
    );
    assert!(
        tail["text"]
            .as_str()
            .unwrap_or("")
            .contains("web says hello"),
        "{tail}"
    );
    s.compare(
        "tail limit",
        "tail.html?processname=web&limit=4096",
        SEE_TAIL,
        "!!document.querySelector('pre')",
    );
    s.compare(
        "tail unknown",
        "tail.html?processname=nope",
        SEE_TAIL,
        "!!document.querySelector('pre')",
    );
    s.compare(
        "tail nothing",
        "tail.html",
        SEE_TAIL,
        "!!document.querySelector('pre')",
    );
    let Sides { pair, diffs, .. } = s;
    if !diffs.is_empty() {
        drop(pair);
        panic!(
            "{} page(s) differ between supervisord and tend:\n\n{}",
            diffs.len(),
            diffs.join("\n\n")
        );
    }
    pair.finish();
}
