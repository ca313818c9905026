//! Network input never panics and never changes state unless it is a valid report:
//! arbitrary headers and bodies, signed or not, against `PeerTable::receive`. (Stands in
//! for a fuzz target: cargo-fuzz needs a nightly toolchain this project does not have.)

use geo_balancer::exchange::{ExchangeConfig, PeerTable, auth};
use geo_balancer::{SiteId, Time};
use proptest::prelude::*;

const KEY: &[u8] = b"shared-key-a-b-0123456789";

fn table() -> PeerTable {
    PeerTable::new(
        ExchangeConfig::new(SiteId::new("site-b")),
        vec![(SiteId::new("site-a"), KEY.to_vec())],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Bodies that look like reports with arbitrary field values (reach deeper checks).
fn reportish() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u32>(),
        prop_oneof![Just("site-a".to_string()), ".{0,12}"],
        prop_oneof![Just("site-b".to_string()), ".{0,12}"],
        any::<u64>(),
        any::<u64>(),
        prop_oneof![
            Just("null".to_string()),
            any::<f64>().prop_map(|f| format!("{f:?}")),
            Just("1e999".into())
        ],
        any::<f64>(),
        prop::collection::vec(".{0,8}", 0..80),
    )
        .prop_map(|(v, s, r, seq, ts, load, share, to)| {
            serde_json::json!({
                "version": v, "sender": s, "receiver": r, "seq": seq, "timestamp": ts,
                "capacity": 1, "active": 1, "director_load": null, "spill_share": share,
                "spilling_to": to,
            })
            .to_string()
            .replace(
                "\"director_load\":null",
                &format!("\"director_load\":null,\"load\":{load}"),
            )
            .into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_is_rejected_without_state_change(
        body in prop_oneof![prop::collection::vec(any::<u8>(), 0..10_000), reportish()],
        site in prop::option::of(prop_oneof![Just("site-a".to_string()), ".{0,20}"]),
        sign in any::<bool>(),
        sig in prop::option::of(".{0,80}"),
    ) {
        let mut t = table();
        let now = Time::from_secs(1_764_000_000);
        let before = t.status(now);
        let signature = if sign { Some(auth::sign(KEY, &body)) } else { sig };
        let r = t.receive(now, site.as_deref(), signature.as_deref(), &body);
        match r {
            Ok(a) => {
                // Only a correctly signed, well-formed, fresh report from site-a to us.
                prop_assert!(sign);
                prop_assert_eq!(a.sender.as_str(), "site-a");
            }
            Err(e) => {
                prop_assert_eq!(t.status(now), before);
                prop_assert_eq!(t.rejected()[&e.kind()], 1);
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}
