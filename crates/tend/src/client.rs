//! A tiny blocking HTTP/1.1 client for the daemon's Unix socket.
//!
//! `tend status` should answer in a few milliseconds, so the client path has
//! no async runtime and no HTTP library: one `Connection: close` request, read
//! to EOF, parse the status line, headers and (possibly chunked) body.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use tend_server::api::ErrorResponse;

/// Why a request failed.
#[derive(Debug)]
pub enum ClientError {
    /// The socket is missing or nobody listens on it.
    Unreachable {
        /// The socket.
        socket: PathBuf,
        /// The connect error.
        source: io::Error,
    },
    /// The connection broke or the answer is not HTTP we understand.
    Protocol {
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        message: String,
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
            ClientError::Unreachable { socket, source } => write!(
                f,
                "cannot reach the tend daemon at {}: {source} (is 'tend up' running?)",
                socket.display()
            ),
            ClientError::Protocol { socket, message } => {
                write!(
                    f,
                    "bad answer from the tend daemon at {}: {message}",
                    socket.display()
                )
            }
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

/// A client for one daemon socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the daemon listening on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client {
            socket: socket.into(),
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Whether something accepts connections on the socket.
    pub fn is_reachable(&self) -> bool {
        UnixStream::connect(&self.socket).is_ok()
    }

    /// Sends one request; any status is returned as is.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, ClientError> {
        let mut stream =
            UnixStream::connect(&self.socket).map_err(|source| ClientError::Unreachable {
                socket: self.socket.clone(),
                source,
            })?;
        let body = body.unwrap_or_default();
        let mut req = Vec::with_capacity(128 + body.len());
        // Writing into a Vec cannot fail.
        let _ = write!(
            req,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        if !body.is_empty() || method != "GET" {
            let _ = write!(
                req,
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            );
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        let proto = |message: String| ClientError::Protocol {
            socket: self.socket.clone(),
            message,
        };
        stream
            .write_all(&req)
            .map_err(|e| proto(format!("cannot send the request: {e}")))?;
        let mut raw = Vec::with_capacity(16 * 1024);
        stream
            .read_to_end(&mut raw)
            .map_err(|e| proto(format!("cannot read the answer: {e}")))?;
        parse_response(&raw).map_err(proto)
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
        serde_json::from_slice(&resp.body).map_err(|e| ClientError::Protocol {
            socket: self.socket.clone(),
            message: format!("cannot decode the answer to {method} {path}: {e}"),
        })
    }

    /// Like [`Client::call`] but returns the 2xx body undecoded.
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Response, ClientError> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| ClientError::Protocol {
                socket: self.socket.clone(),
                message: format!("cannot encode the request: {e}"),
            })?),
            None => None,
        };
        let resp = self.request(method, path, body.as_deref())?;
        if (200..300).contains(&resp.status) {
            return Ok(resp);
        }
        let message = match serde_json::from_slice::<ErrorResponse>(&resp.body) {
            Ok(e) => e.error,
            Err(_) => format!(
                "HTTP {}: {}",
                resp.status,
                String::from_utf8_lossy(&resp.body).trim()
            ),
        };
        Err(ClientError::Api { message })
    }
}

/// No body to send (for [`Client::call`] with `None`).
pub const NO_BODY: Option<&()> = None;

/// Parses a complete HTTP/1.1 response read to EOF.
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let head_end =
        find(raw, b"\r\n\r\n").ok_or("the connection closed before the headers ended")?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "the headers are not UTF-8")?;
    let rest = &raw[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let status = match (version.starts_with("HTTP/1."), status) {
        (true, Some(s)) => s,
        _ => return Err(format!("bad status line {status_line:?}")),
    };
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        }
    }
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
