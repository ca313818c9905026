//! # bgp-speaker: a BGP-4 stub speaker for anycast VIP prefixes
//!
//! **Owns**: BGP sessions to the site's upstream routers (eBGP or iBGP; IPv4 and
//! IPv6 unicast, RFC 4760; 4-octet AS, RFC 6793), the set of prefixes the site
//! originates and their attributes, and per-neighbor transport security (TCP MD5,
//! RFC 2385; GTSM, RFC 5082).
//!
//! **Never**: decides *what* to announce (that is the geo-balancer's call),
//! installs or re-advertises received routes (they are counted and dropped), touches
//! the kernel's routing table, delays a withdraw (no MRAI, no batching), or panics on
//! anything a peer sends.
//!
//! ```text
//!   daemon ── Speaker / PeerHandle (Clone) ───┐
//!                                             │ bounded mpsc<Command> per peer
//!   listener task (optional: passive peers ───┤ Inbound(TcpStream): taken, or held as
//!   and collisions)                           │ a competing connection (RFC 4271 §6.8)
//!                                             ▼
//!        ┌──────────────── peer task (peer.rs), one per neighbor ────────────────┐
//!        │ select! { biased; commands, socket read, connect done,                │
//!        │           competing connection read, socket writable, next timer }    │
//!        │          │ Input                              ▲ Vec<Output>            │
//!        │          ▼                                    │                        │
//!        │   Session (session.rs, sans-IO) ──uses── wire/ (rustbgpd codec + FSM)  │
//!        └──────────────────────────────┬─────────────────────────────────────────┘
//!                                       │ TCP (MD5, GTSM)
//!                                 upstream router
//! ```
//!
//! The daemon calls `Speaker::{start, announce, withdraw, status, changes, shutdown}`
//! (`changes`: a `watch` counter a peer task bumps when what `status` shows changes)
//! and, per
//! peer, `PeerHandle::{announce, withdraw, status, reset, disable, enable, connect_now,
//! shutdown}` (`connect_now`: the embedder saw the path come back, link or BFD up).
//! A withdraw is one channel send; the peer task encodes the UPDATE and writes it to
//! the `TCP_NODELAY` socket in the same step (no MRAI timer, no batching).
//!
//! Modules: `wire` is the only place that names the codec and FSM crates;
//! `session` is the state machine (`handle(Input) -> Vec<Output>`, timers as
//! outputs, no I/O); `peer` is the thin tokio driver; `handle` the public
//! handles; `listener` the passive accept loop; `security` the socket options.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bgp_speaker::SpeakerError> {
//! use bgp_speaker::{PeerConfig, Route, Speaker, SpeakerConfig};
//! let mut up = PeerConfig::new("r11", "192.0.2.1".parse().unwrap(), 65005, 65001, "192.0.2.2".parse().unwrap());
//! up.hold_time = 9;
//! let speaker = Speaker::start(SpeakerConfig { peers: vec![up], listen: None }).await?;
//! speaker.announce(Route::new("10.101.4.0/24".parse().unwrap())).await?;
//! speaker.withdraw("10.101.4.0/24".parse().unwrap()).await?;
//! speaker.shutdown("maintenance").await;
//! # Ok(()) }
//! ```

pub mod config;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handle;
mod listener;
mod peer;
mod prefix_set;
mod security;
mod session;
pub mod status;
mod wire;

pub use config::{GRACEFUL_SHUTDOWN, MaxPrefix, MaxPrefixAction, PeerConfig, Route, SpeakerConfig};
pub use error::{ConfigError, SockoptError, SpeakerError};
pub use handle::{PeerHandle, Speaker};
pub use status::{Counters, PeerState, PeerStatus};
