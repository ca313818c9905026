//! Login rate limiting, without I/O: at most [`MAX_FAILURES`] failed logins per client
//! address, and per user name, in any [`WINDOW`]; beyond that every login from that
//! address or for that user is refused (429) until the oldest failure leaves the
//! window, whatever the password. A success clears the user's failures.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub const MAX_FAILURES: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(300);
/// Keys remembered at once; the stalest goes first beyond this.
const MAX_KEYS: usize = 4096;

#[derive(Default)]
pub struct LoginLimiter {
    failures: HashMap<String, VecDeque<Instant>>,
}

fn keys(ip: &str, user: &str) -> [String; 2] {
    [format!("ip {ip}"), format!("user {user}")]
}

impl LoginLimiter {
    /// `Err(retry_after)` when a login from `ip` for `user` may not even be tried now.
    pub fn check(&mut self, ip: &str, user: &str, now: Instant) -> Result<(), Duration> {
        let mut wait = Duration::ZERO;
        for k in keys(ip, user) {
            if let Some(q) = self.failures.get_mut(&k) {
                while q
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
                {
                    q.pop_front();
                }
                if q.len() >= MAX_FAILURES
                    && let Some(oldest) = q.front()
                {
                    wait = wait.max(WINDOW.saturating_sub(now.saturating_duration_since(*oldest)));
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    pub fn failed(&mut self, ip: &str, user: &str, now: Instant) {
        if self.failures.len() >= MAX_KEYS {
            self.failures.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < WINDOW)
            });
        }
        // Room for both keys of this failure: with ties (a flood at one instant) the
        // stalest may be the user's own key, which is then added back.
        while self.failures.len() + 2 > MAX_KEYS {
            let stalest = self
                .failures
                .iter()
                .min_by_key(|(_, q)| q.back().copied())
                .map(|(k, _)| k.clone());
            match stalest {
                Some(k) => self.failures.remove(&k),
                None => break,
            };
        }
        for k in keys(ip, user) {
            let q = self.failures.entry(k).or_default();
            q.push_back(now);
            while q.len() > MAX_FAILURES {
                q.pop_front();
            }
        }
    }

    pub fn succeeded(&mut self, user: &str) {
        self.failures.remove(&format!("user {user}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_the_address_and_the_user_for_the_window() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::default();
        for i in 0..MAX_FAILURES {
            assert!(l.check("10.0.0.1", "ann", t0).is_ok(), "attempt {i}");
            l.failed("10.0.0.1", "ann", t0);
        }
        assert_eq!(l.check("10.0.0.1", "ann", t0), Err(WINDOW));
        // Another user from the same address, and the same user from elsewhere.
        assert!(l.check("10.0.0.1", "bob", t0).is_err());
        assert!(l.check("10.0.0.2", "ann", t0).is_err());
        assert!(l.check("10.0.0.2", "bob", t0).is_ok());
        let later = t0 + Duration::from_secs(100);
        assert_eq!(
            l.check("10.0.0.1", "ann", later),
            Err(Duration::from_secs(200))
        );
        assert!(l.check("10.0.0.1", "ann", t0 + WINDOW).is_ok());
    }

    #[test]
    fn failures_spread_over_time_leave_the_window() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::default();
        for i in 0..20u64 {
            let t = t0 + Duration::from_secs(i * 61);
            assert!(l.check("ip", "u", t).is_ok(), "failure {i} at {}s", i * 61);
            l.failed("ip", "u", t);
        }
    }

    #[test]
    fn a_success_clears_the_user_but_not_the_address() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::default();
        for _ in 0..MAX_FAILURES - 1 {
            l.failed("ip", "u", t0);
        }
        l.succeeded("u");
        l.failed("ip", "u", t0);
        assert!(l.check("ip2", "u", t0).is_ok());
        assert!(l.check("ip", "v", t0).is_err());
    }

    #[test]
    fn many_addresses_keep_the_table_bounded() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::default();
        for i in 0..10_000 {
            l.failed(&format!("ip{i}"), "u", t0);
        }
        assert!(l.failures.len() <= MAX_KEYS);
    }
}
