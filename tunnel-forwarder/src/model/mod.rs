//! What the kernel should hold: the desired state (per VIP, as the daemon thinks of
//! it) and the flat kernel objects it compiles to (what the diff compares).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

pub use crate::tunnel6::Tunnel6Device;

use crate::split::Split;

mod encap;
mod target;

pub use encap::Encap;

pub(crate) use target::check_ifname;
pub use target::{AddrSpec, MarkRule, ServiceSpec, Target};

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub fn from_number(n: u16) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    fn ipvsadm_flag(self) -> &'static str {
        match self {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
            Protocol::Sctp => "--sctp-service",
        }
    }
}

/// Identity of an IPVS virtual service, as the kernel keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKey {
    /// `-t/-u VIP:PORT`.
    Addr {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    /// `-f MARK` (IPv4 or IPv6 family).
    Fwmark { mark: u32, ipv6: bool },
}

impl ServiceKey {
    /// Whether the service is of the IPv6 family.
    pub fn is_ipv6(&self) -> bool {
        match self {
            ServiceKey::Addr { addr, .. } => addr.is_ipv6(),
            ServiceKey::Fwmark { ipv6, .. } => *ipv6,
        }
    }

    /// The key as ipvsadm writes it: `-t 10.0.0.1:80`, `-f 7`.
    pub fn ipvsadm(&self) -> String {
        match self {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => format!("{} {}", protocol.ipvsadm_flag(), SockFmt(*addr, *port)),
            ServiceKey::Fwmark { mark, ipv6 } => {
                format!("-f {mark}{}", if *ipv6 { " -6" } else { "" })
            }
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ipvsadm())
    }
}

/// `addr:port` with brackets for IPv6.
pub(crate) struct SockFmt(pub IpAddr, pub u16);

impl fmt::Display for SockFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

/// How IPVS forwards to a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Forward {
    /// Masquerading (`-m`): the director rewrites the destination; replies come back
    /// through it.
    Nat,
    /// Direct routing (`-g`): same L2 segment, real server holds the VIP.
    DirectRoute,
    /// IP-in-IP tunnel (`-i`): peer sites and remote real servers.
    Tunnel,
}

impl Forward {
    /// `IP_VS_CONN_F_*` forwarding method value.
    pub fn kernel(self) -> u32 {
        match self {
            Forward::Nat => 0,
            Forward::Tunnel => 2,
            Forward::DirectRoute => 3,
        }
    }

    pub fn from_kernel(v: u32) -> Option<Forward> {
        match v & 0x7 {
            0 => Some(Forward::Nat),
            2 => Some(Forward::Tunnel),
            3 => Some(Forward::DirectRoute),
            _ => None,
        }
    }

    fn ipvsadm_flag(self) -> &'static str {
        match self {
            Forward::Nat => "-m",
            Forward::DirectRoute => "-g",
            Forward::Tunnel => "-i",
        }
    }
}

/// Persistence (`-p TIMEOUT -M NETMASK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Persistence {
    /// Seconds.
    pub timeout: u32,
    /// Prefix length of the client netmask (32 for one client address).
    pub netmask_len: u8,
}

/// Settings of a virtual service the kernel holds (everything but its key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceConfig {
    /// Scheduler name: `wrr`, `rr`, `wlc`, `lc`, `sh`, `mh`, ...
    pub scheduler: String,
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`-o`, UDP).
    pub one_packet: bool,
    /// Scheduler flags `sh-fallback`/`sh-port`/`mh-*` (IP_VS_SVC_F_SCHED1..3 as bits 0..2).
    pub sched_flags: u8,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            scheduler: "wrr".into(),
            persistence: None,
            one_packet: false,
            sched_flags: 0,
        }
    }
}

pub(crate) const SVC_F_PERSISTENT: u32 = 0x1;
pub(crate) const SVC_F_ONEPACKET: u32 = 0x4;
pub(crate) const SVC_F_SCHED_SHIFT: u32 = 3;
/// Flags we set and compare; others (HASHED) are the kernel's.
pub(crate) const SVC_F_OURS: u32 = SVC_F_PERSISTENT | SVC_F_ONEPACKET | (0x7 << SVC_F_SCHED_SHIFT);

impl ServiceConfig {
    /// `IP_VS_SVC_F_*` bits.
    pub fn flags(&self) -> u32 {
        let mut f = u32::from(self.sched_flags & 0x7) << SVC_F_SCHED_SHIFT;
        if self.persistence.is_some() {
            f |= SVC_F_PERSISTENT;
        }
        if self.one_packet {
            f |= SVC_F_ONEPACKET;
        }
        f
    }

    /// The netmask attribute's value for a service of the given family: for IPv6
    /// IPVS takes the prefix length (1..=128), for IPv4 the mask in network order.
    pub fn netmask_for(&self, ipv6: bool) -> u32 {
        if ipv6 {
            let len = self.persistence.map(|p| p.netmask_len).unwrap_or(128);
            u32::from(len.clamp(1, 128))
        } else {
            self.netmask()
        }
    }

    /// IPv4 netmask as the kernel stores it (network order u32).
    pub fn netmask(&self) -> u32 {
        let len = self
            .persistence
            .map(|p| p.netmask_len)
            .unwrap_or(32)
            .min(32);
        let m: u32 = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        m.to_be()
    }

    /// `-s SCHED [-p T -M MASK] ...`; for IPv6 `-M` takes the prefix length.
    fn ipvsadm_args(&self, ipv6: bool) -> String {
        let mut s = format!("-s {}", self.scheduler);
        if let Some(p) = self.persistence {
            if ipv6 {
                s += &format!(" -p {} -M {}", p.timeout, self.netmask_for(true));
            } else {
                s += &format!(
                    " -p {} -M {}",
                    p.timeout,
                    Ipv4Addr::from(u32::from_be(self.netmask()))
                );
            }
        }
        if self.one_packet {
            s += " -o";
        }
        if self.sched_flags != 0 {
            s += &format!(" -b flag{}", self.sched_flags);
        }
        s
    }
}

/// A destination (real server or peer director) of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dest {
    pub addr: IpAddr,
    /// Port; for TUN and DR the kernel uses the service's port whatever this says,
    /// so give the service port there.
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
    /// Upper connection threshold (0 = none).
    pub upper: u32,
    /// Lower connection threshold (0 = none).
    pub lower: u32,
    /// The encapsulation of a tunnel (`-i`) destination; [`Encap::Ipip`] for
    /// every other method.
    pub encap: Encap,
}

impl Dest {
    /// A destination with no thresholds.
    pub fn new(addr: IpAddr, port: u16, forward: Forward, weight: u32) -> Dest {
        Dest {
            addr,
            port,
            forward,
            weight,
            upper: 0,
            lower: 0,
            encap: Encap::Ipip,
        }
    }

    /// The same destination with `encap`.
    pub fn with_encap(self, encap: Encap) -> Dest {
        Dest { encap, ..self }
    }

    /// Key of a destination inside its service.
    pub fn key(&self) -> (IpAddr, u16) {
        (self.addr, self.port)
    }

    pub(crate) fn ipvsadm_args(&self) -> String {
        let mut s = format!(
            "-r {} {} -w {}",
            SockFmt(self.addr, self.port),
            self.forward.ipvsadm_flag(),
            self.weight
        );
        if self.upper != 0 {
            s += &format!(" -x {}", self.upper);
        }
        if self.lower != 0 {
            s += &format!(" -y {}", self.lower);
        }
        s + &self.encap.ipvsadm_args()
    }
}

/// Where the VIP address lives on the director.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VipDevice {
    /// `lo` (the classic LVS director setup).
    Loopback,
    /// A dummy device of this name, created if missing.
    Dummy(String),
}

impl VipDevice {
    pub fn name(&self) -> &str {
        match self {
            VipDevice::Loopback => "lo",
            VipDevice::Dummy(n) => n,
        }
    }
}

/// A peer site's director as a tunnel destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The peer director's address: the outer destination, of the VIP's family
    /// (IPIP for an IPv4 VIP, ip6ip6 for an IPv6 one).
    pub addr: IpAddr,
    /// Weight set by the geo-balancer; 0 = no new connections.
    pub weight: u32,
    /// How packets to the peer are wrapped (IPIP unless the peer listens for GUE
    /// or GRE).
    pub encap: Encap,
}

impl Peer {
    /// A peer reached by plain IPIP (ip6ip6 for IPv6).
    pub fn ipip(addr: IpAddr, weight: u32) -> Peer {
        Peer {
            addr,
            weight,
            encap: Encap::Ipip,
        }
    }

    /// The peer as the tunnel destination of a service on `port`.
    pub fn dest(&self, port: u16) -> Dest {
        Dest::new(self.addr, port, Forward::Tunnel, self.weight).with_encap(self.encap)
    }
}

/// One port of a VIP: an IPVS service with local real servers and peer sites.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VipService {
    pub protocol: Protocol,
    pub port: u16,
    pub config: ServiceConfig,
    /// Local real servers (any forwarding method).
    pub local: Vec<Dest>,
    /// Peer sites: TUN destinations on the service's port.
    pub peers: Vec<Peer>,
    /// Loop guard: connections arriving on the tunnel device for this VIP:port get
    /// a firewall mark (tc ingress filter) and are scheduled by a fwmark service
    /// holding local real servers only. `None` turns the guard off (only tests want
    /// that: a tunnelled connection could then be spilled again).
    pub tunnel_in: Option<TunnelIn>,
}

/// The fwmark service for connections spilled here by peers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TunnelIn {
    /// Firewall mark, unique per VIP service (non-zero).
    pub mark: u32,
    /// Local real servers at their configured weights (not the spill-adjusted ones:
    /// a site spilling everything away still serves what peers spill to it).
    pub dests: Vec<Dest>,
}

impl TunnelIn {
    /// The guard with the same destinations and weights as `local`.
    pub fn like(mark: u32, local: &[Dest]) -> TunnelIn {
        TunnelIn {
            mark,
            dests: local.to_vec(),
        }
    }
}

/// A virtual IP with its services.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Vip {
    pub addr: IpAddr,
    pub device: VipDevice,
    pub services: Vec<VipService>,
}

/// The receiving IPIP tunnel device of this director (decapsulates what peers spill
/// here). Created as `ip link add NAME type ipip local LOCAL` (remote any).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TunnelDevice {
    pub name: String,
    pub local: Ipv4Addr,
}

/// Everything tunnel-forwarder puts into the kernel of one director.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DesiredState {
    pub vips: Vec<Vip>,
    /// Needed when any service of an IPv4 VIP has a tunnel mark.
    pub tunnel: Option<TunnelDevice>,
    /// The receiving ip6ip6 device: needed when any service of an IPv6 VIP has a
    /// tunnel mark.
    pub tunnel6: Option<Tunnel6Device>,
    /// tc filter priority that marks our filters on the tunnel's ingress; filters at
    /// other priorities are someone else's and left alone.
    pub filter_prio: u16,
    /// Manage `net.ipv4.ip_forward` (needed for NAT) — on by default.
    pub ip_forward: bool,
    /// The site-wide spill split ([`crate::split`]); `None` leaves spilling to the
    /// services' own peer destinations.
    pub split: Option<Split>,
    /// What IPVS does with a tunnelled packet that no longer fits once the outer
    /// header is added (`net.ipv4.vs.pmtu_disc`), managed while any tunnel
    /// destination exists; `None` leaves the sysctl as it is.
    pub tunnel_pmtu: Option<TunnelPmtu>,
    /// IPVS connection sync with the site's other directors ([`crate::sync`]):
    /// the sync daemons wanted, at most one per role; empty for none.
    pub sync: Vec<crate::sync::SyncDaemon>,
    /// UDP ports of the GUE listeners (fou, type gue) that decapsulate what peers
    /// send here with GUE into the IPIP device [`DesiredState::tunnel`]; created,
    /// never removed (like the tunnel device).
    pub gue_ports: Vec<u16>,
}

/// `net.ipv4.vs.pmtu_disc`: what IPVS does when a packet it sends through a tunnel
/// (a peer site, a TUN real server) exceeds the route's MTU minus the 20-byte outer
/// header. One value per network namespace (decision 0007).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelPmtu {
    /// `pmtu_disc=0`: the outer header goes out without DF and the director
    /// fragments it; the receiving end reassembles before decapsulating. The client
    /// never depends on an ICMP "fragmentation needed" reaching it.
    Fragment,
    /// `pmtu_disc=1` (the kernel's default): a DF packet that does not fit is
    /// dropped and answered with ICMP "fragmentation needed" (source: the VIP).
    Discover,
}

impl TunnelPmtu {
    /// The sysctl's value.
    pub fn sysctl_value(self) -> &'static str {
        match self {
            TunnelPmtu::Fragment => "0",
            TunnelPmtu::Discover => "1",
        }
    }
}

/// The sysctl [`TunnelPmtu`] sets, relative to /proc/sys.
pub const PMTU_DISC_SYSCTL: &str = "net/ipv4/vs/pmtu_disc";

/// Set to 1 while any service exists: connections of a deleted destination expire.
pub const EXPIRE_NODEST_CONN_SYSCTL: &str = "net/ipv4/vs/expire_nodest_conn";

/// Set to 1 while any service exists: persistence templates of a weight-0
/// destination expire.
pub const EXPIRE_QUIESCENT_TEMPLATE_SYSCTL: &str = "net/ipv4/vs/expire_quiescent_template";

/// Default tc priority of our ingress filters.
pub const DEFAULT_FILTER_PRIO: u16 = 0xac01;

impl Default for DesiredState {
    fn default() -> Self {
        DesiredState {
            vips: Vec::new(),
            tunnel: None,
            tunnel6: None,
            filter_prio: DEFAULT_FILTER_PRIO,
            ip_forward: true,
            split: None,
            tunnel_pmtu: None,
            sync: Vec::new(),
            gue_ports: Vec::new(),
        }
    }
}
