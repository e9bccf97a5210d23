//! The wire types of the JSON API, shared by the server and the `tend` client.
//!
//! Every endpoint lives under `/v1` and speaks JSON both ways; `docs/api.md`
//! documents them. An error is always [`ErrorResponse`] with a fitting status
//! code. Process snapshots are [`tend_core::ProcessStatus`] serialized as is.

use serde::{Deserialize, Serialize};

pub use tend_core::{Outcome, ProcessSpec, ProcessStatus, Signal};

/// The version prefix of every path.
pub const PREFIX: &str = "/v1";

/// Body of `POST /v1/start`, `/v1/stop` and `/v1/restart`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsRequest {
    /// Patterns: `web`, `web-*`, `GROUP:*`, `GROUP:name` or `all`.
    pub targets: Vec<String>,
}

/// Body of `POST /v1/signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// Patterns, as in [`TargetsRequest`].
    pub targets: Vec<String>,
    /// `HUP`, `SIGHUP`, `hup` or a number.
    pub signal: Signal,
}

/// The answer to a batch action: one entry per process, in the order acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResponse {
    /// One result per process.
    pub results: Vec<ActionItem>,
}

/// What a batch action did to one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionItem {
    /// The process.
    pub name: String,
    /// Whether the action succeeded for it.
    pub ok: bool,
    /// What happened, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Why it failed, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<tend_core::ActionResult> for ActionItem {
    fn from(r: tend_core::ActionResult) -> Self {
        let name = r.name.to_string();
        match r.result {
            Ok(outcome) => ActionItem {
                name,
                ok: true,
                outcome: Some(outcome),
                error: None,
            },
            Err(e) => ActionItem {
                name,
                ok: false,
                outcome: None,
                error: Some(e.to_string()),
            },
        }
    }
}

/// The answer to `POST /v1/processes` (201) and `DELETE /v1/processes/{name}` (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameResponse {
    /// The process added or removed.
    pub name: String,
}

/// The answer to `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResponse {
    /// The daemon's version.
    pub version: String,
    /// The daemon's pid.
    pub pid: u32,
}

/// The answer to `POST /v1/shutdown` (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownResponse {
    /// Always true: the daemon has begun to stop every process and will exit.
    pub shutting_down: bool,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong, for a human.
    pub error: String,
}

/// Appends `pattern=P` pairs for `GET /v1/status` to `path`, percent-encoding each.
pub fn status_path(patterns: &[String]) -> String {
    let mut path = format!("{PREFIX}/status");
    for (i, p) in patterns.iter().enumerate() {
        path.push(if i == 0 { '?' } else { '&' });
        path.push_str("pattern=");
        percent_encode_into(p, &mut path);
    }
    path
}

/// Percent-encodes everything but unreserved characters (RFC 3986) into `out`.
pub fn percent_encode_into(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Decodes a query-string component (`%XX` and `+` for space). `None` when an
/// escape is malformed or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_path_round_trips_patterns() {
        let pats = vec![
            "web".to_string(),
            "grp:*".to_string(),
            "a b&c=%".to_string(),
        ];
        let path = status_path(&pats);
        assert_eq!(
            path,
            "/v1/status?pattern=web&pattern=grp%3A%2A&pattern=a%20b%26c%3D%25"
        );
        let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let back: Vec<String> = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("pattern="))
            .filter_map(percent_decode)
            .collect();
        assert_eq!(back, pats);
    }

    #[test]
    fn malformed_escapes_are_rejected() {
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
        assert_eq!(percent_decode("a+b"), Some("a b".into()));
    }
}
