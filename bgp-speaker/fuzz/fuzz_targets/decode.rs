//! Every byte a peer can send: framing, message decode, RFC 7606 classification,
//! and the Established session that consumes them. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bgp_speaker::fuzzing::decode(data);
    bgp_speaker::fuzzing::session(data);
});
