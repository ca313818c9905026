//! Issue 15 in the lab kernel, on the seed topology as it is (lab/src/seed.rs):
//! IDC1's two directors lb1 and lb1b, both uplinked to R11, which spreads flows over
//! them by ECMP (`maximum-paths 2`), on IDC1's LAN switch sw1 with the DR servers'
//! gateway R11, linked by `sync0`.
//!
//! ```text
//!           r11 ─ eth2 10.101.1.0/30 ─ lb1 (eth1)   ┐ sync0 10.101.8.0/30
//!            │└── eth3 10.101.7.0/30 ─ lb1b (eth1)  ┘
//!            └─ eth4 10.101.5.254 ─ sw1 ─ lb1, lb1b (br0 .5.1, .5.3), rs511, rs512
//! ```
//!
//! One boot, ECMP (configs/idc1.toml and idc1b.toml, `scheduler = "mh"`, `[sync]`):
//! connections held through one director and synced both ways count once in the site
//! load both directors compute, and IDC2 sees one idc1; a director that loses its
//! real servers withdraws alone and R11 keeps the route
//! through the other; the last one withdraws the site; then a long download is in
//! progress through one director, whose anycastd is SIGKILLed and link to R11 cut,
//! and it completes through the other, which learned the connection from the sync
//! daemons. A second boot, primary/backup: first lb1b announces with `med = 100`,
//! R11 installs lb1 only, and lb1b's route while lb1 is drained; then with
//! `prepend = 2`, R11 sends everything to lb1; lb1 dies and lb1b takes over.

mod e2e;

use std::time::{Duration, Instant};

use anycast_lab::Need;
use anycast_lab::uml::{Lab, guest};
use anycastd::status::{PeerState, VipState};
use e2e::*;

const TEST: &str = "lab_kernel_director_dies_and_its_download_completes_through_the_other";
const BACKUP: &str = "lab_kernel_backup_director_takes_over_when_the_primary_dies";

fn lab(name: &str) -> Lab {
    Lab::new(name)
        .extra_modules(&["ip_vs_mh", "sch_tbf"])
        .timeout(Duration::from_secs(180))
}

#[test]
fn lab_kernel_director_dies_and_its_download_completes_through_the_other() {
    if guest::active().is_some() {
        return in_guest();
    }
    run_seed_lab(
        TEST,
        &[Need::Program("/usr/sbin/ipvsadm")],
        lab("directors"),
    );
}

#[test]
fn lab_kernel_backup_director_takes_over_when_the_primary_dies() {
    if guest::active().is_some() {
        return backup_in_guest();
    }
    run_seed_lab(BACKUP, &[], lab("directors-backup"));
}

const SYNC: &str = "\n[sync]\ninterface = \"sync0\"\nsyncid = 1\n";
const MH: (&str, &str) = ("scheduler = \"wlc\"", "scheduler = \"mh\"");

/// A director's lab config: `configs/<config>.toml` with the `mh` scheduler, `[sync]`
/// and `edits`.
fn director_config(config: &str, edits: &[(&str, &str)]) -> std::path::PathBuf {
    let sync = format!("{SYNC}\n[[vip]]");
    let mut all = vec![MH, ("[[vip]]", sync.as_str())];
    all.extend_from_slice(edits);
    lab_config(config, &all)
}

/// R11's kernel next hops for the VIP prefix.
fn r11_next_hops() -> String {
    guest::sh_in("r11", "ip route show 10.101.4.0/24")
}

/// Waits until R11's kernel route to the VIP prefix goes through exactly the
/// directors of `via` (by uplink address; none: the prefix is not IDC1's at R11).
fn wait_r11(via: &[&str], t: Duration) -> Option<Duration> {
    let start = Instant::now();
    guest::wait_for(t, || {
        let r = r11_next_hops();
        ["10.101.1.2", "10.101.7.2"]
            .iter()
            .all(|a| r.contains(a) == via.contains(a))
            .then(|| start.elapsed())
    })
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
    let mut lb1 = Anycastd::start("lb1", director_config("idc1", &[]));
    let mut lb1b = Anycastd::start("lb1b", director_config("idc1b", &[]));
    let lb2 = Anycastd::start("lb2", lab_config("idc2", &[]));
    let both = &["10.101.1.2", "10.101.7.2"];
    if !guest::check(
        "r11_has_both_directors",
        wait_r11(both, Duration::from_secs(40)).is_some(),
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
    site_load_counts_each_connection_once(&lb1, &lb1b, &lb2);
    lose_the_lan_one_director_then_the_other(&lb1, &lb1b);
    download_through_a_dying_director(&mut lb1, &mut lb1b);
}

/// `ns`'s established connections to the VIP by origin: (`LOCAL`, `SYNC`).
fn origins(ns: &str) -> (usize, usize) {
    let table = guest::sh_in(ns, "cat /proc/net/ip_vs_conn_sync");
    let vip = table
        .lines()
        .filter(|l| l.contains("0A650401 0050") && l.contains("ESTABLISHED"));
    vip.fold((0, 0), |(l, y), line| {
        (
            l + usize::from(line.contains("LOCAL")),
            y + usize::from(line.contains("SYNC")),
        )
    })
}

/// The kernel's `ActiveConn` summed over the VIP service's destinations.
fn kernel_active(ns: &str) -> u64 {
    let out = guest::sh_in(ns, "ipvsadm -Ln -t 10.101.4.1:80");
    out.lines()
        .filter(|l| l.trim_start().starts_with("->"))
        .filter_map(|l| l.split_whitespace().nth(4)?.parse::<u64>().ok())
        .sum()
}

/// Issue 15, items 3 and 5: N connections held from c31 (R11 hashes a client to one
/// director), synced both ways, so both kernels count all N as active. Each director
/// reports only its own (`LOCAL`), so both compute the site load N/200 (two servers of
/// capacity 100), not 2N/200, and IDC2 sees one idc1 with that load.
fn site_load_counts_each_connection_once(lb1: &Anycastd, lb1b: &Anycastd, lb2: &Anycastd) {
    const N: usize = 20;
    let held = open_conns("c31", N);
    let synced = guest::wait_for(Duration::from_secs(10), || {
        let (a, b) = (origins("lb1"), origins("lb1b"));
        (a.0 + b.0 == N && a.1 + b.1 == N).then_some((a, b))
    });
    let (a, b) = synced.unwrap_or((origins("lb1"), origins("lb1b")));
    guest::check(
        "n_connections_synced_both_ways",
        held.len() == N && synced.is_some(),
        &format!("{} held; lb1 (local, synced) {a:?}, lb1b {b:?}", held.len()),
    );
    let want = N as f64 / 200.0;
    let near = |l: Option<f64>| l.is_some_and(|l| (l - want).abs() < 0.5 / 200.0);
    let t0 = Instant::now();
    for (name, d) in [("lb1", lb1), ("lb1b", lb1b)] {
        let ok = d.wait_status(Duration::from_secs(15), |s| {
            near(s.local_load)
                && s.directors
                    .as_ref()
                    .is_some_and(|ds| ds.others.iter().all(|o| o.counted))
        });
        let (_, text) = d.ctl("status");
        guest::check(
            &format!("{name}_site_load_counts_n_once"),
            ok.is_some(),
            &format!("want {want}\n{text}"),
        );
        // The status text: the directors' loads and the sync line (item 5).
        for l in text
            .lines()
            .filter(|l| l.contains("(this)") || l.starts_with("lb1") || l.starts_with("sync"))
        {
            println!("STATUS {name}: {l}");
        }
    }
    let idc2 = lb2.wait_status(Duration::from_secs(15), |s| {
        let idc1: Vec<_> = s.peers.iter().filter(|p| p.name == "idc1").collect();
        idc1.len() == 1 && near(idc1[0].load)
    });
    guest::check(
        "idc2_sees_one_idc1_with_the_site_load",
        idc2.is_some(),
        &format!("want {want}\n{}", lb2.ctl("status").1),
    );
    // IDC2 reports to both of IDC1's directors (its `[[peer]] urls`): each knows it,
    // so both decide on the same figures.
    for (name, d) in [("lb1", lb1), ("lb1b", lb1b)] {
        let knows = d.wait_status(Duration::from_secs(15), |s| {
            s.peers
                .iter()
                .any(|p| p.name == "idc2" && p.state == PeerState::Known)
        });
        guest::check(
            &format!("{name}_hears_idc2"),
            knows.is_some(),
            &d.ctl("status").1,
        );
    }
    println!(
        "MEASURE site_load_n {N} kernel_activeconn lb1 {} lb1b {} site_load_ms {} want {want}",
        kernel_active("lb1"),
        kernel_active("lb1b"),
        t0.elapsed().as_millis()
    );
    drop(held);
}

/// Item 4: lb1b's LAN port cut (it loses its real servers): it withdraws alone, R11
/// keeps the route through lb1 and c31 is still served by IDC1. lb1's cut too (the
/// last director): the site is withdrawn, R11 and c31 route to IDC2. Both back.
fn lose_the_lan_one_director_then_the_other(lb1: &Anycastd, lb1b: &Anycastd) {
    let withdrawn = |d: &Anycastd| {
        d.wait_status(Duration::from_secs(10), |s| {
            s.vips.iter().all(|v| v.state == VipState::Withdrawn)
        })
        .map(|(t, _)| t)
    };
    let t0 = Instant::now();
    guest::sh_in("lb1b", "ip link set dev eth2 down");
    let alone = withdrawn(lb1b);
    let r11 = wait_r11(&["10.101.1.2"], Duration::from_secs(10)).map(|_| t0.elapsed());
    guest::check(
        "lb1b_withdraws_alone",
        alone.is_some() && r11.is_some(),
        &format!("{}\n{}", lb1b.ctl("status").1, r11_next_hops()),
    );
    let still = lb1
        .status()
        .is_some_and(|s| s.vips.iter().all(|v| v.state == VipState::Announced));
    let who = served_n("c31", 6);
    guest::check(
        "lb1_keeps_idc1_announced",
        still
            && best_path("c31").as_deref() == Some("3 1 5")
            && who.iter().all(|w| w.starts_with("rs5")),
        &format!("{who:?} {:?}", best_path("c31")),
    );
    if let Some(t) = r11 {
        println!("MEASURE one_director_withdraws_r11_ms {}", t.as_millis());
    }

    let t1 = Instant::now();
    guest::sh_in("lb1", "ip link set dev eth2 down");
    let last = withdrawn(lb1);
    let gone = wait_r11(&[], Duration::from_secs(10)).map(|_| t1.elapsed());
    let c31 = wait_path("c31", "3 2 5", Duration::from_secs(10)).map(|_| t1.elapsed());
    guest::check(
        "the_last_director_withdraws_the_site",
        last.is_some() && gone.is_some() && c31.is_ok(),
        &format!(
            "{c31:?}\n{}\n{}",
            lb1.ctl("status").1,
            guest::sh_in("r11", "ip route; vtysh -N r11 -c 'show ip bgp'")
        ),
    );
    let who = served_n("c31", 4);
    guest::check(
        "idc2_serves_c31",
        who.iter().all(|w| w.starts_with("rs6")),
        &format!("{who:?}"),
    );
    if let (Some(g), Ok(p)) = (gone, c31) {
        println!(
            "MEASURE last_director_withdraws_r11_ms {} c31_path_ms {}",
            g.as_millis(),
            p.as_millis()
        );
    }

    let t2 = Instant::now();
    for d in ["lb1", "lb1b"] {
        guest::sh_in(d, "ip link set dev eth2 up");
    }
    let back = wait_r11(&["10.101.1.2", "10.101.7.2"], Duration::from_secs(30));
    let c31 = wait_path("c31", "3 1 5", Duration::from_secs(20));
    guest::check(
        "both_directors_back",
        back.is_some() && c31.is_ok(),
        &format!("{c31:?}\n{}", r11_next_hops()),
    );
    println!(
        "MEASURE both_directors_back_ms {}",
        t2.elapsed().as_millis()
    );
}

/// Item 2 (session 7): the download through a director that dies.
fn download_through_a_dying_director(lb1: &mut Anycastd, lb1b: &mut Anycastd) {
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
    // DR replies leave through the LAN's gateway, R11: only the client's direction
    // depends on A (the upstream's ECMP moves it). The servers send at 40 Mbit/s, so
    // that the download lasts a few seconds.
    for rs in ["rs511", "rs512"] {
        let out = guest::sh_in(
            rs,
            "tc qdisc replace dev eth1 root tbf rate 40mbit burst 64kb latency 200ms && echo ok",
        );
        guest::check(&format!("{rs}_rate"), out.contains("ok"), &out);
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
    let a_iface = if a == "lb1" { "eth2" } else { "eth3" };
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

/// Entries of `ns`'s IPVS connection table for the VIP (in `state`, if given).
fn vip_conns(ns: &str, state: Option<&str>) -> usize {
    guest::sh_in(ns, "ipvsadm -Lnc")
        .lines()
        .filter(|l| l.contains("10.101.4.1:80") && state.is_none_or(|s| l.contains(s)))
        .count()
}

/// Item 1's alternative by MED: lb1b announces with `med = 100` (lb1 with none,
/// which FRR reads as 0, the best), so R11 installs lb1's route only; lb1 drained
/// (withdrawn), R11 takes lb1b's; undrained, lb1's again. Then lb1b stops.
fn med_backup(lb1: &Anycastd) {
    let mut lb1b = Anycastd::start(
        "lb1b",
        lab_config_as("idc1b", "idc1b-med", &[("# prepend = 2", "med = 100")]),
    );
    let both_known = guest::wait_for(Duration::from_secs(40), || {
        let b = guest::vtysh("r11", "show ip bgp 10.101.4.0/24");
        (b.contains("10.101.1.2") && b.contains("10.101.7.2")).then_some(b)
    });
    let primary = wait_r11(&["10.101.1.2"], Duration::from_secs(10));
    let bgp = guest::vtysh("r11", "show ip bgp 10.101.4.0/24");
    guest::check(
        "med_r11_prefers_the_primary",
        both_known.is_some() && primary.is_some() && bgp.contains("metric 100"),
        &format!("{bgp}\n{}", r11_next_hops()),
    );
    let t0 = Instant::now();
    let (code, out) = lb1.ctl("drain web");
    let backup = wait_r11(&["10.101.7.2"], Duration::from_secs(15)).map(|_| t0.elapsed());
    let who = served_n("c31", 4);
    guest::check(
        "med_backup_takes_over_from_a_drained_primary",
        code == 0 && backup.is_some() && who.iter().all(|w| w.starts_with("rs5")),
        &format!("drain: {code} {out}\n{who:?}\n{}", r11_next_hops()),
    );
    let t1 = Instant::now();
    let (code, out) = lb1.ctl("undrain");
    let back = wait_r11(&["10.101.1.2"], Duration::from_secs(15)).map(|_| t1.elapsed());
    guest::check(
        "med_primary_back_when_undrained",
        code == 0 && back.is_some(),
        &format!("undrain: {code} {out}\n{}", r11_next_hops()),
    );
    if let (Some(b), Some(p)) = (backup, back) {
        println!(
            "MEASURE med_drain_to_backup_route_ms {} undrain_to_primary_route_ms {}",
            b.as_millis(),
            p.as_millis()
        );
    }
    lb1b.signal("TERM");
    let code = lb1b.wait_exit(Duration::from_secs(15));
    guest::check("med_backup_stops", code.is_some(), &format!("{code:?}"));
}

/// Item 1's alternative, primary/backup: lb1b announces with `prepend = 2`
/// (configs/idc1b.toml's commented line), so R11 prefers lb1 and sends it every
/// flow; lb1 dies (SIGKILL, link to R11 cut) and lb1b takes new connections.
fn backup_in_guest() {
    let _servers: Vec<RealServer> = ["rs511", "rs512"]
        .into_iter()
        .map(RealServer::start)
        .collect();
    let mut lb1 = Anycastd::start("lb1", lab_config("idc1", &[]));
    med_backup(&lb1);
    let lb1b = Anycastd::start(
        "lb1b",
        lab_config("idc1b", &[("# prepend = 2", "prepend = 2")]),
    );
    // R11 has both routes, the prepended one as the worse: one next hop, lb1.
    let both_known = guest::wait_for(Duration::from_secs(40), || {
        let b = guest::vtysh("r11", "show ip bgp 10.101.4.0/24");
        (b.contains("10.101.1.2") && b.contains("5 5 5")).then_some(b)
    });
    let primary = wait_r11(&["10.101.1.2"], Duration::from_secs(10));
    if !guest::check(
        "r11_prefers_the_primary",
        both_known.is_some() && primary.is_some(),
        &format!(
            "{}\n{}",
            guest::vtysh("r11", "show ip bgp 10.101.4.0/24"),
            r11_next_hops()
        ),
    ) {
        println!("lb1:\n{}\nlb1b:\n{}", lb1.log(), lb1b.log());
        return;
    }
    let c31 = wait_path("c31", "3 1 5", Duration::from_secs(20));
    guest::check(
        "c31_sees_the_primarys_path",
        c31.is_ok(),
        &format!("{c31:?}"),
    );
    let held = open_conns("c31", 6);
    // Established only: the MED phase's connections through lb1b are closing there.
    let est = Some("ESTABLISHED");
    let (on_a, on_b) = (vip_conns("lb1", est), vip_conns("lb1b", est));
    guest::check(
        "every_flow_through_the_primary",
        held.len() == 6 && on_a >= 6 && on_b == 0,
        &format!("{} held, lb1 {on_a} entries, lb1b {on_b}", held.len()),
    );
    drop(held);

    // The primary dies: new connections go through the backup.
    let t0 = Instant::now();
    lb1.crash();
    guest::sh_in("r11", "ip link set dev eth2 down");
    let first = guest::wait_for(Duration::from_secs(20), || {
        served("c31").starts_with("rs5").then(|| t0.elapsed())
    });
    let route = wait_r11(&["10.101.7.2"], Duration::from_secs(10)).map(|_| t0.elapsed());
    let path = wait_path("c31", "3 1 5 5 5", Duration::from_secs(10)).map(|_| t0.elapsed());
    let who = served_n("c31", 6);
    guest::check(
        "the_backup_takes_over",
        first.is_some()
            && route.is_some()
            && path.is_ok()
            && who.iter().all(|w| w.starts_with("rs5"))
            && vip_conns("lb1b", None) >= 6,
        &format!(
            "first {first:?}, r11 {route:?}, c31 {path:?}, {who:?}\n{}",
            r11_next_hops()
        ),
    );
    if let (Some(f), Some(r), Ok(p)) = (first, route, path) {
        println!(
            "MEASURE backup_takeover_first_served_ms {} r11_route_ms {} c31_path_ms {}",
            f.as_millis(),
            r.as_millis(),
            p.as_millis()
        );
    }
}
