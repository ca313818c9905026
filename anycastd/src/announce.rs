//! Per-VIP announcement state machine: what to announce, when to withdraw, and the
//! graceful drain. No I/O; the controller feeds it and carries out its outputs.
//!
//! ```text
//!             servable                     drain
//!  Withdrawn ----------> Announced ------------------> Draining --(wait expires)--> Drained
//!      ^                   |  ^                          |  (announced with           |
//!      |   not servable    |  | undrain                  |   GRACEFUL_SHUTDOWN)       |
//!      +-------------------+  +--------------------------+----------------------------+
//!   (withdraw at once)           (re-announce if servable, else Withdrawn)
//! ```
//! A VIP that stops being servable is withdrawn on that very input, in every state:
//! nothing may delay the withdraw of a site that cannot serve. A drain sends the
//! RFC 8326 GRACEFUL_SHUTDOWN community first so upstream routers move traffic
//! away before the route disappears.

use std::time::Duration;

use geo_balancer::Time;

use crate::status::VipState;

/// What the controller must do for this VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Announce (or re-announce) the prefix; `graceful_shutdown` adds community 65535:0.
    Announce { graceful_shutdown: bool },
    /// Withdraw the prefix now.
    Withdraw,
    /// Call [`Announcer::timer_expired`] at this instant.
    ArmTimer(Time),
}

/// Whether the site can serve the VIP, with the reason in one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servable {
    pub ok: bool,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Announcer {
    state: VipState,
    since: Time,
    servable: Servable,
    drain_wait: Duration,
    drain_deadline: Option<Time>,
}

impl Announcer {
    /// A VIP starts withdrawn, until the first health verdict says it can serve.
    pub fn new(now: Time, drain_wait: Duration) -> Self {
        Announcer {
            state: VipState::Withdrawn,
            since: now,
            servable: Servable {
                ok: false,
                reason: "no health verdict yet".to_string(),
            },
            drain_wait,
            drain_deadline: None,
        }
    }

    pub fn state(&self) -> VipState {
        self.state
    }

    pub fn since(&self) -> Time {
        self.since
    }

    /// Whether this VIP is drained or draining by the operator.
    pub fn is_drained(&self) -> bool {
        matches!(self.state, VipState::Draining | VipState::Drained)
    }

    /// The reason for the current state, one sentence.
    pub fn reason(&self) -> String {
        match self.state {
            VipState::Announced | VipState::Withdrawn => self.servable.reason.clone(),
            VipState::Draining => format!(
                "drained by the operator: announced with GRACEFUL_SHUTDOWN, withdraw after {}",
                geo_balancer::time::human(self.drain_wait)
            ),
            VipState::Drained => "drained by the operator (undrain to announce again)".to_string(),
        }
    }

    fn go(&mut self, now: Time, to: VipState) {
        if self.state != to {
            self.state = to;
            self.since = now;
        }
    }

    /// A new health verdict. Repeating the same verdict changes nothing.
    pub fn set_servable(&mut self, now: Time, servable: Servable) -> Vec<Output> {
        let was = self.servable.ok;
        self.servable = servable;
        match (self.state, was, self.servable.ok) {
            (VipState::Withdrawn, _, true) => {
                self.go(now, VipState::Announced);
                vec![Output::Announce {
                    graceful_shutdown: false,
                }]
            }
            (VipState::Announced, _, false) => {
                self.go(now, VipState::Withdrawn);
                vec![Output::Withdraw]
            }
            (VipState::Draining, _, false) => {
                self.drain_deadline = None;
                self.go(now, VipState::Drained);
                vec![Output::Withdraw]
            }
            _ => vec![],
        }
    }

    /// The operator drains this VIP.
    pub fn drain(&mut self, now: Time) -> Vec<Output> {
        match self.state {
            VipState::Announced => {
                let deadline = now.plus(self.drain_wait);
                self.drain_deadline = Some(deadline);
                self.go(now, VipState::Draining);
                vec![
                    Output::Announce {
                        graceful_shutdown: true,
                    },
                    Output::ArmTimer(deadline),
                ]
            }
            VipState::Withdrawn => {
                self.go(now, VipState::Drained);
                vec![]
            }
            VipState::Draining | VipState::Drained => vec![],
        }
    }

    /// The operator undoes a drain.
    pub fn undrain(&mut self, now: Time) -> Vec<Output> {
        if !self.is_drained() {
            return vec![];
        }
        self.drain_deadline = None;
        if self.servable.ok {
            self.go(now, VipState::Announced);
            vec![Output::Announce {
                graceful_shutdown: false,
            }]
        } else {
            let was_announced = self.state == VipState::Draining;
            self.go(now, VipState::Withdrawn);
            if was_announced {
                vec![Output::Withdraw]
            } else {
                vec![]
            }
        }
    }

    /// The end of a graceful stop: withdraw now if announced (draining or not).
    pub fn stop(&mut self, now: Time) -> Vec<Output> {
        self.drain_deadline = None;
        let announced = matches!(self.state, VipState::Announced | VipState::Draining);
        self.go(now, VipState::Drained);
        if announced {
            vec![Output::Withdraw]
        } else {
            vec![]
        }
    }

    /// A timer armed by [`Output::ArmTimer`] fired. Stale timers are ignored.
    pub fn timer_expired(&mut self, now: Time) -> Vec<Output> {
        match self.drain_deadline {
            Some(d) if now >= d && self.state == VipState::Draining => {
                self.drain_deadline = None;
                self.go(now, VipState::Drained);
                vec![Output::Withdraw]
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> Servable {
        Servable {
            ok: true,
            reason: "2 of 2 real servers up (min 1)".into(),
        }
    }

    fn down() -> Servable {
        Servable {
            ok: false,
            reason: "0 of 2 real servers up (min 1)".into(),
        }
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn announce_when_servable_withdraw_at_once_when_not() {
        let t0 = Time::from_secs(1_000);
        let mut a = Announcer::new(t0, WAIT);
        assert_eq!(a.state(), VipState::Withdrawn);
        assert_eq!(
            a.set_servable(t0, up()),
            vec![Output::Announce {
                graceful_shutdown: false
            }]
        );
        assert_eq!(a.set_servable(t0, up()), vec![], "same verdict, no output");
        assert_eq!(a.set_servable(t0, down()), vec![Output::Withdraw]);
        assert_eq!(a.state(), VipState::Withdrawn);
        assert_eq!(a.reason(), "0 of 2 real servers up (min 1)");
    }

    #[test]
    fn drain_announces_graceful_shutdown_then_withdraws() {
        let t0 = Time::from_secs(1_000);
        let mut a = Announcer::new(t0, WAIT);
        a.set_servable(t0, up());
        let out = a.drain(t0);
        assert_eq!(
            out,
            vec![
                Output::Announce {
                    graceful_shutdown: true
                },
                Output::ArmTimer(t0.plus(WAIT))
            ]
        );
        assert_eq!(a.state(), VipState::Draining);
        assert_eq!(a.timer_expired(t0.plus(WAIT / 2)), vec![], "too early");
        assert_eq!(a.timer_expired(t0.plus(WAIT)), vec![Output::Withdraw]);
        assert_eq!(a.state(), VipState::Drained);
        assert_eq!(a.set_servable(t0.plus(WAIT), up()), vec![], "stays drained");
        assert_eq!(
            a.undrain(t0.plus(WAIT * 2)),
            vec![Output::Announce {
                graceful_shutdown: false
            }]
        );
        assert_eq!(a.state(), VipState::Announced);
    }

    #[test]
    fn stop_withdraws_what_is_announced_only() {
        let t0 = Time::from_secs(1_000);
        let mut a = Announcer::new(t0, WAIT);
        assert_eq!(a.stop(t0), vec![]);
        let mut a = Announcer::new(t0, WAIT);
        a.set_servable(t0, up());
        a.drain(t0);
        assert_eq!(a.stop(t0), vec![Output::Withdraw]);
        assert_eq!(a.timer_expired(t0.plus(WAIT)), vec![]);
    }

    #[test]
    fn failure_while_draining_withdraws_at_once() {
        let t0 = Time::from_secs(1_000);
        let mut a = Announcer::new(t0, WAIT);
        a.set_servable(t0, up());
        a.drain(t0);
        assert_eq!(a.set_servable(t0, down()), vec![Output::Withdraw]);
        assert_eq!(a.state(), VipState::Drained);
        assert_eq!(
            a.timer_expired(t0.plus(WAIT)),
            vec![],
            "stale timer ignored"
        );
    }

    #[test]
    fn undrain_during_drain_restores_normal_attributes() {
        let t0 = Time::from_secs(1_000);
        let mut a = Announcer::new(t0, WAIT);
        a.set_servable(t0, up());
        a.drain(t0);
        assert_eq!(
            a.undrain(t0),
            vec![Output::Announce {
                graceful_shutdown: false
            }]
        );
        assert_eq!(
            a.timer_expired(t0.plus(WAIT)),
            vec![],
            "drain timer cancelled"
        );
        assert_eq!(a.state(), VipState::Announced);
    }

    #[test]
    fn draining_a_withdrawn_vip_keeps_it_down_after_recovery() {
        let t0 = Time::from_secs(1_000);
        let mut a = Announcer::new(t0, WAIT);
        assert_eq!(a.drain(t0), vec![]);
        assert_eq!(a.set_servable(t0, up()), vec![]);
        assert_eq!(a.state(), VipState::Drained);
        assert_eq!(a.undrain(t0).len(), 1);
    }

    #[test]
    fn undrain_of_a_dead_vip_withdraws_the_graceful_announcement() {
        let t0 = Time::from_secs(1_000);
        let mut a = Announcer::new(t0, WAIT);
        a.set_servable(t0, up());
        a.drain(t0);
        a.servable = down(); // verdict changed without passing through set_servable
        assert_eq!(a.undrain(t0), vec![Output::Withdraw]);
        assert_eq!(a.state(), VipState::Withdrawn);
    }
}
