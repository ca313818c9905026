//! Every way a config file can be refused, with the exact message an operator sees.

use std::path::Path;

use anycastd::config::{self, parse_str};

const GOOD: &str = include_str!("../../configs/idc1.toml");

fn configs_dir_file() -> &'static Path {
    // key_file paths resolve against the config's directory.
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/idc1.toml"))
}

/// Replaces `from` (which must occur) in the good file and returns the problems.
fn refused(from: &str, to: &str) -> Vec<String> {
    assert!(GOOD.contains(from), "test bug: `{from}` not in idc1.toml");
    let text = GOOD.replacen(from, to, 1);
    match parse_str(configs_dir_file(), &text) {
        Ok(_) => panic!("accepted a bad file (replaced `{from}` with `{to}`)"),
        Err(e) => e
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.line, p.reason))
            .collect(),
    }
}

fn line_of(needle: &str) -> usize {
    GOOD.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn the_shipped_configs_are_valid() {
    for f in ["idc1.toml", "idc2.toml"] {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs")).join(f);
        let cfg = config::load(&path).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(cfg.vips.len(), 1);
        assert_eq!(cfg.vips[0].prefix.to_string(), "10.101.4.0/24");
        assert_eq!(cfg.exchange.interval.as_secs(), 120);
        assert_eq!(cfg.peers[0].key.len(), 33);
    }
}

#[test]
fn defaults_are_the_papers() {
    let cfg = parse_str(configs_dir_file(), GOOD).unwrap();
    assert_eq!(cfg.spill.start_local_above, 1.1);
    assert_eq!(cfg.spill.stop_local_at_or_below, 1.0);
    assert_eq!(cfg.spill.remote_below, 0.7);
    assert_eq!(cfg.bgp.router_id.to_string(), "10.101.1.2");
}

#[test]
fn a_syntax_error_names_file_and_line() {
    let text = GOOD.replacen("asn = 5", "asn = = 5", 1);
    let err = parse_str(Path::new("/etc/anycastd/site.toml"), &text).unwrap_err();
    let shown = err.to_string();
    let line = line_of("asn = 5");
    assert!(
        shown.starts_with(&format!("/etc/anycastd/site.toml:{line}:")),
        "{shown}"
    );
}

#[test]
fn an_unknown_key_is_refused() {
    let p = refused("hold_time = 9", "hold_tme = 9");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with(&format!(
            "{}: unknown field `hold_tme`",
            line_of("hold_time = 9")
        )),
        "{p:?}"
    );
}

#[test]
fn a_missing_required_key_is_refused() {
    let p = refused("asn = 5\n", "");
    assert!(p[0].contains("missing field `asn`"), "{p:?}");
}

#[test]
fn each_bad_value_names_its_line_and_reason() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "address = \"10.101.1.2\"",
            "address = \"10.101.1.300\"",
            "site address `10.101.1.300` is invalid: invalid IPv4 address syntax",
        ),
        (
            "hold_time = 9",
            "hold_time = 2",
            "hold_time 2 is invalid: 0 (no keepalives) or at least 3 seconds (RFC 4271 4.2)",
        ),
        (
            "keepalive = 3",
            "keepalive = 9",
            "keepalive 9 must be below hold_time 9",
        ),
        (
            "address = \"10.101.4.1\"",
            "address = \"10.101.9.1\"",
            "vip address 10.101.9.1 is not inside prefix 10.101.4.0/24",
        ),
        (
            "prefix = \"10.101.4.0/24\"",
            "prefix = \"10.101.4.1/24\"",
            "prefix `10.101.4.1/24` has host bits set (did you mean 10.101.4.0/24?)",
        ),
        (
            "scheduler = \"wlc\"",
            "scheduler = \"fastest\"",
            "scheduler `fastest` is not an IPVS scheduler",
        ),
        (
            "protocol = \"tcp\"",
            "protocol = \"sctp\"",
            "protocol `sctp` is not `tcp` or `udp`",
        ),
        (
            "capacity = 100",
            "capacity = 0",
            "capacity must be at least 1 connection",
        ),
        (
            "min_up = 1",
            "min_up = 3",
            "min_up 3 exceeds the 2 real servers of vip `web`: it could never be announced",
        ),
        ("min_up = 1", "min_up = 0", "min_up must be at least 1"),
        (
            "interval = \"120s\"",
            "interval = \"120\"",
            "exchange interval `120` is invalid: duration `120` has no unit",
        ),
        (
            "timeout = \"200ms\"",
            "timeout = \"3s\"",
            "check timeout 3s exceeds interval 200ms",
        ),
        ("rise = 2", "rise = 0", "rise must be 1-100, not 0"),
        (
            "method = \"dr\"",
            "method = \"ipip\"",
            "method `ipip` is not `dr`, `nat` or `tun`",
        ),
        (
            "listen = \"127.0.0.1:9180\"",
            "listen = \"0.0.0.0:9180\"",
            "api listen `0.0.0.0:9180` is not a loopback address",
        ),
        (
            "url = \"http://10.101.2.2:9181/v1/report\"",
            "url = \"ftp://x\"",
            "url `ftp://x` must start with http:// or https://",
        ),
        (
            "key_file = \"keys/idc1-idc2.key\"",
            "key = \"short\"",
            "the key for peer `idc2` is 5 bytes; at least 16 are required",
        ),
        (
            "key_file = \"keys/idc1-idc2.key\"",
            "key_file = \"keys/missing.key\"",
            "key_file `",
        ),
        (
            "key_file = \"keys/idc1-idc2.key\"",
            "next_key = \"short\"\nkey_file = \"keys/idc1-idc2.key\"",
            "the next_key for peer `idc2` is 5 bytes; at least 16 are required",
        ),
        (
            "key_file = \"keys/idc1-idc2.key\"",
            "next_key = \"0123456789abcdef\"\nkey_file = \"keys/idc1-idc2.key\"\nnext_key_file = \"keys/idc1-idc2.key\"",
            "give either next_key or next_key_file, not both",
        ),
        (
            "tunnel_endpoint = \"10.101.2.2\"",
            "tunnel_endpoint = \"10.101.1.2\"",
            "tunnel_endpoint is this site's own address",
        ),
        (
            "remote_asn = 1",
            "remote_asn = 0",
            "remote_asn 0 is reserved",
        ),
        (
            "stop_local_at_or_below = 1.0",
            "stop_local_at_or_below = 1.2",
            "stop_local_at_or_below (1.2) must be below start_local_above (1.1)",
        ),
        (
            "remote_below = 0.7",
            "remote_below = -0.5",
            "remote_below must be between 0 and 100, not -0.5",
        ),
        (
            "max_share = 0.5",
            "max_share = 1.5",
            "max_share must be between 0 and 1, not 1.5",
        ),
        (
            "shutdown_wait = \"5s\"",
            "shutdown_wait = \"5 days\"",
            "shutdown_wait `5 days` is invalid",
        ),
    ];
    for (from, to, want) in cases {
        let p = refused(from, to);
        let line = GOOD[..GOOD.find(from).unwrap()].matches('\n').count() + 1;
        assert!(
            p.iter().any(|x| x.contains(want)),
            "replacing `{from}` with `{to}`: wanted `{want}`, got {p:?}"
        );
        // The problem points at the line of the value it is about.
        assert!(
            p.iter()
                .any(|x| x.starts_with(&format!("{line}: ")) && x.contains(want)),
            "replacing `{from}` with `{to}`: wanted line {line}, got {p:?}"
        );
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let text =
        GOOD.replacen("rise = 2", "rise = 0", 1)
            .replacen("capacity = 100", "capacity = 0", 1);
    let err = parse_str(configs_dir_file(), &text).unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
    assert!(
        err.to_string().contains("rise must be 1-100, not 0"),
        "{err}"
    );
}

#[test]
fn a_duplicate_vip_is_refused() {
    let vip_start = GOOD.find("[[vip]]").unwrap();
    let text = format!("{GOOD}\n{}", &GOOD[vip_start..]);
    let err = parse_str(configs_dir_file(), &text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("vip `web` is configured twice"), "{err}");
    assert!(
        err.contains("vip address 10.101.4.1 is used by two VIPs"),
        "{err}"
    );
}

#[test]
fn peers_need_the_data_plane() {
    let p = refused(
        "vip_device = \"lo\"",
        "vip_device = \"lo\"\ndataplane = false",
    );
    assert!(
        p.iter()
            .any(|x| x.contains("[[peer]] needs the data plane")),
        "{p:?}"
    );
}

#[test]
fn anycastd_check_prints_the_plan_or_refuses_with_file_and_line() {
    let bin = env!("CARGO_BIN_EXE_anycastd");
    let good = configs_dir_file();
    let out = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("ipvsadm -A -t 10.101.4.1:80 -s wlc"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("idc1.toml: valid"), "{text}");

    let dir = std::env::temp_dir().join(format!("anycastd-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, GOOD.replacen("hold_time = 9", "hold_time = 2", 1)).unwrap();
    let out = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    let line = line_of("hold_time = 9");
    assert!(
        err.contains(&format!("{}:{line}:", bad.display()))
            && err.contains("hold_time 2 is invalid"),
        "{err}"
    );
    // Running (not just checking) a bad file refuses the same way, touching nothing.
    let out = std::process::Command::new(bin)
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_passive_neighbor_needs_the_listener() {
    // The listener is on by default; turned off, a passive neighbor is refused.
    let text = GOOD.replacen("asn = 5", "asn = 5\nlisten = false", 1);
    assert!(text != GOOD);
    let p = match parse_str(
        configs_dir_file(),
        &text.replacen("hold_time = 9", "hold_time = 9\npassive = true", 1),
    ) {
        Ok(_) => panic!("accepted a passive neighbor without the listener"),
        Err(e) => e
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.line, p.reason))
            .collect::<Vec<_>>(),
    };
    assert!(
        p.iter()
            .any(|p| p.contains("is passive but [bgp] listen is off")),
        "{p:?}"
    );
}

#[test]
fn bfd_timers_that_cannot_work_are_refused_with_the_line() {
    let line = line_of("hold_time = 9") + 2;
    let p = refused(
        "hold_time = 9",
        "hold_time = 9\nbfd = true\nbfd_min_tx = \"5ms\"\nbfd_multiplier = 0",
    );
    assert!(
        p.contains(&format!(
            "{line}: bfd_min_tx 5ms is below 10 ms: no BFD implementation keeps that up"
        )),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|p| p.starts_with(&format!("{}: bfd_multiplier 0", line + 1))),
        "{p:?}"
    );
    let p = refused("hold_time = 9", "hold_time = 9\nbfd_min_rx = \"100ms\"");
    assert!(
        p.iter()
            .any(|p| p.contains("BFD timers given but bfd is not on")),
        "{p:?}"
    );
}

#[test]
fn bfd_defaults_are_frrs() {
    let text = GOOD.replacen("hold_time = 9", "hold_time = 9\nbfd = true", 1);
    let cfg = parse_str(configs_dir_file(), &text).expect("valid");
    let b = cfg.bgp.neighbors[0].bfd.expect("bfd on");
    assert_eq!(
        (b.min_tx, b.min_rx, b.multiplier),
        (
            std::time::Duration::from_millis(300),
            std::time::Duration::from_millis(300),
            3
        )
    );
}

#[test]
fn an_icmp_check_has_no_fast_detect() {
    let text = GOOD.replacen("type = \"tcp\"", "type = \"icmp\"", 1);
    let text = text.replacen("fast_detect = true\n", "", 1);
    let cfg = parse_str(configs_dir_file(), &text).expect("an icmp check is valid");
    let check = &cfg.vips[0].services[0].real_servers[0].check;
    assert_eq!(check.kind, anycastd::config::CheckKind::Icmp);
    assert!(!check.fast_detect);
    let bad = text.replacen("type = \"icmp\"", "type = \"icmp\"\nfast_detect = true", 1);
    let p = match parse_str(configs_dir_file(), &bad) {
        Ok(_) => panic!("accepted fast_detect with an icmp check"),
        Err(e) => e
            .problems
            .iter()
            .map(|p| p.reason.clone())
            .collect::<Vec<_>>(),
    };
    assert!(
        p.iter().any(|p| p.contains("an icmp check has none")),
        "{p:?}"
    );
}

#[test]
fn dr_and_tun_cannot_change_the_port() {
    for method in ["dr", "tun"] {
        let to = format!("method = \"{method}\"\nport = 8080");
        let p = refused("method = \"dr\"", &to);
        let line = line_of("method = \"dr\"") + 1;
        assert!(
            p.iter().any(|p| p.starts_with(&format!(
                "{line}: method {method} cannot change the port (80 -> 8080)"
            ))),
            "{method}: {p:?}"
        );
    }
    // NAT may.
    let text = GOOD.replacen("method = \"dr\"", "method = \"nat\"\nport = 8080", 1);
    assert!(parse_str(configs_dir_file(), &text).is_ok());
}

/// GOOD with `extra` more real servers (NAT, 10.101.7.x and up) before its first one.
fn with_servers(extra: usize) -> String {
    let at = GOOD
        .find("[[vip.service.real_server]]")
        .expect("a real server");
    let mut more = String::new();
    for i in 0..extra {
        more.push_str(&format!(
            "[[vip.service.real_server]]\naddress = \"10.101.{}.{}\"\nmethod = \"nat\"\ncapacity = 100\n\n",
            7 + i / 250,
            i % 250 + 1
        ));
    }
    format!("{}{more}{}", &GOOD[..at], &GOOD[at..])
}

#[test]
fn checks_that_would_open_too_many_connections_are_refused_with_the_rate() {
    // 401 servers with a full check every 5 s (echo, the default): 80 a second.
    let text = with_servers(399);
    parse_str(configs_dir_file(), &text).expect("echo keeps 401 servers cheap");
    // The same without echo: a connection every 200 ms each, 2005 a second.
    let bad = text.replacen("type = \"tcp\"", "type = \"tcp\"\necho = false", 1);
    let p = match parse_str(configs_dir_file(), &bad) {
        Ok(_) => panic!("accepted 2005 check connections a second"),
        Err(e) => e.problems,
    };
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].reason
            .contains("2005 new TCP connections a second across the site"),
        "{}",
        p[0].reason
    );
    // The line of the server that took it past the limit (the 401st).
    let nth = bad
        .match_indices("[[vip.service.real_server]]")
        .nth(400)
        .map(|(i, _)| bad[..i].matches('\n').count() + 2)
        .expect("401 servers");
    assert_eq!(p[0].line, nth, "{}", p[0].reason);
    // And full_interval below interval is refused with its line.
    let p = refused("fall = 3", "fall = 3\nfull_interval = \"100ms\"");
    assert!(
        p.iter()
            .any(|p| p.contains("full_interval must be at least interval")),
        "{p:?}"
    );
}

/// Runs `anycastd check` on the good file with `edit` applied (key files made
/// absolute, the file in a temp dir): exit code, stdout, stderr and the file's path.
fn check(name: &str, edit: impl FnOnce(String) -> String) -> (Option<i32>, String, String, String) {
    let bin = env!("CARGO_BIN_EXE_anycastd");
    let dir = std::env::temp_dir().join(format!("anycastd-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/keys");
    let mut text = GOOD.to_string();
    for key in ["idc1-idc2.key", "idc1-directors.key"] {
        text = text.replace(
            &format!("key_file = \"keys/{key}\""),
            &format!("key_file = \"{}\"", keys.join(key).display()),
        );
    }
    let text = edit(text);
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        file.display().to_string(),
    )
}

#[test]
fn check_warns_with_the_line_of_a_dr_server_off_the_directors_networks() {
    // 203.0.113.0/24 (TEST-NET-3) is on no interface of a test machine.
    let (code, stdout, stderr, file) = check("dr", |t| {
        t.replacen("address = \"10.101.5.11\"", "address = \"203.0.113.77\"", 1)
    });
    assert_eq!(code, Some(0), "a warning, not a refusal: {stderr}");
    let line = line_of("[[vip.service.real_server]]");
    assert!(
        stderr.contains(&format!(
            "{file}:{line}: warning: real server 203.0.113.77 (method dr) is not on a network directly connected to this director"
        )),
        "{stderr}"
    );
    // And what each DR server must have set.
    assert!(
        stdout.contains("203.0.113.77, 10.101.5.12 (dr, VIP 10.101.4.1):")
            && stdout.contains("ip addr add 10.101.4.1/32 dev lo"),
        "{stdout}"
    );
}

#[test]
fn check_refuses_a_sync_interface_this_host_lacks_and_plans_the_daemons() {
    let lines = GOOD.lines().count();
    let (code, _, stderr, file) = check("sync-missing", |t| {
        format!("{t}\n[sync]\ninterface = \"nosuch0\"\nsyncid = 7\n")
    });
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{file}:{}: sync interface `nosuch0` does not exist on this host",
            lines + 3
        )),
        "{stderr}"
    );
    // `lo` exists everywhere: the plan starts both daemons, and the site's `wlc`
    // services are warned about.
    let (code, stdout, stderr, _) = check("sync-lo", |t| {
        format!("{t}\n[sync]\ninterface = \"lo\"\nsyncid = 7\nport = 8849\n")
    });
    assert_eq!(code, Some(0), "{stderr}");
    for role in ["master", "backup"] {
        assert!(
            stdout.contains(&format!(
                "ipvsadm --start-daemon {role} --mcast-interface lo --syncid 7 --mcast-port 8849"
            )),
            "{stdout}"
        );
    }
    assert!(
        stderr.contains("uses `wlc` with [sync]") && stderr.contains("`mh` or `sh`"),
        "{stderr}"
    );
    // A NAT server at a site of several directors: warned with its own line and why.
    let (code, _, stderr, _) = check("sync-nat", |t| {
        let t = t.replacen("method = \"dr\"", "method = \"nat\"", 1);
        format!("{t}\n[sync]\ninterface = \"lo\"\nsyncid = 7\n")
    });
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "real server 10.101.5.11 of service 10.101.4.1 port 80 is reached by NAT with [sync]"
        ) && stderr.contains("DR or TUN"),
        "{stderr}"
    );
}
