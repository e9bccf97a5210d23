//! Sending: OTLP over HTTP/1.1 (protobuf bodies) to the collector, with a
//! connection kept per signal, TLS for `https://`, and the answer codes of
//! the OTLP specification: 2xx done, 429/502/503/504 (and network errors)
//! tried again later, anything else dropped.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where one signal goes: `http[s]://host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https://`.
    pub tls: bool,
    /// The host name or address (without brackets).
    pub host: String,
    /// The port (80 or 443 when the URL has none).
    pub port: u16,
    /// The path and query (`/v1/logs`).
    pub path: String,
}

impl Url {
    /// Parses an `http://` or `https://` URL.
    pub fn parse(url: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url:?} is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let port = match port {
            Some(p) => p
                .parse()
                .map_err(|_| format!("{url:?}: {p:?} is not a port"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Url {
            tls,
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// `host:port` as the `Host` header wants it.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.tls, self.port) {
            (true, 443) | (false, 80) => host,
            (_, p) => format!("{host}:{p}"),
        }
    }
}

/// Why an export failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth trying again (after this long, when the collector said).
    Retry {
        /// `Retry-After`, when given.
        after: Option<Duration>,
        /// What happened.
        why: String,
    },
    /// Not worth trying again: the batch is dropped.
    Drop(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Retry { why, .. } | Failure::Drop(why) => f.write_str(why),
        }
    }
}

/// One signal's connection to the collector.
pub struct Client {
    url: Url,
    headers: Arc<Vec<(String, String)>>,
    timeout: Duration,
    tls: Option<tokio_rustls::TlsConnector>,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    /// A client for `url` (nothing is connected until the first export).
    pub fn new(
        url: Url,
        headers: Arc<Vec<(String, String)>>,
        timeout: Duration,
        tls: Option<tokio_rustls::TlsConnector>,
    ) -> Client {
        Client {
            url,
            headers,
            timeout,
            tls,
            conn: None,
        }
    }

    /// Where it sends.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// POSTs one protobuf body; the connection is kept for the next one.
    pub async fn post(&mut self, body: Bytes) -> Result<(), Failure> {
        match tokio::time::timeout(self.timeout, self.exchange(body)).await {
            Ok(r) => r,
            Err(_) => {
                self.conn = None;
                Err(Failure::Retry {
                    after: None,
                    why: format!("no answer within {:?}", self.timeout),
                })
            }
        }
    }

    async fn exchange(&mut self, body: Bytes) -> Result<(), Failure> {
        let retry = |why: String| Failure::Retry { after: None, why };
        let mut sender = match self.conn.take() {
            Some(s) if s.is_ready() => s,
            _ => self.connect().await.map_err(retry)?,
        };
        let mut req = hyper::Request::post(self.url.path.as_str())
            .header(hyper::header::HOST, self.url.authority())
            .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
            .header(
                hyper::header::USER_AGENT,
                concat!("tend/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in self.headers.iter() {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| Failure::Drop(format!("cannot build the request: {e}")))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| retry(format!("{e}")))?;
        let status = resp.status();
        let after = resp
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read the answer to its end so the connection can be used again.
        let answer = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        self.conn = Some(sender);
        match status.as_u16() {
            200..=299 => Ok(()),
            429 | 502 | 503 | 504 => Err(Failure::Retry {
                after,
                why: format!("the collector answered {status}"),
            }),
            _ => Err(Failure::Drop(format!(
                "the collector answered {status}: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(200)]).trim()
            ))),
        }
    }

    async fn connect(&mut self) -> Result<SendRequest<Full<Bytes>>, String> {
        let url = &self.url;
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        if !url.tls {
            return handshake(TokioIo::new(tcp)).await;
        }
        let Some(tls) = &self.tls else {
            return Err("https is not available (no TLS roots)".into());
        };
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| format!("{:?} is not a TLS server name: {e}", url.host))?;
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        handshake(TokioIo::new(stream)).await
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    // The connection task ends when the sender is dropped or the peer closes.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// The TLS client config: the system's roots, plus `ca_file` when given
/// (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
pub fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut reader = std::io::Cursor::new(pem);
        for cert in rustls_pemfile_certs(&mut reader) {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The certificates of a PEM file.
fn rustls_pemfile_certs(
    reader: &mut std::io::Cursor<Vec<u8>>,
) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_reader_iter(reader)
        .filter_map(Result::ok)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://localhost:4318/v1/logs").expect("url");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "localhost", 4318, "/v1/logs")
        );
        assert_eq!(u.authority(), "localhost:4318");
        let u = Url::parse("https://api.honeycomb.io").expect("url");
        assert_eq!((u.tls, u.port, u.path.as_str()), (true, 443, "/"));
        assert_eq!(u.authority(), "api.honeycomb.io");
        let u = Url::parse("http://[::1]:9/x").expect("url");
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(u.authority(), "[::1]:9");
        assert!(Url::parse("grpc://x").is_err());
        assert!(Url::parse("http://:80").is_err());
        assert!(Url::parse("http://x:port").is_err());
    }
}
