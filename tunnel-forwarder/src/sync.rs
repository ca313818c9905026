//! IPVS connection synchronisation between the directors of one site: the kernel's
//! sync daemons (`ipvsadm --start-daemon`), as desired state like everything else
//! here.
//!
//! A director runs a master daemon (it multicasts the state of the connections it
//! schedules) and a backup daemon (it creates the connections the others
//! multicast), both on the sync interface with the site's sync id, so that a flow
//! the routers' ECMP moves to another director after a failure finds its
//! connection there and keeps its real server. The kernel allows one daemon of
//! each role per network namespace.
//!
//! Ownership, as for services: a wanted role is ours (one that runs with other
//! settings is stopped and started again: the kernel cannot change a running
//! daemon); a role not wanted is stopped only if the ledger says we started it, so
//! an operator's own daemon is left alone. Stopping a daemon keeps the connections
//! it synced: they expire by their own timeouts.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::error::ConfigError;
use crate::request::Request;

/// The multicast group the kernel uses when none is given (`IP_VS_SYNC_GROUP`).
pub const DEFAULT_GROUP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(224, 0, 0, 81));
/// The UDP port the kernel uses when none is given (`IP_VS_SYNC_PORT`).
pub const DEFAULT_PORT: u16 = 8848;

/// A sync daemon's role (`IPVS_DAEMON_ATTR_STATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncRole {
    /// Sends the state of this director's connections (`IP_VS_STATE_MASTER`).
    Master,
    /// Receives the others' connections (`IP_VS_STATE_BACKUP`).
    Backup,
}

impl SyncRole {
    /// The kernel's value.
    pub fn kernel(self) -> u32 {
        match self {
            SyncRole::Master => 1,
            SyncRole::Backup => 2,
        }
    }

    /// The role of a kernel value.
    pub fn from_kernel(v: u32) -> Option<SyncRole> {
        match v {
            1 => Some(SyncRole::Master),
            2 => Some(SyncRole::Backup),
            _ => None,
        }
    }

    /// `master` or `backup`, as ipvsadm spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
        }
    }
}

/// One sync daemon. The optional fields are left to the kernel's defaults when
/// `None` (group 224.0.0.81, port 8848, TTL 1, messages sized to the interface's
/// MTU) and are then not compared with what the kernel reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyncDaemon {
    pub role: SyncRole,
    /// The interface the daemon sends or listens on (`--mcast-interface`).
    pub interface: String,
    /// The site's sync id: a backup takes only messages with its id (`--syncid`).
    pub syncid: u8,
    /// Multicast group (`--mcast-group`), IPv4 or IPv6.
    pub group: Option<IpAddr>,
    /// UDP port (`--mcast-port`).
    pub port: Option<u16>,
    /// Multicast TTL (`--mcast-ttl`), 1..=255.
    pub ttl: Option<u8>,
    /// Largest sync message payload (`--sync-maxlen`).
    pub maxlen: Option<u16>,
}

impl SyncDaemon {
    /// A daemon of `role` on `interface` with id `syncid` and the kernel's defaults.
    pub fn new(role: SyncRole, interface: &str, syncid: u8) -> SyncDaemon {
        SyncDaemon {
            role,
            interface: interface.to_string(),
            syncid,
            group: None,
            port: None,
            ttl: None,
            maxlen: None,
        }
    }

    /// Whether a running daemon (as the kernel reports it) is this one.
    pub fn matches(&self, running: &SyncDaemon) -> bool {
        fn same<T: PartialEq>(want: Option<T>, have: Option<T>) -> bool {
            want.is_none() || want == have
        }
        self.role == running.role
            && self.interface == running.interface
            && self.syncid == running.syncid
            && same(self.group, running.group)
            && same(self.port, running.port)
            && same(self.ttl, running.ttl)
            && same(self.maxlen, running.maxlen)
    }

    /// The `ipvsadm --start-daemon` command line this daemon equals.
    pub fn ipvsadm_args(&self) -> String {
        let mut s = format!(
            "--start-daemon {} --mcast-interface {} --syncid {}",
            self.role.as_str(),
            self.interface,
            self.syncid
        );
        if let Some(g) = self.group {
            s.push_str(&format!(" --mcast-group {g}"));
        }
        if let Some(p) = self.port {
            s.push_str(&format!(" --mcast-port {p}"));
        }
        if let Some(t) = self.ttl {
            s.push_str(&format!(" --mcast-ttl {t}"));
        }
        if let Some(m) = self.maxlen {
            s.push_str(&format!(" --sync-maxlen {m}"));
        }
        s
    }
}

/// Refuses daemons the kernel would refuse: two of one role, an interface name it
/// cannot hold, a group that is not multicast, TTL 0.
pub fn check(daemons: &[SyncDaemon]) -> Result<(), ConfigError> {
    for (i, d) in daemons.iter().enumerate() {
        if daemons[..i].iter().any(|o| o.role == d.role) {
            return Err(ConfigError::new(format!(
                "two IPVS sync daemons of role {} (the kernel runs one of each)",
                d.role.as_str()
            )));
        }
        crate::model::check_ifname(&d.interface)?;
        if let Some(g) = d.group
            && !g.is_multicast()
        {
            return Err(ConfigError::new(format!(
                "sync group {g} is not a multicast address"
            )));
        }
        if d.ttl == Some(0) {
            return Err(ConfigError::new("sync TTL 0 would never leave the host"));
        }
    }
    Ok(())
}

/// The requests that make the running daemons `running` into `want`. A role not
/// wanted is stopped only when `owned` says an earlier reconcile started it (the
/// ledger); a wanted role that runs with other settings is stopped, then started
/// again. Stops come first.
pub fn diff(
    want: &[SyncDaemon],
    running: &[SyncDaemon],
    owned: &BTreeSet<SyncRole>,
) -> Vec<Request> {
    let mut stops = Vec::new();
    let mut starts = Vec::new();
    for role in [SyncRole::Master, SyncRole::Backup] {
        let w = want.iter().find(|d| d.role == role);
        let r = running.iter().find(|d| d.role == role);
        match (w, r) {
            (Some(w), Some(r)) if w.matches(r) => {}
            (Some(w), r) => {
                if r.is_some() {
                    stops.push(Request::DelSyncDaemon(role));
                }
                starts.push(Request::NewSyncDaemon(w.clone()));
            }
            (None, Some(_)) if owned.contains(&role) => stops.push(Request::DelSyncDaemon(role)),
            (None, _) => {}
        }
    }
    stops.extend(starts);
    stops
}

/// The ledger line of a role we started (`sync master`).
pub fn ledger_line(role: SyncRole) -> String {
    format!("sync {}", role.as_str())
}

/// A role of a ledger line; `None` for any other line.
pub fn parse_ledger_line(line: &str) -> Option<SyncRole> {
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["sync", "master"] => Some(SyncRole::Master),
        ["sync", "backup"] => Some(SyncRole::Backup),
        _ => None,
    }
}

/// The running sync daemons and the connections of the director by origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    pub daemons: Vec<SyncDaemon>,
    /// Connections this director scheduled (`LOCAL` in /proc/net/ip_vs_conn_sync).
    pub local: u64,
    /// Connections the backup daemon learned from the site's other directors (`SYNC`).
    pub synced: u64,
}

/// Counts the `LOCAL` and `SYNC` entries of /proc/net/ip_vs_conn_sync (the origin
/// is the second-last column; the header and anything else are skipped).
pub fn count_origins(text: &str) -> (u64, u64) {
    let (mut local, mut synced) = (0, 0);
    for line in text.lines() {
        let mut cols = line.split_whitespace().rev();
        let _expires = cols.next();
        match cols.next() {
            Some("LOCAL") => local += 1,
            Some("SYNC") => synced += 1,
            _ => {}
        }
    }
    (local, synced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(ifname: &str, id: u8) -> Vec<SyncDaemon> {
        vec![
            SyncDaemon::new(SyncRole::Master, ifname, id),
            SyncDaemon::new(SyncRole::Backup, ifname, id),
        ]
    }

    /// What the kernel reports for a daemon started with defaults.
    fn reported(d: &SyncDaemon) -> SyncDaemon {
        SyncDaemon {
            group: Some(DEFAULT_GROUP),
            port: Some(DEFAULT_PORT),
            ttl: Some(1),
            maxlen: Some(1472),
            ..d.clone()
        }
    }

    fn none() -> BTreeSet<SyncRole> {
        BTreeSet::new()
    }

    fn all() -> BTreeSet<SyncRole> {
        [SyncRole::Master, SyncRole::Backup].into_iter().collect()
    }

    #[test]
    fn an_operators_daemons_are_left_alone() {
        let running: Vec<_> = both("eth1", 7).iter().map(reported).collect();
        assert!(diff(&[], &running, &none()).is_empty());
    }

    #[test]
    fn missing_daemons_are_started_and_running_ones_kept() {
        let want = both("eth1", 7);
        let reqs = diff(&want, &[], &none());
        assert_eq!(
            reqs,
            vec![
                Request::NewSyncDaemon(want[0].clone()),
                Request::NewSyncDaemon(want[1].clone())
            ]
        );
        // The kernel's defaults filled in: the same daemons, nothing to do.
        let running: Vec<_> = want.iter().map(reported).collect();
        assert!(diff(&want, &running, &all()).is_empty());
    }

    #[test]
    fn a_changed_daemon_is_stopped_then_started() {
        let running: Vec<_> = both("eth1", 7).iter().map(reported).collect();
        let want = both("eth1", 8);
        let reqs = diff(&want, &running, &all());
        assert_eq!(
            reqs,
            vec![
                Request::DelSyncDaemon(SyncRole::Master),
                Request::DelSyncDaemon(SyncRole::Backup),
                Request::NewSyncDaemon(want[0].clone()),
                Request::NewSyncDaemon(want[1].clone()),
            ]
        );
        // A port asked for that differs from the running one.
        let mut want = both("eth1", 7);
        want[1].port = Some(8849);
        let reqs = diff(&want, &running, &all());
        assert_eq!(
            reqs,
            vec![
                Request::DelSyncDaemon(SyncRole::Backup),
                Request::NewSyncDaemon(want[1].clone()),
            ]
        );
    }

    #[test]
    fn a_role_not_wanted_is_stopped_when_it_is_ours() {
        let running: Vec<_> = both("eth1", 7).iter().map(reported).collect();
        let want = vec![SyncDaemon::new(SyncRole::Backup, "eth1", 7)];
        assert_eq!(
            diff(&want, &running, &all()),
            vec![Request::DelSyncDaemon(SyncRole::Master)]
        );
        assert!(diff(&want, &running, &none()).is_empty());
        assert_eq!(
            diff(&[], &running, &all()),
            vec![
                Request::DelSyncDaemon(SyncRole::Master),
                Request::DelSyncDaemon(SyncRole::Backup)
            ]
        );
    }

    #[test]
    fn origins_are_counted_from_the_proc_table() {
        let text = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires
TCP 0A000002 8EA0 0A090901 0050 10.3.0.2 0050 ESTABLISHED LOCAL      897
TCP 0A000002 8EA2 0A090901 0050 10.3.0.2 0050 ESTABLISHED SYNC       899
TCP 2001:0db8:0000:0000:0000:0000:0000:0002 8EA4 2001:0db8:0004:0000:0000:0000:0000:0001 0050 2001:db8:3::2 0050 FIN_WAIT    SYNC        60
garbage
";
        assert_eq!(count_origins(text), (1, 2));
        assert_eq!(count_origins(""), (0, 0));
    }

    #[test]
    fn ledger_lines_read_back() {
        for role in [SyncRole::Master, SyncRole::Backup] {
            assert_eq!(parse_ledger_line(&ledger_line(role)), Some(role));
        }
        assert_eq!(parse_ledger_line("sync primary"), None);
        assert_eq!(parse_ledger_line("tcp 10.0.0.1 80"), None);
    }

    #[test]
    fn check_refuses_what_the_kernel_would() {
        assert!(check(&both("eth1", 7)).is_ok());
        let mut two = both("eth1", 7);
        two[1].role = SyncRole::Master;
        assert!(check(&two).unwrap_err().to_string().contains("two"));
        assert!(check(&both("a-very-long-interface", 7)).is_err());
        let mut g = both("eth1", 7);
        g[0].group = Some("10.0.0.1".parse().unwrap());
        assert!(check(&g).unwrap_err().to_string().contains("multicast"));
        g[0].group = Some("ff02::1:81".parse().unwrap());
        assert!(check(&g).is_ok());
        g[0].ttl = Some(0);
        assert!(check(&g).is_err());
    }

    #[test]
    fn ipvsadm_args_read_like_ipvsadm() {
        let mut d = SyncDaemon::new(SyncRole::Backup, "eth1", 7);
        assert_eq!(
            d.ipvsadm_args(),
            "--start-daemon backup --mcast-interface eth1 --syncid 7"
        );
        d.port = Some(8849);
        assert!(d.ipvsadm_args().ends_with("--syncid 7 --mcast-port 8849"));
    }
}
