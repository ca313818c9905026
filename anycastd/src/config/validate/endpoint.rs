//! `[site] tunnel_endpoint`, `tunnel_prefix` and `tunnel_gue_port`: the site-wide
//! tunnel endpoint (decision 0018).

use ipnet::{IpNet, Ipv4Net};
use toml::Spanned;

use super::Validator;
use crate::config::raw::RawSite;
use crate::config::{DEFAULT_GUE_PORT, PeerSite, Site, SiteEndpoint, Vip};

impl Validator<'_> {
    /// The site endpoint: both keys or neither; the address inside the prefix; the
    /// prefix IPv4, without host bits, and apart from every VIP prefix (a VIP prefix
    /// is announced by every site, so a peer's packets to an address in it reach the
    /// nearest site, often the sender itself); the address not this director's own
    /// nor a peer's endpoint.
    pub(super) fn site_endpoint(
        &mut self,
        s: &Spanned<RawSite>,
        site: &Site,
        vips: &[Vip],
        peers: &[PeerSite],
    ) -> Option<SiteEndpoint> {
        let r = s.get_ref();
        let (address, prefix) = match (&r.tunnel_endpoint, &r.tunnel_prefix) {
            (None, None) => {
                if let Some(p) = &r.tunnel_gue_port {
                    self.problem(p.span(), "tunnel_gue_port needs tunnel_endpoint");
                }
                return None;
            }
            (Some(a), Some(p)) => (a, p),
            (Some(a), None) => {
                self.problem(a.span(), "tunnel_endpoint needs tunnel_prefix: the site's own prefix holding it, which its directors announce");
                return None;
            }
            (None, Some(p)) => {
                self.problem(
                    p.span(),
                    "tunnel_prefix needs tunnel_endpoint: the address in it peers send to",
                );
                return None;
            }
        };
        let a = self.ipv4(address, "tunnel_endpoint");
        let p = self.parsed(prefix, "tunnel_prefix", |t| t.parse::<Ipv4Net>());
        let (a, p) = (a?, p?);
        let why = if p != p.trunc() {
            Some(format!(
                "tunnel_prefix `{p}` has host bits set (did you mean {}?)",
                p.trunc()
            ))
        } else {
            let net = IpNet::V4(p);
            vips.iter()
                .find(|v| v.prefix.contains(&net) || net.contains(&v.prefix))
                .map(|v| {
                    format!(
                        "tunnel_prefix {p} overlaps vip `{}`'s prefix {}: every site announces its VIP prefixes, \
                         so a peer's packets to an address there reach the nearest site, not this one; \
                         give the endpoint a prefix of this site's own",
                        v.name, v.prefix
                    )
                })
        };
        if let Some(why) = why {
            self.problem(prefix.span(), why);
            return None;
        }
        let why = if !p.contains(&a) {
            Some(format!(
                "tunnel_endpoint {a} is not inside tunnel_prefix {p}"
            ))
        } else if a == p.network() || (p.prefix_len() < 31 && a == p.broadcast()) {
            Some(format!(
                "tunnel_endpoint {a} is the network or broadcast address of {p}"
            ))
        } else if a == site.address {
            Some(format!(
                "tunnel_endpoint {a} is this director's own address: the site endpoint is one address every director holds"
            ))
        } else {
            peers
                .iter()
                .find(|x| x.tunnel_endpoint == a)
                .map(|x| format!("tunnel_endpoint {a} is peer `{}`'s tunnel_endpoint", x.name))
        };
        if let Some(why) = why {
            self.problem(address.span(), why);
            return None;
        }
        let gue_port = match &r.tunnel_gue_port {
            None => DEFAULT_GUE_PORT,
            Some(g) if *g.get_ref() == 0 => {
                self.problem(g.span(), "tunnel_gue_port 0 is no port");
                return None;
            }
            Some(g) => *g.get_ref(),
        };
        Some(SiteEndpoint {
            address: a,
            prefix: p,
            gue_port,
        })
    }
}
