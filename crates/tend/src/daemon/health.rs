//! The health listener (`[http] health = "HOST:PORT"`): a small TCP
//! listener of its own that serves `GET /healthz` and `GET /readyz` and
//! nothing else, without credentials, for a kubelet's probes (see
//! `tend_server::health`). Bound with the other listeners, before anything
//! is spawned.

use tend_config::Config;
use tend_server::{Daemon, ServeError, TcpServer};
use tokio::task::JoinHandle;
use tracing::info;

/// Binds the health listener, when the config asks for one.
pub(super) async fn bind(config: &Config) -> anyhow::Result<Option<TcpServer>> {
    match &config.daemon.platform.health {
        Some(h) => Ok(Some(TcpServer::bind(&h.host, h.port).await?)),
        None => Ok(None),
    }
}

/// Serves it until `until` resolves.
pub(super) fn serve(
    server: TcpServer,
    daemon: &Daemon,
    until: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<Result<(), ServeError>> {
    info!(
        "serving /healthz and /readyz on http://{}",
        server.local_addr()
    );
    tokio::spawn(server.serve(tend_server::health_only_router(daemon.clone()), until))
}
