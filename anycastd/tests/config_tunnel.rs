//! A peer's `tunnel` and `gue_port` (issue 15, decision 0016): GUE gives the
//! upstream's ECMP a port to hash on; what is refused (with its line) and what
//! `anycastd check` shows.

mod config_common;

use anycastd::config::{PeerTunnel, SiteConfig};
use anycastd::layout::Layout;
use anycastd::mapping;
use config_common::{check, line_of, load, refused};
use tunnel_forwarder as tf;

const GOOD: &str = include_str!("../../configs/idc1.toml");
const ENDPOINT: &str = "tunnel_endpoint = \"10.101.2.2\"";

/// idc1.toml with `lines` added to its peer idc2.
fn with_peer(lines: &str) -> String {
    GOOD.replace(ENDPOINT, &format!("{ENDPOINT}\n{lines}"))
}

/// The peer destinations of every service and of the split in `cfg`'s desired state.
fn peer_encaps(cfg: &SiteConfig) -> Vec<tf::Encap> {
    let d = mapping::desired_state(cfg, &Layout::new(cfg), &[]);
    let mut out: Vec<tf::Encap> = d
        .vips
        .iter()
        .flat_map(|v| &v.services)
        .flat_map(|s| &s.peers)
        .map(|p| p.encap)
        .collect();
    out.extend(d.split.iter().flat_map(|s| &s.peers).map(|p| p.encap));
    out
}

#[test]
fn ipip_is_the_default_and_gue_takes_its_port() {
    let cfg = load(GOOD);
    assert_eq!(cfg.peers[0].tunnel, PeerTunnel::Ipip);
    assert!(peer_encaps(&cfg).iter().all(|e| *e == tf::Encap::Ipip));

    let cfg = load(&with_peer("tunnel = \"gue\""));
    assert_eq!(cfg.peers[0].tunnel, PeerTunnel::Gue { port: 6080 });
    let encaps = peer_encaps(&cfg);
    assert!(!encaps.is_empty());
    assert!(encaps.iter().all(|e| *e
        == tf::Encap::Gue {
            port: 6080,
            csum: false
        }));

    let d = mapping::desired_state(&cfg, &Layout::new(&cfg), &[]);
    assert_eq!(d.gue_ports, vec![6080]);

    let cfg = load(&with_peer("tunnel = \"gue\"\ngue_port = 5555"));
    assert_eq!(cfg.peers[0].tunnel, PeerTunnel::Gue { port: 5555 });
    // The seed's IDC1 also listens on 6080 for its site endpoint (decision 0018).
    assert_eq!(mapping::gue_ports(&cfg), vec![5555, 6080]);
    assert_eq!(mapping::gue_ports(&load(GOOD)), vec![6080]);
}

#[test]
fn gre_unknown_tunnels_gue_over_ipv6_and_stray_ports_are_refused_with_their_lines() {
    let text = with_peer("tunnel = \"gre\"");
    let p = refused(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with(&format!(
            "{}: tunnel = \"gre\" is not supported",
            line_of(&text, "gre")
        )),
        "{p:?}"
    );

    let text = with_peer("tunnel = \"vxlan\"");
    let p = refused(&text);
    assert!(p[0].contains("tunnel `vxlan` is not one of"), "{p:?}");

    let text = with_peer("gue_port = 6080");
    let p = refused(&text);
    assert_eq!(
        p,
        vec![format!(
            "{}: gue_port needs tunnel = \"gue\"",
            line_of(&text, "gue_port")
        )]
    );

    let text = with_peer("tunnel = \"gue\"\ngue_port = 0");
    let p = refused(&text);
    assert_eq!(
        p,
        vec![format!(
            "{}: gue_port 0 is no port",
            line_of(&text, "gue_port")
        )]
    );

    let text = with_peer("tunnel = \"gue\"\ntunnel_endpoint_v6 = \"2001:db8:2::2\"");
    let p = refused(&text);
    assert!(
        p.iter().any(|l| l.starts_with(&format!(
            "{}: tunnel = \"gue\" is IPv4 only",
            line_of(&text, "\"gue\"")
        ))),
        "{p:?}"
    );
}

#[test]
fn anycastd_check_shows_the_gue_destination_and_the_listener_it_needs() {
    let (code, text) = check("check-gue", &with_peer("tunnel = \"gue\""));
    assert_eq!(code, Some(0), "{text}");
    for want in [
        "-r 10.101.2.2:80 -i -w 0 --tun-type gue --tun-port 6080 --tun-nocsum   (peer site idc2 over GUE (udp port 6080)",
        "ip fou add port 6080 gue   (GUE from peers, decapsulated into anycast0",
        "peer idc2 at http://10.101.2.2:9181/v1/report (IPv4 over GUE (udp port 6080) to 10.101.2.2)",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
}
