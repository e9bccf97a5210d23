//! Which daemon a client verb talks to, and how: a [`Host`] is the URL
//! (`unix:///path`, `http://127.0.0.1:9001`, `https://host:9001`), what its
//! certificate is checked against, and the credentials to send. One value
//! drives one [`super::Client`]; a hosts file (later) is a list of them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// One daemon to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Where it listens.
    pub url: Endpoint,
    /// What its TLS certificate is checked against (`https` only).
    pub ca: Trust,
    /// What to prove who we are with, if anything.
    pub credentials: Option<Credentials>,
    /// A client certificate and its key (PEM), for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Host {
    /// The daemon on the Unix socket `path`, with no credentials (its
    /// owner needs none).
    pub fn unix(path: impl Into<PathBuf>) -> Host {
        Host {
            url: Endpoint::Unix(path.into()),
            ca: Trust::System,
            credentials: None,
            client_cert: None,
        }
    }

    /// The same host at `url`.
    pub fn with_url(mut self, url: Endpoint) -> Host {
        self.url = url;
        self
    }
}

/// Where a daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// TCP, in plain text (`http`) or TLS (`https`).
    Tcp {
        /// `https`.
        tls: bool,
        /// A name or an address (without the brackets of an IPv6 one).
        host: String,
        /// The port.
        port: u16,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp { tls, host, port } => {
                let scheme = if *tls { "https" } else { "http" };
                if host.contains(':') {
                    write!(f, "{scheme}://[{host}]:{port}")
                } else {
                    write!(f, "{scheme}://{host}:{port}")
                }
            }
        }
    }
}

/// What a daemon's certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's trusted roots (`SSL_CERT_FILE`, `/etc/ssl/certs`).
    System,
    /// The CA certificates in this PEM file (`--ca`).
    Ca(PathBuf),
    /// Exactly the certificate whose SHA-256 (of its DER) is this
    /// (`--pin sha256:...`), whoever signed it.
    Pin([u8; 32]),
}

/// What a client proves who it is with.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// HTTP Basic.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic({user:?}, ***)"),
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

impl Credentials {
    /// The `Authorization` header's value.
    pub fn header(&self) -> String {
        match self {
            Credentials::Basic { user, password } => {
                format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
            }
            Credentials::Bearer(token) => format!("Bearer {token}"),
        }
    }
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Reads `--host` (or `TEND_HOST`): `unix:///path`, `http://host:port`,
/// `https://host[:port]` (443 by default). Plain HTTP goes to a loopback
/// address only, unless `insecure`.
pub fn parse_url(url: &str, insecure: bool) -> anyhow::Result<Endpoint> {
    if let Some(path) = url.strip_prefix("unix://") {
        if path.is_empty() {
            bail!("{url:?}: no socket path (unix:///run/tend.sock)");
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        bail!("{url:?}: expected https://HOST:PORT, http://127.0.0.1:PORT or unix:///PATH");
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') || authority.contains('@') || authority.is_empty() {
        bail!("{url:?}: give only the scheme, host and port (no path, no user@)");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .with_context(|| format!("{url:?}: unclosed [ in an IPv6 address"))?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .with_context(|| format!("{url:?}: {p:?} is not a port number"))?,
        None if tls => 443,
        None => bail!("{url:?}: give the port (http://127.0.0.1:9001)"),
    };
    if host.is_empty() {
        bail!("{url:?}: no host");
    }
    if !tls && !insecure && !tend_config::http::is_loopback(host) {
        bail!(
            "{url:?}: plain HTTP to another machine sends everything, passwords too, in clear text; use https:// (or --insecure to do it anyway)"
        );
    }
    Ok(Endpoint::Tcp {
        tls,
        host: host.to_string(),
        port,
    })
}

/// Reads `--pin sha256:...`: 64 hex digits (colons allowed, as `openssl
/// x509 -noout -fingerprint -sha256` prints them) or 44 characters of base64.
pub fn parse_pin(pin: &str) -> anyhow::Result<[u8; 32]> {
    let digest = pin
        .strip_prefix("sha256:")
        .or_else(|| pin.strip_prefix("SHA256:"))
        .with_context(|| {
            format!("{pin:?}: a pin is sha256:HEX (the SHA-256 of the certificate)")
        })?;
    let hex: String = digest.chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .with_context(|| format!("{pin:?}: bad hex"))?;
        }
        return Ok(out);
    }
    match unbase64(digest) {
        Some(bytes) if bytes.len() == 32 => {
            out.copy_from_slice(&bytes);
            Ok(out)
        }
        _ => bail!("{pin:?}: expected 64 hex digits (or 44 characters of base64) after sha256:"),
    }
}

fn unbase64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

/// What the command line says about credentials.
#[derive(Debug, Default)]
pub struct CredentialArgs<'a> {
    /// `--user USER` or `--user USER:PASSWORD`.
    pub user: Option<&'a str>,
    /// `TEND_PASSWORD`.
    pub password_env: Option<String>,
    /// `TEND_TOKEN`.
    pub token_env: Option<String>,
    /// `--token-file FILE`.
    pub token_file: Option<&'a Path>,
}

/// The credentials the command line asks for: a bearer token (from
/// `--token-file`, else `TEND_TOKEN`), or `--user` with its password (after
/// a colon, with a warning that it shows on the command line; else from
/// `TEND_PASSWORD`; else asked for on the terminal).
pub fn credentials(args: CredentialArgs<'_>) -> anyhow::Result<Option<Credentials>> {
    if let Some(file) = args.token_file {
        let text = tend_config::read::read_text(file, &mut tend_config::read::Budget::new())
            .with_context(|| format!("cannot read the token file {}", file.display()))?;
        let token = text.trim();
        if token.is_empty() {
            bail!("the token file {} is empty", file.display());
        }
        return Ok(Some(Credentials::Bearer(token.to_string())));
    }
    if let Some(user) = args.user {
        let (user, password) = match user.split_once(':') {
            Some((u, p)) => {
                eprintln!(
                    "warning: a password given with --user shows in the process list of this machine; prefer TEND_PASSWORD or the prompt"
                );
                (u.to_string(), p.to_string())
            }
            None => match args.password_env {
                Some(p) => (user.to_string(), p),
                None => (user.to_string(), prompt_password(user)?),
            },
        };
        if user.is_empty() {
            bail!("--user: the user name is empty");
        }
        return Ok(Some(Credentials::Basic { user, password }));
    }
    Ok(args
        .token_env
        .filter(|t| !t.trim().is_empty())
        .map(|t| Credentials::Bearer(t.trim().to_string())))
}

/// Asks for `user`'s password on the terminal, without echo.
fn prompt_password(user: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| {
            anyhow::anyhow!(
                "no password for {user}: set TEND_PASSWORD (there is no terminal to ask on)"
            )
        })?;
    let saved = tcgetattr(&tty).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&tty, SetArg::TCSANOW, &quiet).context("cannot turn the terminal's echo off")?;
    let mut out = &tty;
    let asked = write!(out, "password for {user}: ").and_then(|()| out.flush());
    let mut line = String::new();
    let read = asked.and_then(|()| std::io::BufReader::new(&tty).read_line(&mut line));
    // Echo comes back whatever happened.
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &saved);
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |u: &str| parse_url(u, false).expect(u);
        assert_eq!(
            ok("unix:///run/t.sock"),
            Endpoint::Unix("/run/t.sock".into())
        );
        assert_eq!(
            ok("https://example.org"),
            Endpoint::Tcp {
                tls: true,
                host: "example.org".into(),
                port: 443
            }
        );
        assert_eq!(
            ok("http://127.0.0.1:9001/"),
            Endpoint::Tcp {
                tls: false,
                host: "127.0.0.1".into(),
                port: 9001
            }
        );
        assert_eq!(
            ok("https://[::1]:9443"),
            Endpoint::Tcp {
                tls: true,
                host: "::1".into(),
                port: 9443
            }
        );
        assert_eq!(ok("https://[::1]:9443").to_string(), "https://[::1]:9443");
        let e = parse_url("http://10.0.0.1:9001", false).expect_err("plain remote");
        assert!(e.to_string().contains("clear text"), "{e}");
        parse_url("http://10.0.0.1:9001", true).expect("--insecure");
        for bad in [
            "ftp://x",
            "http://h",
            "https://h:x",
            "https://u@h:1",
            "https://h:1/p",
            "unix://",
        ] {
            assert!(parse_url(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn pins() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let want = parse_pin(&format!("sha256:{hex}")).expect("hex");
        let colons: Vec<String> = (0..32)
            .map(|i| hex[2 * i..2 * i + 2].to_uppercase())
            .collect();
        assert_eq!(
            parse_pin(&format!("sha256:{}", colons.join(":"))).expect("colons"),
            want
        );
        assert_eq!(
            parse_pin("sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").expect("base64"),
            want
        );
        assert!(parse_pin(hex).is_err());
        assert!(parse_pin("sha256:abcd").is_err());
    }

    #[test]
    fn credentials_and_headers() {
        let basic = Credentials::Basic {
            user: "admin".into(),
            password: "secret".into(),
        };
        assert_eq!(basic.header(), "Basic YWRtaW46c2VjcmV0");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(format!("{basic:?}"), "Basic(\"admin\", ***)");
        let from_env = credentials(CredentialArgs {
            user: Some("alice"),
            password_env: Some("pw".into()),
            ..CredentialArgs::default()
        })
        .expect("env");
        assert_eq!(
            from_env,
            Some(Credentials::Basic {
                user: "alice".into(),
                password: "pw".into()
            })
        );
        let token = credentials(CredentialArgs {
            token_env: Some(" t0k \n".into()),
            ..CredentialArgs::default()
        })
        .expect("token");
        assert_eq!(token, Some(Credentials::Bearer("t0k".into())));
        assert_eq!(credentials(CredentialArgs::default()).expect("none"), None);
    }
}
