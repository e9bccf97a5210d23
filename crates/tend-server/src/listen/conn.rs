//! The accept loop every listener runs: bounded connections, one hyper
//! HTTP/1.1 connection per client with a header timeout, the peer on every
//! request, and a graceful end.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
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
    fn take(counts: &Arc<Mutex<Counts>>, key: PeerKey, limits: &Limits) -> Option<Slot> {
        let mut c = lock(counts);
        let mine = c.by_peer.get(&key).copied().unwrap_or(0);
        if c.total >= limits.max_connections || mine >= limits.max_per_peer {
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
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, Peer)> {
        let (stream, _) = tokio::net::UnixListener::accept(self).await?;
        let peer = unix_peer(&stream);
        Ok((stream, peer))
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, Peer)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, Peer::tcp(addr.ip())))
    }
}

/// Accepts and serves connections until `until` resolves, then lets every
/// open connection finish its request (streams end when their own latch
/// tells them to) and returns.
pub(super) async fn serve<A: Accept>(
    listener: A,
    router: Router,
    limits: Limits,
    until: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let counts = Arc::new(Mutex::new(Counts::default()));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
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
        let Some(slot) = Slot::take(&counts, peer.key(), &limits) else {
            tracing::debug!("refused a connection from {peer}: too many open");
            drop(io);
            continue;
        };
        let router = router.clone();
        let shown = peer.to_string();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer.clone()));
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(req).await.into_response_infallible()) }
        });
        let conn = http.serve_connection(TokioIo::new(io), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                tracing::trace!("connection from {shown}: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
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
