//! The store's commands: `migrate`, `import` (a snapshot of cluster objects), `ingest` (flow files
//! into the store) and `stats`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use flowgate::flows::FlowFormat;
use flowgate::retention::Retention;
use flowgate::store::retention::Clusters;
use flowgate::topology::TimeBound;

use super::{DbArgs, Fail, connect, print_warnings, redact, runtime, store_err, to_json, write_stdout};

#[derive(Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
pub(crate) struct ImportArgs {
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
}

#[derive(Args)]
pub(crate) struct IngestArgs {
    #[arg(long)]
    cluster: String,
    /// Flow format: auto, hubble or ndjson
    #[arg(long, default_value = "auto")]
    flow_format: FlowFormat,
    /// Flow files; `-` reads standard input
    #[arg(required_unless_present = "hubble_relay", conflicts_with = "hubble_relay")]
    paths: Vec<String>,
    #[command(flatten)]
    relay: super::relay::RelayArgs,
    /// With --hubble-relay: the flows Relay still buffers from this long ago (e.g. 1h, 30m)
    #[arg(long, default_value = "1h", requires = "hubble_relay")]
    since: String,
    #[command(flatten)]
    retention: RetentionArgs,
    #[arg(long, default_value_t = 0, hide = true)]
    threads: usize,
    #[command(flatten)]
    db: DbArgs,
}

/// How long flows are kept, and how far ahead of now a flow may be dated.
#[derive(Args)]
pub(crate) struct RetentionArgs {
    /// Keep flows this long, counted back from now (e.g. 7d, 24h): older flows are counted as
    /// expired and not stored, and older days are removed (by `ingest` after the run, by `serve`
    /// at start and every hour)
    #[arg(long = "retention", default_value = "7d")]
    keep: String,
    /// Reject flows dated later than now plus this (a collector's clock running ahead)
    #[arg(long, default_value = "10m")]
    max_skew: String,
    /// Keep hourly connection aggregates this long (at least 1d); older days are kept as daily
    /// ones, and windows reaching before it are read in whole days
    #[arg(long, default_value = "30d")]
    hourly_horizon: String,
    /// Also store a raw row per flow, for forensics: kept for RETENTION (e.g. 24h; at most
    /// --retention), or with --retention when no value is given. Every view reads the connection
    /// aggregates, which are written either way
    #[arg(long, value_name = "RETENTION", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    keep_flows: Option<String>,
}

impl RetentionArgs {
    /// `--retention` (a positive duration such as 7d or 24h) and `--max-skew` (a duration, 0s or
    /// more).
    pub(crate) fn parse(&self) -> Result<Retention, Fail> {
        let keep = match self.keep.parse::<TimeBound>() {
            Ok(TimeBound::Ago(d)) if d.is_positive() => d,
            _ => return Err(Fail(format!("--retention {:?}: expected a duration such as 7d or 24h", self.keep))),
        };
        let skew = match self.max_skew.parse::<TimeBound>() {
            Ok(TimeBound::Ago(d)) => d,
            _ => return Err(Fail(format!("--max-skew {:?}: expected a duration such as 10m or 0s", self.max_skew))),
        };
        let hourly = match self.hourly_horizon.parse::<TimeBound>() {
            Ok(TimeBound::Ago(d)) => d,
            _ => {
                return Err(Fail(format!(
                    "--hourly-horizon {:?}: expected a duration such as 30d",
                    self.hourly_horizon
                )));
            }
        };
        let retention =
            Retention::new(keep, skew).and_then(|r| r.with_hourly(hourly)).map_err(|e| Fail(e.to_string()))?;
        match self.keep_flows.as_deref() {
            None | Some("") => Ok(retention),
            Some(raw) => match raw.parse::<TimeBound>() {
                Ok(TimeBound::Ago(d)) => {
                    retention.with_raw_flows(d).map_err(|e| Fail(format!("--keep-flows={raw}: {e}")))
                }
                _ => Err(Fail(format!("--keep-flows={raw}: expected a duration such as 24h or 2d"))),
            },
        }
    }

    /// `--keep-flows`.
    pub(crate) fn write_options(&self) -> flowgate::store::ingest::WriteOptions {
        flowgate::store::ingest::WriteOptions { keep_flows: self.keep_flows.is_some() }
    }
}

#[derive(Args)]
pub(crate) struct StatsArgs {
    #[arg(long)]
    cluster: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

pub(crate) fn run_migrate(args: MigrateArgs) -> Result<ExitCode, Fail> {
    let rt = runtime()?;
    connect(&rt, &args.db)?;
    eprintln!("database is up to date ({})", redact(&args.db.database_url));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_import(args: ImportArgs) -> Result<ExitCode, Fail> {
    let ImportArgs { cluster, at, paths, db } = args;
    // An import is two long steps, reading and parsing the files, then one statement storing
    // them: on a terminal, each says when it starts and how long it took.
    let stages = flowgate::flows::progress::enabled();
    let started = std::time::Instant::now();
    if stages {
        eprint!("import: reading {} path{}…", paths.len(), if paths.len() == 1 { "" } else { "s" });
    }
    let loaded = flowgate::inventory::load_paths(&paths).map_err(|e| Fail(e.to_string()))?;
    if stages {
        eprintln!(" {} objects in {:.1} s", loaded.objects.len(), started.elapsed().as_secs_f64());
    }
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    print_warnings(&loaded.warnings);
    let rt = runtime()?;
    let store = connect(&rt, &db)?;
    let at = at.unwrap_or_else(jiff::Timestamp::now);
    let storing = std::time::Instant::now();
    if stages {
        eprint!("import: storing {} objects…", loaded.objects.len());
    }
    let report = rt.block_on(async {
        let id = store.cluster_id(&cluster, true).await?;
        store.import(id, &loaded.objects, at).await
    });
    if stages {
        eprintln!(" {:.1} s", storing.elapsed().as_secs_f64());
    }
    let report = report.map_err(|e| store_err(e).context(format!("importing into cluster {cluster}")))?;
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
        eprintln!("{} stored flows from addresses that were unresolved now have their workloads", report.reattributed);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_ingest(args: IngestArgs) -> Result<ExitCode, Fail> {
    let IngestArgs { cluster, flow_format, paths, relay, since, retention, threads, db } = args;
    let write = retention.write_options();
    let retention = retention.parse()?;
    if let Some(config) = relay.config()? {
        let since = match since.parse::<TimeBound>() {
            Ok(TimeBound::Ago(d)) if !d.is_negative() => d,
            _ => return Err(Fail(format!("--since {since:?}: expected a duration such as 1h or 30m"))),
        };
        return ingest_relay(&cluster, config, since, retention, write, &db);
    }
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
        let options = flowgate::ingest::Options { format: flow_format, threads, retention, now, write };
        let report = flowgate::ingest::ingest_sources(&store, id, std::sync::Arc::new(inv), sources, &options).await?;
        let removed = store.apply_retention(Clusters::One(id), now, &retention).await?;
        Ok::<_, flowgate::ingest::IngestError>((report, removed))
    });
    let (report, removed) = report.map_err(|e| Fail::from(e).context(format!("ingesting into cluster {cluster}")))?;
    for e in &report.errors {
        eprintln!("{}:{}: {}", e.source, e.line, e.reason);
    }
    eprintln!("{report}");
    if !removed.is_empty() {
        eprintln!("retention: {removed}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `ingest --hubble-relay`: the flows Relay buffers from `since` ago, then the retention run.
fn ingest_relay(
    cluster: &str,
    config: flowgate::relay::RelayConfig,
    since: jiff::SignedDuration,
    retention: Retention,
    write: flowgate::store::ingest::WriteOptions,
    db: &DbArgs,
) -> Result<ExitCode, Fail> {
    use flowgate::relay::{Ended, Since, StreamOptions, stream_once};
    let rt = runtime()?;
    let store = connect(&rt, db)?;
    let (report, removed) = rt.block_on(async {
        let id = store.cluster_id(cluster, true).await.map_err(store_err)?;
        let options = StreamOptions { write, ..StreamOptions::new(id, retention, Since::Ago(since), false) };
        // Nothing stops a one-shot ingest but the end of what Relay buffers.
        let (_never, mut stop) = tokio::sync::watch::channel(false);
        let meter = flowgate::ingest::Meter::unread();
        let (report, ended) = stream_once(&store, &config, &options, &meter, &mut stop).await;
        if let Ended::Failed(e) = ended {
            for e in &report.errors {
                eprintln!("{}:{}: {}", e.source, e.line, e.reason);
            }
            eprintln!("{report}");
            return Err(Fail::from(e));
        }
        let removed =
            store.apply_retention(Clusters::One(id), jiff::Timestamp::now(), &retention).await.map_err(store_err)?;
        Ok::<_, Fail>((report, removed))
    })?;
    for e in &report.errors {
        eprintln!("{}:{}: {}", e.source, e.line, e.reason);
    }
    eprintln!("{report}");
    if !removed.is_empty() {
        eprintln!("retention: {removed}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_stats(args: StatsArgs) -> Result<ExitCode, Fail> {
    let StatsArgs { cluster, json, db } = args;
    let rt = runtime()?;
    let store = connect(&rt, &db)?;
    let (stats, tables) = rt
        .block_on(async {
            let id = store.cluster_id(&cluster, false).await?;
            Ok::<_, flowgate::store::StoreError>((store.stats(id).await?, store.table_sizes().await?))
        })
        .map_err(store_err)?;
    let out = if json {
        let mut v = serde_json::to_value(&stats).map_err(|e| Fail(e.to_string()))?;
        v["store_tables"] = serde_json::to_value(&tables).map_err(|e| Fail(e.to_string()))?;
        to_json(&v)?
    } else {
        let mut out = format!(
            "cluster:        {cluster}\nflows:          {}\nraw flow rows:  {}\nconnections:    {}\nworkloads:      {}\npods:           {}\nunresolved IPs: {}\ntime range:     {} .. {}\n",
            stats.flows,
            stats.raw_flows,
            stats.connections,
            stats.workloads,
            stats.pods,
            stats.unresolved_ips,
            stats.first_flow.as_deref().unwrap_or("-"),
            stats.last_flow.as_deref().unwrap_or("-")
        );
        out.push_str("store (all clusters):\n");
        for t in &tables {
            out.push_str(&format!("  {:<22} {:>10} rows {:>12}\n", t.table, t.rows, human_bytes(t.bytes)));
        }
        out
    };
    write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// A size in bytes as people read it: 8.0 kB, 1.5 MB.
fn human_bytes(n: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", units[u]) }
}
