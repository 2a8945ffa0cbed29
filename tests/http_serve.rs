//! `web::serve` on a real port: the header-read timeout (slowloris), the connection cap, and the
//! graceful shutdown. Timeouts are small and configured; every wait is bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use flowgate::store::Store;
use flowgate::web::serve::{ServeOptions, serve};
use flowgate::web::{AppState, router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The application, on a store that is never reached: these tests ask only for `/healthz`.
fn app() -> Router {
    router(AppState::new(
        Store::connect_lazy("postgres://postgres@127.0.0.1:1/flowgate").unwrap(),
        "serve-test-token-0123",
    ))
}

/// Serves `app` on a free port until `stop` fires.
async fn start(app: Router, options: ServeOptions) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, options, async move {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: flowgate\r\n\r\n";

/// Reads one response whose body ends with `end`.
async fn response(stream: &mut TcpStream, end: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !String::from_utf8_lossy(&got).ends_with(end) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the response: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    });
    read.await.expect("a response within 5 s");
    String::from_utf8(got).unwrap()
}

/// Whether the server closes the connection within `within` (anything it sends first, a 408
/// say, is read and dropped).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut sink)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Err(_) => false,
    }
}

/// Slowloris: connections that send half a request line and then nothing are closed once the
/// header timeout passes (before, they were held for as long as the client liked), while a
/// client that sends its request is answered meanwhile. A kept-alive connection left idle is
/// closed after the same time.
#[tokio::test]
async fn connections_that_do_not_finish_their_headers_are_closed_after_the_timeout() {
    let timeout = Duration::from_millis(300);
    let (addr, _stop, _server) = start(app(), ServeOptions { header_timeout: timeout, ..Default::default() }).await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: fl").await.unwrap();
        slow.push(s);
    }
    let mut polite = TcpStream::connect(addr).await.unwrap();
    polite.write_all(HEALTHZ).await.unwrap();
    assert!(response(&mut polite, "ok\n").await.starts_with("HTTP/1.1 200 OK"));

    for s in &mut slow {
        assert!(closed_within(s, Duration::from_secs(5)).await, "a slowloris connection was kept");
    }
    let took = started.elapsed();
    assert!(took >= timeout && took < Duration::from_secs(3), "{took:?}");

    let idle_from = Instant::now();
    assert!(closed_within(&mut polite, Duration::from_secs(5)).await, "an idle connection was kept");
    assert!(idle_from.elapsed() < Duration::from_secs(3), "{:?}", idle_from.elapsed());
}

/// Beyond the cap, a new connection waits to be accepted until an open one closes.
#[tokio::test]
async fn connections_beyond_the_cap_wait_for_one_to_close() {
    let options = ServeOptions { max_connections: 1, header_timeout: Duration::from_secs(30) };
    let (addr, _stop, _server) = start(app(), options).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(HEALTHZ).await.unwrap();
    response(&mut first, "ok\n").await;

    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(HEALTHZ).await.unwrap();
    let mut buf = [0u8; 64];
    // Not answered while the first connection is open (a small timeout on a real socket).
    let early = tokio::time::timeout(Duration::from_millis(300), second.read(&mut buf)).await;
    assert!(early.is_err(), "answered beyond the cap: {early:?}");
    drop(first);
    assert!(response(&mut second, "ok\n").await.starts_with("HTTP/1.1 200 OK"));
}

/// Shutdown stops accepting at once, closes idle connections, lets the request in flight finish,
/// and only then returns.
#[tokio::test]
async fn shutdown_finishes_the_request_in_flight_and_refuses_new_connections() {
    let (started_tx, started) = oneshot::channel::<()>();
    let (finish, finished) = oneshot::channel::<()>();
    let hand = std::sync::Arc::new(std::sync::Mutex::new(Some((started_tx, finished))));
    let slow = Router::new().route("/healthz", get(|| async { "ok\n" })).route(
        "/slow",
        get(move || {
            let (started, finish) = hand.lock().unwrap().take().expect("one slow request");
            async move {
                let _ = started.send(());
                let _ = finish.await;
                "done\n"
            }
        }),
    );
    let (addr, stop, server) = start(slow, ServeOptions::default()).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(HEALTHZ).await.unwrap();
    response(&mut idle, "ok\n").await;
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: flowgate\r\n\r\n").await.unwrap();
    started.await.unwrap();

    stop.send(()).unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await, "the idle connection stays open");
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::task::yield_now().await;
    }
    assert!(!server.is_finished(), "returned with a request in flight");
    finish.send(()).unwrap();
    assert!(response(&mut busy, "done\n").await.starts_with("HTTP/1.1 200 OK"));
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("serve returns once it is done").unwrap();
}
