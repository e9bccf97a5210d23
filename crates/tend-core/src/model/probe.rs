//! Health and readiness checks as data: what to check and when.
//!
//! A [`ProbeSpec`] is what a `[process.NAME.ready]` or `[process.NAME.health]`
//! table says: one [`Check`] and Kubernetes' timing knobs, with Kubernetes'
//! names and defaults. Running a check is the runtime's business
//! (`runtime::probe`); when to run it, and what a run of failures means, is the
//! state machine's (every delay there is a timer effect).
//!
//! The kinds, and what passes:
//!
//! | TOML | passes when |
//! |---|---|
//! | `http = "http://127.0.0.1:8080/health"` | a `GET` answers 2xx or 3xx (redirects are not followed) |
//! | `tcp = "127.0.0.1:5432"` | a TCP connection is accepted (Procmon's `PortInUse`) |
//! | `port_free = 8080` | the port can be bound on `0.0.0.0` (Procmon's `PortAvailable`) |
//! | `redis = "127.0.0.1:6379"` or `redis = { addr = "...", password = "...", username = "..." }` | `PING` answers `PONG` (after `AUTH` when a password is set) |
//! | `exec = ["pg_isready", "-q"]` | the command exits 0 |
//!
//! `http` is plain `http://` only: there is no TLS client in tend, and
//! `https://` is a config error that says so (use `tcp` for a TLS port, or
//! `exec` with `curl`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::status::ExitInfo;

/// The port a `redis` address without one uses.
pub const REDIS_DEFAULT_PORT: u16 = 6379;

/// What to check. Serialized externally tagged by kind (`{"http": "..."}`),
/// the same key as in the config table.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// `GET` the URL; 2xx and 3xx pass. Plain `http://` only.
    Http(String),
    /// A TCP connection to `host:port` is accepted.
    Tcp(String),
    /// The port can be bound on `0.0.0.0`.
    PortFree(u16),
    /// `PING` answers `+PONG`.
    Redis {
        /// `host:port`, or `host` for port 6379.
        addr: String,
        /// Sent with `AUTH` before `PING`.
        #[serde(default)]
        password: Option<String>,
        /// With a password: `AUTH username password` (Redis 6 ACLs).
        #[serde(default)]
        username: Option<String>,
    },
    /// The command (argv, no shell) exits 0. Run by the driver through the
    /// launcher; see the module docs.
    Exec(Vec<String>),
}

// By hand, so that a Redis password never reaches a log line.
impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Http(url) => f.debug_tuple("Http").field(url).finish(),
            Check::Tcp(addr) => f.debug_tuple("Tcp").field(addr).finish(),
            Check::PortFree(port) => f.debug_tuple("PortFree").field(port).finish(),
            Check::Redis {
                addr,
                password,
                username,
            } => f
                .debug_struct("Redis")
                .field("addr", addr)
                .field("password", &password.as_ref().map(|_| "<redacted>"))
                .field("username", username)
                .finish(),
            Check::Exec(argv) => f.debug_tuple("Exec").field(argv).finish(),
        }
    }
}

/// `http http://127.0.0.1:8080/`, `tcp 127.0.0.1:5432`, `port_free 8080`,
/// `redis 127.0.0.1:6379` (never the password), `exec pg_isready -q`.
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Http(url) => write!(f, "http {url}"),
            Check::Tcp(addr) => write!(f, "tcp {addr}"),
            Check::PortFree(port) => write!(f, "port_free {port}"),
            Check::Redis { addr, .. } => write!(f, "redis {addr}"),
            Check::Exec(argv) => write!(
                f,
                "exec {}",
                shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
            ),
        }
    }
}

impl Check {
    /// Checks what can be checked without the network: the URL, the
    /// addresses, the port, the command. The message names the kind.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Check::Http(url) => parse_http_url(url).map(drop),
            Check::Tcp(addr) => split_host_port(addr, None)
                .map(drop)
                .map_err(|e| format!("tcp check: {e}")),
            Check::PortFree(0) => Err("port_free check: 0 is not a port".into()),
            Check::PortFree(_) => Ok(()),
            Check::Redis {
                addr,
                password,
                username,
            } => {
                split_host_port(addr, Some(REDIS_DEFAULT_PORT))
                    .map_err(|e| format!("redis check: {e}"))?;
                if username.is_some() && password.is_none() {
                    return Err("redis check: a username needs a password".into());
                }
                Ok(())
            }
            Check::Exec(argv) if argv.first().is_none_or(|a| a.is_empty()) => {
                Err("exec check: the command is empty".into())
            }
            Check::Exec(_) => Ok(()),
        }
    }
}

/// One check and when to run it: Kubernetes' names and defaults
/// (`initial_delay` 0 s, `period` 10 s, `timeout` 1 s, `failure_threshold` 3,
/// `success_threshold` 1).
///
/// Serialized flat, as the config table is written (`http = "..."` next to
/// `period = "5s"`); unknown keys, no check or two checks, and the errors of
/// [`ProbeSpec::validate`] are deserialization errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawProbe", into = "RawProbe")]
pub struct ProbeSpec {
    /// What to check.
    pub check: Check,
    /// Wait this long after the process started before the first run.
    pub initial_delay: Duration,
    /// Time between the starts of two runs.
    pub period: Duration,
    /// A run that takes longer fails.
    pub timeout: Duration,
    /// This many failures in a row make the check fail (unhealthy, or not ready).
    pub failure_threshold: u32,
    /// This many passes in a row make it pass again.
    pub success_threshold: u32,
}

impl ProbeSpec {
    /// `check` with Kubernetes' default timing.
    pub fn new(check: Check) -> Self {
        ProbeSpec {
            check,
            initial_delay: Duration::ZERO,
            period: DEFAULT_PERIOD,
            timeout: DEFAULT_TIMEOUT,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
        }
    }

    /// [`Check::validate`], and timing that makes sense: a non-zero period
    /// and timeout, thresholds of at least 1.
    pub fn validate(&self) -> Result<(), String> {
        self.check.validate()?;
        if self.period.is_zero() {
            return Err("period must be more than 0".into());
        }
        if self.timeout.is_zero() {
            return Err("timeout must be more than 0".into());
        }
        if self.failure_threshold == 0 {
            return Err("failure_threshold must be at least 1".into());
        }
        if self.success_threshold == 0 {
            return Err("success_threshold must be at least 1".into());
        }
        Ok(())
    }
}

const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;

/// The result of one run of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    /// It passed.
    pub ok: bool,
    /// What happened, short, for status: `HTTP 200`, `connection refused`,
    /// `timed out after 1s`, `PONG`, `port 8080 is in use`, `exit code 0`.
    pub detail: String,
}

impl ProbeOutcome {
    /// A pass.
    pub fn pass(detail: impl Into<String>) -> Self {
        ProbeOutcome {
            ok: true,
            detail: detail.into(),
        }
    }

    /// A failure.
    pub fn fail(detail: impl Into<String>) -> Self {
        ProbeOutcome {
            ok: false,
            detail: detail.into(),
        }
    }

    /// An `exec` check's process ended like this: exit code 0 passes.
    pub fn from_exit(exit: &ExitInfo) -> Self {
        ProbeOutcome {
            ok: *exit == ExitInfo::Code(0),
            detail: exit.to_string(),
        }
    }

    /// The failure of a run that did not finish within `timeout`.
    pub fn timed_out(timeout: Duration) -> Self {
        Self::fail(format!(
            "timed out after {}",
            super::duration::format(timeout)
        ))
    }
}

/// Splits `host:port` (or `[v6]:port`), with `default_port` when there is
/// no port. The host comes back without brackets.
pub(crate) fn split_host_port(s: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let example = "expected host:port, e.g. 127.0.0.1:8080";
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?} contains a space or a control character"));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: an IPv6 address in [brackets] is missing its `]`"))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("{s:?}: {example}")),
            },
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(format!(
                    "{s:?}: an IPv6 address goes in brackets, e.g. [::1]:8080"
                ));
            }
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{s:?} has no host ({example})"));
    }
    let port = match (port, default_port) {
        (Some(p), _) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("{s:?}: {p:?} is not a port (1 to 65535)")),
            Ok(p) => p,
        },
        (None, Some(p)) => p,
        (None, None) => return Err(format!("{s:?} has no port ({example})")),
    };
    Ok((host.to_string(), port))
}

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

/// The config table, flat: one kind key, and the timing keys.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port_free: Option<u16>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_redis"
    )]
    redis: Option<RawRedis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exec: Option<Vec<String>>,
    #[serde(default, with = "crate::model::duration::serde_str")]
    initial_delay: Duration,
    #[serde(default = "default_period", with = "crate::model::duration::serde_str")]
    period: Duration,
    #[serde(
        default = "default_timeout",
        with = "crate::model::duration::serde_str"
    )]
    timeout: Duration,
    #[serde(default = "default_failure_threshold")]
    failure_threshold: u32,
    #[serde(default = "default_success_threshold")]
    success_threshold: u32,
}

fn default_period() -> Duration {
    DEFAULT_PERIOD
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_failure_threshold() -> u32 {
    DEFAULT_FAILURE_THRESHOLD
}
fn default_success_threshold() -> u32 {
    DEFAULT_SUCCESS_THRESHOLD
}

/// `redis = "host:port"` or `redis = { addr = ..., password = ..., username = ... }`.
#[derive(Serialize)]
struct RawRedis {
    addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
}

/// Accepts the string shorthand as well as the table, with serde's own error
/// messages for each (an untagged enum would only say "did not match").
fn deserialize_redis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<RawRedis>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = RawRedis;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("\"host:port\" or a table { addr, password, username }")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RawRedis, E> {
            Ok(RawRedis {
                addr: s.to_string(),
                password: None,
                username: None,
            })
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(self, m: M) -> Result<RawRedis, M::Error> {
            #[derive(Deserialize)]
            #[serde(remote = "RawRedis", deny_unknown_fields)]
            struct Table {
                addr: String,
                #[serde(default)]
                password: Option<String>,
                #[serde(default)]
                username: Option<String>,
            }
            Table::deserialize(serde::de::value::MapAccessDeserializer::new(m))
        }
    }
    d.deserialize_any(V).map(Some)
}

impl TryFrom<RawProbe> for ProbeSpec {
    type Error = String;

    fn try_from(raw: RawProbe) -> Result<Self, String> {
        let mut kinds = Vec::new();
        if let Some(url) = raw.http {
            kinds.push(("http", Check::Http(url)));
        }
        if let Some(addr) = raw.tcp {
            kinds.push(("tcp", Check::Tcp(addr)));
        }
        if let Some(port) = raw.port_free {
            kinds.push(("port_free", Check::PortFree(port)));
        }
        if let Some(r) = raw.redis {
            kinds.push((
                "redis",
                Check::Redis {
                    addr: r.addr,
                    password: r.password,
                    username: r.username,
                },
            ));
        }
        if let Some(argv) = raw.exec {
            kinds.push(("exec", Check::Exec(argv)));
        }
        let check = match kinds.len() {
            0 => {
                return Err(
                    "a check needs one of `http`, `tcp`, `port_free`, `redis` or `exec`".into(),
                );
            }
            1 => kinds.remove(0).1,
            _ => {
                let names: Vec<String> = kinds.iter().map(|(k, _)| format!("`{k}`")).collect();
                return Err(format!(
                    "a check has one kind, found {}",
                    names.join(" and ")
                ));
            }
        };
        let spec = ProbeSpec {
            check,
            initial_delay: raw.initial_delay,
            period: raw.period,
            timeout: raw.timeout,
            failure_threshold: raw.failure_threshold,
            success_threshold: raw.success_threshold,
        };
        spec.validate()?;
        Ok(spec)
    }
}

impl From<ProbeSpec> for RawProbe {
    fn from(s: ProbeSpec) -> Self {
        let mut raw = RawProbe {
            http: None,
            tcp: None,
            port_free: None,
            redis: None,
            exec: None,
            initial_delay: s.initial_delay,
            period: s.period,
            timeout: s.timeout,
            failure_threshold: s.failure_threshold,
            success_threshold: s.success_threshold,
        };
        match s.check {
            Check::Http(url) => raw.http = Some(url),
            Check::Tcp(addr) => raw.tcp = Some(addr),
            Check::PortFree(port) => raw.port_free = Some(port),
            Check::Redis {
                addr,
                password,
                username,
            } => {
                raw.redis = Some(RawRedis {
                    addr,
                    password,
                    username,
                })
            }
            Check::Exec(argv) => raw.exec = Some(argv),
        }
        raw
    }
}
