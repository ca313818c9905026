//! Targeted updates: the requests that move one service from the weights the kernel
//! holds to new ones, without reading the kernel first. A daemon that knows what it
//! last put into the kernel sends these for a weight change (a spill step, a real
//! server going down) and keeps [`crate::Forwarder::reconcile`], which reads and
//! diffs everything, for its start, its drift checks and after errors.

use std::net::IpAddr;

use crate::model::{Dest, Forward, ServiceKey, VipService};
use crate::request::Request;

impl VipService {
    /// The `SetDest` requests (`ipvsadm -e ...`) that turn this service of VIP `vip`,
    /// as the kernel holds it, into `next`: one per destination whose weight differs,
    /// in the address service and in its loop-guard fwmark service. Empty when nothing
    /// differs. `None` when more than weights differ (a destination added or removed,
    /// another method, scheduler or mark): that is a job for a reconcile.
    pub fn weight_changes(&self, vip: IpAddr, next: &VipService) -> Option<Vec<Request>> {
        if self.protocol != next.protocol || self.port != next.port || self.config != next.config {
            return None;
        }
        let key = ServiceKey::Addr {
            protocol: self.protocol,
            addr: vip,
            port: self.port,
        };
        let mut out = Vec::new();
        dest_changes(key, &self.local, &next.local, &mut out)?;
        if self.peers.len() != next.peers.len() {
            return None;
        }
        for (a, b) in self.peers.iter().zip(&next.peers) {
            if a.addr != b.addr {
                return None;
            }
            if a.weight != b.weight {
                let d = Dest::new(IpAddr::V4(b.addr), self.port, Forward::Tunnel, b.weight);
                out.push(Request::SetDest(key, d));
            }
        }
        match (&self.tunnel_in, &next.tunnel_in) {
            (None, None) => {}
            (Some(a), Some(b)) if a.mark == b.mark => {
                let fkey = ServiceKey::Fwmark {
                    mark: a.mark,
                    ipv6: false,
                };
                dest_changes(fkey, &a.dests, &b.dests, &mut out)?;
            }
            _ => return None,
        }
        Some(out)
    }
}

fn dest_changes(key: ServiceKey, old: &[Dest], new: &[Dest], out: &mut Vec<Request>) -> Option<()> {
    if old.len() != new.len() {
        return None;
    }
    for (a, b) in old.iter().zip(new) {
        if a.key() != b.key() || a.forward != b.forward {
            return None;
        }
        if a != b {
            out.push(Request::SetDest(key, *b));
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Peer, Protocol, ServiceConfig, TunnelIn};

    fn svc(local: [u32; 2], peer: u32, guard: [u32; 2]) -> VipService {
        let d = |a: &str, w| Dest::new(a.parse().unwrap(), 80, Forward::Nat, w);
        VipService {
            protocol: Protocol::Tcp,
            port: 80,
            config: ServiceConfig::default(),
            local: vec![d("10.0.5.11", local[0]), d("10.0.5.12", local[1])],
            peers: vec![Peer {
                addr: "10.0.2.2".parse().unwrap(),
                weight: peer,
            }],
            tunnel_in: Some(TunnelIn {
                mark: 7,
                dests: vec![d("10.0.5.11", guard[0]), d("10.0.5.12", guard[1])],
            }),
        }
    }

    const VIP: &str = "10.0.4.1";

    #[test]
    fn same_weights_need_nothing() {
        let a = svc([5000, 5000], 0, [1, 1]);
        assert_eq!(a.weight_changes(VIP.parse().unwrap(), &a), Some(vec![]));
    }

    #[test]
    fn a_spill_step_sets_only_the_weights_that_moved() {
        let a = svc([5000, 5000], 0, [1, 1]);
        let b = svc([4000, 4000], 2000, [1, 1]);
        let r = a.weight_changes(VIP.parse().unwrap(), &b).unwrap();
        let cmds: Vec<String> = r.iter().map(Request::command).collect();
        assert_eq!(
            cmds,
            [
                "ipvsadm -e -t 10.0.4.1:80 -r 10.0.5.11:80 -m -w 4000",
                "ipvsadm -e -t 10.0.4.1:80 -r 10.0.5.12:80 -m -w 4000",
                "ipvsadm -e -t 10.0.4.1:80 -r 10.0.2.2:80 -i -w 2000",
            ]
        );
    }

    #[test]
    fn a_server_down_changes_both_services() {
        let a = svc([5000, 5000], 0, [1, 1]);
        let b = svc([10000, 0], 0, [1, 0]);
        let r = a.weight_changes(VIP.parse().unwrap(), &b).unwrap();
        assert_eq!(r.len(), 3);
        assert!(matches!(
            r[2],
            Request::SetDest(ServiceKey::Fwmark { mark: 7, .. }, _)
        ));
    }

    #[test]
    fn anything_but_weights_needs_a_reconcile() {
        let a = svc([5000, 5000], 0, [1, 1]);
        let mut b = a.clone();
        b.config.scheduler = "mh".into();
        assert_eq!(a.weight_changes(VIP.parse().unwrap(), &b), None);
        let mut c = a.clone();
        c.local.pop();
        assert_eq!(a.weight_changes(VIP.parse().unwrap(), &c), None);
        let mut d = a.clone();
        d.local[0].forward = Forward::DirectRoute;
        assert_eq!(a.weight_changes(VIP.parse().unwrap(), &d), None);
        let mut e = a.clone();
        e.tunnel_in = None;
        assert_eq!(a.weight_changes(VIP.parse().unwrap(), &e), None);
    }
}
