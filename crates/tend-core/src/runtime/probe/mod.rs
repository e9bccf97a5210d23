//! Running one check once, each run bounded by a timeout.
//!
//! What a check is lives in [`crate::model::probe`]; when to run it, and what a
//! run of failures means, is the state machine's business (every delay there
//! is a timer effect). This module only *runs one check once* ([`run_check`]).
//!
//! The network checks speak their protocols by hand over tokio sockets, and
//! read no more than the first line of an answer: a health endpoint that
//! streams an endless body cannot make a probe hang or grow.
//!
//! `exec` checks start a process, and only the launcher may start and reap
//! processes (one reaper owns every child), so [`run_check`] does not run
//! them: the driver does, and turns the exit into an outcome with
//! [`ProbeOutcome::from_exit`].

mod http;
mod port_free;
mod redis;
mod tcp;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use crate::model::probe::{Check, ProbeOutcome};
#[cfg(test)]
use crate::model::probe::{HttpTarget, ProbeSpec, parse_http_url};
pub(crate) use crate::model::probe::{REDIS_DEFAULT_PORT, split_host_port};

#[cfg(test)]
use http::parse_status_line;
#[cfg(test)]
use redis::parse_resp_simple;

/// Runs one network check with a deadline of `timeout` for all of it (name
/// resolution, connecting, asking, reading the answer). Never panics, and
/// returns within `timeout` (a name lookup still running in tokio's blocking
/// pool is abandoned, not awaited).
///
/// An [`Check::Exec`] check fails at once with a message saying it belongs to
/// the driver; see the module docs.
pub async fn run_check(check: &Check, timeout: Duration) -> ProbeOutcome {
    let run = async {
        match check {
            Check::Http(url) => http::check(url).await,
            Check::Tcp(addr) => tcp::check(addr).await,
            Check::PortFree(port) => port_free::check(*port).await,
            Check::Redis {
                addr,
                password,
                username,
            } => redis::check(addr, password.as_deref(), username.as_deref()).await,
            Check::Exec(_) => {
                ProbeOutcome::fail("exec checks are run by the driver through the launcher")
            }
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| ProbeOutcome::timed_out(timeout))
}

/// Resolves `host` and connects to the first address that accepts.
pub(crate) async fn connect(host: &str, port: u16) -> Result<tokio::net::TcpStream, String> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut last = None;
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => describe_io(&e),
        None => format!("cannot resolve {host}: no address"),
    })
}

/// Short lowercase words for the errors a probe meets, for status lines.
pub(crate) fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset => "connection reset by peer".into(),
        K::ConnectionAborted => "connection aborted".into(),
        K::BrokenPipe => "connection closed by peer".into(),
        K::UnexpectedEof => "connection closed by peer".into(),
        K::HostUnreachable => "host unreachable".into(),
        K::NetworkUnreachable => "network unreachable".into(),
        K::AddrNotAvailable => "address not available".into(),
        K::PermissionDenied => "permission denied".into(),
        K::TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

/// Bytes from a peer, made printable (control characters escaped, invalid
/// UTF-8 replaced) and short, for a detail line.
pub(crate) fn show(bytes: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for c in text.chars().take(MAX) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Reads up to the first `\n` (at most `max` bytes) and returns the line
/// without its `\r\n`. Bytes after the line are dropped: each probe reads one
/// line per request.
pub(crate) async fn read_line<R>(r: &mut R, max: usize) -> Result<Vec<u8>, String>
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut line = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = r.read(&mut chunk).await.map_err(|e| describe_io(&e))?;
        if n == 0 {
            return Err(if line.is_empty() {
                "connection closed without an answer".into()
            } else {
                format!(
                    "connection closed in the middle of the answer \"{}\"",
                    show(&line)
                )
            });
        }
        line.extend_from_slice(&chunk[..n]);
        if let Some(end) = memchr::memchr(b'\n', &line) {
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
        if line.len() > max {
            return Err(format!(
                "the first line of the answer is longer than {max} bytes"
            ));
        }
    }
}
