//! The `sync` part of the status: the kernel's sync daemons and the director's
//! connections by origin, asked of the data-plane worker. Reading the origins walks
//! every connection (/proc/net/ip_vs_conn_sync), so an answer is kept for
//! [`FRESH_FOR`] however often the status is asked for (the CLI, the monitor,
//! /metrics).

use std::time::{Duration, Instant};

use crate::config::SiteConfig;
use crate::dataplane::{Request, Worker};
use crate::status::SyncStatus;

/// How long one reading of the kernel answers status requests.
pub const FRESH_FOR: Duration = Duration::from_secs(5);
/// How long a status waits for a busy worker (a long reconcile) before saying so.
const WAIT: Duration = Duration::from_millis(500);

/// The last reading and when it was made (cleared at every reload).
#[derive(Debug, Default)]
pub struct Cache(Option<(Instant, SyncStatus)>);

impl Cache {
    /// Forgets the last reading: a reload may have changed `[sync]`.
    pub fn clear(&mut self) {
        self.0 = None;
    }

    /// The sync status for `cfg` (`None` without `[sync]` or without a data plane).
    pub async fn get(&mut self, cfg: &SiteConfig, worker: Option<&Worker>) -> Option<SyncStatus> {
        let sync = cfg.sync.as_ref()?;
        let worker = worker?;
        if let Some((at, s)) = &self.0
            && at.elapsed() < FRESH_FOR
        {
            return Some(s.clone());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A worker that is gone drops the request, and with it the reply's sender.
        let _ = worker.send(Request::Sync(tx));
        let reply = tokio::time::timeout(WAIT, rx).await;
        let mut st = SyncStatus {
            roles: Vec::new(),
            interface: sync.interface.clone(),
            syncid: sync.syncid,
            local_conns: 0,
            synced_conns: 0,
            error: None,
        };
        match reply {
            Ok(Ok(Ok(k))) => {
                st.roles = k
                    .daemons
                    .iter()
                    .map(|d| d.role.as_str().to_string())
                    .collect();
                st.local_conns = k.local;
                st.synced_conns = k.synced;
            }
            Ok(Ok(Err(e))) => st.error = Some(e.to_string()),
            Ok(Err(_)) => st.error = Some("the data-plane worker is gone".into()),
            Err(_) => {
                // Busy: the last reading, if any, rather than nothing.
                if let Some((_, s)) = &self.0 {
                    return Some(s.clone());
                }
                st.error = Some("the data-plane worker is busy".into());
                return Some(st);
            }
        }
        self.0 = Some((Instant::now(), st.clone()));
        Some(st)
    }
}
