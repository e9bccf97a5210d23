//! Tests of the sans-IO layer (machine and registry) under virtual time.
//!
//! [`crate::testing::Sim`] is a deterministic world: fake processes that exit when told, a clock
//! that moves only when a test says so. The scenarios mirror Twisted's
//! ProcessMonitor tests (peers.md §10) and go on to tend's own semantics.

mod backoff;
mod deps;
mod gentle;
mod props;
mod transitions;
mod twisted;

use std::time::Duration;

use crate::model::name::Name;
use crate::model::spec::{Backoff, BackoffMode, ProcessSpec};
pub use crate::testing::{Behaviour, Sim};

pub fn n(s: &str) -> Name {
    Name::new(s).expect("valid test name")
}

/// Twisted's test setUp: minRestartDelay 2, maxRestartDelay 10, threshold 10, killTime 5.
pub fn twisted_spec(name: &str) -> ProcessSpec {
    let mut s = ProcessSpec::new(n(name), vec!["arg1".into(), "arg2".into()]);
    s.backoff = Backoff {
        mode: BackoffMode::Doubling {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(10),
        },
        min_uptime: Duration::from_secs(10),
        give_up_after: None,
        reset_on_ready: false,
        floor: Backoff::DEFAULT_FLOOR,
    };
    s.stop.timeout = Duration::from_secs(5);
    s
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}
