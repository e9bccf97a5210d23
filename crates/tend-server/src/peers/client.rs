//! The daemon as a client of its peers: one HTTP/1.1 connection (hyper,
//! over TCP, TLS or a Unix socket) per watched peer for its version and its
//! event stream, and one per forwarded action.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{HEARTBEAT, PeerEndpoint, PeerSpec, PeerState, Peers, backoff, view_detail};

/// The largest event (or answer) read from a peer: a peer that sends more
/// is broken.
const MAX_EVENT: usize = 16 << 20;

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Opens a connection to `spec` and its HTTP/1.1 handshake.
async fn open(spec: &PeerSpec) -> Result<SendRequest<Full<Bytes>>, String> {
    let io: Box<dyn Io> = match &spec.endpoint {
        PeerEndpoint::Unix(path) => Box::new(
            tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?,
        ),
        PeerEndpoint::Tcp { host, port, tls } => {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", spec.url))?;
            let _ = tcp.set_nodelay(true);
            match tls {
                None => Box::new(tcp),
                Some(config) => {
                    let name = rustls::pki_types::ServerName::try_from(host.clone())
                        .map_err(|_| format!("{host:?} is neither a host name nor an address"))?;
                    let tls = tokio_rustls::TlsConnector::from(config.clone())
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS with {} failed: {e}", spec.url))?;
                    Box::new(tls)
                }
            }
        }
    };
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP with {} failed: {e}", spec.url))?;
    // Ends with the connection: when the sender and the body are dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(
    spec: &PeerSpec,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, spec.endpoint.host_header());
    if let Some(auth) = &spec.authorization {
        b = b.header(header::AUTHORIZATION, auth);
    }
    if body.is_some() {
        b = b.header(header::CONTENT_TYPE, "application/json");
    }
    // Only valid parts: a path of ours, a header of the config's text.
    b.body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// Reads a whole (bounded) body.
async fn read_body(body: hyper::body::Incoming) -> Result<Bytes, String> {
    let limited = http_body_util::Limited::new(body, MAX_EVENT);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("reading the answer: {e}"))
}

/// The message of a peer's error answer (its `error` field, else the text).
fn error_message(status: StatusCode, body: &[u8]) -> String {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    format!("{}: {text}", status.as_u16())
}

/// One request and its whole answer: status and body.
pub(super) async fn call(
    spec: &PeerSpec,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), String> {
    let work = async {
        let mut tx = open(spec).await?;
        let resp = tx
            .send_request(request(spec, method, path, body))
            .await
            .map_err(|e| format!("no answer from {}: {e}", spec.url))?;
        let status = resp.status();
        Ok((status, read_body(resp.into_body()).await?))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer from {} within {timeout:?}", spec.url))?
}

/// A watched peer's task: its event stream, again and again.
pub(super) async fn run(peers: Peers, spec: Arc<PeerSpec>) {
    let mut failures = 0u32;
    loop {
        let ended = session(&peers, &spec, &mut failures).await;
        match ended {
            Ended::Again => {
                // A reset: read a fresh snapshot (never in a tight loop).
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ended::Failed(error) => {
                peers.update(&spec, |v| {
                    v.set_state(PeerState::Unreachable, Some(error))
                        .then(|| ("peer", view_detail(v, false)))
                });
                failures = failures.saturating_add(1);
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

/// Why a session ended.
enum Ended {
    /// The peer cannot be trusted to be as seen: connect again at once.
    Again,
    /// The connection failed or broke.
    Failed(String),
}

async fn session(peers: &Peers, spec: &Arc<PeerSpec>, failures: &mut u32) -> Ended {
    let head = async {
        let mut tx = open(spec).await?;
        let resp = tx
            .send_request(request(spec, Method::GET, "/v1/version", None))
            .await
            .map_err(|e| format!("no answer from {}: {e}", spec.url))?;
        let status = resp.status();
        let body = read_body(resp.into_body()).await?;
        if status != StatusCode::OK {
            return Err(error_message(status, &body));
        }
        let version = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("version").and_then(Value::as_str).map(str::to_string));
        tx.ready()
            .await
            .map_err(|e| format!("{} closed the connection: {e}", spec.url))?;
        let path = format!("/v1/events?snapshot=1&heartbeat={}", HEARTBEAT.as_secs());
        let resp = tx
            .send_request(request(spec, Method::GET, &path, None))
            .await
            .map_err(|e| format!("no answer from {}: {e}", spec.url))?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            let body = read_body(resp.into_body()).await?;
            return Err(error_message(status, &body));
        }
        Ok((tx, version, resp.into_body()))
    };
    let (_tx, version, mut body) = match tokio::time::timeout(spec.timeout, head).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return Ended::Failed(e),
        Err(_) => {
            return Ended::Failed(format!(
                "no answer from {} within {:?}",
                spec.url, spec.timeout
            ));
        }
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout(HEARTBEAT * 3, body.frame()).await {
            Err(_) => {
                return Ended::Failed(format!(
                    "nothing from {} for {} s",
                    spec.url,
                    HEARTBEAT.as_secs() * 3
                ));
            }
            Ok(None) => return Ended::Failed(format!("{} ended its event stream", spec.url)),
            Ok(Some(Err(e))) => {
                return Ended::Failed(format!("connection to {} broke: {e}", spec.url));
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(end) = find(&buf, b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            if let Some(again) = handle(peers, spec, &event, &version, failures) {
                return again;
            }
        }
        if buf.len() > MAX_EVENT {
            return Ended::Failed(format!("{} sent an event of more than 16 MiB", spec.url));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The JSON of one SSE event (its `data:` lines), if it has any.
pub(super) fn event_json(event: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(event).ok()?;
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    if data.is_empty() {
        return None;
    }
    serde_json::from_str(&data.join("\n")).ok()
}

/// Applies one event of the peer's stream to its view.
fn handle(
    peers: &Peers,
    spec: &Arc<PeerSpec>,
    event: &[u8],
    version: &Option<String>,
    failures: &mut u32,
) -> Option<Ended> {
    let v = event_json(event)?;
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    match kind {
        "snapshot" => {
            let processes = match v.get("processes") {
                Some(Value::Array(a)) => a.clone(),
                _ => Vec::new(),
            };
            *failures = 0;
            peers.update(spec, |view| {
                view.set_state(PeerState::Reachable, None);
                view.version.clone_from(version);
                view.processes = processes;
                view.recount();
                Some(("peer", view_detail(view, true)))
            });
            None
        }
        "reset" | "cutoff" => Some(Ended::Again),
        "removed" => {
            let name = v.get("name").and_then(Value::as_str)?.to_string();
            peers.update(spec, |view| {
                view.processes
                    .retain(|p| p.get("name").and_then(Value::as_str) != Some(name.as_str()));
                view.recount();
                let mut d = view_detail(view, false);
                d.insert("removed".into(), Value::String(name));
                Some(("peer_process", d))
            });
            None
        }
        _ => {
            let status = v.get("status").filter(|s| s.is_object())?.clone();
            let name = status.get("name").and_then(Value::as_str)?.to_string();
            peers.update(spec, |view| {
                let slot = view
                    .processes
                    .iter_mut()
                    .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()));
                match slot {
                    Some(p) if *p == status => return None,
                    Some(p) => *p = status.clone(),
                    None => view.processes.push(status.clone()),
                }
                view.recount();
                let mut d: Map<String, Value> = view_detail(view, false);
                d.insert("process".into(), status);
                Some(("peer_process", d))
            });
            None
        }
    }
}
