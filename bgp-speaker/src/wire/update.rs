//! UPDATE messages: our routes to bytes, and received UPDATEs to a verdict.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use ipnet::IpNet;
use rustbgpd_wire::attribute::{
    AsPath, AsPathSegment, LargeCommunity, MpReachNlri, MpUnreachNlri, Origin,
};
use rustbgpd_wire::{
    Afi, ErrorDisposition, Ipv4NlriEntry, Ipv4Prefix, Ipv4UnicastMode, Ipv6Prefix, Message,
    NlriEntry, NotificationCode, NotificationMessage, PathAttribute, Prefix, Safi, UpdateMessage,
    validate::validate_update_attributes,
};

use super::frame::encode;
use crate::config::Route;

/// What the encoder needs to know about the session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodeCtx {
    pub(crate) local_asn: u32,
    pub(crate) ibgp: bool,
    pub(crate) four_octet_as: bool,
    /// IPv4 next hop when the route names none (configured or next-hop-self).
    pub(crate) next_hop_v4: Option<Ipv4Addr>,
    /// IPv6 next hop when the route names none.
    pub(crate) next_hop_v6: Option<Ipv6Addr>,
    pub(crate) max_len: u16,
}

fn v4_entry(p: ipnet::Ipv4Net) -> Ipv4NlriEntry {
    Ipv4NlriEntry {
        path_id: 0,
        prefix: Ipv4Prefix::new(p.network(), p.prefix_len()),
    }
}

fn v6_entry(p: ipnet::Ipv6Net) -> NlriEntry {
    NlriEntry {
        path_id: 0,
        prefix: Prefix::V6(Ipv6Prefix::new(p.network(), p.prefix_len())),
    }
}

/// MP_REACH_NLRI for IPv6 unicast: the wire type has no `Default`, so the empty
/// vectors of the other families live here once.
fn mp_reach_v6(next_hop: Ipv6Addr, announced: Vec<NlriEntry>) -> PathAttribute {
    PathAttribute::MpReachNlri(Box::new(MpReachNlri {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        next_hop: IpAddr::V6(next_hop),
        link_local_next_hop: None,
        announced,
        flowspec_announced: Vec::new(),
        evpn_announced: Vec::new(),
        bgpls_announced: Vec::new(),
        vpn_announced: Vec::new(),
        labeled_announced: Vec::new(),
        rtc_announced: Vec::new(),
    }))
}

fn mp_unreach_v6(withdrawn: Vec<NlriEntry>) -> PathAttribute {
    PathAttribute::MpUnreachNlri(Box::new(MpUnreachNlri {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        withdrawn,
        flowspec_withdrawn: Vec::new(),
        evpn_withdrawn: Vec::new(),
        bgpls_withdrawn: Vec::new(),
        vpn_withdrawn: Vec::new(),
        labeled_withdrawn: Vec::new(),
        rtc_withdrawn: Vec::new(),
    }))
}

fn finish(
    update: Result<UpdateMessage, rustbgpd_wire::EncodeError>,
    max_len: u16,
) -> Result<Bytes, &'static str> {
    let update = update.map_err(|_| "an attribute cannot be encoded")?;
    encode(&Message::Update(update), max_len).ok_or("the UPDATE does not fit the message size")
}

/// One UPDATE announcing `route` (RFC 4271 §5 attributes; IPv6 via MP_REACH, RFC 4760).
pub(crate) fn encode_announce(route: &Route, ctx: &EncodeCtx) -> Result<Bytes, &'static str> {
    let mut attrs = vec![PathAttribute::Origin(Origin::Igp)];
    // RFC 4271 §5.1.2: eBGP prepends our AS; iBGP originates an empty AS_PATH.
    let copies = usize::from(route.as_path_prepend) + usize::from(!ctx.ibgp);
    let segments = if copies == 0 {
        Vec::new()
    } else {
        vec![AsPathSegment::AsSequence(vec![ctx.local_asn; copies])]
    };
    attrs.push(PathAttribute::AsPath(AsPath { segments }));
    let ipv4 = match route.prefix {
        IpNet::V4(_) => {
            let nh = match route.next_hop {
                Some(IpAddr::V4(a)) => a,
                Some(IpAddr::V6(_)) => return Err("an IPv4 prefix needs an IPv4 next hop"),
                None => ctx.next_hop_v4.ok_or("no IPv4 next hop for this session")?,
            };
            attrs.push(PathAttribute::NextHop(nh));
            true
        }
        IpNet::V6(p) => {
            let nh = match route.next_hop {
                Some(IpAddr::V6(a)) => a,
                Some(IpAddr::V4(_)) => return Err("an IPv6 prefix needs an IPv6 next hop"),
                None => ctx.next_hop_v6.ok_or("no IPv6 next hop for this session")?,
            };
            attrs.push(mp_reach_v6(nh, vec![v6_entry(p)]));
            false
        }
    };
    if let Some(med) = route.med {
        attrs.push(PathAttribute::Med(med));
    }
    if ctx.ibgp {
        attrs.push(PathAttribute::LocalPref(route.local_pref.unwrap_or(100)));
    }
    let communities = route.wire_communities();
    if !communities.is_empty() {
        attrs.push(PathAttribute::Communities(communities));
    }
    if !route.large_communities.is_empty() {
        attrs.push(PathAttribute::LargeCommunities(
            route
                .large_communities
                .iter()
                .map(|&(g, a, b)| LargeCommunity::new(g, a, b))
                .collect(),
        ));
    }
    let nlri: Vec<Ipv4NlriEntry> = match route.prefix {
        IpNet::V4(p) if ipv4 => vec![v4_entry(p)],
        _ => Vec::new(),
    };
    let update = UpdateMessage::try_build(
        &nlri,
        &[],
        &attrs,
        ctx.four_octet_as,
        false,
        Ipv4UnicastMode::Body,
    );
    finish(update, ctx.max_len)
}

/// UPDATEs withdrawing `prefixes`: IPv4 in the withdrawn-routes field, IPv6 in
/// MP_UNREACH_NLRI (RFC 4760 §4). Empty families produce no message.
pub(crate) fn encode_withdraw(
    prefixes: &[IpNet],
    ctx: &EncodeCtx,
) -> Result<Vec<Bytes>, &'static str> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for p in prefixes {
        match p {
            IpNet::V4(p) => v4.push(v4_entry(*p)),
            IpNet::V6(p) => v6.push(v6_entry(*p)),
        }
    }
    let mut out = Vec::new();
    if !v4.is_empty() {
        let u = UpdateMessage::try_build(
            &[],
            &v4,
            &[],
            ctx.four_octet_as,
            false,
            Ipv4UnicastMode::Body,
        );
        out.push(finish(u, ctx.max_len)?);
    }
    if !v6.is_empty() {
        let attrs = [mp_unreach_v6(v6)];
        let u = UpdateMessage::try_build(
            &[],
            &[],
            &attrs,
            ctx.four_octet_as,
            false,
            Ipv4UnicastMode::Body,
        );
        out.push(finish(u, ctx.max_len)?);
    }
    Ok(out)
}

/// RFC 4724 §2 End-of-RIB marker: an empty UPDATE for IPv4 unicast, an empty
/// MP_UNREACH_NLRI for IPv6 unicast. Sent after the initial announcements (the RFC
/// recommends it for convergence even without graceful restart).
pub(crate) fn encode_end_of_rib(ipv6: bool, ctx: &EncodeCtx) -> Result<Bytes, &'static str> {
    let attrs = if ipv6 {
        vec![mp_unreach_v6(Vec::new())]
    } else {
        Vec::new()
    };
    let u = UpdateMessage::try_build(
        &[],
        &[],
        &attrs,
        ctx.four_octet_as,
        false,
        Ipv4UnicastMode::Body,
    );
    finish(u, ctx.max_len)
}

/// What a received UPDATE means for a stub speaker that keeps no routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UpdateVerdict {
    /// Usable: these prefixes are now announced (count them) or withdrawn.
    Routes {
        announced: Vec<IpNet>,
        withdrawn: Vec<IpNet>,
        /// RFC 7606 §2 attribute-discard: malformed attributes dropped.
        discarded: usize,
        /// RFC 7606 §2 treat-as-withdraw applied (announced moved to withdrawn).
        treat_as_withdraw: bool,
        /// Our own AS is in the AS_PATH (RFC 4271 §9.1.2 loop detection; FRR echoes
        /// our routes back): the announced prefixes are unusable, moved to withdrawn.
        looped: bool,
    },
    /// RFC 7606 leaves only a session reset: send this NOTIFICATION.
    Reset(NotificationMessage, String),
}

fn to_net(p: &Prefix) -> Option<IpNet> {
    match p {
        Prefix::V4(p) => ipnet::Ipv4Net::new(p.addr, p.len).ok().map(IpNet::V4),
        Prefix::V6(p) => ipnet::Ipv6Net::new(p.addr, p.len).ok().map(IpNet::V6),
    }
}

fn reset(subcode: u8, data: Vec<u8>, why: String) -> UpdateVerdict {
    UpdateVerdict::Reset(
        NotificationMessage::new(NotificationCode::UpdateMessage, subcode, Bytes::from(data)),
        why,
    )
}

/// RFC 7606 revised error handling of one received UPDATE, plus loop detection
/// against `local_asn`.
pub(crate) fn classify_update(
    msg: &UpdateMessage,
    four_octet_as: bool,
    ibgp: bool,
    local_asn: u32,
) -> UpdateVerdict {
    let parsed = match msg.parse_revised(four_octet_as, ibgp, false, &[]) {
        Ok(p) => p,
        Err(e) => {
            let (code, subcode, data) = e.to_notification();
            return UpdateVerdict::Reset(
                NotificationMessage::new(code, subcode, data),
                e.to_string(),
            );
        }
    };
    let mut treat_as_withdraw = false;
    let mut discarded = 0;
    for m in &parsed.malformed {
        match m.disposition {
            ErrorDisposition::AttributeDiscard => discarded += 1,
            ErrorDisposition::TreatAsWithdraw => treat_as_withdraw = true,
            ErrorDisposition::SessionReset => {
                let (code, subcode, data) = m.error.to_notification();
                return UpdateVerdict::Reset(
                    NotificationMessage::new(code, subcode, data),
                    m.error.to_string(),
                );
            }
        }
    }
    let u = &parsed.update;
    let mut announced: Vec<IpNet> = u
        .announced
        .iter()
        .filter_map(|e| to_net(&Prefix::V4(e.prefix)))
        .collect();
    let mut withdrawn: Vec<IpNet> = u
        .withdrawn
        .iter()
        .filter_map(|e| to_net(&Prefix::V4(e.prefix)))
        .collect();
    let has_body_nlri = !announced.is_empty();
    for a in &u.attributes {
        match a {
            PathAttribute::MpReachNlri(r) => {
                announced.extend(r.announced.iter().filter_map(|e| to_net(&e.prefix)))
            }
            PathAttribute::MpUnreachNlri(r) => {
                withdrawn.extend(r.withdrawn.iter().filter_map(|e| to_net(&e.prefix)))
            }
            _ => {}
        }
    }
    if !treat_as_withdraw
        && let Err(e) =
            validate_update_attributes(&u.attributes, !announced.is_empty(), has_body_nlri, !ibgp)
    {
        match e.disposition {
            ErrorDisposition::AttributeDiscard => discarded += 1,
            ErrorDisposition::TreatAsWithdraw => treat_as_withdraw = true,
            ErrorDisposition::SessionReset => {
                return reset(
                    e.subcode,
                    e.data,
                    format!("UPDATE attribute error subcode {}", e.subcode),
                );
            }
        }
    }
    let looped = u.attributes.iter().any(|a| match a {
        PathAttribute::AsPath(p) => p.segments.iter().any(|s| match s {
            AsPathSegment::AsSequence(v) | AsPathSegment::AsSet(v) => v.contains(&local_asn),
        }),
        _ => false,
    });
    if treat_as_withdraw || looped {
        withdrawn.append(&mut announced);
    }
    UpdateVerdict::Routes {
        announced,
        withdrawn,
        discarded,
        treat_as_withdraw,
        looped,
    }
}
