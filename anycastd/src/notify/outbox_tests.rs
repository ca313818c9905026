use std::time::Duration;

use geo_balancer::Time;

use super::*;

fn policy() -> Policy {
    Policy {
        coalesce: Duration::from_secs(5),
        queue: 3,
        retry_initial: Duration::from_secs(1),
        retry_max: Duration::from_secs(8),
        attempts: 4,
    }
}

fn ev(kind: Kind, subject: &str, at: Time) -> Event {
    Event::new(kind, subject.to_string(), "test".to_string(), at)
}

fn t(ms: u64) -> Time {
    Time(1_000_000 + ms)
}

#[test]
fn a_flap_within_the_window_is_one_notice_with_its_count() {
    let mut o = Outbox::new("idc1".into(), policy(), 1);
    o.push(t(0), ev(Kind::ServerDown, "server a", t(0)));
    o.push(t(800), ev(Kind::ServerUp, "server a", t(800)));
    o.push(t(1600), ev(Kind::ServerDown, "server a", t(1600)));
    assert!(o.poll(t(4999)).is_empty());
    assert_eq!(o.next_deadline(), Some(t(5000)));
    let d = o.poll(t(5000));
    assert_eq!(d.len(), 1);
    let n = &d[0].notice;
    assert_eq!(
        (n.event.kind, n.count, n.first_at_ms),
        (Kind::ServerDown, 3, t(0).as_millis())
    );
    assert_eq!(
        n.history,
        [Kind::ServerDown, Kind::ServerUp, Kind::ServerDown]
    );
    assert_eq!(n.event.at_ms, t(1600).as_millis());
    // Another subject is not merged; the same subject after its window is a new notice.
    o.done(t(5001), 0, true);
    o.push(t(6000), ev(Kind::ServerUp, "server a", t(6000)));
    o.push(t(6000), ev(Kind::PeerLost, "peer b", t(6000)));
    let d = o.poll(t(11_000));
    assert_eq!(d.len(), 1, "one delivery at a time per sink");
    assert_eq!(d[0].notice.count, 1);
    assert_eq!(o.stats()[0].queued, 2);
}

#[test]
fn zero_window_sends_at_once_to_every_sink() {
    let mut o = Outbox::new(
        "idc1".into(),
        Policy {
            coalesce: Duration::ZERO,
            ..policy()
        },
        2,
    );
    o.push(t(0), ev(Kind::VipWithdrawn, "vip web", t(0)));
    let d = o.poll(t(0));
    assert_eq!(d.iter().map(|d| d.sink).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(
        serde_json::to_value(&*d[0].notice).unwrap()["kind"],
        "vip_withdrawn"
    );
}

#[test]
fn failures_back_off_exponentially_to_the_cap_then_give_up() {
    let mut o = Outbox::new(
        "idc1".into(),
        Policy {
            coalesce: Duration::ZERO,
            attempts: 6,
            ..policy()
        },
        1,
    );
    o.push(t(0), ev(Kind::VipWithdrawn, "vip web", t(0)));
    let mut now = t(0);
    let mut waits = Vec::new();
    for _ in 0..5 {
        assert_eq!(o.poll(now).len(), 1);
        assert!(o.poll(now).is_empty(), "one try in flight");
        o.done(now, 0, false);
        let next = o.next_deadline().unwrap();
        assert!(
            o.poll(Time(next.0 - 1)).is_empty(),
            "not before the backoff"
        );
        waits.push(next.since(now).as_secs());
        now = next;
    }
    assert_eq!(waits, [1, 2, 4, 8, 8]);
    assert_eq!(o.poll(now).len(), 1);
    o.done(now, 0, false);
    let s = o.stats()[0];
    assert_eq!((s.failed, s.retries, s.queued, s.delivered), (1, 5, 0, 0));
    assert!(o.is_idle() && o.next_deadline().is_none());
}

#[test]
fn a_full_queue_drops_the_oldest_waiting_and_counts() {
    let mut o = Outbox::new(
        "idc1".into(),
        Policy {
            coalesce: Duration::ZERO,
            ..policy()
        },
        1,
    );
    let mut seen = Vec::new();
    for i in 0..6u64 {
        o.push(t(i), ev(Kind::ServerDown, &format!("server {i}"), t(i)));
        seen.extend(
            o.poll(t(i))
                .into_iter()
                .map(|d| d.notice.event.subject.clone()),
        );
    }
    let s = o.stats()[0];
    assert_eq!((s.queued, s.dropped), (3, 3));
    // The one in flight (server 0) is kept; then the newest two.
    for _ in 0..2 {
        o.done(t(10), 0, true);
        let d = o.poll(t(10));
        seen.push(d[0].notice.event.subject.clone());
    }
    assert_eq!(seen, ["server 0", "server 4", "server 5"]);
}

#[test]
fn many_subjects_held_release_the_oldest_early() {
    let mut o = Outbox::new("idc1".into(), policy(), 1);
    for i in 0..4u64 {
        o.push(t(i), ev(Kind::PeerLost, &format!("peer {i}"), t(i)));
    }
    assert_eq!(o.overflowed, 1);
    let d = o.poll(t(4));
    assert_eq!(d[0].notice.event.subject, "peer 0");
    o.flush();
    assert_eq!(o.stats()[0].queued, 3 /* cap */);
}

#[test]
fn backoff_never_overflows() {
    let p = Policy {
        retry_max: Duration::from_secs(300),
        ..policy()
    };
    assert_eq!(backoff(&p, u32::MAX), Duration::from_secs(300));
    assert_eq!(backoff(&p, 1), Duration::from_secs(1));
}
