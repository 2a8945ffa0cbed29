//! The `flowgate` command line: argument parsing and printing only; the work is in the library.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use flowgate::enrich::Endpoint;
use flowgate::flows::FlowFormat;
use flowgate::model::{Cidr, PeerSpec};
use flowgate::offline::{self, Inputs, Observed, WorkloadArg};
use flowgate::policy::eval::SideDecision;
use flowgate::policy::generate::{Decisions, Direction, Options, Status, to_yaml};
use flowgate::retention::Retention;
use flowgate::store::retention::Clusters;
use flowgate::store::{Store, StoreError};
use flowgate::topology::TimeBound;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "flowgate",
    version,
    about = "Observed Kubernetes traffic in, verified least-privilege NetworkPolicies out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate one NetworkPolicy per workload from observed flows (YAML to stdout or -o)
    Generate {
        #[command(flatten)]
        sel: Selection,
        /// Write the YAML to this file instead of stdout
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// List the enriched connections as the review tables show them
    Connections {
        #[command(flatten)]
        sel: Selection,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Create or upgrade the database schema
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Record a snapshot of cluster objects in the store (history is kept)
    Import {
        #[arg(long)]
        cluster: String,
        /// When the snapshot was taken (default: now)
        #[arg(long)]
        at: Option<jiff::Timestamp>,
        /// `kubectl get ... -o json` output, YAML, or folders of them
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Enrich flows against the stored inventory and write them to the store
    Ingest {
        #[arg(long)]
        cluster: String,
        /// Flow format: auto, hubble or ndjson
        #[arg(long, default_value = "auto")]
        flow_format: FlowFormat,
        /// Flow files; `-` reads standard input
        #[arg(required = true)]
        paths: Vec<String>,
        /// Keep the cluster's flows this long, counted back from now (e.g. 7d, 24h): older flows are
        /// counted as expired and not stored, and the cluster's older days are removed after the run
        #[arg(long, default_value = "7d")]
        retention: String,
        /// Reject flows dated later than now plus this (a collector's clock running ahead)
        #[arg(long, default_value = "10m")]
        max_skew: String,
        #[arg(long, default_value_t = 0, hide = true)]
        threads: usize,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Run the server: flow ingestion API (and, with the web application, the review UI)
    Serve {
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
        /// Keep flows this long, counted back from now (e.g. 7d, 24h): older posted flows are counted
        /// as expired, and every cluster's older days are removed at start and every hour
        #[arg(long, default_value = "7d")]
        retention: String,
        /// Reject flows dated later than now plus this (a collector's clock running ahead)
        #[arg(long, default_value = "10m")]
        max_skew: String,
        #[command(flatten)]
        limits: ServeLimits,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Watch a live cluster (kubeconfig or in-cluster) and record its objects in the store
    Watch {
        #[arg(long)]
        cluster: String,
        /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the in-cluster service account)
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Kubeconfig context
        #[arg(long)]
        context: Option<String>,
        /// How often a changed snapshot is recorded (e.g. 10s, 1m)
        #[arg(long, default_value = "10s")]
        interval: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Counts of what the store holds for a cluster
    Stats {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Evaluate policies against observed flows: each connection allowed or blocked, and by what
    Check {
        #[command(flatten)]
        input: InputArgs,
        /// NetworkPolicy files or folders (YAML or JSON)
        #[arg(long, required = true, num_args = 1..)]
        policies: Vec<PathBuf>,
        /// Exit 1 if any observed connection would be blocked
        #[arg(long)]
        fail_on_blocked: bool,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        /// Read the connections and inventory from the store for this cluster instead of files
        #[arg(long, conflicts_with_all = ["flows", "inventory"])]
        cluster: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Args)]
struct InputArgs {
    /// Cluster objects: `kubectl get ... -o json` output, YAML, or folders of them
    #[arg(long, num_args = 1..)]
    inventory: Vec<PathBuf>,
    /// Flow files (Hubble JSON or Flowgate NDJSON); `-` reads standard input
    #[arg(long, num_args = 1..)]
    flows: Vec<String>,
    /// Flow format: auto, hubble or ndjson
    #[arg(long, default_value = "auto")]
    flow_format: FlowFormat,
    /// Only flows at or after this time (RFC 3339, or a duration back from the newest flow: 3h, 7d)
    #[arg(long)]
    since: Option<TimeBound>,
    /// Only flows at or before this time (RFC 3339, or a duration back from the newest flow)
    #[arg(long)]
    until: Option<TimeBound>,
    /// Pod and Service address ranges of the cluster, when node podCIDRs do not show them
    #[arg(long, num_args = 1..)]
    cluster_cidr: Vec<Cidr>,
    /// Parser threads (default: one per core)
    #[arg(long, default_value_t = 0, hide = true)]
    threads: usize,
}

#[derive(Args)]
struct Selection {
    #[command(flatten)]
    input: InputArgs,
    /// Namespaces whose workloads get policies
    #[arg(long, num_args = 1.., required_unless_present = "all_namespaces", conflicts_with = "all_namespaces")]
    namespace: Vec<String>,
    /// Every namespace
    #[arg(long, short = 'A')]
    all_namespaces: bool,
    /// Only these workloads: KIND/NAME (in the given namespaces) or KIND/NAMESPACE/NAME
    #[arg(long, num_args = 1..)]
    workload: Vec<WorkloadArg>,
    /// Peers that get no rule: KIND/NAMESPACE/NAME or an IP/CIDR
    #[arg(long, num_args = 1..)]
    exclude: Vec<PeerSpec>,
    /// External ranges that may be reached (CIDR)
    #[arg(long, num_args = 1..)]
    trust: Vec<Cidr>,
    /// Allow unresolved in-cluster addresses too (as /32)
    #[arg(long)]
    include_unresolved: bool,
    /// Do not add the DNS rule (53/UDP and 53/TCP to the cluster DNS)
    #[arg(long)]
    no_dns: bool,
    /// Read connections, inventory and decisions from the store for this cluster instead of files
    #[arg(long, conflicts_with_all = ["flows", "inventory"])]
    cluster: Option<String>,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args, Clone)]
struct DbArgs {
    /// PostgreSQL URL (the database is created if missing)
    #[arg(long, env = "DATABASE_URL", default_value = flowgate::store::DEFAULT_URL, hide_env_values = true)]
    database_url: String,
}

impl InputArgs {
    fn inputs(&self) -> Inputs {
        Inputs {
            inventory: self.inventory.clone(),
            flows: self.flows.clone(),
            format: self.flow_format,
            since: self.since,
            until: self.until,
            cluster_cidrs: self.cluster_cidr.iter().map(|c| c.net()).collect(),
            threads: self.threads,
        }
    }
}

/// Why a command failed, and its exit code: 2 for bad input (the message says where and why),
/// 3 for the store or the runtime (a refused database connection is not the user's input).
struct Fail {
    msg: String,
    code: u8,
}

/// Bad input: exit 2. (A function beside the struct, so that `Fail(message)` reads as before.)
#[allow(non_snake_case)]
fn Fail(msg: String) -> Fail {
    Fail { msg, code: 2 }
}

/// The store or the runtime failed: exit 3.
fn runtime_failure(msg: String) -> Fail {
    Fail { msg, code: 3 }
}

impl From<offline::OfflineError> for Fail {
    fn from(e: offline::OfflineError) -> Self {
        Fail(e.to_string())
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "flowgate=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(Fail { msg, code }) => {
            eprintln!("flowgate: error: {msg}");
            ExitCode::from(code)
        }
    }
}

/// `--retention` (a positive duration such as 7d or 24h) and `--max-skew` (a duration, 0s or more).
fn parse_retention(keep: &str, skew: &str) -> Result<Retention, Fail> {
    let keep = match keep.parse::<TimeBound>() {
        Ok(TimeBound::Ago(d)) if d.is_positive() => d,
        _ => return Err(Fail(format!("--retention {keep:?}: expected a duration such as 7d or 24h"))),
    };
    let skew = match skew.parse::<TimeBound>() {
        Ok(TimeBound::Ago(d)) => d,
        _ => return Err(Fail(format!("--max-skew {skew:?}: expected a duration such as 10m or 0s"))),
    };
    Retention::new(keep, skew).map_err(|e| Fail(e.to_string()))
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

/// A duration flag of at least `min` (`10s`, `2m`).
fn parse_duration(flag: &str, value: &str, min: std::time::Duration) -> Result<std::time::Duration, Fail> {
    match value.parse::<TimeBound>() {
        Ok(TimeBound::Ago(d)) if d.unsigned_abs() >= min => Ok(d.unsigned_abs()),
        _ => Err(Fail(format!("{flag} {value:?}: expected a duration of at least {min:?}, such as 10s"))),
    }
}

/// Completes at the first SIGTERM (what Kubernetes and `docker stop` send) or SIGINT (Ctrl-C).
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(e) => {
                eprintln!("flowgate: cannot listen for SIGTERM ({e}); only SIGINT stops the server gracefully");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Fail> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| runtime_failure(format!("starting the async runtime: {e}")))
}

fn connect(rt: &tokio::runtime::Runtime, db: &DbArgs) -> Result<Store, Fail> {
    rt.block_on(Store::connect(&db.database_url))
        .map_err(|e| runtime_failure(format!("{e} ({})", redact(&db.database_url))))
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// What the store said: the user's input (an unknown cluster, a stale version) or its own failure.
fn store_err(e: StoreError) -> Fail {
    match e {
        StoreError::UnknownCluster(_) | StoreError::Invalid(_) | StoreError::Conflict { .. } => Fail(e.to_string()),
        StoreError::Db(_) | StoreError::Migrate(_) | StoreError::Corrupt(_) => runtime_failure(e.to_string()),
    }
}

fn run(cli: Cli) -> Result<ExitCode, Fail> {
    match cli.command {
        Command::Migrate { db } => {
            let rt = runtime()?;
            connect(&rt, &db)?;
            eprintln!("database is up to date ({})", redact(&db.database_url));
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { cluster, at, paths, db } => {
            let loaded = flowgate::inventory::load_paths(&paths).map_err(|e| Fail(e.to_string()))?;
            for e in &loaded.errors {
                eprintln!("error: {e}");
            }
            print_warnings(&loaded.warnings);
            let rt = runtime()?;
            let store = connect(&rt, &db)?;
            let at = at.unwrap_or_else(jiff::Timestamp::now);
            let report = rt.block_on(async {
                let id = store.cluster_id(&cluster, true).await?;
                store.import(id, &loaded.objects, at).await
            });
            let report = report.map_err(store_err)?;
            print_warnings(&report.warnings);
            let mut rejected = String::new();
            if !loaded.errors.is_empty() {
                rejected += &format!("; {} documents rejected", loaded.errors.len());
            }
            let skipped = loaded.skipped as u64 + report.skipped;
            if skipped > 0 {
                rejected += &format!("; {skipped} objects skipped (invalid names)");
            }
            let warned = loaded.warnings.len() + report.warnings.len();
            if warned > 0 {
                rejected += &format!("; {warned} warnings");
            }
            eprintln!(
                "imported {} objects into cluster {cluster}: {} added, {} updated, {} unchanged, {} closed{rejected}",
                loaded.objects.len().saturating_sub(report.skipped as usize),
                report.added,
                report.updated,
                report.unchanged,
                report.closed,
            );
            if report.reattributed > 0 {
                eprintln!(
                    "{} stored flows from addresses that were unresolved now have their workloads",
                    report.reattributed
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { cluster, flow_format, paths, retention, max_skew, threads, db } => {
            let retention = parse_retention(&retention, &max_skew)?;
            for p in paths.iter().filter(|p| *p != "-") {
                if !std::path::Path::new(p).exists() {
                    return Err(Fail(format!("{p}: no such file")));
                }
            }
            let rt = runtime()?;
            let store = connect(&rt, &db)?;
            let threads =
                if threads > 0 { threads } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) };
            let report = rt.block_on(async {
                let id = store.cluster_id(&cluster, true).await?;
                let inv = store.load_inventory(id).await?;
                let sources = paths.into_iter().map(flowgate::ingest::Source::Path).collect();
                let now = jiff::Timestamp::now();
                let options = flowgate::ingest::Options { format: flow_format, threads, retention, now };
                let report =
                    flowgate::ingest::ingest_sources(&store, id, std::sync::Arc::new(inv), sources, &options).await?;
                let removed = store.apply_retention(Clusters::One(id), now, &retention).await?;
                Ok::<_, flowgate::ingest::IngestError>((report, removed))
            });
            let (report, removed) = report.map_err(|e| Fail(e.to_string()))?;
            for e in &report.errors {
                eprintln!("{}:{}: {}", e.source, e.line, e.reason);
            }
            eprintln!("{report}");
            if !removed.is_empty() {
                eprintln!("retention: {removed}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { listen, token, behind_https, demo, retention, max_skew, limits, db } => {
            let retention = parse_retention(&retention, &max_skew)?;
            let min = std::time::Duration::from_millis(100);
            let serve_options = flowgate::web::serve::ServeOptions {
                header_timeout: parse_duration("--header-timeout", &limits.header_timeout, min)?,
                max_connections: limits.max_connections,
            };
            let request_timeout = parse_duration("--request-timeout", &limits.request_timeout, min)?;
            let rt = runtime()?;
            let store = rt
                .block_on(Store::connect_sized(&db.database_url, flowgate::web::pool_size(limits.max_ingests)))
                .map_err(|e| Fail(format!("{e} ({})", redact(&db.database_url))))?;
            // An empty FLOWGATE_TOKEN (as docker compose passes an unset one) means "generate".
            let (token, generated) = match token.filter(|t| !t.is_empty()) {
                Some(t) if t.len() >= 16 => (t, false),
                Some(_) => return Err(Fail("--token must be at least 16 characters".into())),
                None => {
                    (flowgate::web::auth::generate_token().map_err(|e| Fail(format!("generating a token: {e}")))?, true)
                }
            };
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::bind(listen).await.map_err(|e| Fail(format!("--listen {listen}: {e}")))?;
                let addr = listener.local_addr().map_err(|e| Fail(format!("--listen {listen}: {e}")))?;
                eprintln!("flowgate is listening on http://{addr}/");
                // A token the operator chose is theirs to keep out of logs; only one made here
                // has to be shown, or no one could log in.
                if generated {
                    eprintln!("open http://{addr}/?token={token} to log in (API: Authorization: Bearer {token})");
                } else {
                    eprintln!("log in at http://{addr}/ with the token from --token or FLOWGATE_TOKEN");
                }
                // One signal stops the server and the background loops together.
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
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
                state.sessions.secure = behind_https;
                state.ingest_slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_ingests));
                state.limits.request_timeout = request_timeout;
                if demo {
                    let tick = flowgate::web::demo::TICK.unsigned_abs();
                    background.spawn(flowgate::web::run_demo(state.clone(), tick, stopped()));
                }
                let app = flowgate::web::router(state);
                flowgate::web::serve::serve(listener, app, serve_options, async move {
                    let signal = shutdown_signal().await;
                    eprintln!(
                        "flowgate: {signal}: shutting down (no new connections; finishing the requests in flight)"
                    );
                    let _ = stop_tx.send(true);
                })
                .await;
                // The loops stop after the pass they are in (a demo tick, a retention run).
                background.join_all().await;
                eprintln!("flowgate: stopped");
                Ok::<_, Fail>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch { cluster, kubeconfig, context, interval, db } => {
            let interval = match interval.parse::<TimeBound>() {
                Ok(TimeBound::Ago(d)) if d.as_secs() >= 1 => d.unsigned_abs(),
                _ => {
                    return Err(Fail(format!(
                        "--interval {interval:?}: expected a duration of at least 1s, such as 10s"
                    )));
                }
            };
            let rt = runtime()?;
            let store = connect(&rt, &db)?;
            rt.block_on(async move {
                let options = kube::config::KubeConfigOptions { context, ..Default::default() };
                let config = match &kubeconfig {
                    Some(path) => {
                        let kc = kube::config::Kubeconfig::read_from(path)
                            .map_err(|e| Fail(format!("--kubeconfig {}: {e}", path.display())))?;
                        kube::Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| e.to_string())
                    }
                    None if options.context.is_some() => {
                        kube::Config::from_kubeconfig(&options).await.map_err(|e| e.to_string())
                    }
                    None => kube::Config::infer().await.map_err(|e| e.to_string()),
                }
                .map_err(|e| Fail(format!("Kubernetes configuration: {e}")))?;
                let client = kube::Client::try_from(config).map_err(|e| Fail(format!("Kubernetes client: {e}")))?;
                let id = store.cluster_id(&cluster, true).await.map_err(store_err)?;
                eprintln!(
                    "watching the cluster as {cluster:?}; a changed snapshot is recorded every {}s",
                    interval.as_secs()
                );
                flowgate::watch::watch(client, store, id, interval, |r, n| {
                    print_warnings(&r.warnings);
                    let skipped =
                        if r.skipped > 0 { format!(", {} skipped (invalid names)", r.skipped) } else { String::new() };
                    eprintln!(
                        "recorded {} objects: {} added, {} updated, {} closed{skipped}",
                        n.saturating_sub(r.skipped as usize),
                        r.added,
                        r.updated,
                        r.closed
                    );
                })
                .await
                .map_err(store_err)
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { cluster, json, db } => {
            let rt = runtime()?;
            let store = connect(&rt, &db)?;
            let stats = rt
                .block_on(async {
                    let id = store.cluster_id(&cluster, false).await?;
                    store.stats(id).await
                })
                .map_err(store_err)?;
            let out = if json {
                serde_json::to_string_pretty(&stats).map_err(|e| Fail(e.to_string()))? + "\n"
            } else {
                format!(
                    "cluster:        {cluster}\nflows:          {}\nconnections:    {}\nworkloads:      {}\npods:           {}\nunresolved IPs: {}\ntime range:     {} .. {}\n",
                    stats.flows,
                    stats.connections,
                    stats.workloads,
                    stats.pods,
                    stats.unresolved_ips,
                    stats.first_flow.as_deref().unwrap_or("-"),
                    stats.last_flow.as_deref().unwrap_or("-")
                )
            };
            write_stdout(out.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate { sel, output } if sel.cluster.is_some() => {
            let r = review_from_store(&sel)?;
            finish_generate(r.generation, r.verification, output)
        }
        Command::Generate { sel, output } => {
            let (obs, opts) = observe_selection(&sel)?;
            let (generation, verification) = offline::generate_and_verify(&obs, &opts);
            finish_generate(generation, verification, output)
        }
        Command::Connections { sel, json } => {
            // From files or from the store, the same rows: the review's, over its connections.
            let (generation, conns) = if sel.cluster.is_some() {
                let r = review_from_store(&sel)?;
                (r.generation, r.connections)
            } else {
                let (obs, opts) = observe_selection(&sel)?;
                (flowgate::policy::generate::generate(&obs.inventory, &obs.connections, &opts), obs.connections)
            };
            let mut out = String::new();
            if json {
                let rows: Vec<serde_json::Value> = generation
                    .review
                    .iter()
                    .map(|r| {
                        let stats = &conns.map[&r.key];
                        let peer = if r.direction == Direction::Ingress { &r.key.src } else { &r.key.dst };
                        serde_json::json!({
                            "workload": r.workload.to_string(),
                            "direction": r.direction,
                            "peer": peer.label(),
                            "peer_class": peer.class(),
                            "src": r.key.src,
                            "dst": r.key.dst,
                            "port": r.key.port,
                            "protocol": r.key.protocol,
                            "flows": stats.flows,
                            "dropped": stats.dropped,
                            "first_seen": stats.first_seen.to_string(),
                            "last_seen": stats.last_seen.to_string(),
                            "processes": stats.processes,
                            "services": stats.services,
                            "status": r.status.kind(),
                            "reason": r.status.reason(),
                            "decision": r.status.to_string(),
                            "undecided": r.undecided,
                        })
                    })
                    .collect();
                out = serde_json::to_string_pretty(&rows).map_err(|e| Fail(e.to_string()))?;
                out.push('\n');
            } else {
                out.push_str(
                    "WORKLOAD\tDIRECTION\tPEER\tCLASS\tPORT\tFLOWS\tFIRST SEEN\tLAST SEEN\tPROCESS\tDECISION\n",
                );
                for r in &generation.review {
                    let stats = &conns.map[&r.key];
                    let peer = if r.direction == Direction::Ingress { &r.key.src } else { &r.key.dst };
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}/{}\t{}\t{}\t{}\t{}\t{}\n",
                        r.workload,
                        direction(r.direction),
                        peer.label(),
                        peer.class(),
                        r.key.port,
                        r.key.protocol,
                        stats.flows,
                        stats.first_seen,
                        stats.last_seen,
                        if stats.processes.is_empty() {
                            "-".to_string()
                        } else {
                            stats.processes.iter().cloned().collect::<Vec<_>>().join(",")
                        },
                        if r.undecided { format!("{} [direction undecided]", r.status) } else { r.status.to_string() }
                    ));
                }
            }
            write_stdout(out.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { input, policies, fail_on_blocked, json, cluster, db } => {
            let (inventory, conns) = match &cluster {
                Some(c) => connections_from_store(c, &input, &db)?,
                None => {
                    let obs = observe(&input)?;
                    (obs.inventory, obs.connections)
                }
            };
            let extra = flowgate::inventory::load_paths(&policies).map_err(|e| Fail(e.to_string()))?;
            for e in &extra.errors {
                eprintln!("error: {e}");
            }
            print_warnings(&extra.warnings);
            let in_force = offline::policies_in_force(&inventory, &extra);
            let (checked, warnings) = offline::check(&inventory, &conns, &in_force);
            for w in warnings {
                eprintln!("warning: {w}");
            }
            let blocked = checked.iter().filter(|c| !c.decision.allowed && !c.from_node).count();
            let not_subject = checked.iter().filter(|c| !c.decision.allowed && c.from_node).count();
            let mut out = String::new();
            if json {
                let rows: Vec<serde_json::Value> = checked
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "src": c.key.src, "dst": c.key.dst, "port": c.key.port, "protocol": c.key.protocol,
                            "flows": c.stats.flows,
                            "verdict": verdict(c),
                            "egress": side(&c.decision.egress),
                            "ingress": side(&c.decision.ingress),
                        })
                    })
                    .collect();
                out = serde_json::to_string_pretty(&rows).map_err(|e| Fail(e.to_string()))?;
                out.push('\n');
            } else {
                out.push_str("SOURCE\tDESTINATION\tPORT\tFLOWS\tVERDICT\tEGRESS\tINGRESS\n");
                for c in &checked {
                    out.push_str(&format!(
                        "{}\t{}\t{}/{}\t{}\t{}\t{}\t{}\n",
                        c.key.src,
                        c.key.dst,
                        c.key.port,
                        c.key.protocol,
                        c.stats.flows,
                        verdict(c),
                        side(&c.decision.egress),
                        side(&c.decision.ingress)
                    ));
                }
            }
            write_stdout(out.as_bytes())?;
            eprintln!(
                "checked {} connections against {} policies: {} allowed, {} blocked, {} from nodes (not subject to policy)",
                checked.len(),
                in_force.len(),
                checked.len() - blocked - not_subject,
                blocked,
                not_subject
            );
            Ok(if fail_on_blocked && blocked > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
    }
}

fn finish_generate(
    generation: flowgate::policy::generate::Generation,
    verification: flowgate::policy::verify::Verification,
    output: Option<PathBuf>,
) -> Result<ExitCode, Fail> {
    let yaml = to_yaml(&generation.policies).map_err(Fail)?;
    match &output {
        Some(path) => std::fs::write(path, &yaml).map_err(|e| Fail(format!("{}: {e}", path.display())))?,
        None => write_stdout(yaml.as_bytes())?,
    }
    for w in &generation.warnings {
        eprintln!("warning: {w}");
    }
    for w in &verification.warnings {
        eprintln!("warning: {w}");
    }
    let allowed = generation.review.iter().filter(|r| r.status == Status::Allowed).count();
    let excluded = generation.review.iter().filter(|r| matches!(r.status, Status::Excluded(_))).count();
    eprintln!(
        "generated {} policies from {} connections ({} allowed, {} excluded)",
        generation.policies.len(),
        generation.review.len(),
        allowed,
        excluded
    );
    eprintln!(
        "verified: {} allowed connections allowed, {} excluded connections blocked, {} mismatches{}",
        verification.allowed,
        verification.blocked,
        verification.mismatches.len(),
        if verification.not_evaluated > 0 {
            format!(" ({} node connections need no rule)", verification.not_evaluated)
        } else {
            String::new()
        }
    );
    for (row, d) in &verification.mismatches {
        eprintln!(
            "MISMATCH: {} {} {}:{}/{} expected {} but the policies {}",
            row.workload,
            direction(row.direction),
            peer_of_row(row.direction, &row.key.src, &row.key.dst),
            row.key.port,
            row.key.protocol,
            row.status,
            if d.allowed { "allow it" } else { "block it" }
        );
    }
    Ok(if verification.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn verdict(c: &offline::Checked) -> &'static str {
    match (c.decision.allowed, c.from_node) {
        (true, _) => "allowed",
        (false, true) => "not subject (node)",
        (false, false) => "BLOCKED",
    }
}

fn side(s: &SideDecision) -> String {
    match s {
        SideDecision::NotApplicable => "-".into(),
        SideDecision::NotIsolated => "not isolated".into(),
        SideDecision::AllowedBy(p) => format!("allowed by {}", p.join(",")),
        SideDecision::Blocked { isolated_by } => format!("blocked (isolated by {})", isolated_by.join(",")),
    }
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

fn peer_of_row<'a>(d: Direction, src: &'a Endpoint, dst: &'a Endpoint) -> String {
    match d {
        Direction::Ingress => format!("from {}", src.label()),
        Direction::Egress => format!("to {}", dst.label()),
    }
}

fn write_stdout(bytes: &[u8]) -> Result<(), Fail> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Fail(format!("writing output: {e}"))),
    }
}

fn observe(input: &InputArgs) -> Result<Observed, Fail> {
    if input.flows.is_empty() {
        return Err(Fail("--flows is required (or --cluster to read from the store)".into()));
    }
    let obs = offline::observe(&input.inputs())?;
    report_inputs(&obs);
    if obs.flows.flows == 0 && obs.flows.errors > 0 {
        return Err(Fail(format!("no valid flow in the input ({} malformed records)", obs.flows.errors)));
    }
    Ok(obs)
}

/// How many warnings are printed; the rest are counted. A damaged inventory can have one per
/// object, and the first few say what is wrong.
const SHOWN_WARNINGS: usize = 20;

fn print_warnings<W: std::fmt::Display>(warnings: &[W]) {
    for w in warnings.iter().take(SHOWN_WARNINGS) {
        eprintln!("warning: {w}");
    }
    if warnings.len() > SHOWN_WARNINGS {
        eprintln!("warning: ... and {} more", warnings.len() - SHOWN_WARNINGS);
    }
}

fn report_inputs(obs: &Observed) {
    for e in &obs.loaded.errors {
        eprintln!("error: {e}");
    }
    print_warnings(&obs.loaded.warnings);
    for n in &obs.inventory.notes {
        eprintln!("note: {}", n.0);
    }
    let skipped = match obs.loaded.skipped {
        0 => String::new(),
        n => format!(", {n} skipped (invalid names)"),
    };
    if !obs.loaded.ignored.is_empty() {
        let ignored: Vec<String> = obs.loaded.ignored.iter().map(|(k, n)| format!("{n} {k}")).collect();
        eprintln!("inventory: {} objects read{skipped}, ignored: {}", obs.loaded.objects.len(), ignored.join(", "));
    } else if obs.loaded.files > 0 {
        eprintln!("inventory: {} objects read{skipped}", obs.loaded.objects.len());
    }
    // The summary's Display lists the kept `FILE:LINE: reason` errors after its counts.
    eprintln!("{}", obs.flows);
    let s = &obs.settled;
    if s.replies + s.requests + s.undecided > 0 {
        eprintln!(
            "direction: {} flows without is_reply or telling TCP flags: {} replies (dropped), {} requests, {} undecided (flagged; never a rule for an ephemeral port)",
            s.replies + s.requests + s.undecided,
            s.replies,
            s.requests,
            s.undecided
        );
    }
    if s.identities + s.unmatched_identities > 0 {
        eprintln!(
            "identity: {} flows carried a pod identity from an address no pod holds: {} matched a workload, {} matched none (unresolved)",
            s.identities + s.unmatched_identities,
            s.identities,
            s.unmatched_identities
        );
    }
    if !obs.connections.inferred.is_empty() {
        let mut by_how: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        // DaemonSets folded from their pods are listed below, with the count.
        for (w, how) in
            obs.connections.inferred.iter().filter(|(_, how)| **how != flowgate::enrich::Inference::SameLabels)
        {
            by_how.entry(how.describe()).or_default().push(w.to_string());
        }
        for (how, ws) in by_how {
            let shown = ws.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
            let more = if ws.len() > 10 { format!(" and {} more", ws.len() - 10) } else { String::new() };
            eprintln!("inferred from flow metadata ({how}): {shown}{more}");
        }
    }
    for (ds, pods) in &s.daemonsets {
        eprintln!("inferred: {ds} from {pods} pods with one label set");
    }
    if obs.connections.outside_window > 0 {
        eprintln!("{} flows outside --since/--until left out", obs.connections.outside_window);
    }
}

fn observe_selection(sel: &Selection) -> Result<(Observed, Options), Fail> {
    for ns in &sel.namespace {
        flowgate::model::Name::namespace(ns).map_err(|e| Fail(format!("--namespace: {e}")))?;
    }
    let obs = observe(&sel.input)?;
    let namespaces: Option<BTreeSet<String>> = (!sel.all_namespaces).then(|| sel.namespace.iter().cloned().collect());
    let workloads = offline::resolve_workloads(&obs.connections.catalog, namespaces.as_ref(), &sel.workload)?;
    let opts = Options {
        namespaces,
        workloads,
        decisions: Decisions {
            exclude: sel.exclude.iter().cloned().collect(),
            trust: sel.trust.iter().cloned().collect(),
            include_unresolved: Default::default(),
            include_all_unresolved: sel.include_unresolved,
        },
        per_workload: Default::default(),
        dns: !sel.no_dns,
    };
    Ok((obs, opts))
}

/// `generate --cluster`, `connections --cluster`: the same review, from the store and its decisions.
fn review_from_store(sel: &Selection) -> Result<flowgate::review::Reviewed, Fail> {
    let cluster = sel.cluster.as_deref().unwrap_or_default();
    let [namespace] = sel.namespace.as_slice() else {
        return Err(Fail("--cluster takes exactly one --namespace".into()));
    };
    flowgate::model::Name::namespace(namespace).map_err(|e| Fail(format!("--namespace: {e}")))?;
    let rt = runtime()?;
    let store = connect(&rt, &sel.db)?;
    let extra = Decisions {
        exclude: sel.exclude.iter().cloned().collect(),
        trust: sel.trust.iter().cloned().collect(),
        include_unresolved: Default::default(),
        include_all_unresolved: sel.include_unresolved,
    };
    rt.block_on(async {
        let id = store.cluster_id(cluster, false).await.map_err(store_err)?;
        let newest = store.newest_flow(id).await.map_err(store_err)?;
        let since = sel.input.since.and_then(|b| b.resolve(newest));
        let until = sel.input.until.and_then(|b| b.resolve(newest));
        // Resolve --workload against what the store knows of the namespace.
        let inv = store.load_inventory(id).await.map_err(store_err)?;
        let catalog = store.load_catalog(id, &inv).await.map_err(store_err)?;
        let ns = BTreeSet::from([namespace.clone()]);
        let workloads = offline::resolve_workloads(&catalog, Some(&ns), &sel.workload)?;
        let target = flowgate::review::Target::Namespace { namespace, only: workloads.as_ref() };
        let r = flowgate::review::review(&store, id, &inv, target, since, until, &extra, !sel.no_dns)
            .await
            .map_err(store_err)?;
        for n in &inv.notes {
            eprintln!("note: {}", n.0);
        }
        eprintln!("store: {} connections in the window", r.connections.map.len());
        Ok(r)
    })
}

/// `check --cluster`: every connection of the cluster in the window, from the store, settled as
/// the offline pipeline settles a file's.
fn connections_from_store(
    cluster: &str,
    input: &InputArgs,
    db: &DbArgs,
) -> Result<(flowgate::inventory::Inventory, flowgate::topology::Connections), Fail> {
    let rt = runtime()?;
    let store = connect(&rt, db)?;
    rt.block_on(async {
        let id = store.cluster_id(cluster, false).await.map_err(store_err)?;
        let newest = store.newest_flow(id).await.map_err(store_err)?;
        let since = input.since.and_then(|b| b.resolve(newest));
        let until = input.until.and_then(|b| b.resolve(newest));
        let inv = store.load_inventory(id).await.map_err(store_err)?;
        let catalog = store.load_catalog(id, &inv).await.map_err(store_err)?;
        let mut conns = store
            .connections(id, flowgate::store::query::Scope::All, since, until, catalog)
            .await
            .map_err(store_err)?;
        conns.settle(&inv);
        eprintln!("store: {} connections in the window", conns.map.len());
        Ok((inv, conns))
    })
}
