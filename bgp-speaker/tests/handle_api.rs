//! The public handle without a real peer: configuration refusals, route checks,
//! status while the peer is unreachable, and calls after shutdown. Loopback only.

use std::time::Duration;

use bgp_speaker::{
    ConfigError, PeerConfig, PeerState, Route, Speaker, SpeakerConfig, SpeakerError,
};
use ipnet::IpNet;

fn unreachable_peer(name: &str) -> PeerConfig {
    // Nothing listens on 127.0.0.1:1, so every connect is refused at once.
    let mut p = PeerConfig::new(
        name,
        "127.0.0.1".parse().unwrap(),
        65005,
        65001,
        "192.0.2.1".parse().unwrap(),
    );
    p.remote_port = 1;
    p.connect_retry = 1;
    p
}

/// A speaker with `peers` and no listener.
async fn start(peers: Vec<PeerConfig>) -> Result<Speaker, SpeakerError> {
    Speaker::start(SpeakerConfig {
        peers,
        listen: None,
    })
    .await
}

fn vip4() -> IpNet {
    "10.101.4.0/24".parse().unwrap()
}

#[tokio::test]
async fn bad_configuration_is_refused_before_anything_starts() {
    let mut p = unreachable_peer("a");
    p.hold_time = 2;
    let err = start(vec![p]).await.unwrap_err();
    assert!(
        matches!(
            err,
            SpeakerError::Config(ConfigError::HoldTime { hold_secs: 2, .. })
        ),
        "{err}"
    );

    let mut p = unreachable_peer("b");
    p.passive = true;
    let err = start(vec![p]).await.unwrap_err();
    assert!(
        matches!(
            err,
            SpeakerError::Config(ConfigError::PassiveWithoutListener { .. })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn routes_of_a_disabled_family_or_wrong_next_hop_are_refused() {
    let speaker = start(vec![unreachable_peer("a")]).await.unwrap();
    let peer = speaker.peer("a").unwrap().clone();
    let err = peer
        .announce(Route::new("2001:db8:101::/48".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(err, SpeakerError::BadRoute { .. }), "{err}");
    let mut r = Route::new(vip4());
    r.next_hop = Some("2001:db8::1".parse().unwrap());
    assert!(matches!(
        peer.announce(r).await,
        Err(SpeakerError::BadRoute { .. })
    ));
    // The speaker-wide announce skips peers without the family instead of failing.
    speaker
        .announce(Route::new("2001:db8:101::/48".parse().unwrap()))
        .await
        .unwrap();
    speaker.shutdown("test").await;
}

#[tokio::test]
async fn status_reports_an_unreachable_peer_and_keeps_the_routes() {
    let speaker = start(vec![unreachable_peer("a")]).await.unwrap();
    speaker.announce(Route::new(vip4())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = speaker.status().await;
    assert_eq!(st.len(), 1);
    assert!(
        matches!(st[0].state, PeerState::Active | PeerState::Connect),
        "{:?}",
        st[0]
    );
    assert_eq!(st[0].prefixes_announced, 1);
    assert_eq!(
        st[0].prefixes_sent, 0,
        "not Established, nothing on the wire"
    );
    assert_eq!(st[0].uptime, None);
    assert_eq!(st[0].counters.messages_sent, 0);
    speaker.withdraw(vip4()).await.unwrap();
    assert_eq!(speaker.status().await[0].prefixes_announced, 0);
    speaker.shutdown("test").await;
}

#[tokio::test]
async fn calls_after_shutdown_say_the_task_stopped() {
    let speaker = start(vec![unreachable_peer("a")]).await.unwrap();
    let peer = speaker.peers()[0].clone();
    peer.shutdown("bye").await.unwrap();
    let err = peer.withdraw(vip4()).await.unwrap_err();
    assert_eq!(err, SpeakerError::Stopped { peer: "a".into() });
    assert!(speaker.status().await.is_empty());
}

#[tokio::test]
async fn a_stopped_peer_does_not_hold_a_withdraw_back_from_the_others() {
    let mut peers = vec![unreachable_peer("a"), unreachable_peer("b")];
    peers[1].remote_addr = "127.0.0.2".parse().unwrap();
    let speaker = start(peers).await.unwrap();
    speaker.announce(Route::new(vip4())).await.unwrap();
    speaker.peer("a").unwrap().shutdown("gone").await.unwrap();
    let err = speaker.withdraw(vip4()).await.unwrap_err();
    assert_eq!(err, SpeakerError::Stopped { peer: "a".into() });
    let b = speaker.peer("b").unwrap().status().await.unwrap();
    assert_eq!(
        b.prefixes_announced, 0,
        "b got the withdraw although a had stopped"
    );
    speaker.shutdown("test").await;
}

/// The change counter moves with what `status` shows (state, disabled, routes), and
/// stays put while nothing does (a disabled peer makes no connection attempts).
#[tokio::test]
async fn the_change_counter_moves_with_the_status_only() {
    const WAIT: Duration = Duration::from_secs(10);
    let speaker = start(vec![unreachable_peer("a")]).await.unwrap();
    let peer = speaker.peers()[0].clone();
    let mut rx = speaker.changes();
    let mut mine = peer.changes();
    tokio::time::timeout(WAIT, rx.changed())
        .await
        .expect("the peer's first state is a change")
        .unwrap();

    peer.disable("quiet").await.unwrap();
    let stopped = async {
        loop {
            rx.changed().await.unwrap();
            if peer.status().await.unwrap().disabled {
                break;
            }
        }
    };
    tokio::time::timeout(WAIT, stopped)
        .await
        .expect("disabled: a change");
    rx.borrow_and_update();
    let quiet = tokio::time::timeout(Duration::from_secs(2), rx.changed()).await;
    assert!(quiet.is_err(), "a change while nothing changed");

    // An announcement counts (the routes we hold for the peer), on both receivers.
    mine.borrow_and_update();
    speaker.announce(Route::new(vip4())).await.unwrap();
    tokio::time::timeout(WAIT, rx.changed())
        .await
        .expect("announce: a change")
        .unwrap();
    tokio::time::timeout(WAIT, mine.changed())
        .await
        .expect("the peer's own receiver sees it too")
        .unwrap();
    assert_eq!(peer.status().await.unwrap().prefixes_announced, 1);
    // A status ask is no change.
    rx.borrow_and_update();
    for _ in 0..10 {
        peer.status().await.unwrap();
    }
    assert!(!rx.has_changed().unwrap());
    speaker.shutdown("test").await;
}
