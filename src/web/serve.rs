//! Serving the router on a TCP listener with the bounds `axum::serve` does not offer: a timeout
//! on reading a request's headers, a cap on open connections, and a graceful shutdown that lets
//! every request in flight finish.
//!
//! axum::serve gives hyper no timer, so hyper's header-read timeout never ran: 300 connections
//! that each sent half a request line were all still held 51 s later. Here each connection is an
//! HTTP/1.1 connection of hyper's own (`http1::Builder` with tokio's timer). Its header timeout
//! also runs between the requests of a kept-alive connection, so an idle connection is closed
//! after the same time; a browser opens a new one when it needs it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How long a client may take to send a request's headers (and a kept-alive connection may stay
/// idle). Ten seconds is long for a request line and a few headers, even over a slow link.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at once. One is a task and a few KB of buffers, so the cap is about file
/// descriptors and fairness: beyond it, new connections wait in the listen backlog until one
/// closes (at the latest after the header timeout, for one that sends nothing).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { header_timeout: DEFAULT_HEADER_TIMEOUT, max_connections: DEFAULT_MAX_CONNECTIONS }
    }
}

/// Serves `router` until `shutdown` completes, then stops accepting (the listener is closed),
/// lets the requests in flight finish (idle connections are closed at once) and returns. Each
/// request carries its client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(listener: TcpListener, router: Router, options: ServeOptions, shutdown: impl Future<Output = ()>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(options.header_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // A free slot first, then a connection: beyond the cap, clients wait in the backlog.
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, addr) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(addr));
            router.clone().oneshot(req)
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Header timeouts, clients that went away: theirs, not ours.
                tracing::debug!("connection from {addr}: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors that concern one connection (it was reset before we took it) are skipped; others, such
/// as running out of file descriptors, would fail again at once, so the loop pauses first.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        return;
    }
    tracing::error!("accepting a connection: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
