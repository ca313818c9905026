//! Targeted updates: the requests that move one service from the weights the kernel
//! holds to new ones, without reading the kernel first. A daemon that knows what it
//! last put into the kernel sends these for a weight change (a spill step, a real
//! server disabled) or a real server leaving and coming back (failed, then up
//! again) and keeps [`crate::Forwarder::reconcile`], which reads and
//! diffs everything, for its start, its drift checks and after errors.

use std::net::IpAddr;

use crate::model::{Dest, ServiceKey, VipService};
use crate::request::Request;

impl VipService {
    /// The requests that turn this service of VIP `vip`, as the kernel holds it, into
    /// `next`, in the address service and in its loop-guard fwmark service: `SetDest`
    /// (`ipvsadm -e ...`) per destination whose weight differs, `DelDest` per local
    /// destination that left, `NewDest` per one that (re)appeared. Empty when nothing
    /// differs. `None` when more differs (another method, scheduler, mark, or the
    /// peers): that is a job for a reconcile.
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
            if a.weight != b.weight || a.encap != b.encap {
                let d = b.dest(self.port);
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

/// Weight changes in place (`ipvsadm -e`), destinations that left (`-d`: a real
/// server that failed; the kernel expires its connections) and came back (`-a`).
/// `None` when a destination changed its forwarding method (delete and add: the
/// full reconcile says it).
fn dest_changes(key: ServiceKey, old: &[Dest], new: &[Dest], out: &mut Vec<Request>) -> Option<()> {
    for a in old {
        if !new.iter().any(|b| b.key() == a.key()) {
            out.push(Request::DelDest(key, a.addr, a.port));
        }
    }
    for b in new {
        match old.iter().find(|a| a.key() == b.key()) {
            Some(a) if a.forward != b.forward => return None,
            Some(a) if a != b => out.push(Request::SetDest(key, *b)),
            Some(_) => {}
            None => out.push(Request::NewDest(key, *b)),
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Forward, Peer, Protocol, ServiceConfig, TunnelIn};

    fn svc(local: [u32; 2], peer: u32, guard: [u32; 2]) -> VipService {
        let d = |a: &str, w| Dest::new(a.parse().unwrap(), 80, Forward::Nat, w);
        VipService {
            protocol: Protocol::Tcp,
            port: 80,
            config: ServiceConfig::default(),
            local: vec![d("10.0.5.11", local[0]), d("10.0.5.12", local[1])],
            peers: vec![Peer::ipip("10.0.2.2".parse().unwrap(), peer)],
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
    fn a_failed_server_leaves_both_services_and_comes_back() {
        let a = svc([5000, 5000], 0, [1, 1]);
        let mut b = svc([10000, 0], 0, [1, 0]);
        b.local.pop();
        b.tunnel_in.as_mut().unwrap().dests.pop();
        let cmds = |r: Vec<Request>| r.iter().map(Request::command).collect::<Vec<_>>();
        let out = a.weight_changes(VIP.parse().unwrap(), &b).unwrap();
        assert_eq!(
            cmds(out),
            [
                "ipvsadm -d -t 10.0.4.1:80 -r 10.0.5.12:80",
                "ipvsadm -e -t 10.0.4.1:80 -r 10.0.5.11:80 -m -w 10000",
                "ipvsadm -d -f 7 -r 10.0.5.12:80",
            ]
        );
        let back = b.weight_changes(VIP.parse().unwrap(), &a).unwrap();
        assert_eq!(
            cmds(back),
            [
                "ipvsadm -e -t 10.0.4.1:80 -r 10.0.5.11:80 -m -w 5000",
                "ipvsadm -a -t 10.0.4.1:80 -r 10.0.5.12:80 -m -w 5000",
                "ipvsadm -a -f 7 -r 10.0.5.12:80 -m -w 1",
            ]
        );
    }

    #[test]
    fn anything_but_weights_needs_a_reconcile() {
        let a = svc([5000, 5000], 0, [1, 1]);
        let mut b = a.clone();
        b.config.scheduler = "mh".into();
        assert_eq!(a.weight_changes(VIP.parse().unwrap(), &b), None);
        let mut d = a.clone();
        d.local[0].forward = Forward::DirectRoute;
        assert_eq!(a.weight_changes(VIP.parse().unwrap(), &d), None);
        let mut e = a.clone();
        e.tunnel_in = None;
        assert_eq!(a.weight_changes(VIP.parse().unwrap(), &e), None);
    }
}
