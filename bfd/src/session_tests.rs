//! Two sessions on a virtual clock, wired to each other through a link that can be cut.

use std::time::{Duration, Instant};

use super::*;

struct Link {
    a: Session,
    b: Session,
    now: Instant,
    /// Packets A -> B and B -> A are delivered.
    up: (bool, bool),
    /// State changes seen, (side, to, diag).
    changes: Vec<(char, State, Diag)>,
    /// Packets sent by A.
    sent_a: Vec<ControlPacket>,
}

impl Link {
    fn new(ta: Timers, tb: Timers) -> Link {
        let now = Instant::now();
        Link {
            a: Session::new(0x1111, ta, now, 1),
            b: Session::new(0x2222, tb, now + Duration::from_millis(7), 2),
            now,
            up: (true, true),
            changes: Vec::new(),
            sent_a: Vec::new(),
        }
    }

    fn deliver(&mut self, from_a: bool, outs: Vec<Output>) {
        let mut queue = vec![(from_a, outs)];
        while let Some((from_a, outs)) = queue.pop() {
            for o in outs {
                match o {
                    Output::StateChanged { to, diag, .. } => {
                        self.changes
                            .push((if from_a { 'a' } else { 'b' }, to, diag));
                    }
                    Output::Send(p) => {
                        if from_a {
                            self.sent_a.push(p);
                        }
                        let delivered = if from_a { self.up.0 } else { self.up.1 };
                        if !delivered {
                            continue;
                        }
                        let to = if from_a { &mut self.b } else { &mut self.a };
                        if let Ok(more) = to.on_packet(self.now, &p) {
                            queue.push((!from_a, more));
                        }
                    }
                }
            }
        }
    }

    /// Runs the clock to `t` from now, firing every deadline on the way.
    fn run_for(&mut self, t: Duration) {
        let end = self.now + t;
        loop {
            let next = [self.a.next_deadline(), self.b.next_deadline()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(d) if d <= end => {
                    self.now = self.now.max(d);
                    if self.a.next_deadline().is_some_and(|x| x <= self.now) {
                        let o = self.a.on_timer(self.now);
                        self.deliver(true, o);
                    }
                    if self.b.next_deadline().is_some_and(|x| x <= self.now) {
                        let o = self.b.on_timer(self.now);
                        self.deliver(false, o);
                    }
                }
                _ => break,
            }
        }
        self.now = end;
    }
}

fn fast() -> Timers {
    Timers {
        desired_min_tx: Duration::from_millis(100),
        required_min_rx: Duration::from_millis(100),
        detect_mult: 3,
    }
}

#[test]
fn both_ends_come_up_through_init_and_speed_up_by_poll() {
    let mut l = Link::new(fast(), Timers::default());
    l.run_for(Duration::from_secs(3));
    assert_eq!((l.a.state(), l.b.state()), (State::Up, State::Up));
    assert!(l.changes.contains(&('a', State::Up, Diag::None)));
    // A wants 100 ms, B 300 ms: each sends at the slower of its own tx and the other's
    // rx; detection is the peer's multiplier times the slower of rx and the peer's tx.
    assert_eq!(l.a.tx_interval(), Duration::from_millis(300));
    assert_eq!(l.b.tx_interval(), Duration::from_millis(300));
    assert_eq!(l.a.detection_time(), Duration::from_millis(900));
    // Down and Init advertise 1 s; once Up a poll carried the fast timers.
    assert!(
        l.sent_a
            .iter()
            .any(|p| p.poll && p.desired_min_tx_us == 100_000)
    );
    assert!(l.sent_a.iter().all(|p| !(p.poll && p.final_)));
    assert!(
        l.sent_a
            .iter()
            .filter(|p| p.state != State::Up)
            .all(|p| p.desired_min_tx_us >= 1_000_000)
    );
}

#[test]
fn a_cut_path_is_seen_within_the_detection_time() {
    let mut l = Link::new(fast(), fast());
    l.run_for(Duration::from_secs(3));
    assert_eq!(l.a.state(), State::Up);
    assert_eq!(l.a.detection_time(), Duration::from_millis(300));
    l.up = (false, false);
    let cut = l.now;
    l.run_for(Duration::from_millis(301));
    assert_eq!(l.a.state(), State::Down, "{:?}", l.changes);
    assert_eq!(l.a.diag(), Diag::ControlDetectionTimeExpired);
    assert!(l.now - cut <= Duration::from_millis(301));
    // Healed: both come back up, slowly (1 s) first.
    l.up = (true, true);
    l.run_for(Duration::from_secs(4));
    assert_eq!((l.a.state(), l.b.state()), (State::Up, State::Up));
}

#[test]
fn admin_down_tells_the_peer_which_goes_down_with_neighbor_signaled() {
    let mut l = Link::new(fast(), fast());
    l.run_for(Duration::from_secs(3));
    let o = l.a.set_admin_down(l.now, true);
    l.deliver(true, o);
    assert_eq!(l.a.state(), State::AdminDown);
    assert_eq!(l.b.state(), State::Down);
    assert_eq!(l.b.diag(), Diag::NeighborSignaledSessionDown);
    assert_eq!(l.b.remote_state(), State::AdminDown);
    // B stays down while A is admin down (it does not time out into anything else).
    l.run_for(Duration::from_secs(3));
    assert_eq!(l.b.state(), State::Down);
    let o = l.a.set_admin_down(l.now, false);
    l.deliver(true, o);
    l.run_for(Duration::from_secs(4));
    assert_eq!((l.a.state(), l.b.state()), (State::Up, State::Up));
}

#[test]
fn new_timers_while_up_go_through_a_poll_sequence() {
    let mut l = Link::new(fast(), fast());
    l.run_for(Duration::from_secs(3));
    let slower = Timers {
        desired_min_tx: Duration::from_millis(500),
        required_min_rx: Duration::from_millis(500),
        detect_mult: 3,
    };
    let o = l.a.set_timers(l.now, slower);
    assert!(matches!(o.as_slice(), [Output::Send(p)] if p.poll));
    l.up.0 = false; // the poll does not reach B yet
    l.deliver(true, o);
    // The slower transmit waits for the Final; the slower receive is used at once.
    assert_eq!(l.a.tx_interval(), Duration::from_millis(100));
    l.up.0 = true;
    l.run_for(Duration::from_secs(1));
    assert_eq!(l.a.tx_interval(), Duration::from_millis(500));
    assert_eq!(l.b.detection_time(), Duration::from_millis(1500));
    assert_eq!(l.a.state(), State::Up);
}

#[test]
fn packets_for_someone_else_change_nothing() {
    let mut l = Link::new(fast(), fast());
    l.run_for(Duration::from_secs(3));
    let mut p = *l.sent_a.last().unwrap();
    p.your_discr = 0x9999;
    p.state = State::Down;
    assert_eq!(
        l.b.on_packet(l.now, &p),
        Err(Discard::WrongDiscriminator {
            got: 0x9999,
            ours: 0x2222
        })
    );
    p.your_discr = 0;
    p.state = State::Up;
    assert_eq!(
        l.b.on_packet(l.now, &p),
        Err(Discard::ZeroYourDiscr(State::Up))
    );
    assert_eq!(l.b.state(), State::Up);
}

#[test]
fn a_final_answers_every_poll_at_once() {
    let mut s = Session::new(5, fast(), Instant::now(), 3);
    let now = Instant::now();
    let p = ControlPacket {
        diag: Diag::None,
        state: State::Down,
        poll: true,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_discr: 77,
        your_discr: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 1_000_000,
        required_min_echo_rx_us: 0,
    };
    let out = s.on_packet(now, &p).unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Send(p) if p.final_ && !p.poll && p.your_discr == 77))
    );
    assert_eq!(s.state(), State::Init);
}

/// A packet as FRR's bfdd sends it: slow timers (1 s both ways) until Up, then a Poll
/// carrying the configured ones.
fn frr(state: State, your_discr: u32, ms: u32, poll: bool) -> ControlPacket {
    ControlPacket {
        diag: Diag::None,
        state,
        poll,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_discr: 0x9999,
        your_discr,
        desired_min_tx_us: ms * 1000,
        required_min_rx_us: ms * 1000,
        required_min_echo_rx_us: 0,
    }
}

#[test]
fn a_peer_leaving_its_slow_receive_interval_gets_the_next_packet_in_time() {
    let mut now = Instant::now();
    let mut a = Session::new(0x1111, fast(), now, 1);
    a.on_packet(now, &frr(State::Down, 0, 1000, false)).unwrap();
    assert_eq!(a.state(), State::Init);
    now += Duration::from_millis(10);
    a.on_packet(now, &frr(State::Up, 0x1111, 1000, false))
        .unwrap();
    assert_eq!(a.state(), State::Up);
    // The peer still asks for a packet a second at most: the next one is that far.
    assert!(a.next_deadline().unwrap() >= now + Duration::from_millis(750));
    // Its Poll asks for 100 ms (and will expect our packets 3 x 100 ms apart once it
    // has our Final): the packet armed at the slow interval is brought forward.
    now += Duration::from_millis(5);
    let out = a
        .on_packet(now, &frr(State::Up, 0x1111, 100, true))
        .unwrap();
    assert!(out.iter().any(|o| matches!(o, Output::Send(p) if p.final_)));
    let next = a.next_deadline().unwrap();
    assert!(
        next <= now + Duration::from_millis(100),
        "next packet {:?} after the Poll",
        next - now
    );
    // And it keeps that pace: three periodic packets within 300 ms.
    let mut sent = 0;
    let end = now + Duration::from_millis(300);
    while let Some(t) = a.next_deadline().filter(|t| *t <= end) {
        now = t;
        sent += a
            .on_timer(now)
            .iter()
            .filter(|o| matches!(o, Output::Send(_)))
            .count();
    }
    assert!(sent >= 3, "{sent} packets in 300 ms");
}
