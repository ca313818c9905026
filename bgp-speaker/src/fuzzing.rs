//! Entry points for the cargo-fuzz targets (feature `fuzzing`; not API).

use std::net::Ipv4Addr;

use bytes::{Bytes, BytesMut};

use crate::config::PeerConfig;
use crate::session::{Input, Session};
use crate::wire::{self, EXTENDED_MAX_LEN, Message, STANDARD_MAX_LEN};

/// FRR 8.4.4's OPEN as captured on the wire (see wire/tests.rs).
const FRR_OPEN: &str = "ffffffffffffffffffffffffffffffff00710104fde900b40ac800025402060104000100010206010400020001020280000202020002024600020641040000fde902020600020a450800010101000201010206490402766d0002044002c0780210470e0001018000000000020180000000";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The framing/decode/RFC 7606 path on arbitrary bytes, at both size limits.
pub fn decode(data: &[u8]) {
    for max in [STANDARD_MAX_LEN, EXTENDED_MAX_LEN] {
        let mut buf = BytesMut::from(data);
        for _ in 0..64 {
            match wire::next_frame(&mut buf, max) {
                Ok(Some(Message::Update(u))) => {
                    let _ = wire::classify_update(&u, true, false, 65005);
                    let _ = wire::classify_update(&u, false, true, 23456);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// Arbitrary bytes from the peer of an Established session, in two chunks.
pub fn session(data: &[u8]) {
    let mut cfg = PeerConfig::new(
        "fuzz",
        "10.200.0.2".parse().expect("literal"),
        65005,
        65001,
        Ipv4Addr::new(10, 200, 0, 1),
    );
    cfg.ipv6_unicast = true;
    cfg.next_hop_v6 = Some("fd00:200::1".parse().expect("literal"));
    let mut s = Session::new(cfg, 0);
    s.handle(Input::Start);
    s.handle(Input::Connected {
        local: "10.200.0.1".parse().expect("literal"),
    });
    s.handle(Input::Data(Bytes::from(hex(FRR_OPEN))));
    s.handle(Input::Data(wire::encode_keepalive()));
    let mid = data.len() / 2;
    s.handle(Input::Data(Bytes::copy_from_slice(&data[..mid])));
    s.handle(Input::Data(Bytes::copy_from_slice(&data[mid..])));
}
