//! Listeners: a Unix socket ([`UnixServer`]) and TCP ([`TcpServer`]), each
//! serving a router through one accept loop that bounds what a client can
//! hold ([`Limits`]): connections in all and per peer, the time to send a
//! request's headers (also the time a kept-alive connection may sit idle)
//! and their size. A connection over a limit is closed at once, before it
//! costs more than its accept; the daemon's own work (spawning, reaping)
//! never waits for a client.
//!
//! Each request carries who sent it as a [`Peer`] (`ConnectInfo<Peer>`).

mod conn;
mod tcp;
mod unix;

use std::time::Duration;

pub use conn::Peer;
pub use tcp::TcpServer;
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            max_per_peer: 128,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
        }
    }
}
