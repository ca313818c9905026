//! The split checked and flattened into kernel objects, and the diff of its filters
//! against what the client devices hold.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// Checks `split` against the services (`classes`: the TCP and UDP services of the
/// VIPs it carries) and flattens it; the fwmark services (one per family carried) go
/// into `services`.
pub fn compile(
    split: &Split,
    classes: BTreeSet<SplitClass>,
    tunnel: Option<&str>,
    services: &mut BTreeMap<ServiceKey, ServiceSpec>,
) -> Result<SplitTarget, ConfigError> {
    if split.mark == 0 {
        return Err(ConfigError::new("split mark 0 is no mark".to_string()));
    }
    if split.share > SHARE_UNITS {
        return Err(ConfigError::new(format!(
            "split share {} above {SHARE_UNITS}",
            split.share
        )));
    }
    let mut seen = BTreeSet::new();
    for d in &split.devices {
        crate::model::check_ifname(d)?;
        if Some(d.as_str()) == tunnel {
            return Err(ConfigError::new(format!(
                "split device {d} is the tunnel device: spilled connections would be split again"
            )));
        }
        if !seen.insert(d) {
            return Err(ConfigError::new(format!("split device {d} listed twice")));
        }
    }
    for (key, peers) in split.families() {
        if peers.is_empty() && key.is_ipv6() {
            continue;
        }
        if let Some(p) = peers.iter().find(|p| p.addr.is_ipv6() != key.is_ipv6()) {
            return Err(ConfigError::new(format!(
                "{key}: peer {} is not of the service's family: IPv4 peers go over IPIP, IPv6 ones over ip6ip6",
                p.addr
            )));
        }
        let dests = Split::dests(peers);
        if dests.len() != peers.len() {
            return Err(ConfigError::new(format!("{key}: a peer listed twice")));
        }
        let spec = ServiceSpec {
            key,
            config: ServiceConfig {
                scheduler: SPLIT_SCHEDULER.into(),
                ..ServiceConfig::default()
            },
            dests,
        };
        if services.insert(key, spec).is_some() {
            return Err(ConfigError::new(format!(
                "split mark {} is also a loop-guard mark",
                split.mark
            )));
        }
    }
    if split.carries_ipv6() && split.peers.len() != split.peers6.len() {
        return Err(ConfigError::new(format!(
            "split: {} IPv4 peers but {} IPv6 ones: the families share one set of weights",
            split.peers.len(),
            split.peers6.len()
        )));
    }
    Ok(SplitTarget {
        devices: split.devices.clone(),
        classes,
        blocks: blocks(split.share),
        mark: split.mark,
        ipv6: split.carries_ipv6(),
    })
}

/// The requests that bring the client devices' filters to `t`. Filters in chain 0 at
/// other priorities than ours (`prio` for IPv4 classes, the next for IPv6 ones), and
/// other chains, are someone else's.
pub fn diff(
    t: &SplitTarget,
    prio: u16,
    obs: &Observed,
    out: &mut Vec<Request>,
) -> Result<(), Conflict> {
    let prio6 = prio.saturating_add(1);
    for dev in &t.devices {
        if !obs.links.contains_key(dev) {
            return Err(Conflict::MissingDevice { name: dev.clone() });
        }
        let have = obs.split_devices.get(dev).cloned().unwrap_or_default();
        if !have.ingress {
            out.push(Request::NewIngress(dev.clone()));
        }
        let mut kept = BTreeSet::new();
        let mut stale = Vec::new();
        let mut shares = Vec::new();
        for f in &have.filters {
            match (f.chain, f.split) {
                (0, Some(SplitRule::Class(c, SPLIT_CHAIN)))
                    if f.prio == class_prio(prio, c.dst)
                        && t.classes.contains(&c)
                        && kept.insert(c) => {}
                (0, _) if f.prio == prio || f.prio == prio6 => stale.push((f.prio, f.handle)),
                (SPLIT_CHAIN, Some(SplitRule::Share(d, b, m)))
                    if m == t.mark && f.prio == d.prio() =>
                {
                    shares.push(Some((d, b)))
                }
                (SPLIT_CHAIN, _) => shares.push(None),
                _ => {}
            }
        }
        // The share chain first (empty of stale blocks before traffic is sent to it).
        let mut want: Vec<Option<(Draw, SeqBlock)>> =
            share_rules(&t.blocks, t.ipv6).map(Some).collect();
        want.sort();
        shares.sort();
        if want != shares {
            out.push(Request::FlushChain {
                device: dev.clone(),
                chain: SPLIT_CHAIN,
            });
            for (draw, block) in share_rules(&t.blocks, t.ipv6) {
                out.push(Request::NewShareFilter {
                    device: dev.clone(),
                    draw,
                    block,
                    mark: t.mark,
                });
            }
        }
        for c in &t.classes {
            if !kept.contains(c) {
                out.push(Request::NewClassFilter {
                    device: dev.clone(),
                    prio: class_prio(prio, c.dst),
                    class: *c,
                });
            }
        }
        for (prio, handle) in stale {
            out.push(Request::DelFilter {
                device: dev.clone(),
                prio,
                handle,
            });
        }
    }
    Ok(())
}
