//! The only code that talks to the kernel: reads the state the diff needs and
//! executes [`Request`]s. IPVS over generic netlink, the rest over rtnetlink,
//! sysctls as /proc/sys files.

pub mod fou;
pub mod ipvs;
pub mod ipvs_daemon;
pub mod rtnl;

use std::collections::{BTreeMap, BTreeSet};

use crate::diff::{Observed, ObservedAddr, ObservedFilter};
use crate::error::Error;
use crate::model::{ServiceSpec, Target};
use crate::netlink::socket::{NlError, SockError, Socket};
use crate::netlink::wire::{self, Attrs, MsgBuf};
use crate::request::Request;
use crate::split::DeviceTc;
use crate::stats::{DestStats, ServiceStats};

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// Open netlink sockets and the IPVS family id.
#[derive(Debug)]
pub struct Kernel {
    genl: Socket,
    rtnl: Socket,
    ipvs: u16,
    /// The fou family id, looked up when first needed (module `fou`).
    fou: Option<u16>,
}

/// The id of generic netlink family `name` ([`Error::ModuleMissing`] naming
/// `module` when the kernel does not know it).
fn genl_family(genl: &mut Socket, name: &str, module: &str) -> Result<u16, Error> {
    let mut id = None;
    let during = format!("looking up the {name} generic netlink family");
    let r = genl.dump(
        |seq, b| {
            b.begin(GENL_ID_CTRL, wire::NLM_F_REQUEST, seq);
            b.raw(&[CTRL_CMD_GETFAMILY, 1, 0, 0]);
            b.str(CTRL_ATTR_FAMILY_NAME, name);
            b.end();
        },
        |m| {
            id = m
                .payload
                .get(4..)
                .and_then(|p| Attrs::new(p).find(CTRL_ATTR_FAMILY_ID))
                .and_then(wire::get_u16);
            Ok(())
        },
    );
    let missing = || Error::ModuleMissing {
        module: module.into(),
        during: during.clone(),
    };
    match r {
        Err(SockError::Kernel(NlError { errno, .. })) if errno == libc::ENOENT => {
            return Err(missing());
        }
        Err(e) => return Err(Error::from_sock(&during, e)),
        Ok(()) => {}
    }
    id.ok_or_else(missing)
}

/// A service with its destinations as read from IPVS.
pub type IpvsTable = Vec<(ipvs::KService, Vec<ipvs::KDest>)>;

impl Kernel {
    /// Opens the sockets and resolves the IPVS family (fails with
    /// [`Error::ModuleMissing`] when ip_vs is not loaded).
    pub fn open() -> Result<Kernel, Error> {
        let sock = |proto, what: &str| {
            Socket::open(proto).map_err(|e| Error::from_sock(what, SockError::Io(e)))
        };
        let mut genl = sock(libc::NETLINK_GENERIC, "opening generic netlink socket")?;
        let rtnl = sock(libc::NETLINK_ROUTE, "opening rtnetlink socket")?;
        let ipvs = genl_family(&mut genl, ipvs::FAMILY_NAME, "ip_vs")?;
        Ok(Kernel {
            genl,
            rtnl,
            ipvs,
            fou: None,
        })
    }

    /// Every IPVS service with its destinations (one service dump, then one
    /// destination dump per service).
    pub fn read_ipvs(&mut self) -> Result<IpvsTable, Error> {
        let fam = self.ipvs;
        let mut services = Vec::new();
        self.genl
            .dump(
                |seq, b| {
                    ipvs::begin(
                        b,
                        fam,
                        ipvs::CMD_GET_SERVICE,
                        wire::NLM_F_REQUEST | wire::NLM_F_DUMP,
                        seq,
                    );
                    b.end();
                },
                |m| {
                    services.push(ipvs::decode_service(m.payload)?);
                    Ok(())
                },
            )
            .map_err(|e| Error::from_sock("reading IPVS services (ipvsadm -Ln)", e))?;
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            let mut dests = Vec::new();
            let af = ipvs::key_af(&s.key);
            let key = s.key;
            self.genl
                .dump(
                    |seq, b| {
                        ipvs::begin(
                            b,
                            fam,
                            ipvs::CMD_GET_DEST,
                            wire::NLM_F_REQUEST | wire::NLM_F_DUMP,
                            seq,
                        );
                        ipvs::service_key(b, &key);
                        b.end();
                    },
                    |m| {
                        dests.push(ipvs::decode_dest(m.payload, af)?);
                        Ok(())
                    },
                )
                .map_err(|e| Error::from_sock("reading IPVS destinations", e))?;
            out.push((s, dests));
        }
        Ok(out)
    }

    /// The running IPVS sync daemons (`ipvsadm -L --daemon`).
    pub fn sync_daemons(&mut self) -> Result<Vec<crate::sync::SyncDaemon>, Error> {
        let fam = self.ipvs;
        let mut out = Vec::new();
        self.genl
            .dump(
                |seq, b| {
                    ipvs::begin(
                        b,
                        fam,
                        ipvs_daemon::CMD_GET_DAEMON,
                        wire::NLM_F_REQUEST | wire::NLM_F_DUMP,
                        seq,
                    );
                    b.end();
                },
                |m| {
                    out.extend(ipvs_daemon::decode(m.payload)?);
                    Ok(())
                },
            )
            .map_err(|e| Error::from_sock("reading IPVS sync daemons (ipvsadm -L --daemon)", e))?;
        Ok(out)
    }

    /// Per-service and per-destination counters of every IPVS service.
    pub fn stats(&mut self) -> Result<Vec<ServiceStats>, Error> {
        Ok(self
            .read_ipvs()?
            .into_iter()
            .map(|(s, ds)| ServiceStats {
                key: s.key,
                counters: s.stats,
                dests: ds
                    .into_iter()
                    .map(|d| DestStats {
                        addr: d.dest.addr,
                        port: d.dest.port,
                        forward: crate::model::Forward::from_kernel(d.raw_forward),
                        weight: d.dest.weight,
                        active: d.active,
                        inactive: d.inactive,
                        persistent: d.persistent,
                        counters: d.stats,
                    })
                    .collect(),
            })
            .collect())
    }

    fn links(&mut self) -> Result<BTreeMap<String, (crate::diff::LinkInfo, [u64; 2])>, Error> {
        let mut links = BTreeMap::new();
        self.rtnl
            .dump(
                |seq, b| rtnl::get_links(b, seq),
                |m| {
                    let (name, info, c) = rtnl::decode_link(m)?;
                    links.insert(name, (info, c));
                    Ok(())
                },
            )
            .map_err(|e| Error::from_sock("reading links", e))?;
        Ok(links)
    }

    /// rx/tx packet counters of a link (tests use it to see tunnel traffic).
    pub fn link_packets(&mut self, name: &str) -> Result<Option<[u64; 2]>, Error> {
        Ok(self.links()?.get(name).map(|(_, c)| *c))
    }

    fn ifindex(&mut self, name: &str) -> Result<u32, Error> {
        self.links()?
            .get(name)
            .map(|(l, _)| l.index)
            .ok_or_else(|| Error::Kernel {
                request: format!("ip link show {name}"),
                error: NlError {
                    errno: libc::ENODEV,
                    msg: None,
                },
            })
    }

    /// Everything the diff compares against `target`.
    pub fn observe(&mut self, target: &Target) -> Result<Observed, Error> {
        let mut obs = Observed::default();
        for (s, dests) in self.read_ipvs()? {
            obs.services.insert(
                s.key,
                ServiceSpec {
                    key: s.key,
                    config: s.config,
                    dests: dests
                        .into_iter()
                        .map(|d| {
                            let mut dest = d.dest;
                            if crate::model::Forward::from_kernel(d.raw_forward).is_none() {
                                // Unknown method: make it differ from anything desired.
                                dest.weight = u32::MAX;
                            }
                            (dest.key(), dest)
                        })
                        .collect(),
                },
            );
        }
        let links = self.links()?;
        let by_index: BTreeMap<u32, String> = links
            .iter()
            .map(|(n, (l, _))| (l.index, n.clone()))
            .collect();
        obs.links = links.into_iter().map(|(n, (l, _))| (n, l)).collect();
        let mut addrs = Vec::new();
        self.rtnl
            .dump(
                |seq, b| rtnl::get_addrs(b, seq),
                |m| {
                    if let Some((idx, addr, prefix_len, label)) = rtnl::decode_addr(m)?
                        && let Some(device) = by_index.get(&idx)
                    {
                        addrs.push(ObservedAddr {
                            device: device.clone(),
                            addr,
                            prefix_len,
                            label,
                        });
                    }
                    Ok(())
                },
            )
            .map_err(|e| Error::from_sock("reading addresses", e))?;
        obs.addrs = addrs;
        let split_devices: Vec<&String> = target.split.iter().flat_map(|t| &t.devices).collect();
        if target.tunnel.is_some() || target.tunnel6.is_some() || !split_devices.is_empty() {
            let mut ingress = BTreeSet::new();
            self.rtnl
                .dump(
                    |seq, b| rtnl::get_qdiscs(b, seq),
                    |m| {
                        if let Some(idx) = rtnl::ingress_of(m) {
                            ingress.insert(idx);
                        }
                        Ok(())
                    },
                )
                .map_err(|e| Error::from_sock("reading qdiscs", e))?;
            if let Some(tun) = &target.tunnel
                && let Some(link) = obs.links.get(&tun.name)
            {
                obs.ingress = ingress.contains(&link.index);
                if obs.ingress {
                    obs.filters = self.filters(link.index)?;
                }
            }
            if let Some(tun) = &target.tunnel6
                && let Some(link) = obs.links.get(&tun.name)
            {
                obs.ingress6 = ingress.contains(&link.index);
                if obs.ingress6 {
                    obs.filters6 = self.filters(link.index)?;
                }
            }
            for dev in split_devices {
                let Some(link) = obs.links.get(dev) else {
                    continue;
                };
                let mut tc = DeviceTc {
                    ingress: ingress.contains(&link.index),
                    filters: Vec::new(),
                };
                if tc.ingress {
                    tc.filters = self.filters(link.index)?;
                }
                obs.split_devices.insert(dev.clone(), tc);
            }
        }
        obs.sync = self.sync_daemons()?;
        if !target.gue_ports.is_empty() {
            obs.fou = self.fou_listeners()?;
        }
        for key in target.sysctls.keys() {
            let v = std::fs::read_to_string(format!("/proc/sys/{key}")).ok();
            obs.sysctls
                .insert(key.clone(), v.map(|s| s.trim().to_string()));
        }
        Ok(obs)
    }

    /// The filters (all chains) on the ingress of device `idx`.
    fn filters(&mut self, idx: u32) -> Result<Vec<ObservedFilter>, Error> {
        let mut filters = Vec::new();
        self.rtnl
            .dump(
                |seq, b| rtnl::get_filters(b, seq, idx),
                |m| {
                    if let Some(f) = rtnl::decode_filter(m)? {
                        filters.push(f);
                    }
                    Ok(())
                },
            )
            .map_err(|e| Error::from_sock("reading tc filters", e))?;
        Ok(filters)
    }

    /// Executes requests in order; consecutive IPVS requests go in batches. Stops at
    /// the first refused request (after its batch) and returns how many succeeded.
    pub fn apply(&mut self, reqs: &[Request]) -> Result<usize, (usize, Error)> {
        let mut done = 0;
        let mut i = 0;
        while i < reqs.len() {
            if reqs[i].is_ipvs() {
                let mut j = i;
                while j < reqs.len() && reqs[j].is_ipvs() {
                    j += 1;
                }
                let fam = self.ipvs;
                let results = self
                    .genl
                    .batch(&reqs[i..j], |r, seq, b| encode_ipvs(b, fam, seq, r))
                    .map_err(|e| (done, Error::from_sock("programming IPVS", e)))?;
                for (r, res) in reqs[i..j].iter().zip(results) {
                    match res {
                        Ok(()) => done += 1,
                        Err(e) => return Err((done, refused(r, e))),
                    }
                }
                i = j;
            } else {
                self.apply_one(&reqs[i]).map_err(|e| (done, e))?;
                done += 1;
                i += 1;
            }
        }
        Ok(done)
    }

    fn apply_one(&mut self, r: &Request) -> Result<(), Error> {
        let res = match r {
            Request::NewGueListener(port) => {
                let fam = self.fou_family()?;
                self.genl.request(|seq, b| fou::add_gue(b, fam, seq, *port))
            }
            Request::Sysctl { key, value } => {
                return std::fs::write(format!("/proc/sys/{key}"), value).map_err(|e| {
                    if e.raw_os_error() == Some(libc::EACCES)
                        || e.raw_os_error() == Some(libc::EPERM)
                    {
                        Error::Permission {
                            during: r.command(),
                        }
                    } else {
                        Error::Sysctl {
                            key: key.replace('/', "."),
                            source: e,
                        }
                    }
                });
            }
            Request::NewDummy(name) => self
                .rtnl
                .request(|seq, b| rtnl::new_link(b, seq, name, "dummy", None)),
            Request::NewIpip { name, local } => self
                .rtnl
                .request(|seq, b| rtnl::new_link(b, seq, name, "ipip", Some(*local))),
            Request::NewIp6tnl { name, local } => self
                .rtnl
                .request(|seq, b| rtnl::new_ip6tnl(b, seq, name, *local)),
            Request::LinkUp(name) => {
                let idx = self.ifindex(name)?;
                self.rtnl.request(|seq, b| rtnl::link_up(b, seq, idx))
            }
            Request::NewAddr(a) | Request::DelAddr(a) => {
                let idx = self.ifindex(&a.device)?;
                let add = matches!(r, Request::NewAddr(_));
                let label = rtnl::our_label(&a.device);
                self.rtnl.request(|seq, b| {
                    rtnl::addr(
                        b,
                        seq,
                        add,
                        idx,
                        &a.addr,
                        a.prefix_len,
                        add.then_some(label.as_str()),
                    )
                })
            }
            Request::NewIngress(dev) => {
                let idx = self.ifindex(dev)?;
                self.rtnl.request(|seq, b| rtnl::new_ingress(b, seq, idx))
            }
            Request::NewMarkFilter { device, prio, rule } => {
                let idx = self.ifindex(device)?;
                self.rtnl
                    .request(|seq, b| rtnl::new_mark_filter(b, seq, idx, *prio, rule))
            }
            Request::DelFilter {
                device,
                prio,
                handle,
            } => {
                let idx = self.ifindex(device)?;
                self.rtnl
                    .request(|seq, b| rtnl::del_filter(b, seq, idx, *prio, *handle))
            }
            Request::NewClassFilter {
                device,
                prio,
                class,
            } => {
                let idx = self.ifindex(device)?;
                self.rtnl
                    .request(|seq, b| rtnl::new_class_filter(b, seq, idx, *prio, class))
            }
            Request::NewShareFilter {
                device,
                draw,
                block,
                mark,
            } => {
                let idx = self.ifindex(device)?;
                self.rtnl
                    .request(|seq, b| rtnl::new_share_filter(b, seq, idx, (*draw, block), *mark))
            }
            Request::FlushChain { device, chain } => {
                let idx = self.ifindex(device)?;
                self.rtnl
                    .request(|seq, b| rtnl::flush_chain(b, seq, idx, *chain))
            }
            _ => unreachable!("IPVS requests are batched"),
        };
        res.map_err(|e| match e {
            SockError::Kernel(k) => refused(r, k),
            other => Error::from_sock(&r.command(), other),
        })
    }
}

fn encode_ipvs(b: &mut MsgBuf, fam: u16, seq: u32, r: &Request) {
    let flags = wire::NLM_F_REQUEST | wire::NLM_F_ACK;
    match r {
        Request::NewService(k, c) | Request::SetService(k, c) => {
            let cmd = if matches!(r, Request::NewService(..)) {
                ipvs::CMD_NEW_SERVICE
            } else {
                ipvs::CMD_SET_SERVICE
            };
            ipvs::begin(b, fam, cmd, flags, seq);
            ipvs::service_full(b, k, c);
        }
        Request::DelService(k) => {
            ipvs::begin(b, fam, ipvs::CMD_DEL_SERVICE, flags, seq);
            ipvs::service_key(b, k);
        }
        Request::NewDest(k, d) | Request::SetDest(k, d) => {
            let cmd = if matches!(r, Request::NewDest(..)) {
                ipvs::CMD_NEW_DEST
            } else {
                ipvs::CMD_SET_DEST
            };
            ipvs::begin(b, fam, cmd, flags, seq);
            ipvs::service_key(b, k);
            ipvs::dest(b, &d.addr, d.port, Some(d));
        }
        Request::DelDest(k, a, p) => {
            ipvs::begin(b, fam, ipvs::CMD_DEL_DEST, flags, seq);
            ipvs::service_key(b, k);
            ipvs::dest(b, a, *p, None);
        }
        Request::NewSyncDaemon(d) => {
            ipvs::begin(b, fam, ipvs_daemon::CMD_NEW_DAEMON, flags, seq);
            ipvs_daemon::daemon(b, d);
        }
        Request::DelSyncDaemon(role) => {
            ipvs::begin(b, fam, ipvs_daemon::CMD_DEL_DAEMON, flags, seq);
            ipvs_daemon::role_only(b, *role);
        }
        _ => unreachable!("only IPVS requests are encoded here"),
    }
    b.end();
}

/// A refused request, recognising missing modules and privilege.
fn refused(r: &Request, e: NlError) -> Error {
    let during = r.command();
    if e.errno == libc::EPERM {
        return Error::Permission { during };
    }
    let missing = matches!(e.errno, libc::ENOENT | libc::EOPNOTSUPP);
    let module = match r {
        Request::NewService(_, c) | Request::SetService(_, c) if e.errno == libc::ENOENT => {
            Some(format!("ip_vs_{}", c.scheduler))
        }
        Request::NewIpip { .. } if missing => Some("ipip".into()),
        Request::NewIp6tnl { .. } if missing => Some("ip6_tunnel".into()),
        Request::NewDummy(_) if missing => Some("dummy".into()),
        Request::NewGueListener(_) if missing => Some("fou".into()),
        Request::NewIngress(_) if missing => Some("sch_ingress".into()),
        Request::NewMarkFilter { .. } | Request::NewShareFilter { .. } if missing => {
            Some("cls_u32 act_skbedit".into())
        }
        Request::NewClassFilter { .. } if missing => Some("cls_u32 act_gact".into()),
        _ => None,
    };
    match module {
        Some(module) => Error::ModuleMissing { module, during },
        None => Error::Kernel {
            request: during,
            error: e,
        },
    }
}
