//! Target patterns: `web`, `web-*`, `GROUP:*`, `GROUP:name`, `all`.

use super::name::Name;

/// One target pattern as users type it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Every process.
    All,
    /// Names matching a glob (a plain name is a glob without metacharacters).
    Name(glob::Pattern),
    /// Processes of a group whose names match a glob (`GROUP:*`, `GROUP:name`).
    Group {
        /// The group.
        group: String,
        /// Names inside it.
        name: glob::Pattern,
    },
}

/// A pattern that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad pattern {pattern:?}: {why}")]
pub struct PatternError {
    /// The pattern.
    pub pattern: String,
    /// What is wrong.
    pub why: String,
}

impl Pattern {
    /// Parses one pattern.
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        let err = |why: String| PatternError {
            pattern: s.to_string(),
            why,
        };
        if s == "all" {
            return Ok(Pattern::All);
        }
        if s.is_empty() {
            return Err(err("it is empty".into()));
        }
        let glob = |g: &str| glob::Pattern::new(g).map_err(|e| err(e.to_string()));
        match s.split_once(':') {
            Some((group, name)) => Ok(Pattern::Group {
                group: group.to_string(),
                name: glob(if name.is_empty() { "*" } else { name })?,
            }),
            None => Ok(Pattern::Name(glob(s)?)),
        }
    }

    /// Whether the process `name` in `group` is selected.
    pub fn matches(&self, name: &Name, group: &Name) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Name(g) => g.matches(name.as_str()),
            Pattern::Group { group: g, name: n } => g == group.as_str() && n.matches(name.as_str()),
        }
    }

    /// For a plain name (no glob characters): the whole group of that name
    /// (`web` as `web:*`). A name that is no process's but a group's selects
    /// the group: `tend restart web` for the copies of `replicas`.
    pub fn as_group(&self) -> Option<Pattern> {
        let name = self.exact_name()?;
        Some(Pattern::Group {
            group: name.to_string(),
            name: glob::Pattern::new("*").ok()?,
        })
    }

    /// Whether the pattern can only ever select one exact name (no glob).
    pub fn exact_name(&self) -> Option<&str> {
        match self {
            Pattern::Name(g) if !g.as_str().contains(['*', '?', '[']) => Some(g.as_str()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[test]
    fn matching() {
        let (web1, g) = (n("web-1"), n("front"));
        assert!(Pattern::parse("all").unwrap().matches(&web1, &g));
        assert!(Pattern::parse("web-*").unwrap().matches(&web1, &g));
        assert!(Pattern::parse("web-1").unwrap().matches(&web1, &g));
        assert!(!Pattern::parse("web").unwrap().matches(&web1, &g));
        assert!(Pattern::parse("front:*").unwrap().matches(&web1, &g));
        assert!(Pattern::parse("front:").unwrap().matches(&web1, &g));
        assert!(Pattern::parse("front:web-1").unwrap().matches(&web1, &g));
        assert!(!Pattern::parse("back:*").unwrap().matches(&web1, &g));
        assert_eq!(Pattern::parse("web-1").unwrap().exact_name(), Some("web-1"));
        assert_eq!(Pattern::parse("web-*").unwrap().exact_name(), None);
    }
}
