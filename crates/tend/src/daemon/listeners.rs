//! The TCP listeners: `[inet_http_server]` of a supervisord.conf and each
//! address of tend.toml's `[http] listen`, with their TLS, what they may be
//! exposed to, and the limits of every listener.

use std::sync::Arc;

use anyhow::Context;
use tend_config::{DaemonConfig, InetListen};
use tend_server::{Connections, Limits, ServerTls, TcpServer};
use tracing::warn;

/// Every TCP listener of the config: `[inet_http_server]`, then `[http] listen`.
pub(super) fn tcp_listeners(daemon: &DaemonConfig) -> Vec<InetListen> {
    daemon
        .inet
        .iter()
        .chain(&daemon.http.listen)
        .cloned()
        .collect()
}

/// What a listener is called in messages.
fn shown(l: &InetListen) -> String {
    let host = if l.host.contains(':') {
        format!("[{}]", l.host)
    } else {
        l.host.clone()
    };
    format!(
        "{}://{host}:{}",
        if l.tls.is_some() { "https" } else { "http" },
        l.port
    )
}

/// Whether a client of `l` must prove who it is: HTTP Basic credentials, or
/// a client certificate that the `client_ca` verifies, required.
fn authenticates(l: &InetListen) -> bool {
    l.auth.is_some() || requires_client_cert(l)
}

/// Whether every client of `l` presents a certificate its `client_ca`
/// verified.
pub(super) fn requires_client_cert(l: &InetListen) -> bool {
    l.tls.as_ref().is_some_and(|t| {
        t.client_ca.is_some() && t.client_cert == tend_config::ClientCert::Required
    })
}

/// Refuses a listener that other machines can reach without TLS or without
/// authentication, unless the config says `insecure = true` (then warns, at
/// every start). An exception keeps existing supervisord.conf files
/// working: `[inet_http_server]` with a username and password but no TLS
/// starts, with a loud warning, since supervisord serves it so.
///
/// Loopback addresses (`127.0.0.0/8`, `::1`, `localhost`) are this
/// machine's only and pass as they are.
///
/// `access` says the config has `[access]` users: every client of a TCP
/// listener must then prove who it is (an anonymous one gets no rights).
pub(super) fn check_exposure(
    l: &InetListen,
    from_supervisord: bool,
    access: bool,
) -> anyhow::Result<()> {
    if tend_config::http::is_loopback(&l.host) {
        return Ok(());
    }
    let url = shown(l);
    let tls = l.tls.is_some();
    let auth = authenticates(l) || access;
    if tls && auth {
        return Ok(());
    }
    let lacks = match (tls, auth) {
        (false, false) => "without TLS and without authentication",
        (false, true) => "without TLS (passwords cross the network in clear text)",
        _ => {
            "without authentication (anyone who reaches it can start, stop and signal every process)"
        }
    };
    if l.insecure {
        warn!("INSECURE: serving {url} {lacks}, as the config says (insecure = true)");
        return Ok(());
    }
    if from_supervisord && auth {
        warn!(
            "INSECURE: serving {url} {lacks}, as supervisord does; add tls_cert and tls_key to [inet_http_server] (or insecure = true to silence nothing but this refusal)"
        );
        return Ok(());
    }
    let section = if from_supervisord {
        "[inet_http_server]"
    } else {
        "[http]"
    };
    anyhow::bail!(
        "refusing to serve {url} {lacks}: other machines can reach {}. Listen on 127.0.0.1, add tls_cert and tls_key{}, or say insecure = true in {section} to serve it anyway",
        l.host,
        if auth {
            ""
        } else if from_supervisord {
            " and a username and password"
        } else {
            " and client_ca (client certificates)"
        }
    )
}

/// A TCP listener, bound, with what it serves.
pub(super) struct TcpListener {
    pub(super) server: TcpServer,
    pub(super) conf: InetListen,
}

impl TcpListener {
    /// `http://addr` or `https://addr`, with the port bound.
    pub(super) fn url(&self) -> String {
        let addr = self.server.local_addr();
        format!(
            "{}://{addr}",
            if self.conf.tls.is_some() {
                "https"
            } else {
                "http"
            }
        )
    }
}

/// Loads the TLS files of, and binds, every TCP listener (checked with
/// [`check_exposure`] first); they count
/// their connections together in `counts`. The TLS of each is returned too,
/// for reloads.
pub(super) async fn bind_tcp(
    daemon: &DaemonConfig,
    counts: &Connections,
) -> anyhow::Result<(Vec<TcpListener>, Vec<Arc<ServerTls>>)> {
    let listeners = tcp_listeners(daemon);
    let mut bound = Vec::new();
    let mut tls_all = Vec::new();
    for conf in listeners {
        let mut server = TcpServer::bind(&conf.host, conf.port).await?;
        if let Some(files) = &conf.tls {
            let tls = Arc::new(
                ServerTls::load(files.clone())
                    .with_context(|| format!("cannot serve TLS on {}", shown(&conf)))?,
            );
            server = server.with_tls(tls.clone());
            tls_all.push(tls);
        }
        bound.push(TcpListener {
            server: server.sharing(counts),
            conf,
        });
    }
    Ok((bound, tls_all))
}

/// Reads every listener's TLS files again and swaps them in, all or none:
/// a file that cannot be read or does not fit leaves every listener on the
/// certificates it had. Open connections keep theirs either way.
pub(super) fn reload_tls(all: &[Arc<ServerTls>]) -> Result<(), String> {
    let mut ready = Vec::with_capacity(all.len());
    for tls in all {
        ready.push(
            tls.prepare()
                .map_err(|e| format!("cannot reload the TLS certificate: {e}"))?,
        );
    }
    for (tls, config) in all.iter().zip(ready) {
        tls.install(config);
    }
    if !all.is_empty() {
        tracing::info!("reloaded the TLS certificates of {} listeners", all.len());
    }
    Ok(())
}

/// The limits of the Unix socket and of the TCP listeners, from `[http]`
/// within the descriptor budget.
pub(super) fn limits(
    daemon: &DaemonConfig,
    caps: super::limits::ConnectionCaps,
) -> (Limits, Limits) {
    let base = Limits::from_http(&daemon.http.limits);
    let with_cap = |cap: usize| {
        let mut l = base.clone();
        l.max_connections = cap.max(1);
        l.max_per_peer = l.max_per_peer.min(l.max_connections);
        l
    };
    (with_cap(caps.unix), with_cap(caps.tcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(host: &str, tls: bool, auth: bool, insecure: bool) -> InetListen {
        InetListen {
            host: host.into(),
            port: 9001,
            auth: auth.then(|| tend_config::Auth::Plain {
                username: "u".into(),
                password: "p".into(),
            }),
            tls: tls.then(|| tend_config::TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into(),
                client_ca: None,
                client_cert: tend_config::ClientCert::Required,
            }),
            insecure,
        }
    }

    #[test]
    fn exposure() {
        // Loopback: anything goes.
        for host in ["127.0.0.1", "127.0.0.2", "::1", "localhost"] {
            check_exposure(&listen(host, false, false, false), false, false).expect(host);
        }
        // Elsewhere: TLS and authentication, or insecure = true.
        check_exposure(&listen("0.0.0.0", true, true, false), false, false).expect("tls + auth");
        for (tls, auth) in [(false, false), (true, false), (false, true)] {
            let l = listen("0.0.0.0", tls, auth, false);
            let e = check_exposure(&l, false, false).expect_err("refused");
            assert!(e.to_string().starts_with("refusing to serve"), "{e}");
            check_exposure(&listen("0.0.0.0", tls, auth, true), false, false).expect("insecure");
        }
        // A supervisord.conf with credentials and no TLS still starts.
        check_exposure(&listen("0.0.0.0", false, true, false), true, false).expect("supervisord");
        let e = check_exposure(&listen("0.0.0.0", false, false, false), true, false)
            .expect_err("no auth");
        assert_eq!(
            e.to_string(),
            "refusing to serve http://0.0.0.0:9001 without TLS and without authentication: other machines can reach 0.0.0.0. Listen on 127.0.0.1, add tls_cert and tls_key and a username and password, or say insecure = true in [inet_http_server] to serve it anyway"
        );
        // Client certificates count as authentication.
        let mut mtls = listen("10.1.2.3", true, false, false);
        if let Some(t) = &mut mtls.tls {
            t.client_ca = Some("ca.pem".into());
        }
        check_exposure(&mtls, false, false).expect("mtls");
        // [access] users count as authentication.
        check_exposure(&listen("0.0.0.0", true, false, false), false, true).expect("access");
    }
}
