//! Both families on one site: an IPv6 VIP on a site with peers needs an IPv6 tunnel
//! path, this director's `address_v6` and every peer's `tunnel_endpoint_v6`
//! (IPv6 connections are spilled over ip6ip6; IPv6-in-IPv4 is not offered:
//! docs/decisions/0009-ipv6-spill-over-ip6ip6.md).

use std::net::IpAddr;

use super::Validator;
use crate::config::Site;
use crate::config::raw::*;

impl Validator<'_> {
    pub(super) fn families(&mut self, raw: &RawConfig, site: &Site) {
        if raw.peers.is_empty() || !site.dataplane {
            return;
        }
        let Some(v6) = raw.vips.iter().map(|v| v.get_ref()).find(|v| {
            v.address
                .get_ref()
                .parse::<IpAddr>()
                .is_ok_and(|a| a.is_ipv6())
        }) else {
            return;
        };
        let name = v6.name.get_ref();
        // A given but unusable address_v6 was refused where it is.
        if raw.site.get_ref().address_v6.is_none() {
            self.problem(
                v6.address.span(),
                format!(
                    "vip `{name}` is IPv6 and this site has peers, but [site] address_v6 is not set: \
                     IPv6 connections are spilled over ip6ip6 between the directors' IPv6 addresses; \
                     set site.address_v6 and each peer's tunnel_endpoint_v6 (IPv6-in-IPv4 spill is not supported)"
                ),
            );
        }
        for p in &raw.peers {
            if p.get_ref().tunnel_endpoint_v6.is_none() {
                self.problem(
                    p.span(),
                    format!(
                        "peer `{}` has no tunnel_endpoint_v6, but vip `{name}` is IPv6: \
                         its IPv6 connections could be spilled nowhere (IPv6-in-IPv4 is not supported); \
                         set it to the peer's site.address_v6",
                        p.get_ref().name.get_ref()
                    ),
                );
            }
        }
    }
}
