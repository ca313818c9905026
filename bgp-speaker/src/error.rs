//! Typed errors of the speaker's public API.

use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

/// A peer or route configuration the speaker refuses before starting anything.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// RFC 4271 §4.2: the hold time is 0 or at least 3 seconds.
    #[error("peer {peer}: hold time {hold_secs} s is invalid (use 0 or at least 3)")]
    HoldTime {
        /// Peer name.
        peer: String,
        /// Configured hold time.
        hold_secs: u16,
    },
    /// The keepalive interval must be at least 1 s and below the hold time.
    #[error(
        "peer {peer}: keepalive {keepalive_secs} s is invalid (use 1 s up to below the hold time {hold_secs} s)"
    )]
    Keepalive {
        /// Peer name.
        peer: String,
        /// Configured keepalive.
        keepalive_secs: u16,
        /// Configured hold time.
        hold_secs: u16,
    },
    /// RFC 9687 §4.4: the send hold time must exceed the hold time.
    #[error(
        "peer {peer}: send hold time {send_hold_secs} s must exceed the hold time {hold_secs} s"
    )]
    SendHoldTime {
        /// Peer name.
        peer: String,
        /// Configured send hold time.
        send_hold_secs: u32,
        /// Configured hold time.
        hold_secs: u16,
    },
    /// An ASN of 0 is reserved (RFC 7607).
    #[error("peer {peer}: AS 0 is reserved")]
    ZeroAsn {
        /// Peer name.
        peer: String,
    },
    /// A family is enabled whose next hop cannot be derived from the session.
    #[error(
        "peer {peer}: {family} is enabled over a session to {remote}, so a {family} next hop must be configured"
    )]
    MissingNextHop {
        /// Peer name.
        peer: String,
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// The session's remote address.
        remote: IpAddr,
    },
    /// Neither IPv4 nor IPv6 unicast is enabled.
    #[error("peer {peer}: no address family enabled")]
    NoFamily {
        /// Peer name.
        peer: String,
    },
    /// RFC 2385 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN).
    #[error("peer {peer}: TCP MD5 password is longer than 80 bytes")]
    Md5KeyTooLong {
        /// Peer name.
        peer: String,
    },
    /// GTSM hop count must be 1..=254.
    #[error("peer {peer}: GTSM hop count {hops} is out of range 1..=254")]
    TtlSecurityHops {
        /// Peer name.
        peer: String,
        /// Configured hop count.
        hops: u8,
    },
    /// Two peers share a name or a remote address.
    #[error("peer {peer}: duplicate peer name or remote address")]
    DuplicatePeer {
        /// Peer name.
        peer: String,
    },
    /// Passive peers need the speaker's listen address.
    #[error("peer {peer}: passive peers need SpeakerConfig::listen")]
    PassiveWithoutListener {
        /// Peer name.
        peer: String,
    },
}

/// Why a call through a [`crate::Speaker`] or [`crate::PeerHandle`] failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SpeakerError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The peer's task has ended (after shutdown, or the speaker was dropped).
    #[error("peer {peer}: session task has stopped")]
    Stopped {
        /// Peer name.
        peer: String,
    },
    /// The route cannot be sent to this peer (family not enabled, bad attributes).
    #[error("route {prefix}: {reason}")]
    BadRoute {
        /// The route's prefix.
        prefix: IpNet,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The listening socket could not be opened.
    #[error("listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error text.
        reason: String,
    },
}

/// A socket option the kernel refused (TCP MD5, GTSM).
#[derive(Debug, Error)]
#[error("setsockopt {option} for peer {peer}: {source}")]
pub struct SockoptError {
    /// Which option.
    pub option: &'static str,
    /// The peer's address.
    pub peer: IpAddr,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}
