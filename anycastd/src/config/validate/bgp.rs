//! [bgp], its neighbors, and the peer sites.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use toml::Spanned;

use super::Validator;
use super::{parse_community, parse_large_community};
use crate::config::raw::*;
use crate::config::*;

impl Validator<'_> {
    /// `bfd`, `bfd_min_tx`, `bfd_min_rx`, `bfd_multiplier` of a neighbor (defaults
    /// FRR's: 300 ms, 300 ms, 3). Timers below 10 ms or a multiplier of 0 are refused.
    fn bfd(&mut self, r: &RawNeighbor) -> Option<BfdTimers> {
        let on = r.bfd.as_ref().is_some_and(|b| *b.get_ref());
        let mut timer = |v: Option<&Spanned<String>>, what: &str| {
            let d = self.duration(v, what, Duration::from_millis(300));
            if let Some(v) = v
                && d < Duration::from_millis(10)
            {
                self.problem(
                    v.span(),
                    format!(
                        "{what} {} is below 10 ms: no BFD implementation keeps that up",
                        v.get_ref()
                    ),
                );
            }
            d
        };
        let min_tx = timer(r.bfd_min_tx.as_ref(), "bfd_min_tx");
        let min_rx = timer(r.bfd_min_rx.as_ref(), "bfd_min_rx");
        let multiplier = r.bfd_multiplier.as_ref().map_or(3, |m| *m.get_ref());
        if let Some(m) = &r.bfd_multiplier
            && *m.get_ref() == 0
        {
            self.problem(m.span(), "bfd_multiplier 0 would declare the session down before any packet could arrive: use 1-255 (3 is usual)");
        }
        if !on {
            let given = [
                r.bfd_min_tx.as_ref().map(Spanned::span),
                r.bfd_min_rx.as_ref().map(Spanned::span),
                r.bfd_multiplier.as_ref().map(Spanned::span),
            ];
            for span in given.into_iter().flatten() {
                self.problem(
                    span,
                    "BFD timers given but bfd is not on for this neighbor: add `bfd = true`",
                );
            }
            return None;
        }
        Some(BfdTimers {
            min_tx,
            min_rx,
            multiplier,
        })
    }

    pub(super) fn bgp(&mut self, b: &Spanned<RawBgp>, site: Ipv4Addr) -> Bgp {
        let r = b.get_ref();
        let asn = *r.asn.get_ref();
        if asn == 0 || asn == 23456 {
            self.problem(
                r.asn.span(),
                format!("asn {asn} is reserved (RFC 7607, RFC 6793)"),
            );
        }
        let router_id = match &r.router_id {
            None => site,
            Some(id) => self.ipv4(id, "router_id").unwrap_or(site),
        };
        if router_id.is_unspecified() {
            let span = r.router_id.as_ref().map_or(b.span(), |i| i.span());
            self.problem(span, "router_id must not be 0.0.0.0");
        }
        let mut seen = HashSet::new();
        let mut neighbors = Vec::new();
        for n in &r.neighbors {
            if let Some(nb) = self.neighbor(n) {
                if !seen.insert(nb.address) {
                    self.problem(
                        n.get_ref().address.span(),
                        format!("neighbor {} is configured twice", nb.address),
                    );
                }
                neighbors.push(nb);
            }
        }
        let listen = r.listen.unwrap_or(true);
        if !listen {
            for n in r
                .neighbors
                .iter()
                .filter(|n| n.get_ref().passive == Some(true))
            {
                self.problem(
                    n.span(),
                    format!(
                        "neighbor {} is passive but [bgp] listen is off: nothing would accept its session (set listen = true)",
                        n.get_ref().address.get_ref()
                    ),
                );
            }
        }
        if neighbors.is_empty() && self.problems.is_empty() {
            self.problem(
                b.span(),
                "no [[bgp.neighbor]] is configured: the VIP would be announced to nobody",
            );
        }
        Bgp {
            asn,
            router_id,
            listen,
            listen_set: r.listen.is_some(),
            neighbors,
        }
    }

    pub(super) fn neighbor(&mut self, n: &Spanned<RawNeighbor>) -> Option<Neighbor> {
        let r = n.get_ref();
        let address = self.ip(&r.address, "neighbor address")?;
        let remote_asn = *r.remote_asn.get_ref();
        if remote_asn == 0 || remote_asn == 23456 {
            self.problem(
                r.remote_asn.span(),
                format!("remote_asn {remote_asn} is reserved"),
            );
        }
        let hold_time = r.hold_time.as_ref().map_or(90, |h| *h.get_ref());
        if let Some(h) = &r.hold_time
            && (1..3).contains(h.get_ref())
        {
            self.problem(h.span(), format!("hold_time {} is invalid: 0 (no keepalives) or at least 3 seconds (RFC 4271 4.2)", h.get_ref()));
        }
        let keepalive = r.keepalive.as_ref().map_or(hold_time / 3, |k| *k.get_ref());
        if let Some(k) = &r.keepalive
            && hold_time != 0
            && *k.get_ref() >= hold_time
        {
            self.problem(
                k.span(),
                format!(
                    "keepalive {} must be below hold_time {hold_time}",
                    k.get_ref()
                ),
            );
        }
        let connect_retry = r.connect_retry.as_ref().map_or(5, |c| *c.get_ref());
        if let Some(c) = &r.connect_retry
            && *c.get_ref() == 0
        {
            self.problem(c.span(), "connect_retry must be at least 1 second");
        }
        if let Some(p) = &r.password
            && (p.get_ref().is_empty() || p.get_ref().len() > 80)
        {
            self.problem(p.span(), "password must be 1-80 bytes (TCP MD5 key limit)");
        }
        if let Some(t) = &r.ttl_security
            && *t.get_ref() == 0
        {
            self.problem(t.span(), "ttl_security is the number of hops allowed (1 for a directly connected peer), not 0");
        }
        let max_prefixes_action = match r.max_prefixes_action.as_ref() {
            None => MaxPrefixAction::Teardown,
            Some(a) => match a.get_ref().as_str() {
                "warn" => MaxPrefixAction::Warn,
                "teardown" => MaxPrefixAction::Teardown,
                other => {
                    self.problem(
                        a.span(),
                        format!("max_prefixes_action `{other}` is not `warn` or `teardown`"),
                    );
                    MaxPrefixAction::Teardown
                }
            },
        };
        let communities = r
            .communities
            .iter()
            .filter_map(|c| self.parsed(c, "community", parse_community))
            .collect();
        let large_communities = r
            .large_communities
            .iter()
            .filter_map(|c| self.parsed(c, "large community", parse_large_community))
            .collect();
        let prepend = r.prepend.as_ref().map_or(0, |p| *p.get_ref());
        if let Some(p) = &r.prepend
            && *p.get_ref() > 10
        {
            self.problem(
                p.span(),
                "prepend above 10 is refused: it makes the path longer than any router prefers",
            );
        }
        let bfd = self.bfd(r);
        Some(Neighbor {
            bfd,
            address,
            remote_asn,
            local_address: r
                .local_address
                .as_ref()
                .and_then(|a| self.ip(a, "local_address")),
            hold_time,
            keepalive,
            connect_retry,
            password: r.password.as_ref().map(|p| p.get_ref().clone()),
            ttl_security: r.ttl_security.as_ref().map(|t| *t.get_ref()),
            passive: r.passive.unwrap_or(false),
            next_hop: r.next_hop.as_ref().and_then(|a| self.ip(a, "next_hop")),
            next_hop_v6: r
                .next_hop_v6
                .as_ref()
                .and_then(|a| self.ip(a, "next_hop_v6")),
            prepend,
            med: r.med,
            local_pref: r.local_pref,
            communities,
            large_communities,
            max_prefixes: r.max_prefixes,
            max_prefixes_action,
        })
    }

    pub(super) fn peers(&mut self, peers: &[Spanned<RawPeer>], site: &Site) -> Vec<PeerSite> {
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for p in peers {
            let r = p.get_ref();
            let name = self.name(&r.name, "peer name");
            if name == site.name {
                self.problem(
                    r.name.span(),
                    format!("peer `{name}` has this site's own name"),
                );
            }
            if !names.insert(name.clone()) {
                self.problem(r.name.span(), format!("peer `{name}` is configured twice"));
            }
            let endpoint = self.ipv4(&r.tunnel_endpoint, "tunnel_endpoint");
            if endpoint == Some(site.address) {
                self.problem(
                    r.tunnel_endpoint.span(),
                    "tunnel_endpoint is this site's own address",
                );
            }
            let endpoint_v6 = r
                .tunnel_endpoint_v6
                .as_ref()
                .and_then(|e| self.ipv6_endpoint(e, "tunnel_endpoint_v6"));
            if let (Some(e), Some(mine)) = (endpoint_v6, site.address_v6)
                && e == mine
                && let Some(span) = r.tunnel_endpoint_v6.as_ref().map(Spanned::span)
            {
                self.problem(span, "tunnel_endpoint_v6 is this site's own address_v6");
            }
            let tunnel = self.peer_tunnel(r, endpoint_v6.is_some());
            let urls = self.report_urls(&name, p.span(), r);
            let key = self
                .key(&format!("peer `{name}`"), "key", &r.key, &r.key_file)
                .unwrap_or_else(|| {
                    if r.key.is_none() && r.key_file.is_none() {
                        self.problem(p.span(), format!("peer `{name}` has no key or key_file: load reports must be authenticated"));
                    }
                    Vec::new()
                });
            let next_key = self.key(
                &format!("peer `{name}`"),
                "next_key",
                &r.next_key,
                &r.next_key_file,
            );
            out.push(PeerSite {
                name,
                tunnel_endpoint: endpoint.unwrap_or(Ipv4Addr::UNSPECIFIED),
                tunnel_endpoint_v6: endpoint_v6,
                tunnel,
                urls,
                key,
                next_key,
            });
        }
        out
    }

    /// A peer's `tunnel` and `gue_port` (decision 0016).
    /// A peer's report URLs: `url` or `urls` (one per director of the peer site), each
    /// http(s), none twice.
    fn report_urls(&mut self, name: &str, at: std::ops::Range<usize>, r: &RawPeer) -> Vec<String> {
        let given: Vec<&Spanned<String>> = match (&r.url, &r.urls) {
            (Some(u), None) => vec![u],
            (None, Some(us)) if !us.get_ref().is_empty() => us.get_ref().iter().collect(),
            (None, Some(us)) => {
                self.problem(us.span(), format!("peer `{name}` urls is empty"));
                Vec::new()
            }
            (Some(u), Some(_)) => {
                self.problem(
                    u.span(),
                    format!("peer `{name}` has both url and urls: give one of them"),
                );
                Vec::new()
            }
            (None, None) => {
                self.problem(
                    at,
                    format!(
                        "peer `{name}` has no url (or urls, one per director of the peer site)"
                    ),
                );
                Vec::new()
            }
        };
        let mut out: Vec<String> = Vec::new();
        for u in given {
            let url = u.get_ref();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.problem(
                    u.span(),
                    format!("url `{url}` must start with http:// or https://"),
                );
            } else if out.contains(url) {
                self.problem(u.span(), format!("url `{url}` is listed twice"));
            } else {
                out.push(url.clone());
            }
        }
        out
    }

    fn peer_tunnel(&mut self, r: &RawPeer, has_v6: bool) -> PeerTunnel {
        let kind = r.tunnel.as_ref().map(|t| (t.get_ref().as_str(), t.span()));
        let tunnel = match kind {
            None | Some(("ipip", _)) => PeerTunnel::Ipip,
            Some(("gue", span)) => {
                if has_v6 {
                    self.problem(
                        span.clone(),
                        "tunnel = \"gue\" is IPv4 only, and this peer has a tunnel_endpoint_v6: \
                         IPv6 spill is ip6ip6 (the receiving side has no IPv6 GUE path with a loop guard); \
                         use tunnel = \"ipip\" or leave out tunnel_endpoint_v6",
                    );
                }
                let port = r
                    .gue_port
                    .as_ref()
                    .map_or(DEFAULT_GUE_PORT, |p| *p.get_ref());
                if port == 0 {
                    let span = r.gue_port.as_ref().map_or(span, Spanned::span);
                    self.problem(span, "gue_port 0 is no port");
                }
                PeerTunnel::Gue { port }
            }
            Some(("gre", span)) => {
                self.problem(
                    span,
                    "tunnel = \"gre\" is not supported: GRE carries no ports, so routers hash its \
                     flows like IPIP's (no ECMP gain), and its receiving device would need a loop \
                     guard of its own; use \"gue\" (decision 0016)",
                );
                PeerTunnel::Ipip
            }
            Some((other, span)) => {
                self.problem(
                    span,
                    format!("tunnel `{other}` is not one of \"ipip\", \"gue\""),
                );
                PeerTunnel::Ipip
            }
        };
        if tunnel == PeerTunnel::Ipip
            && let Some(p) = &r.gue_port
        {
            self.problem(p.span(), "gue_port needs tunnel = \"gue\"");
        }
        tunnel
    }

    /// A key (of a peer, of the site's directors) given inline (`what`) or in a file (`what_file`, relative to the
    /// config): `None` when neither is given or it is unusable (a problem is recorded).
    pub(super) fn key(
        &mut self,
        whose: &str,
        what: &str,
        inline: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
    ) -> Option<Vec<u8>> {
        let (span, key) = match (inline, file) {
            (Some(k), None) => (k.span(), k.get_ref().as_bytes().to_vec()),
            (None, Some(f)) => {
                let path = self
                    .file
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(f.get_ref());
                match std::fs::read(&path) {
                    Ok(mut bytes) => {
                        while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                            bytes.pop();
                        }
                        (f.span(), bytes)
                    }
                    Err(e) => {
                        self.problem(
                            f.span(),
                            format!("{what}_file `{}` cannot be read: {e}", path.display()),
                        );
                        return None;
                    }
                }
            }
            (Some(k), Some(_)) => {
                self.problem(
                    k.span(),
                    format!("give either {what} or {what}_file, not both"),
                );
                return None;
            }
            (None, None) => return None,
        };
        if key.len() < 16 {
            self.problem(
                span,
                format!(
                    "the {what} for {whose} is {} bytes; at least 16 are required",
                    key.len()
                ),
            );
            return None;
        }
        Some(key)
    }
}
