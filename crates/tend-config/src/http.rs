//! What the daemon's HTTP listeners are, beside the Unix socket: TCP
//! addresses (`[http] listen` in tend.toml, `[inet_http_server]` in a
//! supervisord.conf), their TLS files, and the bounds every listener keeps
//! so that no client can hurt the daemon (`docs/security.md`).

use std::path::PathBuf;
use std::time::Duration;

/// The `[http]` section of tend.toml (a supervisord.conf gets the
/// defaults, with its `[inet_http_server]` in [`crate::DaemonConfig::inet`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpConfig {
    /// TCP listeners (`[http] listen`), in file order; none by default.
    pub listen: Vec<crate::InetListen>,
    /// What every listener (these, the Unix socket, `[inet_http_server]`)
    /// lets one request and one client hold.
    pub limits: HttpLimits,
}

/// The TLS files of a TCP listener (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own first (`tls_cert`).
    pub cert: PathBuf,
    /// Its private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) (`tls_key`).
    pub key: PathBuf,
    /// Client certificates are verified against these CAs (`client_ca`):
    /// mutual TLS.
    pub client_ca: Option<PathBuf>,
    /// Whether a client must present a certificate when `client_ca` is set
    /// (`client_cert`).
    pub client_cert: ClientCert,
}

/// Whether a client certificate is required (`client_cert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientCert {
    /// A client without a certificate is refused in the handshake.
    #[default]
    Required,
    /// A client may present one (and is then verified) or not (and then
    /// authenticates otherwise, e.g. with a password).
    Optional,
}

/// Bounds on what one request and one client may hold of the daemon. Each
/// is far above what a legitimate client reaches; over one is a clear 4xx
/// (or an XML-RPC fault), never a grown daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Bytes of a request body (`max_body`, 1 MiB): a larger
    /// `Content-Length` is answered 413 before the body is read.
    pub max_body: u64,
    /// Open connections of one listener kind: the Unix socket, and every
    /// TCP listener together (`max_connections`, 1024). The descriptor
    /// budget may lower it (see `docs/security.md`).
    pub max_connections: usize,
    /// Open connections from one peer: an IP address, or a Unix uid other
    /// than the daemon's own (`max_connections_per_peer`, 256).
    pub max_connections_per_peer: usize,
    /// Time to send a request's head, counted from the connection (or the
    /// TLS handshake, also bounded by it) or the end of the previous answer:
    /// also how long an idle connection stays open (`header_timeout`, 10 s).
    pub header_timeout: Duration,
    /// Time to send a request's whole body once its head is in
    /// (`body_timeout`, 30 s).
    pub body_timeout: Duration,
    /// Time an answer may wait for a client that does not read it
    /// (`send_timeout`, 30 s): the connection is closed.
    pub send_timeout: Duration,
    /// Calls in one `system.multicall` (`max_multicall`, 4096).
    pub max_multicall: usize,
    /// Bytes of one XML-RPC answer held in memory (`max_response`, 32 MiB):
    /// a multicall (or a log read) that would answer more gets a fault.
    pub max_response: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body: 1 << 20,
            max_connections: 1024,
            max_connections_per_peer: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            max_multicall: 4096,
            max_response: 32 << 20,
        }
    }
}

/// `host:port` as written in `[http] listen`: `127.0.0.1:9001`,
/// `[::1]:9001`, `localhost:9001`; the port is required (0 picks one).
pub fn parse_listen(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not host:port (e.g. \"127.0.0.1:9001\")"))?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .ok_or_else(|| format!("{s:?}: an IPv6 address is written [::1]:PORT"))?,
        None if host.contains(':') => {
            return Err(format!(
                "{s:?}: write an IPv6 address in brackets, [::1]:PORT"
            ));
        }
        None => host,
    };
    if host.is_empty() {
        return Err(format!(
            "{s:?} has no host: write 127.0.0.1:PORT for this machine only, 0.0.0.0:PORT for every interface"
        ));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{s:?}: {port:?} is not a port number (0 to 65535)"))?;
    Ok((host.to_string(), port))
}

/// Whether `host` names only this machine: `localhost`, or an address in
/// 127.0.0.0/8 or `::1`.
pub fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let ok = |s: &str| parse_listen(s).expect(s);
        assert_eq!(ok("127.0.0.1:9001"), ("127.0.0.1".into(), 9001));
        assert_eq!(ok("[::1]:0"), ("::1".into(), 0));
        assert_eq!(ok("localhost:80"), ("localhost".into(), 80));
        for bad in [
            "9001",
            ":9001",
            "::1:9001",
            "[::1:9001",
            "a:b",
            "a:70000",
            "",
        ] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
        assert!(is_loopback("127.0.0.2") && is_loopback("::1") && is_loopback("LocalHost"));
        assert!(!is_loopback("0.0.0.0") && !is_loopback("10.0.0.1") && !is_loopback("example"));
    }
}
