//! Who may do what: the `[access]` tables of a `tend.toml` (and the
//! `[tend:...]` sections of a supervisord.conf), read and checked.
//!
//! This module only *describes* the rules; the daemon turns them into a
//! policy and enforces it (`tend_server::access`). What is here:
//!
//! - [`Right`]: the verbs a role grants (`view`, `logs`, `control`, `stdin`,
//!   `reload`, `admin`, `metrics`), each over process patterns;
//! - [`AccessConfig`]: roles, HTTP users (Basic), bearer tokens and the rules
//!   for peers of the Unix socket, with every role reference checked;
//! - [`Secret`]: a stored password or token (argon2, bcrypt, Supervisor's
//!   `{SHA}` and plain forms) and its verification, in constant time;
//! - [`hash_password`], [`new_token`]: what `tend passwd` prints.

use std::collections::BTreeMap;
use std::fmt;

use tend_core::pattern::Pattern;

/// One verb a role grants over processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Right {
    /// See the processes: status, process info, events.
    View,
    /// Read and follow their output and log files.
    Logs,
    /// Start, stop, restart and signal them.
    Control,
    /// Write to their standard input.
    Stdin,
    /// Read the config file again and apply it (reload, reread, update,
    /// Supervisor's restart), reopen log files.
    Reload,
    /// Everything, plus: add and remove processes, clear logs, shut the
    /// daemon down. Over every process (`*`), it may add a process with a
    /// new command: whoever holds that runs commands as the daemon's user.
    Admin,
    /// Read the daemon's metrics.
    Metrics,
}

impl Right {
    /// Every right, in the order they are shown.
    pub const ALL: [Right; 7] = [
        Right::View,
        Right::Logs,
        Right::Control,
        Right::Stdin,
        Right::Reload,
        Right::Admin,
        Right::Metrics,
    ];

    /// The key that grants it in a role (`"control"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Right::View => "view",
            Right::Logs => "logs",
            Right::Control => "control",
            Right::Stdin => "stdin",
            Right::Reload => "reload",
            Right::Admin => "admin",
            Right::Metrics => "metrics",
        }
    }

    /// The right a role key names.
    pub fn parse(key: &str) -> Option<Right> {
        Right::ALL.into_iter().find(|r| r.as_str() == key)
    }

    /// The keys, for messages and suggestions.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        Right::ALL.into_iter().map(Right::as_str)
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A process pattern of a role, as written and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The pattern as written (`web-*`).
    pub text: String,
    /// The pattern (`tend_core::pattern` rules: names, globs, `GROUP:*`, `all`).
    pub pattern: Pattern,
}

impl Scope {
    /// Parses one pattern of a role.
    pub fn parse(text: &str) -> Result<Scope, String> {
        let pattern = Pattern::parse(text).map_err(|e| e.to_string())?;
        Ok(Scope {
            text: text.to_string(),
            pattern,
        })
    }

    /// Whether it selects every process (`*` or `all`).
    pub fn is_everything(&self) -> bool {
        match &self.pattern {
            Pattern::All => true,
            Pattern::Name(g) => g.as_str() == "*",
            _ => false,
        }
    }
}

/// `[access.role.NAME]`: rights over process patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleConf {
    /// The role's name.
    pub name: String,
    /// The patterns each right covers (a right that is absent covers nothing).
    pub grants: BTreeMap<Right, Vec<Scope>>,
}

/// `[access.user.NAME]`: an HTTP user (Basic authentication, a client
/// certificate, or both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConf {
    /// The user name.
    pub name: String,
    /// The stored password (none for a user who only logs in with a client
    /// certificate).
    pub password: Option<Secret>,
    /// `certificate`: the client certificates that are this user, on a TLS
    /// listener with a `client_ca` (mutual TLS). Each entry is a subject the
    /// certificate names (its common name, one of its DNS names or URIs)
    /// or `sha256:HEX`, the fingerprint of one certificate.
    pub certificates: Vec<String>,
    /// Its roles.
    pub roles: Vec<String>,
}

/// `[access.token.NAME]`: a bearer token (`Authorization: Bearer ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConf {
    /// The token's name (shown in the audit log).
    pub name: String,
    /// The stored hash of the token.
    pub hash: Secret,
    /// Its roles.
    pub roles: Vec<String>,
}

/// Who a rule of `[access.unix]` is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixSubject {
    /// `"user:NAME"` or `"uid:N"`: the peer runs as this user.
    User {
        /// The name as written (or the number).
        name: String,
        /// Its uid.
        uid: u32,
    },
    /// `"group:NAME"` or `"gid:N"`: the peer has this group (primary or
    /// supplementary).
    Group {
        /// The name as written (or the number).
        name: String,
        /// Its gid.
        gid: u32,
    },
}

impl UnixSubject {
    /// Reads `user:NAME`, `uid:N`, `group:NAME` or `gid:N`, looking the
    /// name up on this machine.
    pub fn parse(key: &str) -> Result<UnixSubject, String> {
        let Some((kind, name)) = key.split_once(':') else {
            return Err(format!(
                "{key:?} is not a peer: write \"user:NAME\", \"group:NAME\", \"uid:N\" or \"gid:N\""
            ));
        };
        if name.is_empty() {
            return Err(format!("{key:?} names no {kind}"));
        }
        let number = |what: &str| {
            name.parse::<u32>()
                .map_err(|_| format!("{key:?}: {name:?} is not a {what} number"))
        };
        match kind {
            "uid" => Ok(UnixSubject::User {
                name: name.to_string(),
                uid: number("uid")?,
            }),
            "gid" => Ok(UnixSubject::Group {
                name: name.to_string(),
                gid: number("gid")?,
            }),
            "user" => match nix::unistd::User::from_name(name) {
                Ok(Some(u)) => Ok(UnixSubject::User {
                    name: name.to_string(),
                    uid: u.uid.as_raw(),
                }),
                Ok(None) => Err(format!("no user named {name:?} on this machine")),
                Err(e) => Err(format!("cannot look up user {name:?}: {e}")),
            },
            "group" => match nix::unistd::Group::from_name(name) {
                Ok(Some(g)) => Ok(UnixSubject::Group {
                    name: name.to_string(),
                    gid: g.gid.as_raw(),
                }),
                Ok(None) => Err(format!("no group named {name:?} on this machine")),
                Err(e) => Err(format!("cannot look up group {name:?}: {e}")),
            },
            other => Err(format!(
                "unknown peer kind {other:?} in {key:?}: expected user, group, uid or gid"
            )),
        }
    }
}

/// One rule of `[access.unix]`: roles for peers of the Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixRule {
    /// Who.
    pub subject: UnixSubject,
    /// Their roles.
    pub roles: Vec<String>,
}

/// The `[access]` tables: who may do what. Without any (`configured` is
/// false), the daemon gives supervisord's rights (`docs/security.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessConfig {
    /// Whether the file has an `[access]` table (or a `[tend:...]` access
    /// section): then anything not granted is denied.
    pub configured: bool,
    /// Roles by name (the built-in `admin` is not listed).
    pub roles: Vec<RoleConf>,
    /// HTTP users.
    pub users: Vec<UserConf>,
    /// Bearer tokens.
    pub tokens: Vec<TokenConf>,
    /// Rules for peers of the Unix socket, in file order.
    pub unix: Vec<UnixRule>,
}

/// The role every config has: every right over every process.
pub const ADMIN_ROLE: &str = "admin";

impl AccessConfig {
    /// The role named `name` (not the built-in `admin`).
    pub fn role(&self, name: &str) -> Option<&RoleConf> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// Every role name a user, token or rule may refer to.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(ADMIN_ROLE).chain(self.roles.iter().map(|r| r.name.as_str()))
    }
}

/// Whether `name` may name a role, user or token: letters, digits, `-`,
/// `_`, `.` and `@`, not empty.
pub fn check_ident(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')))
    {
        return Err(format!(
            "invalid {what} name {name:?}: {c:?} is not allowed (letters, digits, '-', '_', '.', '@')"
        ));
    }
    Ok(())
}

/// Whether `text` can name a client certificate in a user's `certificate`:
/// a subject (no control characters, not empty) or `sha256:` and 64 hex
/// digits.
pub fn check_certificate(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("an empty subject names no certificate".to_string());
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{text:?} has a control character"));
    }
    if let Some(hex) = text.strip_prefix("sha256:") {
        let hex = hex.replace(':', "");
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "{text:?} is not a SHA-256 fingerprint (sha256: and 64 hex digits)"
            ));
        }
    }
    Ok(())
}

/// Whether a client certificate that names `subjects` (its common name, DNS
/// names and URIs) and has the SHA-256 fingerprint `sha256` (lower-case hex)
/// is one that `entry` of a user's `certificate` names.
pub fn certificate_matches<'a>(
    entry: &str,
    mut subjects: impl Iterator<Item = &'a str>,
    sha256: &str,
) -> bool {
    match entry.strip_prefix("sha256:") {
        Some(hex) => hex.replace(':', "").eq_ignore_ascii_case(sha256),
        None => subjects.any(|s| s == entry),
    }
}

/// A stored password or token.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// An argon2 PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    Argon2(String),
    /// A bcrypt hash (`$2b$12$...`).
    Bcrypt(String),
    /// Supervisor's `{SHA}` + hex SHA-1 (unsalted: weak).
    Sha1(String),
    /// A password in clear text (Supervisor's plain form, or `{PLAIN}...`).
    Plain(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets stay out of logs and test output.
        write!(f, "Secret::{}(***)", self.kind())
    }
}

/// The largest argon2 memory cost a config may ask for (1 GiB, in KiB):
/// more is a mistake that would let a few logins exhaust memory.
pub const MAX_ARGON2_M_COST: u32 = 1024 * 1024;

impl Secret {
    /// Reads a stored secret of `[access.user]` or `[access.token]`: an
    /// argon2 or bcrypt hash, `{SHA}` and a hex SHA-1, or `{PLAIN}` and the
    /// password itself. Anything else is refused, so that a mistyped hash
    /// never becomes a password.
    pub fn parse(text: &str) -> Result<Secret, String> {
        if text.starts_with("$argon2") {
            let parsed = argon2::password_hash::phc::PasswordHash::new(text)
                .map_err(|e| format!("not a valid argon2 hash: {e}"))?;
            let params = argon2::Params::try_from(&parsed)
                .map_err(|e| format!("not a valid argon2 hash: {e}"))?;
            if params.m_cost() > MAX_ARGON2_M_COST {
                return Err(format!(
                    "argon2 memory cost m={} KiB is more than {MAX_ARGON2_M_COST} KiB (1 GiB)",
                    params.m_cost()
                ));
            }
            return Ok(Secret::Argon2(text.to_string()));
        }
        if let Some(rest) = ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .find_map(|p| text.strip_prefix(p))
        {
            let ok = text.len() == 60
                && rest.as_bytes().get(2) == Some(&b'$')
                && rest[..2]
                    .parse::<u32>()
                    .is_ok_and(|c| (4..=31).contains(&c));
            if !ok {
                return Err(
                    "not a valid bcrypt hash (expected $2b$COST$ and 53 characters)".into(),
                );
            }
            return Ok(Secret::Bcrypt(text.to_string()));
        }
        if let Some(hex) = text.strip_prefix("{SHA}") {
            return Secret::sha1(hex);
        }
        if let Some(plain) = text.strip_prefix("{PLAIN}") {
            return Ok(Secret::Plain(plain.to_string()));
        }
        Err(
            "not a password hash tend knows: expected an argon2 hash ($argon2id$..., from \
             `tend passwd`), a bcrypt hash ($2b$...), {SHA} and a hex SHA-1, or {PLAIN} and \
             the password"
                .into(),
        )
    }

    /// Supervisor's forms: `{SHA}` and a hex SHA-1, anything else in clear.
    pub fn supervisor(text: &str) -> Secret {
        match text.strip_prefix("{SHA}") {
            Some(hex) => Secret::Sha1(hex.to_string()),
            None => Secret::Plain(text.to_string()),
        }
    }

    fn sha1(hex: &str) -> Result<Secret, String> {
        if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{{SHA}} must be followed by 40 hex digits, found {} characters",
                hex.len()
            ));
        }
        Ok(Secret::Sha1(hex.to_string()))
    }

    /// What kind of secret it is (`argon2`, `bcrypt`, `{SHA}`, `plain`).
    pub fn kind(&self) -> &'static str {
        match self {
            Secret::Argon2(_) => "argon2",
            Secret::Bcrypt(_) => "bcrypt",
            Secret::Sha1(_) => "{SHA}",
            Secret::Plain(_) => "plain",
        }
    }

    /// Whether a stolen copy of it gives the password away at once
    /// (clear text, or an unsalted SHA-1).
    pub fn is_weak(&self) -> bool {
        matches!(self, Secret::Sha1(_) | Secret::Plain(_))
    }

    /// Whether checking it is expensive (argon2, bcrypt).
    pub fn is_costly(&self) -> bool {
        matches!(self, Secret::Argon2(_) | Secret::Bcrypt(_))
    }

    /// Whether `password` is right. The comparison of the final digests (or
    /// of the clear texts) takes the same time wherever they differ. Slow
    /// for argon2 and bcrypt, on purpose: call it off the async threads.
    pub fn verify(&self, password: &[u8]) -> bool {
        use argon2::password_hash::PasswordVerifier;
        use subtle::ConstantTimeEq;
        match self {
            Secret::Argon2(phc) => match argon2::password_hash::phc::PasswordHash::new(phc) {
                // The PHC string's own algorithm and parameters are used;
                // the library compares the outputs in constant time.
                Ok(hash) => argon2::Argon2::default()
                    .verify_password(password, &hash)
                    .is_ok(),
                Err(_) => false,
            },
            Secret::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Secret::Sha1(hex) => {
                use sha1::{Digest, Sha1};
                let digest: String = Sha1::digest(password)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                // Supervisor compares the hex as written: case matters.
                bool::from(hex.as_bytes().ct_eq(digest.as_bytes()))
            }
            Secret::Plain(p) => {
                // Compare fixed-size digests so the time does not depend on
                // the lengths either.
                use sha2::{Digest, Sha256};
                let a = Sha256::digest(p.as_bytes());
                let b = Sha256::digest(password);
                bool::from(a.as_slice().ct_eq(b.as_slice()))
            }
        }
    }
}

/// An argon2id hash of `password` with argon2's default parameters (19 MiB,
/// 2 passes), a fresh random salt: what `tend passwd` prints.
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// An argon2id hash of a token made by [`new_token`]: light parameters
/// (1 MiB, 1 pass), since a 256-bit random token cannot be guessed however
/// fast each guess is, and every bearer request checks every token.
pub fn hash_token(token: &[u8]) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    let params =
        argon2::Params::new(1024, 1, 1, None).map_err(|e| format!("cannot hash the token: {e}"))?;
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(token)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the token: {e}"))
}

/// A new random bearer token: `tend_` and 43 characters of URL-safe base64
/// (32 bytes from the operating system's random source).
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random source: {e}"))?;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::from("tend_");
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 63) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 63) as usize]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_in_every_form() {
        let argon = Secret::parse(&hash_password(b"pw").expect("hash")).expect("argon2");
        assert!(argon.verify(b"pw") && !argon.verify(b"pW"));
        let bc = bcrypt::hash("pw", 4).expect("bcrypt");
        let bc = Secret::parse(&bc).expect("bcrypt");
        assert!(bc.verify(b"pw") && !bc.verify(b"px"));
        // sha1("secret")
        let sha = Secret::parse("{SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4").expect("sha");
        assert!(sha.verify(b"secret") && !sha.verify(b"Secret"));
        let plain = Secret::parse("{PLAIN}secret").expect("plain");
        assert!(plain.verify(b"secret") && !plain.verify(b"secret2"));
        assert!(Secret::supervisor("secret").verify(b"secret"));
        assert_eq!(format!("{plain:?}"), "Secret::plain(***)");
    }

    #[test]
    fn a_mistyped_hash_is_not_a_password() {
        for bad in [
            "secret",
            "$argon2id$v=19$nonsense",
            "$2b$12$short",
            "{SHA}abc",
            "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(Secret::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_random_and_hash_lightly() {
        let a = new_token().expect("token");
        let b = new_token().expect("token");
        assert_ne!(a, b);
        assert_eq!(a.len(), 5 + 43);
        let h = Secret::parse(&hash_token(a.as_bytes()).expect("hash")).expect("parse");
        assert!(h.verify(a.as_bytes()) && !h.verify(b.as_bytes()));
    }

    #[test]
    fn unix_subjects() {
        assert_eq!(
            UnixSubject::parse("uid:1001"),
            Ok(UnixSubject::User {
                name: "1001".into(),
                uid: 1001
            })
        );
        assert_eq!(
            UnixSubject::parse("user:root"),
            Ok(UnixSubject::User {
                name: "root".into(),
                uid: 0
            })
        );
        assert!(UnixSubject::parse("group:root").is_ok());
        assert!(UnixSubject::parse("bob").is_err());
        assert!(UnixSubject::parse("user:no-such-user-here").is_err());
        assert!(UnixSubject::parse("host:x").is_err());
    }
}
