//! The split's blocks, steps and compile checks, without a kernel.

use super::*;

fn covered(share: u16) -> u32 {
    // Count the 10-bit values matched by any block.
    (0u32..1024)
        .filter(|v| {
            let seq = v << 22;
            blocks(share).iter().any(|b| seq & b.mask == b.value)
        })
        .count() as u32
}

#[test]
fn blocks_cover_exactly_the_share() {
    for share in [0u16, 1, 2, 3, 100, 276, 512, 513, 1000, 1023, 1024] {
        assert_eq!(covered(share), u32::from(share), "share {share}");
        assert!(blocks(share).len() <= 10);
    }
    assert!(blocks(0).is_empty());
}

#[test]
fn blocks_do_not_overlap() {
    let b = blocks(1023);
    for v in 0u32..1024 {
        let n = b.iter().filter(|x| (v << 22) & x.mask == x.value).count();
        assert!(n <= 1, "value {v} in {n} blocks");
    }
}

/// How many of the 65536 source ports the blocks match on the UDP ports word.
fn ports_covered(b: &[SeqBlock]) -> u32 {
    (0u32..65536)
        .filter(|port| {
            let word = port << 16 | 53;
            b.iter()
                .any(|x| word & x.on_ports().mask == x.on_ports().value)
        })
        .count() as u32
}

#[test]
fn a_udp_block_covers_the_same_share_of_source_ports() {
    for share in [1u16, 276, 512, 1023] {
        let b = blocks(share);
        assert_eq!(ports_covered(&b), u32::from(share) * 64, "share {share}");
        for x in &b {
            assert_eq!(SeqBlock::from_ports(x.on_ports()), Some(*x));
        }
    }
    let outside = SeqBlock {
        mask: 0xffff_0000,
        value: 0,
    };
    assert_eq!(SeqBlock::from_ports(outside), None);
}

#[test]
fn units_round_and_clamp() {
    assert_eq!(Split::units(0.1), 102);
    assert_eq!(Split::units(0.5), 512);
    assert_eq!(Split::units(2.0), 1024);
    assert_eq!(Split::units(f64::NAN), 0);
    assert_eq!(Split::units(-1.0), 0);
}

fn split(share: u16, w: u32) -> Split {
    Split {
        devices: vec!["eth0".into()],
        mark: 0x4143_0000,
        share,
        peers: vec![Peer::ipip("10.0.2.2".parse().unwrap(), w)],
        peers6: vec![],
    }
}

/// The commands of the spill step from `a` to `b`.
fn step_commands(a: &Split, b: &Split) -> Vec<String> {
    let step = a.changes(b).expect("a targeted step");
    step.iter().map(Request::command).collect()
}

#[test]
fn a_spill_step_is_a_few_requests() {
    let (a, b) = (split(0, 0), split(Split::units(0.3), 1000));
    let cmds = step_commands(&a, &b);
    assert_eq!(cmds[0], "ipvsadm -e -f 1094909952 -r 10.0.2.2:0 -i -w 1000");
    assert_eq!(cmds[1], "tc filter del dev eth0 ingress chain 44033");
    assert_eq!(cmds.len(), 2 + 2 * blocks(307).len());
    assert!(
        cmds[2].contains("match u32 0x0 0xc0000000 at 24"),
        "{}",
        cmds[2]
    );
    assert!(
        cmds[3].contains("match ip protocol 17 0xff match u32 0x0 0x3000000 at 20"),
        "{}",
        cmds[3]
    );
    assert_eq!(b.changes(&b), Some(vec![]));
    let mut c = b.clone();
    c.devices.push("eth1".into());
    assert_eq!(b.changes(&c), None);
}

#[test]
fn compile_refuses_the_tunnel_device_and_mark_zero() {
    let mut services = BTreeMap::new();
    let mut s = split(10, 1);
    s.devices = vec!["anycast0".into()];
    assert!(compile(&s, BTreeSet::new(), Some("anycast0"), &mut services).is_err());
    s.devices = vec!["eth0".into()];
    s.mark = 0;
    assert!(compile(&s, BTreeSet::new(), None, &mut services).is_err());
    s.mark = 5;
    let t = compile(&s, BTreeSet::new(), None, &mut services).unwrap();
    assert_eq!(t.blocks.len(), 2);
    assert_eq!(services[&s.key()].config.scheduler, "wrr");
}

fn split6(share: u16, w: u32) -> Split {
    Split {
        peers6: vec![Peer::ipip("2001:db8:2::2".parse().unwrap(), w)],
        ..split(share, w)
    }
}

#[test]
fn an_ipv6_block_covers_the_same_share_of_ports_and_isns() {
    // The IPv6 draws use the same blocks: share x 64 of the source ports (UDP) and
    // share x 64 of the ISNs' top 16 bits (TCP), whatever the family.
    for share in [1u16, 276, 512, 1023] {
        let b = blocks(share);
        assert_eq!(ports_covered(&b), u32::from(share) * 64, "share {share}");
        let isns = (0u32..1 << 16)
            .filter(|i| b.iter().any(|x| (i << 16) & x.mask == x.value))
            .count() as u32;
        assert_eq!(isns, u32::from(share) * 64, "share {share}");
    }
    let t = compile(&split6(276, 1), BTreeSet::new(), None, &mut BTreeMap::new()).unwrap();
    assert!(t.ipv6);
    let rules: Vec<_> = share_rules(&t.blocks, t.ipv6).collect();
    assert_eq!(rules.len(), 4 * blocks(276).len());
    let v6 = rules.iter().filter(|(d, _)| d.ipv6());
    assert!(v6.clone().count() == 2 * blocks(276).len());
    assert!(v6.into_iter().all(|(d, _)| d.prio() == SHARE_PRIO6));
}

#[test]
fn an_ipv6_spill_step_sets_both_services_and_both_families_filters() {
    let (a, b) = (split6(0, 0), split6(Split::units(0.27), 1000));
    let cmds = step_commands(&a, &b);
    assert_eq!(cmds[0], "ipvsadm -e -f 1094909952 -r 10.0.2.2:0 -i -w 1000");
    assert_eq!(
        cmds[1],
        "ipvsadm -e -f 1094909952 -6 -r [2001:db8:2::2]:0 -i -w 1000"
    );
    assert_eq!(cmds[2], "tc filter del dev eth0 ingress chain 44033");
    let n = blocks(276).len();
    assert_eq!(cmds.len(), 3 + 4 * n);
    let v6: Vec<&String> = cmds
        .iter()
        .filter(|c| c.contains("protocol ipv6"))
        .collect();
    assert_eq!(v6.len(), 2 * n);
    assert!(
        v6[0].contains(
            "prio 2 protocol ipv6 u32 match ip6 protocol 6 0xff match u8 0x02 0x12 at 53 \
             match u32 0x0 0xc0000000 at 44"
        ),
        "{}",
        v6[0]
    );
    assert!(
        v6[1].contains("match ip6 protocol 17 0xff match u32 0x0 0x3000000 at 40"),
        "{}",
        v6[1]
    );
    // Adding the IPv6 peers (a new service) is a reconcile, not a step.
    assert_eq!(split(0, 0).changes(&b), None);
    assert_eq!(b.changes(&b), Some(vec![]));
}

#[test]
fn compile_builds_an_ipv6_fwmark_service_of_the_ipv6_peers() {
    let mut services = BTreeMap::new();
    let s = split6(100, 3);
    compile(&s, BTreeSet::new(), None, &mut services).unwrap();
    let v6 = &services[&s.key6()];
    assert!(s.key6().is_ipv6() && v6.config.scheduler == "wrr");
    let d: Vec<_> = v6.dests.values().collect();
    assert_eq!(d.len(), 1);
    assert!(d[0].addr.is_ipv6() && d[0].weight == 3);
    assert_eq!(d[0].forward, crate::model::Forward::Tunnel);
    // The families never mix, and IPv6 peers come with the same peers' IPv4 ones.
    let mut wrong = split6(100, 3);
    wrong.peers6 = wrong.peers.clone();
    assert!(compile(&wrong, BTreeSet::new(), None, &mut BTreeMap::new()).is_err());
    let mut fewer = split6(100, 3);
    fewer.peers.clear();
    assert!(compile(&fewer, BTreeSet::new(), None, &mut BTreeMap::new()).is_err());
    // No IPv6 peers: no IPv6 service, no IPv6 filters.
    let mut services = BTreeMap::new();
    let t = compile(&split(100, 3), BTreeSet::new(), None, &mut services).unwrap();
    assert!(!t.ipv6 && !services.contains_key(&s.key6()));
}
