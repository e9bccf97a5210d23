//! TLS on a TCP listener (rustls, with ring as its provider): the server's
//! certificate and key, optionally client certificates verified against a
//! CA (mutual TLS), reloadable while connections stay open.
//!
//! A listener holds a [`ServerTls`]; each accepted connection takes the
//! configuration current at that moment, so [`ServerTls::reload`] (on
//! SIGHUP, `tend reload`) swaps it for the connections to come and leaves
//! the open ones on the certificate they began with.
//!
//! A request that came over TLS carries a [`Tls`] extension; one whose
//! client presented a certificate that the `client_ca` verified also
//! carries a [`TlsClient`] naming it, for the access rules to map onto a
//! user.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tend_config::{ClientCert, TlsFiles};

/// The marker extension on every request that came over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tls;

/// The verified client certificate of a TLS connection, an extension on
/// each of its requests (`req.extensions().get::<TlsClient>()`).
///
/// Present only when the listener has a `client_ca` and the client's
/// certificate chains to it (rustls checked the chain, the validity dates
/// and the client-auth usage in the handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClient {
    /// Who the certificate names: its subject's common name (CN), or else
    /// its first DNS name, or else its first URI (subject alternative names).
    pub subject: String,
    /// The subject's common name (CN), if it has one.
    pub common_name: Option<String>,
    /// The DNS names among its subject alternative names.
    pub dns_names: Vec<String>,
    /// The URIs among its subject alternative names (e.g. SPIFFE ids).
    pub uris: Vec<String>,
    /// The SHA-256 of the certificate (DER), lower-case hex: what
    /// `tend --pin sha256:...` and `openssl x509 -fingerprint -sha256` show.
    pub sha256: String,
}

impl TlsClient {
    /// The client named by the end-entity certificate `der`; `None` when it
    /// does not parse (which cannot happen after rustls verified it).
    pub fn from_der(der: &[u8]) -> Option<TlsClient> {
        let cert_der = CertificateDer::from(der);
        let cert = webpki::EndEntityCert::try_from(&cert_der).ok()?;
        let common_name = common_name(cert.subject());
        let dns_names: Vec<String> = cert.valid_dns_names().map(str::to_string).collect();
        let uris: Vec<String> = cert.valid_uri_names().map(str::to_string).collect();
        let subject = common_name
            .clone()
            .or_else(|| dns_names.first().cloned())
            .or_else(|| uris.first().cloned())?;
        Some(TlsClient {
            subject,
            common_name,
            dns_names,
            uris,
            sha256: sha256_hex(der),
        })
    }
}

/// Lower-case hex of the SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// One DER TLV at the start of `der`: its tag, its contents, what follows.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The first common name (OID 2.5.4.3) in the contents of an X.501 Name.
fn common_name(mut name: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    while !name.is_empty() {
        let (tag, mut set, rest) = tlv(name)?;
        name = rest;
        if tag != 0x31 {
            continue;
        }
        while !set.is_empty() {
            let (tag, attr, rest) = tlv(set)?;
            set = rest;
            if tag != 0x30 {
                continue;
            }
            let (tag, oid, value) = tlv(attr)?;
            if tag != 0x06 || oid != CN {
                continue;
            }
            let (tag, text, _) = tlv(value)?;
            return match tag {
                // UTF8String, PrintableString, IA5String, TeletexString (read as Latin-1).
                0x0c | 0x13 | 0x16 => std::str::from_utf8(text).ok().map(str::to_string),
                0x14 => Some(text.iter().map(|&b| char::from(b)).collect()),
                // BMPString: UTF-16BE.
                0x1e => {
                    let units: Vec<u16> = text
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    String::from_utf16(&units).ok()
                }
                _ => None,
            };
        }
    }
    None
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {source}", .path.display())]
    Read {
        /// `tls_cert`, `tls_key` or `client_ca`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: tend_config::read::ReadError,
    },
    /// A file holds no usable PEM item, or a broken one.
    #[error("{what} {}: {why}", .path.display())]
    Pem {
        /// `tls_cert`, `tls_key` or `client_ca`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// rustls refused the certificate, key or CA (a key that does not match
    /// the certificate, an unsupported key type...).
    #[error("TLS setup with {}: {why}", .cert.display())]
    Rustls {
        /// The certificate file.
        cert: PathBuf,
        /// rustls' reason.
        why: String,
    },
}

/// The TLS side of one TCP listener: its files, and the configuration
/// built from them that new connections use.
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl ServerTls {
    /// Reads `files` and builds the configuration.
    pub fn load(files: TlsFiles) -> Result<ServerTls, TlsError> {
        let config = build(&files)?;
        Ok(ServerTls {
            files,
            current: RwLock::new(config),
        })
    }

    /// The files this listener serves.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the files again and builds a new configuration, without
    /// installing it (see [`ServerTls::install`]): several listeners can
    /// be prepared first and swapped only if all of them succeeded.
    pub fn prepare(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        build(&self.files)
    }

    /// Makes `config` the one new connections use; open connections keep
    /// theirs.
    pub fn install(&self, config: Arc<rustls::ServerConfig>) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        *current = config;
    }

    /// [`ServerTls::prepare`] then [`ServerTls::install`]: on an error the
    /// configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = self.prepare()?;
        self.install(config);
        Ok(())
    }

    /// The acceptor for the next connection.
    pub(super) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        tokio_rustls::TlsAcceptor::from(current.clone())
    }
}

/// The crypto provider every TLS configuration of tend names (ring), so
/// that no other provider compiled into a program changes which is used.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    tend_config::read::read_bytes(path, &mut tend_config::read::Budget::new()).map_err(|source| {
        TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Every certificate in the PEM file at `path`; at least one.
pub fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let pem_err = |why: String| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        why,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(pem_err(
            "holds no certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

fn build(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = read_certs("tls_cert", &files.cert)?;
    let key_pem = read("tls_key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        what: "tls_key",
        path: files.key.clone(),
        why: format!("holds no usable private key (PKCS#8, RSA or EC, in PEM): {e}"),
    })?;
    let rustls_err = |e: &dyn std::fmt::Display| TlsError::Rustls {
        cert: files.cert.clone(),
        why: e.to_string(),
    };
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| rustls_err(&e))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("client_ca", ca)? {
                roots.add(cert).map_err(|e| TlsError::Pem {
                    what: "client_ca",
                    path: ca.clone(),
                    why: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match files.client_cert {
                ClientCert::Required => verifier,
                ClientCert::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier.build().map_err(|e| rustls_err(&e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| rustls_err(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_names_of_der_names() {
        // SEQUENCE contents: SET { SEQ { OID 2.5.4.6 (C), PrintableString "FR" } },
        // SET { SEQ { OID 2.5.4.3 (CN), UTF8String "alice" } }
        let name = [
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'F', b'R', //
            0x31, 0x0e, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x05, b'a', b'l', b'i',
            b'c', b'e',
        ];
        assert_eq!(common_name(&name).as_deref(), Some("alice"));
        assert_eq!(common_name(&name[..13]), None);
        // Truncated or nonsense input is refused, never read past its end.
        for cut in 0..name.len() {
            let _ = common_name(&name[..cut]);
        }
        assert_eq!(common_name(&[0x31, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        let bmp = [
            0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03, 0x1e, 0x04, 0x00, b'h', 0x00,
            b'i',
        ];
        assert_eq!(common_name(&bmp).as_deref(), Some("hi"));
    }

    #[test]
    fn sha256_is_lower_hex() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
