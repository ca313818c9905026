//! The public handle: reconcile a [`DesiredState`] into the kernel, read stats.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::diff::{self, Observed, Owned};
use crate::error::Error;
use crate::kernel::Kernel;
use crate::model::AddrSpec;
use crate::model::{DesiredState, Protocol, ServiceKey};
use crate::request::Request;
use crate::stats::ServiceStats;

/// What one reconcile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Number of changes applied (0 when the kernel already matched).
    pub changes: usize,
    /// The requests applied, in order.
    pub requests: Vec<Request>,
    /// Time spent reading the kernel's state.
    pub read: Duration,
    /// Time spent applying.
    pub apply: Duration,
}

/// Programs one director's kernel (the network namespace of the thread that opened
/// it). Blocking; the daemon owns one in a dedicated thread (or `spawn_blocking`).
#[derive(Debug)]
pub struct Forwarder {
    kernel: Kernel,
    owned: Owned,
    ledger: Option<PathBuf>,
    last_error: Option<String>,
}

impl Forwarder {
    /// Opens netlink and checks that IPVS is there. Fails with
    /// [`Error::ModuleMissing`] (ip_vs) or [`Error::Permission`].
    pub fn open() -> Result<Forwarder, Error> {
        let mut kernel = Kernel::open()?;
        // A dump needs CAP_NET_ADMIN too: find out now, not at the first change.
        kernel.read_ipvs()?;
        Ok(Forwarder {
            kernel,
            owned: Owned::default(),
            ledger: None,
            last_error: None,
        })
    }

    /// Like [`Forwarder::open`], with the ownership ledger kept in `path` (one
    /// service per line) so that services removed from the desired state while the
    /// daemon was down are still removed at the next start.
    pub fn open_with_ledger(path: &Path) -> Result<Forwarder, Error> {
        let mut f = Forwarder::open()?;
        f.owned = load_ledger(path)?;
        f.ledger = Some(path.to_path_buf());
        Ok(f)
    }

    /// Services and addresses this forwarder owns (created by an earlier reconcile).
    pub fn owned(&self) -> &Owned {
        &self.owned
    }

    /// Reads the kernel's state as the diff sees it for `desired`.
    pub fn observe(&mut self, desired: &DesiredState) -> Result<Observed, Error> {
        let target = desired.compile()?;
        self.kernel.observe(&target)
    }

    /// The requests a reconcile would apply now, without applying them.
    pub fn plan(&mut self, desired: &DesiredState) -> Result<Vec<Request>, Error> {
        let target = desired.compile()?;
        let obs = self.kernel.observe(&target)?;
        Ok(diff::diff(&target, &obs, &self.owned)?)
    }

    /// Reads the kernel, applies only the difference to `desired`, and reports what
    /// changed. Running it again with the same state changes nothing. Services,
    /// addresses and filters that are not ours are left alone (see [`mod@crate::diff`]).
    /// An error is logged once per kind until it clears, and returned every time.
    pub fn reconcile(&mut self, desired: &DesiredState) -> Result<Report, Error> {
        let r = self.reconcile_inner(desired);
        match &r {
            Ok(rep) => {
                if self.last_error.take().is_some() {
                    tracing::info!("tunnel-forwarder: reconcile succeeds again");
                }
                if rep.changes > 0 {
                    tracing::debug!(changes = rep.changes, "tunnel-forwarder: reconciled");
                }
            }
            Err(e) => {
                let key = e.kind_key();
                if self.last_error.as_deref() != Some(key.as_str()) {
                    tracing::error!(error = %e, "tunnel-forwarder: reconcile failed");
                    self.last_error = Some(key);
                }
            }
        }
        r
    }

    fn reconcile_inner(&mut self, desired: &DesiredState) -> Result<Report, Error> {
        let target = desired.compile()?;
        let t0 = Instant::now();
        let obs = self.kernel.observe(&target)?;
        let read = t0.elapsed();
        let requests = diff::diff(&target, &obs, &self.owned)?;
        // Claim before applying: what we create is ours even if a later request of
        // the same run fails.
        self.set_owned(self.owned.claiming(&target, &requests))?;
        let t1 = Instant::now();
        let result = self.kernel.apply(&requests);
        let apply = t1.elapsed();
        match result {
            Ok(n) => {
                self.set_owned(self.owned.after(&target, &requests))?;
                Ok(Report {
                    changes: n,
                    requests,
                    read,
                    apply,
                })
            }
            Err((_, e)) => Err(e),
        }
    }

    fn set_owned(&mut self, owned: Owned) -> Result<(), Error> {
        if owned == self.owned {
            return Ok(());
        }
        if let Some(p) = &self.ledger {
            save_ledger(p, &owned)?;
        }
        self.owned = owned;
        Ok(())
    }

    /// Applies requests directly (no read, no diff). For callers that know exactly
    /// what changed, e.g. one peer weight: `apply(&[Request::SetDest(..)])`.
    pub fn apply(&mut self, requests: &[Request]) -> Result<usize, Error> {
        self.kernel.apply(requests).map_err(|(_, e)| e)
    }

    /// Counters and connection counts of every IPVS service (ours and others').
    pub fn stats(&mut self) -> Result<Vec<ServiceStats>, Error> {
        self.kernel.stats()
    }

    /// [`Self::stats`] without the connections a backup sync daemon learned from the
    /// site's other directors: this director's own figures (see [`crate::origins`]).
    /// While a backup daemon runs, this walks /proc/net/ip_vs_conn_sync (one line per
    /// connection); otherwise it is one more netlink request than [`Self::stats`].
    pub fn own_stats(&mut self) -> Result<Vec<ServiceStats>, Error> {
        let mut stats = self.kernel.stats()?;
        let backup = self
            .kernel
            .sync_daemons()?
            .iter()
            .any(|d| d.role == crate::sync::SyncRole::Backup);
        if backup {
            let synced = crate::origins::SyncedConns::parse(&conn_sync_table()?);
            crate::origins::subtract_synced(&mut stats, &synced);
        }
        Ok(stats)
    }

    /// The running sync daemons and the connections by origin (reads
    /// /proc/net/ip_vs_conn_sync: one line per connection, so callers keep its rate
    /// low on a busy director).
    pub fn sync_status(&mut self) -> Result<crate::sync::SyncStatus, Error> {
        let daemons = self.kernel.sync_daemons()?;
        let (local, synced) = crate::sync::count_origins(&conn_sync_table()?);
        Ok(crate::sync::SyncStatus {
            daemons,
            local,
            synced,
        })
    }

    /// Received and sent packets of a link, `None` if it does not exist.
    pub fn link_packets(&mut self, name: &str) -> Result<Option<[u64; 2]>, Error> {
        self.kernel.link_packets(name)
    }
}

/// The connection table with each connection's origin.
fn conn_sync_table() -> Result<String, Error> {
    std::fs::read_to_string("/proc/net/ip_vs_conn_sync").map_err(|e| Error::Proc {
        path: "/proc/net/ip_vs_conn_sync",
        source: e,
    })
}

fn addr_line(a: &AddrSpec) -> String {
    format!("addr {} {}/{}", a.device, a.addr, a.prefix_len)
}

fn parse_addr_line(line: &str) -> Option<AddrSpec> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let ["addr", dev, cidr] = w.as_slice() else {
        return None;
    };
    let (a, len) = cidr.split_once('/')?;
    Some(AddrSpec {
        device: dev.to_string(),
        addr: a.parse().ok()?,
        prefix_len: len.parse().ok()?,
    })
}

fn ledger_line(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            let p = match protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Sctp => "sctp",
            };
            format!("{p} {addr} {port}")
        }
        ServiceKey::Fwmark { mark, ipv6 } => {
            format!("fwmark {mark} {}", if *ipv6 { "ipv6" } else { "ipv4" })
        }
    }
}

/// Parses one ledger line; `None` for anything malformed (skipped, never guessed).
pub fn parse_ledger_line(line: &str) -> Option<ServiceKey> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        ["fwmark", mark, fam] => Some(ServiceKey::Fwmark {
            mark: mark.parse().ok()?,
            ipv6: *fam == "ipv6",
        }),
        [p, addr, port] => Some(ServiceKey::Addr {
            protocol: match *p {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                _ => return None,
            },
            addr: addr.parse().ok()?,
            port: port.parse().ok()?,
        }),
        _ => None,
    }
}

fn load_ledger(path: &Path) -> Result<Owned, Error> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Owned {
            services: s.lines().filter_map(parse_ledger_line).collect(),
            addrs: s.lines().filter_map(parse_addr_line).collect(),
            sync: s
                .lines()
                .filter_map(crate::sync::parse_ledger_line)
                .collect(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Owned::default()),
        Err(e) => Err(Error::Ledger {
            path: path.display().to_string(),
            source: e,
        }),
    }
}

fn save_ledger(path: &Path, owned: &Owned) -> Result<(), Error> {
    let mut s = String::from(
        "# services and addresses owned by tunnel-forwarder; do not edit while it runs\n",
    );
    for k in &owned.services {
        s.push_str(&ledger_line(k));
        s.push('\n');
    }
    for a in &owned.addrs {
        s.push_str(&addr_line(a));
        s.push('\n');
    }
    for r in &owned.sync {
        s.push_str(&crate::sync::ledger_line(*r));
        s.push('\n');
    }
    let tmp = path.with_extension("tmp");
    let err = |e| Error::Ledger {
        path: path.display().to_string(),
        source: e,
    };
    std::fs::write(&tmp, s).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::net::IpAddr;

    #[test]
    fn ledger_lines_round_trip() {
        let keys = [
            ServiceKey::Addr {
                protocol: Protocol::Udp,
                addr: "10.1.2.3".parse::<IpAddr>().unwrap(),
                port: 53,
            },
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                addr: "2001:db8::1".parse::<IpAddr>().unwrap(),
                port: 443,
            },
            ServiceKey::Fwmark {
                mark: 65,
                ipv6: false,
            },
        ];
        for k in keys {
            assert_eq!(parse_ledger_line(&ledger_line(&k)), Some(k));
        }
        assert_eq!(parse_ledger_line("tcp nonsense 80"), None);
        assert_eq!(parse_ledger_line("# comment"), None);
    }

    #[test]
    fn ledger_file_round_trips_and_skips_garbage() {
        let dir = std::env::temp_dir().join(format!("tf-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ledger");
        assert_eq!(
            load_ledger(&path).unwrap(),
            Owned::default(),
            "missing file = nothing owned"
        );
        let services: BTreeSet<ServiceKey> = [
            ServiceKey::Fwmark {
                mark: 1,
                ipv6: false,
            },
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                addr: "10.0.0.1".parse::<IpAddr>().unwrap(),
                port: 80,
            },
        ]
        .into_iter()
        .collect();
        let owned = Owned {
            services,
            addrs: [AddrSpec {
                device: "vip0".into(),
                addr: "2001:db8::1".parse().unwrap(),
                prefix_len: 128,
            }]
            .into_iter()
            .collect(),
            sync: [crate::sync::SyncRole::Backup].into_iter().collect(),
        };
        save_ledger(&path, &owned).unwrap();
        assert_eq!(load_ledger(&path).unwrap(), owned);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("garbage line\nudp 10.0.0.2 53\naddr lo nonsense\n");
        std::fs::write(&path, text).unwrap();
        let back = load_ledger(&path).unwrap();
        assert_eq!(
            (back.services.len(), back.addrs.len(), back.sync.len()),
            (3, 1, 1)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
