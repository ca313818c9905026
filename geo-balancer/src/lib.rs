//! geo-balancer: the brain of one site.
//!
//! Owns: real-server health (rise/fall, fast failure detection), whether each VIP may be
//! announced (min_up, data plane, hold-down), the site's aggregate load, the
//! authenticated load exchange with peer sites, the spill decision (the LVS paper's
//! 1.1 / 0.7 / 1.0 rule) and the IPVS weights that carry it out.
//!
//! Never does: BGP, netlink, or listening on a socket. Its core (`health::state`,
//! `health::vip`, `load`, `exchange::{report,auth,peers,schedule}`, `spill`, `weights`)
//! has no I/O and no clock: every call takes `now`. The daemon (anycastd) owns the
//! report listener and hands request bytes to [`exchange::PeerTable::receive`]; it maps
//! tunnel-forwarder's IPVS stats into [`load::ServerSample`] / [`load::TunnelSample`].
//!
//! ```text
//!  per real server (tokio)                    the daemon's site task (one owner)
//!  +------------------------+  HealthEvent    +---------------------------------------+
//!  | health::task: interval |---mpsc-------->| ServerHealth::on_probe (rise/fall)     |
//!  |  probe (tcp/http/cmd)  |                | VipHealth::update -> Announce/Withdraw |--> bgp-speaker
//!  | health::watch: idle    |---mpsc-------->|   (withdraw at once, announce after    |
//!  |  conn, EOF -> reprobe  | (hard failure) |    hold-down)                          |
//!  +------------------------+                | load::site_load(IPVS stats)            |
//!                                            | SpillEngine::decide -> SpillDecision   |
//!  peer report --HTTP--> daemon listener --> | PeerTable::receive (Accepted/Reject)   |
//!                                            | weights::plan -> IPVS weights          |--> tunnel-forwarder
//!  exchange::client <------------------------ | ReportScheduler::poll -> ReportRound   |
//!    (reqwest, HMAC header) --HTTP--> peers  +---------------------------------------+
//! ```

// Pure logic and sockets through tokio: no unsafe, and no module may allow it.
#![forbid(unsafe_code)]

pub mod all_down;
pub mod errors;
pub mod exchange;
pub mod health;
pub mod ids;
pub mod load;
pub mod spill;
pub mod time;
pub mod weights;

pub use all_down::AllDown;
pub use errors::{ConfigError, LoadSourceError, ProbeError, SendError};
pub use ids::{ServerId, SiteId};
pub use load::{ServerSample, SiteLoad, TunnelSample, site_load};
pub use spill::{LocalView, PeerFacts, PeerView, Rule, SpillConfig, SpillDecision, SpillEngine};
pub use time::Time;
