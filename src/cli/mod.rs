//! The command line: one module per command, each with its `Args` and `run` (as mini-redis splits
//! `cmd/`). This module holds what they share: the command list, failures and their exit codes,
//! the runtime and the store connection, and printing.
//!
//! Exit codes: 0 success; 1 a check found what it was asked to fail on (a blocked connection, a
//! verification mismatch); 2 bad input (the message says where and why); 3 the store or the
//! runtime failed.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use flowgate::store::{Store, StoreError};
use flowgate::topology::TimeBound;

mod check;
mod explain;
mod generate;
mod relay;
mod serve;
mod source;
mod store;
mod watch;

#[derive(Parser)]
#[command(
    name = "flowgate",
    version,
    about = "Observed Kubernetes traffic in, verified least-privilege NetworkPolicies out"
)]
struct Cli {
    /// How the log is written to stderr: text, or one JSON object a line (for log collectors;
    /// `serve` and `watch` then say everything through it)
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "FLOWGATE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Set once, before any command runs: whether [`notice`] logs rather than prints.
static JSON_LOG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// What a long-running command (`serve`, `watch`) tells its operator: a plain line on stderr,
/// or with `--log-format json` an info event, so that a log collector reads every line as JSON.
pub(crate) fn notice(msg: impl std::fmt::Display) {
    if cli_json() {
        tracing::info!("{msg}");
    } else {
        eprintln!("{msg}");
    }
}

fn init_log(format: LogFormat) {
    let filter = || tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "flowgate=info".into());
    // Colours only for a terminal: a pipe (docker, kubectl logs) would get the escape codes.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let log = tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(colour);
    match format {
        LogFormat::Text => log.with_env_filter(filter()).init(),
        LogFormat::Json => log.json().with_env_filter(filter()).init(),
    }
    let _ = JSON_LOG.set(format == LogFormat::Json);
    // Reading a large file says how far it got, for a person watching a terminal only.
    flowgate::flows::progress::enable(colour && format == LogFormat::Text);
}

#[derive(Subcommand)]
enum Command {
    /// Generate one NetworkPolicy per workload from observed flows (YAML to stdout or -o)
    Generate(generate::GenerateArgs),
    /// List the enriched connections as the review tables show them
    Connections(generate::ConnectionsArgs),
    /// Evaluate policies against observed flows: each connection allowed or blocked, and by what
    Check(check::CheckArgs),
    /// Explain one connection: which policies decide it on each side, and why
    Explain(explain::ExplainArgs),
    /// Create or upgrade the database schema
    Migrate(store::MigrateArgs),
    /// Record a snapshot of cluster objects in the store (history is kept)
    Import(store::ImportArgs),
    /// Enrich flows against the stored inventory and write them to the store
    Ingest(store::IngestArgs),
    /// Counts of what the store holds for a cluster
    Stats(store::StatsArgs),
    /// Run the server: flow ingestion API (and, with the web application, the review UI)
    Serve(serve::ServeArgs),
    /// Watch a live cluster (kubeconfig or in-cluster) and record its objects in the store
    Watch(watch::WatchArgs),
}

/// The store every command that needs one connects to.
#[derive(Args, Clone)]
pub(crate) struct DbArgs {
    /// PostgreSQL URL (the database is created if missing)
    #[arg(long, env = "DATABASE_URL", default_value = flowgate::store::DEFAULT_URL, hide_env_values = true)]
    pub database_url: String,
}

/// Why a command failed, and its exit code: 2 for bad input (the message says where and why),
/// 3 for the store or the runtime (a refused database connection is not the user's input). The
/// error keeps its causes (`anyhow`), and contexts added on the way out say what was being done.
pub(crate) struct Fail {
    pub err: anyhow::Error,
    pub code: u8,
}

/// Bad input: exit 2. (A function beside the struct, so that `Fail(message)` reads as a value.)
#[allow(non_snake_case)]
pub(crate) fn Fail(msg: String) -> Fail {
    Fail { err: anyhow::Error::msg(msg), code: 2 }
}

/// The store or the runtime failed: exit 3.
pub(crate) fn runtime_failure(msg: String) -> Fail {
    Fail { err: anyhow::Error::msg(msg), code: 3 }
}

impl Fail {
    /// A typed error as bad input (2) or a runtime failure (3), its causes kept.
    fn of<E: std::error::Error + Send + Sync + 'static>(e: E, code: u8) -> Fail {
        Fail { err: anyhow::Error::new(e), code }
    }

    /// What was being done when it failed, said before the cause.
    pub(crate) fn context(self, what: impl std::fmt::Display + Send + Sync + 'static) -> Fail {
        Fail { err: self.err.context(what), code: self.code }
    }

    /// The contexts and the causes, outermost first, each said once: many errors already repeat
    /// their cause in their own message (`cannot open F: No such file`), and it is not said twice.
    pub(crate) fn message(&self) -> String {
        let mut out = String::new();
        for cause in self.err.chain() {
            let s = cause.to_string();
            if !out.contains(&s) {
                if !out.is_empty() {
                    out.push_str(": ");
                }
                out.push_str(&s);
            }
        }
        out
    }
}

impl From<flowgate::offline::OfflineError> for Fail {
    fn from(e: flowgate::offline::OfflineError) -> Self {
        Fail::of(e, 2)
    }
}

/// Ingest: the store's failures are the store's ([`store_err`]); a file that cannot be opened or
/// an unknown format is the input's; a source that breaks off mid-read, or a parser thread that
/// died, is the runtime's.
impl From<flowgate::ingest::IngestError> for Fail {
    fn from(e: flowgate::ingest::IngestError) -> Self {
        use flowgate::ingest::IngestError;
        match e {
            IngestError::Store(e) => store_err(e),
            e @ IngestError::Source(_) => Fail::of(e, 2),
            e @ (IngestError::Read { .. } | IngestError::Thread(_)) => Fail::of(e, 3),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_log(cli.log_format);
    let result = match cli.command {
        Command::Generate(args) => generate::run_generate(args),
        Command::Connections(args) => generate::run_connections(args),
        Command::Check(args) => check::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Migrate(args) => store::run_migrate(args),
        Command::Import(args) => store::run_import(args),
        Command::Ingest(args) => store::run_ingest(args),
        Command::Stats(args) => store::run_stats(args),
        Command::Serve(args) => serve::run(args),
        Command::Watch(args) => watch::run(args),
    };
    match result {
        Ok(code) => code,
        Err(fail) if cli_json() => {
            tracing::error!("flowgate: error: {}", fail.message());
            ExitCode::from(fail.code)
        }
        Err(fail) => {
            eprintln!("flowgate: error: {}", fail.message());
            ExitCode::from(fail.code)
        }
    }
}

fn cli_json() -> bool {
    JSON_LOG.get().copied().unwrap_or(false)
}

/// A duration flag of at least `min` (`10s`, `2m`).
pub(crate) fn parse_duration(flag: &str, value: &str, min: std::time::Duration) -> Result<std::time::Duration, Fail> {
    match value.parse::<TimeBound>() {
        Ok(TimeBound::Ago(d)) if d.unsigned_abs() >= min => Ok(d.unsigned_abs()),
        _ => Err(Fail(format!("{flag} {value:?}: expected a duration of at least {min:?}, such as 10s"))),
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Fail> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::of(e, 3).context("starting the async runtime"))
}

pub(crate) fn connect(rt: &tokio::runtime::Runtime, db: &DbArgs) -> Result<Store, Fail> {
    rt.block_on(Store::connect(&db.database_url))
        .map_err(|e| Fail::of(e, 3).context(format!("connecting to {}", redact(&db.database_url))))
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
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
pub(crate) fn store_err(e: StoreError) -> Fail {
    match e {
        StoreError::UnknownCluster(_) | StoreError::Invalid(_) | StoreError::Conflict { .. } => Fail::of(e, 2),
        StoreError::Db(_) | StoreError::Migrate(_) | StoreError::Corrupt(_) => Fail::of(e, 3),
    }
}

pub(crate) fn write_stdout(bytes: &[u8]) -> Result<(), Fail> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Fail::of(e, 3).context("writing the output")),
    }
}

/// Pretty JSON and a final newline.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Fail> {
    let mut out = serde_json::to_string_pretty(value).map_err(|e| Fail::of(e, 3).context("writing JSON"))?;
    out.push('\n');
    Ok(out)
}

/// How many warnings are printed; the rest are counted. A damaged inventory can have one per
/// object, and the first few say what is wrong.
const SHOWN_WARNINGS: usize = 20;

pub(crate) fn print_warnings<W: std::fmt::Display>(warnings: &[W]) {
    let warn = |msg: std::fmt::Arguments| match cli_json() {
        true => tracing::warn!("{msg}"),
        false => eprintln!("warning: {msg}"),
    };
    for w in warnings.iter().take(SHOWN_WARNINGS) {
        warn(format_args!("{w}"));
    }
    if warnings.len() > SHOWN_WARNINGS {
        warn(format_args!("... and {} more", warnings.len() - SHOWN_WARNINGS));
    }
}
