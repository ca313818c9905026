//! The pure part of a reconcile: what the kernel has ([`Observed`]) against what it
//! should have ([`Target`]) gives the requests to apply, in a safe order.
//!
//! Ownership (what we may change or remove):
//! - IPVS services: those in the target, plus those in `owned` (the ledger of
//!   services an earlier reconcile created). Any other service is the operator's.
//!   All destinations of an owned service are ours.
//! - Addresses: the VIPs of the target; we only remove addresses carrying our label
//!   (`DEV:ac`, IPv4) or recorded in the ledger as added by us (any family: IPv6
//!   addresses have no labels). An address the operator put there stays.
//! - tc filters: those at our priority on the tunnel devices' ingress (IPIP, ip6ip6).
//! - Links: the tunnel and dummy devices of the target; never deleted (an operator
//!   may route through them), only created and brought up.
//!
//! - IPVS sync daemons: the roles the target wants, plus those in `owned`
//!   ([`crate::sync`]); an operator's daemon of a role we do not want stays.
//!
//! Order: links and sysctls, addresses, services and destinations (new and changed),
//! the fwmark services before the tc filters that feed them, stale filters, sync
//! daemons, then removals of destinations, services and addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::{AddrSpec, Dest, MarkRule, ServiceKey, ServiceSpec, Target};
use crate::request::Request;
use crate::split::{DeviceTc, SplitRule};

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkInfo {
    pub index: u32,
    pub kind: Option<String>,
    pub up: bool,
    /// IPIP local address (0.0.0.0 = any), when kind is ipip.
    pub ipip_local: Option<Ipv4Addr>,
    pub ipip_remote: Option<Ipv4Addr>,
    /// ip6tnl local address (:: = any), when kind is ip6tnl.
    pub ip6_local: Option<Ipv6Addr>,
}

/// An address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedAddr {
    pub device: String,
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub label: Option<String>,
}

/// A tc filter on an ingress we manage (the tunnel's, the split's client devices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedFilter {
    /// tc chain (0 unless the filter was added with `chain N`).
    pub chain: u32,
    pub prio: u16,
    pub handle: u32,
    /// The match and mark when it has exactly the loop guard's shape.
    pub rule: Option<MarkRule>,
    /// The match and action when it has one of the split's shapes.
    pub split: Option<SplitRule>,
}

/// What the kernel holds, as far as the diff cares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Every IPVS service with its destinations.
    pub services: BTreeMap<ServiceKey, ServiceSpec>,
    /// Links by name.
    pub links: BTreeMap<String, LinkInfo>,
    pub addrs: Vec<ObservedAddr>,
    /// Whether the tunnel device has an ingress qdisc.
    pub ingress: bool,
    /// Filters on the tunnel device's ingress (all priorities).
    pub filters: Vec<ObservedFilter>,
    /// Whether the ip6ip6 device has an ingress qdisc.
    pub ingress6: bool,
    /// Filters on the ip6ip6 device's ingress (all priorities).
    pub filters6: Vec<ObservedFilter>,
    /// Current sysctl values (None = the file does not exist yet).
    pub sysctls: BTreeMap<String, Option<String>>,
    /// Ingress and filters (all chains) of the split's client devices.
    pub split_devices: BTreeMap<String, DeviceTc>,
    /// The running IPVS sync daemons.
    pub sync: Vec<crate::sync::SyncDaemon>,
    /// The IPv4 fou listeners (read only when the target wants GUE ports).
    pub fou: Vec<crate::kernel::fou::Listener>,
}

/// The target cannot be reached without touching something that is not ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error(
        "device {name} exists but is a {found} device, not {wanted}; remove or rename it, or pick another name"
    )]
    LinkKind {
        name: String,
        found: String,
        wanted: &'static str,
    },
    #[error(
        "tunnel device {name} exists with local {found}, desired {wanted}; delete it (`ip link del {name}`) or use the existing address"
    )]
    TunnelLocal {
        name: String,
        found: IpAddr,
        wanted: IpAddr,
    },
    #[error(
        "udp port {port} has a fou listener that is not of type gue; remove it (`ip fou del port {port}`) or pick another gue_port"
    )]
    FouListener { port: u16 },
    #[error(
        "client device {name} (where the spill split filters new connections) does not exist; check the name with `ip link`"
    )]
    MissingDevice { name: String },
}

/// What earlier reconciles created: the ledger. Services and addresses not in the
/// target are removed only when they are in here (addresses also when they carry our
/// label).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    pub services: BTreeSet<ServiceKey>,
    pub addrs: BTreeSet<AddrSpec>,
    /// The sync daemon roles we started.
    pub sync: BTreeSet<crate::sync::SyncRole>,
}

impl Owned {
    /// The ledger after `applied` went through for `target`: the target's services,
    /// and the addresses we added now or owned before and still want.
    pub fn after(&self, target: &Target, applied: &[Request]) -> Owned {
        let wanted: BTreeSet<&AddrSpec> = target.addrs.iter().collect();
        let mut addrs: BTreeSet<AddrSpec> = self
            .addrs
            .iter()
            .filter(|a| wanted.contains(a))
            .cloned()
            .collect();
        for r in applied {
            if let Request::NewAddr(a) = r {
                addrs.insert(a.clone());
            }
        }
        Owned {
            services: target.services.keys().copied().collect(),
            addrs,
            sync: target.sync.iter().map(|d| d.role).collect(),
        }
    }

    /// Everything in `self` plus what `requests` will create (claimed before
    /// applying, so a half-failed run orphans nothing).
    pub fn claiming(&self, target: &Target, requests: &[Request]) -> Owned {
        let mut o = self.clone();
        o.services.extend(target.services.keys().copied());
        o.sync.extend(target.sync.iter().map(|d| d.role));
        for r in requests {
            if let Request::NewAddr(a) = r {
                o.addrs.insert(a.clone());
            }
        }
        o
    }
}

/// Our label for addresses on `dev`.
pub fn label_for(dev: &str) -> String {
    format!("{dev}:ac")
}

/// Computes the requests that turn `obs` into `target`.
pub fn diff(target: &Target, obs: &Observed, owned: &Owned) -> Result<Vec<Request>, Conflict> {
    let mut out = Vec::new();

    // Links.
    let mut wanted_links: Vec<(&str, &'static str)> = target
        .dummies
        .iter()
        .map(|d| (d.as_str(), "dummy"))
        .collect();
    if let Some(t) = &target.tunnel {
        wanted_links.push((t.name.as_str(), "ipip"));
    }
    if let Some(t) = &target.tunnel6 {
        wanted_links.push((t.name.as_str(), "ip6tnl"));
    }
    for (name, kind) in wanted_links {
        match obs.links.get(name) {
            None => {
                out.push(match (kind, &target.tunnel, &target.tunnel6) {
                    ("ipip", Some(t), _) => Request::NewIpip {
                        name: name.to_string(),
                        local: t.local,
                    },
                    ("ip6tnl", _, Some(t)) => Request::NewIp6tnl {
                        name: name.to_string(),
                        local: t.local,
                    },
                    _ => Request::NewDummy(name.to_string()),
                });
                out.push(Request::LinkUp(name.to_string()));
            }
            Some(l) => {
                let found = l.kind.clone().unwrap_or_else(|| "plain".into());
                if found != kind {
                    return Err(Conflict::LinkKind {
                        name: name.to_string(),
                        found,
                        wanted: kind,
                    });
                }
                if kind == "ipip"
                    && let Some(t) = &target.tunnel
                {
                    let local = l.ipip_local.unwrap_or(Ipv4Addr::UNSPECIFIED);
                    // tunl0 (local any) is acceptable as a receive device only when asked for.
                    if local != t.local {
                        return Err(Conflict::TunnelLocal {
                            name: name.to_string(),
                            found: local.into(),
                            wanted: t.local.into(),
                        });
                    }
                }
                if kind == "ip6tnl"
                    && let Some(t) = &target.tunnel6
                {
                    let local = l.ip6_local.unwrap_or(Ipv6Addr::UNSPECIFIED);
                    if local != t.local {
                        return Err(Conflict::TunnelLocal {
                            name: name.to_string(),
                            found: local.into(),
                            wanted: t.local.into(),
                        });
                    }
                }
                if !l.up {
                    out.push(Request::LinkUp(name.to_string()));
                }
            }
        }
    }
    for (dev, link) in &obs.links {
        if dev == "lo" && !link.up && target.addrs.iter().any(|a| a.device == "lo") {
            out.push(Request::LinkUp("lo".into()));
        }
    }

    // GUE listeners (decapsulating into the IPIP device).
    for &port in &target.gue_ports {
        match obs.fou.iter().find(|l| l.port == port) {
            None => out.push(Request::NewGueListener(port)),
            Some(l) if l.encap != crate::kernel::fou::ENCAP_GUE => {
                return Err(Conflict::FouListener { port });
            }
            Some(_) => {}
        }
    }

    // Sysctls.
    for (key, value) in &target.sysctls {
        let cur = obs.sysctls.get(key).cloned().flatten();
        if cur.as_deref().map(str::trim) != Some(value.as_str()) {
            out.push(Request::Sysctl {
                key: key.clone(),
                value: value.clone(),
            });
        }
    }

    // Addresses to add.
    for a in &target.addrs {
        let present = obs
            .addrs
            .iter()
            .any(|o| o.device == a.device && o.addr == a.addr && o.prefix_len == a.prefix_len);
        if !present {
            out.push(Request::NewAddr(a.clone()));
        }
    }

    // Services and destinations: additions and changes.
    let mut removals = Vec::new();
    for (key, want) in &target.services {
        match obs.services.get(key) {
            None => {
                out.push(Request::NewService(*key, want.config.clone()));
                for d in want.dests.values() {
                    out.push(Request::NewDest(*key, *d));
                }
            }
            Some(have) => {
                if have.config != want.config {
                    out.push(Request::SetService(*key, want.config.clone()));
                }
                for (dk, d) in &want.dests {
                    match have.dests.get(dk) {
                        None => out.push(Request::NewDest(*key, *d)),
                        Some(h) if !same_dest(h, d) => out.push(Request::SetDest(*key, *d)),
                        Some(_) => {}
                    }
                }
                for dk in have.dests.keys() {
                    if !want.dests.contains_key(dk) {
                        removals.push(Request::DelDest(*key, dk.0, dk.1));
                    }
                }
            }
        }
    }

    // tc: ingress qdisc and our mark filters, IPv4 rules on the IPIP device, IPv6
    // rules on the ip6ip6 device.
    if let Some(t) = &target.tunnel {
        let tc = (obs.ingress, &obs.filters[..]);
        mark_filters(target, &t.name, false, tc, &mut out);
    }
    if let Some(t) = &target.tunnel6 {
        let tc = (obs.ingress6, &obs.filters6[..]);
        mark_filters(target, &t.name, true, tc, &mut out);
    }

    if let Some(t) = &target.split {
        crate::split::diff(t, target.filter_prio, obs, &mut out)?;
    }
    out.extend(crate::sync::diff(&target.sync, &obs.sync, &owned.sync));

    out.extend(removals);
    for key in obs.services.keys() {
        if !target.services.contains_key(key) && owned.services.contains(key) {
            out.push(Request::DelService(*key));
        }
    }
    let wanted: BTreeSet<&AddrSpec> = target.addrs.iter().collect();
    for o in &obs.addrs {
        let spec = AddrSpec {
            device: o.device.clone(),
            addr: o.addr,
            prefix_len: o.prefix_len,
        };
        let labelled = o.label.as_deref() == Some(label_for(&o.device).as_str());
        if (labelled || owned.addrs.contains(&spec)) && !wanted.contains(&spec) {
            out.push(Request::DelAddr(spec));
        }
    }
    Ok(out)
}

/// The loop guard's filters of one family on `device`: the ingress qdisc, the
/// missing rules, then the stale filters at our priority.
fn mark_filters(
    target: &Target,
    device: &str,
    ipv6: bool,
    (ingress, filters): (bool, &[ObservedFilter]),
    out: &mut Vec<Request>,
) {
    let marks: Vec<&MarkRule> = target
        .marks
        .iter()
        .filter(|r| r.dst.is_ipv6() == ipv6)
        .collect();
    if !marks.is_empty() && !ingress {
        out.push(Request::NewIngress(device.to_string()));
    }
    let mut kept: BTreeSet<MarkRule> = BTreeSet::new();
    let mut stale = Vec::new();
    for f in filters
        .iter()
        .filter(|f| f.chain == 0 && f.prio == target.filter_prio)
    {
        match f.rule {
            Some(r) if marks.contains(&&r) && kept.insert(r) => {}
            _ => stale.push(f.handle),
        }
    }
    for r in marks {
        if !kept.contains(r) {
            out.push(Request::NewMarkFilter {
                device: device.to_string(),
                prio: target.filter_prio,
                rule: *r,
            });
        }
    }
    for handle in stale {
        out.push(Request::DelFilter {
            device: device.to_string(),
            prio: target.filter_prio,
            handle,
        });
    }
}

fn same_dest(have: &Dest, want: &Dest) -> bool {
    have.forward == want.forward
        && have.weight == want.weight
        && have.upper == want.upper
        && have.lower == want.lower
        && have.encap == want.encap
}
