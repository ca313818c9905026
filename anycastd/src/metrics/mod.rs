//! The Prometheus exposition (text format 0.0.4) through the prometheus-client crate:
//! at each scrape a registry is filled from a status snapshot, the daemon's counters,
//! the notifier's counts and the latency histograms ([`Latency`]), which live across
//! scrapes. Every series has a typed label set (`labels.rs`); names and types are
//! listed in docs/operations.md.

mod labels;
mod latency;

pub use latency::Latency;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

use crate::status::{BfdState, PeerState, ServerState, SessionState, Status, VipState};
use labels::*;

/// Monotonic counters the controller keeps besides the status snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Health transitions per (server `addr:port`, to-state).
    pub health_transitions: BTreeMap<(String, String), u64>,
    /// Rejected load reports per (peer or "unknown", reason).
    pub rejected_reports: BTreeMap<(String, String), u64>,
    /// Accepted load reports per peer.
    pub accepted_reports: BTreeMap<String, u64>,
    /// Announce and withdraw calls per (vip, kind).
    pub announcements: BTreeMap<(String, String), u64>,
    /// Data-plane reconciles and the changes they made.
    pub reconciles: u64,
    pub reconcile_changes: u64,
    pub reconcile_errors: u64,
    /// Config reloads accepted and refused.
    pub reloads: u64,
    pub reload_failures: u64,
}

/// BFD control packets over all sessions, as the bfd task counts them (from its start:
/// a reload that changes the BGP neighbors starts them again at 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BfdPackets {
    pub received: u64,
    pub sent: u64,
    /// Dropped: not a valid control packet.
    pub malformed: u64,
    /// Dropped: TTL or hop limit not 255 (RFC 5881 section 5).
    pub bad_ttl: u64,
    /// Dropped: from no configured neighbor, or for no session of ours.
    pub unknown: u64,
    /// Valid, but refused by its session (wrong discriminator, admin down).
    pub discarded: u64,
}

/// What one scrape shows.
#[derive(Clone, Copy)]
pub struct Scrape<'a> {
    pub status: &'a Status,
    pub counters: &'a Counters,
    /// The BFD packet counters when BFD runs.
    pub bfd: Option<&'a BfdPackets>,
    pub latency: Option<&'a Latency>,
    /// The notifier's counts when it runs.
    pub notify: Option<&'a crate::notify::Stats>,
    /// The browser monitor's refusals by reason and its feed's asks when it runs.
    pub monitor: Option<&'a crate::monitor::counters::Counts>,
}

/// What a scrape shows, owned: the controller task takes it (a status snapshot and
/// clones), the API renders it on a blocking thread, so that rendering a large site's
/// exposition never holds up the core.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub status: Status,
    pub counters: Counters,
    pub bfd: Option<BfdPackets>,
    pub latency: Latency,
    pub notify: Option<crate::notify::Stats>,
    pub monitor: Option<crate::monitor::counters::Counts>,
}

impl Snapshot {
    pub fn render(&self) -> String {
        render(&Scrape {
            status: &self.status,
            counters: &self.counters,
            bfd: self.bfd.as_ref(),
            latency: Some(&self.latency),
            notify: self.notify.as_ref(),
            monitor: self.monitor.as_ref(),
        })
    }
}

type FGauge = Gauge<f64, AtomicU64>;

/// A registry being filled; each method registers one family and returns it.
struct Reg(Registry);

type G<L> = Family<L, Gauge>;
type Fg<L> = Family<L, FGauge>;
type C<L> = Family<L, Counter>;

impl Reg {
    /// Registers a new `M` as `name` and returns it (clones share their values).
    /// Counters are named without `_total`: the encoder appends it.
    fn add<M: Metric + Clone + Default>(&mut self, name: &str, help: &str) -> M {
        let m = M::default();
        self.0.register(name, help, m.clone());
        m
    }

    fn counter(&mut self, name: &str, help: &str, v: u64) {
        self.add::<Counter>(name, help).inc_by(v);
    }

    fn gauge(&mut self, name: &str, help: &str, v: i64) {
        self.add::<Gauge>(name, help).set(v);
    }
}

fn b(v: bool) -> i64 {
    i64::from(v)
}

fn s(v: &str) -> String {
    v.to_string()
}

/// Renders every series of `x`.
pub fn render(x: &Scrape<'_>) -> String {
    let mut r = Reg(Registry::default());
    let st = x.status;
    r.add::<G<SiteL>>(
        "anycast_up",
        "1 while the daemon runs; labels name the site",
    )
    .get_or_create(&SiteL {
        site: st.site.clone(),
    })
    .set(1);
    vips(&mut r, st);
    sessions(&mut r, st);
    if let Some(p) = x.bfd {
        bfd_packets(&mut r, p);
    }
    servers(&mut r, st, x.counters);
    peers(&mut r, st, x.counters);
    dataplane(&mut r, st, x.counters);
    if let Some(y) = &st.sync {
        sync(&mut r, y);
    }
    if let Some(d) = &st.directors {
        directors(&mut r, d);
    }
    if let Some(l) = x.latency {
        l.register(&mut r.0);
    }
    if let Some(n) = x.notify {
        notify(&mut r, n);
    }
    if let Some(m) = x.monitor {
        let refused = r.add::<C<ReasonL>>(
            "anycast_monitor_refused",
            "Requests the browser monitor refused, by reason",
        );
        for (reason, n) in &m.refused {
            refused
                .get_or_create(&ReasonL {
                    reason: s(reason.as_str()),
                })
                .inc_by(*n);
        }
        r.counter(
            "anycast_monitor_status_asks",
            "Status asks of the browser monitor's live feed (on a change with a page open, and for the history)",
            m.status_asks,
        );
    }
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &r.0);
    out
}

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

fn vips(r: &mut Reg, st: &Status) {
    let announced = r.add::<G<VipPrefix>>(
        "anycast_vip_announced",
        "1 when the VIP prefix is announced (draining counts as announced)",
    );
    let state = r.add::<G<VipStateL>>("anycast_vip_state", "1 for the VIP's current state");
    let held = r.add::<G<VipPrefix>>(
        "anycast_vip_held",
        "1 while the last-announcer guard keeps the VIP announced: its checks fail and every peer reports it cannot serve",
    );
    for v in &st.vips {
        held.get_or_create(&VipPrefix {
            vip: v.name.clone(),
            prefix: v.prefix.clone(),
        })
        .set(b(v.held));
        let on = matches!(v.state, VipState::Announced | VipState::Draining);
        announced
            .get_or_create(&VipPrefix {
                vip: v.name.clone(),
                prefix: v.prefix.clone(),
            })
            .set(b(on));
        for x in [
            VipState::Announced,
            VipState::Withdrawn,
            VipState::Draining,
            VipState::Drained,
        ] {
            state
                .get_or_create(&VipStateL {
                    vip: v.name.clone(),
                    state: s(x.as_str()),
                })
                .set(b(v.state == x));
        }
    }
}

fn sessions(r: &mut Reg, st: &Status) {
    let state = r.add::<G<NeighborStateL>>(
        "anycast_bgp_session_state",
        "1 for the session's current FSM state",
    );
    let est = r.add::<G<NeighborL>>(
        "anycast_bgp_session_established",
        "1 while the session is Established",
    );
    let sent = r.add::<G<NeighborL>>(
        "anycast_bgp_prefixes_sent",
        "prefixes currently advertised to the neighbor",
    );
    let recv = r.add::<G<NeighborL>>(
        "anycast_bgp_prefixes_received",
        "prefixes the neighbor advertised to us (discarded)",
    );
    let bfd_up = r.add::<G<NeighborL>>(
        "anycast_bfd_session_up",
        "1 while the BFD session toward the neighbor is Up",
    );
    let bfd_det = r.add::<Fg<NeighborL>>(
        "anycast_bfd_detection_time_seconds",
        "negotiated BFD detection time (0 before the neighbor's first packet)",
    );
    let bfd_hold = r.add::<G<NeighborL>>(
        "anycast_bfd_holds_bgp_down",
        "1 while the BGP session is held down because BFD went down",
    );
    for x in &st.sessions {
        let n = NeighborL {
            neighbor: x.neighbor.clone(),
        };
        for y in SessionState::ALL {
            state
                .get_or_create(&NeighborStateL {
                    neighbor: x.neighbor.clone(),
                    state: s(y.as_str()),
                })
                .set(b(x.state == y));
        }
        est.get_or_create(&n)
            .set(b(x.state == SessionState::Established));
        sent.get_or_create(&n).set(x.prefixes_sent as i64);
        recv.get_or_create(&n).set(x.prefixes_received as i64);
        if let Some(f) = &x.bfd {
            bfd_up.get_or_create(&n).set(b(f.state == BfdState::Up));
            bfd_det
                .get_or_create(&n)
                .set(f.detection_time_ms as f64 / 1000.0);
            bfd_hold.get_or_create(&n).set(b(f.holds_bgp_down));
        }
    }
}

fn bfd_packets(r: &mut Reg, p: &BfdPackets) {
    r.counter(
        "anycast_bfd_packets_received",
        "BFD control packets received, every session and the dropped ones included",
        p.received,
    );
    r.counter(
        "anycast_bfd_packets_sent",
        "BFD control packets sent, every session",
        p.sent,
    );
    let dropped = r.add::<C<ReasonL>>(
        "anycast_bfd_packets_dropped",
        "BFD control packets dropped: malformed, TTL not 255, from no configured neighbor (unknown), refused by the session (discarded)",
    );
    for (reason, n) in [
        ("malformed", p.malformed),
        ("bad_ttl", p.bad_ttl),
        ("unknown", p.unknown),
        ("discarded", p.discarded),
    ] {
        dropped
            .get_or_create(&ReasonL { reason: s(reason) })
            .inc_by(n);
    }
}

fn servers(r: &mut Reg, st: &Status, c: &Counters) {
    let up = r.add::<G<ServerL>>(
        "anycast_real_server_up",
        "1 when the real server passes its health checks",
    );
    let conns = r.add::<G<ServerL>>(
        "anycast_real_server_active_connections",
        "active connections from IPVS",
    );
    for x in &st.real_servers {
        let l = ServerL {
            vip: x.vip.clone(),
            service: x.service.clone(),
            server: format!("{}:{}", x.address, x.port),
        };
        up.get_or_create(&l).set(b(x.state == ServerState::Up));
        conns.get_or_create(&l).set(x.active_conns as i64);
    }
    let tr = r.add::<C<TransitionL>>(
        "anycast_health_transitions",
        "real server health state changes",
    );
    for ((server, to), n) in &c.health_transitions {
        tr.get_or_create(&TransitionL {
            server: server.clone(),
            to: to.clone(),
        })
        .inc_by(*n);
    }
}

fn peers(r: &mut Reg, st: &Status, c: &Counters) {
    r.add::<Fg<SiteL>>(
        "anycast_local_load",
        "active connections over healthy capacity; +Inf with no healthy capacity",
    )
    .get_or_create(&SiteL {
        site: st.site.clone(),
    })
    .set(st.local_load.unwrap_or(f64::INFINITY));
    let load = r.add::<Fg<PeerL>>("anycast_peer_load", "last load a peer site reported");
    let age = r.add::<G<PeerL>>(
        "anycast_peer_report_age_seconds",
        "age of the peer's last valid report",
    );
    let known = r.add::<G<PeerL>>(
        "anycast_peer_known",
        "1 while the peer's reports are fresh enough to spill to it",
    );
    for p in &st.peers {
        let l = PeerL {
            peer: p.name.clone(),
        };
        if let Some(v) = p.load {
            load.get_or_create(&l).set(v);
        }
        if let Some(a) = p.report_age_s {
            age.get_or_create(&l).set(a as i64);
        }
        known.get_or_create(&l).set(b(p.state == PeerState::Known));
    }
    let acc = r.add::<C<PeerL>>("anycast_reports_accepted", "valid load reports received");
    for (peer, n) in &c.accepted_reports {
        acc.get_or_create(&PeerL { peer: peer.clone() }).inc_by(*n);
    }
    let rej = r.add::<C<PeerReasonL>>(
        "anycast_reports_rejected",
        "load reports refused (forged, replayed, stale, oversize, malformed)",
    );
    for ((peer, reason), n) in &c.rejected_reports {
        rej.get_or_create(&PeerReasonL {
            peer: peer.clone(),
            reason: reason.clone(),
        })
        .inc_by(*n);
    }
    let share = r.add::<Fg<PeerL>>(
        "anycast_spill_share",
        "share of new connections sent to a peer site",
    );
    for x in &st.spill {
        share
            .get_or_create(&PeerL {
                peer: x.peer.clone(),
            })
            .set(x.share);
    }
}

/// `[sync]`: the daemons running and the director's connections by origin.
fn sync(r: &mut Reg, y: &crate::status::SyncStatus) {
    let up = r.add::<G<RoleL>>(
        "anycast_sync_daemon_up",
        "1 while the kernel's IPVS sync daemon of the role runs",
    );
    for role in ["master", "backup"] {
        up.get_or_create(&RoleL { role: s(role) })
            .set(b(y.roles.iter().any(|x| x == role)));
    }
    let conns = r.add::<G<OriginL>>(
        "anycast_sync_connections",
        "IPVS connections of this director by origin: scheduled here (local) or learned from the site's other directors (synced)",
    );
    for (origin, n) in [("local", y.local_conns), ("synced", y.synced_conns)] {
        conns
            .get_or_create(&OriginL { origin: s(origin) })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// The site's directors (decision 0015): this one and its siblings.
fn directors(r: &mut Reg, d: &crate::status::DirectorsStatus) {
    let load = r.add::<Fg<DirectorL>>(
        "anycast_director_load",
        "a director's own load (served plus spilled out over its healthy capacity; +Inf with none); anycast_local_load is the site's",
    );
    let up = r.add::<G<DirectorL>>(
        "anycast_director_up",
        "1 while the director's reports are fresh (this director: always)",
    );
    let same = r.add::<G<DirectorL>>(
        "anycast_director_config_match",
        "1 when the director reports the same site config digest as this one (0: its figures are left out of the site load)",
    );
    let me = DirectorL {
        director: d.me.clone(),
    };
    load.get_or_create(&me)
        .set(d.own_load.unwrap_or(f64::INFINITY));
    up.get_or_create(&me).set(1);
    same.get_or_create(&me).set(1);
    for o in &d.others {
        let l = DirectorL {
            director: o.name.clone(),
        };
        if o.state != PeerState::Unknown {
            load.get_or_create(&l).set(o.load.unwrap_or(f64::INFINITY));
        }
        up.get_or_create(&l).set(b(o.state == PeerState::Known));
        if let Some(m) = o.digest_match {
            same.get_or_create(&l).set(b(m));
        }
    }
}

fn dataplane(r: &mut Reg, st: &Status, c: &Counters) {
    let ann = r.add::<C<VipKindL>>(
        "anycast_announcements",
        "announce and withdraw requests given to the BGP speaker",
    );
    for ((vip, kind), n) in &c.announcements {
        ann.get_or_create(&VipKindL {
            vip: vip.clone(),
            kind: kind.clone(),
        })
        .inc_by(*n);
    }
    r.counter(
        "anycast_dataplane_reconciles",
        "data-plane reconciles run",
        c.reconciles,
    );
    r.counter(
        "anycast_dataplane_changes",
        "netlink changes made by reconciles",
        c.reconcile_changes,
    );
    r.counter(
        "anycast_dataplane_errors",
        "reconciles that failed",
        c.reconcile_errors,
    );
    r.gauge(
        "anycast_dataplane_ok",
        "1 when the last reconcile succeeded",
        b(st.dataplane.ok),
    );
    r.counter("anycast_reloads", "config reloads accepted", c.reloads);
    r.counter(
        "anycast_reload_failures",
        "config reloads refused",
        c.reload_failures,
    );
}

fn notify(r: &mut Reg, n: &crate::notify::Stats) {
    let fams = [
        ("anycast_notify_delivered", "notices delivered, per sink"),
        (
            "anycast_notify_retries",
            "failed notice deliveries tried again, per sink",
        ),
        (
            "anycast_notify_failed",
            "notices given up after every try, per sink",
        ),
        (
            "anycast_notify_dropped",
            "notices dropped from a full queue, per sink",
        ),
    ]
    .map(|(name, help)| r.add::<C<SinkL>>(name, help));
    let queued = r.add::<G<SinkL>>("anycast_notify_queued", "notices waiting, per sink");
    for (sink, x) in &n.sinks {
        let l = SinkL { sink: sink.clone() };
        for (f, v) in fams
            .iter()
            .zip([x.delivered, x.retries, x.failed, x.dropped])
        {
            f.get_or_create(&l).inc_by(v);
        }
        queued.get_or_create(&l).set(x.queued as i64);
    }
    r.counter(
        "anycast_notify_refused",
        "events the daemon could not hand to the notifier (its channel was full)",
        n.refused,
    );
}

#[cfg(test)]
mod tests;
