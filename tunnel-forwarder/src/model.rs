//! What the kernel should hold: the desired state (per VIP, as the daemon thinks of
//! it) and the flat kernel objects it compiles to (what the diff compares).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

pub use crate::tunnel6::Tunnel6Device;

use crate::error::ConfigError;
use crate::split::{self, Split, SplitClass, SplitTarget};

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
        }
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
        s
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
        }
    }
}

/// A desired IPVS service with its destinations, keyed by (addr, port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub key: ServiceKey,
    pub config: ServiceConfig,
    pub dests: BTreeMap<(IpAddr, u16), Dest>,
}

impl ServiceSpec {
    /// `-A -t VIP:PORT -s wrr ...` arguments.
    pub fn ipvsadm_args(&self) -> String {
        format!(
            "{} {}",
            self.key.ipvsadm(),
            self.config.ipvsadm_args(self.key.is_ipv6())
        )
    }
}

/// A tc match: packets to `dst`/`protocol`/`port` get `mark`. An IPv4 rule sits on
/// the IPIP device, an IPv6 one on the ip6ip6 device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MarkRule {
    pub dst: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
    pub mark: u32,
}

/// An address we own on a device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddrSpec {
    pub device: String,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// The flat kernel objects a [`DesiredState`] compiles to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    pub services: BTreeMap<ServiceKey, ServiceSpec>,
    pub dummies: Vec<String>,
    pub tunnel: Option<TunnelDevice>,
    pub tunnel6: Option<Tunnel6Device>,
    pub addrs: Vec<AddrSpec>,
    pub filter_prio: u16,
    pub marks: Vec<MarkRule>,
    /// `/proc/sys/...` path relative to /proc/sys, and value.
    pub sysctls: BTreeMap<String, String>,
    /// The split's filters on the client devices.
    pub split: Option<SplitTarget>,
    /// The sync daemons wanted.
    pub sync: Vec<crate::sync::SyncDaemon>,
}

impl DesiredState {
    /// Checks the state and flattens it into kernel objects.
    pub fn compile(&self) -> Result<Target, ConfigError> {
        let mut t = Target {
            filter_prio: self.filter_prio,
            tunnel: self.tunnel.clone(),
            tunnel6: self.tunnel6.clone(),
            sync: self.sync.clone(),
            ..Target::default()
        };
        crate::sync::check(&self.sync)?;
        crate::tunnel6::check_names(self)?;
        if let Some(tun) = &self.tunnel {
            check_ifname(&tun.name)?;
            if tun.name.len() > 12 {
                return Err(ConfigError::new(format!(
                    "tunnel device name {:?} too long (max 12, the address label needs 3 more)",
                    tun.name
                )));
            }
            // The tunnel carries its local address: reverse-path filtering in loose
            // mode drops everything arriving on a device without any IPv4 address.
            t.addrs.push(AddrSpec {
                device: tun.name.clone(),
                addr: IpAddr::V4(tun.local),
                prefix_len: 32,
            });
        }
        let mut marks_seen = BTreeMap::new();
        let mut any_nat = false;
        let mut any_nat6 = false;
        for vip in &self.vips {
            let dev = vip.device.name().to_string();
            check_ifname(&dev)?;
            if dev.len() > 12 {
                return Err(ConfigError::new(format!(
                    "VIP device name {dev:?} too long (max 12, the address label needs 3 more)"
                )));
            }
            if let VipDevice::Dummy(n) = &vip.device
                && !t.dummies.contains(n)
            {
                t.dummies.push(n.clone());
            }
            let prefix_len = if vip.addr.is_ipv4() { 32 } else { 128 };
            let a = AddrSpec {
                device: dev,
                addr: vip.addr,
                prefix_len,
            };
            if !t.addrs.contains(&a) {
                t.addrs.push(a);
            }
            for s in &vip.services {
                if s.config.scheduler.is_empty() || s.config.scheduler.len() > 15 {
                    return Err(ConfigError::new(format!(
                        "{} port {}: scheduler name must be 1..15 characters",
                        vip.addr, s.port
                    )));
                }
                let key = ServiceKey::Addr {
                    protocol: s.protocol,
                    addr: vip.addr,
                    port: s.port,
                };
                let mut dests = BTreeMap::new();
                for d in &s.local {
                    any_nat |= d.forward == Forward::Nat;
                    any_nat6 |= d.forward == Forward::Nat && d.addr.is_ipv6();
                    if dests.insert(d.key(), *d).is_some() {
                        return Err(ConfigError::new(format!(
                            "{key}: destination {} listed twice",
                            SockFmt(d.addr, d.port)
                        )));
                    }
                }
                for p in &s.peers {
                    crate::tunnel6::check_peer_family(&key, vip.addr, p.addr)?;
                    let d = Dest::new(p.addr, s.port, Forward::Tunnel, p.weight);
                    if dests.insert(d.key(), d).is_some() {
                        return Err(ConfigError::new(format!(
                            "{key}: peer {} is also a local destination",
                            p.addr
                        )));
                    }
                }
                if t.services.contains_key(&key) {
                    return Err(ConfigError::new(format!("{key} defined twice")));
                }
                t.services.insert(
                    key,
                    ServiceSpec {
                        key,
                        config: s.config.clone(),
                        dests,
                    },
                );
                if let Some(tin) = &s.tunnel_in {
                    let mark = tin.mark;
                    let dst = vip.addr;
                    if mark == 0 {
                        return Err(ConfigError::new(format!("{key}: tunnel mark 0 is no mark")));
                    }
                    if dst.is_ipv4() && self.tunnel.is_none() {
                        return Err(ConfigError::new(format!(
                            "{key}: a tunnel mark needs a tunnel device in the desired state"
                        )));
                    }
                    if dst.is_ipv6() && self.tunnel6.is_none() {
                        return Err(ConfigError::new(format!(
                            "{key}: a tunnel mark on an IPv6 VIP needs the ip6ip6 tunnel device (tunnel6) in the desired state"
                        )));
                    }
                    if let Some(other) = marks_seen.insert(mark, key) {
                        return Err(ConfigError::new(format!(
                            "tunnel mark {mark} used by both {other} and {key}"
                        )));
                    }
                    let fkey = ServiceKey::Fwmark {
                        mark,
                        ipv6: dst.is_ipv6(),
                    };
                    let mut local = BTreeMap::new();
                    for d in &tin.dests {
                        any_nat |= d.forward == Forward::Nat;
                        any_nat6 |= d.forward == Forward::Nat && d.addr.is_ipv6();
                        let is_peer = s.peers.iter().any(|p| p.addr == d.addr);
                        if is_peer || local.insert(d.key(), *d).is_some() {
                            return Err(ConfigError::new(format!(
                                "{key}: tunnel-in destination {} is a peer or listed twice",
                                SockFmt(d.addr, d.port)
                            )));
                        }
                    }
                    t.services.insert(
                        fkey,
                        ServiceSpec {
                            key: fkey,
                            config: s.config.clone(),
                            dests: local,
                        },
                    );
                    t.marks.push(MarkRule {
                        dst,
                        protocol: s.protocol,
                        port: s.port,
                        mark,
                    });
                }
            }
        }
        t.marks.sort();
        if let Some(split) = &self.split {
            let classes = self
                .vips
                .iter()
                .filter_map(|v| match v.addr {
                    IpAddr::V4(dst) => Some((dst, &v.services)),
                    IpAddr::V6(_) => None,
                })
                .flat_map(|(dst, services)| {
                    services
                        .iter()
                        .filter(|s| s.protocol == Protocol::Tcp)
                        .map(move |s| SplitClass { dst, port: s.port })
                })
                .collect();
            let tunnel = self.tunnel.as_ref().map(|t| t.name.as_str());
            t.split = Some(split::compile(split, classes, tunnel, &mut t.services)?);
        }
        if self.ip_forward && !t.services.is_empty() {
            t.sysctls.insert("net/ipv4/ip_forward".into(), "1".into());
        }
        if let Some(tun) = &self.tunnel {
            // Loose mode: tunnelled packets carry the client's source address, which
            // is not routed via the tunnel. Effective rp_filter is max(all, dev), so 2
            // on the device is loose whatever `all` says.
            t.sysctls
                .insert(format!("net/ipv4/conf/{}/rp_filter", tun.name), "2".into());
        }
        if any_nat {
            t.sysctls.insert("net/ipv4/vs/conntrack".into(), "1".into());
        }
        if any_nat6 {
            // A NAT real server's replies pass the director on their way back.
            t.sysctls
                .insert(crate::tunnel6::IPV6_FORWARDING_SYSCTL.into(), "1".into());
        }
        if !t.services.is_empty() {
            // A destination deleted (a real server that failed) takes its connections
            // with it: the next packet of each is dropped and the entry expired, so
            // the client is answered by a reset instead of retransmitting into a
            // dead server for minutes. Weight 0 (disabled, draining) is not deleted:
            // its connections finish. Persistence templates pointing at a weight-0
            // destination expire too, so a persistent client of a drained server
            // moves at its next connection.
            t.sysctls
                .insert(EXPIRE_NODEST_CONN_SYSCTL.into(), "1".into());
            t.sysctls
                .insert(EXPIRE_QUIESCENT_TEMPLATE_SYSCTL.into(), "1".into());
        }
        let any_tunnel = t
            .services
            .values()
            .any(|s| s.dests.values().any(|d| d.forward == Forward::Tunnel));
        if let Some(pmtu) = self.tunnel_pmtu
            && any_tunnel
        {
            t.sysctls
                .insert(PMTU_DISC_SYSCTL.into(), pmtu.sysctl_value().into());
        }
        Ok(t)
    }
}

pub(crate) fn check_ifname(n: &str) -> Result<(), ConfigError> {
    let ok = !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(format!("bad interface name {n:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(peers: Vec<Peer>, local: Forward, pmtu: Option<TunnelPmtu>) -> DesiredState {
        DesiredState {
            vips: vec![Vip {
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                device: VipDevice::Loopback,
                services: vec![VipService {
                    protocol: Protocol::Tcp,
                    port: 80,
                    config: ServiceConfig::default(),
                    local: vec![Dest::new(
                        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11)),
                        80,
                        local,
                        1,
                    )],
                    peers,
                    tunnel_in: None,
                }],
            }],
            tunnel_pmtu: pmtu,
            ..DesiredState::default()
        }
    }

    fn pmtu_disc(d: &DesiredState) -> Option<String> {
        d.compile().unwrap().sysctls.get(PMTU_DISC_SYSCTL).cloned()
    }

    #[test]
    fn pmtu_disc_is_managed_only_with_a_tunnel_destination_and_a_choice() {
        let peer = vec![Peer {
            addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
            weight: 0,
        }];
        let frag = Some(TunnelPmtu::Fragment);
        assert_eq!(
            pmtu_disc(&state(peer.clone(), Forward::Nat, frag)).as_deref(),
            Some("0")
        );
        assert_eq!(
            pmtu_disc(&state(
                peer.clone(),
                Forward::Nat,
                Some(TunnelPmtu::Discover)
            ))
            .as_deref(),
            Some("1")
        );
        // A TUN real server is a tunnel destination too.
        assert_eq!(
            pmtu_disc(&state(vec![], Forward::Tunnel, frag)).as_deref(),
            Some("0")
        );
        // Nothing tunnelled: the sysctl is not ours to set.
        assert_eq!(pmtu_disc(&state(vec![], Forward::Nat, frag)), None);
        // No choice made: left as it is.
        assert_eq!(pmtu_disc(&state(peer, Forward::Nat, None)), None);
    }
}
