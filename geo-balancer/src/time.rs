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

/// A duration for people, rounded down to its two largest units, without spaces:
/// `350ms`, `41s`, `2m05s`, `2h13m`, `3d4h`; a zero second unit is left out (`2m`,
/// `1h`, `2d`); zero is `0s`. Status screens, explanations and logs all use this one.
/// (humantime's `format_duration` writes every unit, spaced: `2h 13m 5s`, `2days 1h`,
/// too long for a table cell and not what a config file takes.)
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 && !d.is_zero() {
        return format!("{}ms", d.as_millis());
    }
    let (days, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let (big, small) = if days > 0 {
        (format!("{days}d"), (h > 0).then(|| format!("{h}h")))
    } else if h > 0 {
        (format!("{h}h"), (m > 0).then(|| format!("{m:02}m")))
    } else if m > 0 {
        (format!("{m}m"), (s > 0).then(|| format!("{s:02}s")))
    } else {
        (format!("{s}s"), None)
    };
    big + small.as_deref().unwrap_or("")
}

/// A duration exactly (to the millisecond), as one number and the largest unit that
/// keeps it whole: `500ms`, `1500ms`, `90s`, `2m`, `1h`. This is the syntax config
/// files are written in, so a message can tell an operator a value to write back.
pub fn exact(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 || !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
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

    #[test]
    fn durations_for_people_and_for_config_files() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        for (d, want) in [
            (ms(0), "0s"),
            (ms(350), "350ms"),
            (ms(1500), "1s"),
            (s(41), "41s"),
            (s(120), "2m"),
            (s(125), "2m05s"),
            (s(3600), "1h"),
            (s(7980), "2h13m"),
            (s(7985), "2h13m"),
            (s(2 * 86_400), "2d"),
            (s(2 * 86_400 + 3600 + 59), "2d1h"),
        ] {
            assert_eq!(human(d), want, "{d:?}");
        }
        for (d, want) in [
            (ms(0), "0ms"),
            (ms(500), "500ms"),
            (ms(1500), "1500ms"),
            (s(2), "2s"),
            (s(90), "90s"),
            (s(120), "2m"),
            (s(3600), "1h"),
            (s(5400), "90m"),
        ] {
            assert_eq!(exact(d), want, "{d:?}");
        }
    }
}
