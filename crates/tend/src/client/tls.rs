//! The client's TLS (rustls over a blocking `TcpStream`): the daemon's
//! certificate checked against a CA file, a pinned SHA-256, or the system's
//! roots; a client certificate for mutual TLS.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tend_server::listen::tls::{provider, read_certs};

use super::host::{Host, Trust};

/// The rustls client configuration for `host`.
pub(super) fn config(host: &Host) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS setup")?;
    let builder = match &host.ca {
        Trust::Ca(file) => builder.with_root_certificates(roots_from(file)?),
        Trust::System => builder.with_root_certificates(system_roots()?),
        Trust::Pin(sha256) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                sha256: *sha256,
                provider,
            })),
    };
    let mut config = match &host.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = read_certs("--cert", cert)?;
            let key = read_key(key)?;
            builder
                .with_client_auth_cert(certs, key)
                .with_context(|| format!("cannot use the client certificate {}", cert.display()))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = tend_config::read::read_bytes(path, &mut tend_config::read::Budget::new())
        .with_context(|| format!("cannot read the key {}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| anyhow::anyhow!("{}: no usable private key in PEM: {e}", path.display()))
}

fn roots_from(file: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("--ca", file)? {
        roots
            .add(cert)
            .with_context(|| format!("{}: not a usable CA certificate", file.display()))?;
    }
    Ok(roots)
}

fn system_roots() -> anyhow::Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        anyhow::bail!(
            "no trusted root certificates on this system ({}); give the daemon's CA with --ca FILE or its certificate's hash with --pin sha256:...",
            crate::plural(found.errors.len(), "error")
        );
    }
    Ok(roots)
}

/// The server name to check the certificate against (a DNS name or an IP).
pub(super) fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    ServerName::try_from(host.to_string())
        .map_err(|_| anyhow::anyhow!("{host:?} is neither a host name nor an IP address"))
}

/// Accepts exactly one certificate, by the SHA-256 of its DER, and still
/// checks that the server holds its key (the handshake's signatures).
#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if got.as_ref() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the daemon's certificate is sha256:{}, not the pinned one",
                tend_server::listen::tls::sha256_hex(end_entity.as_ref())
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
