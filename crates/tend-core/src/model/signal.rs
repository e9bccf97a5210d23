//! Signals by name, as users write them (`TERM`, `SIGTERM`, `15`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Unix signal number with its conventional name.
///
/// Parsed from `TERM`, `SIGTERM`, `term` or `15`; displayed without the `SIG`
/// prefix, as Supervisor and `status --json` show it (`{"signal": "KILL"}`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

const TABLE: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

impl Signal {
    /// SIGTERM, the default stop signal.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// SIGKILL, sent when the stop timeout runs out.
    pub const KILL: Signal = Signal(libc::SIGKILL);
    /// SIGINT.
    pub const INT: Signal = Signal(libc::SIGINT);
    /// SIGHUP.
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// SIGQUIT.
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    /// SIGSTOP.
    pub const STOP: Signal = Signal(libc::SIGSTOP);
    /// SIGUSR1.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// SIGUSR2.
    pub const USR2: Signal = Signal(libc::SIGUSR2);

    /// The signal with this number, if it is a known signal or a real-time one.
    pub fn from_number(n: i32) -> Option<Signal> {
        if TABLE.iter().any(|&(_, v)| v == n) || (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n)
        {
            Some(Signal(n))
        } else {
            None
        }
    }

    /// The raw signal number.
    pub fn number(self) -> i32 {
        self.0
    }

    /// The name without `SIG` (`TERM`), or `RTMIN+n` / the number for others.
    pub fn name(self) -> String {
        match TABLE.iter().find(|&&(_, v)| v == self.0) {
            Some((name, _)) => (*name).to_string(),
            None if self.0 >= libc::SIGRTMIN() => format!("RTMIN+{}", self.0 - libc::SIGRTMIN()),
            None => self.0.to_string(),
        }
    }
}

/// A string that names no signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal {0:?} (expected a name such as TERM, HUP, KILL, or a number)")]
pub struct UnknownSignal(pub String);

impl FromStr for Signal {
    type Err = UnknownSignal;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i32>() {
            return Signal::from_number(n).ok_or_else(|| UnknownSignal(s.to_string()));
        }
        let up = t.to_ascii_uppercase();
        let bare = up.strip_prefix("SIG").unwrap_or(&up);
        TABLE
            .iter()
            .find(|&&(name, _)| name == bare)
            .map(|&(_, n)| Signal(n))
            .or_else(|| realtime(bare))
            .ok_or_else(|| UnknownSignal(s.to_string()))
    }
}

/// `RTMIN`, `RTMIN+n`, `RTMAX`, `RTMAX-n`: what [`Signal::name`] writes for
/// a real-time signal (and `kill -l` lists), read back.
fn realtime(bare: &str) -> Option<Signal> {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let n = if let Some(rest) = bare.strip_prefix("RTMIN") {
        match rest.strip_prefix('+') {
            Some(k) => min.checked_add(k.parse::<i32>().ok()?)?,
            None if rest.is_empty() => min,
            None => return None,
        }
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        match rest.strip_prefix('-') {
            Some(k) => max.checked_sub(k.parse::<i32>().ok()?)?,
            None if rest.is_empty() => max,
            None => return None,
        }
    } else {
        return None;
    };
    (min..=max).contains(&n).then_some(Signal(n))
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

impl Serialize for Signal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::String(s) => s.parse().map_err(serde::de::Error::custom),
            serde_json::Value::Number(n) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .and_then(Signal::from_number)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown signal number {n}"))),
            other => Err(serde::de::Error::custom(format!(
                "expected a signal name or number, found {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_prefixes_and_numbers() {
        assert_eq!("TERM".parse::<Signal>(), Ok(Signal::TERM));
        assert_eq!("sigterm".parse::<Signal>(), Ok(Signal::TERM));
        assert_eq!("9".parse::<Signal>(), Ok(Signal::KILL));
        assert!("NOPE".parse::<Signal>().is_err());
        assert!("0".parse::<Signal>().is_err());
        assert_eq!(Signal::KILL.to_string(), "KILL");
    }

    /// Every signal's name reads back as it (the JSON fuzz target found
    /// `RTMIN+10`, written for signal 44, refused when read).
    #[test]
    fn every_name_reads_back() {
        for n in 1..=libc::SIGRTMAX() {
            if let Some(sig) = Signal::from_number(n) {
                assert_eq!(sig.name().parse::<Signal>(), Ok(sig), "{}", sig.name());
            }
        }
        assert_eq!(
            "SIGRTMIN".parse::<Signal>().map(Signal::number),
            Ok(libc::SIGRTMIN())
        );
        assert_eq!(
            "rtmax-1".parse::<Signal>().map(Signal::number),
            Ok(libc::SIGRTMAX() - 1)
        );
        for bad in [
            "RTMIN+99", "RTMAX-99", "RTMIN-1", "RTMAX+1", "RTMINX", "RTMIN+",
        ] {
            assert!(bad.parse::<Signal>().is_err(), "{bad}");
        }
    }
}
