//! The public handles: [`Speaker`] for all peers, [`PeerHandle`] for one. Both are
//! cheap to clone (an `Arc` and channel senders); every call is one bounded
//! channel send to the peer's task.

use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{PeerConfig, Route, SpeakerConfig};
use crate::error::SpeakerError;
use crate::listener::{self, ListenerGuard};
use crate::peer::{self, Command};
use crate::status::PeerStatus;

/// Commands queued per peer before `announce`/`withdraw` wait for room.
const CHANNEL_DEPTH: usize = 256;

/// One neighbor's session task.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    cfg: Arc<PeerConfig>,
    tx: mpsc::Sender<Command>,
    changes: Arc<watch::Sender<u64>>,
}

impl PeerHandle {
    /// Starts the session task for one neighbor (needs a tokio runtime).
    /// Prefer [`Speaker::start`], which validates the whole configuration.
    pub fn spawn(cfg: PeerConfig) -> Result<Self, SpeakerError> {
        Self::spawn_counting(cfg, Arc::new(watch::Sender::new(0)))
    }

    /// As [`Self::spawn`], the task bumping `changes` when its status changes.
    fn spawn_counting(
        cfg: PeerConfig,
        changes: Arc<watch::Sender<u64>>,
    ) -> Result<Self, SpeakerError> {
        cfg.validate()?;
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        peer::spawn(cfg.clone(), rx, changes.clone());
        Ok(Self {
            cfg: Arc::new(cfg),
            tx,
            changes,
        })
    }

    /// A change counter, bumped each time what [`Self::status`] shows changes beyond
    /// the clock: the FSM state, disabled or not, the last error, the prefix counts.
    /// For an embedder that shows the sessions live and must not poll to find out.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The configuration the session runs with.
    pub fn config(&self) -> &PeerConfig {
        &self.cfg
    }

    fn stopped(&self) -> SpeakerError {
        SpeakerError::Stopped {
            peer: self.cfg.name.clone(),
        }
    }

    async fn send(&self, cmd: Command) -> Result<(), SpeakerError> {
        self.tx.send(cmd).await.map_err(|_| self.stopped())
    }

    /// Announces (or replaces) a route; sent at once when Established, and again
    /// each time the session comes up.
    pub async fn announce(&self, route: Route) -> Result<(), SpeakerError> {
        let family_on = match route.prefix {
            IpNet::V4(_) => self.cfg.ipv4_unicast,
            IpNet::V6(_) => self.cfg.ipv6_unicast,
        };
        if !family_on {
            return Err(SpeakerError::BadRoute {
                prefix: route.prefix,
                reason: "address family not enabled for this peer",
            });
        }
        let nh_ok = match (route.prefix, route.next_hop) {
            (_, None) => true,
            (IpNet::V4(_), Some(nh)) => nh.is_ipv4(),
            (IpNet::V6(_), Some(nh)) => nh.is_ipv6(),
        };
        if !nh_ok {
            return Err(SpeakerError::BadRoute {
                prefix: route.prefix,
                reason: "next hop of the other family",
            });
        }
        self.send(Command::Announce(route)).await
    }

    /// Withdraws a prefix. The UPDATE is written to the socket by the peer task
    /// as soon as it takes the command: no batching, no MRAI delay.
    pub async fn withdraw(&self, prefix: IpNet) -> Result<(), SpeakerError> {
        self.send(Command::Withdraw(prefix)).await
    }

    /// A snapshot of the session.
    pub async fn status(&self) -> Result<PeerStatus, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Status(tx)).await?;
        rx.await.map_err(|_| self.stopped())
    }

    /// Sends Cease / Administrative Shutdown with `reason` (RFC 9003, at most 128
    /// bytes sent), closes, and ends the task. Returns once the connection is closed.
    pub async fn shutdown(&self, reason: &str) -> Result<(), SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Shutdown {
            reason: reason.to_string(),
            done: tx,
        })
        .await?;
        rx.await.map_err(|_| self.stopped())
    }

    /// Cease / Administrative Reset (RFC 4486 §4) with `reason` (RFC 9003), then
    /// reconnect at once; announcements are kept and sent again. Operator's
    /// `clear bgp NEIGHBOR`.
    pub async fn reset(&self, reason: &str) -> Result<(), SpeakerError> {
        self.send(Command::Reset {
            reason: reason.to_string(),
        })
        .await
    }

    /// Cease / Administrative Shutdown with `reason`, and stay down (no reconnects,
    /// passive connections refused) until [`Self::enable`]. Announcements are kept.
    /// Operator's `neighbor X shutdown`.
    pub async fn disable(&self, reason: &str) -> Result<(), SpeakerError> {
        self.send(Command::Disable {
            reason: reason.to_string(),
        })
        .await
    }

    /// Starts a disabled session again.
    pub async fn enable(&self) -> Result<(), SpeakerError> {
        self.send(Command::Enable).await
    }

    /// The path to the peer is back (its link came up, BFD came Up): connect now
    /// instead of at the end of the reconnect backoff, which starts over. Does nothing
    /// while a connection exists, while disabled, or during a max-prefix hold-off.
    pub async fn connect_now(&self) -> Result<(), SpeakerError> {
        self.send(Command::ConnectNow).await
    }

    pub(crate) fn inbound_sender(&self) -> mpsc::WeakSender<Command> {
        self.tx.downgrade()
    }
}

/// All sessions of the site. Dropping every clone (and every [`PeerHandle`])
/// stops the sessions with Cease / Administrative Shutdown.
#[derive(Debug, Clone)]
pub struct Speaker {
    peers: Arc<[PeerHandle]>,
    changes: Arc<watch::Sender<u64>>,
    _listener: Option<Arc<ListenerGuard>>,
}

impl Speaker {
    /// Validates the configuration, binds the listener if any, and starts one task
    /// per peer. Must run inside a tokio runtime.
    pub async fn start(cfg: SpeakerConfig) -> Result<Self, SpeakerError> {
        cfg.validate()?;
        let changes = Arc::new(watch::Sender::new(0));
        let peers: Vec<PeerHandle> = cfg
            .peers
            .iter()
            .cloned()
            .map(|p| PeerHandle::spawn_counting(p, changes.clone()))
            .collect::<Result<_, _>>()?;
        let guard = match cfg.listen {
            Some(addr) => Some(Arc::new(listener::start(addr, &peers)?)),
            None => None,
        };
        Ok(Self {
            peers: peers.into(),
            changes,
            _listener: guard,
        })
    }

    /// One change counter for every peer: bumped each time what [`Self::status`]
    /// shows of any peer changes beyond the clock (see [`PeerHandle::changes`]).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Every peer's handle.
    pub fn peers(&self) -> &[PeerHandle] {
        &self.peers
    }

    /// One peer by name.
    pub fn peer(&self, name: &str) -> Option<&PeerHandle> {
        self.peers.iter().find(|p| p.name() == name)
    }

    /// Announces to every peer with the route's address family enabled. A peer whose
    /// task has stopped does not keep the others from getting it; its error is
    /// returned after all were tried.
    pub async fn announce(&self, route: Route) -> Result<(), SpeakerError> {
        let mut first_err = None;
        for p in self.peers.iter() {
            let on = match route.prefix {
                IpNet::V4(_) => p.cfg.ipv4_unicast,
                IpNet::V6(_) => p.cfg.ipv6_unicast,
            };
            if on && let Err(e) = p.announce(route.clone()).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Withdraws from every peer, each at once; as with `announce`, a stopped peer
    /// never holds the withdraw back from the others.
    pub async fn withdraw(&self, prefix: IpNet) -> Result<(), SpeakerError> {
        let mut first_err = None;
        for p in self.peers.iter() {
            if let Err(e) = p.withdraw(prefix).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Snapshots of every running peer.
    pub async fn status(&self) -> Vec<PeerStatus> {
        let mut out = Vec::with_capacity(self.peers.len());
        for p in self.peers.iter() {
            if let Ok(s) = p.status().await {
                out.push(s);
            }
        }
        out
    }

    /// Shuts every session down with the same RFC 9003 reason, all at once; returns
    /// when every connection is closed (each waits at most about 1 s for its peer).
    pub async fn shutdown(&self, reason: &str) {
        let mut set = tokio::task::JoinSet::new();
        for p in self.peers.iter() {
            let (p, reason) = (p.clone(), reason.to_string());
            set.spawn(async move {
                let _ = p.shutdown(&reason).await;
            });
        }
        while set.join_next().await.is_some() {}
    }
}
