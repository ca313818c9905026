//! BFD toward the BGP neighbors configured with `bfd = true`: the sessions run in the
//! bfd crate's task; this module maps its events to the BGP sessions.
//!
//! ```text
//!  bfd::Event Up -> Down (detection time, path down...)  -> PeerHandle::disable (Cease,
//!                                                           the diagnostic as reason)
//!  bfd::Event Down (the peer went AdminDown)              -> nothing (RFC 5882 3.2)
//!  bfd::Event -> Up, BGP held down by BFD                 -> PeerHandle::enable (connects at once)
//!  bfd::Event -> Up otherwise                             -> PeerHandle::connect_now (a session
//!                                                           that is down skips its backoff)
//! ```
//! A BGP session is never held down by a BFD session that has not been Up: a router
//! without BFD configured leaves BGP alone, as FRR and BIRD do.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use bgp_speaker::Speaker;
use tokio::sync::mpsc;

use crate::config::SiteConfig;
use crate::metrics::BfdPackets;
use crate::status::BfdSessionStatus;

/// The BFD sessions of the daemon and what they did to BGP.
pub struct BfdLink {
    handle: bfd::BfdHandle,
    events: mpsc::Receiver<bfd::Event>,
    /// The neighbors whose BGP session BFD holds down.
    held: HashSet<IpAddr>,
}

/// The BFD sessions the config asks for.
pub fn specs(cfg: &SiteConfig) -> Vec<bfd::PeerSpec> {
    cfg.bgp
        .neighbors
        .iter()
        .filter_map(|n| {
            let t = n.bfd?;
            Some(bfd::PeerSpec {
                peer: n.address,
                local: n.local_address,
                timers: bfd::Timers {
                    desired_min_tx: t.min_tx,
                    required_min_rx: t.min_rx,
                    detect_mult: t.multiplier,
                },
            })
        })
        .collect()
}

impl BfdLink {
    /// Starts the sessions; `None` when no neighbor has BFD.
    pub fn start(cfg: &SiteConfig) -> Result<Option<BfdLink>, bfd::task::Error> {
        let specs = specs(cfg);
        if specs.is_empty() {
            return Ok(None);
        }
        let (tx, events) = mpsc::channel(64);
        let handle = bfd::spawn(&specs, tx)?;
        Ok(Some(BfdLink {
            handle,
            events,
            held: HashSet::new(),
        }))
    }

    /// Stops the sessions and waits until their sockets are closed.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }

    /// The next state change.
    pub async fn next(&mut self) -> Option<bfd::Event> {
        self.events.recv().await
    }

    /// Carries out one state change on the BGP session of its neighbor.
    pub async fn on_event(&mut self, speaker: &Speaker, ev: bfd::Event) {
        let Some(peer) = speaker.peer(&ev.peer.to_string()) else {
            return;
        };
        match ev.to {
            bfd::State::Up if self.held.remove(&ev.peer) => {
                tracing::warn!(neighbor = %ev.peer, "BFD up again: BGP session may come back");
                if let Err(e) = peer.enable().await {
                    tracing::error!(neighbor = %ev.peer, error = %e, "enabling the BGP session failed");
                }
            }
            // The path is there: a session that is down for another reason connects
            // now rather than at the end of its backoff.
            bfd::State::Up => {
                if let Err(e) = peer.connect_now().await {
                    tracing::error!(neighbor = %ev.peer, error = %e, "connect_now failed");
                }
            }
            bfd::State::Down if ev.remote == bfd::State::AdminDown => {
                tracing::warn!(neighbor = %ev.peer, "BFD: the neighbor took its session administratively down; BGP stays up (RFC 5882)");
            }
            // Only a session that was Up holds BGP down (see the module doc).
            bfd::State::Down if ev.from == bfd::State::Up => {
                self.held.insert(ev.peer);
                let reason = format!("BFD down: {}", ev.diag);
                // The Cease first, the log line after.
                let r = peer.disable(&reason).await;
                tracing::warn!(neighbor = %ev.peer, diag = %ev.diag, "BFD down: BGP session torn down until BFD is up again");
                if let Err(e) = r {
                    tracing::error!(neighbor = %ev.peer, error = %e, "tearing the BGP session down failed");
                }
            }
            _ => {}
        }
    }

    /// Each session as `status` shows it, by neighbor address.
    pub async fn status(&self) -> HashMap<IpAddr, BfdSessionStatus> {
        self.handle
            .status()
            .await
            .into_iter()
            .map(|s| {
                (
                    s.peer,
                    BfdSessionStatus {
                        state: s.state.into(),
                        remote_state: s.remote_state.into(),
                        local_diag: s.local_diag.to_string(),
                        remote_diag: s.remote_diag.to_string(),
                        tx_interval_ms: s.tx_interval.as_millis() as u64,
                        detection_time_ms: s.detection_time.as_millis() as u64,
                        holds_bgp_down: self.held.contains(&s.peer),
                    },
                )
            })
            .collect()
    }

    /// The bfd task's packet counters, for metrics.
    pub fn packets(&self) -> BfdPackets {
        use std::sync::atomic::Ordering::Relaxed;
        let c = self.handle.counters();
        BfdPackets {
            received: c.received.load(Relaxed),
            sent: c.sent.load(Relaxed),
            malformed: c.malformed.load(Relaxed),
            bad_ttl: c.bad_ttl.load(Relaxed),
            unknown: c.unknown.load(Relaxed),
            discarded: c.discarded.load(Relaxed),
        }
    }
}
