//! A BFD control packet from the network: decoded, and when it decodes, fed to a
//! session in every state it can be in. Neither may panic.
//!
//! RUSTC_BOOTSTRAP=1 cargo fuzz run control_decode -- -max_total_time=60
#![no_main]

use std::time::{Duration, Instant};

use bfd::{ControlPacket, Session, Timers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // The first bytes as one packet, then the rest as a sequence of 24-byte packets
    // to one session: arbitrary state histories.
    let now = Instant::now();
    let mut s = Session::new(0x0102_0304, Timers::default(), now, 7);
    let mut t = now;
    for chunk in bytes.chunks(24) {
        t += Duration::from_millis(u64::from(chunk[0]) * 10);
        let _ = s.on_timer(t);
        if let Ok(p) = ControlPacket::decode(chunk) {
            let _ = s.on_packet(t, &p);
            let _ = ControlPacket::decode(&p.encode());
        }
        if chunk.len() > 1 && chunk[1] == 0xff {
            let _ = s.set_admin_down(t, chunk.len() % 2 == 0);
        }
        let _ = s.next_deadline();
    }
});
