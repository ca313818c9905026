//! The receiving side: every check a report must pass, and what is known of each peer.
//!
//! Checks, in order (the first failure decides, and nothing but a counter changes):
//! size, headers, known sender, HMAC, JSON, sender/receiver fields, sequence, timestamp.
//! Authentication comes before parsing so that unauthenticated bytes never reach the
//! JSON parser beyond the size limit.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use crate::errors::ConfigError;
use crate::exchange::report::LoadReport;
use crate::exchange::{ExchangeConfig, SIGNATURE_HEADER, SITE_HEADER, auth};
use crate::ids::SiteId;
use crate::spill::{PeerFacts, PeerView};
use crate::time::Time;

/// Why a report was refused. Every variant names the sender when it is known.
#[derive(Debug, Clone, PartialEq, Error, Serialize)]
#[serde(tag = "rejected", rename_all = "snake_case")]
pub enum Reject {
    /// Body longer than the limit.
    #[error("oversize: {len} bytes > limit {limit}")]
    Oversize {
        /// Body length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A required header is absent or not text.
    #[error("missing header {header}")]
    MissingHeader {
        /// The header.
        header: &'static str,
    },
    /// The site header names no configured peer.
    #[error("unknown sender {sender:?}")]
    UnknownSender {
        /// The claimed sender (cut to 64 characters).
        sender: String,
    },
    /// The HMAC does not match: forged, or the wrong key.
    #[error("forged: bad signature from {sender}")]
    Forged {
        /// The claimed sender.
        sender: SiteId,
    },
    /// Authenticated but not a valid report.
    #[error("malformed report from {sender}: {reason}")]
    Malformed {
        /// The sender.
        sender: SiteId,
        /// What is wrong.
        reason: String,
    },
    /// The body's sender differs from the header's.
    #[error("sender mismatch: header {header}, body {body}")]
    SenderMismatch {
        /// Header value.
        header: SiteId,
        /// Body value.
        body: SiteId,
    },
    /// The report is addressed to another site.
    #[error("report from {sender} is for {receiver}, not us")]
    WrongReceiver {
        /// The sender.
        sender: SiteId,
        /// Who it was for.
        receiver: SiteId,
    },
    /// Sequence number not above the last accepted one.
    #[error("replayed: seq {seq} from {sender} <= last accepted {last}")]
    Replayed {
        /// The sender.
        sender: SiteId,
        /// The report's seq.
        seq: u64,
        /// The last accepted seq.
        last: u64,
    },
    /// Timestamp older than one report period plus the allowed skew
    /// ([`ExchangeConfig::max_age`]).
    #[error("stale: report from {sender} is {age_ms} ms old")]
    Stale {
        /// The sender.
        sender: SiteId,
        /// How old.
        age_ms: u64,
    },
    /// Timestamp ahead of our clock by more than the allowed skew.
    #[error("from the future: report from {sender} is {ahead_ms} ms ahead")]
    FromFuture {
        /// The sender.
        sender: SiteId,
        /// How far ahead.
        ahead_ms: u64,
    },
}

/// The class of a rejection, for counters (`geo_reports_rejected_total{reason=...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// [`Reject::Oversize`].
    Oversize,
    /// [`Reject::MissingHeader`] and [`Reject::UnknownSender`].
    Unauthenticated,
    /// [`Reject::Forged`].
    Forged,
    /// [`Reject::Malformed`], [`Reject::SenderMismatch`], [`Reject::WrongReceiver`].
    Malformed,
    /// [`Reject::Replayed`].
    Replayed,
    /// [`Reject::Stale`] and [`Reject::FromFuture`].
    Stale,
}

impl RejectKind {
    /// Every kind, for exporting zero counters.
    pub const ALL: [RejectKind; 6] = [
        RejectKind::Oversize,
        RejectKind::Unauthenticated,
        RejectKind::Forged,
        RejectKind::Malformed,
        RejectKind::Replayed,
        RejectKind::Stale,
    ];

    /// Label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::Oversize => "oversize",
            RejectKind::Unauthenticated => "unauthenticated",
            RejectKind::Forged => "forged",
            RejectKind::Malformed => "malformed",
            RejectKind::Replayed => "replayed",
            RejectKind::Stale => "stale",
        }
    }
}

impl fmt::Display for RejectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Reject {
    /// Its class.
    pub fn kind(&self) -> RejectKind {
        match self {
            Reject::Oversize { .. } => RejectKind::Oversize,
            Reject::MissingHeader { .. } | Reject::UnknownSender { .. } => {
                RejectKind::Unauthenticated
            }
            Reject::Forged { .. } => RejectKind::Forged,
            Reject::Malformed { .. }
            | Reject::SenderMismatch { .. }
            | Reject::WrongReceiver { .. } => RejectKind::Malformed,
            Reject::Replayed { .. } => RejectKind::Replayed,
            Reject::Stale { .. } | Reject::FromFuture { .. } => RejectKind::Stale,
        }
    }

    /// The HTTP status the listener should answer with.
    pub fn http_status(&self) -> u16 {
        match self.kind() {
            RejectKind::Oversize => 413,
            RejectKind::Unauthenticated | RejectKind::Forged => 401,
            RejectKind::Malformed => 400,
            RejectKind::Replayed => 409,
            RejectKind::Stale => 400,
        }
    }
}

/// A report that passed every check (already recorded).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accepted {
    /// The sender.
    pub sender: SiteId,
    /// Its seq.
    pub seq: u64,
    /// Whether the peer's state crossed something the spill rule cares about (known
    /// again, load across a threshold, spilling_to changed): decide now.
    pub changed: bool,
}

#[derive(Debug, Clone)]
struct Peer {
    key: Vec<u8>,
    /// A second key accepted during a key rotation.
    next_key: Option<Vec<u8>>,
    last_seq: Option<u64>,
    last: Option<(LoadReport, Time)>,
    accepted: u64,
}

/// What the CLI shows of one peer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerStatus {
    /// The peer.
    pub site: SiteId,
    /// Whether it counts (a valid report within `stale_after`).
    pub known: bool,
    /// Its last valid report.
    pub last_report: Option<LoadReport>,
    /// When we received it.
    pub received_at: Option<Time>,
    /// Age of that report.
    pub age: Option<Duration>,
    /// Reports accepted from it.
    pub accepted: u64,
}

/// Every configured peer, its key and its last valid report.
#[derive(Debug, Clone)]
pub struct PeerTable {
    cfg: ExchangeConfig,
    peers: BTreeMap<SiteId, Peer>,
    rejected: BTreeMap<RejectKind, u64>,
    /// When each kind was last logged at warn (a flood of forged reports must not flood
    /// the logs: further ones within [`WARN_EVERY`] go to debug; the counter sees all).
    warned: BTreeMap<RejectKind, Time>,
}

/// At most one warn line per rejection kind per this period.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

impl PeerTable {
    /// A table for the configured peers (`(site, shared key)`); keys of at least 16 bytes.
    pub fn new(
        cfg: ExchangeConfig,
        peers: Vec<(SiteId, Vec<u8>)>,
    ) -> Result<PeerTable, ConfigError> {
        cfg.validate()?;
        let mut map = BTreeMap::new();
        for (site, key) in peers {
            if site == cfg.local {
                return Err(ConfigError::Exchange(format!("peer {site} is this site")));
            }
            if key.len() < auth::MIN_KEY_LEN {
                return Err(ConfigError::Exchange(format!(
                    "key for {site} is {} bytes, at least {} needed",
                    key.len(),
                    auth::MIN_KEY_LEN
                )));
            }
            if map
                .insert(
                    site.clone(),
                    Peer {
                        key,
                        next_key: None,
                        last_seq: None,
                        last: None,
                        accepted: 0,
                    },
                )
                .is_some()
            {
                return Err(ConfigError::Exchange(format!("peer {site} listed twice")));
            }
        }
        Ok(PeerTable {
            cfg,
            peers: map,
            rejected: BTreeMap::new(),
            warned: BTreeMap::new(),
        })
    }

    /// The exchange config.
    pub fn config(&self) -> &ExchangeConfig {
        &self.cfg
    }

    /// The largest body to read; the listener should stop reading one byte past it.
    pub fn body_limit(&self) -> usize {
        self.cfg.max_body
    }

    /// The key shared with `peer` (the sender side signs with it).
    pub fn key(&self, peer: &SiteId) -> Option<&[u8]> {
        self.peers.get(peer).map(|p| p.key.as_slice())
    }

    /// Key rotation without a gap: also accept reports signed with `next` from `peer`
    /// (`None` ends the overlap). Roll the new key out as `next` on the receiver, then as
    /// the signing key on the sender, then as the only key on the receiver.
    pub fn set_next_key(
        &mut self,
        peer: &SiteId,
        next: Option<Vec<u8>>,
    ) -> Result<(), ConfigError> {
        if next.as_ref().is_some_and(|k| k.len() < auth::MIN_KEY_LEN) {
            return Err(ConfigError::Exchange(format!(
                "next key for {peer} shorter than {} bytes",
                auth::MIN_KEY_LEN
            )));
        }
        let Some(p) = self.peers.get_mut(peer) else {
            return Err(ConfigError::Exchange(format!(
                "{peer} is not a configured peer"
            )));
        };
        p.next_key = next;
        Ok(())
    }

    /// After a reload: keep what `old` learned of the peers both tables know (the last
    /// report, the replay window, the counters), with this table's keys. A key rotation
    /// by reload therefore never reopens the replay window.
    pub fn carry_over(&mut self, old: &PeerTable) {
        for (site, p) in &mut self.peers {
            if let Some(o) = old.peers.get(site) {
                p.last_seq = o.last_seq;
                p.last = o.last.clone();
                p.accepted = o.accepted;
            }
        }
        self.rejected = old.rejected.clone();
        self.warned = old.warned.clone();
    }

    /// Configured peers.
    pub fn sites(&self) -> Vec<SiteId> {
        self.peers.keys().cloned().collect()
    }

    /// Rejections so far, per kind (every kind present, zeros included).
    pub fn rejected(&self) -> BTreeMap<RejectKind, u64> {
        RejectKind::ALL
            .iter()
            .map(|k| (*k, self.rejected.get(k).copied().unwrap_or(0)))
            .collect()
    }

    /// Handles one incoming report: the header values (`None` when absent), the raw body
    /// and our clock. On success the report is recorded; on failure only the rejection
    /// counter changes, and a warning is logged with the reason.
    pub fn receive(
        &mut self,
        now: Time,
        site_header: Option<&str>,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> Result<Accepted, Reject> {
        match self.check(now, site_header, signature_header, body) {
            Ok((sender, report)) => {
                let seq = report.seq;
                let stale_after = self.cfg.stale_after();
                let Some(peer) = self.peers.get_mut(&sender) else {
                    // check() only returns configured senders.
                    return Err(Reject::UnknownSender {
                        sender: sender.to_string(),
                    });
                };
                let changed = match &peer.last {
                    None => true,
                    Some((old, at)) => {
                        now.since(as_of(old, *at)) > stale_after
                            || old.spilling_to != report.spilling_to
                            || band(old.load_value()) != band(report.load_value())
                    }
                };
                tracing::debug!(peer = %sender, seq, load = ?report.load, "load report accepted");
                peer.last_seq = Some(seq);
                peer.last = Some((report, now));
                peer.accepted = peer.accepted.saturating_add(1);
                Ok(Accepted {
                    sender,
                    seq,
                    changed,
                })
            }
            Err(r) => {
                let kind = r.kind();
                let n = self.rejected.entry(kind).or_insert(0);
                *n = n.saturating_add(1);
                let total = *n;
                let recently = self
                    .warned
                    .get(&kind)
                    .is_some_and(|t| now.since(*t) < WARN_EVERY);
                if recently {
                    tracing::debug!(reason = %kind, detail = %r, total, "load report rejected");
                } else {
                    self.warned.insert(kind, now);
                    tracing::warn!(reason = %kind, detail = %r, total, "load report rejected");
                }
                Err(r)
            }
        }
    }

    fn check(
        &self,
        now: Time,
        site_header: Option<&str>,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> Result<(SiteId, LoadReport), Reject> {
        if body.len() > self.cfg.max_body {
            return Err(Reject::Oversize {
                len: body.len(),
                limit: self.cfg.max_body,
            });
        }
        let site = site_header
            .ok_or(Reject::MissingHeader {
                header: SITE_HEADER,
            })?
            .trim();
        let sig = signature_header.ok_or(Reject::MissingHeader {
            header: SIGNATURE_HEADER,
        })?;
        let sender = SiteId::new(site);
        let Some(peer) = self.peers.get(&sender) else {
            return Err(Reject::UnknownSender {
                sender: site.chars().take(64).collect(),
            });
        };
        let signed_by_known_key = auth::verify(&peer.key, body, sig)
            || peer
                .next_key
                .as_ref()
                .is_some_and(|k| auth::verify(k, body, sig));
        if !signed_by_known_key {
            return Err(Reject::Forged { sender });
        }
        let report: LoadReport = serde_json::from_slice(body).map_err(|e| Reject::Malformed {
            sender: sender.clone(),
            reason: e.to_string(),
        })?;
        report.check().map_err(|reason| Reject::Malformed {
            sender: sender.clone(),
            reason,
        })?;
        if report.sender != sender {
            return Err(Reject::SenderMismatch {
                header: sender,
                body: report.sender,
            });
        }
        if report.receiver != self.cfg.local {
            return Err(Reject::WrongReceiver {
                sender,
                receiver: report.receiver,
            });
        }
        if let Some(last) = peer.last_seq
            && report.seq <= last
        {
            return Err(Reject::Replayed {
                sender,
                seq: report.seq,
                last,
            });
        }
        // Age and skew are separate bounds: a report may spend up to one period on the
        // way (late but authentic, and `seq` already refused any replay), but no sender
        // clock may run ahead of ours by more than the skew.
        let stamped = Time(report.timestamp);
        let skew = self.cfg.max_clock_skew;
        if now.since(stamped) > self.cfg.max_age() {
            return Err(Reject::Stale {
                sender,
                age_ms: now.since(stamped).as_millis() as u64,
            });
        }
        if now.until(stamped) > skew {
            return Err(Reject::FromFuture {
                sender,
                ahead_ms: now.until(stamped).as_millis() as u64,
            });
        }
        Ok((sender, report))
    }

    /// Every peer as the spill rule sees it: unknown when it has no valid report within
    /// `stale_after_periods` periods. A report's age counts from the moment it speaks for
    /// (its timestamp, or when it arrived if the sender's clock runs ahead), so a report
    /// that arrived late is as old as it is.
    pub fn views(&self, now: Time) -> Vec<PeerView> {
        let stale_after = self.cfg.stale_after();
        // How many known peers report spilling to each site (a sender's own name in
        // its list is ignored).
        let mut spilled_to: BTreeMap<&SiteId, u32> = BTreeMap::new();
        for (site, p) in &self.peers {
            let Some((r, at)) = p.last.as_ref() else {
                continue;
            };
            if now.since(as_of(r, *at)) <= stale_after {
                for to in r.spilling_to.iter().filter(|t| *t != site) {
                    *spilled_to.entry(to).or_insert(0) += 1;
                }
            }
        }
        self.peers
            .iter()
            .map(|(site, p)| {
                let others = spilled_to.get(site).copied().unwrap_or(0);
                let facts = p.last.as_ref().and_then(|(r, at)| {
                    let age = now.since(as_of(r, *at));
                    (age <= stale_after).then(|| PeerFacts {
                        load: r.load_value(),
                        capacity: r.capacity,
                        spilling_to_us: r.spilling_to.contains(&self.cfg.local),
                        age,
                        seq: r.seq,
                        other_spillers: others,
                    })
                });
                PeerView {
                    site: site.clone(),
                    facts,
                }
            })
            .collect()
    }

    /// Every peer for the CLI.
    pub fn status(&self, now: Time) -> Vec<PeerStatus> {
        let stale_after = self.cfg.stale_after();
        self.peers
            .iter()
            .map(|(site, p)| {
                let age = p.last.as_ref().map(|(r, at)| now.since(as_of(r, *at)));
                PeerStatus {
                    site: site.clone(),
                    known: age.is_some_and(|a| a <= stale_after),
                    last_report: p.last.as_ref().map(|(r, _)| r.clone()),
                    received_at: p.last.as_ref().map(|(_, at)| *at),
                    age,
                    accepted: p.accepted,
                }
            })
            .collect()
    }

    /// When the next peer turns unknown if nothing arrives (a timer for the daemon, so
    /// the spill rule is re-run at that moment).
    pub fn next_expiry(&self, now: Time) -> Option<Time> {
        let stale_after = self.cfg.stale_after();
        self.peers
            .values()
            .filter_map(|p| {
                p.last
                    .as_ref()
                    .map(|(r, at)| as_of(r, *at).plus(stale_after))
            })
            .filter(|t| *t >= now)
            .min()
            .map(|t| t.plus(Duration::from_millis(1)))
    }
}

/// The moment a report speaks for: its timestamp, but never later than its arrival (a
/// sender whose clock runs ahead does not make its report look younger).
fn as_of(report: &LoadReport, received: Time) -> Time {
    Time(report.timestamp).min(received)
}

/// Coarse position of a load relative to the default thresholds, to tell "changed".
fn band(load: f64) -> u8 {
    match load {
        l if l < 0.7 => 0,
        l if l <= 1.0 => 1,
        l if l <= 1.1 => 2,
        l if l.is_finite() => 3,
        _ => 4,
    }
}
