//! The monitor in a real browser: Debian's chromium, driven through chromedriver
//! (WebDriver, fantoccini), against anycastd in a namespace under a real FRR upstream.
//! A wrong password, a viewer refused a drain, clock cells counting on with no push,
//! live values changing when a real server is killed (no reload), a forged CSRF token
//! refused, a drain confirmed in the page that makes FRR lose the route, the layout at
//! 1280x800 and at phone width, undrain, and an idle session sent back to the login. Screenshots of the main views are saved
//! under target/tmp/monitor-screenshots (their paths printed).

mod host;
mod monitor;
mod netns;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anycast_lab::netns::{Netns, veth, wait_until};
use anycast_lab::peers::Frr;
use anycast_lab::uml::guest::in_netns;
use anycast_lab::{Need, require};
use fantoccini::{Client, ClientBuilder, Locator};
use netns::{Daemon, Proc, SiteToml, server};
use serde_json::{Value, json};

const PREFIX: &str = "10.211.4.0/24";
const MONITOR: &str = "https://10.210.0.2:8443";
const STEP: Duration = Duration::from_secs(20);

fn has_route(up: &str) -> bool {
    Command::new("ip")
        .args(["-n", up, "route", "show", PREFIX])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(PREFIX))
}

/// Four sites: this one spilling 20% to idc2, idc4 spilling 35% to idc2, idc3 stale.
const FLEET_PREVIEW: &str = r#"
const peer = (name, load, state, to, share) => ({ name, load, report_age_s: 40, state,
  spilling_to_us: false, rejected_reports: 0, tunnels: [], spilling_to: to, spill_share: share });
render(Object.assign({}, status, {
  local_load: 1.18,
  peers: [peer("idc2", 0.55, "known", [], 0), peer("idc3", 0.9, "stale", [], 0),
          peer("idc4", 1.3, "known", ["idc2"], 0.35)],
  spill: [{ peer: "idc2", share: 0.2, since: null, reason: "", families: ["ipv4"] }],
}));
"#;

type R<T> = Result<T, Box<dyn std::error::Error>>;

/// Polls `check` every 200 ms until it holds or `limit` passes.
async fn until<F, Fut>(what: &str, limit: Duration, mut check: F) -> R<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = R<bool>>,
{
    let end = tokio::time::Instant::now() + limit;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > end {
            return Err(format!("waited {limit:?} for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Clicks what `css` selects. A live push may replace the element between the find
/// and the click (WebDriver's "stale element reference"): it is found again, at most
/// for [`STEP`]; any other error is returned at once.
async fn click(c: &Client, css: &str) -> R<()> {
    let end = tokio::time::Instant::now() + STEP;
    loop {
        let err = match c.find(Locator::Css(css)).await {
            Ok(e) => match e.click().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            },
            Err(e) => e,
        };
        if !err.to_string().contains("stale element") || tokio::time::Instant::now() > end {
            return Err(err.into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text(c: &Client, css: &str) -> R<String> {
    Ok(c.find(Locator::Css(css)).await?.text().await?)
}

async fn shows(c: &Client, css: &str, needle: &str) -> R<()> {
    until(&format!("`{needle}` in {css}"), STEP, || async {
        Ok(text(c, css).await.unwrap_or_default().contains(needle))
    })
    .await
}

async fn shot(c: &Client, dir: &std::path::Path, name: &str) -> R<()> {
    let png = c.screenshot().await?;
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png)?;
    println!("screenshot: {}", path.display());
    Ok(())
}

async fn login(c: &Client, user: &str, password: &str) -> R<()> {
    until("the login form", STEP, || async {
        Ok(c.find(Locator::Css("#login:not([hidden]) #login-user"))
            .await
            .is_ok())
    })
    .await?;
    let u = c.find(Locator::Id("login-user")).await?;
    u.clear().await?;
    u.send_keys(user).await?;
    c.find(Locator::Id("login-password"))
        .await?
        .send_keys(password)
        .await?;
    c.find(Locator::Id("login-submit")).await?.click().await?;
    Ok(())
}

/// `api(method, path)` of the page's own script: the status and the error text.
async fn page_api(c: &Client, script: &str) -> R<(u64, String)> {
    let v = c.execute_async(script, vec![]).await?;
    Ok((
        v[0].as_u64().unwrap_or(0),
        v[1].as_str().unwrap_or("").to_string(),
    ))
}

/// The page's width fits the window (nothing pushes it sideways).
async fn fits(c: &Client, width: u64) -> R<()> {
    let w = c
        .execute("return document.documentElement.scrollWidth", vec![])
        .await?;
    let w = w.as_u64().unwrap_or(u64::MAX);
    if w > width {
        return Err(format!("the page is {w}px wide in a {width}px window").into());
    }
    Ok(())
}

async fn drive(c: &Client, up: &str, shots: &std::path::Path, mut victim: Proc) -> R<()> {
    c.goto(&format!("{MONITOR}/")).await?;
    // A wrong password.
    login(c, monitor::OPERATOR.0, "wrong password").await?;
    shows(c, "#login-error", "wrong user or password").await?;
    shot(c, shots, "login-wrong-password").await?;

    // A viewer sees the site and is refused a drain.
    login(c, monitor::VIEWER.0, monitor::VIEWER.1).await?;
    shows(c, "#vips", "announced").await?;
    shows(c, "#sessions", "Established").await?;
    shows(c, "#who-user", "ann (viewer)").await?;
    if c.find(Locator::Css("button.drain")).await.is_ok() {
        return Err("a viewer is shown a drain button".into());
    }
    let (code, err) = page_api(c, "const done = arguments[0]; api('POST', '/api/drain/web').then(r => done([r.status, r.data.error]));").await?;
    if code != 403 || !err.contains("only an operator") || !has_route(up) {
        return Err(format!("viewer's drain: {code} {err}").into());
    }
    fits(c, 1280).await?;
    shot(c, shots, "dashboard-viewer-1280x800").await?;

    // Clock cells count on in the page with no push: the VIP's "since" moves while the
    // status object stays the one last pushed (a push in between starts the watch over).
    const CLOCK: &str = "const el = document.querySelector('#vips .clock'); \
        if (!el) return false; \
        if (window.seen !== status) { window.seen = status; window.seenText = el.textContent; return false; } \
        return el.textContent !== window.seenText;";
    until("a clock cell counting on without a push", STEP, || async {
        Ok(c.execute(CLOCK, vec![]).await? == Value::Bool(true))
    })
    .await?;

    // A real server killed: the page shows it down, live, without a reload.
    c.execute("window.notReloaded = true", vec![]).await?;
    let killed = std::time::Instant::now();
    victim.kill();
    shows(c, "tr[data-server='10.210.1.11:8080']", "down").await?;
    println!(
        "real server killed -> shown down in the page: {:?}",
        killed.elapsed()
    );
    shows(c, "#summary", "1/2 servers up").await?;
    let same = c
        .execute("return window.notReloaded === true", vec![])
        .await?;
    if same != Value::Bool(true) {
        return Err("the page was reloaded".into());
    }
    c.execute(
        "document.getElementById('servers').scrollIntoView()",
        vec![],
    )
    .await?;
    shot(c, shots, "real-server-down").await?;
    c.execute("window.scrollTo(0, 0)", vec![]).await?;

    // An operator: a forged CSRF token is refused, nothing changes.
    c.find(Locator::Id("logout")).await?.click().await?;
    login(c, monitor::OPERATOR.0, monitor::OPERATOR.1).await?;
    shows(c, "#who-user", "op (operator)").await?;
    let (code, err) = page_api(c, "const done = arguments[0]; const real = me.csrf; me.csrf = 'forged'; api('POST', '/api/drain/web').then(r => { me.csrf = real; done([r.status, r.data.error]); });").await?;
    if code != 403 || !err.contains("CSRF") || !has_route(up) {
        return Err(format!("forged CSRF: {code} {err}").into());
    }

    // Drain, confirmed in the page: FRR loses the route.
    click(c, "button.drain[data-vip='web']").await?;
    until("the confirmation", STEP, || async {
        Ok(c.find(Locator::Css("dialog#confirm[open]")).await.is_ok())
    })
    .await?;
    shot(c, shots, "confirm-drain").await?;
    if !has_route(up) {
        return Err("withdrawn before the confirmation".into());
    }
    c.find(Locator::Id("confirm-ok")).await?.click().await?;
    let confirmed = std::time::Instant::now();
    until("FRR to lose the route", STEP, || async {
        Ok(!has_route(up))
    })
    .await?;
    println!(
        "drain confirmed -> route gone from FRR (shutdown_wait 500ms): {:?}",
        confirmed.elapsed()
    );
    shows(c, "tr[data-vip='web']", "drained").await?;
    shot(c, shots, "drained-operator-1280x800").await?;

    // The fleet drawing with peers, from a made-up status rendered by the page's own
    // code (this lab has one site): arrows and labels stay inside the card. The next
    // live push puts the real status back.
    c.execute(FLEET_PREVIEW, vec![]).await?;
    shows(c, "#fleet", "idc3").await?;
    fits(c, 1280).await?;
    shot(c, shots, "fleet-preview-4-sites").await?;

    // Phone width: one column, nothing wider than the screen.
    c.set_window_size(390, 844).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let inner = c
        .execute("return window.innerWidth", vec![])
        .await?
        .as_u64()
        .unwrap_or(390);
    fits(c, inner).await?;
    shot(c, shots, "phone-390").await?;
    c.set_window_size(1280, 800).await?;

    click(c, "button.undrain[data-vip='web']").await?;
    until("FRR to learn the route again", STEP, || async {
        Ok(has_route(up))
    })
    .await?;

    // Left alone past session_idle: back to the login, told why.
    until(
        "the login after the session expired",
        Duration::from_secs(30),
        || async {
            Ok(text(c, "#login-error")
                .await
                .unwrap_or_default()
                .contains("expired"))
        },
    )
    .await?;
    shot(c, shots, "session-expired").await?;
    Ok(())
}

#[test]
fn netns_browser_monitor_login_live_csrf_drain_expiry() {
    if !require(
        "netns_browser_monitor_login_live_csrf_drain_expiry",
        &[
            Need::Netns,
            Need::Program("/usr/lib/frr/bgpd"),
            Need::Program("python3"),
            Need::Program("chromium"),
            Need::Program("chromedriver"),
        ],
    ) {
        return;
    }
    let up = Netns::create("acbup").unwrap();
    let site = Netns::create("acbsite").unwrap();
    veth(&up, &["10.210.0.1/24"], &site, &["10.210.0.2/24"]).unwrap();
    for a in ["10.210.1.11/32", "10.210.1.12/32"] {
        site.ip(&["addr", "add", a, "dev", "lo"]).unwrap();
    }
    let _frr = Frr::start(
        &up,
        "router bgp 65001\n bgp router-id 10.210.0.1\n no bgp ebgp-requires-policy\n \
         neighbor 10.210.0.2 remote-as 65005\n neighbor 10.210.0.2 timers connect 1\n",
        true,
    )
    .unwrap();
    let victim = server(&site, "10.210.1.11");
    let _other = server(&site, "10.210.1.12");
    let certs = std::env::temp_dir().join(format!("anycastd-browser-certs-{}", std::process::id()));
    monitor::write_tls_files(&certs);
    let tables = format!(
        "\n{}\n",
        monitor::monitor_tables("10.210.0.2:8443", &certs, "8s")
    );
    let daemon = Daemon::start(
        &site,
        "browser",
        &SiteToml {
            address: "10.210.0.2",
            neighbor: "10.210.0.1",
            hold_time: 9,
            connect_retry: Some(1),
            neighbor_keys: "",
            prefix: PREFIX,
            vip: "10.211.4.1",
            servers: &["10.210.1.11", "10.210.1.12"],
            shutdown_wait: "500ms",
            tables: &tables,
        },
    );
    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
            has_route(up.name())
        }),
        "the VIP prefix never reached FRR\n{}",
        daemon.logs()
    );
    let _driver = {
        let c = site
            .command("chromedriver")
            .args(["--port=9515", "--allowed-ips=127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver");
        Proc(Some(c))
    };
    let ready = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        site.exec("ss", &["-ltn", "sport = :9515"])
            .is_ok_and(|o| o.contains("9515"))
    });
    assert!(ready, "chromedriver did not listen");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("monitor-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let up_name = up.name().to_string();
    // The browser session runs in the site's namespace: chromedriver and chromium are
    // there, and so is the monitor.
    let result = in_netns(site.name(), move || -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let caps = json!({
                "browserName": "chrome",
                "acceptInsecureCerts": true,
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                             "--disable-gpu", "--window-size=1280,800", "--hide-scrollbars"]
                }
            });
            let Value::Object(caps) = caps else {
                unreachable!()
            };
            let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect("http://127.0.0.1:9515")
                .await
                .map_err(|e| format!("WebDriver session: {e}"))?;
            let r = drive(&c, &up_name, &shots, victim)
                .await
                .map_err(|e| e.to_string());
            let _ = c.close().await;
            r
        })
    });
    let _ = std::fs::remove_dir_all(&certs);
    if let Err(e) = result {
        panic!("{e}\n{}", daemon.logs());
    }
}
