//! `[access]`: `[access.role.NAME]`, `[access.user.NAME]`,
//! `[access.token.NAME]` and `[access.unix]` (see `docs/security.md`).

use std::collections::BTreeMap;

use toml::de::DeValue;

use super::value::{Item, section_name};
use crate::access::{
    ADMIN_ROLE, AccessConfig, Right, RoleConf, Scope, Secret, TokenConf, UnixRule, UnixSubject,
    UserConf, check_ident,
};
use crate::diag::{Cx, Span, did_you_mean};

const TABLES: [&str; 4] = ["role", "user", "token", "unix"];

/// A role named somewhere, checked once every role is known.
struct RoleRef {
    name: String,
    span: Span,
    section: String,
}

/// Reads the `[access]` table.
pub(super) fn read(cx: &mut Cx<'_>, item: &Item<'_>) -> AccessConfig {
    let mut access = AccessConfig {
        configured: true,
        ..AccessConfig::default()
    };
    let Some(table) = cx.table(item) else {
        return access;
    };
    let mut refs = Vec::new();
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (key, value) in entries {
        let name: &str = key.get_ref();
        match name {
            "role" => roles(cx, value, &mut access),
            "user" => users(cx, value, &mut access, &mut refs),
            "token" => tokens(cx, value, &mut access, &mut refs),
            "unix" => unix(cx, value, &mut access, &mut refs),
            other => {
                let hint = did_you_mean(other, TABLES);
                cx.error(
                    key.span(),
                    format!(
                        "unknown key {other:?} in [access] (expected [access.role.NAME], [access.user.NAME], [access.token.NAME] or [access.unix]){hint}"
                    ),
                );
            }
        }
    }
    for r in refs {
        if !access.role_names().any(|n| n == r.name) {
            let hint = did_you_mean(&r.name, access.role_names());
            cx.error(
                r.span,
                format!(
                    "unknown role {:?} in {} (define it in [access.role.{}]){hint}",
                    r.name, r.section, r.name
                ),
            );
        }
    }
    access
}

/// The named sub-tables of `[access.KIND]`, in file order, each with its
/// section name for messages.
fn named<'v, 'i>(
    cx: &mut Cx<'_>,
    kind: &str,
    item: &'v Item<'i>,
) -> Vec<(String, Span, String, &'v toml::de::DeTable<'i>)> {
    let Some(table) = cx.table(item) else {
        return Vec::new();
    };
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut out = Vec::new();
    for (key, value) in entries {
        let name: &str = key.get_ref();
        let section = section_name(&["access", kind, name]);
        if let Err(e) = check_ident(kind, name) {
            cx.error(key.span(), e);
            continue;
        }
        match value.get_ref() {
            DeValue::Table(t) => out.push((name.to_string(), key.span(), section, t)),
            other => cx.error(
                value.span(),
                format!(
                    "expected a table for {kind} {name:?} (write a {section} section), found {}",
                    other.type_str()
                ),
            ),
        }
    }
    out
}

fn roles(cx: &mut Cx<'_>, item: &Item<'_>, access: &mut AccessConfig) {
    for (name, span, section, table) in named(cx, "role", item) {
        if name == ADMIN_ROLE {
            cx.error(
                span,
                "the role \"admin\" is built in (every right over every process): give your role another name",
            );
            continue;
        }
        let mut grants = BTreeMap::new();
        for (key, value) in table.iter() {
            let k: &str = key.get_ref();
            let Some(right) = Right::parse(k) else {
                let hint = did_you_mean(k, Right::keys());
                cx.error(
                    key.span(),
                    format!(
                        "unknown right {k:?} in {section} (rights are view, logs, control, stdin, reload, admin and metrics){hint}"
                    ),
                );
                continue;
            };
            if let Some(scopes) = patterns(cx, value) {
                grants.insert(right, scopes);
            }
        }
        access.roles.push(RoleConf { name, grants });
    }
}

/// An array of process patterns.
fn patterns(cx: &mut Cx<'_>, v: &Item<'_>) -> Option<Vec<Scope>> {
    let arr = cx.array(v, "an array of process patterns (such as [\"web-*\"])")?;
    let mut out = Vec::with_capacity(arr.len());
    for e in arr.iter() {
        let s = cx.string(e)?;
        match Scope::parse(s) {
            Ok(scope) => out.push(scope),
            Err(why) => cx.error(e.span(), why),
        }
    }
    Some(out)
}

/// `roles = [...]`, each remembered for the check at the end.
fn role_list(cx: &mut Cx<'_>, v: &Item<'_>, section: &str, refs: &mut Vec<RoleRef>) -> Vec<String> {
    let Some(arr) = cx.array(v, "an array of role names") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in arr.iter() {
        if let Some(s) = cx.string(e) {
            refs.push(RoleRef {
                name: s.to_string(),
                span: e.span(),
                section: section.to_string(),
            });
            out.push(s.to_string());
        }
    }
    out
}

/// A table of credentials: `secret_key` (the stored secret), `roles`, and
/// for a user `certificate` (then the secret may be left out).
fn credential(
    cx: &mut Cx<'_>,
    table: &toml::de::DeTable<'_>,
    span: Span,
    section: &str,
    secret_key: &str,
    refs: &mut Vec<RoleRef>,
    mut certificates: Option<&mut Vec<String>>,
) -> Option<(Option<Secret>, Vec<String>)> {
    let mut secret = None;
    let mut roles = None;
    let mut ok = true;
    for (key, value) in table.iter() {
        let k: &str = key.get_ref();
        if k == "certificate"
            && let Some(out) = certificates.as_deref_mut()
        {
            let texts: Vec<String> = if let Some(s) = value.get_ref().as_str() {
                vec![s.to_string()]
            } else if let Some(arr) = cx.array(value, "a certificate subject or a list of them") {
                arr.iter()
                    .filter_map(|e| cx.string(e).map(str::to_string))
                    .collect()
            } else {
                ok = false;
                Vec::new()
            };
            for t in texts {
                match crate::access::check_certificate(&t) {
                    Ok(()) => out.push(t),
                    Err(why) => {
                        cx.error(value.span(), format!("certificate in {section}: {why}"));
                        ok = false;
                    }
                }
            }
        } else if k == secret_key {
            match cx.string(value).map(Secret::parse) {
                Some(Ok(s)) => secret = Some(s),
                Some(Err(why)) => {
                    cx.error(value.span(), format!("{secret_key} in {section}: {why}"));
                    ok = false;
                }
                None => ok = false,
            }
        } else if k == "roles" {
            roles = Some(role_list(cx, value, section, refs));
        } else {
            let known: &[&str] = if certificates.is_some() {
                &[secret_key, "roles", "certificate"]
            } else {
                &[secret_key, "roles"]
            };
            let hint = did_you_mean(k, known.iter().copied());
            cx.error(key.span(), format!("unknown key {k:?} in {section}{hint}"));
        }
    }
    let by_certificate = certificates.as_ref().is_some_and(|c| !c.is_empty());
    if secret.is_none() && ok && !by_certificate {
        cx.error(
            span.clone(),
            format!("missing required key {secret_key:?} in {section} (`tend passwd` prints one)"),
        );
    }
    if roles.is_none() {
        cx.error(
            span,
            format!(
                "missing required key \"roles\" in {section} (for example roles = [\"operator\"])"
            ),
        );
    }
    if secret.is_none() && !by_certificate {
        return None;
    }
    Some((secret, roles?))
}

fn users(cx: &mut Cx<'_>, item: &Item<'_>, access: &mut AccessConfig, refs: &mut Vec<RoleRef>) {
    for (name, span, section, table) in named(cx, "user", item) {
        let mut certificates = Vec::new();
        let read = credential(
            cx,
            table,
            span,
            &section,
            "password",
            refs,
            Some(&mut certificates),
        );
        if let Some((password, roles)) = read {
            access.users.push(UserConf {
                name,
                password,
                certificates,
                roles,
            });
        }
    }
}

fn tokens(cx: &mut Cx<'_>, item: &Item<'_>, access: &mut AccessConfig, refs: &mut Vec<RoleRef>) {
    for (name, span, section, table) in named(cx, "token", item) {
        if let Some((Some(hash), roles)) = credential(cx, table, span, &section, "hash", refs, None)
        {
            access.tokens.push(TokenConf { name, hash, roles });
        }
    }
}

fn unix(cx: &mut Cx<'_>, item: &Item<'_>, access: &mut AccessConfig, refs: &mut Vec<RoleRef>) {
    let Some(table) = cx.table(item) else { return };
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (key, value) in entries {
        let k: &str = key.get_ref();
        let subject = match UnixSubject::parse(k) {
            Ok(s) => Some(s),
            Err(why) => {
                cx.error(key.span(), format!("{why} in [access.unix]"));
                None
            }
        };
        let roles = role_list(cx, value, "[access.unix]", refs);
        if let Some(subject) = subject {
            access.unix.push(UnixRule { subject, roles });
        }
    }
}
