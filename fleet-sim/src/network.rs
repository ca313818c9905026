//! The network between sites for reports: it loses a share of them and delays the rest
//! by up to one report period.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::Rng;
use rand::rngs::StdRng;

/// A signed report on its way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct InFlight {
    /// Second it arrives.
    pub at: u64,
    /// Order of sending (ties arrive in sending order: deterministic).
    pub order: u64,
    /// Receiving site index.
    pub to: usize,
    /// The sender's name (the `X-Site` header).
    pub sender: String,
    /// The signature header.
    pub signature: String,
    /// The body.
    pub body: Vec<u8>,
}

/// A lossy network with delays, seeded.
#[derive(Debug)]
pub struct Network {
    loss: f64,
    max_delay_s: u64,
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    /// Reports handed to the network.
    pub sent: u64,
    /// Reports it lost.
    pub lost: u64,
}

impl Network {
    /// Loses `loss` (0..=1) of the reports; delays the others uniformly by 0 to `max_delay_s`.
    pub fn new(loss: f64, max_delay_s: u64) -> Network {
        Network {
            loss,
            max_delay_s,
            queue: BinaryHeap::new(),
            order: 0,
            sent: 0,
            lost: 0,
        }
    }

    /// Sends one report at second `now`.
    pub fn send(
        &mut self,
        rng: &mut StdRng,
        now: u64,
        to: usize,
        sender: String,
        signature: String,
        body: Vec<u8>,
    ) {
        self.sent += 1;
        if rng.random_range(0.0..1.0) < self.loss {
            self.lost += 1;
            return;
        }
        let delay = rng.random_range(0..=self.max_delay_s);
        self.order += 1;
        self.queue.push(Reverse(InFlight {
            at: now + delay,
            order: self.order,
            to,
            sender,
            signature,
            body,
        }));
    }

    /// The next report that has arrived by second `now`, if any.
    pub fn arrived(&mut self, now: u64) -> Option<InFlight> {
        if self.queue.peek().is_some_and(|Reverse(m)| m.at <= now) {
            self.queue.pop().map(|Reverse(m)| m)
        } else {
            None
        }
    }
}
