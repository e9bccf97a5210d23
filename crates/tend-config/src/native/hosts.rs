//! The client's hosts file (`~/.config/tend/hosts.toml`, `--hosts FILE`):
//! the daemons one `tend` reaches by name, their groups, and how to trust
//! and log in to each (`docs/fleet.md`).
//!
//! ```toml
//! [host.web1]
//! url = "https://web1:9100"
//! ca = "/etc/tend/ca.pem"
//! token_command = ["pass", "tend/web1"]
//!
//! [group]
//! web = ["web1", "web2"]
//! ```
//!
//! Read like `tend.toml`: every problem at its `FILE:LINE:COL`, unknown keys
//! with a suggestion. The strings of a `[host.NAME]` (its name and `timeout`
//! aside) expand `${VAR}` and `${VAR:-default}` from the environment of the
//! `tend` command that reads the file, `$$` being a literal `$`, so that a
//! `[[peer]]` of tend.toml copied here means the same (expand.rs).

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::value::{Field, Item, walk};
use crate::ConfigErrors;
use crate::diag::{Cx, diagnostic_at, did_you_mean};

/// The hosts file, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// `[host.NAME]`, by name.
    pub hosts: Vec<HostEntry>,
    /// `[group] NAME = [HOSTS]`, by name; the members in the file's order.
    pub groups: Vec<(String, Vec<String>)>,
}

/// One `[host.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The name (`web1`).
    pub name: String,
    /// `url`: `https://HOST:PORT`, `http://127.0.0.1:PORT` or `unix:///PATH`
    /// (checked by the client, which names [`HostEntry::at`]).
    pub url: String,
    /// `FILE:LINE:COL` of the url, for the client's messages about it.
    pub at: String,
    /// `ca`: the CA certificates (PEM) its certificate is checked against.
    pub ca: Option<PathBuf>,
    /// `pin`: `sha256:HEX` of exactly its certificate.
    pub pin: Option<String>,
    /// `insecure = true`: plain HTTP to another machine is allowed.
    pub insecure: bool,
    /// `cert` and `key`: a client certificate for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// How to log in, if at all.
    pub auth: Option<HostAuth>,
    /// `timeout`: this host's own `--timeout`.
    pub timeout: Option<Duration>,
}

/// How the client logs in to a host.
#[derive(Clone, PartialEq, Eq)]
pub enum HostAuth {
    /// `token = "..."`.
    Token(String),
    /// `token_file = "PATH"`: the token is the file's first line.
    TokenFile(PathBuf),
    /// `token_command = ["pass", "tend/web1"]`: the token is what it prints.
    TokenCommand(Vec<String>),
    /// `user = "..."` with `password_command` (else `TEND_PASSWORD`, else the
    /// terminal's prompt).
    User {
        /// The user name.
        user: String,
        /// A command that prints the password.
        password_command: Option<Vec<String>>,
    },
}

impl std::fmt::Debug for HostAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostAuth::Token(_) => f.write_str("Token(***)"),
            HostAuth::TokenFile(p) => write!(f, "TokenFile({p:?})"),
            HostAuth::TokenCommand(c) => write!(f, "TokenCommand({c:?})"),
            HostAuth::User {
                user,
                password_command,
            } => write!(f, "User({user:?}, {password_command:?})"),
        }
    }
}

impl HostsFile {
    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&HostEntry> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The members of group `name`.
    pub fn group(&self, name: &str) -> Option<&[String]> {
        self.groups
            .iter()
            .find(|(g, _)| g == name)
            .map(|(_, m)| m.as_slice())
    }

    /// The hosts a `-H` selection names, in order and once each: host names,
    /// `@GROUP` and `all`, separated by commas.
    pub fn select(&self, selection: &str) -> Result<Vec<&HostEntry>, String> {
        fn add<'a>(h: &'a HostEntry, out: &mut Vec<&'a HostEntry>) {
            if !out.iter().any(|o| o.name == h.name) {
                out.push(h);
            }
        }
        let mut out: Vec<&HostEntry> = Vec::new();
        let file = self.path.display();
        for item in selection.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(format!("-H {selection:?}: an empty host name"));
            }
            if item == "all" {
                for h in &self.hosts {
                    add(h, &mut out);
                }
                if self.hosts.is_empty() {
                    return Err(format!("-H all: {file} names no host"));
                }
            } else if let Some(g) = item.strip_prefix('@') {
                let Some(members) = self.group(g) else {
                    let hint = did_you_mean(g, self.groups.iter().map(|(n, _)| n.as_str()));
                    return Err(format!("-H @{g}: no such group in {file}{hint}"));
                };
                for m in members {
                    // Checked when the file was read.
                    if let Some(h) = self.host(m) {
                        add(h, &mut out);
                    }
                }
            } else {
                let Some(h) = self.host(item) else {
                    let hint = did_you_mean(item, self.hosts.iter().map(|h| h.name.as_str()));
                    return Err(format!("-H {item}: no such host in {file}{hint}"));
                };
                add(h, &mut out);
            }
        }
        Ok(out)
    }
}

/// Reads the hosts file at `path`.
pub fn load(path: &Path) -> Result<HostsFile, ConfigErrors> {
    match crate::read::read_text(path, &mut crate::read::Budget::new()) {
        Ok(text) => parse(path, &text),
        Err(e) => Err(ConfigErrors::single(
            path,
            format!("cannot read the hosts file {}: {e}", path.display()),
        )),
    }
}

#[derive(Default)]
struct Draft {
    url: Option<String>,
    url_offset: usize,
    ca: Option<PathBuf>,
    pin: Option<String>,
    insecure: bool,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_command: Option<Vec<String>>,
    user: Option<String>,
    password_command: Option<Vec<String>>,
    timeout: Option<Duration>,
    /// Offsets of the login keys, for "only one of".
    logins: Vec<(usize, &'static str)>,
}

/// A path, `${VAR}` expanded (then `~/`), relative to the file's directory.
fn path(cx: &mut Cx<'_>, v: &Item<'_>, key: &str) -> Option<PathBuf> {
    let s = cx.expanded(v, key)?;
    if s.is_empty() {
        cx.error(v.span(), format!("{key} is empty"));
        return None;
    }
    Some(cx.dir.join(shellexpand_home(&s)))
}

/// `~/x` means the home directory's `x`.
fn shellexpand_home(s: &str) -> PathBuf {
    match (s.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(s),
    }
}

/// A command's words, each `${VAR}` expanded (a value with spaces stays one word).
fn command(cx: &mut Cx<'_>, v: &Item<'_>, key: &str) -> Option<Vec<String>> {
    let list = cx.string_list(v)?;
    let list = cx.expand_argv(v, list, key)?;
    if list.is_empty() || list[0].is_empty() {
        cx.error(
            v.span(),
            "expected a command and its arguments, such as [\"pass\", \"tend/web1\"]",
        );
        return None;
    }
    Some(list)
}

const FIELDS: &[Field<Draft>] = &[
    Field {
        key: "url",
        read: |cx, d, _, v| {
            let Some(s) = cx.expanded(v, "url") else {
                return;
            };
            if !["https://", "http://", "unix://"]
                .iter()
                .any(|p| s.starts_with(p))
            {
                cx.error(
                    v.span(),
                    format!(
                        "url {s:?}: expected https://HOST:PORT, http://127.0.0.1:PORT or unix:///PATH"
                    ),
                );
                return;
            }
            d.url = Some(s);
            d.url_offset = v.span().start;
        },
    },
    Field {
        key: "ca",
        read: |cx, d, _, v| d.ca = path(cx, v, "ca"),
    },
    Field {
        key: "pin",
        read: |cx, d, _, v| {
            if let Some(s) = cx.expanded(v, "pin") {
                if !s.to_ascii_lowercase().starts_with("sha256:") {
                    cx.error(
                        v.span(),
                        "a pin is sha256:HEX (the SHA-256 of the certificate)",
                    );
                    return;
                }
                d.pin = Some(s);
            }
        },
    },
    Field {
        key: "insecure",
        read: |cx, d, _, v| d.insecure = cx.bool(v).unwrap_or(false),
    },
    Field {
        key: "cert",
        read: |cx, d, _, v| d.cert = path(cx, v, "cert"),
    },
    Field {
        key: "key",
        read: |cx, d, _, v| d.key = path(cx, v, "key"),
    },
    Field {
        key: "token",
        read: |cx, d, k, v| {
            d.logins.push((k.start, "token"));
            match cx.expanded(v, "token").map(|s| s.trim().to_string()) {
                Some(s) if s.is_empty() => cx.error(v.span(), "token is empty"),
                Some(s) => d.token = Some(s),
                None => {}
            }
        },
    },
    Field {
        key: "token_file",
        read: |cx, d, k, v| {
            d.logins.push((k.start, "token_file"));
            d.token_file = path(cx, v, "token_file");
        },
    },
    Field {
        key: "token_command",
        read: |cx, d, k, v| {
            d.logins.push((k.start, "token_command"));
            d.token_command = command(cx, v, "token_command");
        },
    },
    Field {
        key: "user",
        read: |cx, d, k, v| {
            d.logins.push((k.start, "user"));
            match cx.expanded(v, "user") {
                Some(s) if s.is_empty() => cx.error(v.span(), "user is empty"),
                Some(s) => d.user = Some(s),
                None => {}
            }
        },
    },
    Field {
        key: "password_command",
        read: |cx, d, _, v| d.password_command = command(cx, v, "password_command"),
    },
    Field {
        key: "timeout",
        read: |cx, d, _, v| {
            d.timeout = cx.duration(v);
            if d.timeout.is_some_and(|t| t.is_zero()) {
                cx.error(v.span(), "a timeout of 0 would fail every request");
            }
        },
    },
];

/// The `[[peer]]` tables of tend.toml: the daemons whose processes the
/// dashboard shows beside this one's (`docs/config.md`, "[[peer]]"). Each
/// takes `name` and the keys of a `[host.NAME]` (`url`, `ca`, `pin`,
/// `insecure`, `cert`, `key`, `token`, `token_file`, `timeout`); a daemon
/// runs no command for a secret, so `token_command`, `user` and
/// `password_command` are refused with the reason. Its strings but `name`
/// expand `${VAR}` as the other daemon keys do (the environment, `[daemon]
/// env_file`, `[daemon] env`).
pub(super) fn read_peers(cx: &mut Cx<'_>, item: &Item<'_>) -> Vec<HostEntry> {
    let depth = cx.expand_depth(super::expand::Depth::Daemon);
    let out = peers(cx, item);
    cx.expand_depth(depth);
    out
}

fn peers(cx: &mut Cx<'_>, item: &Item<'_>) -> Vec<HostEntry> {
    let mut out: Vec<HostEntry> = Vec::new();
    let Some(arr) = cx.array(item, "an array of tables ([[peer]])") else {
        return out;
    };
    for (i, v) in arr.iter().enumerate() {
        let Some(t) = cx.table(v) else { continue };
        let fallback = format!("[[peer]] #{}", i + 1);
        let mut name: Option<(String, usize)> = None;
        let mut named = false;
        let mut rest = DeTable::new();
        for (k, val) in t.iter() {
            let key: &str = k.get_ref();
            match key {
                "name" => {
                    named = true;
                    if let Some(s) = cx.string(val) {
                        if s.is_empty() || s == "all" || s.contains([',', '@', '/']) {
                            cx.error(
                                val.span(),
                                format!("{fallback}: a peer's name is not empty, not \"all\", and has no ',', '@' or '/'"),
                            );
                        } else if out.iter().any(|h| h.name == s) {
                            cx.error(val.span(), format!("{fallback}: a second peer named {s:?}"));
                        } else {
                            name = Some((s.to_string(), val.span().start));
                        }
                    }
                }
                "token_command" | "user" | "password_command" => cx.error(
                    k.span(),
                    format!(
                        "{key} in {fallback}: the daemon runs no command for a peer's secret and has no terminal to ask on; give token or token_file"
                    ),
                ),
                _ => {
                    rest.insert(k.clone(), val.clone());
                }
            }
        }
        let Some((name, offset)) = name else {
            // A name that is there but wrong has its own error.
            if !named {
                let start = v.span().start;
                cx.error(
                    start..start,
                    format!("{fallback}: no name (name = \"web1\")"),
                );
            }
            continue;
        };
        let section = format!("[[peer]] {name}");
        let mut d = Draft::default();
        walk(cx, &section, &rest, FIELDS, &[], &mut d);
        if let Some(entry) = finish(cx, &name, &section, offset, d) {
            out.push(entry);
        }
    }
    out
}

/// Same as [`load`], from text; `path` is used for messages and relative paths.
/// `${VAR}` is expanded from this program's environment.
pub fn parse(path: &Path, text: &str) -> Result<HostsFile, ConfigErrors> {
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    parse_with_env(path, text, env)
}

/// Same as [`parse`], expanding `${VAR}` from `env` instead of this
/// program's environment.
pub fn parse_with_env(
    path: &Path,
    text: &str,
    env: std::collections::BTreeMap<String, String>,
) -> Result<HostsFile, ConfigErrors> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if let Some(e) = syntax_errors
        .iter()
        .min_by_key(|e| e.span().map_or(0, |s| s.start))
    {
        let span = e.span().unwrap_or(0..0);
        return Err(ConfigErrors {
            errors: vec![diagnostic_at(
                path,
                text,
                span.start,
                e.message().to_string(),
            )],
        });
    }
    let mut cx = Cx::new(path, text, dir);
    super::expand::begin_client(&mut cx, env);
    let mut hosts = Vec::new();
    let mut groups = Vec::new();
    let mut group_refs = Vec::new();
    for (key, value) in root.get_ref().iter() {
        match key.get_ref().as_ref() {
            "host" => {
                let Some(table) = cx.table(value) else {
                    continue;
                };
                for (name, v) in table.iter() {
                    let name_str: &str = name.get_ref();
                    let section = super::value::section_name(&["host", name_str]);
                    if name_str == "all" || name_str.is_empty() || name_str.contains([',', '@']) {
                        cx.error(
                            name.span(),
                            format!(
                                "{section}: a host name is not empty, not \"all\", and has no ',' or '@'"
                            ),
                        );
                        continue;
                    }
                    let Some(t) = cx.table(v) else { continue };
                    let mut d = Draft::default();
                    walk(&mut cx, &section, t, FIELDS, &[], &mut d);
                    if let Some(entry) = finish(&mut cx, name_str, &section, name.span().start, d) {
                        hosts.push(entry);
                    }
                }
            }
            "group" => {
                let Some(table) = cx.table(value) else {
                    continue;
                };
                for (name, v) in table.iter() {
                    let name_str: &str = name.get_ref();
                    let Some(arr) = cx.array(v, "an array of host names") else {
                        continue;
                    };
                    let mut members = Vec::new();
                    for e in arr.iter() {
                        if let Some(s) = cx.string(e) {
                            members.push(s.to_string());
                            group_refs.push((e.span().start, name_str.to_string(), s.to_string()));
                        }
                    }
                    groups.push((name_str.to_string(), members));
                }
            }
            other => {
                let hint = did_you_mean(other, ["host", "group"]);
                let what = if matches!(value.get_ref(), DeValue::Table(_)) {
                    format!("unknown section [{other}]")
                } else {
                    format!("unknown top-level key {other:?}")
                };
                cx.error(
                    key.span(),
                    format!(
                        "{what}: a hosts file has [host.NAME] tables and a [group] table{hint}"
                    ),
                );
            }
        }
    }
    for (offset, group, member) in group_refs {
        if !hosts.iter().any(|h: &HostEntry| h.name == member) {
            let hint = did_you_mean(&member, hosts.iter().map(|h| h.name.as_str()));
            cx.error(
                offset..offset,
                format!("[group] {group}: no [host.{member}] in this file{hint}"),
            );
        }
    }
    if cx.error_count() > 0 {
        return Err(ConfigErrors {
            errors: cx.into_diagnostics(),
        });
    }
    Ok(HostsFile {
        path: path.to_path_buf(),
        hosts,
        groups,
    })
}

fn finish(
    cx: &mut Cx<'_>,
    name: &str,
    section: &str,
    offset: usize,
    d: Draft,
) -> Option<HostEntry> {
    let before = cx.error_count();
    if d.logins.len() > 1 {
        let keys: Vec<&str> = d.logins.iter().map(|(_, k)| *k).collect();
        cx.error(
            d.logins[1].0..d.logins[1].0,
            format!(
                "{section}: give one way to log in, not {}",
                keys.join(" and ")
            ),
        );
    }
    if d.password_command.is_some() && d.user.is_none() {
        cx.error(
            offset..offset,
            format!("{section}: password_command needs user"),
        );
    }
    if d.cert.is_some() != d.key.is_some() {
        cx.error(
            offset..offset,
            format!("{section}: cert and key go together"),
        );
    }
    if d.ca.is_some() && d.pin.is_some() {
        cx.error(
            offset..offset,
            format!("{section}: give ca or pin, not both"),
        );
    }
    let Some(url) = d.url else {
        cx.error(
            offset..offset,
            format!("{section}: no url (url = \"https://{name}:9100\")"),
        );
        return None;
    };
    if cx.error_count() > before {
        return None;
    }
    let at = {
        let diag = diagnostic_at(cx.file_path(), cx.text(), d.url_offset, String::new());
        format!("{}:{}:{}", diag.file.display(), diag.line, diag.col)
    };
    let auth = if let Some(t) = d.token {
        Some(HostAuth::Token(t))
    } else if let Some(f) = d.token_file {
        Some(HostAuth::TokenFile(f))
    } else if let Some(c) = d.token_command {
        Some(HostAuth::TokenCommand(c))
    } else {
        d.user.map(|user| HostAuth::User {
            user,
            password_command: d.password_command,
        })
    };
    Some(HostEntry {
        name: name.to_string(),
        url,
        at,
        ca: d.ca,
        pin: d.pin,
        insecure: d.insecure,
        client_cert: d.cert.zip(d.key),
        auth,
        timeout: d.timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> String {
        parse(Path::new("/h/hosts.toml"), text)
            .expect_err("errors")
            .to_string()
    }

    #[test]
    fn reads_hosts_and_groups() {
        let f = parse(
            Path::new("/h/hosts.toml"),
            r#"
[host.web1]
url = "https://web1:9100"
ca = "ca.pem"
token_command = ["pass", "tend/web1"]

[host.web2]
url = "https://web2:9100"
user = "ops"
password_command = ["cat", "/run/pw"]
timeout = "2s"

[host.db]
url = "unix:///run/tend.sock"

[group]
web = ["web1", "web2"]
"#,
        )
        .expect("valid");
        assert_eq!(f.hosts.len(), 3);
        let web1 = f.host("web1").expect("web1");
        assert_eq!(web1.ca.as_deref(), Some(Path::new("/h/ca.pem")));
        assert_eq!(web1.at, "/h/hosts.toml:3:7");
        assert_eq!(
            web1.auth,
            Some(HostAuth::TokenCommand(vec![
                "pass".into(),
                "tend/web1".into()
            ]))
        );
        assert_eq!(
            f.host("web2").and_then(|h| h.timeout),
            Some(Duration::from_secs(2))
        );
        let names = |sel: &str| -> Vec<String> {
            f.select(sel)
                .expect(sel)
                .iter()
                .map(|h| h.name.clone())
                .collect()
        };
        assert_eq!(names("@web"), ["web1", "web2"]);
        assert_eq!(names("db,@web,web1"), ["db", "web1", "web2"]);
        assert_eq!(names("all"), ["db", "web1", "web2"]);
        let e = f.select("web3").expect_err("unknown");
        assert!(e.contains("no such host") && e.contains("\"web1\""), "{e}");
        assert!(
            f.select("@db")
                .expect_err("group")
                .contains("no such group")
        );
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let e = errors("[host.web1]\nurl = \"https://a:1\"\ntokn = \"x\"\n");
        assert!(
            e.contains(
                "/h/hosts.toml:3:1: unknown key \"tokn\" in [host.web1] (did you mean \"token\"?)"
            ),
            "{e}"
        );
        let e = errors("[host.web1]\nurl = \"ftp://a\"\n");
        assert!(e.contains("hosts.toml:2:7: url \"ftp://a\""), "{e}");
        let e = errors("[host.web1]\nca = \"x\"\n");
        assert!(e.contains("[host.web1]: no url"), "{e}");
        let e = errors("[host.a]\nurl = \"https://a:1\"\ntoken = \"t\"\nuser = \"u\"\n");
        assert!(
            e.contains("hosts.toml:4:1: [host.a]: give one way to log in, not token and user"),
            "{e}"
        );
        let e = errors("[host.a]\nurl = \"https://a:1\"\n[group]\nweb = [\"a\", \"b\"]\n");
        assert!(
            e.contains("hosts.toml:4:13: [group] web: no [host.b] in this file"),
            "{e}"
        );
        let e = errors("[hosts.a]\nurl = \"https://a:1\"\n");
        assert!(
            e.contains("unknown section [hosts]") && e.contains("\"host\""),
            "{e}"
        );
        let e = errors("[host.all]\nurl = \"https://a:1\"\n");
        assert!(
            e.contains("not \\\"all\\\"") || e.contains("not \"all\""),
            "{e}"
        );
        let e = errors("[host.a]\nurl = 3\n");
        assert!(e.contains("2:7: expected a string, found integer"), "{e}");
    }

    fn vars(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The strings of a `[host.NAME]` expand from the client's environment,
    /// as a `[[peer]]` of tend.toml does; names and groups do not.
    #[test]
    fn variables_expand_from_the_environment() {
        let text = r#"
[host.web1]
url = "https://${WEB1:-web1}:9100"
ca = "${PKI}/ca.pem"
token = "${WEB1_TOKEN}"

[host.web2]
url = "https://web2:9100"
pin = "${WEB2_PIN}"
user = "${OPS_USER}"
password_command = ["pass", "tend/${OPS_USER}", "$$HOME"]

[host.db1]
url = "unix://${RUN}/tend.sock"
token_command = ["cat", "${RUN}/db1.token"]
cert = "certs/${OPS_USER}.pem"
key = "certs/${OPS_USER}.key"

[group]
web = ["web1", "web2"]
"#;
        let f = parse_with_env(
            Path::new("/h/hosts.toml"),
            text,
            vars(&[
                ("PKI", "/etc/pki"),
                ("WEB1_TOKEN", "t0k"),
                ("WEB2_PIN", "sha256:ab12"),
                ("OPS_USER", "ann lee"),
                ("RUN", "/run/x"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let web1 = f.host("web1").expect("web1");
        assert_eq!(web1.url, "https://web1:9100");
        assert_eq!(web1.ca.as_deref(), Some(Path::new("/etc/pki/ca.pem")));
        assert_eq!(web1.auth, Some(HostAuth::Token("t0k".into())));
        let web2 = f.host("web2").expect("web2");
        assert_eq!(web2.pin.as_deref(), Some("sha256:ab12"));
        assert_eq!(
            web2.auth,
            Some(HostAuth::User {
                user: "ann lee".into(),
                password_command: Some(vec!["pass".into(), "tend/ann lee".into(), "$HOME".into()]),
            })
        );
        let db1 = f.host("db1").expect("db1");
        assert_eq!(db1.url, "unix:///run/x/tend.sock");
        assert_eq!(
            db1.auth,
            Some(HostAuth::TokenCommand(vec![
                "cat".into(),
                "/run/x/db1.token".into()
            ]))
        );
        assert_eq!(
            db1.client_cert,
            Some(("/h/certs/ann lee.pem".into(), "/h/certs/ann lee.key".into()))
        );
    }

    /// An unknown variable is an error at the variable (there is no env_file
    /// to set it in); the checks are of the expanded values.
    #[test]
    fn unknown_variables_and_expanded_values_are_errors_at_their_place() {
        let text = "[host.a]\nurl = \"https://a:1\"\ntoken_command = [\"pass\", \"tend/${WHO}\"]\n";
        let e = parse_with_env(Path::new("/h/hosts.toml"), text, vars(&[]))
            .expect_err("unknown")
            .to_string();
        assert!(
            e.contains(
                "/h/hosts.toml:3:32: unknown variable ${WHO} in token_command: set WHO in the environment, give a default (${WHO:-default}), or write $$ for a literal $"
            ),
            "{e}"
        );
        let text = "[host.a]\nurl = \"${U}\"\nuser = \"${NOBODY:-}\"\n[host.b]\nurl = \"https://b:1\"\npin = \"${P}\"\n";
        let e = parse_with_env(
            Path::new("/h/hosts.toml"),
            text,
            vars(&[("U", "ftp://a"), ("P", "md5:x")]),
        )
        .expect_err("invalid")
        .to_string();
        assert!(e.contains("/h/hosts.toml:2:7: url \"ftp://a\""), "{e}");
        assert!(e.contains("/h/hosts.toml:3:8: user is empty"), "{e}");
        assert!(e.contains("/h/hosts.toml:6:7: a pin is sha256:HEX"), "{e}");
    }

    /// The hosts file of docs/fleet.md reads as the page says.
    #[test]
    fn the_example_of_the_docs() {
        let page = include_str!("../../../../docs/fleet.md");
        let start = page.find("```toml\n[host.web1]").expect("the example") + 8;
        let text = &page[start..];
        let text = &text[..text.find("```").expect("its end")];
        let f = parse(Path::new("/h/hosts.toml"), text).expect("the docs' example");
        let names: Vec<&str> = f
            .select("all")
            .expect("all")
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(names, ["db1", "web1", "web2"]);
        assert_eq!(
            f.group("web"),
            Some(&["web1".to_string(), "web2".to_string()][..])
        );
        assert!(matches!(
            f.host("db1").and_then(|h| h.auth.clone()),
            Some(HostAuth::TokenFile(_))
        ));
    }
}
