//! `flowgate serve`: the web application and the ingestion API, with the background loops
//! (retention, the demo cluster's traffic, with `--kube` the watchers), until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use flowgate::store::Store;

use super::store::RetentionArgs;
use super::{DbArgs, Fail, notice, parse_duration, redact, runtime};

#[derive(Args)]
// `--cluster` names what --kube watches or what --hubble-relay streams: alone, it does nothing.
#[command(group(clap::ArgGroup::new("cluster_source").args(["kube", "hubble_relay"]).multiple(true)))]
pub(crate) struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Access token (at least 16 characters); generated and printed at start when not given
    #[arg(long, env = "FLOWGATE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Browsers reach this server over HTTPS (a TLS-terminating proxy in front): the session
    /// cookie gets `Secure`, so it is never sent over plain HTTP
    #[arg(long)]
    behind_https: bool,
    /// Load the built-in demo cluster (if the store lacks it) and keep feeding it traffic
    #[arg(long)]
    demo: bool,
    #[command(flatten)]
    retention: RetentionArgs,
    #[command(flatten)]
    limits: ServeLimits,
    #[command(flatten)]
    kube: KubeArgs,
    /// Stream flows from Hubble Relay into --cluster, resuming where the store ends
    #[command(flatten)]
    relay: super::relay::RelayArgs,
    #[command(flatten)]
    db: DbArgs,
}

/// `serve --kube`: the watchers of `flowgate watch`, run beside the web server.
#[derive(Args)]
struct KubeArgs {
    /// Watch the Kubernetes cluster (in-cluster service account or kubeconfig) and record its
    /// objects; /readyz says ready once every kind has listed
    #[arg(long)]
    kube: bool,
    /// The name the watched cluster (--kube) and the cluster whose flows Hubble Relay streams
    /// (--hubble-relay) have in Flowgate: in URLs and `generate --cluster`
    #[arg(long, default_value = "default", requires = "cluster_source")]
    cluster: String,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the in-cluster service account)
    #[arg(long, requires = "kube")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context
    #[arg(long, requires = "kube")]
    context: Option<String>,
    /// How often a changed snapshot is recorded (e.g. 10s, 1m)
    #[arg(long, default_value = "10s", requires = "kube")]
    watch_interval: String,
}

/// What `serve` takes on at once and how long it waits for clients.
#[derive(Args)]
struct ServeLimits {
    /// Flow ingests (POST .../flows) at once; one more is answered 429 with Retry-After
    #[arg(long, default_value_t = flowgate::web::DEFAULT_MAX_INGESTS, value_parser = positive)]
    max_ingests: usize,
    /// Open connections at once; more wait to be accepted
    #[arg(long, default_value_t = flowgate::web::serve::DEFAULT_MAX_CONNECTIONS, value_parser = positive)]
    max_connections: usize,
    /// A client must send a request's headers within this (an idle kept-alive connection is
    /// closed after it too)
    #[arg(long, default_value = "10s")]
    header_timeout: String,
    /// Pages and API requests other than ingests are answered 503 after this
    #[arg(long, default_value = "30s")]
    request_timeout: String,
}

fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a whole number of 1 or more, not {s:?}")),
    }
}

pub(crate) fn run(args: ServeArgs) -> Result<ExitCode, Fail> {
    let ServeArgs { listen, token, behind_https, demo, retention, limits, kube, relay, db } = args;
    let write = retention.write_options();
    let retention = retention.parse()?;
    let relay = relay.config()?;
    let watch_interval = parse_duration("--watch-interval", &kube.watch_interval, std::time::Duration::from_secs(1))?;
    if kube.kube || relay.is_some() {
        flowgate::model::NameRule::Dns1123Subdomain
            .check(&kube.cluster)
            .map_err(|e| Fail(format!("--cluster: {e}")))?;
    }
    let min = std::time::Duration::from_millis(100);
    let serve_options = flowgate::web::serve::ServeOptions {
        header_timeout: parse_duration("--header-timeout", &limits.header_timeout, min)?,
        max_connections: limits.max_connections,
    };
    let request_timeout = parse_duration("--request-timeout", &limits.request_timeout, min)?;
    let rt = runtime()?;
    let store = rt
        .block_on(Store::connect_sized(&db.database_url, flowgate::web::pool_size(limits.max_ingests)))
        .map_err(|e| super::store_err(e).context(format!("connecting to {}", redact(&db.database_url))))?;
    // An empty FLOWGATE_TOKEN (as docker compose passes an unset one) means "generate".
    let (token, generated) = match token.filter(|t| !t.is_empty()) {
        Some(t) if t.len() >= 16 => (t, false),
        Some(_) => return Err(Fail("--token must be at least 16 characters".into())),
        None => (
            flowgate::web::auth::generate_token()
                .map_err(|e| super::runtime_failure(format!("generating a token: {e}")))?,
            true,
        ),
    };
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| Fail(format!("--listen {listen}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| Fail(format!("--listen {listen}: {e}")))?;
        // The cluster's configuration is read before anything is served: a wrong kubeconfig
        // fails the start.
        let watched = match kube.kube {
            true => {
                let client = flowgate::watch::client(kube.kubeconfig.as_deref(), kube.context.clone())
                    .await
                    .map_err(|e| Fail { err: e.context("Kubernetes configuration"), code: 2 })?;
                let id = store.cluster_id(&kube.cluster, true).await.map_err(super::store_err)?;
                Some((client, id))
            }
            false => None,
        };
        let relay_cluster = match &relay {
            Some(_) => Some(store.cluster_id(&kube.cluster, true).await.map_err(super::store_err)?),
            None => None,
        };
        let signalled = shutdown_signal();
        notice(format_args!("flowgate is listening on http://{addr}/"));
        // A token the operator chose is theirs to keep out of logs; only one made here has to be
        // shown, or no one could log in.
        if generated {
            notice(format_args!("open http://{addr}/?token={token} to log in (API: Authorization: Bearer {token})"));
        } else {
            notice(format_args!("log in at http://{addr}/ with the token from --token or FLOWGATE_TOKEN"));
        }
        // One signal stops the server and the background loops together.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let relay_stop = stop_rx.clone();
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let mut background = tokio::task::JoinSet::new();
        background.spawn(flowgate::web::run_retention(
            store.clone(),
            retention,
            flowgate::ingest::Clock::system(),
            std::time::Duration::from_secs(3600),
            stopped(),
        ));
        let mut state = flowgate::web::AppState::new(store, token);
        state.retention = retention;
        state.write = write;
        state.sessions.secure = behind_https;
        state.ingest_slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_ingests));
        state.limits.request_timeout = request_timeout;
        if demo {
            let tick = flowgate::web::demo::TICK.unsigned_abs();
            background.spawn(flowgate::web::run_demo(state.clone(), tick, stopped()));
        }
        if let Some((client, id)) = watched {
            let watcher = flowgate::watch::Watcher::start(&client, &state.metrics);
            state.watching = Some(watcher.synced());
            background.spawn(watcher.run(state.store.clone(), id, watch_interval, stopped()));
            notice(format_args!(
                "watching the cluster as {:?}; a changed snapshot is recorded every {}s",
                kube.cluster,
                watch_interval.as_secs()
            ));
        }
        if let (Some(config), Some(id)) = (relay, relay_cluster) {
            use flowgate::relay::{Since, StreamOptions};
            notice(format_args!(
                "streaming flows from Hubble Relay {} into cluster {:?}",
                config.address, kube.cluster
            ));
            // With nothing stored yet, whatever Relay still buffers within the retention.
            let since = Since::Resume { fallback: retention.keep() };
            let options = StreamOptions { write, ..StreamOptions::new(id, retention, since, true) };
            let meter = flowgate::ingest::Meter::new(&state.metrics, flowgate::metrics::FlowSource::Relay);
            background.spawn(flowgate::relay::follow(state.store.clone(), config, options, meter, relay_stop));
        }
        let app = flowgate::web::router(state);
        flowgate::web::serve::serve(listener, app, serve_options, async move {
            let signal = signalled.await;
            notice(format_args!(
                "flowgate: {signal}: shutting down (no new connections; finishing the requests in flight)"
            ));
            let _ = stop_tx.send(true);
        })
        .await;
        // The loops stop after the pass they are in (a demo tick, a retention run, an import).
        background.join_all().await;
        notice("flowgate: stopped");
        Ok::<_, Fail>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Listens for SIGTERM (what Kubernetes and `docker stop` send) and SIGINT (Ctrl-C) from the
/// call on, and completes at the first. Called before the start lines are printed, so that a
/// signal sent once they are seen always stops the server gracefully.
fn shutdown_signal() -> impl std::future::Future<Output = &'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listening = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
        async move {
            match listening {
                (Ok(mut term), Ok(mut int)) => tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                },
                (Err(e), _) | (_, Err(e)) => {
                    notice(format_args!(
                        "flowgate: cannot listen for SIGTERM ({e}); only SIGINT stops the server gracefully"
                    ));
                    let _ = tokio::signal::ctrl_c().await;
                    "SIGINT"
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
