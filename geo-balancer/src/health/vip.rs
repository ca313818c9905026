//! Whether a VIP may be announced: at least `min_up` real servers up and the data plane
//! in place. A withdraw comes out on the very input that causes it; an announce after a
//! withdraw waits until the VIP has stayed servable for the hold-down, which doubles
//! with each withdraw inside `flap_window` (up to `max_hold_down`), the way routers damp
//! a flapping prefix, so we never give them a reason to.
//!
//! ```text
//!                      servable (first time: at once)
//!   +-----------+ -------------------------------------> +-----------+
//!   | Withdrawn |   servable for hold-down (after a      | Announced |
//!   |           |   withdraw; ArmTimer until then)       |           |
//!   +-----------+ <------------------------------------- +-----------+
//!                  not servable: Withdraw on that input
//! ```
//! The daemon feeds the outputs to its announcer (Announce = servable, Withdraw = not).

use std::time::Duration;

use serde::Serialize;

use crate::errors::ConfigError;
use crate::time::{Time, human};

/// VIP servability parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VipConfig {
    /// Real servers that must be up (at least 1).
    pub min_up: usize,
    /// After a withdraw, how long the VIP must stay servable before it is announced.
    pub hold_down: Duration,
    /// Ceiling of the doubled hold-down.
    pub max_hold_down: Duration,
    /// Withdraws older than this no longer lengthen the hold-down.
    pub flap_window: Duration,
}

impl Default for VipConfig {
    fn default() -> Self {
        VipConfig {
            min_up: 1,
            hold_down: Duration::from_secs(10),
            max_hold_down: Duration::from_secs(300),
            flap_window: Duration::from_secs(900),
        }
    }
}

impl VipConfig {
    /// Rejects values that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |reason: String| Err(ConfigError::Vip(reason));
        if self.min_up == 0 {
            return bad("min_up must be at least 1".into());
        }
        if self.max_hold_down < self.hold_down {
            return bad(format!(
                "max_hold_down {:?} below hold_down {:?}",
                self.max_hold_down, self.hold_down
            ));
        }
        if self.flap_window.is_zero() {
            return bad("flap_window must be > 0".into());
        }
        Ok(())
    }
}

/// What the daemon must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum VipOutput {
    /// Announce the VIP's prefix (the VIP is servable).
    Announce {
        /// Why, one sentence.
        reason: String,
    },
    /// Withdraw the VIP's prefix now.
    Withdraw {
        /// Why, one sentence.
        reason: String,
    },
    /// Call [`VipHealth::timer`] at this time.
    ArmTimer(Time),
}

/// Most withdraw times remembered for damping.
const MAX_FLAPS: usize = 32;

/// The servability state of one VIP.
#[derive(Debug, Clone, Serialize)]
pub struct VipHealth {
    cfg: VipConfig,
    announced: bool,
    ever_announced: bool,
    eligible_since: Option<Time>,
    withdrawals: Vec<Time>,
    reason: String,
}

impl VipHealth {
    /// A VIP not announced yet. `min_up` below 1 is taken as 1.
    pub fn new(mut cfg: VipConfig) -> VipHealth {
        cfg.min_up = cfg.min_up.max(1);
        VipHealth {
            cfg,
            announced: false,
            ever_announced: false,
            eligible_since: None,
            withdrawals: Vec::new(),
            reason: "no health verdict yet".into(),
        }
    }

    /// Whether the VIP is announced.
    pub fn announced(&self) -> bool {
        self.announced
    }

    /// Why it is (not) announced.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The hold-down in force for the next announce.
    pub fn current_hold_down(&self, now: Time) -> Duration {
        let recent = self
            .withdrawals
            .iter()
            .filter(|t| now.since(**t) < self.cfg.flap_window)
            .count();
        let doublings = recent.saturating_sub(1).min(16) as u32;
        self.cfg
            .hold_down
            .saturating_mul(1 << doublings)
            .min(self.cfg.max_hold_down.max(self.cfg.hold_down))
    }

    /// New inputs: servers up for this VIP and whether the data plane is in place.
    pub fn update(&mut self, now: Time, up: usize, data_plane_ready: bool) -> Vec<VipOutput> {
        let servable = up >= self.cfg.min_up && data_plane_ready;
        if !servable {
            self.eligible_since = None;
            let reason = if !data_plane_ready {
                "data plane not in place".to_string()
            } else {
                format!("{} up, {} needed", real_servers(up), self.cfg.min_up)
            };
            self.reason = reason.clone();
            if self.announced {
                self.announced = false;
                self.withdrawals
                    .retain(|t| now.since(*t) < self.cfg.flap_window);
                if self.withdrawals.len() >= MAX_FLAPS {
                    self.withdrawals.remove(0);
                }
                self.withdrawals.push(now);
                // Runs before the withdraw is written; the daemon logs the withdraw at
                // warn once it is on the wire.
                tracing::info!(%reason, "VIP not servable: withdraw");
                return vec![VipOutput::Withdraw { reason }];
            }
            return Vec::new();
        }
        if self.announced {
            self.reason = format!("{} up (>= {})", real_servers(up), self.cfg.min_up);
            return Vec::new();
        }
        let since = *self.eligible_since.get_or_insert(now);
        self.try_announce(now, since, up)
    }

    /// A timer armed by [`VipOutput::ArmTimer`] fired.
    pub fn timer(&mut self, now: Time) -> Vec<VipOutput> {
        match self.eligible_since {
            Some(since) if !self.announced => self.try_announce(now, since, self.cfg.min_up),
            _ => Vec::new(),
        }
    }

    fn try_announce(&mut self, now: Time, since: Time, up: usize) -> Vec<VipOutput> {
        let hold = if self.ever_announced {
            self.current_hold_down(now)
        } else {
            Duration::ZERO
        };
        let due = since.plus(hold);
        if now >= due {
            self.announced = true;
            self.ever_announced = true;
            let reason = if hold.is_zero() {
                format!("{} up (>= {})", real_servers(up), self.cfg.min_up)
            } else {
                format!(
                    "servable for {} (hold-down {})",
                    human(now.since(since)),
                    human(hold)
                )
            };
            self.reason = reason.clone();
            tracing::info!(%reason, "VIP servable: announce");
            vec![VipOutput::Announce { reason }]
        } else {
            self.reason = format!("servable, in hold-down until {due}");
            vec![VipOutput::ArmTimer(due)]
        }
    }
}

/// `1 real server`, `2 real servers`.
fn real_servers(n: usize) -> String {
    if n == 1 {
        "1 real server".to_string()
    } else {
        format!("{n} real servers")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Time {
        Time::from_secs(n)
    }

    #[test]
    fn config_validation() {
        assert!(VipConfig::default().validate().is_ok());
        assert!(
            VipConfig {
                min_up: 0,
                ..VipConfig::default()
            }
            .validate()
            .is_err()
        );
        let short = VipConfig {
            max_hold_down: Duration::from_secs(1),
            ..VipConfig::default()
        };
        assert!(short.validate().is_err());
    }

    #[test]
    fn first_announce_is_immediate_and_withdraw_is_on_the_same_input() {
        let mut v = VipHealth::new(VipConfig {
            min_up: 2,
            ..VipConfig::default()
        });
        assert!(v.update(s(0), 1, true).is_empty());
        assert!(matches!(
            &v.update(s(1), 2, true)[..],
            [VipOutput::Announce { .. }]
        ));
        assert!(v.update(s(2), 3, true).is_empty());
        assert!(matches!(
            &v.update(s(3), 1, true)[..],
            [VipOutput::Withdraw { .. }]
        ));
        assert!(v.update(s(4), 0, true).is_empty());
    }

    #[test]
    fn data_plane_missing_withdraws() {
        let mut v = VipHealth::new(VipConfig::default());
        assert!(matches!(
            &v.update(s(0), 1, true)[..],
            [VipOutput::Announce { .. }]
        ));
        let out = v.update(s(1), 5, false);
        assert!(
            matches!(&out[..], [VipOutput::Withdraw { reason }] if reason.contains("data plane"))
        );
    }

    #[test]
    fn recovery_waits_for_hold_down_and_a_flap_restarts_it() {
        let mut v = VipHealth::new(VipConfig::default()); // hold 10 s
        v.update(s(0), 1, true);
        v.update(s(5), 0, true); // withdraw #1
        assert_eq!(v.update(s(6), 1, true), vec![VipOutput::ArmTimer(s(16))]);
        assert!(
            v.update(s(8), 0, true).is_empty(),
            "flap during hold-down: nothing upstream"
        );
        assert_eq!(v.update(s(9), 1, true), vec![VipOutput::ArmTimer(s(19))]);
        assert_eq!(
            v.timer(s(16)),
            vec![VipOutput::ArmTimer(s(19))],
            "stale timer re-arms"
        );
        assert!(matches!(&v.timer(s(19))[..], [VipOutput::Announce { .. }]));
        assert!(v.announced());
    }

    #[test]
    fn repeated_withdraws_double_the_hold_down_up_to_the_ceiling() {
        let cfg = VipConfig {
            max_hold_down: Duration::from_secs(40),
            ..VipConfig::default()
        };
        let mut v = VipHealth::new(cfg);
        v.update(s(0), 1, true);
        let mut t = 0;
        let mut holds = Vec::new();
        for _ in 0..5 {
            t += 1;
            v.update(s(t), 0, true);
            holds.push(v.current_hold_down(s(t)).as_secs());
            t += 1;
            let out = v.update(s(t), 1, true);
            let VipOutput::ArmTimer(due) = out[0] else {
                panic!("{out:?}")
            };
            t = due.as_millis() / 1000;
            assert!(matches!(&v.timer(due)[..], [VipOutput::Announce { .. }]));
        }
        assert_eq!(holds, vec![10, 20, 40, 40, 40]);
        // After a quiet flap window the hold-down is back to the base.
        let later = t + 901;
        v.update(s(later), 0, true);
        assert_eq!(v.current_hold_down(s(later)).as_secs(), 10);
    }
}
