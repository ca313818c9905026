//! Why a report was refused, and the classes the counters use.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

use crate::ids::SiteId;

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
    /// ([`crate::exchange::ExchangeConfig::max_age`]).
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
