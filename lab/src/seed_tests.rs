//! The seed topology's own checks (lab/src/seed.rs).

use super::*;

#[test]
fn every_link_end_is_a_node_and_interfaces_are_unique() {
    let mut seen = std::collections::HashSet::new();
    for (a, b) in LINKS {
        for e in [a, b] {
            assert!(node(e.0).is_some(), "{} is not a node", e.0);
            assert!(seen.insert((e.0, e.1)), "{}:{} used twice", e.0, e.1);
        }
    }
}

#[test]
fn sessions_are_symmetric() {
    // Each session's neighbor address belongs to a node that peers back.
    for (r, addr, _) in SESSIONS {
        let owner = LINKS
            .iter()
            .flat_map(|(a, b)| [a, b])
            .find(|e| e.2.split('/').next() == Some(addr))
            .map(|e| e.0)
            .unwrap_or_else(|| panic!("{addr} is nobody's address"));
        if matches!(node(owner).unwrap().role, Role::Director { .. }) {
            continue; // anycastd peers from its own config
        }
        let mine: Vec<&str> = LINKS
            .iter()
            .flat_map(|(a, b)| [a, b])
            .filter(|e| e.0 == *r && !e.2.is_empty())
            .map(|e| e.2.split('/').next().unwrap())
            .collect();
        assert!(
            SESSIONS
                .iter()
                .any(|(o, back, _)| *o == owner && mine.contains(back)),
            "{r} -> {addr} ({owner}) has no session back"
        );
    }
}

#[test]
fn r31_peers_with_r11_ibgp_with_r32_and_the_client() {
    let c = frr_conf("r31").unwrap();
    assert!(c.contains("router bgp 3\n"));
    assert!(c.contains(" neighbor 10.101.13.1 remote-as 1\n"));
    assert!(c.contains("  neighbor 10.101.33.2 next-hop-self\n"));
    assert!(c.contains("interface eth3\n ip address 10.101.3.1/29\n"));
}

#[test]
fn directors_bridge_their_server_lan() {
    let setup = host_setup(node("lb1").unwrap());
    assert!(setup.contains(&"ip link set dev eth2 master br0".to_string()));
    assert!(setup.contains(&"ip addr add 10.101.5.1/24 dev br0".to_string()));
    assert!(setup.contains(&"ip route add default via 10.101.1.1".to_string()));
}

#[test]
fn one_site_runs_dr_the_other_tun() {
    let dr = host_setup(node("rs511").unwrap());
    assert!(dr.contains(&"ip addr add 10.101.4.1/32 dev lo".to_string()));
    assert!(dr.contains(&"sysctl -qw net.ipv4.conf.all.arp_ignore=1".to_string()));
    let tun = host_setup(node("rs612").unwrap());
    assert!(tun.contains(&"ip addr add 10.101.4.1/32 dev tunl0".to_string()));
    assert!(tun.contains(&"sysctl -qw net.ipv4.conf.tunl0.rp_filter=0".to_string()));
    // IPv4: the director fragments (decision 0007); IPv6: the clamp (0013).
    let advmss: Vec<&String> = tun.iter().filter(|c| c.contains("advmss")).collect();
    assert_eq!(
        advmss,
        ["ip -6 route replace default via 2001:db8:6::1 advmss 1400"]
    );
}

#[test]
fn the_example_configs_use_the_methods_the_lab_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for n in NODES {
        let Role::Server { method, .. } = n.role else {
            continue;
        };
        let site = match n.name.as_bytes().get(2) {
            Some(b'5') => "idc1",
            _ => "idc2",
        };
        let v4 = format!("10.101.{}.{}", &n.name[2..3], &n.name[3..]);
        let v6 = crate::seed6::v6_host(&v4, 24).unwrap();
        for (file, addrs) in [
            (format!("{site}.toml"), vec![v4.clone()]),
            (
                format!("{site}-dual-stack.toml"),
                vec![v4.clone(), v6.clone()],
            ),
        ] {
            let cfg = std::fs::read_to_string(root.join("configs").join(&file)).unwrap();
            for addr in addrs {
                let block = cfg
                    .split("[[vip.service.real_server]]")
                    .find(|b| b.contains(&format!("address = \"{addr}\"")))
                    .unwrap_or_else(|| panic!("{addr} not in {file}"));
                assert!(
                    block.contains(&format!("method = \"{}\"", method.as_str())),
                    "{file}: {addr} is not `{}` as the lab runs it",
                    method.as_str()
                );
            }
        }
    }
}

#[test]
fn idc1_has_two_directors_behind_r11s_ecmp_on_a_shared_lan() {
    let r11 = frr_conf("r11").unwrap();
    assert!(r11.contains(" neighbor 10.101.1.2 remote-as 5\n"));
    assert!(r11.contains(" neighbor 10.101.7.2 remote-as 5\n"));
    // Both families spread over the two directors; routers with one director don't.
    assert_eq!(r11.matches("  maximum-paths 2\n").count(), 2);
    assert!(!frr_conf("r22").unwrap().contains("maximum-paths"));
    assert!(r11.contains("interface eth4\n ip address 10.101.5.254/24\n"));
    // The switch bridges both directors, R11 and the servers; each director
    // bridges only its own port to it, and lb1b's uplink is its own.
    let sw = host_setup(node("sw1").unwrap());
    for p in ["eth1", "eth2", "eth3", "eth4", "eth5"] {
        assert!(
            sw.contains(&format!("ip link set dev {p} master br0")),
            "{p}"
        );
    }
    let lb1b = host_setup(node("lb1b").unwrap());
    assert!(lb1b.contains(&"ip link set dev eth2 master br0".to_string()));
    assert!(lb1b.contains(&"ip addr add 10.101.5.3/24 dev br0".to_string()));
    assert!(lb1b.contains(&"ip route add default via 10.101.7.1".to_string()));
    assert!(lb1b.contains(&"sysctl -qw net.ipv4.conf.all.accept_local=1".to_string()));
    let lb1 = host_setup(node("lb1").unwrap());
    assert!(!lb1.iter().any(|c| c.contains("sync0 master")));
    assert!(lb1.contains(&"ip route add default via 10.101.1.1".to_string()));
    // The DR servers' replies go through R11, not through a director.
    let dr = host_setup(node("rs512").unwrap());
    assert!(dr.contains(&"ip route replace default via 10.101.5.254".to_string()));
    // The containerlab form starts lb1b with its own config.
    assert!(clab_yaml().contains("--config /etc/anycastd/idc1b-dual-stack.toml"));
    assert!(clab_yaml().contains("    - endpoints: [\"lb1:sync0\", \"lb1b:sync0\"]\n"));
}

#[test]
fn idc1b_is_idc1s_site_with_its_own_identity() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    for (a, b) in [
        ("idc1.toml", "idc1b.toml"),
        ("idc1-dual-stack.toml", "idc1b-dual-stack.toml"),
    ] {
        let a = std::fs::read_to_string(root.join(a)).unwrap();
        let b = std::fs::read_to_string(root.join(b)).unwrap();
        // The same site: name, VIPs, services, real servers, thresholds.
        let vips = |t: &str| t[t.find("[[vip]]").unwrap()..].to_string();
        assert_eq!(vips(&a), vips(&b));
        let section = |t: &str, s: &str| {
            let t = &t[t.find(s).unwrap()..];
            t[..t[1..].find("\n[").map_or(t.len(), |i| i + 1)].to_string()
        };
        assert_eq!(section(&a, "[spill]"), section(&b, "[spill]"));
        assert!(b.contains("name = \"idc1\"\n"));
        // Its own uplink, listener and neighbor: the seed's lb1b.
        assert!(b.contains("address = \"10.101.7.2\""));
        assert!(b.contains("listen = \"10.101.7.2:9181\""));
        assert!(b.contains("address = \"10.101.7.1\""));
        // The same peer sites (the config digest covers them), each naming the other
        // as its `[[director]]`; nothing else of lb1's.
        let peer = |t: &str| {
            let p = section(t, "[[peer]]");
            p[..p.find("\n\n").unwrap_or(p.len())].to_string()
        };
        assert_eq!(peer(&a), peer(&b));
        assert!(a.contains("[[director]]\nname = \"lb1b\"\naddress = \"10.101.7.2\""));
        assert!(b.contains("[[director]]\nname = \"lb1\"\naddress = \"10.101.1.2\""));
        let own = b.replace(&section(&b, "\n[[director]]\n"), "");
        assert!(!own.contains("10.101.1."), "{own}");
    }
}
