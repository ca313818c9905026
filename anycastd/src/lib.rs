//! anycastd: the site daemon that wires bgp-speaker, geo-balancer and
//! tunnel-forwarder together, and `anycastctl`, its operator CLI.
//!
//! Owns: the site config file, the local API (status, drain, undrain, metrics) and who
//! may use it (`auth`), the peer-report listener, signals. Never decides spill or
//! health itself (geo-balancer does) and never touches the kernel except through
//! tunnel-forwarder (it only listens to link messages: `links`).

#![forbid(unsafe_code)]

pub mod announce;
pub mod api;
pub mod auth;
pub mod bfd_link;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod dataplane;
pub mod disabled;
pub mod endpoint_route;
pub mod host;
pub mod layout;
pub mod limits;
pub mod links;
pub mod mapping;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod plan;
pub mod real_server;
pub mod report_listener;
pub mod site;
pub mod status;
pub mod sync_status;
pub mod systemd;
