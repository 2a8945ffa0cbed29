//! A TCP proxy in front of the machine's PostgreSQL that a test can cut and restore: "PostgreSQL
//! stopped mid-run" without stopping the server other tests (and other people) are using. Cut,
//! it drops every connection it carries and closes each new one at once, counting them, so a
//! test can wait for a client to have tried again; restored, it carries new connections again.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    carried: Arc<Mutex<Vec<AbortHandle>>>,
    turned_away: watch::Receiver<u64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let carried: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (count, turned_away) = watch::channel(0u64);
        let accept = tokio::spawn({
            let (up, carried) = (up.clone(), carried.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        count.send_modify(|n| *n += 1);
                        continue;
                    }
                    let pipe = tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                        let mut client = client;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    });
                    carried.lock().unwrap().push(pipe.abort_handle());
                }
            }
        });
        Proxy { addr, up, carried, turned_away, accept }
    }

    /// PostgreSQL "stops": the connections it carries are dropped, new ones closed at once.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for pipe in self.carried.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    /// PostgreSQL is "back".
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Waits until `n` connections in all were turned away while cut (a client tried again).
    pub async fn turned_away(&self, n: u64, within: Duration) {
        let mut rx = self.turned_away.clone();
        let waited = tokio::time::timeout(within, rx.wait_for(|c| *c >= n)).await.is_ok();
        assert!(waited, "fewer than {n} connection attempts within {within:?} ({})", *rx.borrow());
    }

    /// A URL to `database` through the proxy.
    pub fn url(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@{}/{database}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// The address and database of a `#[sqlx::test]` pool, for a proxy in front of it.
pub fn upstream(pool: &sqlx::PgPool) -> (SocketAddr, String, String) {
    let o = pool.connect_options();
    let host = match o.get_host() {
        "localhost" => "127.0.0.1",
        h => h,
    };
    let addr = format!("{host}:{}", o.get_port()).parse().expect("PostgreSQL over TCP at an IP address");
    (addr, o.get_username().to_string(), o.get_database().expect("a test database").to_string())
}
