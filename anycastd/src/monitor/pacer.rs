//! When the feed asks the controller for its status, without I/O: on a change while a
//! page is open (at most one ask per [`FEED_EVERY`]), and for the history's sample
//! (one per [`SAMPLE_EVERY`] seconds, page or not). Nothing else wakes it.
//!
//! ```text
//!  Change / PageOpened ──(no page open)──────────────> nothing
//!        │ (a page open)
//!        ├── last ask >= FEED_EVERY ago ───────────> Ask
//!        └── else: pending, wake at last ask + FEED_EVERY
//!  Wake ── pending and due, or the sample due ──────> Ask
//!  Answered { sampled } ── sample due in SAMPLE_EVERY (sampled) or FEED_EVERY (not)
//! ```
//! The driver keeps one sleep for [`Pacer::next_wake`] and feeds `now` back in.

use std::time::{Duration, Instant};

use super::history::SAMPLE_EVERY;

/// At most one ask per this long while pages are open.
pub const FEED_EVERY: Duration = Duration::from_secs(1);

/// What happened, for [`Pacer::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The controller (or a BGP session) says its state changed.
    Change,
    /// The number of open pages went from zero to some (`true`) or back (`false`).
    Pages(bool),
    /// The sleep for [`Pacer::next_wake`] ended.
    Wake,
    /// An ask was answered (or failed: `sampled` false); `sampled`: the history kept
    /// a sample of it.
    Answered { sampled: bool },
}

/// The feed's decisions.
#[derive(Debug, Default)]
pub struct Pacer {
    /// Some page is open.
    pages: bool,
    /// When the last ask went out.
    last_ask: Option<Instant>,
    /// A change came within [`FEED_EVERY`] of the last ask: ask at this time.
    pending: Option<Instant>,
    /// When the history wants its next sample (`None`: at once, nothing sampled yet).
    sample_at: Option<Instant>,
}

impl Pacer {
    /// Takes one input; `true`: ask the controller for its status now (then feed back
    /// [`Input::Answered`]).
    pub fn handle(&mut self, now: Instant, input: Input) -> bool {
        let ask = match input {
            Input::Change => self.pages && self.change(now),
            Input::Pages(open) => {
                self.pages = open;
                if !open {
                    self.pending = None;
                }
                // A page just opened shows the last push: bring it up to date.
                open && self.change(now)
            }
            Input::Wake => {
                let change = self.pending.is_some_and(|t| t <= now);
                change || self.sample_at.is_none_or(|t| t <= now)
            }
            Input::Answered { sampled } => {
                let next = if sampled { SAMPLE_EVERY_D } else { FEED_EVERY };
                if sampled || self.sample_at.is_none_or(|t| t <= now) {
                    self.sample_at = Some(now + next);
                }
                false
            }
        };
        if ask {
            self.last_ask = Some(now);
            self.pending = None;
        }
        ask
    }

    /// A change with a page open: ask now unless the last ask was within
    /// [`FEED_EVERY`]; then once at the end of that window.
    fn change(&mut self, now: Instant) -> bool {
        match self.last_ask.map(|t| t + FEED_EVERY) {
            Some(free) if free > now => {
                self.pending = Some(free);
                false
            }
            _ => true,
        }
    }

    /// When to wake with [`Input::Wake`]: the earlier of a pending change's window end
    /// and the next sample; `now` when the first sample is still to be taken.
    pub fn next_wake(&self, now: Instant) -> Instant {
        let sample = self.sample_at.unwrap_or(now);
        self.pending.map_or(sample, |p| p.min(sample))
    }
}

const SAMPLE_EVERY_D: Duration = Duration::from_secs(SAMPLE_EVERY);

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A pacer that has taken its first sample at `t0`.
    fn started(t0: Instant) -> Pacer {
        let mut p = Pacer::default();
        assert!(p.handle(t0, Input::Wake), "the first sample at once");
        p.handle(t0, Input::Answered { sampled: true });
        p
    }

    #[test]
    fn no_page_open_wakes_only_for_the_samples() {
        let t0 = Instant::now();
        let mut p = started(t0);
        let mut asks = 0;
        // An hour of changes, ten a second: none of them asks, none arms a sooner wake.
        for i in 1..=36_000u64 {
            let now = t0 + ms(i * 100);
            assert!(!p.handle(now, Input::Change));
            assert_eq!(p.next_wake(now), p.sample_at.unwrap());
            if p.next_wake(now) <= now {
                assert!(p.handle(now, Input::Wake));
                p.handle(now, Input::Answered { sampled: true });
                asks += 1;
            }
        }
        assert_eq!(asks, 360);
    }

    #[test]
    fn with_a_page_open_a_change_asks_at_once_then_coalesces() {
        let t0 = Instant::now();
        let mut p = started(t0);
        let t = t0 + ms(5000);
        assert!(p.handle(t, Input::Pages(true)), "a page opened: ask now");
        p.handle(t, Input::Answered { sampled: false });
        // Changes within the second: no ask, one wake at its end.
        assert!(!p.handle(t + ms(100), Input::Change));
        assert!(!p.handle(t + ms(600), Input::Change));
        assert_eq!(p.next_wake(t + ms(600)), t + FEED_EVERY);
        assert!(p.handle(t + FEED_EVERY, Input::Wake));
        p.handle(t + FEED_EVERY, Input::Answered { sampled: false });
        // Nothing pending now: the next wake is the sample.
        assert_eq!(p.next_wake(t + FEED_EVERY), t0 + SAMPLE_EVERY_D);
        // A change long after the last ask asks at once.
        assert!(p.handle(t + ms(3000), Input::Change));
    }

    #[test]
    fn a_page_open_without_changes_asks_only_for_the_samples() {
        let t0 = Instant::now();
        let mut p = started(t0);
        let opened = t0 + ms(2000);
        assert!(p.handle(opened, Input::Pages(true)));
        p.handle(opened, Input::Answered { sampled: false });
        // A quiet hour: each wake is a sample's, each sample kept.
        let (mut asks, mut now) = (0, opened);
        for _ in 0..360 {
            now = p.next_wake(now);
            assert!(p.handle(now, Input::Wake));
            p.handle(now, Input::Answered { sampled: true });
            asks += 1;
        }
        assert_eq!(asks, 360);
        assert_eq!(now, t0 + SAMPLE_EVERY_D * 360);
    }

    #[test]
    fn a_page_closing_drops_the_pending_change() {
        let t0 = Instant::now();
        let mut p = started(t0);
        p.handle(t0, Input::Pages(true));
        assert!(!p.handle(t0 + ms(200), Input::Change));
        assert!(p.pending.is_some());
        assert!(!p.handle(t0 + ms(300), Input::Pages(false)));
        assert_eq!(p.next_wake(t0 + ms(300)), t0 + SAMPLE_EVERY_D);
        assert!(!p.handle(t0 + FEED_EVERY, Input::Wake));
    }

    #[test]
    fn a_sample_the_history_did_not_keep_is_tried_again_a_second_later() {
        let t0 = Instant::now();
        let mut p = started(t0);
        let due = t0 + SAMPLE_EVERY_D;
        assert!(p.handle(due, Input::Wake));
        // The wall clock said 9.99 s since the last sample: not kept.
        p.handle(due, Input::Answered { sampled: false });
        assert_eq!(p.next_wake(due), due + FEED_EVERY);
        assert!(p.handle(due + FEED_EVERY, Input::Wake));
        p.handle(due + FEED_EVERY, Input::Answered { sampled: true });
        assert_eq!(
            p.next_wake(due + FEED_EVERY),
            due + FEED_EVERY + SAMPLE_EVERY_D
        );
    }

    #[test]
    fn an_answer_to_a_change_does_not_move_the_sample() {
        let t0 = Instant::now();
        let mut p = started(t0);
        p.handle(t0, Input::Pages(true));
        let t = t0 + ms(4000);
        assert!(p.handle(t, Input::Change));
        p.handle(t, Input::Answered { sampled: false });
        assert_eq!(p.next_wake(t), t0 + SAMPLE_EVERY_D);
    }
}
