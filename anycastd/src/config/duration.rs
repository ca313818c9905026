//! Durations in config files: a number with a unit, `500ms`, `2s`, `1.5s`, `2m`, `1h`.

use std::time::Duration;

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration `{0}` has no unit (write e.g. `500ms`, `2s`, `2m`)")]
    NoUnit(String),
    #[error("duration `{0}` does not start with a number")]
    NoNumber(String),
    #[error("duration `{text}` has unknown unit `{unit}` (use ms, s, m or h)")]
    UnknownUnit { text: String, unit: String },
    #[error("duration `{0}` is out of range")]
    OutOfRange(String),
}

/// Parses `"<number><unit>"` with unit one of ms, s, m, h.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| DurationError::NoUnit(s.to_string()))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| DurationError::NoNumber(s.to_string()))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(DurationError::UnknownUnit {
                text: s.to_string(),
                unit: unit.to_string(),
            });
        }
    };
    if !secs.is_finite() || secs > 86_400.0 * 365.0 {
        return Err(DurationError::OutOfRange(s.to_string()));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Renders a duration the way [`parse`] reads it (the one formatter, in geo-balancer).
pub fn show(d: Duration) -> String {
    geo_balancer::time::exact(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn refusals_say_why() {
        let why = |s: &str| parse(s).unwrap_err().to_string();
        assert!(why("120").contains("has no unit"));
        assert!(why("2d").contains("unknown unit `d`"));
        assert!(why("s").contains("does not start with a number"));
    }

    #[test]
    fn show_round_trips() {
        for s in ["500ms", "1500ms", "2s", "2m", "90s", "1h"] {
            assert_eq!(show(parse(s).unwrap()), s);
        }
    }
}
