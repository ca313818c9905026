//! `anycastctl`: the operator's view of one site's daemon.

pub mod client;
pub mod render;
pub mod table;
