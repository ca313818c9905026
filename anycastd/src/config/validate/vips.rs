//! [[vip]], services, real servers and their checks.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::Validator;
use super::{SCHEDULERS, default_check};
use crate::config::raw::*;
use crate::config::*;

impl Validator<'_> {
    pub(super) fn vips(&mut self, vips: &[Spanned<RawVip>]) -> Vec<Vip> {
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
                if let Some(svc) = self.service(s, address.map(|a| a.is_ipv6())) {
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

    /// One service; `ipv6` is its VIP's family when the VIP's address parsed.
    pub(super) fn service(
        &mut self,
        s: &Spanned<RawService>,
        ipv6: Option<bool>,
    ) -> Option<Service> {
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
        let persistence_prefix_v6 = self.persistence_prefix_v6(r, persistence.is_some(), ipv6);
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
                if let Some(v6) = ipv6
                    && server.address.is_ipv6() != v6
                {
                    let (rs_fam, vip_fam) = if v6 {
                        ("IPv4", "IPv6")
                    } else {
                        ("IPv6", "IPv4")
                    };
                    self.problem(
                        rs.get_ref().address.span(),
                        format!(
                            "real server {} is {rs_fam} but its VIP is {vip_fam}: IPVS forwards to real servers of the VIP's family",
                            server.address
                        ),
                    );
                }
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
            persistence_prefix_v6,
            real_servers,
        })
    }

    /// `persistence_prefix_v6`: 1-128, only with `persistence`, only on an IPv6 VIP.
    fn persistence_prefix_v6(
        &mut self,
        r: &RawService,
        persistent: bool,
        ipv6: Option<bool>,
    ) -> u8 {
        let Some(p) = &r.persistence_prefix_v6 else {
            return DEFAULT_PERSISTENCE_PREFIX_V6;
        };
        let len = *p.get_ref();
        if !(1..=128).contains(&len) {
            self.problem(
                p.span(),
                format!("persistence_prefix_v6 must be 1-128, not {len}"),
            );
        } else if !persistent {
            self.problem(
                p.span(),
                "persistence_prefix_v6 without persistence: set persistence = \"300s\" (or drop this)",
            );
        } else if ipv6 == Some(false) {
            self.problem(
                p.span(),
                "persistence_prefix_v6 on an IPv4 VIP: IPv4 persistence holds one client address (/32)",
            );
        }
        len.clamp(1, 128)
    }

    pub(super) fn real_server(
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
        // DR rewrites only the MAC, TUN only wraps the packet: the real server gets the
        // client's destination port as sent. Only NAT rewrites it.
        if method != Method::Nat
            && let Some(p) = &r.port
            && *p.get_ref() != service_port
        {
            let name = if method == Method::Dr { "dr" } else { "tun" };
            self.problem(
                p.span(),
                format!(
                    "method {name} cannot change the port ({service_port} -> {}): the real server receives the packet as the client sent it; use nat, or listen on {service_port}",
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
            (None, None) if protocol == Protocol::Tcp => default_check(CheckKind::Tcp, port),
            (None, None) => {
                self.problem(rs.span(), "a UDP real server needs a [check] (http or command): a TCP connect cannot test it");
                return None;
            }
        };
        self.count_check_rate(&check, r.address.span());
        Some(RealServer {
            address,
            port,
            method,
            weight,
            capacity: *r.capacity.get_ref(),
            load_url: r.load_url.as_ref().map(|u| u.get_ref().clone()),
            check,
            line: self.line(&rs.span()),
        })
    }

    pub(super) fn check(&mut self, c: &Spanned<RawCheck>, server_port: u16) -> Option<Check> {
        let r = c.get_ref();
        let kind = match r.kind.get_ref().as_str() {
            "tcp" => CheckKind::Tcp,
            "icmp" => CheckKind::Icmp,
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
                    format!("check type `{other}` is not `tcp`, `http`, `command` or `icmp`"),
                );
                return None;
            }
        };
        let d = default_check(kind, server_port);
        let interval = self.duration(r.interval.as_ref(), "check interval", d.interval);
        // An unset timeout follows a shorter interval down rather than exceed it.
        let timeout = self.duration(r.timeout.as_ref(), "check timeout", d.timeout.min(interval));
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
        if d.kind == CheckKind::Icmp
            && let Some(true) = r.fast_detect
        {
            self.problem(
                c.span(),
                "fast_detect holds a TCP connection to the server's port: an icmp check has none (leave fast_detect out, or use a tcp check)",
            );
        }
        let full_interval = self.duration(
            r.full_interval.as_ref(),
            "check full_interval",
            d.full_interval,
        );
        if let Some(f) = r.full_interval.as_ref()
            && full_interval < interval
        {
            self.problem(
                f.span(),
                format!(
                    "check full_interval must be at least interval ({})",
                    duration::show(interval)
                ),
            );
        }
        let rise = count(self, r.rise.as_ref(), "rise", d.rise);
        let fall = count(self, r.fall.as_ref(), "fall", d.fall);
        Some(Check {
            port: r.port.as_ref().map_or(server_port, |p| *p.get_ref()),
            interval,
            timeout,
            rise,
            fall,
            fast_detect: r.fast_detect.unwrap_or(d.fast_detect),
            echo: r.echo.unwrap_or(d.echo),
            full_interval: full_interval.max(interval),
            ..d
        })
    }
}

/// The most new TCP connections a second the checks of one site may open in steady
/// state: beyond it they cost the director and the real servers more than the
/// service (decision 0008; benchmark 5: 1000 servers at 5 a second used a third of a
/// core here and more on the servers, and filled the TIME_WAIT table).
pub const MAX_CHECK_CONNECTIONS_PER_SECOND: f64 = 2000.0;

/// New TCP connections a second one server's check opens in steady state: a full
/// check every `full_interval` with `fast_detect` and `echo` (once its host answers
/// echo), every `interval` otherwise; none for `icmp` and `command` checks. Hedged
/// connects and re-probes come on top only when packets are lost.
pub fn connections_per_second(c: &Check) -> f64 {
    let every = match c.kind {
        CheckKind::Tcp | CheckKind::Http { .. } if c.fast_detect && c.echo => c.full_interval,
        CheckKind::Tcp | CheckKind::Http { .. } => c.interval,
        CheckKind::Icmp | CheckKind::Command { .. } => return 0.0,
    };
    1.0 / every.as_secs_f64().max(1e-3)
}

impl Validator<'_> {
    /// Adds a server's check to the site's rate; the server that takes it past
    /// [`MAX_CHECK_CONNECTIONS_PER_SECOND`] is refused with the computed rate.
    fn count_check_rate(&mut self, c: &Check, span: std::ops::Range<usize>) {
        let per = connections_per_second(c);
        self.check_rate += per;
        if self.check_rate > MAX_CHECK_CONNECTIONS_PER_SECOND && !self.rate_refused {
            self.rate_refused = true;
            self.problem(
                span,
                format!(
                    "with this server the checks open {:.0} new TCP connections a second across the site (this one {per:.1}/s), more than {MAX_CHECK_CONNECTIONS_PER_SECOND:.0}: raise interval, or keep fast_detect and echo on so a full check runs every full_interval (decision 0008)",
                    self.check_rate
                ),
            );
        }
    }
}
