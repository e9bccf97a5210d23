//! Certificates made for a test (rcgen): a CA, server and client
//! certificates it signs, written as PEM files; a blocking rustls client
//! that tells which certificate the daemon showed; raw HTTP helpers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A certificate authority of a test.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate, PEM.
    pub pem: String,
}

/// A certificate and its key, as PEM files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SHA-256 of the certificate's DER, lower-case hex.
    pub sha256: String,
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA's certificate to `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.pem).expect("write CA");
        path.to_path_buf()
    }

    /// A certificate for `sans` (IP addresses or names) with common name
    /// `cn`, for a server or a client, written as `dir/stem.pem` and
    /// `dir/stem.key`.
    pub fn leaf(&self, dir: &Path, stem: &str, cn: &str, sans: &[&str], client: bool) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let leaf = Leaf {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
            sha256: sha256_hex(cert.der()),
        };
        // Written aside, then renamed over the old ones, key first.
        let tmp_cert = dir.join(format!(".{stem}.pem.new"));
        let tmp_key = dir.join(format!(".{stem}.key.new"));
        std::fs::write(&tmp_cert, cert.pem()).expect("write cert");
        std::fs::write(&tmp_key, key.serialize_pem()).expect("write key");
        std::fs::rename(&tmp_key, &leaf.key).expect("rename key");
        std::fs::rename(&tmp_cert, &leaf.cert).expect("rename cert");
        leaf
    }
}

pub fn sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `127.0.0.1:port` trusting `ca_pem`, presenting
/// `client` if given; the handshake's error otherwise.
pub fn connect(port: u16, ca_pem: &str, client: Option<&Leaf>) -> Result<TlsStream, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("add ca");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let certs = CertificateDer::pem_file_iter(&leaf.cert)
                .expect("cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("certs");
            let key = PrivateKeyDer::from_pem_file(&leaf.key).expect("key");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client auth")
        }
    };
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// The SHA-256 of the certificate the server of `stream` showed.
pub fn server_sha256(stream: &TlsStream) -> String {
    let certs = stream
        .conn
        .peer_certificates()
        .expect("server certificates");
    sha256_hex(certs[0].as_ref())
}

/// One XML-RPC `supervisor.getState` on a kept-alive connection: the status
/// code and the body.
pub fn get_state(stream: &mut (impl Read + Write)) -> (u16, String) {
    let body = "<?xml version='1.0'?><methodCall><methodName>supervisor.getState</methodName></methodCall>";
    let req = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).expect("send");
    read_response(stream)
}

/// Reads one HTTP/1.1 response with a Content-Length (or chunked) body.
pub fn read_response(stream: &mut impl Read) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => panic!(
                "connection closed in the head: {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let lower = head.to_ascii_lowercase();
    let body = if let Some(len) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).expect("body");
        body
    } else if lower.contains("transfer-encoding: chunked") {
        let mut body = Vec::new();
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                stream.read_exact(&mut byte).expect("chunk size");
                line.push(byte[0]);
            }
            let n = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).expect("hex");
            let mut chunk = vec![0u8; n + 2];
            stream.read_exact(&mut chunk).expect("chunk");
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body
    } else {
        Vec::new()
    };
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The URLs the daemon says it serves TCP on (`serving ... on URL`).
pub fn served_urls(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("serving Supervisor's XML-RPC"))
        .filter_map(|l| l.split(" on ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The port of a `scheme://host:port` URL.
pub fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// A TCP port free on every interface now (see the harness).
pub use crate::harness::free_port;

/// The URLs `d` serves TCP on, once it has said so in its log.
pub fn wait_urls(d: &mut crate::harness::Daemon, n: usize) -> Vec<String> {
    d.wait_for(
        "the daemon to serve its TCP listeners",
        std::time::Duration::from_secs(10),
        |d| served_urls(&d.log_text()).len() >= n,
    );
    served_urls(&d.log_text())
}
