//! Listeners: a Unix socket ([`UnixServer`]) and TCP ([`TcpServer`]), each
//! serving a router through one accept loop that bounds what a client can
//! hold ([`Limits`]): connections in all and per peer, the time to send a
//! request's headers (also the time a kept-alive connection may sit idle)
//! and their size. A connection over a limit is closed at once, before it
//! costs more than its accept; the daemon's own work (spawning, reaping)
//! never waits for a client.
//!
//! Each request carries who sent it as a [`Peer`] (`ConnectInfo<Peer>`);
//! one that came over TLS also carries [`Tls`], and a [`TlsClient`] when
//! the client presented a verified certificate.

mod conn;
mod tcp;
pub mod tls;
mod unix;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use conn::{Connections, Peer, serve_connection};
pub use tcp::TcpServer;
pub use tls::{ServerTls, Tls, TlsClient, TlsError};
pub use unix::{ServeError, UnixServer, serve_unix};

/// What one client may hold of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Open connections in all, on this listener.
    pub max_connections: usize,
    /// Open connections from one peer (a Unix uid, or an IP address).
    pub max_per_peer: usize,
    /// Time a client has to send a request's headers, counted from the
    /// connection (or the end of the previous response): also how long an
    /// idle kept-alive connection stays open.
    pub header_timeout: Duration,
    /// Bytes of a request's head (request line and headers) held at most.
    pub max_header_bytes: usize,
    /// Bytes of a request's body: a larger `Content-Length` is answered 413
    /// before anything is read, a longer chunked body is cut there (413).
    pub max_body: u64,
    /// Time a request's body has to arrive whole once its head is in.
    pub body_timeout: Duration,
    /// Time one write of an answer may wait for the client to read: then
    /// the connection is closed (a client that never reads holds nothing).
    pub send_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_http(&tend_config::HttpLimits::default())
    }
}

impl Limits {
    /// The limits a config's `[http]` section sets (the connection counts
    /// before a daemon lowers them to its descriptor budget).
    pub fn from_http(h: &tend_config::HttpLimits) -> Limits {
        Limits {
            max_connections: h.max_connections,
            max_per_peer: h.max_connections_per_peer,
            header_timeout: h.header_timeout,
            max_header_bytes: 64 * 1024,
            max_body: h.max_body,
            body_timeout: h.body_timeout,
            send_timeout: h.send_timeout,
        }
    }
}
