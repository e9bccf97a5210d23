//! `tend passwd` (a hash for `[access.user.NAME] password`, or a new token
//! and its hash) and `tend check --who` (what an identity may do).

use std::ffi::CString;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use tend_config::Config;
use tend_config::access::{Right, hash_password, hash_token, new_token};
use tend_server::access::{Grants, Identity, Policy};

/// `tend passwd [--token]`.
pub fn passwd(token: bool) -> anyhow::Result<ExitCode> {
    if token {
        let token = new_token().map_err(anyhow::Error::msg)?;
        let hash = hash_token(token.as_bytes()).map_err(anyhow::Error::msg)?;
        println!("token: {token}");
        println!("hash: {hash}");
        eprintln!(
            "Put the hash in the config ([access.token.NAME] hash = \"...\"), give the token to \
             the client (Authorization: Bearer TOKEN); it is not shown again."
        );
        return Ok(ExitCode::SUCCESS);
    }
    let password = read_password()?;
    let hash = hash_password(password.as_bytes()).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}

/// A password from the terminal (asked twice, not echoed) or the first
/// line of standard input.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\n', '\r']).to_string();
        if password.is_empty() {
            bail!("the password is empty (give it on the first line of standard input)");
        }
        return Ok(password);
    }
    let first = prompt("Password: ")?;
    if first.is_empty() {
        bail!("the password is empty");
    }
    let again = prompt("Again: ")?;
    if first != again {
        bail!("the two passwords differ");
    }
    Ok(first)
}

/// Asks on the terminal with echo off.
fn prompt(text: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let mut err = std::io::stderr();
    write!(err, "{text}")?;
    err.flush()?;
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn the echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    writeln!(err)?;
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `tend check --who WHO`: what `who` may do under `config`.
pub fn who(config: &Config, who: &str) -> anyhow::Result<ExitCode> {
    let policy = crate::daemon::policy(config);
    let (identity, what) = identity(config, &policy, who)?;
    let grants = policy.grants(&identity);
    let mut out = String::new();
    out.push_str(&format!("{identity}: {what}\n"));
    if grants.sources.is_empty() {
        out.push_str("  rights from: nothing (anything not granted is denied)\n");
    } else {
        out.push_str(&format!("  rights from: {}\n", grants.sources.join(", ")));
    }
    out.push_str(&table(config, &grants));
    out.push_str(&format!(
        "  add processes with new commands: {}\n",
        if grants.may_spawn() { "yes" } else { "no" }
    ));
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// One line per right: the processes of the config it covers, and the
/// patterns that cover them.
fn table(config: &Config, grants: &Grants) -> String {
    let mut out = String::new();
    for right in Right::ALL {
        let covered: Vec<&str> = config
            .processes
            .iter()
            .filter(|p| grants.allows(right, &p.name, &p.group))
            .map(|p| p.name.as_str())
            .collect();
        let shown = if grants.allows_everything(right) {
            format!("every process ({})", list(&covered))
        } else if covered.is_empty() {
            "none".to_string()
        } else {
            format!("{} ({})", list(&covered), grants.patterns(right).join(", "))
        };
        out.push_str(&format!("  {:<8} {shown}\n", right.as_str()));
    }
    out
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none in the config yet".to_string()
    } else {
        names.join(", ")
    }
}

/// `alice`, `token:deploy`, `uid:1001`, `unix-user:bob`, `anonymous`.
fn identity(config: &Config, policy: &Policy, who: &str) -> anyhow::Result<(Identity, String)> {
    if who == "anonymous" {
        return Ok((
            Identity::Anonymous,
            "a TCP client without credentials".to_string(),
        ));
    }
    if let Some(name) = who.strip_prefix("token:") {
        if !config.access.tokens.iter().any(|t| t.name == name) {
            bail!("no token named {name:?} in [access.token]");
        }
        return Ok((Identity::Token(name.to_string()), "a bearer token".into()));
    }
    if let Some(n) = who.strip_prefix("uid:") {
        let uid: u32 = n.parse().with_context(|| format!("{n:?} is not a uid"))?;
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten();
        return Ok(unix_identity(policy, uid, user));
    }
    if let Some(name) = who.strip_prefix("unix-user:") {
        let user = nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .with_context(|| format!("no user named {name:?} on this machine"))?;
        let uid = user.uid.as_raw();
        return Ok(unix_identity(policy, uid, Some(user)));
    }
    if config.access.users.iter().any(|u| u.name == who) {
        return Ok((
            Identity::User(who.to_string()),
            "an HTTP user ([access.user])".into(),
        ));
    }
    let d = &config.daemon;
    let listener = [
        d.unix_auth.as_ref().map(|a| ("[unix_http_server]", a)),
        d.inet
            .as_ref()
            .and_then(|i| i.auth.as_ref())
            .map(|a| ("[inet_http_server]", a)),
    ];
    if let Some((section, _)) = listener
        .into_iter()
        .flatten()
        .find(|(_, a)| a.username() == who)
    {
        return Ok((
            Identity::ListenerUser(who.to_string()),
            format!("the username of {section}"),
        ));
    }
    bail!(
        "no user named {who:?} in [access.user] or a listener's username \
         (for others: token:NAME, uid:N, unix-user:NAME, anonymous)"
    )
}

fn unix_identity(policy: &Policy, uid: u32, user: Option<nix::unistd::User>) -> (Identity, String) {
    let gids: Vec<u32> = user
        .as_ref()
        .and_then(|u| {
            let name = CString::new(u.name.as_str()).ok()?;
            nix::unistd::getgrouplist(&name, u.gid).ok()
        })
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default();
    let what = if policy.is_owner(uid) {
        "a peer of the Unix socket (root or the daemon's own user)"
    } else {
        "a peer of the Unix socket (with the groups of the group database)"
    };
    (
        Identity::Unix {
            uid,
            gids,
            user: user.map(|u| u.name),
        },
        what.to_string(),
    )
}
