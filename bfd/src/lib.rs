//! BFD, Bidirectional Forwarding Detection (RFC 5880), asynchronous mode, single hop
//! (RFC 5881), IPv4 and IPv6, without authentication.
//!
//! ```text
//!   packet::ControlPacket   encode / decode (checks of 6.8.6 before any session)
//!   session::Session        one session's state machine: on_packet, on_timer,
//!                           next_deadline -> Output::{Send, StateChanged}
//!   task::spawn             sockets (3784, TTL 255 both ways) and one timer for all
//!                           sessions -> BfdHandle + a channel of Events
//! ```
//! Independent of the other crates: the daemon maps BFD events to its BGP sessions.

pub mod packet;
pub mod session;
pub mod task;

pub use packet::{ControlPacket, DecodeError, Diag, State};
pub use session::{Output, Session, Timers};
pub use task::{BfdHandle, Event, PeerSpec, PeerStatus, spawn};
