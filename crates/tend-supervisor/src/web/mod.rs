//! Supervisor's web UI at Supervisor's URLs: the status page (`/`,
//! `/index.html`) with its action links (`?processname=NAME&action=start|
//! stop|restart|clearlog`, `?action=refresh|stopall|restartall`) and
//! messages, the tail page (`/tail.html?processname=NAME`), `/ok.html`, and
//! the stylesheet and images the pages load.
//!
//! The behaviour is `supervisor/web.py`'s (4.3): the same rows in the same
//! order, the same states, descriptions, links, messages and redirects,
//! computed by the same XML-RPC methods the face already has, so the page
//! and `supervisorctl` can never disagree. The templates, stylesheet and
//! images are our own.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tend_server::api::percent_decode;
use tend_server::html::{escape, quote};

use crate::Face;
use crate::http::medusa_error;
use tend_server::access::Caller;

use crate::rpc::{Rpc, Verb, split_namespec};
use crate::xmlrpc::{Fault, Methods, Value};

const CSS: &str = include_str!("assets/supervisor.css");
const ICON: &[u8] = include_bytes!("assets/icon.png");
const LOGO: &[u8] = include_bytes!("assets/logo.png");

/// What `/` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootPage {
    /// Supervisor's status page (a supervisord.conf: bookmarks keep working).
    Status,
    /// A redirect to tend's dashboard at `/ui/` (a tend.toml).
    Dashboard,
}

/// How the pages are served.
#[derive(Debug, Clone, Copy)]
pub struct WebOptions {
    /// What `/` shows.
    pub root: RootPage,
    /// Whether this listener serves tend's dashboard (`/ui/`), which the
    /// pages then link to.
    pub dashboard: bool,
}

/// What every page shares.
#[derive(Clone)]
struct Shared {
    face: Arc<Face>,
    opts: WebOptions,
}

/// One request's view: Supervisor's methods as its caller may call them.
struct St {
    rpc: Rpc,
    opts: WebOptions,
}

impl St {
    fn new(shared: Shared, caller: Caller) -> St {
        St {
            rpc: Rpc::for_caller(shared.face, caller),
            opts: shared.opts,
        }
    }
}

/// Supervisor's pages, acting on `face`, each for its caller: a page shows
/// only what the caller may view, and an action link does only what it may
/// do (the refusal is the page's message, as a fault would be).
pub fn routes(face: Arc<Face>, opts: WebOptions) -> Router {
    let st = Shared { face, opts };
    Router::new()
        .route("/", get(root).post(root_post))
        .route("/index.html", get(index).post(index_post))
        .route("/tail.html", get(tail).post(tail_post))
        .route("/ok.html", get(ok).post(ok))
        .route("/stylesheets/supervisor.css", get(css))
        .route("/images/icon.png", get(icon))
        .route("/images/logo.png", get(logo))
        .with_state(st)
}

/// The form of a request as `web.py` builds it: the query's first value of
/// each key (blank values dropped, as `parse_qs` does), then the body's
/// pairs of a POST, each overriding.
fn form(query: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: String, v: String, first_wins: bool| {
        if v.is_empty() {
            return;
        }
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) if !first_wins => slot.1 = v,
            Some(_) => {}
            None => out.push((k, v)),
        }
    };
    let pairs = |s: &str| -> Vec<(String, String)> {
        s.split(['&', ';'])
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                Some((percent_decode(k)?, percent_decode(v)?))
            })
            .collect()
    };
    for (k, v) in pairs(query.unwrap_or_default()) {
        put(k, v, true);
    }
    for (k, v) in pairs(&String::from_utf8_lossy(body)) {
        put(k, v, false);
    }
    out
}

fn get_field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `web.py`'s headers against caching.
fn no_cache(h: &mut HeaderMap) {
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::EXPIRES,
        HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
    );
}

/// A page with Supervisor's headers (no caching).
fn page(body: String) -> Response {
    let mut r = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html;charset=utf-8"),
        )],
        body,
    )
        .into_response();
    no_cache(r.headers_mut());
    r
}

async fn root(st: State<Shared>, caller: Caller, q: RawQuery, h: HeaderMap) -> Response {
    root_post(st, caller, q, h, Bytes::new()).await
}

async fn root_post(
    st: State<Shared>,
    caller: Caller,
    q: RawQuery,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if st.opts.root == RootPage::Dashboard {
        let mut r = StatusCode::FOUND.into_response();
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
        return r;
    }
    index_post(st, caller, q, h, body).await
}

async fn index(st: State<Shared>, caller: Caller, q: RawQuery, h: HeaderMap) -> Response {
    index_post(st, caller, q, h, Bytes::new()).await
}

/// Whether a browser sent this request from another site (`Sec-Fetch-Site`):
/// Supervisor's action links are GETs, so the guard's cross-site check of
/// state changes (which looks at other methods) is made here for them.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !matches!(v, "same-origin" | "none"))
}

async fn index_post(
    State(shared): State<Shared>,
    caller: Caller,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let st = St::new(shared, caller);
    let form = form(q.as_deref(), &body);
    if let Some(action) = get_field(&form, "action") {
        if action != "refresh" && cross_site(&headers) {
            tracing::warn!("refused a cross-site {action:?} on Supervisor's page");
            return medusa_error(StatusCode::FORBIDDEN);
        }
        let Some(message) = act(&st, action, get_field(&form, "processname")).await else {
            // web.py raises ValueError: a 500.
            return medusa_error(StatusCode::INTERNAL_SERVER_ERROR);
        };
        // `SERVER_URL + "/" + "?message=..."`, from the Host header.
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map_or("localhost", str::trim);
        let location = format!("http://{host}/?message={}", quote(&message));
        let mut r = medusa_error(StatusCode::MOVED_PERMANENTLY);
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&location) {
            h.insert(header::LOCATION, v);
        }
        // As web.py sends it: a browser must not keep this "permanent"
        // redirect, or the same action link would never reach us again.
        no_cache(h);
        return r;
    }
    match status_page(&st, get_field(&form, "message")).await {
        Ok(html) => page(html),
        Err(_) => medusa_error(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// `time.ctime()`: `Thu Dec  3 10:45:00 2026`, local time.
fn ctime() -> String {
    jiff::Zoned::now()
        .strftime("%a %b %e %H:%M:%S %Y")
        .to_string()
}

fn unexpected(f: &Fault) -> String {
    format!("unexpected rpc fault [{}] {}", f.code, f.string)
}

async fn call(st: &St, verb: Verb, params: Vec<Value>) -> Result<Value, Fault> {
    st.rpc.call(verb, params).await
}

/// Carries out an action and words its outcome as `web.py` does; `None`
/// where `web.py` fails (an action it does not know).
async fn act(st: &St, action: &str, namespec: Option<&str>) -> Option<String> {
    match action {
        "refresh" => return Some(format!("Page refreshed at {}", ctime())),
        "stopall" => {
            let _ = call(st, Verb::StopAllProcesses, vec![]).await;
            return Some(format!("All stopped at {}", ctime()));
        }
        "restartall" => {
            let _ = call(st, Verb::StopAllProcesses, vec![]).await;
            let _ = call(st, Verb::StartAllProcesses, vec![]).await;
            return Some(format!("All restarted at {}", ctime()));
        }
        _ => {}
    }
    let ns = namespec?;
    if !process_exists(st, ns).await {
        return Some(format!("No such process named {ns}"));
    }
    let arg = || vec![Value::from(ns)];
    Some(match action {
        "start" => match call(st, Verb::StartProcess, arg()).await {
            Ok(_) => format!("Process {ns} started"),
            Err(f) => {
                let why = match f.code {
                    Fault::NO_FILE => "no such file".to_string(),
                    Fault::NOT_EXECUTABLE => "file not executable".to_string(),
                    Fault::ALREADY_STARTED => "already started".to_string(),
                    Fault::SPAWN_ERROR => "spawn error".to_string(),
                    Fault::ABNORMAL_TERMINATION => "abnormal termination".to_string(),
                    _ => unexpected(&f),
                };
                format!("ERROR: Process {ns}: {why}")
            }
        },
        "stop" => match call(st, Verb::StopProcess, arg()).await {
            Ok(_) => format!("Process {ns} stopped"),
            Err(f) => unexpected(&f),
        },
        "restart" => {
            // A multicall of stop and start: faults are results, not errors.
            let _ = call(st, Verb::StopProcess, arg()).await;
            let _ = call(st, Verb::StartProcess, arg()).await;
            format!("Process {ns} restarted")
        }
        "clearlog" => match call(st, Verb::ClearProcessLogs, arg()).await {
            Ok(_) => format!("Log for {ns} cleared"),
            Err(f) => unexpected(&f),
        },
        _ => return None,
    })
}

/// Whether a namespec names one process (`group:*` does not) that the
/// caller may view.
async fn process_exists(st: &St, ns: &str) -> bool {
    let (_, Some(_)) = split_namespec(ns) else {
        return false;
    };
    call(st, Verb::GetProcessInfo, vec![Value::from(ns)])
        .await
        .is_ok()
}

/// One row of the status table.
struct Row {
    name: String,
    group: String,
    state: i32,
    statename: String,
    description: String,
}

impl Row {
    fn namespec(&self) -> String {
        if self.name == self.group {
            self.name.clone()
        } else {
            format!("{}:{}", self.group, self.name)
        }
    }
}

fn css_class(state: i32) -> &'static str {
    match state {
        20 => "statusrunning",
        30 | 200 => "statuserror",
        _ => "statusnominal",
    }
}

/// `actions_for_process`: `(label, href, target)` or a hidden slot.
fn actions(row: &Row) -> [Option<(&'static str, String, bool)>; 5] {
    let ns = quote(&row.namespec());
    let link = |label, action: &str| {
        Some((
            label,
            format!("index.html?processname={ns}&action={action}"),
            false,
        ))
    };
    let tail_out = Some(("Tail -f Stdout", format!("logtail/{ns}"), true));
    let tail_err = Some(("Tail -f Stderr", format!("logtail/{ns}/stderr"), true));
    let clear = link("Clear Log", "clearlog");
    match row.state {
        20 => [
            link("Restart", "restart"),
            link("Stop", "stop"),
            clear,
            tail_out,
            tail_err,
        ],
        0 | 100 | 200 => [link("Start", "start"), None, clear, tail_out, tail_err],
        _ => [None, None, clear, tail_out, tail_err],
    }
}

async fn rows(st: &St) -> Result<Vec<Row>, Fault> {
    let all = call(st, Verb::GetAllProcessInfo, vec![]).await?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut rows: Vec<Row> = all
        .as_array()
        .unwrap_or_default()
        .iter()
        .map(|v| Row {
            name: text(v, "name"),
            group: text(v, "group"),
            state: v.get("state").and_then(Value::as_i32).unwrap_or(0),
            statename: text(v, "statename"),
            description: text(v, "description"),
        })
        .collect();
    rows.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    Ok(rows)
}

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n\
         <link href=\"stylesheets/supervisor.css\" rel=\"stylesheet\" type=\"text/css\">\n\
         <link href=\"images/icon.png\" rel=\"icon\" type=\"image/png\">\n</head>\n",
        escape(title)
    )
}

fn footer(opts: &WebOptions) -> String {
    let tend = if opts.dashboard {
        "<a href=\"/ui/\">tend</a>".to_string()
    } else {
        "tend".to_string()
    };
    format!(
        "<div id=\"footer\">{tend} {} &middot; Supervisor {}'s pages</div>\n",
        env!("CARGO_PKG_VERSION"),
        crate::SUPERVISOR_VERSION
    )
}

async fn status_page(st: &St, message: Option<&str>) -> Result<String, Fault> {
    let rows = rows(st).await?;
    let mut h = head("Supervisor Status");
    h.push_str("<body>\n<div id=\"wrapper\">\n<div id=\"header\">");
    h.push_str(
        "<img src=\"images/logo.png\" alt=\"Supervisor status\" width=\"140\" height=\"36\">",
    );
    h.push_str("</div>\n<div id=\"content\">\n");
    if let Some(m) = message {
        h.push_str(&format!(
            "<div class=\"status_msg\" id=\"statusmessage\" role=\"status\">{}</div>\n",
            escape(m)
        ));
    }
    h.push_str("<form action=\"index.html\" method=\"post\">\n<ul id=\"buttons\">\n");
    for (label, action) in [
        ("Refresh", "refresh"),
        ("Restart All", "restartall"),
        ("Stop All", "stopall"),
    ] {
        h.push_str(&format!(
            "<li class=\"action-button\"><a href=\"index.html?action={action}\">{label}</a></li>\n"
        ));
    }
    h.push_str("</ul>\n");
    if rows.is_empty() {
        h.push_str("No programs to manage\n");
    } else {
        h.push_str(
            "<table id=\"statustable\">\n<thead>\n<tr><th class=\"state\">State</th>\
             <th class=\"desc\">Description</th><th class=\"name\">Name</th>\
             <th class=\"action\">Action</th></tr>\n</thead>\n<tbody>\n",
        );
        for (i, row) in rows.iter().enumerate() {
            let ns = row.namespec();
            let shade = if i % 2 == 1 { " class=\"shade\"" } else { "" };
            h.push_str(&format!(
                "<tr{shade}>\n<td class=\"status\"><span class=\"{}\">{}</span></td>\n\
                 <td class=\"desc\"><span>{}</span></td>\n\
                 <td class=\"name\"><a href=\"tail.html?processname={}\" target=\"_blank\">{}</a></td>\n\
                 <td class=\"action\"><ul>\n",
                css_class(row.state),
                escape(&row.statename.to_lowercase()),
                escape(&row.description),
                escape(&quote(&ns)),
                escape(&ns),
            ));
            for a in actions(row) {
                match a {
                    Some((label, href, blank)) => h.push_str(&format!(
                        "<li><a href=\"{}\" name=\"{label}\"{}>{label}</a></li>\n",
                        escape(&href),
                        if blank { " target=\"_blank\"" } else { "" }
                    )),
                    None => h.push_str("<li class=\"hidden\"></li>\n"),
                }
            }
            h.push_str("</ul></td>\n</tr>\n");
        }
        h.push_str("</tbody>\n</table>\n");
    }
    h.push_str("</form>\n</div>\n</div>\n");
    h.push_str(&footer(&st.opts));
    h.push_str("</body>\n</html>\n");
    Ok(h)
}

async fn tail(st: State<Shared>, caller: Caller, q: RawQuery) -> Response {
    tail_post(st, caller, q, Bytes::new()).await
}

async fn tail_post(
    State(shared): State<Shared>,
    caller: Caller,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let st = St::new(shared, caller);
    let form = form(q.as_deref(), &body);
    let name = get_field(&form, "processname");
    let limit = get_field(&form, "limit").unwrap_or("1024");
    // `min(-1024, -int(limit))`: at least the last 1024 bytes.
    let offset: i64 = if !limit.is_empty() && limit.bytes().all(|b| b.is_ascii_digit()) {
        (-limit.parse::<i64>().unwrap_or(1024)).min(-1024)
    } else {
        -1024
    };
    let stderr = get_field(&form, "channel") == Some("stderr");
    let text = match name {
        None => "No process name found".to_string(),
        Some(n) => {
            let verb = if stderr {
                Verb::ReadProcessStderrLog
            } else {
                Verb::ReadProcessStdoutLog
            };
            let params = vec![Value::from(n), Value::int_saturating(offset), Value::Int(0)];
            match call(&st, verb, params).await {
                Ok(v) => v.as_str().unwrap_or_default().to_string(),
                Err(f) if f.code == Fault::NO_FILE => format!("No file for {n}"),
                Err(f) => format!("ERROR: {}", unexpected(&f)),
            }
        }
    };
    let title = format!("Supervisor tail of process {}", name.unwrap_or("None"));
    let mut h = head(&title);
    h.push_str("<body>\n<div id=\"content\">\n<pre id=\"tailbody\">");
    h.push_str(&escape(&text));
    h.push_str("</pre>\n");
    if let Some(n) = name {
        let mut href = format!(
            "tail.html?processname={}&limit={}",
            quote(n),
            offset.unsigned_abs()
        );
        if stderr {
            href.push_str("&channel=stderr");
        }
        h.push_str(&format!(
            "<form action=\"index.html\" method=\"POST\">\n<div style=\"margin: 10px 12px;\">\n\
             <a href=\"{}\" id=\"refresh_anchor\"><input type=\"button\" value=\" Refresh \" name=\"refresh\"></a>\n\
             </div>\n</form>\n",
            escape(&href)
        ));
    }
    h.push_str("</div>\n</body>\n</html>\n");
    page(h)
}

async fn ok(method: Method) -> Response {
    let _ = method;
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        "OK",
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset("text/css", CSS.as_bytes())
}

async fn icon() -> Response {
    asset("image/png", ICON)
}

async fn logo() -> Response {
    asset("image/png", LOGO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_read_as_web_py_reads_them() {
        let f = form(Some("processname=a%3Ab&action=stop&action=start&x="), b"");
        assert_eq!(get_field(&f, "processname"), Some("a:b"));
        assert_eq!(get_field(&f, "action"), Some("stop"));
        assert_eq!(get_field(&f, "x"), None);
        let f = form(Some("action=stop"), b"action=start&message=hi+there");
        assert_eq!(get_field(&f, "action"), Some("start"));
        assert_eq!(get_field(&f, "message"), Some("hi there"));
    }

    #[test]
    fn actions_follow_the_state() {
        let row = |state| Row {
            name: "w 1".into(),
            group: "g".into(),
            state,
            statename: String::new(),
            description: String::new(),
        };
        let labels = |state| {
            actions(&row(state))
                .iter()
                .map(|a| a.as_ref().map_or("-", |(l, _, _)| *l))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            labels(20),
            [
                "Restart",
                "Stop",
                "Clear Log",
                "Tail -f Stdout",
                "Tail -f Stderr"
            ]
        );
        assert_eq!(
            labels(100),
            [
                "Start",
                "-",
                "Clear Log",
                "Tail -f Stdout",
                "Tail -f Stderr"
            ]
        );
        assert_eq!(
            labels(10),
            ["-", "-", "Clear Log", "Tail -f Stdout", "Tail -f Stderr"]
        );
        let a = actions(&row(20));
        assert_eq!(
            a[0].as_ref().map(|x| x.1.as_str()),
            Some("index.html?processname=g%3Aw%201&action=restart")
        );
        assert_eq!(
            a[4].as_ref().map(|x| x.1.as_str()),
            Some("logtail/g%3Aw%201/stderr")
        );
    }
}
