//! The IPv6 side of the end-to-end tests: the seed's IPv6 plane (lab/src/seed6.rs),
//! dual-stack site configs, and the IPv6 twins of the helpers in `e2e`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anycast_lab::seed6::{VIP6, VIP6_PREFIX};
use anycast_lab::uml::guest;

use super::{Conn, lab_config};

pub fn vip6() -> SocketAddr {
    SocketAddr::new(VIP6.parse().expect("VIP6"), 80)
}

/// The lab's copy of `site`'s dual-stack config (`configs/<site>-dual-stack.toml`:
/// this director's and the peer's IPv6 addresses, VIP6 over the site's real servers
/// by their IPv6 addresses and the same method), with `edits` on the whole file.
pub fn dual_stack_config(site: &str, edits: &[(&str, &str)]) -> PathBuf {
    lab_config(&format!("{site}-dual-stack"), edits)
}

/// `ns`'s best path to the IPv6 VIP prefix, as its AS path.
pub fn best_path6(ns: &str) -> Option<String> {
    let out = guest::vtysh(ns, &format!("show bgp ipv6 unicast {VIP6_PREFIX} json"));
    let json = &out[out.find('{')?..=out.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["paths"].as_array()?.iter().find_map(|p| {
        p["bestpath"]["overall"]
            .as_bool()
            .filter(|b| *b)
            .map(|_| p["aspath"]["string"].as_str().unwrap_or("").to_string())
    })
}

/// Waits until `ns`'s best path to the IPv6 VIP prefix is `want`.
pub fn wait_path6(ns: &str, want: &str, t: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    guest::wait_for(t, || {
        (best_path6(ns).unwrap_or_default() == want).then_some(())
    })
    .map(|_| start.elapsed())
    .ok_or_else(|| {
        format!(
            "{ns} best IPv6 path is {:?}, wanted {want:?}",
            best_path6(ns)
        )
    })
}

/// Which real server answers a new IPv6 connection from client `ns`.
pub fn served6(ns: &str) -> String {
    guest::tcp::ask_once(ns, vip6()).unwrap_or_else(|e| format!("error: {e}"))
}

pub fn served6_n(ns: &str, n: usize) -> Vec<String> {
    (0..n).map(|_| served6(ns)).collect()
}

/// Up to `n` long-lived IPv6 connections from `ns`.
pub fn open_conns6(ns: &str, n: usize) -> Vec<Conn> {
    (0..n)
        .filter_map(|_| {
            let mut client = guest::tcp::Client::connect(ns, vip6()).ok()?;
            let server = client.ask().ok()?;
            Some(Conn { client, server })
        })
        .collect()
}

/// RX packets of the director's ip6ip6 device `anycast6`: what peers spilled here.
pub fn tunnel6_rx_packets(ns: &str) -> Option<u64> {
    let out = guest::sh_in(ns, "ip -s link show dev anycast6");
    let mut lines = out.lines();
    lines.find(|l| l.trim_start().starts_with("RX:"))?;
    lines.next()?.split_whitespace().nth(1)?.parse().ok()
}

/// "LOCAL PEER" of the established IPv6 sockets on port 80 in real server `ns`
/// whose peer is a client (2001:db8:3::/48; the director's checks left out).
pub fn client_sockets6(ns: &str) -> Vec<String> {
    guest::sh_in(ns, "ss -Htn6 state established '( sport = :80 )'")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (local, peer) = (f.get(f.len().checked_sub(2)?)?, f.last()?);
            peer.starts_with("[2001:db8:3:")
                .then(|| format!("{local} {peer}"))
        })
        .collect()
}

/// Active connections of the director's IPv6 loop-guard services (`FWM ... IPv6` in
/// `ipvsadm -Ln`): connections tunnelled here and held by the guard.
pub fn guard6_active(ns: &str) -> u32 {
    let out = guest::sh_in(ns, "ipvsadm -Ln");
    let mut in_guard = false;
    let mut active = 0;
    for l in out.lines() {
        if !l.starts_with("  ->") {
            in_guard = l.starts_with("FWM") && l.contains("IPv6");
            continue;
        }
        if in_guard {
            active += l
                .split_whitespace()
                .nth(4)
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0);
        }
    }
    active
}
