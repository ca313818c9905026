//! A peer's load report as the daemon's listener hands it over: arbitrary header
//! values and body into `PeerTable::receive`, and the same body correctly signed (with
//! the current and with the rotation key) so the fuzzer also reaches the JSON and field
//! checks behind the HMAC. Never a panic; an accepted report is recorded and its replay
//! refused.
//!
//! RUSTC_BOOTSTRAP=1 cargo fuzz run report_receive seeds/report_receive -- -max_total_time=60
//!
//! Seeds are report bodies (`seeds/report_receive/`), stamped around [`NOW`] with
//! sender `idc2` and receiver `idc1`. An input holding two newlines is also read as
//! `site header \n signature header \n body`.
#![no_main]

use geo_balancer::exchange::auth::sign;
use geo_balancer::exchange::{ExchangeConfig, PeerTable, Reject};
use geo_balancer::ids::SiteId;
use geo_balancer::time::Time;
use libfuzzer_sys::fuzz_target;

/// The receiver's clock: the seeds' timestamps sit around it.
const NOW: Time = Time(1_764_053_000_123);
const KEY: &[u8] = b"idc1-idc2 shared key, 32 bytes!!";
const NEXT_KEY: &[u8] = b"idc1-idc2 next key after rotate!";

fn table() -> PeerTable {
    let peer = SiteId::new("idc2");
    let mut t = PeerTable::new(
        ExchangeConfig::new(SiteId::new("idc1")),
        vec![(peer.clone(), KEY.to_vec())],
    )
    .expect("valid exchange config");
    t.set_next_key(&peer, Some(NEXT_KEY.to_vec()))
        .expect("valid next key");
    t
}

/// Signed with `key`, twice: the second copy is a replay when the first was accepted.
fn signed_twice(t: &mut PeerTable, key: &[u8], body: &[u8]) {
    let sig = sign(key, body);
    let first = t.receive(NOW, Some("idc2"), Some(&sig), body);
    let again = t.receive(NOW, Some("idc2"), Some(&sig), body);
    if first.is_ok() {
        assert!(matches!(again, Err(Reject::Replayed { .. })), "{again:?}");
        let st = t.status(NOW);
        assert!(st.iter().any(|p| p.known && p.last_report.is_some()));
    }
    // What the daemon reads of a recorded report afterwards.
    let _ = t.views(NOW);
    let _ = t.next_expiry(NOW);
    let _ = t.rejected();
}

fuzz_target!(|data: &[u8]| {
    let mut t = table();
    signed_twice(&mut t, KEY, data);
    signed_twice(&mut table(), NEXT_KEY, data);

    // Unauthenticated: the body with no headers, with a forged signature, and with
    // header values taken from the input (not UTF-8: absent, as the listener passes it).
    let _ = t.receive(NOW, None, None, data);
    let _ = t.receive(NOW, Some("idc2"), Some("sha256=00"), data);
    let mut parts = data.splitn(3, |b| *b == b'\n');
    if let (Some(site), Some(sig), Some(body)) = (parts.next(), parts.next(), parts.next()) {
        let site = std::str::from_utf8(site).ok();
        let sig = std::str::from_utf8(sig).ok();
        let _ = t.receive(NOW, site, sig, body);
        // The same body signed, under the header site taken from the input.
        let _ = t.receive(NOW, site, Some(&sign(KEY, body)), body);
    }
});
