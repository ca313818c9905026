//! What the handle reports about each peer.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// RFC 4271 §8 session state, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Not trying (stopped, or waiting out a hold-off before reconnecting).
    Idle,
    /// Connecting.
    Connect,
    /// Waiting to retry a connection (or for the peer, when passive).
    Active,
    /// OPEN sent.
    OpenSent,
    /// OPEN received, waiting for KEEPALIVE.
    OpenConfirm,
    /// Exchanging routes.
    Established,
}

/// Message and prefix counters of one peer since the speaker started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// BGP messages written.
    pub messages_sent: u64,
    /// BGP messages read.
    pub messages_received: u64,
    /// UPDATE messages written.
    pub updates_sent: u64,
    /// UPDATE messages read.
    pub updates_received: u64,
    /// NOTIFICATIONs written.
    pub notifications_sent: u64,
    /// NOTIFICATIONs read.
    pub notifications_received: u64,
    /// Times the session reached Established.
    pub established_transitions: u64,
    /// RFC 7606 treat-as-withdraw UPDATEs received.
    pub treat_as_withdraw: u64,
    /// RFC 7606 attributes discarded.
    pub attributes_discarded: u64,
    /// UPDATEs whose AS_PATH holds our own AS (RFC 4271 §9.1.2), not counted as routes.
    pub looped_updates: u64,
}

/// A snapshot of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The configured name.
    pub name: String,
    /// The neighbor's address.
    pub remote_addr: IpAddr,
    /// Current state.
    pub state: PeerState,
    /// Administratively down ([`crate::PeerHandle::disable`]); no reconnects.
    pub disabled: bool,
    /// Time since Established, when it is.
    pub uptime: Option<Duration>,
    /// The neighbor's BGP identifier and AS, once negotiated.
    pub remote_id: Option<(Ipv4Addr, u32)>,
    /// The last reason the session went down or failed.
    pub last_error: Option<String>,
    /// Prefixes we announce to this peer (our Adj-RIB-Out), whether or not the
    /// session is up; they are sent whenever it comes up.
    pub prefixes_announced: usize,
    /// Of those, the prefixes currently advertised on the wire (0 unless
    /// Established; only negotiated families).
    pub prefixes_sent: usize,
    /// Prefixes this peer currently announces to us (counted, then discarded).
    pub prefixes_received: usize,
    /// Counters.
    pub counters: Counters,
}
