//! Test harness shared by every crate's integration tests.
//!
//! Owns: the rules for tests that need something from the machine (root, network
//! namespaces, a real BGP peer, the user-mode-Linux lab kernel), and the code that
//! builds those environments. Never used by the product itself.
//!
//! A test that needs something calls [`require()`](require::require) first. On a developer's machine a
//! missing requirement skips the test with a printed reason; under `CI=true` it fails
//! instead, because `.ci/run` installs and provides everything.

pub mod require;

pub use require::{Need, require};
/// Packet and rtnetlink observers in a namespace, and their BGP/route decoders.
pub mod bgp_capture;
/// Network namespaces and veth pairs on the host kernel (BGP interop tests).
pub mod netns;
/// Real BGP peers (FRR, BIRD, GoBGP) started inside a namespace.
pub mod peers;
/// Prometheus's `promtool` on an exposition text (the real checker, not a mock).
pub mod promtool;
/// What a real server needs per forwarding method: the file `anycastd check` uses,
/// included here so that the lab applies the same list.
#[path = "../../anycastd/src/real_server.rs"]
pub mod real_server;
/// The LVS paper's topology (Figure 2.6), for the lab kernel and for containerlab.
pub mod seed;
pub mod seed6;
/// The user-mode-Linux lab kernel: boot, topology, scenario, results.
pub mod uml;
