//! This site's other directors (decision 0015): their reports arrive like a peer's,
//! under our own site name and signed with the key the site's directors share; what
//! sets them apart is the config digest.
//!
//! A sibling whose digest differs from ours runs another site config (other VIPs,
//! thresholds, peers): its figures are never added to the site load, the mismatch is
//! shown in status and logged once per change.

use std::collections::{BTreeMap, BTreeSet};

use crate::errors::ConfigError;
use crate::exchange::auth;
use crate::exchange::directors::DirectorStatus;
use crate::exchange::peers::{Peer, PeerTable, director_statuses};
use crate::exchange::report::{LoadReport, valid_director_name};
use crate::time::Time;

/// The siblings' entry in a [`PeerTable`].
#[derive(Debug, Clone)]
pub(crate) struct Siblings {
    /// This director.
    me: String,
    /// The configured siblings.
    names: BTreeSet<String>,
    /// Our own config digest.
    digest: String,
    /// Their reports, as a peer's.
    pub(crate) peer: Peer,
    /// Whether each sibling's last digest matched ours (to log changes only).
    matched: BTreeMap<String, bool>,
}

impl Siblings {
    pub(crate) fn is_sibling(&self, director: &str) -> bool {
        self.names.contains(director)
    }

    /// A sibling's report was accepted with `digest`: logs when its match changed.
    pub(crate) fn heard(&mut self, director: &str, digest: Option<&str>) {
        let now_matches = digest == Some(self.digest.as_str());
        let before = self.matched.insert(director.to_string(), now_matches);
        if before != Some(now_matches) {
            if now_matches {
                tracing::info!(director, "sibling director's config digest matches ours");
            } else {
                tracing::warn!(
                    director,
                    theirs = digest.unwrap_or("none"),
                    ours = %self.digest,
                    "sibling director runs another site config: its figures are left out of the site load"
                );
            }
        }
    }

    pub(crate) fn carry_over(&mut self, old: &Siblings) {
        for (name, h) in &old.peer.directors {
            if self.names.contains(name) {
                self.peer.directors.insert(name.clone(), h.clone());
            }
        }
        self.peer.accepted = old.peer.accepted;
        // Re-evaluated against the (maybe new) digest on their next report.
        self.matched = old.matched.clone();
    }
}

impl PeerTable {
    /// This site has other directors: `me` is this one, `siblings` the others, `key` the
    /// key the site's directors share, `digest` our site-wide config digest. Their
    /// reports are then accepted under our own site name.
    pub fn set_siblings(
        &mut self,
        me: &str,
        siblings: Vec<String>,
        key: Vec<u8>,
        digest: String,
    ) -> Result<(), ConfigError> {
        let bad = |s: String| Err(ConfigError::Exchange(s));
        if key.len() < auth::MIN_KEY_LEN {
            return bad(format!(
                "directors' key is {} bytes, at least {} needed",
                key.len(),
                auth::MIN_KEY_LEN
            ));
        }
        let mut names = BTreeSet::new();
        for n in siblings {
            if !valid_director_name(&n) || n == me || !names.insert(n.clone()) {
                return bad(format!("sibling director {n:?}: bad, ours or listed twice"));
            }
        }
        self.siblings = Some(Siblings {
            me: me.to_string(),
            names,
            digest,
            peer: Peer::new(key),
            matched: BTreeMap::new(),
        });
        Ok(())
    }

    /// The siblings' fresh reports whose digest matches ours: what the site load adds
    /// to this director's own figures.
    pub fn sibling_reports(&self, now: Time) -> Vec<&LoadReport> {
        let Some(s) = &self.siblings else {
            return Vec::new();
        };
        let stale_after = self.config().stale_after();
        s.peer
            .directors
            .values()
            .filter(|h| now.since(h.as_of()) <= stale_after)
            .filter(|h| h.report.config_digest.as_deref() == Some(s.digest.as_str()))
            .map(|h| &h.report)
            .collect()
    }

    /// Every configured sibling for the CLI (never heard: not fresh, no figures).
    pub fn siblings(&self, now: Time) -> Vec<DirectorStatus> {
        let Some(s) = &self.siblings else {
            return Vec::new();
        };
        let heard = director_statuses(&s.peer, now, self.config().stale_after());
        s.names
            .iter()
            .map(|name| {
                let mut d = heard
                    .iter()
                    .find(|d| d.name == *name)
                    .cloned()
                    .unwrap_or_else(|| DirectorStatus::of(name, None, None, false));
                d.digest_match = d
                    .age
                    .map(|_| d.config_digest.as_deref() == Some(s.digest.as_str()));
                d
            })
            .collect()
    }

    /// This director's name, when the site has siblings.
    pub fn director(&self) -> Option<&str> {
        self.siblings.as_ref().map(|s| s.me.as_str())
    }
}
