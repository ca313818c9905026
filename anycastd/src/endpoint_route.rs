//! The site endpoint's prefix on BGP (decision 0018): each director announces the
//! site's `tunnel_prefix` while it announces an IPv4 VIP (with GRACEFUL_SHUTDOWN
//! while every one of them drains) and withdraws it with the last one, so a director
//! that cannot serve receives no spilled connections either. No I/O: the daemon
//! asks for the changes after each batch of announcements and carries them out.

use ipnet::Ipv4Net;

use crate::config::SiteConfig;
use crate::status::VipState;

/// What the routers should hold of the endpoint prefix: `Some((prefix, graceful))`.
pub type Wanted = Option<(Ipv4Net, bool)>;

/// A change to send to every neighbor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Announce {
        prefix: Ipv4Net,
        graceful_shutdown: bool,
    },
    Withdraw(Ipv4Net),
}

/// The endpoint prefix for `cfg` given each VIP's announcement state (config order):
/// announced while an IPv4 VIP is announced or draining, gracefully when none is
/// plainly announced.
pub fn wanted(cfg: &SiteConfig, states: &[VipState]) -> Wanted {
    let e = cfg.site.endpoint?;
    let v4 = cfg
        .vips
        .iter()
        .zip(states)
        .filter(|(v, _)| v.address.is_ipv4())
        .map(|(_, s)| *s);
    let (mut on, mut plain) = (false, false);
    for s in v4 {
        on |= matches!(s, VipState::Announced | VipState::Draining);
        plain |= s == VipState::Announced;
    }
    on.then_some((e.prefix, !plain))
}

/// What this director last sent of the endpoint prefix.
#[derive(Debug, Default)]
pub struct EndpointRoute {
    sent: Wanted,
}

impl EndpointRoute {
    /// The changes that take the routers from what was sent to `want`.
    pub fn update(&mut self, want: Wanted) -> Vec<Change> {
        if want == self.sent {
            return Vec::new();
        }
        let mut changes = Vec::new();
        if let Some((old, _)) = self.sent
            && want.is_none_or(|(p, _)| p != old)
        {
            changes.push(Change::Withdraw(old));
        }
        if let Some((prefix, graceful_shutdown)) = want {
            changes.push(Change::Announce {
                prefix,
                graceful_shutdown,
            });
        }
        self.sent = want;
        changes
    }

    /// The sessions restarted and hold nothing: the next update announces again.
    pub fn forget(&mut self) {
        self.sent = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's IDC1: its site endpoint is 10.101.14.1 in 10.101.14.0/24.
    fn cfg() -> SiteConfig {
        let text = include_str!("../../configs/idc1.toml");
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/idc1.toml");
        crate::config::parse_str(&file, text).unwrap()
    }

    #[test]
    fn follows_the_ipv4_vips_and_withdraws_with_the_last() {
        let cfg = cfg();
        let p: Ipv4Net = "10.101.14.0/24".parse().unwrap();
        let mut r = EndpointRoute::default();
        let table: &[(VipState, &[Change])] = &[
            (VipState::Withdrawn, &[]),
            (
                VipState::Announced,
                &[Change::Announce {
                    prefix: p,
                    graceful_shutdown: false,
                }],
            ),
            (VipState::Announced, &[]),
            (
                VipState::Draining,
                &[Change::Announce {
                    prefix: p,
                    graceful_shutdown: true,
                }],
            ),
            (VipState::Drained, &[Change::Withdraw(p)]),
            (
                VipState::Announced,
                &[Change::Announce {
                    prefix: p,
                    graceful_shutdown: false,
                }],
            ),
            (VipState::Withdrawn, &[Change::Withdraw(p)]),
        ];
        for (state, expect) in table {
            assert_eq!(&r.update(wanted(&cfg, &[*state])), expect, "{state:?}");
        }
        r.update(wanted(&cfg, &[VipState::Announced]));
        r.forget();
        assert_eq!(r.update(wanted(&cfg, &[VipState::Announced])).len(), 1);
    }

    #[test]
    fn a_new_prefix_replaces_the_old_and_no_endpoint_announces_nothing() {
        let mut r = EndpointRoute::default();
        let (a, b): (Ipv4Net, Ipv4Net) = (
            "10.101.14.0/24".parse().unwrap(),
            "10.101.19.0/24".parse().unwrap(),
        );
        r.update(Some((a, false)));
        assert_eq!(
            r.update(Some((b, false))),
            [
                Change::Withdraw(a),
                Change::Announce {
                    prefix: b,
                    graceful_shutdown: false
                }
            ]
        );
        let mut plain = cfg();
        plain.site.endpoint = None;
        assert_eq!(wanted(&plain, &[VipState::Announced]), None);
    }
}
