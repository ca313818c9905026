//! From [`RawConfig`] to [`SiteConfig`]: every value checked, every default filled,
//! every problem collected with its line.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::raw::*;
use super::*;

const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
];

/// Parses and validates the text of a config file; `file` is used in messages and to
/// resolve relative `key_file` paths.
pub fn parse_str(file: &Path, text: &str) -> Result<SiteConfig, ConfigError> {
    let mut v = Validator {
        file: file.to_path_buf(),
        text,
        problems: Vec::new(),
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            v.problem(span, e.message().to_string());
            return Err(v.into_error());
        }
    };
    let cfg = v.config(raw);
    if v.problems.is_empty() {
        Ok(cfg)
    } else {
        Err(v.into_error())
    }
}

struct Validator<'a> {
    file: PathBuf,
    text: &'a str,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, span: Range<usize>, reason: impl Into<String>) {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let column = start - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            column,
            reason: reason.into(),
        });
    }

    fn into_error(self) -> ConfigError {
        ConfigError {
            problems: self.problems,
        }
    }

    fn parsed<T, E: std::fmt::Display>(
        &mut self,
        s: &Spanned<String>,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match parse(s.get_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(
                    s.span(),
                    format!("{what} `{}` is invalid: {e}", s.get_ref()),
                );
                None
            }
        }
    }

    fn ipv4(&mut self, s: &Spanned<String>, what: &str) -> Option<Ipv4Addr> {
        self.parsed(s, what, |t| t.parse::<Ipv4Addr>())
    }

    fn ip(&mut self, s: &Spanned<String>, what: &str) -> Option<IpAddr> {
        self.parsed(s, what, |t| t.parse::<IpAddr>())
    }

    fn duration(&mut self, s: Option<&Spanned<String>>, what: &str, default: Duration) -> Duration {
        match s {
            None => default,
            Some(s) => self.parsed(s, what, duration::parse).unwrap_or(default),
        }
    }

    fn fraction(&mut self, v: Option<&Spanned<f64>>, what: &str, default: f64, max: f64) -> f64 {
        let Some(v) = v else { return default };
        let x = *v.get_ref();
        if !(x.is_finite() && x >= 0.0 && x <= max) {
            self.problem(
                v.span(),
                format!("{what} must be between 0 and {max}, not {x}"),
            );
            return default;
        }
        x
    }

    fn config(&mut self, raw: RawConfig) -> SiteConfig {
        let site = self.site(&raw.site);
        let api = self.api(raw.api.as_ref());
        let exchange = self.exchange(raw.exchange.as_ref(), site.address);
        let spill = self.spill(raw.spill.as_ref());
        let bgp = self.bgp(&raw.bgp, site.address);
        let peers = self.peers(&raw.peers, &site);
        let vips = self.vips(&raw.vips);
        let log = self.log(raw.log.as_ref());
        if !site.dataplane
            && let Some(p) = raw.peers.first()
        {
            self.problem(p.span(), "[[peer]] needs the data plane (spilled connections go through IPVS and IPIP): remove the peers or set site.dataplane = true");
        }
        if vips.is_empty() && self.problems.is_empty() {
            self.problem(
                raw.site.span(),
                "no [[vip]] is configured: a site needs at least one VIP",
            );
        }
        SiteConfig {
            site,
            api,
            exchange,
            spill,
            bgp,
            peers,
            vips,
            log,
        }
    }

    fn name(&mut self, s: &Spanned<String>, what: &str) -> String {
        let n = s.get_ref();
        let ok = !n.is_empty()
            && n.len() <= 63
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !ok {
            self.problem(
                s.span(),
                format!("{what} `{n}` must be 1-63 characters of letters, digits, `-`, `_` or `.`"),
            );
        }
        n.clone()
    }

    fn device(&mut self, s: Option<&Spanned<String>>, what: &str, default: &str) -> String {
        let Some(s) = s else {
            return default.to_string();
        };
        let n = s.get_ref();
        if n.is_empty() || n.len() > 15 || n.contains(['/', ' ', ':']) {
            self.problem(s.span(), format!("{what} `{n}` is not a valid interface name (1-15 characters, no `/`, `:` or space)"));
        }
        n.clone()
    }

    fn site(&mut self, s: &Spanned<RawSite>) -> Site {
        let r = s.get_ref();
        Site {
            name: self.name(&r.name, "site name"),
            address: self
                .ipv4(&r.address, "site address")
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
            tunnel_device: self.device(r.tunnel_device.as_ref(), "tunnel_device", "anycast0"),
            vip_device: self.device(r.vip_device.as_ref(), "vip_device", "lo"),
            shutdown_wait: self.duration(
                r.shutdown_wait.as_ref(),
                "shutdown_wait",
                Duration::from_secs(5),
            ),
            state_dir: match &r.state_dir {
                None => PathBuf::from("/var/lib/anycastd"),
                Some(d) if !d.get_ref().starts_with('/') => {
                    self.problem(
                        d.span(),
                        format!("state_dir `{}` must be an absolute path", d.get_ref()),
                    );
                    PathBuf::from("/var/lib/anycastd")
                }
                Some(d) => PathBuf::from(d.get_ref()),
            },
            dataplane: r.dataplane.as_ref().is_none_or(|d| *d.get_ref()),
        }
    }

    fn api(&mut self, a: Option<&Spanned<RawApi>>) -> Api {
        let default = ApiListen::Tcp(SocketAddr::from(([127, 0, 0, 1], 9180)));
        let Some(l) = a.and_then(|a| a.get_ref().listen.as_ref()) else {
            return Api { listen: default };
        };
        let text = l.get_ref();
        let listen = if let Some(path) = text.strip_prefix("unix:") {
            ApiListen::Unix(PathBuf::from(path))
        } else {
            match text.parse::<SocketAddr>() {
                Ok(addr) if addr.ip().is_loopback() => ApiListen::Tcp(addr),
                Ok(addr) => {
                    self.problem(l.span(), format!("api listen `{addr}` is not a loopback address: the local API has no authentication (use 127.0.0.1:PORT, [::1]:PORT or unix:/path)"));
                    default
                }
                Err(e) => {
                    self.problem(
                        l.span(),
                        format!(
                            "api listen `{text}` is invalid: {e} (use 127.0.0.1:PORT or unix:/path)"
                        ),
                    );
                    default
                }
            }
        };
        Api { listen }
    }

    fn exchange(&mut self, e: Option<&Spanned<RawExchange>>, site: Ipv4Addr) -> Exchange {
        let r = e.map(|e| e.get_ref());
        let listen = match r.and_then(|r| r.listen.as_ref()) {
            None => SocketAddr::from((site, 9181)),
            Some(l) => self
                .parsed(l, "exchange listen", |t| t.parse::<SocketAddr>())
                .unwrap_or(SocketAddr::from((site, 9181))),
        };
        let interval = self.duration(
            r.and_then(|r| r.interval.as_ref()),
            "exchange interval",
            Duration::from_secs(120),
        );
        if let Some(i) = r.and_then(|r| r.interval.as_ref())
            && interval < Duration::from_millis(100)
        {
            self.problem(i.span(), "exchange interval must be at least 100ms");
        }
        let jitter = self.fraction(
            r.and_then(|r| r.jitter.as_ref()),
            "exchange jitter",
            0.1,
            0.5,
        );
        let stale_after_periods = match r.and_then(|r| r.stale_after_periods.as_ref()) {
            None => 3,
            Some(p) if *p.get_ref() == 0 => {
                self.problem(p.span(), "stale_after_periods must be at least 1");
                3
            }
            Some(p) => *p.get_ref(),
        };
        let max_clock_skew = self.duration(
            r.and_then(|r| r.max_clock_skew.as_ref()),
            "max_clock_skew",
            Duration::from_secs(30),
        );
        Exchange {
            listen,
            interval,
            jitter,
            stale_after_periods,
            max_clock_skew,
        }
    }

    fn spill(&mut self, s: Option<&Spanned<RawSpill>>) -> Spill {
        let r = s.map(|s| s.get_ref());
        let get = |f: fn(&RawSpill) -> Option<&Spanned<f64>>| r.and_then(f);
        let spill = Spill {
            enabled: r.and_then(|r| r.enabled).unwrap_or(true),
            start_local_above: self.fraction(
                get(|r| r.start_local_above.as_ref()),
                "start_local_above",
                1.1,
                100.0,
            ),
            stop_local_at_or_below: self.fraction(
                get(|r| r.stop_local_at_or_below.as_ref()),
                "stop_local_at_or_below",
                1.0,
                100.0,
            ),
            remote_below: self.fraction(
                get(|r| r.remote_below.as_ref()),
                "remote_below",
                0.7,
                100.0,
            ),
            stop_remote_above: self.fraction(
                get(|r| r.stop_remote_above.as_ref()),
                "stop_remote_above",
                0.7,
                100.0,
            ),
            max_share: self.fraction(get(|r| r.max_share.as_ref()), "max_share", 0.5, 1.0),
            step: self.fraction(get(|r| r.step.as_ref()), "step", 0.1, 1.0),
        };
        if let Some(s) = s {
            let at = |f: Option<&Spanned<f64>>| f.map_or(s.span(), |v| v.span());
            if spill.stop_local_at_or_below >= spill.start_local_above {
                self.problem(at(get(|r| r.stop_local_at_or_below.as_ref())), format!(
                    "stop_local_at_or_below ({}) must be below start_local_above ({}): without that gap two sites bounce requests between them",
                    spill.stop_local_at_or_below, spill.start_local_above));
            }
            if spill.stop_remote_above < spill.remote_below {
                self.problem(
                    at(get(|r| r.stop_remote_above.as_ref())),
                    format!(
                        "stop_remote_above ({}) must be at least remote_below ({})",
                        spill.stop_remote_above, spill.remote_below
                    ),
                );
            }
            if spill.remote_below >= spill.stop_local_at_or_below {
                self.problem(at(get(|r| r.remote_below.as_ref())), format!(
                    "remote_below ({}) must be below stop_local_at_or_below ({}): a site spilling to a peer must never be a target for that peer",
                    spill.remote_below, spill.stop_local_at_or_below));
            }
            if let Some(st) = r.and_then(|r| r.step.as_ref())
                && *st.get_ref() == 0.0
            {
                self.problem(st.span(), "step must be above 0");
            }
        }
        spill
    }

    fn bgp(&mut self, b: &Spanned<RawBgp>, site: Ipv4Addr) -> Bgp {
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
        if neighbors.is_empty() && self.problems.is_empty() {
            self.problem(
                b.span(),
                "no [[bgp.neighbor]] is configured: the VIP would be announced to nobody",
            );
        }
        Bgp {
            asn,
            router_id,
            listen: r.listen.unwrap_or(false),
            neighbors,
        }
    }

    fn neighbor(&mut self, n: &Spanned<RawNeighbor>) -> Option<Neighbor> {
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
        Some(Neighbor {
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

    fn peers(&mut self, peers: &[Spanned<RawPeer>], site: &Site) -> Vec<PeerSite> {
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
            let url = r.url.get_ref();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.problem(
                    r.url.span(),
                    format!("url `{url}` must start with http:// or https://"),
                );
            }
            let key = match (&r.key, &r.key_file) {
                (Some(k), None) => Some((k.span(), k.get_ref().as_bytes().to_vec())),
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
                            Some((f.span(), bytes))
                        }
                        Err(e) => {
                            self.problem(
                                f.span(),
                                format!("key_file `{}` cannot be read: {e}", path.display()),
                            );
                            None
                        }
                    }
                }
                (Some(k), Some(_)) => {
                    self.problem(k.span(), "give either key or key_file, not both");
                    None
                }
                (None, None) => {
                    self.problem(p.span(), format!("peer `{name}` has no key or key_file: load reports must be authenticated"));
                    None
                }
            };
            let key = match key {
                Some((span, k)) if k.len() < 16 => {
                    self.problem(
                        span,
                        format!(
                            "the key for peer `{name}` is {} bytes; at least 16 are required",
                            k.len()
                        ),
                    );
                    Vec::new()
                }
                Some((_, k)) => k,
                None => Vec::new(),
            };
            out.push(PeerSite {
                name,
                tunnel_endpoint: endpoint.unwrap_or(Ipv4Addr::UNSPECIFIED),
                url: url.clone(),
                key,
            });
        }
        out
    }

    fn vips(&mut self, vips: &[Spanned<RawVip>]) -> Vec<Vip> {
        let mut names = HashSet::new();
        let mut addrs = HashSet::new();
        let mut out = Vec::new();
        for v in vips {
            let r = v.get_ref();
            let name = self.name(&r.name, "vip name");
            if !names.insert(name.clone()) {
                self.problem(r.name.span(), format!("vip `{name}` is configured twice"));
            }
            let prefix = self.parsed(&r.prefix, "prefix", |t| t.parse::<IpNet>());
            if let Some(p) = prefix
                && p != p.trunc()
            {
                self.problem(
                    r.prefix.span(),
                    format!(
                        "prefix `{p}` has host bits set (did you mean {}?)",
                        p.trunc()
                    ),
                );
            }
            let address = self.ip(&r.address, "vip address");
            if let (Some(p), Some(a)) = (prefix, address)
                && !p.contains(&a)
            {
                self.problem(
                    r.address.span(),
                    format!("vip address {a} is not inside prefix {p}"),
                );
            }
            if let Some(a) = address
                && !addrs.insert(a)
            {
                self.problem(
                    r.address.span(),
                    format!("vip address {a} is used by two VIPs"),
                );
            }
            let mut ports = HashSet::new();
            let mut services = Vec::new();
            for s in &r.services {
                if let Some(svc) = self.service(s) {
                    if !ports.insert((svc.protocol, svc.port)) {
                        self.problem(
                            s.get_ref().port.span(),
                            format!(
                                "service {}/{} is configured twice in vip `{name}`",
                                svc.protocol.as_str(),
                                svc.port
                            ),
                        );
                    }
                    services.push(svc);
                }
            }
            if r.services.is_empty() {
                self.problem(v.span(), format!("vip `{name}` has no [[vip.service]]"));
            }
            let servers: u32 = services.iter().map(|s| s.real_servers.len() as u32).sum();
            let min_up = r.min_up.as_ref().map_or(1, |m| *m.get_ref());
            if let Some(m) = &r.min_up {
                if min_up == 0 {
                    self.problem(
                        m.span(),
                        "min_up must be at least 1: a VIP with no server up must be withdrawn",
                    );
                } else if min_up > servers && !services.is_empty() {
                    self.problem(m.span(), format!("min_up {min_up} exceeds the {servers} real servers of vip `{name}`: it could never be announced"));
                }
            }
            out.push(Vip {
                name,
                prefix: prefix.unwrap_or_else(|| IpNet::from(IpAddr::V4(Ipv4Addr::UNSPECIFIED))),
                address: address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                min_up,
                hold_down: self.duration(
                    r.hold_down.as_ref(),
                    "hold_down",
                    Duration::from_secs(10),
                ),
                services,
            });
        }
        out
    }

    fn service(&mut self, s: &Spanned<RawService>) -> Option<Service> {
        let r = s.get_ref();
        let protocol = match r.protocol.get_ref().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            other => {
                self.problem(
                    r.protocol.span(),
                    format!("protocol `{other}` is not `tcp` or `udp`"),
                );
                return None;
            }
        };
        let port = *r.port.get_ref();
        if port == 0 {
            self.problem(r.port.span(), "port 0 is not a service port");
        }
        let scheduler = match &r.scheduler {
            None => "wlc".to_string(),
            Some(sc) if SCHEDULERS.contains(&sc.get_ref().as_str()) => sc.get_ref().clone(),
            Some(sc) => {
                self.problem(
                    sc.span(),
                    format!(
                        "scheduler `{}` is not an IPVS scheduler (one of {})",
                        sc.get_ref(),
                        SCHEDULERS.join(", ")
                    ),
                );
                "wlc".to_string()
            }
        };
        let persistence = r
            .persistence
            .as_ref()
            .map(|p| self.duration(Some(p), "persistence", Duration::ZERO))
            .filter(|d| !d.is_zero());
        if r.real_servers.is_empty() {
            self.problem(
                s.span(),
                format!(
                    "service {}/{port} has no [[vip.service.real_server]]",
                    protocol.as_str()
                ),
            );
        }
        // The service's check is validated once and shared by its real servers.
        let service_check = r.check.as_ref().map(|c| {
            let port_fixed = c.get_ref().port.is_some();
            (self.check(c, port), port_fixed)
        });
        let mut seen = HashSet::new();
        let mut real_servers = Vec::new();
        for rs in &r.real_servers {
            if let Some(server) = self.real_server(rs, port, service_check.as_ref(), protocol) {
                if !seen.insert((server.address, server.port)) {
                    self.problem(
                        rs.get_ref().address.span(),
                        format!(
                            "real server {}:{} is listed twice",
                            server.address, server.port
                        ),
                    );
                }
                real_servers.push(server);
            }
        }
        Some(Service {
            protocol,
            port,
            scheduler,
            persistence,
            real_servers,
        })
    }

    fn real_server(
        &mut self,
        rs: &Spanned<RawRealServer>,
        service_port: u16,
        service_check: Option<&(Option<Check>, bool)>,
        protocol: Protocol,
    ) -> Option<RealServer> {
        let r = rs.get_ref();
        let address = self.ip(&r.address, "real server address")?;
        let port = r.port.as_ref().map_or(service_port, |p| *p.get_ref());
        let method = match r.method.as_ref() {
            None => Method::Dr,
            Some(m) => match m.get_ref().as_str() {
                "dr" => Method::Dr,
                "nat" => Method::Nat,
                "tun" => Method::Tun,
                other => {
                    self.problem(
                        m.span(),
                        format!("method `{other}` is not `dr`, `nat` or `tun`"),
                    );
                    Method::Dr
                }
            },
        };
        if method == Method::Dr
            && let Some(p) = &r.port
            && *p.get_ref() != service_port
        {
            self.problem(
                p.span(),
                format!(
                    "method dr cannot change the port ({service_port} -> {}): use nat",
                    p.get_ref()
                ),
            );
        }
        let weight = r.weight.as_ref().map_or(1, |w| *w.get_ref());
        if let Some(w) = &r.weight
            && *w.get_ref() > 65535
        {
            self.problem(w.span(), "weight must be at most 65535");
        }
        if *r.capacity.get_ref() == 0 {
            self.problem(r.capacity.span(), "capacity must be at least 1 connection");
        }
        if let Some(u) = &r.load_url
            && !u.get_ref().starts_with("http://")
            && !u.get_ref().starts_with("https://")
        {
            self.problem(u.span(), "load_url must start with http:// or https://");
        }
        let check = match (r.check.as_ref(), service_check) {
            (Some(c), _) => self.check(c, port)?,
            (None, Some((check, port_fixed))) => {
                let mut check = check.clone()?;
                if !port_fixed {
                    check.port = port;
                }
                check
            }
            (None, None) if protocol == Protocol::Tcp => default_check(port),
            (None, None) => {
                self.problem(rs.span(), "a UDP real server needs a [check] (http or command): a TCP connect cannot test it");
                return None;
            }
        };
        Some(RealServer {
            address,
            port,
            method,
            weight,
            capacity: *r.capacity.get_ref(),
            load_url: r.load_url.as_ref().map(|u| u.get_ref().clone()),
            check,
        })
    }

    fn check(&mut self, c: &Spanned<RawCheck>, server_port: u16) -> Option<Check> {
        let r = c.get_ref();
        let kind = match r.kind.get_ref().as_str() {
            "tcp" => CheckKind::Tcp,
            "http" => CheckKind::Http {
                path: r
                    .path
                    .as_ref()
                    .map_or("/".to_string(), |p| p.get_ref().clone()),
                expect_status: r.expect_status.as_ref().map_or(200, |s| *s.get_ref()),
                https: r.https.unwrap_or(false),
            },
            "command" => match &r.command {
                Some(cmd) if !cmd.get_ref().is_empty() => CheckKind::Command {
                    argv: cmd.get_ref().clone(),
                },
                _ => {
                    self.problem(
                        c.span(),
                        "a command check needs command = [\"program\", \"arg\", ...]",
                    );
                    return None;
                }
            },
            other => {
                self.problem(
                    r.kind.span(),
                    format!("check type `{other}` is not `tcp`, `http` or `command`"),
                );
                return None;
            }
        };
        let d = default_check(server_port);
        let interval = self.duration(r.interval.as_ref(), "check interval", d.interval);
        let timeout = self.duration(r.timeout.as_ref(), "check timeout", d.timeout);
        if timeout > interval {
            let span = r.timeout.as_ref().map_or(c.span(), |t| t.span());
            self.problem(
                span,
                format!(
                    "check timeout {} exceeds interval {}",
                    duration::show(timeout),
                    duration::show(interval)
                ),
            );
        }
        if interval < Duration::from_millis(10) {
            let span = r.interval.as_ref().map_or(c.span(), |t| t.span());
            self.problem(span, "check interval must be at least 10ms");
        }
        let count = |v: &mut Self, x: Option<&Spanned<u32>>, what: &str, def: u32| match x {
            Some(n) if *n.get_ref() == 0 || *n.get_ref() > 100 => {
                v.problem(
                    n.span(),
                    format!("{what} must be 1-100, not {}", n.get_ref()),
                );
                def
            }
            Some(n) => *n.get_ref(),
            None => def,
        };
        let rise = count(self, r.rise.as_ref(), "rise", d.rise);
        let fall = count(self, r.fall.as_ref(), "fall", d.fall);
        Some(Check {
            kind,
            port: r.port.as_ref().map_or(server_port, |p| *p.get_ref()),
            interval,
            timeout,
            rise,
            fall,
            fast_detect: r.fast_detect.unwrap_or(true),
        })
    }

    fn log(&mut self, l: Option<&Spanned<RawLog>>) -> Log {
        let r = l.map(|l| l.get_ref());
        let format = match r.and_then(|r| r.format.as_ref()) {
            None => LogFormat::Text,
            Some(f) => match f.get_ref().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    self.problem(
                        f.span(),
                        format!("log format `{other}` is not `text` or `json`"),
                    );
                    LogFormat::Text
                }
            },
        };
        let level = match r.and_then(|r| r.level.as_ref()) {
            None => "info".to_string(),
            Some(l) => {
                if !["error", "warn", "info", "debug", "trace"].contains(&l.get_ref().as_str()) {
                    self.problem(
                        l.span(),
                        format!(
                            "log level `{}` is not one of error, warn, info, debug, trace",
                            l.get_ref()
                        ),
                    );
                }
                l.get_ref().clone()
            }
        };
        Log { format, level }
    }
}

fn default_check(port: u16) -> Check {
    Check {
        kind: CheckKind::Tcp,
        port,
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 3,
        fast_detect: true,
    }
}

fn parse_community(s: &str) -> Result<(u16, u16), String> {
    if s == "graceful-shutdown" {
        return Ok((65535, 0));
    }
    let (a, b) = s
        .split_once(':')
        .ok_or("expected ASN:VALUE, e.g. 65000:100")?;
    Ok((
        a.parse()
            .map_err(|_| format!("`{a}` is not a 16-bit number"))?,
        b.parse()
            .map_err(|_| format!("`{b}` is not a 16-bit number"))?,
    ))
}

fn parse_large_community(s: &str) -> Result<(u32, u32, u32), String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [a, b, c] = parts.as_slice() else {
        return Err("expected GLOBAL:LOCAL1:LOCAL2, e.g. 65000:1:2".to_string());
    };
    let n = |x: &str| {
        x.parse::<u32>()
            .map_err(|_| format!("`{x}` is not a 32-bit number"))
    };
    Ok((n(a)?, n(b)?, n(c)?))
}
