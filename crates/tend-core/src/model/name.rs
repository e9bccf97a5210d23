//! Validated process names.
//!
//! A name is what users type, what appears in status, and (later) part of a log
//! file name, so it is checked once where it enters and carried as a [`Name`]
//! afterwards: nothing ever turns an unchecked string into a path.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// A process (or group) name: 1 to 128 ASCII letters, digits, `_`, `-` or `.`,
/// not `.` or `..`, and not starting with `-` (it would read as a CLI flag).
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
    #[error("name {name:?} contains {ch:?}; names use only letters, digits, '_', '-' and '.'")]
    BadChar {
        /// The offending name.
        name: String,
        /// The first character not allowed.
        ch: char,
    },
    /// `.`, `..` or a leading `-`.
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
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(NameError::BadChar { name: s, ch });
        }
        if s == "." || s == ".." || s.starts_with('-') {
            return Err(NameError::Reserved(s));
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
    fn accepts_the_allowed_set() {
        for ok in ["web", "a", "db-1", "worker_2", "x.y", "A9"] {
            assert!(Name::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in ["", ".", "..", "-x", "a/b", "a b", "é", "a:b", "../etc"] {
            assert!(Name::new(bad).is_err(), "{bad:?}");
        }
        assert!(Name::new("x".repeat(129)).is_err());
    }
}
