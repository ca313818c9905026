//! The codec and FSM adapter: the only module that names `rustbgpd-wire` and
//! `rustbgpd-fsm` (pinned `=0.27.0` / `=0.14.0`, upgraded together; see
//! docs/decisions/0001-bgp-codec.md). Everything else in the crate speaks in the
//! types re-exported or defined here, so a swap of codec or FSM stays in this
//! directory plus the event/action translation in `session.rs`.
//!
//! - `frame`: framing of the TCP byte stream, message decode/encode, NOTIFICATION.
//! - `update`: our routes -> UPDATE bytes; received UPDATE -> RFC 7606 verdict.
//! - `fsm`: our peer config -> the FSM's config; negotiated session summary.

mod frame;
mod fsm;
mod update;

pub(crate) use frame::{
    EXTENDED_MAX_LEN, STANDARD_MAX_LEN, describe_notification, encode, encode_keepalive,
    encode_notification, next_frame, notification, shutdown_communication,
};
pub(crate) use fsm::{Negotiated, fsm_config};
pub(crate) use update::{
    EncodeCtx, UpdateVerdict, classify_update, encode_announce, encode_end_of_rib, encode_withdraw,
};

pub(crate) use rustbgpd_fsm::{Action, Event, Session as Fsm, SessionState, TimerType};
pub(crate) use rustbgpd_wire::{Afi, Message, RouteRefreshSubtype};

/// NOTIFICATION codes and subcodes the speaker sends itself.
pub(crate) mod codes {
    pub(crate) use rustbgpd_wire::notification::cease_subcode;
    /// Cease (RFC 4271 §4.5).
    pub(crate) const CEASE: u8 = 6;
    /// Send Hold Timer Expired (RFC 9687 §5).
    pub(crate) const SEND_HOLD_TIMER_EXPIRED: u8 = 8;
}

#[cfg(test)]
pub(crate) mod tests;
