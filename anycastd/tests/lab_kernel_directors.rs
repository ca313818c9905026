//! Issue 15 in the lab kernel: a second director for IDC1 (lb1b) next to lb1 in the
//! paper's topology, both announcing the VIP to R11, which spreads flows over them
//! by ECMP (`maximum-paths 2`), both running anycastd with `[sync]` and the `mh`
//! scheduler. A long download from c31 is in progress through one of them; that
//! director's anycastd is SIGKILLed and its link to R11 cut; the download completes
//! through the other director, which learned the connection from the sync daemons.
//!
//! ```text
//!           r11 ─ eth2 10.101.1.0/30 ─ lb1 (eth1)   ┐ sync0 10.101.8.0/30
//!             └── eth9 10.101.7.0/30 ─ lb1b (eth1)  ┘
//!   lb1's br0 (10.101.5.0/24): rs511, rs512, and lb1b's eth2 (10.101.5.3)
//! ```

mod e2e;

use std::time::{Duration, Instant};

use anycast_lab::uml::{Lab, guest};
use anycast_lab::{Need, seed};
use e2e::*;

const TEST: &str = "lab_kernel_director_dies_and_its_download_completes_through_the_other";

fn topology() -> anycast_lab::uml::Topology {
    seed::topology()
        .router("lb1b")
        .link(
            "r11",
            "eth9",
            "10.101.7.1/30",
            "lb1b",
            "eth1",
            "10.101.7.2/30",
        )
        .link("lb1", "eth8", "", "lb1b", "eth2", "10.101.5.3/24")
        .link(
            "lb1",
            "sync0",
            "10.101.8.1/30",
            "lb1b",
            "sync0",
            "10.101.8.2/30",
        )
        .cmd("lb1", "ip link set dev eth8 master br0")
        .route("lb1b", "default via 10.101.7.1")
        // As on lb1 (seed.rs): DR replies forwarded by this director carry the VIP,
        // one of its own addresses, as source; without this they are martians.
        .sysctl("lb1b", "net.ipv4.conf.all.accept_local", "1")
}

#[test]
fn lab_kernel_director_dies_and_its_download_completes_through_the_other() {
    if guest::active().is_some() {
        return in_guest();
    }
    run_lab(
        TEST,
        &[Need::Program("/usr/sbin/ipvsadm")],
        Lab::new("directors")
            .extra_modules(&["ip_vs_mh", "sch_tbf"])
            .timeout(Duration::from_secs(150)),
        topology(),
    );
}

const SYNC: &str = "\n[sync]\ninterface = \"sync0\"\nsyncid = 1\n";

/// lb1b's config: IDC1's, with its own uplink, no peer sites (lb1 trades the site's
/// reports), its own state and API token.
fn lb1b_config() -> std::path::PathBuf {
    let base = lab_config("idc1", &[("scheduler = \"wlc\"", "scheduler = \"mh\"")]);
    let text = std::fs::read_to_string(&base).unwrap();
    let peer_start = text.find("[[peer]]").unwrap();
    let peer_end = text[peer_start..].find("[[vip]]").unwrap() + peer_start;
    let mut text = format!("{}{}", &text[..peer_start], &text[peer_end..]);
    for (from, to) in [
        ("address = \"10.101.1.2\"", "address = \"10.101.7.2\""),
        (
            "listen = \"10.101.1.2:9181\"",
            "listen = \"10.101.7.2:9181\"",
        ),
        ("address = \"10.101.1.1\"", "address = \"10.101.7.1\""),
        ("state-idc1", "state-idc1b"),
        ("api-idc1.token", "api-idc1b.token"),
    ] {
        assert!(text.contains(from), "`{from}` not in {text}");
        text = text.replace(from, to);
    }
    text.push_str(SYNC);
    let dir = base.parent().unwrap();
    std::fs::copy(dir.join("api-idc1.token"), dir.join("api-idc1b.token")).unwrap();
    let path = dir.join("idc1b.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Which director holds the client's connection as its own (`LOCAL` in the sync
/// table), with the table.
fn scheduled_by() -> Option<&'static str> {
    ["lb1", "lb1b"].into_iter().find(|ns| {
        guest::sh_in(ns, "cat /proc/net/ip_vs_conn_sync")
            .lines()
            .any(|l| l.contains("ESTABLISHED") && l.contains("LOCAL"))
    })
}

fn in_guest() {
    let _servers: Vec<RealServer> = ["rs511", "rs512", "rs611", "rs612"]
        .into_iter()
        .map(RealServer::start)
        .collect();
    // R11 spreads the VIP over both directors and peers with lb1b.
    let r11 = guest::sh_in(
        "r11",
        "vtysh -N r11 -c 'conf t' -c 'router bgp 1' -c 'neighbor 10.101.7.2 remote-as 5' \
         -c 'neighbor 10.101.7.2 timers connect 1' -c 'address-family ipv4 unicast' \
         -c 'maximum-paths 2' && echo ok",
    );
    guest::check("r11_configured", r11.contains("ok"), &r11);
    // lb1b's file first: it is made from idc1.toml, which lb1 reads as it starts.
    let lb1b_cfg = lb1b_config();
    let mut lb1 = Anycastd::start(
        "lb1",
        lab_config(
            "idc1",
            &[
                ("scheduler = \"wlc\"", "scheduler = \"mh\""),
                ("[[vip]]", &format!("{SYNC}\n[[vip]]")),
            ],
        ),
    );
    let mut lb1b = Anycastd::start("lb1b", lb1b_cfg);
    let _lb2 = Anycastd::start("lb2", lab_config("idc2", &[]));
    let two_paths = guest::wait_for(Duration::from_secs(40), || {
        let r = guest::sh_in("r11", "ip route show 10.101.4.0/24");
        (r.contains("10.101.1.2") && r.contains("10.101.7.2")).then_some(r)
    });
    if !guest::check(
        "r11_has_both_directors",
        two_paths.is_some(),
        &guest::sh_in("r11", "ip route; vtysh -N r11 -c 'show ip bgp'"),
    ) {
        println!("lb1:\n{}\nlb1b:\n{}", lb1.log(), lb1b.log());
        return;
    }
    let c31 = wait_path("c31", "3 1 5", Duration::from_secs(20));
    guest::check("c31_reaches_idc1", c31.is_ok(), &format!("{c31:?}"));
    for (name, d) in [("lb1", &lb1), ("lb1b", &lb1b)] {
        let ok = d.wait_status(Duration::from_secs(10), |s| {
            s.vips.iter().all(|v| v.servers_up == 2)
                && s.sync.as_ref().is_some_and(|y| y.roles.len() == 2)
        });
        guest::check(
            &format!("{name}_serves_and_syncs"),
            ok.is_some(),
            &d.ctl("status").1,
        );
    }

    let mut conn = match BulkConn::open("c31") {
        Ok(c) => c,
        Err(e) => {
            guest::check("download_connects", false, &e.to_string());
            return;
        }
    };
    let server = conn.server.clone();
    // A first download: the connection is established and synced before the kill.
    let warm = conn.download(1 << 20, Duration::from_secs(20));
    guest::check("first_download", warm.is_ok(), &format!("{warm:?}"));
    let a = scheduled_by();
    let Some(a) = a else {
        guest::check(
            "a_director_scheduled_it",
            false,
            &guest::sh_in("lb1", "ipvsadm -Lnc"),
        );
        return;
    };
    let b = if a == "lb1" { "lb1b" } else { "lb1" };
    let synced = guest::wait_for(Duration::from_secs(8), || {
        guest::sh_in(b, "cat /proc/net/ip_vs_conn_sync")
            .lines()
            .any(|l| l.contains("ESTABLISHED") && l.contains("SYNC"))
            .then_some(())
    });
    guest::check(
        "the_other_director_learned_it",
        synced.is_some(),
        &format!(
            "A={a}\n{}",
            guest::sh_in(b, "ipvsadm -Lnc; ipvsadm -L --daemon")
        ),
    );
    // DR replies leave through the LAN's gateway: make it B, so that only the
    // client's direction depends on A (the upstream's ECMP moves it). The servers
    // send at 40 Mbit/s, so that the download lasts a few seconds.
    let gw = if b == "lb1" {
        "10.101.5.1"
    } else {
        "10.101.5.3"
    };
    for rs in ["rs511", "rs512"] {
        let out = guest::sh_in(
            rs,
            &format!(
                "ip route replace default via {gw} && \
                 tc qdisc replace dev eth1 root tbf rate 40mbit burst 64kb latency 200ms && echo ok"
            ),
        );
        guest::check(&format!("{rs}_gateway_and_rate"), out.contains("ok"), &out);
    }

    // The long download (24 MiB, about 5 s); A dies a second into it.
    let total = 24 << 20;
    let t0 = Instant::now();
    let dl = std::thread::spawn(move || {
        let r = conn.download(total, Duration::from_secs(60));
        (r, conn.server.clone())
    });
    std::thread::sleep(Duration::from_secs(1));
    let killed_at = t0.elapsed();
    let finished_early = dl.is_finished();
    let a_iface = if a == "lb1" { "eth2" } else { "eth9" };
    if a == "lb1" {
        lb1.crash();
    } else {
        lb1b.crash();
    }
    guest::sh_in("r11", &format!("ip link set dev {a_iface} down"));
    let (r, by) = dl.join().unwrap();
    guest::check(
        "download_was_in_progress_at_the_kill",
        !finished_early,
        &format!("killed at {killed_at:?}"),
    );
    let ok = r.is_ok() && by == server;
    guest::check(
        "download_completes_through_the_other_director",
        ok,
        &format!(
            "A={a}, killed {killed_at:?} in, {} MiB: {r:?} (server {by}); B:\n{}",
            total >> 20,
            guest::sh_in(b, "ipvsadm -Lnc | head -5")
        ),
    );
    if let Ok(took) = r {
        println!(
            "BENCH director_killed_download_{}mib_ms {} (killed at {} ms)",
            total >> 20,
            took.as_millis(),
            killed_at.as_millis()
        );
    }
}
