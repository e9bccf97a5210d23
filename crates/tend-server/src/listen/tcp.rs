//! Serving on TCP (Supervisor's `[inet_http_server]`).

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;

use super::{Limits, ServeError};

/// A bound, listening TCP socket, not yet serving.
#[derive(Debug)]
pub struct TcpServer {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
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
        Ok(TcpServer { listener, addr })
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
        super::conn::serve(self.listener, router, limits, until)
            .await
            .map_err(|source| ServeError::Tcp {
                op: "serve on",
                addr,
                source,
            })
    }
}
