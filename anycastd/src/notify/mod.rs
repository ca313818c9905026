//! Notifications: what changed at the site, told to the operators' webhooks and an
//! optional command hook (decision 0011).
//!
//! The site core records an [`Event`] at each state change it makes (a VIP announced,
//! draining or withdrawn, a real server down or up, a peer site lost or back, spill to
//! a peer started or stopped); the driver hands them to the [`Notifier`] after the
//! urgent effects are written, without waiting. The notifier's task owns an
//! [`outbox::Outbox`], a sans-IO core that coalesces the events of one subject during a
//! flap, queues them per sink with a bound (the oldest dropped and counted) and
//! schedules retries with exponential backoff; the task only POSTs and runs commands.
//!
//! ```text
//!  Site (events outbox) ──take_events──> daemon ──try_send──> notifier task
//!                                                             │ Outbox: coalesce ─> queue per sink ─> retry schedule
//!                                                             ├─> POST JSON to each webhook (timeout)
//!                                                             └─> command hook: JSON on stdin (timeout, no shell)
//! ```

pub mod outbox;
mod task;

pub use outbox::{Notice, Outbox, Policy, SinkStats};
pub use task::{Notifier, Stats};

use geo_balancer::Time;
use serde::Serialize;

use crate::config::duration::show;
use crate::config::notify::Notify;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    VipAnnounced,
    VipDraining,
    VipWithdrawn,
    ServerDown,
    ServerUp,
    PeerLost,
    PeerBack,
    SpillStarted,
    SpillStopped,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::VipAnnounced,
        Kind::VipDraining,
        Kind::VipWithdrawn,
        Kind::ServerDown,
        Kind::ServerUp,
        Kind::PeerLost,
        Kind::PeerBack,
        Kind::SpillStarted,
        Kind::SpillStopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VipAnnounced => "vip_announced",
            Kind::VipDraining => "vip_draining",
            Kind::VipWithdrawn => "vip_withdrawn",
            Kind::ServerDown => "server_down",
            Kind::ServerUp => "server_up",
            Kind::PeerLost => "peer_lost",
            Kind::PeerBack => "peer_back",
            Kind::SpillStarted => "spill_started",
            Kind::SpillStopped => "spill_stopped",
        }
    }
}

/// One state change of the site, as the core saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub kind: Kind,
    /// What changed, e.g. `vip web`, `server web/tcp80/10.0.0.1:80`, `peer idc2`,
    /// `spill idc2`: events of one subject coalesce.
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Why, one sentence.
    pub reason: String,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl Event {
    /// An event about `subject` at `at`; the named fields are set by the caller.
    pub fn new(kind: Kind, subject: String, reason: String, at: Time) -> Event {
        Event {
            kind,
            subject,
            vip: None,
            server: None,
            peer: None,
            reason,
            at_ms: at.as_millis(),
        }
    }
}

/// `anycastd check`'s lines for `[notify]`. Webhooks by scheme and host only: the rest
/// of a URL may be a secret.
pub fn describe(n: &Notify) -> String {
    if !n.enabled() {
        return "Notifications: none ([notify] names no webhook or command)".to_string();
    }
    let mut o = String::from("Notifications");
    for (i, url) in n.webhooks.iter().enumerate() {
        let shown = reqwest::Url::parse(url)
            .map(|u| format!("{}://{}/...", u.scheme(), u.host_str().unwrap_or("?")))
            .unwrap_or_default();
        o.push_str(&format!(
            "\n  webhook{i}: POST JSON to {shown} (timeout {})",
            show(n.timeout)
        ));
    }
    if let Some(c) = &n.command {
        o.push_str(&format!(
            "\n  command: {} {} (notice on stdin, no shell, killed after {})",
            c.program.display(),
            c.args.join(" "),
            show(c.timeout)
        ));
    }
    o.push_str(&format!(
        "\n  coalesce {} per subject, queue {} per sink (oldest dropped), retry after {} doubling to {}, {} tries",
        show(n.coalesce),
        n.queue,
        show(n.retry_initial),
        show(n.retry_max),
        n.attempts
    ));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_hides_all_but_the_host_of_a_webhook() {
        let n = Notify {
            webhooks: vec!["https://hooks.example.net/T0/B1/secret-token".into()],
            ..Notify::default()
        };
        let d = describe(&n);
        assert!(
            d.contains("webhook0: POST JSON to https://hooks.example.net/... (timeout 5s)"),
            "{d}"
        );
        assert!(!d.contains("secret"), "{d}");
        assert!(d.contains("coalesce 10s per subject, queue 256 per sink (oldest dropped), retry after 1s doubling to 5m, 10 tries"), "{d}");
        assert!(describe(&Notify::default()).starts_with("Notifications: none"));
    }
}
