//! Time as the core sees it: milliseconds since the Unix epoch, passed in by the caller.
//!
//! The core never reads a clock. Drivers pass [`Time::now`]; tests and the simulation pass
//! a virtual time. Wall-clock time (not a monotonic instant) because report timestamps
//! cross machines and the CLI prints "since 13:58".

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time, milliseconds since the Unix epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Time(pub u64);

impl Time {
    /// The machine's wall clock. Only drivers call this; the core takes `now` as input.
    pub fn now() -> Time {
        Time::from_system(SystemTime::now())
    }

    /// Converts a `SystemTime` (times before the epoch become the epoch).
    pub fn from_system(t: SystemTime) -> Time {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Time(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// From whole seconds since the epoch.
    pub fn from_secs(s: u64) -> Time {
        Time(s.saturating_mul(1000))
    }

    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// How long ago `earlier` was; zero when `earlier` is in the future.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// How far `later` is ahead of `self`; zero when it is not.
    pub fn until(self, later: Time) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }

    /// `HH:MM` (UTC) for explanations.
    pub fn hhmm_utc(self) -> String {
        let secs_of_day = (self.0 / 1000) % 86_400;
        format!("{:02}:{:02}", secs_of_day / 3600, (secs_of_day % 3600) / 60)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs_of_day = (self.0 / 1000) % 86_400;
        write!(
            f,
            "{:02}:{:02}:{:02}Z",
            secs_of_day / 3600,
            (secs_of_day % 3600) / 60,
            secs_of_day % 60
        )
    }
}

/// Renders a duration the way an operator reads it: `41 s`, `3 min`, `2 h`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else {
        format!("{} h", s / 3600)
    }
}

/// Serde for a load where infinity (cannot serve) is `null`, as JSON has no infinity.
pub mod load_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Infinity and NaN as `null`, anything else as a number.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    /// `null` as infinity.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Time(1_000);
        assert_eq!(t.since(Time(5_000)), Duration::ZERO);
        assert_eq!(Time(5_000).since(t), Duration::from_secs(4));
        assert_eq!(Time(u64::MAX).plus(Duration::from_secs(1)), Time(u64::MAX));
        assert_eq!(Time::from_secs(13 * 3600 + 58 * 60).hhmm_utc(), "13:58");
    }
}
