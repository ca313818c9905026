//! Observers inside the upstream's namespace: a packet socket on its veth end that
//! decodes the speaker's BGP UPDATEs for one prefix ("wire"), and an rtnetlink socket
//! that sees the prefix enter and leave the kernel table ("kernel").
//!
//! ```text
//!   speaker ns ── veth ──> [AF_PACKET on upstream's end] ──Event::Update──┐
//!                          upstream bgpd -> zebra -> kernel               ├─> mpsc
//!                          [rtnetlink RTMGRP_IPV4_ROUTE]  ──Event::Route──┘
//! ```
//!
//! Every event carries the `Instant` its thread woke with it, so figures are upper
//! bounds that include one scheduler wake-up; withdraws also carry the kernel's
//! receive timestamp, and [`Watcher::servers`] adds a capture on the real servers'
//! link whose FINs (kernel-stamped) say when a server really went away, so the
//! speaker's own share can be told from the time the killed process takes to die. Both threads stop when `stop` is set
//! (every recv is bounded by a 100 ms receive timeout). The sockets and decoders are
//! `anycast_lab::bgp_capture`'s; this module turns what they see into [`Event`]s.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anycast_lab::bgp_capture::{
    RouteChange, Update, bgp_in_frame, kernel_stamp, observe, packet_socket, route_changes,
    route_socket, tcp_fin_from,
};

/// What the observers saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An UPDATE from the speaker that withdraws the prefix (and the kernel's stamp).
    Withdraw(Instant, Option<SystemTime>),
    /// An UPDATE from the speaker that announces the prefix, with its MED.
    Announce(Instant, Option<u32>),
    /// The prefix entered the upstream's kernel table.
    RouteAdd(Instant),
    /// The prefix left the upstream's kernel table.
    RouteDel(Instant),
    /// A real server sent a FIN (the kernel's stamp): it closed a connection.
    ServerFin(Instant, SystemTime),
}

impl Event {
    /// When the observer saw it.
    pub fn at(&self) -> Instant {
        match *self {
            Event::Withdraw(t, _)
            | Event::Announce(t, _)
            | Event::RouteAdd(t)
            | Event::RouteDel(t)
            | Event::ServerFin(t, _) => t,
        }
    }
}

pub use anycast_lab::netns::enter;

/// The running observer threads.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    /// Events, in the order the threads saw them.
    pub rx: mpsc::Receiver<Event>,
    tx: mpsc::Sender<Event>,
    /// Kernel stamps of the server FINs that [`Watcher::wait`] passed over.
    fins: std::cell::RefCell<Vec<SystemTime>>,
}

impl Watcher {
    /// Starts both observers in namespace `ns`: the capture on `ifname` for UPDATEs
    /// sent by `speaker` about `prefix/len`, and the kernel table watcher.
    pub fn start(
        ns: &str,
        ifname: &str,
        speaker: Ipv4Addr,
        prefix: Ipv4Addr,
        len: u8,
    ) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let wire = {
            let (ifname, tx) = (ifname.to_string(), tx.clone());
            observe(
                ns,
                move || packet_socket(&ifname),
                stop.clone(),
                ready_tx.clone(),
                move |fd, frame, now| {
                    for u in bgp_in_frame(frame, speaker, (prefix, len)) {
                        let _ = tx.send(match u {
                            Update::Withdraw => Event::Withdraw(now, kernel_stamp(fd)),
                            Update::Announce(med) => Event::Announce(now, med),
                        });
                    }
                },
            )
        };
        let kernel = observe(ns, route_socket, stop.clone(), ready_tx, {
            let tx = tx.clone();
            move |_, buf, now| {
                for c in route_changes(buf, (prefix, len)) {
                    let _ = tx.send(match c {
                        RouteChange::Add => Event::RouteAdd(now),
                        RouteChange::Del => Event::RouteDel(now),
                    });
                }
            }
        });
        let threads = vec![wire, kernel];
        let w = Watcher {
            stop,
            threads,
            rx,
            tx,
            fins: Default::default(),
        };
        for _ in 0..2 {
            ready_rx
                .recv_timeout(Duration::from_secs(5))
                .map_err(|_| io::Error::other("an observer thread did not start"))?;
        }
        Ok(w)
    }

    /// Also captures on `ifname` in namespace `ns` (the real servers' end of their
    /// link): every FIN from TCP port `port` becomes [`Event::ServerFin`].
    pub fn servers(&mut self, ns: &str, ifname: &str, port: u16) -> io::Result<()> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (ifname, tx) = (ifname.to_string(), self.tx.clone());
        self.threads.push(observe(
            ns,
            move || packet_socket(&ifname),
            self.stop.clone(),
            ready_tx,
            move |fd, frame, now| {
                if tcp_fin_from(frame, port)
                    && let Some(k) = kernel_stamp(fd)
                {
                    let _ = tx.send(Event::ServerFin(now, k));
                }
            },
        ));
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| io::Error::other("the server-side observer did not start"))
    }

    /// Drops events seen so far.
    pub fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
        self.fins.borrow_mut().clear();
    }

    /// The kernel stamp of the last server FIN at or before `t` among those seen since
    /// the last [`Watcher::drain`].
    pub fn last_fin_before(&self, t: SystemTime) -> Option<SystemTime> {
        self.fins
            .borrow()
            .iter()
            .filter(|f| **f <= t)
            .max()
            .copied()
    }

    /// Waits up to `limit` for the first event that `want` accepts.
    pub fn wait(&self, limit: Duration, want: impl Fn(&Event) -> bool) -> Option<Event> {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(e) => {
                    if let Event::ServerFin(_, k) = e {
                        self.fins.borrow_mut().push(k);
                    }
                    if want(&e) {
                        return Some(e);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
