//! When to send reports: every period with jitter, and at once when this site's state
//! crosses a threshold (its served load across 0.7, its director load across 1.0 or
//! 1.1, its capacity gone or back, or the set of sites it spills to), at most one round
//! per `min_gap`.
//!
//! Sequence numbers start at the wall clock in milliseconds and then grow by at least
//! one per round (`seq = max(last + 1, now_ms)`), so a restarted sender is not refused
//! as a replay while its clock moves forward.

use serde::Serialize;

use crate::exchange::ExchangeConfig;
use crate::exchange::report::{LoadReport, VERSION};
use crate::ids::SiteId;
use crate::load::SiteLoad;
use crate::spill::SpillConfig;
use crate::time::Time;

/// What this site reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalState {
    /// The site's load figures.
    pub load: SiteLoad,
    /// Sites it spills to.
    pub spilling_to: Vec<SiteId>,
    /// Share of new connections spilled.
    pub spill_share: f64,
    /// The VIPs (addresses as text) whose own checks fail here (the report's
    /// `vips_down`; a change is sent at once, like a threshold).
    pub vips_down: Vec<String>,
}

/// Why a round is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendReason {
    /// First report after start.
    Start,
    /// The period elapsed.
    Periodic,
    /// A threshold was crossed.
    Threshold,
}

/// One round: a report per peer, all with the same seq.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRound {
    /// Why.
    pub reason: SendReason,
    /// One per peer.
    pub reports: Vec<LoadReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Band {
    served: u8,
    director: u8,
    can_serve: bool,
}

/// The sender's schedule (sans-IO).
#[derive(Debug, Clone)]
pub struct ReportScheduler {
    cfg: ExchangeConfig,
    thresholds: SpillConfig,
    peers: Vec<SiteId>,
    seq: u64,
    next_due: Option<Time>,
    last_sent: Option<Time>,
    last_band: Option<Band>,
    last_spilling: Vec<SiteId>,
    /// The `vips_down` last sent.
    last_down: Vec<String>,
    pending_threshold: bool,
    rng: u64,
    /// This director's name and config digest (decision 0015), put in every report.
    director: Option<String>,
    config_digest: Option<String>,
}

impl ReportScheduler {
    /// A scheduler for `peers`. `thresholds` are the spill rule's (bands for immediate
    /// reports); `seed` feeds the jitter (any value; use something per-site).
    pub fn new(
        cfg: ExchangeConfig,
        thresholds: SpillConfig,
        peers: Vec<SiteId>,
        seed: u64,
    ) -> ReportScheduler {
        ReportScheduler {
            cfg,
            thresholds,
            peers,
            seq: 0,
            next_due: None,
            last_sent: None,
            last_band: None,
            last_spilling: Vec::new(),
            last_down: Vec::new(),
            pending_threshold: false,
            rng: seed | 1,
            director: None,
            config_digest: None,
        }
    }

    /// Names this director and its site-wide config digest in every report (decision
    /// 0015). The receivers may include this site itself: its other directors.
    pub fn with_identity(mut self, director: String, config_digest: String) -> ReportScheduler {
        self.director = Some(director);
        self.config_digest = Some(config_digest);
        self
    }

    /// When [`ReportScheduler::poll`] should be called next (None: now).
    pub fn next_wakeup(&self) -> Option<Time> {
        if self.pending_threshold {
            return self.last_sent.map(|t| t.plus(self.cfg.min_gap));
        }
        self.next_due
    }

    /// Call with the current state whenever it changes and when the wakeup comes.
    /// Returns the reports to send now, if any.
    pub fn poll(&mut self, now: Time, state: &LocalState) -> Option<ReportRound> {
        let band = self.band(&state.load);
        let mut spilling = state.spilling_to.clone();
        spilling.sort();
        let mut down = state.vips_down.clone();
        down.sort();
        down.dedup();
        let crossed = self.last_band.is_some_and(|b| b != band)
            || self.last_spilling != spilling
            || self.last_down != down;
        if crossed {
            self.pending_threshold = true;
        }
        let reason = match (self.last_sent, self.next_due) {
            (None, _) => SendReason::Start,
            (Some(last), _) if self.pending_threshold && now.since(last) >= self.cfg.min_gap => {
                SendReason::Threshold
            }
            (Some(_), Some(due)) if now >= due => SendReason::Periodic,
            _ => {
                // Remember the new band only once it is reported.
                return None;
            }
        };
        self.pending_threshold = false;
        self.last_band = Some(band);
        self.last_spilling = spilling;
        self.last_down.clone_from(&down);
        self.last_sent = Some(now);
        self.next_due = Some(now.plus(self.jittered()));
        self.seq = self.seq.saturating_add(1).max(now.as_millis());
        let reports = self
            .peers
            .iter()
            .map(|peer| LoadReport {
                version: VERSION,
                sender: self.cfg.local.clone(),
                receiver: peer.clone(),
                seq: self.seq,
                timestamp: now.as_millis(),
                load: state.load.served.is_finite().then_some(state.load.served),
                director_load: state
                    .load
                    .director
                    .is_finite()
                    .then_some(state.load.director),
                capacity: state.load.healthy_capacity,
                active: state.load.active_local,
                spilling_to: state.spilling_to.clone(),
                spill_share: if state.spill_share.is_finite() {
                    state.spill_share.clamp(0.0, 1.0)
                } else {
                    0.0
                },
                director: self.director.clone(),
                config_digest: self.config_digest.clone(),
                vips_down: down.clone(),
            })
            .collect();
        tracing::debug!(seq = self.seq, ?reason, "load report round due");
        Some(ReportRound { reason, reports })
    }

    fn band(&self, l: &SiteLoad) -> Band {
        let t = &self.thresholds;
        let served = match l.served {
            s if s < t.start_remote => 0,
            s if s <= t.stop_remote => 1,
            _ => 2,
        };
        let director = match l.director {
            d if d <= t.stop_local => 0,
            d if d <= t.start_local => 1,
            _ => 2,
        };
        Band {
            served,
            director,
            can_serve: l.can_serve(),
        }
    }

    /// The interval stretched or shrunk by up to `jitter` (xorshift; deterministic per seed).
    fn jittered(&mut self) -> std::time::Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let factor = 1.0 + self.cfg.jitter * (2.0 * unit - 1.0);
        // try_from: an absurd configured interval must not panic the sender.
        std::time::Duration::try_from_secs_f64(self.cfg.interval.as_secs_f64() * factor.max(0.0))
            .unwrap_or(self.cfg.interval)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn state(served: f64, director: f64, spilling: &[&str]) -> LocalState {
        LocalState {
            load: SiteLoad {
                served,
                director,
                healthy_capacity: if served.is_finite() { 1000 } else { 0 },
                active_local: 0,
                active_spilled: 0,
                up_servers: 2,
            },
            spilling_to: spilling.iter().map(|s| SiteId::new(*s)).collect(),
            spill_share: 0.0,
            vips_down: Vec::new(),
        }
    }

    fn sched() -> ReportScheduler {
        let cfg = ExchangeConfig::new(SiteId::new("site-a"));
        ReportScheduler::new(
            cfg,
            SpillConfig::default(),
            vec![SiteId::new("site-b"), SiteId::new("site-c")],
            7,
        )
    }

    #[test]
    fn periodic_with_jitter_and_increasing_seq() {
        let mut s = sched();
        let t0 = Time::from_secs(1_700_000_000);
        let r = s.poll(t0, &state(0.5, 0.5, &[])).expect("first");
        assert_eq!(r.reason, SendReason::Start);
        assert_eq!(r.reports.len(), 2);
        assert_eq!(r.reports[0].seq, t0.as_millis());
        assert_eq!(r.reports[1].receiver, SiteId::new("site-c"));
        let mut last_seq = r.reports[0].seq;
        let mut now = t0;
        for _ in 0..20 {
            let due = s.next_wakeup().expect("due");
            let gap = now.until(due);
            assert!(
                gap >= Duration::from_secs(108) && gap <= Duration::from_secs(132),
                "{gap:?}"
            );
            assert!(
                s.poll(
                    due.plus(Duration::ZERO).min(Time(due.0 - 1)),
                    &state(0.5, 0.5, &[])
                )
                .is_none()
            );
            let r = s.poll(due, &state(0.5, 0.5, &[])).expect("periodic");
            assert_eq!(r.reason, SendReason::Periodic);
            assert!(r.reports[0].seq > last_seq);
            last_seq = r.reports[0].seq;
            now = due;
        }
    }

    #[test]
    fn threshold_crossing_sends_at_once_but_not_more_than_once_per_gap() {
        let mut s = sched();
        let t0 = Time::from_secs(1_700_000_000);
        s.poll(t0, &state(0.5, 0.5, &[]));
        // Within the band: nothing.
        assert!(
            s.poll(t0.plus(Duration::from_secs(5)), &state(0.69, 0.69, &[]))
                .is_none()
        );
        // Across 0.7: at once.
        let r = s.poll(t0.plus(Duration::from_secs(6)), &state(0.71, 0.71, &[]));
        assert_eq!(r.map(|r| r.reason), Some(SendReason::Threshold));
        // Across 1.1 in the same second: deferred to the gap.
        let t = t0.plus(Duration::from_millis(6_500));
        assert!(s.poll(t, &state(1.0, 1.2, &[])).is_none());
        assert_eq!(s.next_wakeup(), Some(t0.plus(Duration::from_secs(7))));
        let r = s.poll(t0.plus(Duration::from_secs(7)), &state(1.0, 1.2, &[]));
        assert_eq!(r.map(|r| r.reason), Some(SendReason::Threshold));
        // Starting to spill is a crossing.
        let r = s.poll(
            t0.plus(Duration::from_secs(9)),
            &state(1.0, 1.2, &["site-b"]),
        );
        assert_eq!(r.map(|r| r.reason), Some(SendReason::Threshold));
        // No capacity: served infinite, reported as null.
        let r = s.poll(
            t0.plus(Duration::from_secs(11)),
            &state(f64::INFINITY, f64::INFINITY, &["site-b"]),
        );
        let r = r.expect("crossing");
        assert_eq!(r.reports[0].load, None);
    }
}
