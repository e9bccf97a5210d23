//! Monotonic time as plain data.
//!
//! The state machine never reads a clock: every input carries a [`Mono`], the
//! time on a monotonic clock measured from an origin the driver chose. Tests pick
//! any numbers they like, which is how back-off is checked to the millisecond.

use std::ops::{Add, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point on the driver's monotonic clock, as the duration since its origin.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Mono(pub Duration);

impl Mono {
    /// The origin.
    pub const ZERO: Mono = Mono(Duration::ZERO);

    /// A point `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Mono(Duration::from_millis(ms))
    }

    /// A point `s` seconds after the origin.
    pub const fn from_secs(s: u64) -> Self {
        Mono(Duration::from_secs(s))
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Mono) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Mono {
    type Output = Mono;
    fn add(self, d: Duration) -> Mono {
        Mono(self.0.saturating_add(d))
    }
}

impl Sub<Mono> for Mono {
    type Output = Duration;
    fn sub(self, rhs: Mono) -> Duration {
        self.since(rhs)
    }
}
