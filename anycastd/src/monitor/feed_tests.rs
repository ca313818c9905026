//! The feed task against a controller that counts its status asks, on tokio's
//! virtual clock: no page and changes galore ask only for the history; an open page
//! gets a change within [`FEED_EVERY`]; a burst of changes costs one or two asks.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::pacer::FEED_EVERY;
use super::*;
use crate::ctl::render::tests_support::sample;

/// A controller that answers `Status` with the sample at virtual time, its load
/// taken from `load` (hundredths), and counts the asks.
struct Fake {
    asks: Arc<AtomicUsize>,
    load: Arc<AtomicU64>,
}

fn controller() -> (ControllerHandle, Fake) {
    let (tx, mut rx) = mpsc::channel::<Command>(16);
    let fake = Fake {
        asks: Arc::default(),
        load: Arc::new(AtomicU64::new(50)),
    };
    let (asks, load) = (fake.asks.clone(), fake.load.clone());
    let t0 = tokio::time::Instant::now();
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            if let Command::Status(reply) = cmd {
                asks.fetch_add(1, Ordering::SeqCst);
                let mut st = sample();
                st.now = 1_000_000 + t0.elapsed().as_secs();
                st.local_load = Some(load.load(Ordering::SeqCst) as f64 / 100.0);
                let _ = reply.send(st);
            }
        }
    });
    (ControllerHandle::new(tx), fake)
}

fn shared(handle: ControllerHandle, feed: watch::Receiver<Option<Arc<FeedEvent>>>) -> Arc<Shared> {
    let long = Duration::from_secs(3600);
    Arc::new(Shared {
        handle,
        users: vec![],
        sessions: Mutex::new(session::Sessions::new(long, long)),
        limiter: Mutex::new(limiter::LoginLimiter::default()),
        history: Mutex::new(history::History::default()),
        feed,
        pages: watch::Sender::new(0),
        tls: false,
    })
}

#[tokio::test(start_paused = true)]
async fn asks_on_changes_only_while_a_page_is_open() {
    let (handle, fake) = controller();
    let (feed_tx, feed_rx) = watch::channel(None);
    let (changes_tx, changes_rx) = watch::channel(0u64);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let s = shared(handle, feed_rx.clone());
    tokio::spawn(feed(s.clone(), feed_tx, changes_rx, stop_rx));
    let bump = || changes_tx.send_modify(|n| *n += 1);
    let asks = || fake.asks.load(Ordering::SeqCst);

    // No page for 60 s, a change every 300 ms: only the history's samples (t = 0,
    // 10, ..., 60 s) ask.
    for _ in 0..200 {
        bump();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!((6..=7).contains(&asks()), "{} asks", asks());

    // Quiet, still no page: nothing but the samples.
    let before = asks();
    tokio::time::sleep(Duration::from_millis(9_500)).await;
    assert!(asks() <= before + 1, "{} asks in 9.5 s", asks() - before);

    // A page opens: its status at once; a change reaches it within FEED_EVERY.
    let mut rx = feed_rx.clone();
    rx.borrow_and_update();
    let before = asks();
    let page = Page::open(s.clone());
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        asks(),
        before + 1,
        "a page that opens is brought up to date"
    );
    fake.load.store(120, Ordering::SeqCst);
    bump();
    let t = tokio::time::Instant::now();
    loop {
        tokio::time::timeout(FEED_EVERY + Duration::from_millis(50), rx.changed())
            .await
            .expect("the change within FEED_EVERY")
            .unwrap();
        let ev = rx.borrow_and_update().clone().unwrap();
        if ev.status.local_load == Some(1.2) {
            break;
        }
    }
    assert!(t.elapsed() <= FEED_EVERY, "{:?}", t.elapsed());

    // A burst of 50 changes within a second: at most two asks (one now, one at the
    // end of the window), not fifty.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = asks();
    for _ in 0..50 {
        bump();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(FEED_EVERY).await;
    assert!(asks() - before <= 2, "{} asks for a burst", asks() - before);

    // The page closes: changes ask nothing again.
    drop(page);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let before = asks();
    for _ in 0..30 {
        bump();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(asks() <= before + 1, "{} asks in 9 s", asks() - before);
}

#[test]
fn a_report_received_or_a_session_reestablished_is_a_change_a_clock_tick_is_not() {
    let a = sample();
    let mut b = a.clone();
    b.now += 5;
    b.uptime_s += 5;
    for p in &mut b.peers {
        p.report_age_s = p.report_age_s.map(|x| x + 5);
    }
    for x in &mut b.sessions {
        x.uptime_s = x.uptime_s.map(|x| x + 5);
    }
    assert!(same_but_clock(&a, &b));
    let mut c = b.clone();
    if let Some(p) = c.peers.iter_mut().find(|p| p.report_age_s.is_some()) {
        p.report_age_s = Some(0);
    }
    assert!(!same_but_clock(&a, &c), "a fresh report restarts its age");
    let mut d = b.clone();
    if let Some(x) = d.sessions.iter_mut().find(|x| x.uptime_s.is_some()) {
        x.uptime_s = Some(1);
    }
    assert!(
        !same_but_clock(&a, &d),
        "a session that came back restarts its uptime"
    );
}
