//! The listeners over real sockets: TLS with client certificates, whose
//! subject reaches the request; a reload while a connection stays open;
//! the bounds on bodies and connections.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Extension;
use axum::routing::{get, post};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tend_config::{ClientCert, TlsFiles};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Limits, ServerTls, TcpServer, Tls, TlsClient};

struct Pki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("ca");
        Pki {
            dir: tempfile::tempdir().expect("tempdir"),
            ca_pem: cert.pem(),
            ca: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `cn` with `sans`.
    fn leaf(&self, cn: Option<&str>, sans: &[&str], client: bool) -> (String, String) {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        // (rcgen names every certificate unless told otherwise.)
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    fn files(&self, client_cert: Option<ClientCert>) -> TlsFiles {
        let (cert, key) = self.leaf(Some("server"), &["127.0.0.1"], false);
        let p = |n: &str| self.dir.path().join(n);
        std::fs::write(p("server.pem"), cert).expect("write");
        std::fs::write(p("server.key"), key).expect("write");
        std::fs::write(p("ca.pem"), &self.ca_pem).expect("write");
        TlsFiles {
            cert: p("server.pem"),
            key: p("server.key"),
            client_ca: client_cert.map(|_| p("ca.pem")),
            client_cert: client_cert.unwrap_or_default(),
        }
    }

    fn connector(&self, client: Option<&(String, String)>) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.expect("pem")).expect("root");
        }
        let b = rustls::ClientConfig::builder_with_provider(super::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let config = match client {
            None => b.with_no_client_auth(),
            Some((cert, key)) => {
                let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("certs");
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
                b.with_client_auth_cert(certs, key).expect("client auth")
            }
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// Who the request says the TLS client is.
async fn whoami(tls: Option<Extension<Tls>>, client: Option<Extension<TlsClient>>) -> String {
    match (tls, client) {
        (None, _) => "plain".to_string(),
        (Some(_), None) => "tls, no certificate".to_string(),
        (Some(_), Some(Extension(c))) => format!(
            "{} cn={:?} dns={:?} sha256={}",
            c.subject,
            c.common_name,
            c.dns_names,
            c.sha256.len()
        ),
    }
}

async fn serve(files: TlsFiles, limits: Limits) -> (std::net::SocketAddr, Arc<ServerTls>) {
    let tls = Arc::new(ServerTls::load(files).expect("tls"));
    let server = TcpServer::bind("127.0.0.1", 0)
        .await
        .expect("bind")
        .with_tls(tls.clone());
    let addr = server.local_addr();
    let router = Router::new().route("/who", get(whoami)).route(
        "/echo",
        post(|body: axum::body::Bytes| async move { body.len().to_string() }),
    );
    tokio::spawn(server.serve_with(router, limits, std::future::pending()));
    (addr, tls)
}

async fn request(
    stream: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    path: &str,
) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return body.to_string();
            }
        }
    }
}

#[tokio::test]
async fn a_verified_client_certificate_names_the_client_on_every_request() {
    let pki = Pki::new();
    let (addr, _tls) = serve(pki.files(Some(ClientCert::Optional)), Limits::default()).await;
    let name = ServerName::try_from("127.0.0.1").expect("name");

    let alice = pki.leaf(Some("alice"), &["alice.example"], true);
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut s = pki
        .connector(Some(&alice))
        .connect(name.clone(), tcp)
        .await
        .expect("tls");
    assert_eq!(
        request(&mut s, "/who").await,
        "alice cn=Some(\"alice\") dns=[\"alice.example\"] sha256=64"
    );
    // Every request of the connection carries it.
    assert!(request(&mut s, "/who").await.starts_with("alice "));

    // No CN: the first DNS name.
    let bot = pki.leaf(None, &["bot.example"], true);
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut s = pki
        .connector(Some(&bot))
        .connect(name.clone(), tcp)
        .await
        .expect("tls");
    assert!(
        request(&mut s, "/who")
            .await
            .starts_with("bot.example cn=None")
    );

    // Optional: no certificate is fine, and says so.
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut s = pki
        .connector(None)
        .connect(name.clone(), tcp)
        .await
        .expect("tls");
    assert_eq!(request(&mut s, "/who").await, "tls, no certificate");

    // A certificate of another CA is refused.
    let other = Pki::new().leaf(Some("mallory"), &[], true);
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let refused = match pki.connector(Some(&other)).connect(name, tcp).await {
        Err(_) => true,
        Ok(mut s) => {
            let _ = s.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n").await;
            let mut buf = [0u8; 16];
            !matches!(s.read(&mut buf).await, Ok(n) if n > 0)
        }
    };
    assert!(refused);
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_and_keeps_open_connections() {
    let pki = Pki::new();
    let files = pki.files(None);
    let (addr, tls) = serve(files.clone(), Limits::default()).await;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let fingerprint = |s: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        let certs = s.get_ref().1.peer_certificates().expect("certs");
        super::tls::sha256_hex(certs[0].as_ref())
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut old = pki
        .connector(None)
        .connect(name.clone(), tcp)
        .await
        .expect("tls");
    let first = fingerprint(&old);
    assert_eq!(request(&mut old, "/who").await, "tls, no certificate");

    let (cert, key) = pki.leaf(Some("server"), &["127.0.0.1"], false);
    std::fs::write(&files.cert, cert).expect("write");
    std::fs::write(&files.key, key).expect("write");
    tls.reload().expect("reload");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let new = pki
        .connector(None)
        .connect(name.clone(), tcp)
        .await
        .expect("tls");
    assert_ne!(fingerprint(&new), first);
    assert_eq!(request(&mut old, "/who").await, "tls, no certificate");
    assert_eq!(fingerprint(&old), first);

    // A key that is not the certificate's: refused, the old one stays.
    let (_, other_key) = pki.leaf(Some("server"), &["127.0.0.1"], false);
    std::fs::write(&files.key, other_key).expect("write");
    let e = tls.reload().expect_err("mismatched key");
    assert!(e.to_string().starts_with("TLS setup with"), "{e}");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let still = pki.connector(None).connect(name, tcp).await.expect("tls");
    assert_eq!(fingerprint(&still), fingerprint(&new));
}

#[tokio::test]
async fn bodies_and_handshakes_are_bounded() {
    let pki = Pki::new();
    let limits = Limits {
        max_body: 1000,
        header_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (addr, _tls) = serve(pki.files(None), limits).await;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let post = |len: usize, chunked: bool| {
        let connector = pki.connector(None);
        let name = name.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let mut s = connector.connect(name, tcp).await.expect("tls");
            let head = if chunked {
                format!(
                    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{len:x}\r\n"
                )
            } else {
                format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n")
            };
            s.write_all(head.as_bytes()).await.expect("head");
            let _ = s.write_all(&vec![b'x'; len]).await;
            if chunked {
                let _ = s.write_all(b"\r\n0\r\n\r\n").await;
            }
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            String::from_utf8_lossy(&buf[..n])
                .split(' ')
                .nth(1)
                .unwrap_or("")
                .to_string()
        }
    };
    assert_eq!(post(1000, false).await, "200");
    assert_eq!(post(1001, false).await, "413");
    assert_eq!(post(1000, true).await, "200");
    assert_eq!(post(5000, true).await, "413");
    // A client that opens a connection and never says hello is let go.
    let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("closed by the daemon in time");
    assert!(matches!(n, Ok(0) | Err(_)));
}
