//! tunnel-forwarder: the data plane programmer of one site's director.
//!
//! Owns: IPVS virtual services and their destinations (local real servers; peer
//! sites as tunnel destinations of the VIP's family, IPIP or ip6ip6, whose weights
//! the geo-balancer sets), the receiving IPIP and ip6ip6 devices ([`tunnel6`]), the
//! VIP address on the director, the loop guard (a tc ingress filter on the tunnel
//! device of the VIP's family marking tunnelled connections, and a firewall-mark
//! service holding only local real servers), and the sysctls these need.
//! Everything through netlink: IPVS generic netlink and rtnetlink, with its own
//! small codec ([`netlink`]); sysctls through /proc/sys.
//!
//! Never: touches packets (the kernel forwards), shells out to `ipvsadm`/`ip`/`tc`,
//! removes what it did not create (see [`mod@diff`] for the ownership rules), or deletes
//! a destination to change its weight.
//!
//! ```text
//!  DesiredState ──compile()──> Target ─┐
//!                                      ├─ diff() (pure) ──> Vec<Request> ──> Kernel::apply
//!  Kernel::observe() ───────> Observed ┘                     (batched netlink)
//!
//!  Forwarder::reconcile(&DesiredState) -> Report { changes, requests, .. }
//!  Forwarder::stats() -> Vec<ServiceStats>          (load model input)
//!  Forwarder::own_stats(): the same without synced connections (origins)
//! ```
//!
//! The daemon owns one [`Forwarder`] per director in a blocking thread fed by a
//! channel of desired states; each reconcile reads the kernel first, so whatever
//! changed behind its back is corrected at the next run.

pub mod diff;
pub mod error;
pub mod forwarder;
pub mod kernel;
pub mod model;
pub mod netlink;
pub mod origins;
pub mod request;
pub mod split;
pub mod stats;
pub mod sync;
pub mod tunnel6;
pub mod update;

pub use diff::{Conflict, Observed, Owned, diff};
pub use error::{ConfigError, Error};
pub use forwarder::{Forwarder, Report};
pub use model::{
    DEFAULT_FILTER_PRIO, DesiredState, Dest, Encap, Forward, MarkRule, Peer, Persistence, Protocol,
    ServiceConfig, ServiceKey, Target, Tunnel6Device, TunnelDevice, TunnelIn, Vip, VipDevice,
    VipService,
};
pub use origins::{SyncedConns, subtract_synced};
pub use request::Request;
pub use split::{SHARE_UNITS, Split};
pub use stats::{Counters, DestStats, ServiceStats};
pub use sync::{SyncDaemon, SyncRole, SyncStatus};
