//! The client of `tend`'s verbs: one blocking HTTP/1.1 request per
//! connection, to the daemon's Unix socket (the default) or to a TCP
//! listener, in plain text or TLS ([`Host`]).
//!
//! `tend status` should answer in a few milliseconds, so the client path has
//! no async runtime: one `Connection: close` request, read to EOF, the head
//! parsed with `httparse`, the (possibly chunked) body decoded here. TLS is
//! rustls over the blocking socket, set up only for an `https` host.

pub mod host;
pub mod sse;
mod tls;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use tend_server::api::ErrorResponse;

pub use host::{Credentials, Endpoint, Host};

/// The largest answer read (256 MiB): a daemon that sends more is broken or
/// not a tend daemon.
const MAX_ANSWER: u64 = 256 << 20;

/// How long a TCP connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request failed.
#[derive(Debug)]
pub enum ClientError {
    /// The socket is missing or nobody listens on it.
    Unreachable {
        /// The socket or URL.
        at: String,
        /// The connect error.
        source: io::Error,
    },
    /// The TLS handshake failed (an untrusted certificate, a wrong pin...).
    Tls {
        /// The URL.
        at: String,
        /// What rustls said.
        message: String,
    },
    /// The connection broke or the answer is not HTTP we understand.
    Protocol {
        /// The socket or URL.
        at: String,
        /// What went wrong.
        message: String,
    },
    /// The daemon did not answer within the timeout (`--timeout`).
    Timeout {
        /// The socket or URL.
        at: String,
        /// How long it waited.
        after: Duration,
    },
    /// The daemon answered with an error status.
    Api {
        /// The daemon's message.
        message: String,
    },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unreachable { at, source } => write!(
                f,
                "cannot reach the tend daemon at {at}: {source} (is 'tend up' running?)"
            ),
            ClientError::Tls { at, message } => {
                write!(f, "TLS with the tend daemon at {at} failed: {message}")
            }
            ClientError::Protocol { at, message } => {
                write!(f, "bad answer from the tend daemon at {at}: {message}")
            }
            ClientError::Timeout { at, after } => write!(
                f,
                "no answer from the tend daemon at {at} within {} (--timeout)",
                tend_core::duration::format(*after)
            ),
            ClientError::Api { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for ClientError {}

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The decoded body.
    pub body: Vec<u8>,
}

/// A connection to the daemon: a Unix or TCP socket, or TLS over TCP.
trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// A client for one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    host: Host,
    /// The `Authorization` header's value, if any.
    auth: Option<String>,
    /// For `https`.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The `Host` header's value.
    host_header: String,
    /// How long opening a TCP connection (and its TLS handshake) may take.
    connect_timeout: Duration,
    /// How long a read or a write may wait (none: as long as it takes). A
    /// stream's body, once its head came, waits as long as it takes.
    io_timeout: Option<Duration>,
}

/// The socket under a connection, to change its timeouts after the head.
enum Sock {
    Unix(UnixStream),
    Tcp(std::net::TcpStream),
}

impl Sock {
    fn set_timeouts(&self, t: Option<Duration>) {
        // A zero timeout is refused by the standard library; none is meant.
        let t = t.filter(|t| !t.is_zero());
        let _ = match self {
            Sock::Unix(s) => s.set_read_timeout(t).and_then(|()| s.set_write_timeout(t)),
            Sock::Tcp(s) => s.set_read_timeout(t).and_then(|()| s.set_write_timeout(t)),
        };
    }
}

impl Client {
    /// A client for the daemon listening on `socket`.
    #[cfg(test)]
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client {
            host: Host::unix(socket),
            auth: None,
            tls: None,
            host_header: "localhost".to_string(),
            connect_timeout: CONNECT_TIMEOUT,
            io_timeout: None,
        }
    }

    /// The same client, giving up on connecting (and the TLS handshake)
    /// after `connect`, and on any read or write of a plain answer after
    /// `io` (the body of a stream waits as long as it takes).
    pub fn with_timeouts(mut self, connect: Duration, io: Option<Duration>) -> Client {
        self.connect_timeout = connect;
        self.io_timeout = io;
        self
    }

    /// The same client with another read and write timeout.
    pub fn with_io_timeout(mut self, io: Option<Duration>) -> Client {
        self.io_timeout = io;
        self
    }

    /// A client for `host` (its TLS configuration is built here: the CA
    /// file, the client certificate read).
    pub fn for_host(host: Host) -> anyhow::Result<Client> {
        let (tls, host_header) = match &host.url {
            Endpoint::Unix(_) => (None, "localhost".to_string()),
            Endpoint::Tcp {
                tls: is_tls,
                host: name,
                port,
            } => {
                let header = if name.contains(':') {
                    format!("[{name}]:{port}")
                } else {
                    format!("{name}:{port}")
                };
                let tls = if *is_tls {
                    Some(tls::config(&host)?)
                } else {
                    None
                };
                (tls, header)
            }
        };
        Ok(Client {
            auth: host.credentials.as_ref().map(Credentials::header),
            host,
            tls,
            host_header,
            connect_timeout: CONNECT_TIMEOUT,
            io_timeout: None,
        })
    }

    /// The daemon's view of this host as a peer (`[[peer]]`): the same
    /// endpoint, TLS configuration and login a client uses.
    pub fn peer_spec(
        &self,
        name: &str,
        url: &str,
        timeout: Duration,
    ) -> tend_server::peers::PeerSpec {
        use tend_server::peers::PeerEndpoint;
        let endpoint = match &self.host.url {
            Endpoint::Unix(p) => PeerEndpoint::Unix(p.clone()),
            Endpoint::Tcp { host, port, .. } => PeerEndpoint::Tcp {
                host: host.clone(),
                port: *port,
                tls: self.tls.clone(),
            },
        };
        tend_server::peers::PeerSpec {
            name: name.to_string(),
            url: url.to_string(),
            endpoint,
            authorization: self.auth.clone(),
            timeout,
        }
    }

    /// The socket path, for a daemon on a Unix socket.
    pub fn unix_socket(&self) -> Option<&Path> {
        match &self.host.url {
            Endpoint::Unix(p) => Some(p),
            Endpoint::Tcp { .. } => None,
        }
    }

    /// Where the daemon is, as messages name it.
    pub fn at(&self) -> String {
        self.host.url.to_string()
    }

    /// Whether something accepts connections there.
    pub fn is_reachable(&self) -> bool {
        match &self.host.url {
            Endpoint::Unix(p) => UnixStream::connect(p).is_ok(),
            Endpoint::Tcp { .. } => self.tcp().is_ok(),
        }
    }

    fn tcp(&self) -> io::Result<std::net::TcpStream> {
        use std::net::ToSocketAddrs;
        let Endpoint::Tcp { host, port, .. } = &self.host.url else {
            return Err(io::Error::other("not a TCP host"));
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
        for addr in (host.as_str(), *port).to_socket_addrs()? {
            match std::net::TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn connect(&self) -> Result<(Box<dyn Conn>, Option<Sock>), ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            at: self.at(),
            source,
        };
        let host = match &self.host.url {
            Endpoint::Unix(p) => {
                let s = UnixStream::connect(p).map_err(unreachable)?;
                let sock = s.try_clone().ok().map(Sock::Unix);
                if let Some(sock) = &sock {
                    sock.set_timeouts(self.io_timeout);
                }
                return Ok((Box::new(s), sock));
            }
            Endpoint::Tcp { host, .. } => host,
        };
        let mut tcp = self.tcp().map_err(unreachable)?;
        let sock = tcp.try_clone().ok().map(Sock::Tcp);
        if let Some(sock) = &sock {
            // The handshake is part of connecting.
            sock.set_timeouts(Some(
                self.io_timeout
                    .map_or(self.connect_timeout, |t| t.min(self.connect_timeout)),
            ));
        }
        let Some(config) = &self.tls else {
            if let Some(sock) = &sock {
                sock.set_timeouts(self.io_timeout);
            }
            return Ok((Box::new(tcp), sock));
        };
        let tls_err = |message: String| ClientError::Tls {
            at: self.at(),
            message,
        };
        let name = tls::server_name(host).map_err(|e| tls_err(e.to_string()))?;
        let mut conn = rustls::ClientConnection::new(config.clone(), name)
            .map_err(|e| tls_err(e.to_string()))?;
        // The handshake now, so that its failure is told as such.
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .map_err(|e| tls_err(e.to_string()))?;
        }
        if let Some(sock) = &sock {
            sock.set_timeouts(self.io_timeout);
        }
        Ok((Box::new(rustls::StreamOwned::new(conn, tcp)), sock))
    }

    /// A failed read of the answer: a timeout says how long it waited.
    fn read_error(&self, e: &io::Error) -> ClientError {
        match (e.kind(), self.io_timeout) {
            (io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut, Some(after)) => {
                ClientError::Timeout {
                    at: self.at(),
                    after,
                }
            }
            _ => self.protocol(format!("cannot read the answer: {e}")),
        }
    }

    /// A [`ClientError::Protocol`] about this client's daemon.
    pub(crate) fn protocol(&self, message: String) -> ClientError {
        ClientError::Protocol {
            at: self.at(),
            message,
        }
    }

    /// The request's head up to (not including) its blank line.
    fn head(&self, method: &str, path: &str, accept: &str) -> Vec<u8> {
        let mut req = Vec::with_capacity(256);
        // Writing into a Vec cannot fail.
        let _ = write!(
            req,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: {accept}\r\n",
            self.host_header
        );
        if let Some(auth) = &self.auth {
            let _ = write!(req, "Authorization: {auth}\r\n");
        }
        req
    }

    /// Sends one request; any status is returned as is.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, ClientError> {
        let (mut stream, _sock) = self.connect()?;
        let body = body.unwrap_or_default();
        let mut req = self.head(method, path, "application/json");
        if !body.is_empty() || method != "GET" {
            let _ = write!(
                req,
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            );
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        let proto = |message| self.protocol(message);
        stream
            .write_all(&req)
            .map_err(|e| proto(format!("cannot send the request: {e}")))?;
        let mut raw = Vec::with_capacity(16 * 1024);
        match (&mut stream).take(MAX_ANSWER + 1).read_to_end(&mut raw) {
            Ok(_) => {}
            // A TLS peer that closes without close_notify: what it sent is
            // still whole if its length says so (checked below).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(self.read_error(&e)),
        }
        if raw.len() as u64 > MAX_ANSWER {
            return Err(proto(format!(
                "the answer is larger than {MAX_ANSWER} bytes"
            )));
        }
        parse_response(&raw).map_err(proto)
    }

    /// Sends a `GET` and returns the body of a 2xx answer as it arrives, for
    /// endless answers such as `GET /v1/logs?follow=true`. An error status is
    /// read whole and becomes [`ClientError::Api`].
    pub fn stream(&self, path: &str) -> Result<BodyReader, ClientError> {
        let proto = |message| self.protocol(message);
        let (mut stream, sock) = self.connect()?;
        let mut req = self.head("GET", path, "application/x-ndjson");
        req.extend_from_slice(b"\r\n");
        stream
            .write_all(&req)
            .map_err(|e| proto(format!("cannot send the request: {e}")))?;
        let mut inner = BufReader::with_capacity(64 * 1024, stream);
        let mut head = Vec::with_capacity(512);
        loop {
            let before = head.len();
            let n = inner
                .read_until(b'\n', &mut head)
                .map_err(|e| self.read_error(&e))?;
            if n == 0 {
                return Err(proto(
                    "the connection closed before the headers ended".into(),
                ));
            }
            if head[before..].iter().all(|b| matches!(b, b'\r' | b'\n')) {
                head.truncate(before);
                break;
            }
            if head.len() > 64 * 1024 {
                return Err(proto("the headers are too long".into()));
            }
        }
        let head =
            std::str::from_utf8(&head).map_err(|_| proto("the headers are not UTF-8".into()))?;
        let head = parse_head(head.trim_end_matches(['\r', '\n'])).map_err(proto)?;
        let kind = if head.chunked {
            BodyKind::Chunked {
                left: None,
                done: false,
            }
        } else if let Some(n) = head.length {
            BodyKind::Length(n)
        } else {
            BodyKind::ToEof
        };
        let mut body = BodyReader { inner, kind };
        if (200..300).contains(&head.status) {
            if let Some(sock) = &sock {
                sock.set_timeouts(None);
            }
            return Ok(body);
        }
        let mut raw = Vec::new();
        body.read_to_end(&mut raw)
            .map_err(|e| proto(format!("cannot read the answer: {e}")))?;
        Err(api_error(head.status, &raw))
    }

    /// Sends a request and decodes a 2xx JSON answer; an error status becomes
    /// [`ClientError::Api`] with the daemon's message.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let resp = self.call_raw(method, path, body)?;
        serde_json::from_slice(&resp.body)
            .map_err(|e| self.protocol(format!("cannot decode the answer to {method} {path}: {e}")))
    }

    /// Like [`Client::call`] but returns the 2xx body undecoded.
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Response, ClientError> {
        let body = match body {
            Some(b) => Some(
                serde_json::to_vec(b)
                    .map_err(|e| self.protocol(format!("cannot encode the request: {e}")))?,
            ),
            None => None,
        };
        let resp = self.request(method, path, body.as_deref())?;
        if (200..300).contains(&resp.status) {
            return Ok(resp);
        }
        if resp.status == 401 {
            return Err(ClientError::Api {
                message: if self.auth.is_some() {
                    format!("the tend daemon at {} refused these credentials", self.at())
                } else {
                    format!(
                        "the tend daemon at {} wants credentials: --user USER (password from TEND_PASSWORD or the prompt), or a token (TEND_TOKEN, --token-file)",
                        self.at()
                    )
                },
            });
        }
        if resp.status == 404 && resp.body.is_empty() && self.unix_socket().is_none() {
            return Err(ClientError::Api {
                message: format!(
                    "{} answers 404 with nothing to say: is it a tend daemon (of this version)?",
                    self.at()
                ),
            });
        }
        Err(api_error(resp.status, &resp.body))
    }
}

/// The daemon's message in an error answer.
fn api_error(status: u16, body: &[u8]) -> ClientError {
    let message = match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(e) => e.error,
        Err(_) => format!("HTTP {status}: {}", String::from_utf8_lossy(body).trim()),
    };
    ClientError::Api { message }
}

/// No body to send (for [`Client::call`] with `None`).
pub const NO_BODY: Option<&()> = None;

/// The parts of a response head the client needs.
struct Head {
    status: u16,
    chunked: bool,
    length: Option<usize>,
}

/// Parses a status line and headers (without the blank line that ends them).
fn parse_head(head: &str) -> Result<Head, String> {
    let text = format!("{head}\r\n\r\n");
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let status_line = head.split("\r\n").next().unwrap_or_default();
    match resp.parse(text.as_bytes()) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(httparse::Error::Status | httparse::Error::Version) => {
            return Err(format!("bad status line {status_line:?}"));
        }
        Err(e) => return Err(format!("bad header: {e}")),
    }
    let status = resp
        .code
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for h in resp.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        }
    }
    Ok(Head {
        status,
        chunked,
        length,
    })
}

/// Parses a complete HTTP/1.1 response read to EOF.
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let head_end =
        find(raw, b"\r\n\r\n").ok_or("the connection closed before the headers ended")?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "the headers are not UTF-8")?;
    let rest = &raw[head_end + 4..];
    let Head {
        status,
        chunked,
        length,
    } = parse_head(head)?;
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or("the connection closed before the body ended")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

/// The body of a streamed response, decoded as it arrives.
pub struct BodyReader {
    inner: BufReader<Box<dyn Conn>>,
    kind: BodyKind,
}

enum BodyKind {
    /// Chunked; bytes left in the current chunk, `None` before the first
    /// chunk and after each one.
    Chunked {
        left: Option<usize>,
        done: bool,
    },
    Length(usize),
    ToEof,
}

impl BodyReader {
    fn chunk_header(&mut self) -> io::Result<usize> {
        let mut line = String::new();
        if self.inner.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed inside a chunked body",
            ));
        }
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        usize::from_str_radix(size_hex, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad chunk size {size_hex:?}"),
            )
        })
    }

    fn crlf(&mut self) -> io::Result<()> {
        let mut line = String::new();
        self.inner.read_line(&mut line)?;
        if line.trim_end_matches(['\r', '\n']).is_empty() && line.ends_with('\n') {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "missing CRLF after a chunk",
            ))
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.kind {
            BodyKind::ToEof => self.inner.read(buf),
            BodyKind::Length(0) => Ok(0),
            BodyKind::Length(left) => {
                let n = left.min(buf.len());
                let got = self.inner.read(&mut buf[..n])?;
                if got == 0 && n > 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed before the body ended",
                    ));
                }
                self.kind = BodyKind::Length(left - got);
                Ok(got)
            }
            BodyKind::Chunked { done: true, .. } => Ok(0),
            BodyKind::Chunked { left, done: false } => {
                let left = match left {
                    Some(n) if n > 0 => n,
                    _ => {
                        if left == Some(0) {
                            self.crlf()?;
                        }
                        let size = self.chunk_header()?;
                        if size == 0 {
                            // Trailers, if any, end with a blank line.
                            loop {
                                let mut line = String::new();
                                if self.inner.read_line(&mut line)? == 0
                                    || line.trim_end_matches(['\r', '\n']).is_empty()
                                {
                                    break;
                                }
                            }
                            self.kind = BodyKind::Chunked {
                                left: None,
                                done: true,
                            };
                            return Ok(0);
                        }
                        size
                    }
                };
                let n = left.min(buf.len());
                let got = self.inner.read(&mut buf[..n])?;
                if got == 0 && n > 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed inside a chunk",
                    ));
                }
                self.kind = BodyKind::Chunked {
                    left: Some(left - got),
                    done: false,
                };
                Ok(got)
            }
        }
    }
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len());
    loop {
        let line_end = find(data, b"\r\n").ok_or("truncated chunk header")?;
        let line = std::str::from_utf8(&data[..line_end]).map_err(|_| "bad chunk header")?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        data = data.get(size..).ok_or("truncated chunk")?;
        data = data
            .strip_prefix(b"\r\n")
            .ok_or("missing CRLF after a chunk")?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_bodies() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n[]",
        )
        .expect("valid response");
        assert_eq!((r.status, r.body.as_slice()), (200, b"[]".as_slice()));
    }

    #[test]
    fn parses_chunked_bodies() {
        let raw = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\na;ext=1\r\n:12345678}\r\n0\r\n\r\n";
        let r = parse_response(raw).expect("valid response");
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"{\"a\":12345678}");
    }

    #[test]
    fn rejects_truncated_answers() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[]").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
                .is_err()
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }

    /// A one-connection server that sends `parts`, each after the test says so.
    fn serve(parts: Vec<&'static str>) -> (tempfile::TempDir, std::sync::mpsc::Sender<()>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener =
            std::os::unix::net::UnixListener::bind(dir.path().join("s.sock")).expect("bind");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut req = Vec::new();
            let mut byte = [0u8];
            while !req.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                req.push(byte[0]);
            }
            for part in parts {
                if rx.recv().is_err() || conn.write_all(part.as_bytes()).is_err() {
                    return;
                }
            }
        });
        (dir, tx)
    }

    #[test]
    fn streams_a_chunked_body_as_it_arrives() {
        let (dir, go) = serve(vec![
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello\n\r\n",
            "7;x=y\r\n world\n\r\n0\r\n\r\n",
        ]);
        let client = Client::new(dir.path().join("s.sock"));
        go.send(()).expect("send");
        let mut body = client.stream("/v1/logs?follow=true").expect("stream");
        let mut first = [0u8; 6];
        // The second chunk is not sent yet: this only returns if the first is
        // handed over as soon as it arrived.
        body.read_exact(&mut first).expect("first chunk");
        assert_eq!(&first, b"hello\n");
        go.send(()).expect("send");
        let mut rest = String::new();
        body.read_to_string(&mut rest).expect("rest");
        assert_eq!(rest, " world\n");
    }

    #[test]
    fn a_streamed_error_is_the_daemons_message() {
        let (dir, go) = serve(vec![
            "HTTP/1.1 404 Not Found\r\ncontent-length: 34\r\n\r\n{\"error\": \"no such process: nope\"}",
        ]);
        go.send(()).expect("send");
        let err = Client::new(dir.path().join("s.sock"))
            .stream("/v1/logs?pattern=nope")
            .err()
            .expect("an error");
        assert_eq!(err.to_string(), "no such process: nope");
        let (dir, go) = serve(vec![
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
        ]);
        go.send(()).expect("send");
        drop(go);
        let mut body = Client::new(dir.path().join("s.sock"))
            .stream("/")
            .expect("stream");
        let mut all = Vec::new();
        let e = body.read_to_end(&mut all).expect_err("truncated");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn unreachable_socket_names_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("none.sock");
        let err = Client::new(&sock)
            .request("GET", "/v1/version", None)
            .expect_err("no daemon");
        let msg = err.to_string();
        assert!(msg.starts_with("cannot reach the tend daemon at "), "{msg}");
        assert!(
            msg.contains("none.sock") && msg.ends_with("(is 'tend up' running?)"),
            "{msg}"
        );
    }
}
