//! The daemon's settings for the platforms it runs on (a container's PID 1,
//! systemd, Kubernetes): its cgroups, the signals it passes on, and the
//! health listener. See `docs/running.md`.

use tend_core::Signal;
pub use tend_core::unix::CgroupMode;

/// `[daemon] cgroup`, `[daemon] forward_signals` and `[http] health`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlatformConfig {
    /// Whether (and where) each process gets a cgroup v2 of its own
    /// (`[daemon] cgroup = "auto" | "off" | PATH`; `auto` by default).
    pub cgroup: CgroupMode,
    /// Signals tend passes on to every running process instead of acting on
    /// them itself (`[daemon] forward_signals`, e.g. `["USR1", "HUP"]`).
    /// TERM, INT and QUIT always stop everything, in order.
    pub forward_signals: Vec<Signal>,
    /// A listener of its own that serves `GET /healthz` and `GET /readyz`
    /// and nothing else, without credentials (`[http] health`).
    pub health: Option<HealthListen>,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig {
            cgroup: CgroupMode::Auto,
            forward_signals: Vec::new(),
            health: None,
        }
    }
}

/// An address for the health listener: `0.0.0.0:8080`, `[::]:8080`,
/// `localhost:9000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthListen {
    /// Host name or address (without brackets).
    pub host: String,
    /// Port (0 picks a free one).
    pub port: u16,
}

impl HealthListen {
    /// Parses `HOST:PORT` (`[V6]:PORT` for an IPv6 address).
    pub fn parse(s: &str) -> Result<HealthListen, String> {
        let bad = || format!("{s:?} is not HOST:PORT (for example \"0.0.0.0:8080\")");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(['[', ']', '/', ' ']) {
            return Err(bad());
        }
        let port = port.parse::<u16>().map_err(|_| bad())?;
        Ok(HealthListen {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for HealthListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The signals that always mean "stop everything" (or cannot be caught),
/// and so cannot be forwarded.
pub const NOT_FORWARDABLE: [Signal; 5] = [
    Signal::TERM,
    Signal::INT,
    Signal::QUIT,
    Signal::KILL,
    Signal::STOP,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_addresses_parse() {
        let h = HealthListen::parse("0.0.0.0:8080").expect("v4");
        assert_eq!((h.host.as_str(), h.port), ("0.0.0.0", 8080));
        let h = HealthListen::parse("[::]:9000").expect("v6");
        assert_eq!((h.host.as_str(), h.port), ("::", 9000));
        assert_eq!(h.to_string(), "[::]:9000");
        for bad in ["8080", ":8080", "host:", "host:99999", "a b:1"] {
            assert!(HealthListen::parse(bad).is_err(), "{bad}");
        }
    }
}
