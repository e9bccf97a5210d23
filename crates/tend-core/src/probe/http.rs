//! `http`: a hand-written HTTP/1.1 `GET` that reads the status line only.

use tokio::io::AsyncWriteExt;

use super::{ProbeOutcome, connect, read_line, show, split_host_port};

/// Where an `http` check sends its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// Host name or IP address, without brackets.
    pub host: String,
    /// Port; 80 when the URL has none.
    pub port: u16,
    /// Path and query, starting with `/`; `/` when the URL has none.
    pub path: String,
}

impl HttpTarget {
    /// The `Host` header's value: the port only when it is not 80, an IPv6
    /// address in brackets.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Parses `http://host[:port][/path][?query]` into its parts (a `#fragment` is
/// dropped, as browsers do). `https://`, credentials in the URL and anything
/// that could break the request line are errors that say so.
pub fn parse_http_url(url: &str) -> Result<HttpTarget, String> {
    let bad = |why: &str| format!("http check: {url:?}: {why}");
    let scheme_end = url
        .find("://")
        .ok_or_else(|| bad("expected a URL like http://127.0.0.1:8080/health"))?;
    let scheme = &url[..scheme_end];
    if scheme.eq_ignore_ascii_case("https") {
        return Err(bad(
            "https is not supported (tend has no TLS client): use http://, a `tcp` check \
             on the TLS port, or an `exec` check such as [\"curl\", \"-fsS\", URL]",
        ));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(bad("only http:// URLs are supported"));
    }
    let rest = &url[scheme_end + 3..];
    if rest
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(bad(
            "it contains a space, a control or a non-ASCII character (percent-encode them)",
        ));
    }
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(path_start);
    if authority.contains('@') {
        return Err(bad("credentials in the URL are not supported"));
    }
    let (host, port) = split_host_port(authority, Some(80)).map_err(|e| bad(&e))?;
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(HttpTarget { host, port, path })
}

/// Parses a status line such as `HTTP/1.1 200 OK` (without its `\r\n`) into
/// the status code.
pub fn parse_status_line(line: &[u8]) -> Result<u16, String> {
    let not_http = || format!("not an HTTP answer: \"{}\"", show(line));
    let rest = line.strip_prefix(b"HTTP/").ok_or_else(not_http)?;
    let space = memchr::memchr(b' ', rest).ok_or_else(not_http)?;
    let after = &rest[space + 1..];
    let code = after.get(..3).ok_or_else(not_http)?;
    if !code.iter().all(u8::is_ascii_digit) || after.get(3).is_some_and(|&b| b != b' ') {
        return Err(not_http());
    }
    let code = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&code) {
        return Err(format!("not an HTTP status code: {code}"));
    }
    Ok(code)
}

/// The longest status line read before giving up.
const MAX_STATUS_LINE: usize = 1024;

pub(super) async fn check(url: &str) -> ProbeOutcome {
    match get(url).await {
        Ok(code) => {
            let detail = format!("HTTP {code}");
            if (200..400).contains(&code) {
                ProbeOutcome::pass(detail)
            } else {
                ProbeOutcome::fail(detail)
            }
        }
        Err(e) => ProbeOutcome::fail(e),
    }
}

async fn get(url: &str) -> Result<u16, String> {
    let target = parse_http_url(url)?;
    let mut stream = connect(&target.host, target.port).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tend\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path,
        target.host_header()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| super::describe_io(&e))?;
    let line = read_line(&mut stream, MAX_STATUS_LINE).await?;
    parse_status_line(&line)
}
