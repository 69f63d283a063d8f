//! `ws_tokio::load` against `ws_tokio::serve` on 127.0.0.1: every run's counts add up, and
//! failures are counted, not hidden.

use std::net::SocketAddr;
use std::time::Duration;

use ws_tokio::load::{
    K6Scenario, LoadOpts, Report, Target, run_echo, run_handshakes, run_idle, run_k6, run_pipeline,
};
use ws_tokio::{CloseCode, CloseFrame, Message};

/// An echo server on its own thread and runtime (the runs build their own runtimes).
fn echo_server() -> SocketAddr {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            std_listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let _ = ws_tokio::serve(listener, |mut ws, info| async move {
                while let Some(Ok(m)) = info.recv(&mut ws).await {
                    if (m.is_text() || m.is_binary()) && ws.feed(m).await.is_err() {
                        break;
                    }
                }
            })
            .await;
        });
    });
    addr
}

fn opts(addr: SocketAddr) -> LoadOpts {
    LoadOpts::new(Target::from_addr(addr))
        .with_warmup(Duration::from_millis(50))
        .with_duration(Duration::from_millis(300))
}

#[test]
fn closed_loop_echo() {
    let r = run_echo(&opts(echo_server()).with_conns(3).with_size(100)).unwrap();
    assert_eq!(r.errors, 0);
    assert_eq!(r.k6.sessions, 3);
    assert!(r.count > 0 && r.count <= r.k6.msgs_received);
    assert_eq!(r.k6.msgs_sent, r.k6.msgs_received);
    assert_eq!(r.latency.count(), r.count);
    assert_eq!(r.k6.session_duration.count(), 3);
    assert_eq!(r.peak_connections, 3);
    assert!(r.total_secs >= r.secs);
}

#[test]
fn pipelined_echo_answers_every_message() {
    let o = opts(echo_server())
        .with_conns(2)
        .with_size(32)
        .with_inflight(50)
        .with_text(true);
    let r = run_pipeline(&o).unwrap();
    assert_eq!(r.errors, 0, "{}", r.summary());
    assert!(r.k6.msgs_sent > 100);
    // The run drains: every message sent was echoed.
    assert_eq!(r.k6.msgs_sent, r.k6.msgs_received);
    assert_eq!(r.latency.count(), r.count);
    let report = Report::echo(&o, "pipeline", &r);
    assert!(report.text().contains("50 in flight"), "{}", report.text());
}

#[test]
fn handshake_loops() {
    let r = run_handshakes(&opts(echo_server()).with_conns(2)).unwrap();
    assert_eq!(r.errors, 0);
    assert!(r.count > 0);
    assert!(r.k6.sessions >= r.count);
    assert_eq!(r.k6.connecting.count(), r.k6.sessions);
    assert_eq!(r.k6.session_duration.count(), r.k6.sessions);
}

#[test]
fn k6_scenario_sessions_and_messages() {
    let s = K6Scenario::new(Target::from_addr(echo_server()))
        .with_vus(10)
        .with_ramp(Duration::from_millis(200))
        .with_duration(Duration::from_millis(2500))
        .with_session(Duration::from_millis(1200))
        .with_interval(Duration::from_millis(100), Duration::from_millis(200));
    let r = run_k6(&s).unwrap();
    assert_eq!(r.errors, 0);
    // Every user had a first session; each sent several messages in it.
    assert!(r.k6.sessions >= 10, "{}", r.k6.summary());
    assert!(r.k6.msgs_sent >= 30, "{}", r.k6.summary());
    assert_eq!(r.k6.msgs_sent, r.k6.msgs_received);
    assert_eq!(r.k6.round_trip.count(), r.k6.msgs_received);
    assert_eq!(r.k6.session_duration.count(), r.k6.sessions);
    assert_eq!(r.peak_connections, 10);
    let d = r.k6.session_duration.summary();
    // A session lasts its length (close handshake included), never much more.
    assert!(
        d.med >= Duration::from_millis(1100) && d.max < Duration::from_secs(3),
        "{d:?}"
    );
}

#[test]
fn idle_connections_memory() {
    // The server runs in this process: its RSS is ours.
    let r = run_idle(&Target::from_addr(echo_server()), 50, std::process::id(), 1).unwrap();
    assert_eq!((r.opened, r.wanted, r.errors), (50, 50, 0));
    assert_eq!(r.k6.sessions, 50);
    assert!(r.rss_open > 0 && r.rss_used > 0);
}

#[test]
fn nothing_listening_is_an_error() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = run_echo(&opts(addr).with_conns(2)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn bad_settings_are_refused_before_connecting() {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for o in [
        opts(addr).with_conns(0),
        opts(addr).with_conns(ws_tokio::load::MAX_CONNECTIONS + 1),
        opts(addr).with_size((64 << 20) + 1),
        opts(addr).with_inflight(0),
    ] {
        let e = run_echo(&o).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{o:?}");
    }
    let s = K6Scenario::new(Target::from_addr(addr));
    for bad in [
        s.clone().with_vus(0),
        s.clone().with_ramp(Duration::from_secs(60)),
        s.clone()
            .with_interval(Duration::from_secs(2), Duration::from_secs(1)),
    ] {
        assert_eq!(
            run_k6(&bad).unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
    }
}

/// A server that closes every connection with 1011 after its first message.
fn closing_server() -> SocketAddr {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            std_listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let _ = ws_tokio::serve(listener, |mut ws, _| async move {
                if let Some(Ok(Message::Binary(_) | Message::Text(_))) = ws.recv().await {
                    let frame = CloseFrame::new(CloseCode::INTERNAL_ERROR, "no");
                    let _ = ws.close(Some(frame)).await;
                }
            })
            .await;
        });
    });
    addr
}

#[test]
fn closed_connections_count_as_errors() {
    let r = run_echo(&opts(closing_server()).with_conns(4)).unwrap();
    assert_eq!(r.errors, 4, "{}", r.summary());
    assert_eq!(r.k6.msgs_received, 0);
}
