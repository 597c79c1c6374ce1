//! serve under idle and slow clients (the review's M4): connections that send
//! nothing, or trickle their headers, are closed after `--header-timeout`, and
//! while a thousand of them are open a node still gets its document.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::receiver::Receiver;

/// Whether the server closed `s` within `within` (EOF or reset on read).
fn closed_within(s: &mut impl Read, within: Duration) -> bool {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    while started.elapsed() < within {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn idle_and_slow_clients_neither_hold_serve_nor_starve_a_node() {
    let bundle = crate::receiver::bundle_for("127.0.0.1:6443");
    let dir = bundle.path().join("b");
    let r = Receiver::start_with(&["--bundle", dir.to_str().unwrap(), "--header-timeout", "2"]);
    let worker = r.mint(&["--scope", "documents:worker"]);
    let addr = format!("127.0.0.1:{}", r.port);

    // A thousand clients that connect and send nothing.
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let started = Instant::now();
    let (status, body) = r.get_as("/v1/documents/worker", Some(&worker));
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    println!(
        "a document with 1000 idle connections open: {} ms",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(2), "{took:?}");

    // They are closed after the timeout (the TLS handshake never started).
    for s in idle.iter_mut().take(5) {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(
            closed_within(s, Duration::from_secs(8)),
            "an idle connection stays open"
        );
    }

    // After TLS, headers trickled one byte every 300 ms: closed too.
    let config = std::sync::Arc::new(kubeboot_core::tls::client_config(Some(&r.ca_hash)).unwrap());
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let request =
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let started = Instant::now();
    let mut cut = false;
    for b in request {
        if tls.write_all(&[*b]).and_then(|()| tls.flush()).is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 64];
        match tls.read(&mut buf) {
            Ok(0) => {
                cut = true;
                break;
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Ok(_) | Err(_) => {
                cut = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let held = started.elapsed();
    assert!(
        cut,
        "a client trickling its headers for {held:?} was never cut off"
    );
    assert!(held < Duration::from_secs(6), "{held:?}");
    drop(idle);
}
