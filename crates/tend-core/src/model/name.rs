//! Validated process names.
//!
//! A name is what users type, what appears in status, and part of log file
//! names, URLs and environment variables, so it is checked once where it
//! enters and carried as a [`Name`] afterwards. The rule is Supervisor's
//! (`process_or_group_name`: no space, `:` or `/`), so every name a
//! supervisord.conf can hold is a name here too (`web@8000`, `app+worker`,
//! `test_öäü`): without `/` a name is never more than one path component,
//! and without `:` the `group:name` of a namespec splits unambiguously.
//! What no terminal or file name can carry (control characters, more than
//! 255 bytes) is refused. Whoever puts a name into a URL or a shell escapes
//! it there.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest accepted name, in bytes: the longest file name.
pub const MAX_NAME_LEN: usize = 255;

/// A process (or group) name: 1 to 255 bytes of UTF-8 without a space, `:`,
/// `/` or a control character (Supervisor's rule, which refuses space, `:`
/// and `/`; the control characters are tend's addition).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

/// Why a string is not a valid [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The string is empty.
    #[error("a name cannot be empty")]
    Empty,
    /// The string is longer than [`MAX_NAME_LEN`].
    #[error("name {0:?} is longer than {MAX_NAME_LEN} bytes")]
    TooLong(String),
    /// The string holds a character outside the allowed set.
    #[error(
        "name {name:?} contains {ch:?}; a name cannot contain a space, ':', '/' or a control character"
    )]
    BadChar {
        /// The offending name.
        name: String,
        /// The first character not allowed.
        ch: char,
    },
    /// A name that cannot be used (kept for callers that match on it; no
    /// name is refused this way any more).
    #[error("{0:?} is not allowed as a name")]
    Reserved(String),
}

impl Name {
    /// Checks `s` and wraps it.
    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(s));
        }
        if let Some(ch) = s
            .chars()
            .find(|c| matches!(c, ' ' | ':' | '/') || c.is_control())
        {
            return Err(NameError::BadChar { name: s, ch });
        }
        Ok(Self(s))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for Name {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_name_supervisord_accepts() {
        for ok in [
            "web",
            "a",
            "db-1",
            "worker_2",
            "x.y",
            "A9",
            "web@8000",
            "app+worker",
            "test_öäü",
            "-x",
            ".",
            "..",
            "a*b",
            "it's",
            "日本",
            "a=b",
            "%41",
        ] {
            assert!(Name::new(ok).is_ok(), "{ok}");
        }
        assert!(Name::new("x".repeat(255)).is_ok());
    }

    #[test]
    fn refuses_what_supervisord_refuses_and_what_no_terminal_shows() {
        for bad in [
            "", "a/b", "a b", "a:b", "../etc", "a\tb", "a\nb", "a\u{7f}", "a\0",
        ] {
            assert!(Name::new(bad).is_err(), "{bad:?}");
        }
        assert!(Name::new("x".repeat(256)).is_err());
    }
}
