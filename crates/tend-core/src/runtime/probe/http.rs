//! `http`: a hand-written HTTP/1.1 `GET` that reads the status line only.

use tokio::io::AsyncWriteExt;

use super::{ProbeOutcome, connect, read_line, show};
use crate::model::probe::parse_http_url;

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
