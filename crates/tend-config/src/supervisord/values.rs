//! Supervisor's value types (`supervisor/datatypes.py`), with its messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nix::unistd::{Group, Uid, User};
use tend_core::{RestartPolicy, Signal};

use super::ini::{py_isspace, py_repr, py_strip};

/// Python's `int(s)`: surrounding whitespace, a sign, digits with single
/// underscores between them.
pub(super) fn integer(s: &str) -> Result<i64, String> {
    parse_int(s, 10)
        .ok_or_else(|| format!("invalid literal for int() with base 10: {}", py_repr(s)))
}

/// An integer that must fit `T` (a port, a priority, a count).
pub(super) fn integer_in<T: TryFrom<i64>>(s: &str, what: &str) -> Result<T, String> {
    let n = integer(s)?;
    T::try_from(n).map_err(|_| format!("{n} is out of range for {what}"))
}

/// Python's `int(s)` for a number that may pass the 64-bit range (Python's
/// integers have none): `numprocs_start` near the largest `i64` still makes
/// its processes, as in supervisord.
pub(super) fn integer_wide(s: &str) -> Result<i128, String> {
    parse_wide(s, 10).ok_or_else(|| {
        let digits = py_strip(s).trim_start_matches(['-', '+']);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
            format!("{} is too large (tend takes up to 39 digits)", py_strip(s))
        } else {
            format!("invalid literal for int() with base 10: {}", py_repr(s))
        }
    })
}

fn parse_int(s: &str, radix: u32) -> Option<i64> {
    parse_wide(s, radix).and_then(|n| i64::try_from(n).ok())
}

fn parse_wide(s: &str, radix: u32) -> Option<i128> {
    let t = py_strip(s);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits = if radix == 8 {
        digits
            .strip_prefix("0o")
            .or_else(|| digits.strip_prefix("0O"))
            .map(|d| d.strip_prefix('_').unwrap_or(d))
            .unwrap_or(digits)
    } else {
        digits
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if !clean.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let n = i128::from_str_radix(&clean, radix).ok()?;
    Some(if neg { -n } else { n })
}

/// `boolean`: yes/true/on/1 or no/false/off/0, any case.
pub(super) fn boolean(s: &str) -> Result<bool, String> {
    match s.to_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("not a valid boolean value: {}", py_repr(s))),
    }
}

/// `byte_size`: an integer with an optional KB, MB or GB suffix (powers of 1024).
pub(super) fn byte_size(s: &str) -> Result<i64, String> {
    let lower = s.to_lowercase();
    for (suffix, scale) in [("kb", 1i64 << 10), ("mb", 1 << 20), ("gb", 1 << 30)] {
        if let Some(num) = lower.strip_suffix(suffix) {
            return integer(num)?
                .checked_mul(scale)
                .ok_or_else(|| format!("{} is too large", py_repr(s)));
        }
    }
    integer(&lower)
}

/// A size that must not be negative.
pub(super) fn size(s: &str) -> Result<u64, String> {
    let n = byte_size(s)?;
    u64::try_from(n).map_err(|_| format!("{} is negative", py_repr(s)))
}

/// `octal_type`: Python's `int(s, 8)`.
pub(super) fn octal(s: &str) -> Result<u32, String> {
    parse_int(s, 8)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("{s} can not be converted to an octal type"))
}

/// `signal_number`: a number, or a name with or without `SIG`.
pub(super) fn signal(s: &str) -> Result<Signal, String> {
    if let Ok(n) = integer(s) {
        return i32::try_from(n)
            .ok()
            .and_then(Signal::from_number)
            .ok_or_else(|| format!("value {} is not a valid signal number", py_repr(s)));
    }
    let upper = s.trim().to_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    // Python's signal module also knows these spellings.
    let canonical = match bare {
        "IOT" => "ABRT",
        "POLL" => "IO",
        "CLD" => "CHLD",
        other => other,
    };
    let by_rt = match canonical {
        "RTMIN" => Signal::from_number(libc::SIGRTMIN()),
        "RTMAX" => Signal::from_number(libc::SIGRTMAX()),
        _ => canonical.parse().ok(),
    };
    by_rt.ok_or_else(|| format!("value {} is not a valid signal name", py_repr(s)))
}

/// `list_of_exitcodes`: comma-separated integers in 0..=255; empty is none.
pub(super) fn exitcodes(s: &str) -> Result<Vec<i32>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|part| match integer(part) {
            Ok(n @ 0..=255) => Ok(n as i32),
            _ => Err(()),
        })
        .collect::<Result<Vec<i32>, ()>>()
        .map_err(|()| format!("not a valid list of exit codes: {}", py_repr(s)))
}

/// `list_of_strings`: comma-separated, each stripped; empty is none.
pub(super) fn list_of_strings(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split(',').map(|x| py_strip(x).to_string()).collect()
}

/// `auto_restart`: true/false (as booleans) or `unexpected`.
pub(super) fn auto_restart(s: &str) -> Result<RestartPolicy, String> {
    let lower = s.to_lowercase();
    match lower.as_str() {
        "yes" | "true" | "on" | "1" => Ok(RestartPolicy::Always),
        "no" | "false" | "off" | "0" => Ok(RestartPolicy::Never),
        "unexpected" => Ok(RestartPolicy::OnFailure),
        _ => Err(format!("invalid 'autorestart' value {}", py_repr(&lower))),
    }
}

/// Supervisor's log levels (`supervisor/loggers.py: LevelsByDescription`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `blather` (3).
    Blather,
    /// `trace` (5).
    Trace,
    /// `debug` (10).
    Debug,
    /// `info` (20), the default.
    Info,
    /// `warn` (30).
    Warn,
    /// `error` (40).
    Error,
    /// `critical` (50).
    Critical,
}

impl LogLevel {
    /// The `tracing` level tend logs at for it: Supervisor's `blather` and
    /// `trace` are both `trace`, `critical` is `error`.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Blather | LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error | LogLevel::Critical => "error",
        }
    }
}

/// `logging_level`.
pub(super) fn log_level(s: &str) -> Result<LogLevel, String> {
    Ok(match s.to_lowercase().as_str() {
        "critical" => LogLevel::Critical,
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        "blather" => LogLevel::Blather,
        _ => return Err(format!("bad logging level name {}", py_repr(s))),
    })
}

/// `process_or_group_name`: stripped; no space, `:` or `/`.
pub(super) fn process_or_group_name(s: &str) -> Result<String, String> {
    let name = py_strip(s);
    for c in [' ', ':', '/'] {
        if name.contains(c) {
            return Err(format!(
                "Invalid name: {} because of character: {}",
                py_repr(s),
                py_repr(&c.to_string())
            ));
        }
    }
    Ok(name.to_string())
}

/// Shell-style tokens of Python's `shlex.shlex(s, posix=True)` with
/// Supervisor's extra word characters `/.+-():` (not `shlex.split`: every
/// other punctuation character is a token of its own, `#` starts a comment).
fn shlex_tokens(s: &str) -> Result<Vec<String>, String> {
    const LATIN1: &str = "ßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞ";
    let is_word =
        |c: char| c.is_ascii_alphanumeric() || "_/.+-():".contains(c) || LATIN1.contains(c);
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    #[derive(Clone, Copy, PartialEq)]
    enum St {
        Space,
        Word,
        Quote(char),
        Escape(char),
    }
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut tokens = Vec::new();
    let mut state = St::Space;
    let skip_comment = |i: &mut usize| {
        while *i < chars.len() && chars[*i] != '\n' {
            *i += 1;
        }
        *i += 1;
    };
    // One read_token per iteration.
    loop {
        let mut token = String::new();
        let mut quoted = false;
        let mut pushback: Option<char> = None;
        let eof = loop {
            let next = chars.get(i).copied();
            i += 1;
            match state {
                St::Space => match next {
                    None => break true,
                    Some(c) if is_space(c) => {
                        if !token.is_empty() || quoted {
                            break false;
                        }
                    }
                    Some('#') => skip_comment(&mut i),
                    Some('\\') => state = St::Escape('a'),
                    Some(c) if is_word(c) => {
                        token.push(c);
                        state = St::Word;
                    }
                    Some(c @ ('\'' | '"')) => state = St::Quote(c),
                    Some(c) => {
                        token.push(c);
                        break false;
                    }
                },
                St::Quote(q) => {
                    quoted = true;
                    match next {
                        None => return Err("No closing quotation".into()),
                        Some(c) if c == q => state = St::Word,
                        Some('\\') if q == '"' => state = St::Escape(q),
                        Some(c) => token.push(c),
                    }
                }
                St::Escape(from) => {
                    let Some(c) = next else {
                        return Err("No escaped character".into());
                    };
                    // In double quotes only the quote and the backslash are escaped.
                    if from == '"' && c != '\\' && c != '"' {
                        token.push('\\');
                    }
                    token.push(c);
                    state = if from == 'a' {
                        St::Word
                    } else {
                        St::Quote(from)
                    };
                }
                St::Word => match next {
                    None => break true,
                    Some(c) if is_space(c) => {
                        state = St::Space;
                        if !token.is_empty() || quoted {
                            break false;
                        }
                    }
                    Some('#') => {
                        skip_comment(&mut i);
                        state = St::Space;
                        if !token.is_empty() || quoted {
                            break false;
                        }
                    }
                    Some(c @ ('\'' | '"')) => state = St::Quote(c),
                    Some('\\') => state = St::Escape('a'),
                    Some(c) if is_word(c) => token.push(c),
                    Some(c) => {
                        pushback = Some(c);
                        state = St::Space;
                        if !token.is_empty() || quoted {
                            break false;
                        }
                    }
                },
            }
        };
        if !token.is_empty() || quoted {
            tokens.push(token);
        }
        if let Some(c) = pushback {
            tokens.push(c.to_string());
        }
        if eof {
            return Ok(tokens);
        }
    }
}

/// `dict_of_key_value_pairs`: `KEY=val,KEY2="v, 2"` (see [`shlex_tokens`]).
/// Python keeps key order; a repeated key keeps its first position and its
/// last value, which a sorted map does not need to care about.
pub(super) fn key_value_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let tokens = shlex_tokens(s)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let triple = &tokens[i..tokens.len().min(i + 3)];
        if triple.len() != 3 || triple[1] != "=" {
            return Err(format!("Unexpected end of key/value pairs in value '{s}'"));
        }
        match pairs.iter_mut().find(|(k, _)| *k == triple[0]) {
            Some(pair) => pair.1 = triple[2].clone(),
            None => pairs.push((triple[0].clone(), triple[2].clone())),
        }
        i += 4;
    }
    Ok(pairs)
}

/// A `*_logfile` value (`logfile_name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LogfileName {
    /// `NONE` / `OFF`: not written.
    None,
    /// `AUTO`: a file in `childlogdir`.
    Auto,
    /// `syslog` (deprecated).
    Syslog,
    /// A path (`~` expanded, made absolute).
    Path(PathBuf),
}

/// `logfile_name`: NONE/OFF, AUTO, syslog or a path whose directory exists.
pub(super) fn logfile_name(
    s: &str,
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<LogfileName, String> {
    Ok(match s.to_lowercase().as_str() {
        "none" | "off" => LogfileName::None,
        "auto" => LogfileName::Auto,
        "syslog" => LogfileName::Syslog,
        _ => LogfileName::Path(existing_dirpath(s, cwd, env)?),
    })
}

/// `existing_dirpath`: `~` expanded, and a directory part, if any, must exist.
/// The result is absolute (against supervisord's working directory, as
/// `normalize_path` does).
pub(super) fn existing_dirpath(
    s: &str,
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<PathBuf, String> {
    let path = expanduser(s, env);
    if s.contains('\0') {
        return Err(format!("{} contains a NUL byte", py_repr(s)));
    }
    let has_dir = path.parent().is_some_and(|p| !p.as_os_str().is_empty());
    let abs = normalize(&cwd.join(&path));
    if has_dir && !abs.parent().is_some_and(Path::is_dir) {
        return Err(format!(
            "The directory named as part of the path {s} does not exist"
        ));
    }
    Ok(abs)
}

/// `existing_directory`.
pub(super) fn existing_directory(
    s: &str,
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<PathBuf, String> {
    let path = normalize(&cwd.join(expanduser(s, env)));
    if !s.contains('\0') && path.is_dir() {
        Ok(path)
    } else {
        Err(format!("{s} is not an existing directory"))
    }
}

/// `normalize_path`: `~` expanded, absolute, `.` and `..` folded.
pub(super) fn normalize_path(s: &str, cwd: &Path, env: &BTreeMap<String, String>) -> PathBuf {
    normalize(&cwd.join(expanduser(s, env)))
}

/// `os.path.normpath` of an absolute path: lexical, like Python.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// `os.path.expanduser`: `~` (from `HOME`) and `~user`.
pub(super) fn expanduser(s: &str, env: &BTreeMap<String, String>) -> PathBuf {
    let Some(rest) = s.strip_prefix('~') else {
        return PathBuf::from(s);
    };
    let (user, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let home = if user.is_empty() {
        env.get("HOME")
            .map(PathBuf::from)
            .or_else(|| User::from_uid(Uid::current()).ok().flatten().map(|u| u.dir))
    } else {
        User::from_name(user).ok().flatten().map(|u| u.dir)
    };
    match home {
        Some(home) => {
            let tail = tail.trim_start_matches('/');
            if tail.is_empty() {
                home
            } else {
                home.join(tail)
            }
        }
        None => PathBuf::from(s),
    }
}

/// `name_to_uid`: a user name or a uid that exists.
pub(super) fn name_to_uid(s: &str) -> Result<u32, String> {
    match integer(s) {
        Ok(n) => {
            let uid = u32::try_from(n).map_err(|_| format!("Invalid user id {s}"))?;
            match User::from_uid(Uid::from_raw(uid)) {
                Ok(Some(_)) => Ok(uid),
                _ => Err(format!("Invalid user id {s}")),
            }
        }
        Err(_) => match User::from_name(s) {
            Ok(Some(u)) => Ok(u.uid.as_raw()),
            _ => Err(format!("Invalid user name {s}")),
        },
    }
}

/// `name_to_gid`: a group name or a gid that exists.
pub(super) fn name_to_gid(s: &str) -> Result<u32, String> {
    match integer(s) {
        Ok(n) => {
            let gid = u32::try_from(n).map_err(|_| format!("Invalid group id {s}"))?;
            match Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
                Ok(Some(_)) => Ok(gid),
                _ => Err(format!("Invalid group id {s}")),
            }
        }
        Err(_) => match Group::from_name(s) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            _ => Err(format!("Invalid group name {s}")),
        },
    }
}

/// `colon_separated_user_group`: `user` or `user:group`, both existing.
pub(super) fn user_group(s: &str) -> Result<(u32, Option<u32>), String> {
    let invalid = || format!("Invalid user:group definition {s}");
    match s.split_once(':') {
        None => Ok((name_to_uid(s).map_err(|_| invalid())?, None)),
        Some((u, g)) => Ok((
            name_to_uid(u).map_err(|_| invalid())?,
            Some(name_to_gid(g).map_err(|_| invalid())?),
        )),
    }
}

/// `inet_address`: `host:port`, `:port`, `*:port` or `port`; an empty host
/// (or `*`) means every interface. The host is lower-cased.
pub(super) fn inet_address(s: &str) -> Result<(String, u16), String> {
    let port = |p: &str| -> Result<u16, String> {
        let n = integer(p)?;
        match u16::try_from(n) {
            Ok(n) if n >= 1 => Ok(n),
            _ if n < 1 => Err(format!("{n} is below lower bound (1)")),
            _ => Err(format!("{n} is above upper bound (65535)")),
        }
    };
    match s.rsplit_once(':') {
        Some((host, p)) => {
            if p.is_empty() {
                return Err(format!("no port number specified in {}", py_repr(p)));
            }
            let port = port(p)?;
            let host = host.to_lowercase();
            Ok((if host == "*" { String::new() } else { host }, port))
        }
        None => port(s)
            .map(|p| (String::new(), p))
            .map_err(|_| format!("not a valid port number: {} ", py_repr(s))),
    }
}

/// Whether `s` has characters Python's `str.split()` would split at.
pub(super) fn split_whitespace(s: &str) -> Vec<&str> {
    s.split(py_isspace).filter(|p| !p.is_empty()).collect()
}
