//! How IPVS wraps what it sends to a tunnel destination (`-i`): plain IPIP, or
//! IPIP inside UDP (GUE, Linux 5.2) or GRE (Linux 5.3). The kernel's
//! `IPVS_DEST_ATTR_TUN_TYPE`, `_TUN_PORT` and `_TUN_FLAGS` (include/uapi/linux/ip_vs.h).
//!
//! GUE is what gives the upstream routers' ECMP something to hash on: the kernel picks
//! the outer UDP source port from a hash of the inner flow, so the flows to one
//! tunnel endpoint spread over the paths (and the directors) behind it. IPIP and GRE
//! carry no ports: every flow to one endpoint hashes alike (decision 0016).

use std::fmt;

use super::{Dest, Forward, ServiceKey, SockFmt};
use crate::error::ConfigError;

/// `IP_VS_CONN_F_TUNNEL_TYPE_IPIP`.
pub(crate) const TUN_TYPE_IPIP: u8 = 0;
/// `IP_VS_CONN_F_TUNNEL_TYPE_GUE`.
pub(crate) const TUN_TYPE_GUE: u8 = 1;
/// `IP_VS_CONN_F_TUNNEL_TYPE_GRE`.
pub(crate) const TUN_TYPE_GRE: u8 = 2;
/// `IP_VS_TUNNEL_ENCAP_FLAG_CSUM`: checksum the outer UDP datagram / the GRE packet.
pub(crate) const TUN_F_CSUM: u16 = 1 << 0;

/// The encapsulation of a tunnel destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Encap {
    /// IP in IP (protocol 4), 20 bytes of outer IPv4 header (40 for ip6ip6).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation to `port` (a `fou` listener of type gue on the
    /// receiving side): outer IP + UDP (8) + GUE (4) = 32 bytes over IPv4.
    Gue {
        /// Destination UDP port of the outer datagram.
        port: u16,
        /// Outer UDP checksum (`--tun-csum`); off, the UDP checksum is zero, as
        /// RFC 768 allows over IPv4 (the inner TCP has its own).
        csum: bool,
    },
    /// GRE (protocol 47) with no key: outer IP + 4 bytes (8 with a checksum).
    Gre {
        /// GRE checksum (`--tun-csum`).
        csum: bool,
    },
}

impl Encap {
    /// The kernel's tunnel type, port and flags.
    pub fn kernel(self) -> (u8, u16, u16) {
        let f = |csum: bool| if csum { TUN_F_CSUM } else { 0 };
        match self {
            Encap::Ipip => (TUN_TYPE_IPIP, 0, 0),
            Encap::Gue { port, csum } => (TUN_TYPE_GUE, port, f(csum)),
            Encap::Gre { csum } => (TUN_TYPE_GRE, 0, f(csum)),
        }
    }

    /// From the kernel's attributes; `None` for a type this crate does not know.
    /// Flags other than the checksum (remote checksum offload) are read as no
    /// checksum, so a destination carrying them differs from any desired one and the
    /// diff rewrites it.
    pub fn from_kernel(ty: u8, port: u16, flags: u16) -> Option<Encap> {
        let csum = flags == TUN_F_CSUM;
        match ty {
            TUN_TYPE_IPIP => Some(Encap::Ipip),
            TUN_TYPE_GUE => Some(Encap::Gue { port, csum }),
            TUN_TYPE_GRE => Some(Encap::Gre { csum }),
            _ => None,
        }
    }

    /// Bytes the encapsulation adds beyond the outer IP header: 0 for IPIP, 12 for
    /// GUE (UDP 8 + GUE 4), 4 or 8 for GRE.
    pub fn extra_overhead(self) -> u16 {
        match self {
            Encap::Ipip => 0,
            Encap::Gue { .. } => 12,
            Encap::Gre { csum } => {
                if csum {
                    8
                } else {
                    4
                }
            }
        }
    }

    /// A destination of service `key` may carry this encapsulation: a tunnel one,
    /// and GUE to a port.
    pub(crate) fn check(self, key: &ServiceKey, d: &Dest) -> Result<(), ConfigError> {
        let what = match self {
            Encap::Ipip => return Ok(()),
            _ if d.forward != Forward::Tunnel => "is not a tunnel (-i) destination",
            Encap::Gue { port: 0, .. } => "has GUE to port 0",
            _ => return Ok(()),
        };
        Err(ConfigError::new(format!(
            "{key}: destination {} {what} but asks for {self}",
            SockFmt(d.addr, d.port)
        )))
    }

    /// `--tun-type gue --tun-port 6080 --tun-nocsum` as ipvsadm (1.31) writes it;
    /// empty for IPIP.
    pub fn ipvsadm_args(self) -> String {
        let csum = |c: bool| if c { "--tun-csum" } else { "--tun-nocsum" };
        match self {
            Encap::Ipip => String::new(),
            Encap::Gue { port, csum: c } => {
                format!(" --tun-type gue --tun-port {port} {}", csum(c))
            }
            Encap::Gre { csum: c } => format!(" --tun-type gre {}", csum(c)),
        }
    }
}

#[cfg(test)]
impl Encap {
    /// One of each kind, with and without checksum, two GUE ports.
    pub(crate) const SAMPLES: [Encap; 5] = [
        Encap::Ipip,
        Encap::Gue {
            port: 6080,
            csum: false,
        },
        Encap::Gue {
            port: 5555,
            csum: true,
        },
        Encap::Gre { csum: false },
        Encap::Gre { csum: true },
    ];
}

impl fmt::Display for Encap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encap::Ipip => f.write_str("ipip"),
            Encap::Gue { port, .. } => write!(f, "gue port {port}"),
            Encap::Gre { .. } => f.write_str("gre"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_values_round_trip() {
        for e in Encap::SAMPLES {
            let (t, p, f) = e.kernel();
            assert_eq!(Encap::from_kernel(t, p, f), Some(e));
        }
        assert_eq!(Encap::from_kernel(3, 0, 0), None);
        // Remote checksum offload is not ours: read as a GUE without checksum.
        assert_eq!(
            Encap::from_kernel(TUN_TYPE_GUE, 6080, 2),
            Some(Encap::Gue {
                port: 6080,
                csum: false
            })
        );
    }

    #[test]
    fn overheads_and_ipvsadm() {
        let gue = Encap::Gue {
            port: 6080,
            csum: false,
        };
        assert_eq!(gue.extra_overhead(), 12);
        assert_eq!(Encap::Gre { csum: true }.extra_overhead(), 8);
        assert_eq!(
            gue.ipvsadm_args(),
            " --tun-type gue --tun-port 6080 --tun-nocsum"
        );
        assert_eq!(Encap::Ipip.ipvsadm_args(), "");
    }
}
