//! The monitor's live feed against the real daemon (the built binary, no root): with
//! no page open it asks the controller for its status only for the history's samples,
//! however much changes (health checks every 200 ms, a drain and an undrain); with a
//! page open a drain reaches the server-sent events at once. Asks are read from
//! `anycast_monitor_status_asks_total` on /metrics.

mod host;
mod monitor;

use std::time::{Duration, Instant};

use monitor::{OPERATOR, Site, next_status, vip_state};

const WAIT: Duration = Duration::from_secs(15);

async fn status_asks(site: &Site) -> u64 {
    let text = site.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("anycast_monitor_status_asks_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no status asks counter:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_feed_asks_on_changes_only_while_a_page_is_open() {
    let site = Site::start_announced("monitor-feed", "30m", WAIT);
    let op = site.login(OPERATOR.0, OPERATOR.1).await.unwrap();

    // No page open for 12 s: checks every 200 ms, a drain and an undrain. The history
    // samples every 10 s, so at most two asks.
    let window = Duration::from_secs(12);
    let (before, t0) = (status_asks(&site).await, Instant::now());
    assert_eq!(site.post_as("/api/drain/web", &op).await, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(site.post_as("/api/undrain/web", &op).await, 200);
    tokio::time::sleep(window.saturating_sub(t0.elapsed())).await;
    let idle_asks = status_asks(&site).await - before;
    println!(
        "no page open: {idle_asks} status asks in {:?}",
        t0.elapsed()
    );
    assert!(idle_asks <= 2, "{idle_asks} asks with no page open");

    // A page open: its first status at once, then a drain through the monitor.
    let mut feed = site.events(&op).await;
    let mut buf = String::new();
    let first = next_status(&mut feed, &mut buf, WAIT).await;
    assert_eq!(first["site"], "idc1", "{first:#}");
    let asked = Instant::now();
    assert_eq!(site.post_as("/api/drain/web", &op).await, 200);
    loop {
        let st = next_status(&mut feed, &mut buf, WAIT).await;
        if vip_state(&st) == "draining" {
            break;
        }
    }
    let took = asked.elapsed();
    println!("a drain reached the open feed {took:?} after the request");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // With the page open, the checks' changes cost about one ask a second.
    let (before, t0) = (status_asks(&site).await, Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let open_asks = status_asks(&site).await - before;
    println!("page open: {open_asks} status asks in {:?}", t0.elapsed());
    drop(feed);
    assert_eq!(site.post_as("/api/undrain/web", &op).await, 200);
}
