//! Kernel replies are parsed without panicking whatever the bytes: valid messages
//! with random bytes flipped, truncated, or pure noise. Deterministic (seeded), so a
//! failure names its seed. (A libFuzzer target over the same entry point lives in
//! tunnel-forwarder/fuzz.)

use std::net::{IpAddr, Ipv4Addr};

use tunnel_forwarder::kernel::{fou, ipvs, ipvs_daemon, rtnl};
use tunnel_forwarder::netlink::wire::{self, MsgBuf};
use tunnel_forwarder::split::{Draw, SeqBlock, SplitClass};
use tunnel_forwarder::{
    Dest, Encap, Forward, MarkRule, Protocol, ServiceConfig, ServiceKey, SyncDaemon, SyncRole,
};

/// Feeds `bytes` to every decoder, as the kernel reader would.
pub fn decode_all(bytes: &[u8]) {
    for m in wire::messages(bytes).flatten() {
        let _ = ipvs::decode_service(m.payload);
        let _ = ipvs::decode_dest(m.payload, libc::AF_INET as u16);
        let _ = ipvs::decode_dest(m.payload, libc::AF_INET6 as u16);
        let _ = ipvs_daemon::decode(m.payload);
        let _ = fou::decode(m.payload);
        let _ = rtnl::decode_link(&m);
        let _ = rtnl::decode_addr(&m);
        let _ = rtnl::decode_filter(&m);
        let _ = rtnl::ingress_of(&m);
    }
}

fn samples() -> Vec<Vec<u8>> {
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::new(10, 101, 4, 1)),
        port: 80,
    };
    let d = Dest::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        80,
        Forward::Tunnel,
        3,
    );
    let mut out = Vec::new();
    let mut b = MsgBuf::new();
    ipvs::begin(&mut b, 0x1c, ipvs::CMD_NEW_SERVICE, 0, 1);
    ipvs::service_full(&mut b, &key, &ServiceConfig::default());
    b.end();
    out.push(b.as_bytes().to_vec());
    let mut b = MsgBuf::new();
    ipvs::begin(&mut b, 0x1c, ipvs::CMD_NEW_DEST, 0, 2);
    ipvs::service_key(&mut b, &key);
    ipvs::dest(&mut b, &d.addr, d.port, Some(&d));
    b.end();
    out.push(b.as_bytes().to_vec());
    let mut b = MsgBuf::new();
    fou::add_gue(&mut b, 0x1d, 3, 6080);
    out.push(b.as_bytes().to_vec());
    // A GUE destination: the tunnel type, port and flags attributes.
    let gue = d.with_encap(Encap::Gue {
        port: 6080,
        csum: true,
    });
    let mut b = MsgBuf::new();
    ipvs::begin(&mut b, 0x1c, ipvs::CMD_NEW_DEST, 0, 2);
    ipvs::service_key(&mut b, &key);
    ipvs::dest(&mut b, &gue.addr, gue.port, Some(&gue));
    b.end();
    out.push(b.as_bytes().to_vec());
    let mut b = MsgBuf::new();
    ipvs::begin(&mut b, 0x1c, ipvs_daemon::CMD_NEW_DAEMON, 0, 3);
    let mut daemon = SyncDaemon::new(SyncRole::Backup, "eth1", 7);
    daemon.group = Some("ff02::81".parse().unwrap());
    daemon.port = Some(8849);
    ipvs_daemon::daemon(&mut b, &daemon);
    b.end();
    out.push(b.as_bytes().to_vec());
    let mut b = MsgBuf::new();
    rtnl::new_mark_filter(
        &mut b,
        3,
        5,
        0xac01,
        &MarkRule {
            dst: Ipv4Addr::new(10, 101, 4, 1).into(),
            protocol: Protocol::Udp,
            port: 53,
            mark: 9,
        },
    );
    out.push(b.as_bytes().to_vec());
    // The IPv6 loop guard's filter and the ip6ip6 device.
    let mut b = MsgBuf::new();
    let dst6: std::net::Ipv6Addr = "2001:db8:4::1".parse().unwrap();
    let rule6 = MarkRule {
        dst: dst6.into(),
        protocol: Protocol::Tcp,
        port: 80,
        mark: 10,
    };
    rtnl::new_mark_filter(&mut b, 4, 5, 0xac01, &rule6);
    out.push(b.as_bytes().to_vec());
    let mut b = MsgBuf::new();
    rtnl::new_ip6tnl(&mut b, 5, "acip6", dst6);
    out.push(b.as_bytes().to_vec());
    let mut b = MsgBuf::new();
    let class = SplitClass {
        dst: Ipv4Addr::new(10, 101, 4, 1).into(),
        protocol: Protocol::Udp,
        port: 80,
    };
    rtnl::new_class_filter(&mut b, 6, 5, 0xac01, &class);
    out.push(b.as_bytes().to_vec());
    let mut b = MsgBuf::new();
    let block = SeqBlock {
        mask: 0xc000_0000,
        value: 0x4000_0000,
    };
    rtnl::new_share_filter(&mut b, 7, 5, (Draw::TcpIsn, &block), 9);
    out.push(b.as_bytes().to_vec());
    let mut b = MsgBuf::new();
    rtnl::new_share_filter(&mut b, 8, 5, (Draw::UdpPort, &block), 9);
    out.push(b.as_bytes().to_vec());
    // The split's IPv6 filters: a class on VIP6 and both IPv6 draws.
    let mut b = MsgBuf::new();
    let class6 = SplitClass {
        dst: dst6.into(),
        protocol: Protocol::Tcp,
        port: 443,
    };
    rtnl::new_class_filter(&mut b, 9, 5, 0xac02, &class6);
    out.push(b.as_bytes().to_vec());
    for draw in [Draw::TcpIsn6, Draw::UdpPort6] {
        let mut b = MsgBuf::new();
        rtnl::new_share_filter(&mut b, 10, 5, (draw, &block), 9);
        out.push(b.as_bytes().to_vec());
    }
    let mut b = MsgBuf::new();
    rtnl::new_link(&mut b, 4, "acip0", "ipip", Some(Ipv4Addr::new(10, 1, 0, 2)));
    out.push(b.as_bytes().to_vec());
    let mut b = MsgBuf::new();
    rtnl::addr(
        &mut b,
        5,
        true,
        1,
        &"2001:db8::1".parse().unwrap(),
        128,
        Some("lo:ac"),
    );
    out.push(b.as_bytes().to_vec());
    out
}

#[test]
fn mutated_and_random_replies_never_panic() {
    let samples = samples();
    for s in &samples {
        decode_all(s);
    }
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for seed in 0..20_000u32 {
        let base = &samples[seed as usize % samples.len()];
        let mut m = base.clone();
        match seed % 4 {
            0 => {
                for _ in 0..1 + rnd() % 4 {
                    let i = (rnd() as usize) % m.len();
                    m[i] = rnd() as u8;
                }
            }
            1 => m.truncate((rnd() as usize) % (m.len() + 1)),
            2 => {
                // Lie about a length field: the message's or an attribute's.
                let i = [0usize, 20, 24, 28][(rnd() % 4) as usize].min(m.len() - 2);
                m[i] = rnd() as u8;
                m[i + 1] = rnd() as u8;
            }
            _ => m = (0..rnd() % 200).map(|_| rnd() as u8).collect(),
        }
        decode_all(&m);
    }
}
