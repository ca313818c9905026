//! Every decoder of kernel replies over arbitrary bytes: netlink framing, IPVS
//! services, destinations and sync daemons, links, addresses, tc filters. None may panic.
//!
//! RUSTC_BOOTSTRAP=1 cargo fuzz run netlink_decode -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunnel_forwarder::kernel::{fou, ipvs, ipvs_daemon, rtnl};
use tunnel_forwarder::netlink::wire;

fuzz_target!(|bytes: &[u8]| {
    for m in wire::messages(bytes).flatten() {
        let _ = ipvs::decode_service(m.payload);
        let _ = ipvs::decode_dest(m.payload, libc::AF_INET as u16);
        let _ = ipvs::decode_dest(m.payload, libc::AF_INET6 as u16);
        let _ = ipvs_daemon::decode(m.payload);
        let _ = fou::decode(m.payload);
        let _ = rtnl::decode_link(&m);
        let _ = rtnl::decode_addr(&m);
        let _ = rtnl::decode_filter(&m);
        let _ = rtnl::ingress_of(&m);
    }
});
