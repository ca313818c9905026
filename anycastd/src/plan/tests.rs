use std::path::Path;

#[test]
fn the_plan_of_the_lab_site_names_every_object() {
    let cfg = crate::config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/idc1.toml"
    )))
    .unwrap();
    let plan = super::render(&cfg);
    for want in [
        "site idc1 (director 10.101.1.2), AS 5",
        "neighbor 10.101.1.1 AS 1 (eBGP), hold 9s",
        "announce 10.101.4.0/24 (as-path 5, next-hop self) while at least 1 real server(s) of vip web are up",
        "ip link add anycast0 type ipip local 10.101.14.1",
        "ip addr add 10.101.4.1/32 dev lo",
        "ipvsadm -A -t 10.101.4.1:80 -s wlc",
        "ipvsadm -a -t 10.101.4.1:80 -r 10.101.2.2:80 -i -w 0   (peer site idc2",
        "ipvsadm -a -f 1094909953 -r 10.101.5.11:80 -g -w",
        "match ip dst 10.101.4.1/32 match ip protocol 6 0xff match ip dport 80 0xffff action skbedit mark 1094909953   (loop guard)",
        "web/tcp80/10.101.5.11:80 (10.101.5.11:80): tcp connect every 200ms (timeout 200ms), rise 2 fall 3",
        "peer idc2 at http://10.101.2.2:9181/v1/report (IPv4 over IPIP to 10.101.2.2), HMAC-SHA256 key of 33 bytes",
        "  director lb1 ; site config digest ",
        "  director lb1b at http://10.101.7.2:9181/v1/report (10.101.7.2), the site's figures shared",
        "spill on (one rule and one share per site, both families; load counts both): start when local > 1.10 and peer < 0.70",
        "sysctl net.ipv4.vs.pmtu_disc=0   (tunnel_pmtu = \"fragment\"",
        "Real servers: what each DR and TUN server must have set",
        "  10.101.5.11, 10.101.5.12 (dr, VIP 10.101.4.1):\n    ip addr add 10.101.4.1/32 dev lo   # ",
        "    sysctl -qw net.ipv4.conf.all.arp_ignore=1   # ",
        "Local API on 127.0.0.1:9180 (TCP, loopback)\n  may change the site: nobody: no token_file, the API is read-only\n  may read without a token: any local process: status, why, metrics",
    ] {
        assert!(plan.contains(want), "missing `{want}` in\n{plan}");
    }
}

#[test]
fn a_dr_server_off_the_directors_networks_is_warned_with_its_line() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/idc1.toml"));
    let cfg = crate::config::load(path).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let on = |net: &str| super::warnings(&cfg, &[net.parse().unwrap()]);
    assert!(on("10.101.5.0/24").is_empty());
    let w = on("10.101.1.0/30");
    assert_eq!(w.len(), 2, "{w:?}");
    let line = text.lines().nth(w[0].line - 1).unwrap_or_default();
    assert!(
        line.contains("real_server") || line.contains("10.101.5.11"),
        "line {}: {line}",
        w[0].line
    );
    assert!(
        w[0].reason.starts_with("real server 10.101.5.11 (method dr) is not on a network directly connected to this director (its networks: 10.101.1.0/30)"),
        "{}",
        w[0].reason
    );
    // TUN and NAT servers may be anywhere routed.
    let tun = crate::config::parse_str(path, &text.replace("method = \"dr\"", "method = \"tun\""))
        .unwrap();
    assert!(super::warnings(&tun, &["10.101.1.0/30".parse().unwrap()]).is_empty());
}
