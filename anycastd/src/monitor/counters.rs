//! Refused monitor requests: counted per kind (exposed on `/metrics` as
//! `anycast_monitor_refused_total{reason}`) and logged once per burst: the first of
//! a kind logs at once, the rest within [`BURST`] are only counted, and the next line
//! says how many were not logged. Also the live feed's status asks
//! (`anycast_monitor_status_asks_total`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BadLogin,
    RateLimited,
    Unauthenticated,
    SessionExpired,
    Csrf,
    Forbidden,
    NotFound,
    TooLarge,
    BadRequest,
}

impl Refusal {
    pub const ALL: [Refusal; 9] = [
        Refusal::BadLogin,
        Refusal::RateLimited,
        Refusal::Unauthenticated,
        Refusal::SessionExpired,
        Refusal::Csrf,
        Refusal::Forbidden,
        Refusal::NotFound,
        Refusal::TooLarge,
        Refusal::BadRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BadLogin => "bad_login",
            Refusal::RateLimited => "rate_limited",
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::SessionExpired => "session_expired",
            Refusal::Csrf => "csrf",
            Refusal::Forbidden => "forbidden",
            Refusal::NotFound => "not_found",
            Refusal::TooLarge => "too_large",
            Refusal::BadRequest => "bad_request",
        }
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Lines of one kind are at most one per this long.
pub const BURST: Duration = Duration::from_secs(10);

/// Which refusals to log, without I/O.
#[derive(Default)]
pub struct Bursts {
    last: [Option<Instant>; 9],
    quiet: [u64; 9],
}

impl Bursts {
    /// `Some(n)`: log this one, with `n` of its kind not logged since the last line.
    pub fn note(&mut self, r: Refusal, now: Instant) -> Option<u64> {
        let i = r.index();
        match self.last[i] {
            Some(t) if now.saturating_duration_since(t) < BURST => {
                self.quiet[i] += 1;
                None
            }
            _ => {
                self.last[i] = Some(now);
                Some(std::mem::take(&mut self.quiet[i]))
            }
        }
    }
}

static COUNTS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];
static BURSTS: Mutex<Option<Bursts>> = Mutex::new(None);

/// Counts a refusal and logs it unless its burst was logged already.
pub fn refused(r: Refusal, remote: &str, path: &str, detail: &str) {
    COUNTS[r.index()].fetch_add(1, Ordering::Relaxed);
    let Ok(mut b) = BURSTS.lock() else { return };
    if let Some(quiet) = b
        .get_or_insert_with(Bursts::default)
        .note(r, Instant::now())
    {
        tracing::warn!(reason = r.as_str(), %remote, path, detail, not_logged_before = quiet, "monitor refused a request");
    }
}

static STATUS_ASKS: AtomicU64 = AtomicU64::new(0);

/// Counts one status ask of the live feed.
pub fn status_asked() {
    STATUS_ASKS.fetch_add(1, Ordering::Relaxed);
}

/// The monitor's counts on `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Refusals so far, per kind.
    pub refused: Vec<(Refusal, u64)>,
    /// Status asks of the live feed so far.
    pub status_asks: u64,
}

/// The counts so far.
pub fn counts() -> Counts {
    Counts {
        refused: Refusal::ALL
            .iter()
            .map(|r| (*r, COUNTS[r.index()].load(Ordering::Relaxed)))
            .collect(),
        status_asks: STATUS_ASKS.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_burst_then_the_count_of_the_quiet_ones() {
        let t0 = Instant::now();
        let mut b = Bursts::default();
        assert_eq!(b.note(Refusal::Csrf, t0), Some(0));
        for i in 1..=50 {
            assert_eq!(
                b.note(Refusal::Csrf, t0 + Duration::from_millis(i * 100)),
                None
            );
        }
        // Another kind has its own burst.
        assert_eq!(b.note(Refusal::NotFound, t0), Some(0));
        assert_eq!(b.note(Refusal::Csrf, t0 + BURST), Some(50));
        assert_eq!(b.note(Refusal::Csrf, t0 + BURST * 3), Some(0));
    }
}
