//! Serving on TCP (`[http] listen`, Supervisor's `[inet_http_server]`),
//! in plain text or TLS.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

use super::conn::{Connections, Serving};
use super::{Limits, ServeError, ServerTls};

/// A bound, listening TCP socket, not yet serving.
#[derive(Debug)]
pub struct TcpServer {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    tls: Option<Arc<ServerTls>>,
    counts: Connections,
}

impl TcpServer {
    /// Binds `host:port` (`host` may be a name; `0.0.0.0` is every IPv4
    /// interface). Must be called inside a tokio runtime.
    pub async fn bind(host: &str, port: u16) -> Result<TcpServer, ServeError> {
        let shown = format!("{host}:{port}");
        let fail = |source| ServeError::Tcp {
            op: "bind",
            addr: shown.clone(),
            source,
        };
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        Ok(TcpServer {
            listener,
            addr,
            tls: None,
            counts: Connections::new(),
        })
    }

    /// Serves TLS with `tls` (which can be reloaded while serving).
    pub fn with_tls(mut self, tls: Arc<ServerTls>) -> TcpServer {
        self.tls = Some(tls);
        self
    }

    /// Counts this listener's connections in `counts`, with other
    /// listeners' (the limits then hold over all of them together).
    pub fn sharing(mut self, counts: &Connections) -> TcpServer {
        self.counts = counts.clone();
        self
    }

    /// The address bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `router` until `until` resolves and in-flight requests finish.
    pub async fn serve(
        self,
        router: Router,
        until: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.serve_with(router, Limits::default(), until).await
    }

    /// [`TcpServer::serve`] within `limits`.
    pub async fn serve_with(
        self,
        router: Router,
        limits: Limits,
        until: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let addr = self.addr.to_string();
        let serving = Serving {
            limits,
            counts: self.counts,
            tls: self.tls,
        };
        super::conn::serve(self.listener, router, serving, until)
            .await
            .map_err(|source| ServeError::Tcp {
                op: "serve on",
                addr,
                source,
            })
    }
}
