//! geo-balancer (work in progress).
