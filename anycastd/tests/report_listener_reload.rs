//! The report listener follows the config at a reload (SIGHUP to the real daemon, no
//! root: `dataplane = false`, everything on loopback): a reload that adds the site's
//! other director opens it, one that moves it to a port already taken is refused whole
//! (the old config and listener stay), one that removes the last director closes it.

mod host;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anycast_lab::netns::wait_until;
use host::{Api, Daemon, free_ports};

/// `POST /v1/report` with a body that is no report: the status line of the answer, or
/// why there was none.
fn post_garbage(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let body = "not a report";
    write!(
        s,
        "POST /v1/report HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    Ok(answer.lines().next().unwrap_or("").to_string())
}

/// The test daemon's config with a sibling director and the exchange on `port`.
fn with_director(base: &str, port: u16) -> String {
    let site = "[site]\ndirector = \"lb1\"\ndirectors_key = \"directors-of-idc1-0123\"\n";
    format!(
        "{}\n[exchange]\nlisten = \"127.0.0.1:{port}\"\n\n[[director]]\nname = \"lb1b\"\naddress = \"127.0.0.3\"\n",
        base.replacen("[site]\n", site, 1)
    )
}

#[test]
fn the_report_listener_opens_moves_and_closes_with_reloads() {
    let [server, first, second] = free_ports::<3>();
    let d = Daemon::start(
        "report-listener",
        Api::Tcp,
        &[([127, 0, 0, 1], server).into()],
    );
    let base = std::fs::read_to_string(d.config_path()).unwrap();
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    assert!(post_garbage(at(first)).is_err(), "nothing listens before");

    // A sibling director added: reports come, so the listener opens; garbage is
    // answered (refused), not dropped.
    std::fs::write(d.config_path(), with_director(&base, first)).unwrap();
    d.sighup();
    assert!(
        d.log().contains("reload: new config in force"),
        "{}",
        d.log()
    );
    let answered = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        post_garbage(at(first)).is_ok_and(|l| l.starts_with("HTTP/1.1 4"))
    });
    assert!(answered, "{:?}\n{}", post_garbage(at(first)), d.log());

    // Moved to a port another program holds: refused whole; the old listener serves.
    let squatter = TcpListener::bind(at(second)).unwrap();
    std::fs::write(d.config_path(), with_director(&base, second)).unwrap();
    d.sighup();
    assert!(
        d.log()
            .contains("reload refused: cannot open the report listener"),
        "{}",
        d.log()
    );
    assert!(
        post_garbage(at(first)).is_ok_and(|l| l.starts_with("HTTP/1.1 4")),
        "the old listener is gone"
    );
    drop(squatter);

    // The director removed again: no reports come; the listener closes.
    std::fs::write(d.config_path(), &base).unwrap();
    d.sighup();
    let closed = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        post_garbage(at(first)).is_err()
    });
    assert!(closed, "still listening\n{}", d.log());
}
