//! bgp-speaker (work in progress).
