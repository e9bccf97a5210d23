//! `redis`: `PING` answers `PONG`, after `AUTH` when a password is set.
//!
//! RESP by hand: commands go out as arrays of bulk strings (binary-safe, so a
//! password may hold any byte), and the answers these commands get are one
//! line each (`+OK`, `+PONG`, `-NOAUTH ...`).

use tokio::io::AsyncWriteExt;

use super::{
    ProbeOutcome, REDIS_DEFAULT_PORT, connect, describe_io, read_line, show, split_host_port,
};

/// Parses one RESP reply line (with or without its `\r\n`): a simple string
/// (`+PONG`) is `Ok("PONG")`, an error (`-NOAUTH Authentication required.`) is
/// `Err` with the server's message, anything else is `Err` saying what came.
pub fn parse_resp_simple(line: &[u8]) -> Result<String, String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.split_first() {
        Some((b'+', text)) => Ok(show(text)),
        Some((b'-', [])) => Err("the server answered an error".into()),
        Some((b'-', text)) => Err(show(text)),
        Some(_) => Err(format!("unexpected answer \"{}\"", show(line))),
        None => Err("empty answer".into()),
    }
}

/// Encodes a command as a RESP array of bulk strings.
fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Error messages are short; this only bounds what a confused peer can send.
const MAX_REPLY: usize = 4096;

pub(super) async fn check(
    addr: &str,
    password: Option<&str>,
    username: Option<&str>,
) -> ProbeOutcome {
    match ping(addr, password, username).await {
        Ok(()) => ProbeOutcome::pass("PONG"),
        Err(e) => ProbeOutcome::fail(e),
    }
}

async fn ping(addr: &str, password: Option<&str>, username: Option<&str>) -> Result<(), String> {
    let (host, port) =
        split_host_port(addr, Some(REDIS_DEFAULT_PORT)).map_err(|e| format!("redis check: {e}"))?;
    let mut stream = connect(&host, port).await?;
    if let Some(password) = password {
        let auth = match username {
            Some(user) => command(&[b"AUTH", user.as_bytes(), password.as_bytes()]),
            None => command(&[b"AUTH", password.as_bytes()]),
        };
        stream.write_all(&auth).await.map_err(|e| describe_io(&e))?;
        parse_resp_simple(&read_line(&mut stream, MAX_REPLY).await?)?;
    }
    stream
        .write_all(&command(&[b"PING"]))
        .await
        .map_err(|e| describe_io(&e))?;
    match parse_resp_simple(&read_line(&mut stream, MAX_REPLY).await?)? {
        pong if pong == "PONG" => Ok(()),
        other => Err(format!("unexpected answer to PING: \"{other}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_bulk_string_arrays() {
        assert_eq!(command(&[b"PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            command(&[b"AUTH", b"u", b"p\r\nw"]),
            b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$4\r\np\r\nw\r\n"
        );
    }
}
