use std::net::IpAddr;
use std::time::Instant;

use super::*;
use crate::stats::{Counters, DestStats};

const HEADER: &str = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires\n";

/// A /proc/net/ip_vs_conn_sync line of a TCP connection to 10.101.4.1:80.
fn tcp(client_port: u16, dest: &str, state: &str, origin: &str) -> String {
    format!(
        "TCP 0A650301 {client_port:04X} 0A650401 0050 {dest} 0050 {state:<11} {origin:<6}     899\n"
    )
}

const RS1: &str = "0A65050B"; // 10.101.5.11
const RS2: &str = "0A65050C"; // 10.101.5.12

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(dest: &str) -> ConnKey {
    (Protocol::Tcp, ip("10.101.4.1"), 80, ip(dest), 80)
}

fn dest(addr: &str, active: u32, inactive: u32) -> DestStats {
    DestStats {
        addr: ip(addr),
        port: 80,
        forward: None,
        weight: 1,
        active,
        inactive,
        persistent: 0,
        counters: Counters::default(),
    }
}

fn vip80(dests: Vec<DestStats>) -> ServiceStats {
    ServiceStats {
        key: ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: ip("10.101.4.1"),
            port: 80,
        },
        counters: Counters::default(),
        dests,
    }
}

#[test]
fn sync_lines_are_counted_by_service_destination_and_state() {
    let text = [
        HEADER.to_string(),
        tcp(40000, RS1, "ESTABLISHED", "SYNC"),
        tcp(40001, RS1, "ESTABLISHED", "SYNC"),
        tcp(40002, RS1, "FIN_WAIT", "SYNC"),
        tcp(40003, RS1, "ESTABLISHED", "LOCAL"),
        tcp(40004, RS2, "ESTABLISHED", "SYNC"),
        // A persistence template: client port 0, state NONE.
        tcp(0, RS2, "NONE", "SYNC"),
        "UDP 0A650301 A000 0A650401 0035 0A65050B 0035 UDP         SYNC       299\n".into(),
        "TCP 2001:0db8:0000:0000:0000:0000:0000:0031 9C40 2001:0db8:0004:0000:0000:0000:0000:0001 0050 \
         2001:0db8:0005:0000:0000:0000:0000:0011 0050 ESTABLISHED SYNC       899\n"
            .into(),
        "TCP garbage SYNC\n".into(),
        "TCP 0A650301 ZZZZ 0A650401 0050 0A65050B 0050 ESTABLISHED SYNC 1\n".into(),
    ]
    .concat();
    let s = SyncedConns::parse(&text);
    assert_eq!(
        s.get(&key("10.101.5.11")),
        Synced {
            active: 2,
            inactive: 1
        }
    );
    assert_eq!(
        s.get(&key("10.101.5.12")),
        Synced {
            active: 1,
            inactive: 0
        }
    );
    let udp = (Protocol::Udp, ip("10.101.4.1"), 53, ip("10.101.5.11"), 53);
    assert_eq!(
        s.get(&udp),
        Synced {
            active: 1,
            inactive: 0
        }
    );
    let v6 = (
        Protocol::Tcp,
        ip("2001:db8:4::1"),
        80,
        ip("2001:db8:5::11"),
        80,
    );
    assert_eq!(
        s.get(&v6),
        Synced {
            active: 1,
            inactive: 0
        }
    );
    assert_eq!(s.total(), 6);
    assert_eq!(SyncedConns::parse(""), SyncedConns::default());
}

#[test]
fn synced_connections_come_off_the_service_then_the_mark_services() {
    let text = [
        tcp(40000, RS1, "ESTABLISHED", "SYNC"),
        tcp(40001, RS1, "ESTABLISHED", "SYNC"),
        tcp(40002, RS1, "SYN_RECV", "SYNC"),
    ]
    .concat()
        + &(0..4)
            .map(|i| tcp(41000 + i, RS2, "ESTABLISHED", "SYNC"))
            .collect::<String>();
    let mut stats = vec![
        vip80(vec![dest("10.101.5.11", 5, 1), dest("10.101.5.12", 3, 0)]),
        // The loop guard's mark service holds the other RS2 connection; the IPv6
        // mark service is of the other family and is left alone.
        ServiceStats {
            key: ServiceKey::Fwmark {
                mark: 1,
                ipv6: false,
            },
            counters: Counters::default(),
            dests: vec![dest("10.101.5.12", 2, 0)],
        },
        ServiceStats {
            key: ServiceKey::Fwmark {
                mark: 2,
                ipv6: true,
            },
            counters: Counters::default(),
            dests: vec![dest("2001:db8:5::12", 7, 0)],
        },
    ];
    subtract_synced(&mut stats, &SyncedConns::parse(&text));
    assert_eq!(
        (stats[0].dests[0].active, stats[0].dests[0].inactive),
        (3, 0)
    );
    assert_eq!(stats[0].dests[1].active, 0);
    assert_eq!(stats[1].dests[0].active, 1);
    assert_eq!(stats[2].dests[0].active, 7);
    // More synced than counted (a read between two kernel updates): zero, not less.
    let mut few = vec![vip80(vec![dest("10.101.5.11", 1, 0)])];
    subtract_synced(&mut few, &SyncedConns::parse(&text));
    assert_eq!(few[0].dests[0].active, 0);
}

/// Issue 15: two directors syncing both ways, N connections scheduled by A. A counts
/// them as its own, B counts them as synced: their own figures sum to N.
#[test]
fn two_way_sync_counts_each_connection_once_over_the_directors() {
    let n = 40u16;
    let a_table: String = (0..n)
        .map(|i| tcp(40000 + i, RS1, "ESTABLISHED", "LOCAL"))
        .collect();
    let b_table: String = (0..n)
        .map(|i| tcp(40000 + i, RS1, "ESTABLISHED", "SYNC"))
        .collect();
    let mut a = vec![vip80(vec![dest("10.101.5.11", n.into(), 0)])];
    let mut b = vec![vip80(vec![dest("10.101.5.11", n.into(), 0)])];
    subtract_synced(&mut a, &SyncedConns::parse(&a_table));
    subtract_synced(&mut b, &SyncedConns::parse(&b_table));
    assert_eq!(a[0].active() + b[0].active(), u64::from(n));
}

/// The walk's cost: printed, not asserted (a loaded machine is slower).
#[test]
fn walk_of_a_hundred_thousand_connections_is_printed() {
    let lines = 100_000u32;
    let text: String = (0..lines)
        .map(|i| {
            format!(
                "TCP {:08X} {:04X} 0A650401 0050 {:08X} 0050 ESTABLISHED SYNC       899\n",
                0x0A00_0000 + i,
                1024 + i % 60000,
                0x0A65_0500 + i % 1000,
            )
        })
        .collect();
    let t0 = Instant::now();
    let s = SyncedConns::parse(&text);
    let took = t0.elapsed();
    assert_eq!(s.total(), u64::from(lines));
    println!(
        "BENCH synced_walk_100k_conns_1000_dests_ms {} ({} bytes)",
        took.as_millis(),
        text.len()
    );
}
