//! The accept loop every listener runs: bounded connections, one hyper
//! HTTP/1.1 connection per client with a header timeout, the peer on every
//! request, and a graceful end.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::hash::Hash;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt;

use super::Limits;
use super::tls::{ServerTls, Tls, TlsClient};

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The peer's user id, on a Unix socket (`SO_PEERCRED`).
    pub uid: Option<u32>,
    /// The peer's primary group id, on a Unix socket.
    pub gid: Option<u32>,
    /// The peer's process id, on a Unix socket.
    pub pid: Option<i32>,
    /// The peer's address, over TCP.
    pub ip: Option<IpAddr>,
    /// The peer's supplementary groups when it connected, on a Unix socket
    /// (`SO_PEERGROUPS`: the kernel's, not the group database's).
    pub groups: Option<Arc<[u32]>>,
}

impl Peer {
    /// A Unix socket peer.
    pub fn unix(uid: u32, gid: u32, pid: Option<i32>) -> Peer {
        Peer {
            uid: Some(uid),
            gid: Some(gid),
            pid,
            ip: None,
            groups: None,
        }
    }

    /// A TCP peer.
    pub fn tcp(ip: IpAddr) -> Peer {
        Peer {
            uid: None,
            gid: None,
            pid: None,
            ip: Some(ip),
            groups: None,
        }
    }

    /// Whether the peer runs as the daemon's user or as root: such a peer
    /// could read the credentials from the config file anyway.
    pub fn is_owner(&self) -> bool {
        let me = nix::unistd::geteuid().as_raw();
        self.uid.is_some_and(|u| u == me || u == 0)
    }

    /// What the per-peer connection limit counts by.
    fn key(&self) -> PeerKey {
        match (self.uid, self.ip) {
            (Some(uid), _) => PeerKey::Uid(uid),
            (None, Some(ip)) => PeerKey::Ip(ip),
            (None, None) => PeerKey::Unknown,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.uid, self.pid, self.ip) {
            (Some(uid), Some(pid), _) => write!(f, "uid {uid} (pid {pid})"),
            (Some(uid), None, _) => write!(f, "uid {uid}"),
            (None, _, Some(ip)) => write!(f, "{ip}"),
            (None, _, None) => f.write_str("an unknown peer"),
        }
    }
}

// The peer as axum's `serve` would give it, for routers served by
// `axum::serve` in tests and by embedders.
impl Connected<IncomingStream<'_, tokio::net::UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        unix_peer(stream.io())
    }
}

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer::tcp(stream.remote_addr().ip())
    }
}

pub(super) fn unix_peer(stream: &tokio::net::UnixStream) -> Peer {
    match stream.peer_cred() {
        Ok(c) => Peer {
            groups: peer_groups(stream).map(Arc::from),
            ..Peer::unix(c.uid(), c.gid(), c.pid())
        },
        Err(_) => Peer {
            uid: None,
            gid: None,
            pid: None,
            ip: None,
            groups: None,
        },
    }
}

/// The supplementary groups the peer had when it connected
/// (`SO_PEERGROUPS`, Linux 4.13), or `None` where the kernel cannot say.
fn peer_groups(stream: &tokio::net::UnixStream) -> Option<Vec<u32>> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    for _ in 0..2 {
        let mut len =
            libc::socklen_t::try_from(groups.len() * std::mem::size_of::<libc::gid_t>()).ok()?;
        // SAFETY: `groups` is a writable buffer of `len` bytes that lives
        // across the call; the kernel writes at most `len` bytes and sets
        // `len` to what it wrote (or, with ERANGE, to what it needs).
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = usize::try_from(len).ok()? / std::mem::size_of::<libc::gid_t>();
        if r == 0 {
            groups.truncate(n);
            return Some(groups);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return None;
        }
        groups.resize(n.max(groups.len() * 2), 0);
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PeerKey {
    Uid(u32),
    Ip(IpAddr),
    Unknown,
}

/// Open connections, in all and by peer.
#[derive(Default)]
struct Counts {
    total: usize,
    by_peer: HashMap<PeerKey, usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connection's place in the counts, given back when it is dropped.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    key: PeerKey,
}

impl Slot {
    /// A place for one more connection of `key`, unless a limit is reached.
    /// The daemon's own user (or root) on a Unix socket is held to the
    /// total only: it could stop the daemon anyway, and `tend` runs as it.
    fn take(counts: &Arc<Mutex<Counts>>, peer: &Peer, limits: &Limits) -> Option<Slot> {
        let key = peer.key();
        let mut c = lock(counts);
        let mine = c.by_peer.get(&key).copied().unwrap_or(0);
        if c.total >= limits.max_connections || (mine >= limits.max_per_peer && !peer.is_owner()) {
            return None;
        }
        c.total += 1;
        c.by_peer.insert(key, mine + 1);
        Some(Slot {
            counts: counts.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = lock(&self.counts);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_peer.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_peer.remove(&self.key);
            }
        }
    }
}

/// Something that accepts connections, each with its peer.
pub(super) trait Accept {
    /// The connection's stream.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection.
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Io, Peer)>> + Send;
    /// Tells a plain-text client, without waiting, that it was refused.
    fn refuse(io: &Self::Io);
}

/// The answer a connection over a limit gets before it is closed, where the
/// socket takes it at once (on plain text only).
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\ntoo many connections; try again\n";

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, Peer)> {
        let (stream, _) = tokio::net::UnixListener::accept(self).await?;
        let peer = unix_peer(&stream);
        Ok((stream, peer))
    }
    fn refuse(io: &Self::Io) {
        let _ = io.try_write(REFUSED);
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, Peer)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, Peer::tcp(addr.ip())))
    }
    fn refuse(io: &Self::Io) {
        let _ = io.try_write(REFUSED);
    }
}

/// Open connections, shared by the listeners that count together (every
/// TCP listener of a daemon), so that the limits hold over all of them.
#[derive(Clone, Default)]
pub struct Connections(Arc<Mutex<Counts>>);

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connections({} open)", self.open())
    }
}

impl Connections {
    /// A new, empty count.
    pub fn new() -> Connections {
        Connections::default()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        lock(&self.0).total
    }
}

/// What a listener serves with, besides its router.
pub(super) struct Serving {
    pub(super) limits: Limits,
    pub(super) counts: Connections,
    pub(super) tls: Option<Arc<ServerTls>>,
}

/// Accepts and serves connections until `until` resolves, then lets every
/// open connection finish its request (streams end when their own latch
/// tells them to) and returns.
pub(super) async fn serve<A: Accept>(
    listener: A,
    router: Router,
    serving: Serving,
    until: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let Serving {
        limits,
        counts,
        tls,
    } = serving;
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let limits = Arc::new(limits);
    tokio::pin!(until);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) if is_transient(&e) => {
                    // Out of descriptors or buffers: wait a little rather
                    // than spin; the connections that are open will end.
                    tracing::debug!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e),
            },
            () = &mut until => break,
        };
        let Some(slot) = Slot::take(&counts.0, &peer, &limits) else {
            tracing::debug!("refused a connection from {peer}: too many open");
            if tls.is_none() {
                A::refuse(&io);
            }
            drop(io);
            continue;
        };
        let conn = Conn {
            http: http.clone(),
            router: router.clone(),
            limits: limits.clone(),
            peer: peer.clone(),
            watcher: Some(graceful.watcher()),
        };
        let io = SendTimeout::new(io, limits.send_timeout);
        match &tls {
            None => {
                tokio::spawn(async move {
                    let _slot = slot;
                    conn.run(io, None).await;
                });
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                let handshake_timeout = limits.header_timeout;
                tokio::spawn(async move {
                    let _slot = slot;
                    // The handshake is part of the time to send a request's head.
                    let shake = tokio::time::timeout(handshake_timeout, acceptor.accept(io));
                    let stream = match shake.await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!("TLS handshake with {peer} failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake with {peer} timed out");
                            return;
                        }
                    };
                    let client = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|der| TlsClient::from_der(der));
                    conn.run(stream, Some(client)).await;
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Serves HTTP/1.1 on one connection that is already open, `io` from
/// `peer`, as every listener serves each of its connections (body bounds,
/// the send timeout, the peer on every request); over a transport of the
/// caller's own, or in memory (the fuzz target of the HTTP layer does).
/// Returns when the connection ends.
pub async fn serve_connection<I>(io: I, peer: Peer, router: Router, limits: Limits)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let send_timeout = limits.send_timeout;
    let conn = Conn {
        http,
        router,
        limits: Arc::new(limits),
        peer,
        watcher: None,
    };
    conn.run(SendTimeout::new(io, send_timeout), None).await;
}

/// One accepted connection, ready to be served.
struct Conn {
    http: hyper::server::conn::http1::Builder,
    router: Router,
    limits: Arc<Limits>,
    peer: Peer,
    /// The listener's graceful shutdown, which lets the request under way
    /// finish.
    watcher: Option<hyper_util::server::graceful::Watcher>,
}

impl Conn {
    /// Serves HTTP/1.1 on `io`; `tls` is `Some` over TLS, with the client's
    /// verified certificate if it presented one.
    async fn run<I>(self, io: I, tls: Option<Option<TlsClient>>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            http,
            router,
            limits,
            peer,
            watcher,
        } = self;
        let tls = tls.map(|c| c.map(Arc::new));
        let shown = peer.to_string();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let router = router.clone();
            let limits = limits.clone();
            let tls = tls.clone();
            let peer = peer.clone();
            async move {
                if let Some(len) = declared_length(&req)
                    && len > limits.max_body
                {
                    return Ok::<_, Infallible>(too_large(limits.max_body));
                }
                let (mut parts, body) = req.into_parts();
                parts.extensions.insert(ConnectInfo(peer));
                if let Some(client) = &tls {
                    parts.extensions.insert(Tls);
                    if let Some(c) = client {
                        parts.extensions.insert(TlsClient::clone(c));
                    }
                }
                let max = usize::try_from(limits.max_body).unwrap_or(usize::MAX);
                let body = axum::body::Body::new(http_body_util::Limited::new(
                    TimedBody::new(body, limits.body_timeout),
                    max,
                ));
                let req = hyper::Request::from_parts(parts, body);
                Ok(router.oneshot(req).await.into_response_infallible())
            }
        });
        let conn = http.serve_connection(TokioIo::new(io), service);
        let done = match watcher {
            Some(w) => w.watch(conn).await,
            None => conn.await,
        };
        if let Err(e) = done {
            tracing::trace!("connection from {shown}: {e}");
        }
    }
}

/// The `Content-Length` a request declares, if any (hyper has checked it).
fn declared_length<B>(req: &hyper::Request<B>) -> Option<u64> {
    req.headers()
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// 413, before any of the body is read; the connection closes after it.
fn too_large(max: u64) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    let mut resp = (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body too large: this daemon takes at most {max} bytes ([http] max_body)\n"
        ),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// A request body that must arrive whole within a time.
struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl TimedBody {
    fn new(inner: Incoming, within: Duration) -> TimedBody {
        TimedBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(within)),
        }
    }
}

/// The body did not arrive in time (`[http] body_timeout`).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the time allowed")]
struct BodyTimedOut;

impl http_body::Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A stream whose writes may wait for the client at most `timeout` each: a
/// client that does not read its answers is cut off, and what was queued
/// for it freed.
struct SendTimeout<I> {
    io: I,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> SendTimeout<I> {
    fn new(io: I, timeout: Duration) -> SendTimeout<I> {
        SendTimeout {
            io,
            timeout,
            stalled: None,
        }
    }

    /// `poll` made no progress: has the client kept us waiting too long?
    fn check<T>(
        &mut self,
        poll: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match poll {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client did not read its answer in time",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for SendTimeout<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for SendTimeout<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.check(poll, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.check(poll, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.check(poll, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.check(poll, cx)
    }
}

/// The router's answer (its error type is `Infallible`).
trait IntoResponseInfallible {
    fn into_response_infallible(self) -> axum::response::Response;
}

impl IntoResponseInfallible for Result<axum::response::Response, Infallible> {
    fn into_response_infallible(self) -> axum::response::Response {
        match self {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

/// Accept errors that say "try again later", not "the listener is broken".
fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::ECONNABORTED)
    ) || e.kind() == std::io::ErrorKind::ConnectionAborted
}
