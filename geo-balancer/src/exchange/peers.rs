//! The receiving side: every check a report must pass, and what is known of each peer.
//!
//! Checks, in order (the first failure decides, and nothing but a counter changes):
//! size, headers, known sender, HMAC, JSON, sender/receiver fields, sequence, timestamp.
//! Authentication comes before parsing so that unauthenticated bytes never reach the
//! JSON parser beyond the size limit.
//!
//! A site may have several directors (decision 0015): each peer entry keeps the last
//! report of each of its directors, with its own replay window, and the spill rule sees
//! their sum ([`crate::exchange::directors::combine`]). This site's other directors
//! (siblings, [`PeerTable::set_siblings`]) report under our own site name, signed with
//! the directors' key; `siblings.rs` holds what only they have (the config digest).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::errors::ConfigError;
use crate::exchange::directors::{self, DirectorStatus, MAX_DIRECTORS};
pub use crate::exchange::reject::{Reject, RejectKind};
use crate::exchange::report::LoadReport;
use crate::exchange::siblings::Siblings;
use crate::exchange::{ExchangeConfig, SIGNATURE_HEADER, SITE_HEADER, auth};
use crate::ids::SiteId;
use crate::spill::{PeerFacts, PeerView};
use crate::time::Time;

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

/// What one director of a site last said.
#[derive(Debug, Clone)]
pub(crate) struct Heard {
    /// Its last accepted seq (a site's directors number their reports each on its own).
    pub(crate) last_seq: u64,
    pub(crate) report: LoadReport,
    pub(crate) at: Time,
}

impl Heard {
    /// The moment it speaks for (see `as_of`).
    pub(crate) fn as_of(&self) -> Time {
        as_of(&self.report, self.at)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) key: Vec<u8>,
    /// A second key accepted during a key rotation.
    pub(crate) next_key: Option<Vec<u8>>,
    /// Each director's last report, by name (`""`: a sender that names none).
    pub(crate) directors: BTreeMap<String, Heard>,
    pub(crate) accepted: u64,
}

impl Peer {
    pub(crate) fn new(key: Vec<u8>) -> Peer {
        Peer {
            key,
            next_key: None,
            directors: BTreeMap::new(),
            accepted: 0,
        }
    }

    /// The reports of its directors heard within `stale_after`.
    fn fresh(&self, now: Time, stale_after: Duration) -> impl Iterator<Item = &LoadReport> {
        self.directors
            .values()
            .filter(move |h| now.since(h.as_of()) <= stale_after)
            .map(|h| &h.report)
    }

    /// The site as one report: its fresh directors summed. One fresh director (the
    /// common case) is its own report, borrowed: the spill rule's views are built at
    /// every decision and must not copy every peer's report.
    fn combined(&self, now: Time, stale_after: Duration) -> Option<Cow<'_, LoadReport>> {
        let mut fresh = self.fresh(now, stale_after);
        let first = fresh.next()?;
        let Some(second) = fresh.next() else {
            return Some(Cow::Borrowed(first));
        };
        let mut all = vec![first, second];
        all.extend(fresh);
        directors::combine(&all).map(Cow::Owned)
    }

    /// Whether the site can serve (`vip`, or anything) by its fresh directors summed,
    /// as [`Peer::combined`] would say; `None` without a fresh director.
    fn serves(&self, now: Time, stale_after: Duration, vip: Option<&str>) -> Option<bool> {
        self.combined(now, stale_after).map(|r| r.serves(vip))
    }

    /// When its freshest director spoke for.
    fn newest(&self) -> Option<&Heard> {
        self.directors.values().max_by_key(|h| h.as_of())
    }
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
    /// Each of its directors that reported.
    pub directors: Vec<DirectorStatus>,
}

/// What a peer last said of itself, all the last-announcer guard reads
/// ([`crate::all_down`]): the same age and the same "can serve" as its
/// [`PeerStatus`], got without building one (the guard runs on the urgent withdraw
/// path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerClaim {
    /// Age of its newest report; `None`: never heard from.
    pub age: Option<Duration>,
    /// Whether it reports that it can serve (a load, not `null`): its fresh directors
    /// summed, or a stale peer's last word; `None`: never heard from.
    pub serves: Option<bool>,
}

impl From<&PeerStatus> for PeerClaim {
    fn from(p: &PeerStatus) -> PeerClaim {
        PeerClaim {
            age: p.age,
            serves: p.last_report.as_ref().map(|r| r.load.is_some()),
        }
    }
}

/// Every configured peer, its key and its last valid report.
#[derive(Debug, Clone)]
pub struct PeerTable {
    cfg: ExchangeConfig,
    pub(crate) peers: BTreeMap<SiteId, Peer>,
    /// This site's other directors, if it has any.
    pub(crate) siblings: Option<Siblings>,
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
            if map.insert(site.clone(), Peer::new(key)).is_some() {
                return Err(ConfigError::Exchange(format!("peer {site} listed twice")));
            }
        }
        Ok(PeerTable {
            cfg,
            peers: map,
            siblings: None,
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
        self.entry(peer).map(|p| p.key.as_slice())
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
                p.directors = o.directors.clone();
                p.accepted = o.accepted;
            }
        }
        if let (Some(new), Some(old)) = (&mut self.siblings, &old.siblings) {
            new.carry_over(old);
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
                let forget_after = stale_after.max(self.cfg.max_age()) + self.cfg.max_clock_skew;
                let local = sender == self.cfg.local;
                let Some(peer) = self.entry_mut(&sender) else {
                    // check() only returns configured senders.
                    return Err(Reject::UnknownSender {
                        sender: sender.to_string(),
                    });
                };
                // What a decision reads of the peer, before and after this report.
                let gist = |r: &LoadReport| (band(r.load_value()), r.spilling_to.clone());
                let before = peer.combined(now, stale_after).map(|r| gist(&r));
                if !local {
                    // A peer's director gone this long is forgotten (a renamed or
                    // retired director must not fill the table); any report of it still
                    // in flight is older than `max_age` and refused as stale.
                    peer.directors
                        .retain(|_, h| now.since(h.as_of()) <= forget_after);
                }
                let director = report.director_name().to_string();
                tracing::debug!(peer = %sender, director, seq, load = ?report.load, "load report accepted");
                let digest = report.config_digest.clone();
                peer.directors.insert(
                    director.clone(),
                    Heard {
                        last_seq: seq,
                        report,
                        at: now,
                    },
                );
                peer.accepted = peer.accepted.saturating_add(1);
                let after = peer.combined(now, stale_after).map(|r| gist(&r));
                let mut changed = match (&before, &after) {
                    (Some(old), Some(new)) => old != new,
                    _ => true,
                };
                if local && let Some(s) = &mut self.siblings {
                    // Any sibling report moves the site load; a digest change is logged.
                    s.heard(&director, digest.as_deref());
                    changed = true;
                }
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
        let Some(peer) = self.entry(&sender) else {
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
        let director = report.director_name();
        let known = peer.directors.contains_key(director);
        if sender == self.cfg.local
            && !self
                .siblings
                .as_ref()
                .is_some_and(|s| s.is_sibling(director))
        {
            return Err(Reject::UnknownSender {
                sender: format!("{sender}/{director}").chars().take(64).collect(),
            });
        }
        if !known && peer.directors.len() >= MAX_DIRECTORS {
            return Err(Reject::Malformed {
                sender,
                reason: format!("more than {MAX_DIRECTORS} directors"),
            });
        }
        if let Some(last) = peer.directors.get(director).map(|h| h.last_seq)
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
        // One pass over the peers (the views are built at every decision).
        let heard: Vec<ViewInput<'_>> = self
            .peers
            .iter()
            .map(|(site, p)| {
                let age = p.newest().map(|h| now.since(h.as_of()));
                (site, p.combined(now, stale_after), age)
            })
            .collect();
        // How many known peers report spilling to each site (a sender's own name in
        // its list is ignored).
        let mut spilled_to: BTreeMap<&SiteId, u32> = BTreeMap::new();
        for (site, r, _) in &heard {
            for to in r.iter().flat_map(|r| &r.spilling_to).filter(|t| t != site) {
                *spilled_to.entry(to).or_insert(0) += 1;
            }
        }
        heard
            .iter()
            .map(|(site, r, age)| {
                let others = spilled_to.get(site).copied().unwrap_or(0);
                let facts = r.as_ref().map(|r| PeerFacts {
                    load: r.load_value(),
                    capacity: r.capacity,
                    spilling_to_us: r.spilling_to.contains(&self.cfg.local),
                    age: age.unwrap_or_default(),
                    seq: r.seq,
                    other_spillers: others,
                });
                PeerView {
                    site: (*site).clone(),
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
                let newest = p.newest();
                let age = newest.map(|h| now.since(h.as_of()));
                let known = age.is_some_and(|a| a <= stale_after);
                // Known: the fresh directors summed; stale: the last one heard.
                let last_report = match known {
                    true => p.combined(now, stale_after).map(Cow::into_owned),
                    false => newest.map(|h| h.report.clone()),
                };
                PeerStatus {
                    site: site.clone(),
                    known,
                    last_report,
                    received_at: newest.map(|h| h.at),
                    age,
                    accepted: p.accepted,
                    directors: director_statuses(p, now, stale_after),
                }
            })
            .collect()
    }

    /// Every configured peer's [`PeerClaim`] (what [`PeerTable::status`] says of it,
    /// cheaply).
    pub fn claims(&self, now: Time) -> impl Iterator<Item = PeerClaim> + '_ {
        self.claims_on(now, None)
    }

    /// Every configured peer's [`PeerClaim`] for one VIP (an address as text): a peer
    /// that reports the VIP among its `vips_down` cannot serve it, whatever its load.
    pub fn claims_for<'a>(
        &'a self,
        now: Time,
        vip: &'a str,
    ) -> impl Iterator<Item = PeerClaim> + 'a {
        self.claims_on(now, Some(vip))
    }

    fn claims_on<'a>(
        &'a self,
        now: Time,
        vip: Option<&'a str>,
    ) -> impl Iterator<Item = PeerClaim> + 'a {
        let stale_after = self.cfg.stale_after();
        self.peers.values().map(move |p| {
            let newest = p.newest();
            let age = newest.map(|h| now.since(h.as_of()));
            let serves = match age.is_some_and(|a| a <= stale_after) {
                true => p.serves(now, stale_after, vip),
                false => newest.map(|h| h.report.serves(vip)),
            };
            PeerClaim { age, serves }
        })
    }

    /// When the next peer turns unknown if nothing arrives (a timer for the daemon, so
    /// the spill rule is re-run at that moment).
    pub fn next_expiry(&self, now: Time) -> Option<Time> {
        let stale_after = self.cfg.stale_after();
        self.peers
            .values()
            .chain(self.siblings.as_ref().map(|s| &s.peer))
            .flat_map(|p| p.directors.values())
            .map(|h| h.as_of().plus(stale_after))
            .filter(|t| *t >= now)
            .min()
            .map(|t| t.plus(Duration::from_millis(1)))
    }

    /// The entry of `site`: a peer, or our own (the siblings).
    fn entry(&self, site: &SiteId) -> Option<&Peer> {
        match &self.siblings {
            Some(s) if *site == self.cfg.local => Some(&s.peer),
            _ => self.peers.get(site),
        }
    }

    fn entry_mut(&mut self, site: &SiteId) -> Option<&mut Peer> {
        match &mut self.siblings {
            Some(s) if *site == self.cfg.local => Some(&mut s.peer),
            _ => self.peers.get_mut(site),
        }
    }
}

/// Each director of `p` for the CLI.
pub(crate) fn director_statuses(p: &Peer, now: Time, stale_after: Duration) -> Vec<DirectorStatus> {
    p.directors
        .iter()
        .map(|(name, h)| {
            let age = now.since(h.as_of());
            DirectorStatus::of(name, Some(&h.report), Some(age), age <= stale_after)
        })
        .collect()
}

/// One peer as the views read it: its name, its fresh directors summed, the age of its
/// newest report.
type ViewInput<'a> = (&'a SiteId, Option<Cow<'a, LoadReport>>, Option<Duration>);

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
