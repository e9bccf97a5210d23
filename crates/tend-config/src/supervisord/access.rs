//! tend's own sections of a supervisord.conf: the `[access]` tables of a
//! `tend.toml` in a form Python's `ConfigParser` reads and supervisord
//! ignores (it only looks at the sections it knows by name or prefix).
//!
//! ```ini
//! [tend:role:operator]
//! view = *
//! logs = web-*
//! control = web-*
//!
//! [tend:user:alice]
//! password = $argon2id$v=19$...
//! roles = operator
//!
//! [tend:token:deploy]
//! hash = $argon2id$v=19$...
//! roles = operator
//!
//! [tend:unix:group:ops]
//! roles = operator
//! ```
//!
//! Who a `[tend:unix:...]` section is about is in its name (`user:NAME`,
//! `group:NAME`, `uid:N`, `gid:N`), because `ConfigParser` splits an option at
//! its first `:` and lower-cases option names. Lists are separated by commas
//! or whitespace, as Supervisor's own lists are. Values are taken as written
//! (no `%(...)s` expansion), so a hash is never mangled.

use std::collections::BTreeMap;

use super::St;
use super::ini::{Entry, Ini, Section};
use crate::access::{
    ADMIN_ROLE, AccessConfig, Right, RoleConf, Scope, Secret, TokenConf, UnixRule, UnixSubject,
    UserConf, check_ident,
};
use crate::diag::{did_you_mean, suggest};

/// The prefix of every tend section.
pub(super) const PREFIX: &str = "tend:";

/// Whether a section is one of tend's.
pub(super) fn is_tend(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// Reads every `[tend:...]` section.
pub(super) fn read(ini: &Ini, st: &mut St<'_>) -> AccessConfig {
    let mut access = AccessConfig::default();
    // (role, file, line, section) to check once every role is known.
    let mut refs: Vec<(String, usize, usize, String)> = Vec::new();
    for section in ini.sections.iter().filter(|s| is_tend(&s.name)) {
        access.configured = true;
        let rest = &section.name[PREFIX.len()..];
        let (kind, name) = rest.split_once(':').unwrap_or((rest, ""));
        match kind {
            "role" => role(st, section, name, &mut access),
            "user" | "token" => credential(st, section, kind, name, &mut access, &mut refs),
            "unix" => unix(st, section, name, &mut access, &mut refs),
            other => {
                let hint = did_you_mean(other, ["role", "user", "token", "unix"]);
                st.error(
                    section.file,
                    section.line,
                    format!(
                        "unknown tend section [{}]: expected [tend:role:NAME], [tend:user:NAME], [tend:token:NAME] or [tend:unix:user:NAME] (or group:NAME, uid:N, gid:N){hint}",
                        section.name
                    ),
                );
            }
        }
    }
    for (role, file, line, section) in refs {
        if !access.role_names().any(|n| n == role) {
            let hint = suggest(&role, access.role_names())
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            st.error(
                file,
                line,
                format!(
                    "unknown role {role:?} in [{section}] (define it in [tend:role:{role}]){hint}"
                ),
            );
        }
    }
    access
}

/// A list: items separated by commas or whitespace.
fn list(value: &str) -> Vec<&str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect()
}

fn unknown_key(st: &mut St<'_>, section: &Section, e: &Entry, known: &[&str]) {
    let hint = did_you_mean(&e.key, known.iter().copied());
    st.error_at(
        e,
        format!("unknown option {:?} in [{}]{hint}", e.key, section.name),
    );
}

fn role(st: &mut St<'_>, section: &Section, name: &str, access: &mut AccessConfig) {
    if let Err(why) = check_ident("role", name) {
        st.error(
            section.file,
            section.line,
            format!("[{}]: {why}", section.name),
        );
        return;
    }
    if name == ADMIN_ROLE {
        st.error(
            section.file,
            section.line,
            "the role \"admin\" is built in (every right over every process): give your role another name",
        );
        return;
    }
    let mut grants = BTreeMap::new();
    for e in &section.entries {
        let Some(right) = Right::parse(&e.key) else {
            let keys: Vec<&str> = Right::keys().collect();
            unknown_key(st, section, e, &keys);
            continue;
        };
        let mut scopes = Vec::new();
        for text in list(&e.value) {
            match Scope::parse(text) {
                Ok(s) => scopes.push(s),
                Err(why) => st.error_at(e, format!("{} in [{}]: {why}", e.key, section.name)),
            }
        }
        grants.insert(right, scopes);
    }
    access.roles.push(RoleConf {
        name: name.to_string(),
        grants,
    });
}

fn roles_of(
    e: &Entry,
    section: &Section,
    refs: &mut Vec<(String, usize, usize, String)>,
) -> Vec<String> {
    let roles: Vec<String> = list(&e.value).into_iter().map(String::from).collect();
    for r in &roles {
        refs.push((r.clone(), e.file, e.line, section.name.clone()));
    }
    roles
}

fn credential(
    st: &mut St<'_>,
    section: &Section,
    kind: &str,
    name: &str,
    access: &mut AccessConfig,
    refs: &mut Vec<(String, usize, usize, String)>,
) {
    if let Err(why) = check_ident(kind, name) {
        st.error(
            section.file,
            section.line,
            format!("[{}]: {why}", section.name),
        );
        return;
    }
    let secret_key = if kind == "user" { "password" } else { "hash" };
    let mut secret = None;
    let mut roles = None;
    let mut certificates = Vec::new();
    let mut ok = true;
    for e in &section.entries {
        if kind == "user" && e.key == "certificate" {
            for t in list(&e.value) {
                match crate::access::check_certificate(t) {
                    Ok(()) => certificates.push(t.to_string()),
                    Err(why) => {
                        st.error_at(e, format!("certificate in [{}]: {why}", section.name));
                        ok = false;
                    }
                }
            }
        } else if e.key == secret_key {
            match Secret::parse(&e.value) {
                Ok(s) => secret = Some(s),
                Err(why) => {
                    st.error_at(e, format!("{secret_key} in [{}]: {why}", section.name));
                    ok = false;
                }
            }
        } else if e.key == "roles" {
            roles = Some(roles_of(e, section, refs));
        } else if kind == "user" {
            unknown_key(st, section, e, &[secret_key, "roles", "certificate"]);
        } else {
            unknown_key(st, section, e, &[secret_key, "roles"]);
        }
    }
    if secret.is_none() && ok && certificates.is_empty() {
        st.error(
            section.file,
            section.line,
            format!(
                "section [{}] has no {secret_key} value (`tend passwd` prints one)",
                section.name
            ),
        );
    }
    if roles.is_none() {
        st.error(
            section.file,
            section.line,
            format!("section [{}] has no roles value", section.name),
        );
    }
    let Some(roles) = roles else {
        return;
    };
    let name = name.to_string();
    if kind == "user" {
        if secret.is_none() && certificates.is_empty() {
            return;
        }
        access.users.push(UserConf {
            name,
            password: secret,
            certificates,
            roles,
        });
    } else if let Some(secret) = secret {
        access.tokens.push(TokenConf {
            name,
            hash: secret,
            roles,
        });
    }
}

fn unix(
    st: &mut St<'_>,
    section: &Section,
    who: &str,
    access: &mut AccessConfig,
    refs: &mut Vec<(String, usize, usize, String)>,
) {
    let subject = match UnixSubject::parse(who) {
        Ok(s) => Some(s),
        Err(why) => {
            st.error(
                section.file,
                section.line,
                format!("[{}]: {why}", section.name),
            );
            None
        }
    };
    let mut roles = None;
    for e in &section.entries {
        if e.key == "roles" {
            roles = Some(roles_of(e, section, refs));
        } else {
            unknown_key(st, section, e, &["roles"]);
        }
    }
    let Some(roles) = roles else {
        st.error(
            section.file,
            section.line,
            format!("section [{}] has no roles value", section.name),
        );
        return;
    };
    if let Some(subject) = subject {
        access.unix.push(UnixRule { subject, roles });
    }
}
