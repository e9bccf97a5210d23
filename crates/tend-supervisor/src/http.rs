//! Supervisor's HTTP side: `POST /RPC2`, the streaming tails `GET
//! /logtail/NAME[/CHANNEL]` and `GET /mainlogtail`, and the error pages of
//! Medusa (the HTTP server inside supervisord), byte for byte.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tend_core::Name;
use tend_core::runtime::LogChunk;
use tend_server::access::{Caller, Right};
use tend_server::auth::BasicAuth;
use tend_server::{ChannelStream, Shutdown};
use tokio::sync::{broadcast, mpsc};

use crate::Face;
use crate::rpc::{Rpc, split_namespec};
use crate::xmlrpc::{self, MAX_BODY_BYTES};

/// Bytes of the file a tail starts with (`tail_f_producer(..., 1024)`).
const HEAD: u64 = 1024;
/// Bytes read from a log file per chunk sent.
const READ_CHUNK: u64 = 64 * 1024;
/// How often a process log tail looks at its file when no output woke it
/// (output of the process wakes it at once).
const PROCESS_TICK: Duration = Duration::from_secs(1);
/// How often the main log tail looks at its file (Supervisor: 0.1 s).
const MAIN_TICK: Duration = Duration::from_millis(200);

/// Puts `router` behind HTTP Basic auth, answering as supervisord does (401
/// with `WWW-Authenticate: Basic realm="default"` and Medusa's page). With
/// `trust_owner`, a Unix socket peer running as the daemon's user or as root
/// needs no credentials.
pub fn require_auth(router: Router, auth: BasicAuth, trust_owner: bool) -> Router {
    tend_server::auth::require_auth(router, auth, trust_owner, medusa_error)
}

/// Medusa's error page: `text/html`, CRLF line ends.
pub fn medusa_error(status: StatusCode) -> Response {
    let body = format!(
        "<head>\r\n<title>Error response</title>\r\n</head>\r\n<body>\r\n<h1>Error response</h1>\r\n<p>Error code {}.\r\n<p>Message: {}.\r\n</body>\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/html"))],
        body,
    )
        .into_response()
}

#[derive(Clone)]
struct St {
    face: Arc<Face>,
}

/// Supervisor's routes, acting on `face`: `/RPC2` (and below it, as
/// supervisord matches it by prefix), `/logtail/...` and `/mainlogtail`.
/// Live tails end when the daemon's streams end.
pub fn routes(face: Arc<Face>) -> Router {
    let st = St { face };
    Router::new()
        .route("/RPC2", any(rpc2))
        .route("/RPC2/{*rest}", any(rpc2))
        .route("/logtail", any(logtail))
        .route("/logtail/{*rest}", any(logtail))
        .route("/mainlogtail", any(mainlogtail))
        .route("/mainlogtail/{*rest}", any(mainlogtail))
        // supervisord takes any size; the codec's own limit still applies.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(st)
}

async fn rpc2(State(st): State<St>, caller: Caller, method: Method, body: Bytes) -> Response {
    if method != Method::POST {
        return medusa_error(StatusCode::BAD_REQUEST);
    }
    let rpc = Rpc::for_caller(st.face.clone(), caller);
    let (status, out) = xmlrpc::handle(&body, &rpc).await;
    if status != 200 {
        let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        tracing::warn!(
            "XML-RPC request data {shown:?} is invalid: {}",
            String::from_utf8_lossy(&out).trim_end()
        );
        return medusa_error(StatusCode::BAD_REQUEST);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"))],
        out,
    )
        .into_response()
}

async fn logtail(State(st): State<St>, caller: Caller, method: Method, uri: Uri) -> Response {
    if method != Method::GET {
        return medusa_error(StatusCode::BAD_REQUEST);
    }
    let not_found = || medusa_error(StatusCode::NOT_FOUND);
    let raw = uri.path();
    let path = if raw.contains('%') {
        match unquote(raw) {
            Some(p) => p,
            None => return not_found(),
        }
    } else {
        raw.to_string()
    };
    let Some((_, rest)) = path.trim_start_matches('/').split_once('/') else {
        return not_found();
    };
    let (spec, channel) = rest.split_once('/').unwrap_or((rest, "stdout"));
    let stderr = match channel {
        "stdout" => false,
        "stderr" => true,
        _ => return not_found(),
    };
    let (group, Some(name)) = split_namespec(spec) else {
        return not_found();
    };
    let Ok(all) = st.face.supervisor().status().await else {
        return not_found();
    };
    // A process the caller may not view does not exist for it; one it may
    // view but not read is forbidden.
    let Some(s) = all.iter().find(|s| {
        s.group.as_str() == group
            && s.name.as_str() == name
            && caller.may(Right::View, &s.name, &s.group)
    }) else {
        return not_found();
    };
    if !caller.may(Right::Logs, &s.name, &s.group) {
        return medusa_error(StatusCode::FORBIDDEN);
    }
    let Some(file) = st.face.logfile(s.name.as_str(), stderr) else {
        return not_found();
    };
    let wake = (st.face.supervisor().subscribe_logs(), s.name.clone());
    tail_response(
        &file,
        Some(wake),
        st.face.daemon().shutdown().clone(),
        PROCESS_TICK,
        true,
    )
}

async fn mainlogtail(State(st): State<St>, caller: Caller, method: Method) -> Response {
    if method != Method::GET {
        return medusa_error(StatusCode::BAD_REQUEST);
    }
    if !caller.may_everything(Right::Logs) {
        return medusa_error(StatusCode::FORBIDDEN);
    }
    match st.face.main_log() {
        Some(file) => tail_response(
            file,
            None,
            st.face.daemon().shutdown().clone(),
            MAIN_TICK,
            false,
        ),
        None => medusa_error(StatusCode::NOT_FOUND),
    }
}

/// `urllib.parse.unquote`: `%XX` escapes, nothing else.
fn unquote(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `Fri, 20 Nov 2026 21:43:09 GMT`.
fn http_date(t: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// The chunked response of a tail: the last 1024 bytes of `file`, then what
/// is appended to it, until the client goes or the streams end.
fn tail_response(
    file: &Path,
    wake: Option<(broadcast::Receiver<LogChunk>, Name)>,
    shutdown: Shutdown,
    tick: Duration,
    accel_header: bool,
) -> Response {
    // A process's log file appears at its first output: until then the
    // tail is of an empty file, as under supervisord (which creates it at
    // spawn).
    let opened = match open(file) {
        Ok(opened) => Some(opened),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && wake.is_some() => None,
        Err(_) => return medusa_error(StatusCode::NOT_FOUND),
    };
    let mtime = opened
        .as_ref()
        .and_then(|o| o.0.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(std::time::SystemTime::now);
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(follow(file.to_path_buf(), opened, wake, shutdown, tx, tick));
    let mut resp = Response::new(Body::from_stream(ChannelStream(rx)));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&http_date(mtime)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=utf-8"),
    );
    if accel_header {
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    }
    resp
}

/// An open file with its inode and size.
fn open(path: &Path) -> std::io::Result<(std::fs::File, u64, u64)> {
    let f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    Ok((f, meta.ino(), meta.len()))
}

/// Supervisor's `tail_f_producer`: follows rotation (a new inode is opened
/// from its start) and truncation (`==> File truncated <==`).
async fn follow(
    path: PathBuf,
    opened: Option<(std::fs::File, u64, u64)>,
    mut wake: Option<(broadcast::Receiver<LogChunk>, Name)>,
    shutdown: Shutdown,
    tx: mpsc::Sender<Bytes>,
    tick: Duration,
) {
    let ended = shutdown.streams_ended();
    tokio::pin!(ended);
    // No file yet (nothing written so far): it is read from its start once
    // it appears, as a rotated one is.
    let (mut file, mut ino, mut pos) = match opened {
        Some((f, i, size)) => (Some(f), Some(i), size.saturating_sub(HEAD)),
        None => (None, None, 0),
    };
    loop {
        if let Ok(meta) = std::fs::metadata(&path)
            && Some(meta.ino()) != ino
            && let Ok((f, i, _)) = open(&path)
        {
            (file, ino, pos) = (Some(f), Some(i), 0);
        }
        let out = match file.as_mut().map(|f| read_more(f, &mut pos)) {
            None => None,
            Some(Ok(out)) => out,
            Some(Err(_)) => return,
        };
        if let Some(bytes) = out {
            if tx.send(Bytes::from(bytes)).await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = &mut ended => return,
            _ = tokio::time::sleep(tick) => {}
            _ = output_of(&mut wake) => {}
        }
    }
}

/// What `file` holds past `pos` (at most [`READ_CHUNK`]), or the truncation
/// notice when it shrank below `pos`; `None` when there is nothing new. An
/// error is a file that cannot be looked at any more.
fn read_more(file: &mut std::fs::File, pos: &mut u64) -> std::io::Result<Option<Vec<u8>>> {
    let size = file.metadata()?.len();
    if size < *pos {
        *pos = 0;
        return Ok(Some(b"==> File truncated <==\n".to_vec()));
    }
    if size == *pos {
        return Ok(None);
    }
    let mut buf = Vec::new();
    let read = file.seek(SeekFrom::Start(*pos)).and_then(|_| {
        file.take((size - *pos).min(READ_CHUNK))
            .read_to_end(&mut buf)
    });
    Ok(match read {
        Ok(n) if n > 0 => {
            *pos += n as u64;
            Some(buf)
        }
        _ => None,
    })
}

/// Resolves when the process writes output (or never, without a receiver).
async fn output_of(wake: &mut Option<(broadcast::Receiver<LogChunk>, Name)>) {
    let Some((rx, name)) = wake else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(c) if &c.name == name => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_error_page_is_medusas() {
        let resp = medusa_error(StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/html");
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        // 137 bytes, as supervisord's 401 says in its Content-Length.
        assert_eq!(body.len(), 137);
        assert_eq!(
            &body[..],
            b"<head>\r\n<title>Error response</title>\r\n</head>\r\n<body>\r\n<h1>Error response</h1>\r\n<p>Error code 401.\r\n<p>Message: Unauthorized.\r\n</body>\r\n"
        );
    }

    #[test]
    fn dates_and_paths() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_795_211_138);
        assert_eq!(http_date(t), "Fri, 20 Nov 2026 21:45:38 GMT");
        assert_eq!(
            unquote("/logtail/a%3Ab/stdout").as_deref(),
            Some("/logtail/a:b/stdout")
        );
        assert_eq!(unquote("/x%zz").as_deref(), Some("/x%zz"));
    }
}
