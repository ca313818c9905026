//! `[site] tunnel_endpoint` and `tunnel_prefix` (issue 15, decision 0018): the seed's
//! IDC1 holds a site-wide endpoint on both directors; what the data plane gets, what
//! is refused (with its line) and what `anycastd check` shows.

mod config_common;

use anycastd::config::SiteConfig;
use anycastd::layout::Layout;
use anycastd::mapping;
use config_common::{check, line_of, load, refused};
use tunnel_forwarder as tf;

const IDC1: &str = include_str!("../../configs/idc1.toml");
const IDC1B: &str = include_str!("../../configs/idc1b.toml");
const PREFIX: &str = "tunnel_prefix = \"10.101.14.0/24\"";
const ENDPOINT: &str = "tunnel_endpoint = \"10.101.14.1\"";

fn desired(cfg: &SiteConfig) -> tf::DesiredState {
    mapping::desired_state(cfg, &Layout::new(cfg), &[])
}

/// idc1.toml with the line holding `from` replaced by `to`.
fn with(from: &str, to: &str) -> String {
    let line = IDC1.lines().find(|l| l.contains(from)).unwrap();
    IDC1.replace(line, to)
}

#[test]
fn both_directors_of_the_seed_receive_at_the_endpoint_with_the_loop_guard() {
    for text in [IDC1, IDC1B] {
        let cfg = load(text);
        let e = cfg
            .site
            .endpoint
            .expect("the seed's IDC1 has a site endpoint");
        assert_eq!(e.address.to_string(), "10.101.14.1");
        assert_eq!(e.prefix.to_string(), "10.101.14.0/24");
        let d = desired(&cfg);
        let tunnel = d.tunnel.as_ref().expect("a receiving device");
        assert_eq!(tunnel.local, e.address, "{}", cfg.site.director);
        assert_eq!(d.gue_ports, vec![6080]);
        // Every service has its loop-guard service, lb1b (no [[peer]]) included.
        assert!(
            d.vips
                .iter()
                .flat_map(|v| &v.services)
                .all(|s| s.tunnel_in.is_some())
        );
    }
    // Without the endpoint: the director's own address, as before; no listener.
    let cfg = load(&IDC1.replace(ENDPOINT, "").replace(PREFIX, ""));
    assert!(cfg.site.endpoint.is_none());
    let d = desired(&cfg);
    assert_eq!(d.tunnel.map(|t| t.local), Some(cfg.site.address));
    assert!(d.gue_ports.is_empty());
    // The endpoint's GUE port is its own key.
    let cfg = load(&IDC1.replace(PREFIX, &format!("{PREFIX}\ntunnel_gue_port = 7070")));
    assert_eq!(mapping::gue_ports(&cfg), vec![7070]);
}

#[test]
fn an_endpoint_in_a_vip_prefix_or_without_its_prefix_is_refused_with_its_line() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            PREFIX,
            "tunnel_prefix = \"10.101.4.0/25\"",
            "tunnel_prefix",
            "tunnel_prefix 10.101.4.0/25 overlaps vip `web`'s prefix 10.101.4.0/24: every site announces",
        ),
        (
            PREFIX,
            "tunnel_prefix = \"10.101.14.1/24\"",
            "tunnel_prefix",
            "tunnel_prefix `10.101.14.1/24` has host bits set",
        ),
        (
            PREFIX,
            "",
            "tunnel_endpoint",
            "tunnel_endpoint needs tunnel_prefix",
        ),
        (
            ENDPOINT,
            "",
            "tunnel_prefix",
            "tunnel_prefix needs tunnel_endpoint",
        ),
        (
            ENDPOINT,
            "tunnel_endpoint = \"10.101.15.1\"",
            "tunnel_endpoint",
            "tunnel_endpoint 10.101.15.1 is not inside tunnel_prefix 10.101.14.0/24",
        ),
        (
            ENDPOINT,
            "tunnel_endpoint = \"10.101.14.0\"",
            "tunnel_endpoint",
            "tunnel_endpoint 10.101.14.0 is the network or broadcast address",
        ),
        (
            PREFIX,
            "tunnel_prefix = \"10.101.1.0/30\"\ntunnel_endpoint_x = 1",
            "tunnel_endpoint_x",
            "unknown field `tunnel_endpoint_x`",
        ),
        (
            PREFIX,
            "tunnel_prefix = \"10.101.14.0/24\"\ntunnel_gue_port = 0",
            "tunnel_gue_port",
            "tunnel_gue_port 0 is no port",
        ),
    ];
    for (from, to, key, reason) in cases {
        let text = with(from, to);
        let p = refused(&text);
        let line = line_of(&text, key);
        assert!(
            p.iter()
                .any(|l| l.starts_with(&format!("{line}: {reason}"))),
            "{to}: wanted `{line}: {reason}`, got {p:?}"
        );
    }
    // The endpoint must not be this director's own address.
    let text = IDC1
        .replace(ENDPOINT, "tunnel_endpoint = \"10.101.1.2\"")
        .replace(PREFIX, "tunnel_prefix = \"10.101.1.0/24\"");
    let p = refused(&text);
    assert_eq!(
        p,
        vec![format!(
            "{}: tunnel_endpoint 10.101.1.2 is this director's own address: the site endpoint is one address every director holds",
            line_of(&text, "tunnel_endpoint")
        )]
    );
    // tunnel_gue_port alone.
    let text = IDC1
        .replace(ENDPOINT, "tunnel_gue_port = 6080")
        .replace(PREFIX, "");
    let p = refused(&text);
    assert_eq!(
        p,
        vec![format!(
            "{}: tunnel_gue_port needs tunnel_endpoint",
            line_of(&text, "tunnel_gue_port")
        )]
    );
}

#[test]
fn anycastd_check_shows_the_endpoint_its_prefix_and_its_listener() {
    let (code, text) = check("check-site-endpoint", IDC1);
    assert_eq!(code, Some(0), "{text}");
    for want in [
        "announce 10.101.14.0/24 (site tunnel endpoint 10.101.14.1, same attributes) while an IPv4 VIP is announced",
        "ip link add anycast0 type ipip local 10.101.14.1",
        "ip fou add port 6080 gue",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
}
