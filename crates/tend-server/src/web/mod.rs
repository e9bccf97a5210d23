//! tend's dashboard at `/ui/`: one server-rendered page (every process and
//! group, the dependency graph, the tasks, a log view) that a small script of
//! our own keeps current from `GET /v1/events` and drives through the
//! documented JSON API. No build step, no CDN: the page, the script and the
//! stylesheet are embedded in the binary.
//!
//! The page is rendered from the event hub's snapshot and carries its event
//! id, so the script continues the stream exactly after what the page shows
//! (`/v1/events?last_event_id=ID`): no second read, no gap.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use tend_core::{ExitInfo, Name, ProcessStatus};

use crate::Daemon;
use crate::caller::{Caller, MayByName, Right};
use crate::html::{escape, script_json};
use crate::json::ApiError;

const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
const ICON: &str = include_str!("icon.svg");

/// The dashboard's routes: `/ui/` and its assets.
pub fn router(daemon: Daemon) -> Router {
    Router::new()
        .route("/ui", get(to_ui))
        .route("/ui/", get(page))
        .route("/ui/app.js", get(js))
        .route("/ui/app.css", get(css))
        .route("/ui/icon.svg", get(icon))
        .with_state(daemon)
}

async fn to_ui() -> Response {
    let mut r = StatusCode::FOUND.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Assets change with the binary; a short cache keeps an upgrade visible.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

/// `1:02:03`, `3d 4:05:06`.
fn duration(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}:{m:02}:{s:02}")
    } else {
        format!("{h}:{m:02}:{s:02}")
    }
}

fn exit_text(e: &Option<ExitInfo>) -> String {
    match e {
        Some(ExitInfo::Code(c)) => format!("code {c}"),
        Some(ExitInfo::Signal(s)) => format!("SIG{s}"),
        None => String::new(),
    }
}

fn health_text(s: &ProcessStatus) -> String {
    let h = serde_json::to_value(s.health)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let ready = if s.ready { "ready" } else { "not ready" };
    if s.state.is_up() && h == "unknown" {
        ready.to_string()
    } else if s.state.is_up() {
        format!("{ready} · {h}")
    } else {
        String::new()
    }
}

/// The per-process data the script needs and the table does not show.
#[derive(serde::Serialize)]
struct PageData<'a> {
    last_event_id: &'a str,
    snapshot_time: Timestamp,
    processes: &'a [&'a ProcessStatus],
    stdin: Vec<&'a str>,
    rights: BTreeMap<&'a str, Vec<&'static str>>,
}

fn rights_of(caller: &Caller, s: &ProcessStatus) -> Vec<&'static str> {
    [
        (Right::Control, "control"),
        (Right::Control, "signal"),
        (Right::Stdin, "stdin"),
        (Right::Logs, "logs"),
    ]
    .into_iter()
    .filter(|(r, _)| caller.may_str(*r, s.name.as_str(), s.group.as_str()))
    .map(|(_, n)| n)
    .collect()
}

/// `GET /ui/`
async fn page(State(st): State<Daemon>, caller: Caller) -> Result<Response, ApiError> {
    let hub = st.events().await?;
    let snap = hub.snapshot();
    let visible: Vec<&ProcessStatus> = snap
        .processes
        .iter()
        .filter(|s| caller.may_str(Right::View, s.name.as_str(), s.group.as_str()))
        .collect();
    let stdin_names: HashSet<String> = st.config().with_procs(|procs| {
        procs
            .values()
            .filter(|p| p.spec.stdin_pipe)
            .map(|p| p.spec.name.to_string())
            .collect()
    });
    let edges = st.config().with_procs(|procs| {
        let mut v = Vec::new();
        for (name, pc) in procs {
            for d in &pc.spec.depends_on {
                v.push((
                    name.clone(),
                    d.name.clone(),
                    d.condition.as_str(),
                    d.restart,
                ));
            }
        }
        v
    });
    let seen: HashSet<&Name> = visible.iter().map(|s| &s.name).collect();
    let edges: Vec<_> = edges
        .into_iter()
        .filter(|(a, b, _, _)| seen.contains(a) && seen.contains(b))
        .collect();
    let data = PageData {
        last_event_id: &snap.id,
        snapshot_time: snap.time,
        processes: &visible,
        stdin: visible
            .iter()
            .filter(|s| stdin_names.contains(s.name.as_str()))
            .map(|s| s.name.as_str())
            .collect(),
        rights: visible
            .iter()
            .map(|s| (s.name.as_str(), rights_of(&caller, s)))
            .collect(),
    };
    let mut h = String::with_capacity(2048 + visible.len() * 900);
    h.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n<title>tend</title>\n\
         <link rel=\"icon\" href=\"/ui/icon.svg\" type=\"image/svg+xml\">\n\
         <link rel=\"stylesheet\" href=\"/ui/app.css\">\n\
         <script src=\"/ui/app.js\" defer></script>\n</head>\n",
    );
    let _ = write!(
        h,
        "<body data-last-event-id=\"{}\">\n<a class=\"skip\" href=\"#procs\">Skip to the processes</a>\n\
         <header class=\"top\"><h1><img src=\"/ui/icon.svg\" alt=\"\" width=\"22\" height=\"22\"> tend</h1>\
         <span id=\"conn\" class=\"conn\" role=\"status\" aria-live=\"polite\">connecting…</span>\
         <nav><a href=\"#procs\">Processes</a> {peers_link}<a href=\"#graph\">Dependencies</a> <a href=\"#tasks\">Tasks</a> \
         <a href=\"#logs\">Logs</a> <a href=\"/index.html\">Supervisor view</a></nav></header>\n<main>\n",
        escape(&snap.id),
        peers_link = if shows_peers(&st, &caller) {
            "<a href=\"#peers\">Peers</a> "
        } else {
            ""
        }
    );
    toolbar(&mut h);
    table(&mut h, &visible, &caller, &stdin_names);
    peers(&mut h, &st, &caller);
    graph(&mut h, &edges);
    tasks(&mut h, &st, &snap.processes, &caller);
    logs(&mut h, &visible);
    let _ = write!(
        h,
        "</main>\n<script type=\"application/json\" id=\"data\">{}</script>\n</body>\n</html>\n",
        script_json(&data)
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        h,
    )
        .into_response())
}

fn toolbar(h: &mut String) {
    h.push_str(
        "<section id=\"procs\" aria-labelledby=\"procs-h\">\n<h2 id=\"procs-h\">Processes</h2>\n\
         <div class=\"toolbar\" role=\"toolbar\" aria-label=\"Actions\">\
         <input type=\"search\" id=\"filter\" placeholder=\"Filter processes (/)\" aria-label=\"Filter processes\">\
         <span class=\"group-of-buttons\"><span class=\"lbl\">All:</span>\
         <button data-act=\"start\" data-scope=\"all\">Start all</button>\
         <button data-act=\"stop\" data-scope=\"all\">Stop all</button>\
         <button data-act=\"restart\" data-scope=\"all\">Restart all</button></span>\
         <span class=\"group-of-buttons\"><span class=\"lbl\">Selected (<span id=\"nsel\">0</span>):</span>\
         <button data-act=\"start\" data-scope=\"sel\">Start</button>\
         <button data-act=\"stop\" data-scope=\"sel\">Stop</button>\
         <button data-act=\"restart\" data-scope=\"sel\">Restart</button>\
         <select id=\"selsig\" aria-label=\"Signal for the selected processes\">\
         <option>HUP</option><option>TERM</option><option>INT</option><option>USR1</option><option>USR2</option><option>KILL</option></select>\
         <button data-act=\"signal\" data-scope=\"sel\">Signal</button></span>\
         <span class=\"group-of-buttons\"><button id=\"usage\" title=\"Read CPU and memory now\">↻ CPU/mem</button>\
         <label><input type=\"checkbox\" id=\"usage-auto\"> every 5 s</label></span>\
         <output id=\"result-all\" class=\"result\" aria-live=\"polite\"></output></div>\n",
    );
}

fn table(h: &mut String, rows: &[&ProcessStatus], caller: &Caller, stdin: &HashSet<String>) {
    // Groups in the order their first process comes, members in status order.
    let mut groups: Vec<(&Name, Vec<&ProcessStatus>)> = Vec::new();
    for s in rows {
        match groups.iter_mut().find(|(g, _)| *g == &s.group) {
            Some((_, v)) => v.push(s),
            None => groups.push((&s.group, vec![s])),
        }
    }
    h.push_str(
        "<div class=\"scroll\"><table id=\"table\">\n<colgroup><col class=\"w-sel\"><col class=\"w-name\">\
         <col class=\"w-state\"><col class=\"w-pid\"><col class=\"w-up\"><col class=\"w-rs\"><col class=\"w-exit\">\
         <col class=\"w-health\"><col class=\"w-next\"><col class=\"w-cpu\"><col class=\"w-mem\"><col class=\"w-acts\">\
         <col class=\"w-res\"></colgroup>\n<thead><tr>\
         <th class=\"c-sel\"><input type=\"checkbox\" id=\"selall\" aria-label=\"Select every process\"></th>\
         <th>Name</th><th>State</th><th class=\"n\">PID</th><th class=\"n\">Uptime</th>\
         <th class=\"n\">Restarts</th><th>Last exit</th><th>Ready · health</th><th>Next restart</th>\
         <th class=\"n\">CPU</th><th class=\"n\">Memory</th><th>Actions</th><th>Result</th></tr></thead>\n",
    );
    if rows.is_empty() {
        h.push_str(
            "<tbody><tr class=\"empty\"><td colspan=\"13\">No processes.</td></tr></tbody>\n",
        );
    }
    for (group, members) in &groups {
        let g = escape(group.as_str());
        let _ = writeln!(h, "<tbody data-group=\"{g}\">");
        let solo = members.len() == 1 && members[0].name == **group;
        if !solo {
            let _ = writeln!(
                h,
                "<tr class=\"grp\"><td class=\"c-sel\"><input type=\"checkbox\" class=\"gsel\" aria-label=\"Select group {g}\"></td>\
                 <th colspan=\"10\" scope=\"rowgroup\">group {g} <span class=\"muted\">({} process{})</span></th>\
                 <td class=\"acts\"><button data-act=\"start\" data-scope=\"group\">Start</button>\
                 <button data-act=\"stop\" data-scope=\"group\">Stop</button>\
                 <button data-act=\"restart\" data-scope=\"group\">Restart</button></td>\
                 <td><output class=\"result\" aria-live=\"polite\"></output></td></tr>",
                members.len(),
                if members.len() == 1 { "" } else { "es" }
            );
        }
        for s in members {
            row(h, s, caller, stdin.contains(s.name.as_str()));
        }
        h.push_str("</tbody>\n");
    }
    h.push_str("</table></div>\n</section>\n");
}

fn row(h: &mut String, s: &ProcessStatus, caller: &Caller, has_stdin: bool) {
    let n = escape(s.name.as_str());
    let state = s.state.as_str();
    let uptime = s.uptime_ms.map(duration).unwrap_or_default();
    let next = s
        .next_restart_in_ms
        .map(|ms| format!("in {:.1} s", ms as f64 / 1000.0))
        .unwrap_or_default();
    let pid = s
        .pid
        .filter(|_| s.state.is_up())
        .map(|p| p.to_string())
        .unwrap_or_default();
    let err = s
        .error
        .as_deref()
        .or(s.waiting_for.as_deref())
        .unwrap_or("");
    let origin = origin_text(s.origin);
    let _ = write!(
        h,
        "<tr class=\"proc\" data-name=\"{n}\" data-state=\"{state}\">\
         <td class=\"c-sel\"><input type=\"checkbox\" class=\"sel\" aria-label=\"Select {n}\"></td>\
         <th scope=\"row\" class=\"name\"><a href=\"#logs\" data-logs=\"{n}\" title=\"Show the output of {n}\">{n}</a>\
         <span class=\"tag\" data-k=\"origin\" title=\"{ORIGIN_TITLE}\">{origin}</span>\
         <div class=\"err muted\" data-k=\"error\">{}</div></th>\
         <td><span class=\"st st-{state}\" data-k=\"state\">{state}</span></td>\
         <td class=\"n\" data-k=\"pid\">{pid}</td><td class=\"n\" data-k=\"uptime\">{uptime}</td>\
         <td class=\"n\" data-k=\"restarts\">{}</td><td data-k=\"exit\">{}</td>\
         <td data-k=\"health\">{}</td><td data-k=\"next\">{next}</td>\
         <td class=\"n\" data-k=\"cpu\"></td><td class=\"n\" data-k=\"mem\"></td><td class=\"acts\">",
        escape(err),
        s.restarts,
        escape(&exit_text(&s.last_exit)),
        escape(&health_text(s)),
    );
    let (name, group) = (s.name.as_str(), s.group.as_str());
    if caller.may_str(Right::Control, name, group) {
        h.push_str(
            "<button data-act=\"start\">Start</button><button data-act=\"stop\">Stop</button>\
             <button data-act=\"restart\">Restart</button>",
        );
    }
    if caller.may_str(Right::Control, name, group) {
        h.push_str("<button data-act=\"signal\" title=\"Send the signal chosen for the selection (HUP by default)\">Signal</button>");
    }
    if has_stdin && caller.may_str(Right::Stdin, name, group) {
        h.push_str("<button data-act=\"stdin\">Stdin…</button>");
    }
    h.push_str("</td><td><output class=\"result\" aria-live=\"polite\"></output></td></tr>\n");
}

/// What a row says of a process added at run time (`tend add`, not in the
/// config file): a restart of the daemon forgets it. Nothing for the file's.
fn origin_text(origin: tend_core::Origin) -> &'static str {
    match origin {
        tend_core::Origin::Added => "added",
        tend_core::Origin::Config => "",
    }
}

/// The tooltip of that tag (app.js has the same text for rows it adds).
const ORIGIN_TITLE: &str =
    "Added at run time, not in the config file: a restart of the daemon forgets it";

fn graph(h: &mut String, edges: &[(Name, Name, &str, bool)]) {
    h.push_str(
        "<section id=\"graph\" aria-labelledby=\"graph-h\">\n<h2 id=\"graph-h\">Dependencies</h2>\n",
    );
    if edges.is_empty() {
        h.push_str("<p class=\"muted\">No process depends on another.</p>\n");
    } else {
        h.push_str("<div id=\"graph-svg\" aria-hidden=\"true\"></div>\n<div class=\"scroll\"><table id=\"edges\"><thead><tr><th>Process</th><th>depends on</th><th>condition</th><th>restarts with it</th></tr></thead><tbody>\n");
        for (from, to, cond, restart) in edges {
            let _ = writeln!(
                h,
                "<tr data-from=\"{f}\" data-to=\"{t}\"><td>{f}</td><td>{t}</td><td>{cond}</td><td>{}</td></tr>",
                if *restart { "yes" } else { "no" },
                f = escape(from.as_str()),
                t = escape(to.as_str()),
            );
        }
        h.push_str("</tbody></table></div>\n");
    }
    h.push_str("</section>\n");
}

fn tasks(h: &mut String, st: &Daemon, all: &[ProcessStatus], caller: &Caller) {
    h.push_str(
        "<section id=\"tasks\" aria-labelledby=\"tasks-h\">\n<h2 id=\"tasks-h\">Tasks</h2>\n",
    );
    let tasks = st.tasks();
    if tasks.is_empty() {
        h.push_str("<p class=\"muted\">No tasks.</p>\n</section>\n");
        return;
    }
    let now = Timestamp::now();
    h.push_str("<div class=\"scroll\"><table id=\"tasklist\"><thead><tr><th>Task</th><th>State</th><th>Runs</th><th>Last run</th><th>Last exit</th><th>Next run</th></tr></thead><tbody>\n");
    for t in tasks {
        let Some(s) = all.iter().find(|s| s.name == t.name) else {
            continue;
        };
        if !caller.may_str(Right::View, s.name.as_str(), s.group.as_str()) {
            continue;
        }
        let mut runs = Vec::new();
        if let Some(e) = t.every {
            runs.push(format!(
                "every {}",
                duration(u64::try_from(e.as_millis()).unwrap_or(u64::MAX))
            ));
        }
        if let Some(c) = &t.cron {
            match c.time_zone().iana_name() {
                Some(tz) => runs.push(format!("cron {} ({tz})", c.expr())),
                None => runs.push(format!("cron {}", c.expr())),
            }
        }
        if let Some(sig) = &t.on_signal {
            runs.push(format!("on SIG{sig}"));
        }
        let time = |t: Option<Timestamp>| {
            t.map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "–".into())
        };
        let _ = writeln!(
            h,
            "<tr data-task=\"{n}\"><th scope=\"row\">{n}</th><td data-k=\"state\"><span class=\"st st-{st}\">{st}</span></td>\
             <td>{}</td><td data-k=\"last\">{}</td><td data-k=\"exit\">{}</td><td data-k=\"nextrun\" data-every=\"{}\"{}>{}</td></tr>",
            escape(&runs.join(", ")),
            time(s.started_at),
            escape(&exit_text(&s.last_exit)),
            t.every.map_or(0, |e| e.as_millis()),
            if t.cron.is_some() {
                " data-cron=\"1\""
            } else {
                ""
            },
            time(t.next_after(now)),
            n = escape(s.name.as_str()),
            st = s.state.as_str(),
        );
    }
    h.push_str("</tbody></table></div>\n</section>\n");
}

fn logs(h: &mut String, rows: &[&ProcessStatus]) {
    h.push_str(
        "<section id=\"logs\" aria-labelledby=\"logs-h\">\n<h2 id=\"logs-h\">Logs</h2>\n\
         <div class=\"toolbar\" role=\"toolbar\" aria-label=\"Log view\">\
         <label>Process <select id=\"log-name\"><option value=\"\">all (merged)</option>",
    );
    for s in rows {
        let n = escape(s.name.as_str());
        let _ = write!(h, "<option value=\"{n}\">{n}</option>");
    }
    h.push_str(
        "</select></label>\
         <label>Stream <select id=\"log-stream\"><option value=\"\">stdout + stderr</option>\
         <option value=\"stdout\">stdout</option><option value=\"stderr\">stderr</option></select></label>\
         <input type=\"search\" id=\"log-search\" placeholder=\"Search the log\" aria-label=\"Search the log\">\
         <button id=\"log-pause\" aria-pressed=\"false\">Pause</button>\
         <button id=\"log-earlier\">Load earlier</button>\
         <a id=\"log-download\" class=\"button\" href=\"#\" hidden>Download stdout</a>\
         <a id=\"log-download-err\" class=\"button\" href=\"#\" hidden>Download stderr</a>\
         <span id=\"log-info\" class=\"muted\" aria-live=\"polite\"></span></div>\n\
         <pre id=\"log\" tabindex=\"0\" aria-label=\"Output\"></pre>\n</section>\n",
    );
}

/// Whether the page has a section for the peers: there are some, and the
/// caller may see every process here.
fn shows_peers(st: &Daemon, caller: &Caller) -> bool {
    !st.peers().is_empty() && caller.may_everything(Right::View)
}

/// The peers' sections (`[[peer]]`), for a caller who may see every
/// process: one per peer, filled and kept current by the page from the
/// peer events of its stream.
fn peers(h: &mut String, st: &Daemon, caller: &Caller) {
    if !shows_peers(st, caller) {
        return;
    }
    let peers = st.peers();
    h.push_str(
        "<section id=\"peers\" aria-labelledby=\"peers-h\">\n<h2 id=\"peers-h\">Peers</h2>\n<div id=\"peer-list\">\n",
    );
    for v in peers.views() {
        let _ = writeln!(
            h,
            "<section class=\"peer\" data-peer=\"{n}\"><h3>{n}</h3><p class=\"peer-health muted\">connecting to {u}…</p></section>",
            n = escape(&v.name),
            u = escape(&v.url)
        );
    }
    h.push_str("</div>\n</section>\n");
}

#[cfg(test)]
mod tests;
