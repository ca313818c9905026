//! tunnel-forwarder (work in progress).
