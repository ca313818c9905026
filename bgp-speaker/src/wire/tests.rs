//! Codec vectors. The received ones were captured on the wire from FRR 8.4.4,
//! BIRD 2.0.12 and GoBGP 3.10.0 (a raw TCP client in a namespace recorded what they sent); the
//! sent ones are spelled out byte by byte from RFC 4271 §4.3 / RFC 4760.

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;

use super::*;
use crate::config::Route;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// FRR 8.4.4's OPEN: AS 65001, hold 180, id 10.200.0.2, MP v4/v6, RR, ENH, AS4, ...
pub(crate) const FRR_OPEN: &str = "ffffffffffffffffffffffffffffffff00710104fde900b40ac800025402060104000100010206010400020001020280000202020002024600020641040000fde902020600020a450800010101000201010206490402766d0002044002c0780210470e0001018000000000020180000000";
/// FRR: UPDATE 10.201.0.0/24, ORIGIN IGP, AS_PATH 65001, NEXT_HOP 10.200.0.2, MED 0.
const FRR_UPDATE_V4: &str = "ffffffffffffffffffffffffffffffff0037020000001c400101005002000602010000fde94003040ac8000280040400000000180ac900";
/// FRR: UPDATE MP_REACH IPv6 2001:db8:201::/48 with next hop ::ffff:10.200.0.2.
const FRR_UPDATE_V6: &str = "ffffffffffffffffffffffffffffffff004c0200000035900e001c0002011000000000000000000000ffff0ac80002003020010db80201400101005002000602010000fde980040400000000";
/// GoBGP 3.10: UPDATE 10.202.0.0/24 with MED 7 and community 65001:100.
const GOBGP_UPDATE: &str = "ffffffffffffffffffffffffffffffff003d02000000224001010040020602010000fde94003040ac8000280040400000007c00804fde90064180aca00";
/// GoBGP 3.10's OPEN: hold 90, id 10.200.0.2, AS4 65001, MP IPv4 unicast.
const GOBGP_OPEN: &str = "ffffffffffffffffffffffffffffffff003b0104fde9005a0ac800021e021c0200490402766d0001040001000141040000fde90506000100010002";

/// BIRD 2.0.12's OPEN: hold 240, id 10.200.0.2, MP v4/v6, RR, GR, AS4 65001, ...
const BIRD_OPEN: &str = "ffffffffffffffffffffffffffffffff003b0104fde900f00ac800021e021c01040001000101040002000102004002007841040000fde946004700";
/// BIRD: UPDATE 10.203.0.0/24, ORIGIN IGP, AS_PATH 65001, NEXT_HOP 10.200.0.2.
const BIRD_UPDATE_V4: &str = "ffffffffffffffffffffffffffffffff002f02000000144001010040020602010000fde94003040ac80002180acb00";
/// BIRD: MP_REACH IPv6 2001:db8:203::/48, next hop fd00:200::2.
const BIRD_UPDATE_V6: &str = "ffffffffffffffffffffffffffffffff0044020000002d900e001c00020110fd000200000000000000000000000002003020010db802034001010040020602010000fde9";
/// BIRD: End-of-RIB for IPv4 (empty UPDATE) and IPv6 (empty MP_UNREACH_NLRI).
const BIRD_EOR_V4: &str = "ffffffffffffffffffffffffffffffff00170200000000";
const BIRD_EOR_V6: &str = "ffffffffffffffffffffffffffffffff001d0200000006800f03000201";

fn decode(h: &str, max: u16) -> Result<Option<Message>, rustbgpd_wire::DecodeError> {
    let mut b = BytesMut::from(&hex(h)[..]);
    next_frame(&mut b, max)
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ctx(ibgp: bool) -> EncodeCtx {
    EncodeCtx {
        local_asn: 65005,
        ibgp,
        four_octet_as: true,
        next_hop_v4: Some("10.200.0.1".parse().unwrap()),
        next_hop_v6: Some("fd00:200::1".parse().unwrap()),
        max_len: STANDARD_MAX_LEN,
    }
}

#[test]
fn frr_bird_and_gobgp_opens_decode() {
    for (h, hold) in [(FRR_OPEN, 180), (GOBGP_OPEN, 90), (BIRD_OPEN, 240)] {
        let Some(Message::Open(o)) = decode(h, STANDARD_MAX_LEN).unwrap() else {
            panic!("not an OPEN")
        };
        assert_eq!((o.version, o.my_as, o.hold_time), (4, 65001, hold));
        assert_eq!(o.bgp_identifier.to_string(), "10.200.0.2");
        assert!(
            o.capabilities
                .iter()
                .any(|c| matches!(c, rustbgpd_wire::Capability::FourOctetAs { asn: 65001 }))
        );
    }
}

#[test]
fn frr_bird_and_gobgp_updates_classify() {
    let cases = [
        (FRR_UPDATE_V4, "10.201.0.0/24"),
        (FRR_UPDATE_V6, "2001:db8:201::/48"),
        (GOBGP_UPDATE, "10.202.0.0/24"),
        (BIRD_UPDATE_V4, "10.203.0.0/24"),
        (BIRD_UPDATE_V6, "2001:db8:203::/48"),
    ];
    for (h, prefix) in cases {
        let Some(Message::Update(u)) = decode(h, STANDARD_MAX_LEN).unwrap() else {
            panic!("not an UPDATE")
        };
        assert_eq!(
            classify_update(&u, true, false, 65005),
            UpdateVerdict::Routes {
                announced: vec![net(prefix)],
                withdrawn: vec![],
                discarded: 0,
                treat_as_withdraw: false,
                looped: false
            },
            "{prefix}"
        );
    }
}

#[test]
fn frame_waits_for_the_whole_message() {
    let full = hex(FRR_UPDATE_V4);
    let mut b = BytesMut::from(&full[..30]);
    assert_eq!(next_frame(&mut b, STANDARD_MAX_LEN), Ok(None));
    b.extend_from_slice(&full[30..]);
    b.extend_from_slice(&encode_keepalive());
    assert!(matches!(
        next_frame(&mut b, STANDARD_MAX_LEN),
        Ok(Some(Message::Update(_)))
    ));
    assert_eq!(
        next_frame(&mut b, STANDARD_MAX_LEN),
        Ok(Some(Message::Keepalive))
    );
    assert!(b.is_empty());
}

const HDR: &str = "ffffffffffffffffffffffffffffffff";

#[test]
fn ipv4_announce_bytes() {
    let b = encode_announce(&Route::new(net("10.101.4.0/24")), &ctx(false)).unwrap();
    // ORIGIN IGP | AS_PATH AS_SEQUENCE [65005] | NEXT_HOP 10.200.0.1 | NLRI 10.101.4.0/24
    let want = format!("{HDR}002f02000000144001010040020602010000fded4003040ac80001180a6504");
    assert_eq!(b, Bytes::from(hex(&want)));
}

#[test]
fn ipv6_announce_uses_mp_reach_and_round_trips() {
    let mut r = Route::new(net("2001:db8:101::/48"));
    r.as_path_prepend = 2;
    r.med = Some(10);
    r.graceful_shutdown = true;
    r.large_communities = vec![(65005, 1, 2)];
    let b = encode_announce(&r, &ctx(false)).unwrap();
    let mut buf = BytesMut::from(&b[..]);
    let Ok(Some(Message::Update(u))) = next_frame(&mut buf, STANDARD_MAX_LEN) else {
        panic!()
    };
    let p = u.parse_revised(true, false, false, &[]).unwrap();
    assert!(p.malformed.is_empty());
    let a = &p.update.attributes;
    use rustbgpd_wire::attribute::{AsPath, AsPathSegment};
    assert!(a.contains(&rustbgpd_wire::PathAttribute::AsPath(AsPath {
        segments: vec![AsPathSegment::AsSequence(vec![65005; 3])]
    })));
    assert!(a.contains(&rustbgpd_wire::PathAttribute::Med(10)));
    assert!(a.contains(&rustbgpd_wire::PathAttribute::Communities(vec![
        0xFFFF_0000
    ])));
    assert!(
        a.iter()
            .any(|x| matches!(x, rustbgpd_wire::PathAttribute::MpReachNlri(m)
        if m.next_hop.to_string() == "fd00:200::1" && m.announced.len() == 1))
    );
    assert!(
        a.iter().any(
            |x| matches!(x, rustbgpd_wire::PathAttribute::LargeCommunities(l) if l.len() == 1)
        )
    );
    assert_eq!(
        classify_update(&u, true, false, 65001),
        UpdateVerdict::Routes {
            announced: vec![net("2001:db8:101::/48")],
            withdrawn: vec![],
            discarded: 0,
            treat_as_withdraw: false,
            looped: false
        }
    );
}

#[test]
fn ibgp_announce_has_local_pref_and_empty_as_path() {
    let b = encode_announce(&Route::new(net("10.101.4.0/24")), &ctx(true)).unwrap();
    // ORIGIN | AS_PATH (empty) | NEXT_HOP | LOCAL_PREF 100 | NLRI
    let want = format!("{HDR}003002000000154001010040020040030 40ac800014005040000006418 0a6504")
        .replace(' ', "");
    assert_eq!(b, Bytes::from(hex(&want)));
}

#[test]
fn withdraw_bytes() {
    let w = encode_withdraw(
        &[net("10.101.4.0/24"), net("2001:db8:101::/48")],
        &ctx(false),
    )
    .unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(
        w[0],
        Bytes::from(hex(&format!("{HDR}001b020004180a65040000")))
    );
    // MP_UNREACH_NLRI (optional, 0x80; type 15): AFI 2, SAFI 1, /48 2001:db8:101
    assert_eq!(
        w[1],
        Bytes::from(hex(&format!(
            "{HDR}00240200000 00d800f0a0002013020010db80101"
        )
        .replace(' ', "")))
    );
}

#[test]
fn a_route_without_a_usable_next_hop_is_refused_not_panicking() {
    let mut c = ctx(false);
    c.next_hop_v6 = None;
    assert!(encode_announce(&Route::new(net("2001:db8:101::/48")), &c).is_err());
    let mut r = Route::new(net("10.101.4.0/24"));
    r.next_hop = Some("fd00::1".parse().unwrap());
    assert!(encode_announce(&r, &ctx(false)).is_err());
}

fn update_with_attrs(attrs: &[u8], nlri: &[u8]) -> rustbgpd_wire::UpdateMessage {
    rustbgpd_wire::UpdateMessage {
        withdrawn_routes: Bytes::new(),
        path_attributes: Bytes::copy_from_slice(attrs),
        nlri: Bytes::copy_from_slice(nlri),
    }
}

const AS_PATH: [u8; 9] = [0x40, 2, 6, 2, 1, 0, 0, 0xFD, 0xE9];
const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 10, 200, 0, 2];
const NLRI: [u8; 4] = [24, 10, 1, 1];

#[test]
fn rfc7606_bad_origin_is_treat_as_withdraw() {
    let mut attrs = vec![0x40, 1, 1, 5];
    attrs.extend_from_slice(&AS_PATH);
    attrs.extend_from_slice(&NEXT_HOP);
    let v = classify_update(&update_with_attrs(&attrs, &NLRI), true, false, 65005);
    assert_eq!(
        v,
        UpdateVerdict::Routes {
            announced: vec![],
            withdrawn: vec![net("10.1.1.0/24")],
            discarded: 0,
            treat_as_withdraw: true,
            looped: false
        }
    );
}

#[test]
fn rfc7606_missing_next_hop_is_treat_as_withdraw() {
    let mut attrs = vec![0x40, 1, 1, 0];
    attrs.extend_from_slice(&AS_PATH);
    let v = classify_update(&update_with_attrs(&attrs, &NLRI), true, false, 65005);
    assert!(
        matches!(
            v,
            UpdateVerdict::Routes {
                treat_as_withdraw: true,
                ..
            }
        ),
        "{v:?}"
    );
}

#[test]
fn rfc7606_bad_med_length_is_treat_as_withdraw() {
    let mut attrs = vec![0x40, 1, 1, 0];
    attrs.extend_from_slice(&AS_PATH);
    attrs.extend_from_slice(&NEXT_HOP);
    attrs.extend_from_slice(&[0x80, 4, 2, 0, 1]);
    let v = classify_update(&update_with_attrs(&attrs, &NLRI), true, false, 65005);
    assert!(
        matches!(
            v,
            UpdateVerdict::Routes {
                treat_as_withdraw: true,
                ..
            }
        ),
        "{v:?}"
    );
}

#[test]
fn rfc7606_attribute_overrunning_the_list_is_treat_as_withdraw() {
    // RFC 7606 §4: the last attribute claims 50 bytes but the list ends after 3;
    // the NLRI is still locatable, so treat-as-withdraw, not a reset.
    let mut attrs = vec![0x40, 1, 1, 0];
    attrs.extend_from_slice(&[0x40, 2, 50, 2, 1, 0]);
    let v = classify_update(&update_with_attrs(&attrs, &NLRI), true, false, 65005);
    assert!(
        matches!(
            v,
            UpdateVerdict::Routes {
                treat_as_withdraw: true,
                ..
            }
        ),
        "{v:?}"
    );
}

#[test]
fn rfc7606_withdrawn_length_beyond_the_message_resets_with_3_1() {
    // RFC 7606 §4 / RFC 4271 §6.3: the lengths cannot be reconciled -> session reset.
    let mut b = BytesMut::from(&hex(&format!("{HDR}001b0200c8180a01010000"))[..]);
    let e = next_frame(&mut b, STANDARD_MAX_LEN).unwrap_err();
    let (c, s, _) = e.to_notification();
    assert_eq!((c.as_u8(), s), (3, 1));
}

#[test]
fn rfc7606_bad_nlri_resets_with_3_10() {
    let mut attrs = vec![0x40, 1, 1, 0];
    attrs.extend_from_slice(&AS_PATH);
    attrs.extend_from_slice(&NEXT_HOP);
    // prefix length 33 for IPv4
    let v = classify_update(
        &update_with_attrs(&attrs, &[33, 10, 1, 1, 1, 1]),
        true,
        false,
        65005,
    );
    let UpdateVerdict::Reset(n, _) = v else {
        panic!("{v:?}")
    };
    assert_eq!((n.code.as_u8(), n.subcode), (3, 10));
}

#[test]
fn header_errors_map_to_rfc4271_6_1_notifications() {
    let cases: [(Vec<u8>, u8, u8); 4] = [
        // marker not all ones -> 1/1 Connection Not Synchronized
        ([vec![0u8; 16], vec![0, 19, 4]].concat(), 1, 1),
        // length 18 -> 1/2 Bad Message Length
        ([vec![0xFF; 16], vec![0, 18, 4]].concat(), 1, 2),
        // type 9 -> 1/3 Bad Message Type
        ([vec![0xFF; 16], vec![0, 19, 9]].concat(), 1, 3),
        // KEEPALIVE of 20 bytes -> 1/2
        ([vec![0xFF; 16], vec![0, 20, 4, 0]].concat(), 1, 2),
    ];
    for (bytes, code, sub) in cases {
        let mut b = BytesMut::from(&bytes[..]);
        let e = next_frame(&mut b, STANDARD_MAX_LEN).unwrap_err();
        let (c, s, _) = e.to_notification();
        assert_eq!((c.as_u8(), s), (code, sub), "{bytes:?}");
    }
}

#[test]
fn extended_length_only_after_negotiation() {
    let mut big = vec![0xFF; 16];
    big.extend_from_slice(&[0x20, 0x00, 2]);
    let mut b = BytesMut::from(&big[..]);
    let e = next_frame(&mut b, STANDARD_MAX_LEN).unwrap_err();
    assert_eq!(e.to_notification().1, 2);
    let mut b = BytesMut::from(&big[..]);
    assert_eq!(
        next_frame(&mut b, EXTENDED_MAX_LEN),
        Ok(None),
        "8192-byte UPDATE is fine once extended"
    );
}

#[test]
fn shutdown_communication_is_rfc9003() {
    let n = notification(6, 2, shutdown_communication("maintenance"));
    let b = encode_notification(&n);
    assert_eq!(&b[18..22], &[3, 6, 2, 11]);
    assert_eq!(&b[22..], b"maintenance");
    assert_eq!(
        describe_notification(&n),
        "6/2 (Administrative Shutdown): maintenance"
    );
}

#[test]
fn our_own_as_in_the_path_is_a_loop_not_a_route() {
    // FRR echoes our route back with its AS prepended: AS_PATH 65001 65005.
    let mut attrs = vec![
        0x40, 1, 1, 0, 0x40, 2, 10, 2, 2, 0, 0, 0xFD, 0xE9, 0, 0, 0xFD, 0xED,
    ];
    attrs.extend_from_slice(&NEXT_HOP);
    let v = classify_update(&update_with_attrs(&attrs, &NLRI), true, false, 65005);
    assert_eq!(
        v,
        UpdateVerdict::Routes {
            announced: vec![],
            withdrawn: vec![net("10.1.1.0/24")],
            discarded: 0,
            treat_as_withdraw: false,
            looped: true
        }
    );
}

#[test]
fn four_octet_local_as_to_a_two_octet_peer_uses_as_trans_and_as4_path() {
    // RFC 6793 §4.2.2: AS_PATH carries AS_TRANS, AS4_PATH the real 4-octet AS.
    let mut c = ctx(false);
    c.local_asn = 4_200_000_101;
    c.four_octet_as = false;
    let b = encode_announce(&Route::new(net("10.101.4.0/24")), &c).unwrap();
    let as_path_2 = [0x40, 2, 4, 2, 1, 0x5B, 0xA0]; // AS_SEQUENCE [23456], 2-octet
    let as4 = 4_200_000_101u32.to_be_bytes();
    let as4_path = [0xC0, 17, 6, 2, 1, as4[0], as4[1], as4[2], as4[3]];
    assert!(
        b.windows(as_path_2.len()).any(|w| w == as_path_2),
        "{b:02x?}"
    );
    assert!(b.windows(as4_path.len()).any(|w| w == as4_path), "{b:02x?}");
}

#[test]
fn bird_end_of_rib_markers_are_empty_updates() {
    for h in [BIRD_EOR_V4, BIRD_EOR_V6] {
        let Some(Message::Update(u)) = decode(h, STANDARD_MAX_LEN).unwrap() else {
            panic!("not an UPDATE")
        };
        assert_eq!(
            classify_update(&u, true, false, 65005),
            UpdateVerdict::Routes {
                announced: vec![],
                withdrawn: vec![],
                discarded: 0,
                treat_as_withdraw: false,
                looped: false
            }
        );
    }
}

#[test]
fn our_end_of_rib_markers_are_byte_identical_to_birds() {
    assert_eq!(
        encode_end_of_rib(false, &ctx(false)).unwrap(),
        Bytes::from(hex(BIRD_EOR_V4))
    );
    assert_eq!(
        encode_end_of_rib(true, &ctx(false)).unwrap(),
        Bytes::from(hex(BIRD_EOR_V6))
    );
}
