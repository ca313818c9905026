//! The IPv6 MSS clamp (decision 0013): on by default for IPv6 real servers behind
//! ip6ip6, switched off by `ipv6_mss_clamp = false`, derived from `ipv6_path_mtu`,
//! refused with its line when no MTU could work, and shown by `anycastd check`.

mod config_common;

use std::path::Path;

use anycastd::config::{Method, parse_str};

const EXAMPLE: &str = include_str!("../../configs/idc2-dual-stack.toml");

fn file() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/idc2-dual-stack.toml"
    ))
}

fn with(line: &str) -> String {
    EXAMPLE.replacen("[site]\n", &format!("[site]\n{line}\n"), 1)
}

#[test]
fn on_by_default_for_servers_behind_a_tunnel() {
    let cfg = parse_str(file(), EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.site.ipv6_mss_clamp);
    assert_eq!(cfg.site.ipv6_path_mtu, 1500);
    // A site with peers: every method (spilled connections came through ip6ip6).
    for m in [Method::Tun, Method::Dr, Method::Nat] {
        assert_eq!(cfg.site.ipv6_mss(m, true), Some(1400), "{m:?}");
    }
    // Without peers only TUN servers are behind a tunnel.
    assert_eq!(cfg.site.ipv6_mss(Method::Tun, false), Some(1400));
    assert_eq!(cfg.site.ipv6_mss(Method::Dr, false), None);
    assert_eq!(cfg.site.ipv6_mss(Method::Nat, false), None);
}

#[test]
fn switched_off_or_a_path_that_carries_full_segments_clamps_nothing() {
    let cfg = parse_str(file(), &with("ipv6_mss_clamp = false")).unwrap();
    assert!(!cfg.site.ipv6_mss_clamp);
    assert_eq!(cfg.site.ipv6_mss(Method::Tun, true), None);
    let cfg = parse_str(file(), &with("ipv6_path_mtu = 1540")).unwrap();
    assert_eq!(cfg.site.ipv6_mss(Method::Tun, true), None);
    let cfg = parse_str(file(), &with("ipv6_path_mtu = 1480")).unwrap();
    assert_eq!(cfg.site.ipv6_mss(Method::Tun, true), Some(1380));
    let cfg = parse_str(file(), &with("ipv6_path_mtu = 1320")).unwrap();
    assert_eq!(cfg.site.ipv6_mss(Method::Dr, true), Some(1220));
}

#[test]
fn a_path_mtu_that_cannot_work_is_refused_with_its_line() {
    let line = EXAMPLE.lines().position(|l| l == "[site]").unwrap() + 2;
    for (value, why) in [
        ("1280", "below IPv6's minimum"),
        ("0", "below IPv6's minimum"),
        ("-1500", "below IPv6's minimum"),
        ("65536", "above any device's MTU"),
        ("9000000000", "above any device's MTU"),
    ] {
        let e = parse_str(file(), &with(&format!("ipv6_path_mtu = {value}"))).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        let p = &e.problems[0];
        assert_eq!(p.line, line, "{value}: {e}");
        assert!(
            p.reason
                .starts_with(&format!("ipv6_path_mtu {value} cannot work: {why}")),
            "{value}: {}",
            p.reason
        );
    }
    // Of the wrong type: refused by the parser, with its line too.
    for bad in ["ipv6_path_mtu = \"1500\"", "ipv6_mss_clamp = \"yes\""] {
        let e = parse_str(file(), &with(bad)).unwrap_err();
        assert!(e.problems.iter().any(|p| p.line == line), "{bad}: {e}");
    }
}

fn check(text: &str) -> String {
    let (code, out) = config_common::check(&format!("check-mss-{}", text.len()), text);
    assert_eq!(code, Some(0), "{out}");
    out
}

#[test]
fn anycastd_check_shows_the_clamp_in_the_plan() {
    let on = check(EXAMPLE);
    for want in [
        "IPv6 MSS (ipv6_mss_clamp = true, ipv6_path_mtu = 1500; decision 0013): IPv6 real servers behind ip6ip6",
        "advertise MSS 1400",
        "ip -6 route replace default via GATEWAY advmss 1400",
    ] {
        assert!(on.contains(want), "missing `{want}` in\n{on}");
    }
    let off = check(&with("ipv6_mss_clamp = false"));
    assert!(
        off.contains("IPv6 MSS (ipv6_mss_clamp = false, ipv6_path_mtu = 1500; decision 0013): off"),
        "{off}"
    );
    assert!(!off.contains("advmss 1400"), "{off}");
    assert!(
        off.contains("ip -6 route replace default via GATEWAY   #"),
        "{off}"
    );
    // An IPv6 NAT server behind the tunnel is listed with its route.
    let nat = check(&EXAMPLE.replace(
        "address = \"2001:db8:6::12\"\nmethod = \"tun\"",
        "address = \"2001:db8:6::12\"\nmethod = \"nat\"",
    ));
    assert!(
        nat.contains("2001:db8:6::12 (nat, VIP 2001:db8:4::1):"),
        "{nat}"
    );
}

/// The example with `ipv6_path_mtu = 9000`, parsed, and that key's line.
fn jumbo_path_mtu() -> (anycastd::config::SiteConfig, usize) {
    let key = "ipv6_path_mtu = 9000";
    let text = with(key);
    let line = text.lines().position(|l| l == key).unwrap() + 1;
    (parse_str(file(), &text).unwrap(), line)
}

#[test]
fn a_path_mtu_above_the_directors_ipv6_device_is_refused_with_its_line() {
    use anycastd::plan::path_mtu_problem;
    let (cfg, line) = jumbo_path_mtu();
    let here = Some(("eth1", 1500));
    let p = path_mtu_problem(&cfg, here).expect("refused");
    assert_eq!(p.line, line);
    assert!(
        p.reason.starts_with(
            "ipv6_path_mtu 9000 cannot work: above the MTU of eth1 (1500), the device holding address_v6 2001:db8:2::2"
        ),
        "{}",
        p.reason
    );
    // A jumbo device takes it; away from the director nothing is known; the
    // default fits a 1500 device; with the clamp off the value is not used.
    let jumbo = Some(("eth1", 9000));
    assert!(path_mtu_problem(&cfg, jumbo).is_none());
    assert!(path_mtu_problem(&cfg, None).is_none());
    let default = parse_str(file(), EXAMPLE).unwrap();
    assert!(path_mtu_problem(&default, here).is_none());
    let small = Some(("eth1", 1400));
    let p = path_mtu_problem(&default, small).expect("1500 above a 1400 device");
    assert_eq!(
        p.line,
        EXAMPLE.lines().position(|l| l == "[site]").unwrap() + 1,
        "{}",
        p.reason
    );
    let off = parse_str(
        file(),
        &with("ipv6_mss_clamp = false\nipv6_path_mtu = 9000"),
    )
    .unwrap();
    assert!(path_mtu_problem(&off, here).is_none());
}

#[test]
fn the_daemon_and_check_refuse_the_path_mtu_through_the_host_problems() {
    let (cfg, line) = jumbo_path_mtu();
    let host = anycastd::host::Facts {
        interfaces: vec!["eth1".into()],
        ipv6_device: Some(("eth1".into(), 1500)),
    };
    let problems = anycastd::host::problems(&cfg, &host);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, line);
    assert!(
        problems[0].1.starts_with("ipv6_path_mtu 9000 cannot work"),
        "{problems:?}"
    );
    // Away from the director (the address is not here) nothing is refused.
    let away = anycastd::host::Facts::default();
    assert!(anycastd::host::problems(&cfg, &away).is_empty());
}
