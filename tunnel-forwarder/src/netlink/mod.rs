//! Netlink plumbing shared by the IPVS (generic netlink) and rtnetlink codecs:
//! [`wire`] is pure framing, [`socket`] the one place that does I/O.

pub mod socket;
pub mod wire;
