//! Desired and observed states shared by the lab-kernel tests and the kernel-free
//! diff tests: one TCP:80 service on the VIP, and the operator's own objects that
//! a reconcile must leave alone.

use std::net::{IpAddr, Ipv4Addr};

use tunnel_forwarder::diff::ObservedAddr;
use tunnel_forwarder::model::ServiceSpec;
use tunnel_forwarder::{
    DesiredState, Dest, Observed, Peer, Protocol, ServiceConfig, ServiceKey, TunnelDevice,
    TunnelIn, Vip, VipDevice, VipService,
};

pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 101, 4, 1);
pub const TUN: &str = "acip0";

/// VIP:80 on lo over the `local` real servers, with the loop guard `tunnel_in`, one
/// peer director `peer` of weight `peer_w`, and the tunnel device from `me`.
pub fn one_service(
    local: Vec<Dest>,
    tunnel_in: Option<TunnelIn>,
    me: Ipv4Addr,
    peer: Ipv4Addr,
    peer_w: u32,
) -> DesiredState {
    DesiredState {
        vips: vec![Vip {
            addr: IpAddr::V4(VIP),
            device: VipDevice::Loopback,
            services: vec![VipService {
                protocol: Protocol::Tcp,
                port: 80,
                config: ServiceConfig::default(),
                local,
                tunnel_in,
                peers: vec![Peer::ipip(IpAddr::V4(peer), peer_w)],
            }],
        }],
        tunnel: Some(TunnelDevice {
            name: TUN.into(),
            local: me,
        }),
        ..DesiredState::default()
    }
}

/// Adds the operator's own objects to `obs`: service `op` without destinations and
/// the address 192.0.2.7/32 on lo (no label).
pub fn add_operator_objects(obs: &mut Observed, op: ServiceKey) {
    obs.services.insert(
        op,
        ServiceSpec {
            key: op,
            config: ServiceConfig::default(),
            dests: Default::default(),
        },
    );
    obs.addrs.push(ObservedAddr {
        device: "lo".into(),
        addr: "192.0.2.7".parse().unwrap(),
        prefix_len: 32,
        label: None,
    });
}

/// A link that is up, at `index`, of no particular kind (an uplink like eth0).
pub fn up_link(index: u32) -> tunnel_forwarder::diff::LinkInfo {
    tunnel_forwarder::diff::LinkInfo {
        index,
        up: true,
        ..Default::default()
    }
}
