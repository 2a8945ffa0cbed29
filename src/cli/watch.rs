//! `flowgate watch`: a live cluster's objects, recorded in the store whenever they change.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{DbArgs, Fail, connect, notice, parse_duration, print_warnings, runtime, store_err};

#[derive(Args)]
pub(crate) struct WatchArgs {
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
}

pub(crate) fn run(args: WatchArgs) -> Result<ExitCode, Fail> {
    let WatchArgs { cluster, kubeconfig, context, interval, db } = args;
    let interval = parse_duration("--interval", &interval, std::time::Duration::from_secs(1))?;
    let rt = runtime()?;
    let store = connect(&rt, &db)?;
    rt.block_on(async move {
        let client = flowgate::watch::client(kubeconfig.as_deref(), context)
            .await
            .map_err(|e| Fail { err: e.context("Kubernetes configuration"), code: 2 })?;
        let id = store.cluster_id(&cluster, true).await.map_err(store_err)?;
        notice(format_args!(
            "watching the cluster as {cluster:?}; a changed snapshot is recorded every {}s",
            interval.as_secs()
        ));
        flowgate::watch::watch(client, store, id, interval, |r, n| {
            print_warnings(&r.warnings);
            let skipped =
                if r.skipped > 0 { format!(", {} skipped (invalid names)", r.skipped) } else { String::new() };
            notice(format_args!(
                "recorded {} objects: {} added, {} updated, {} closed{skipped}",
                n.saturating_sub(r.skipped as usize),
                r.added,
                r.updated,
                r.closed
            ));
        })
        .await
        .map_err(store_err)
    })?;
    Ok(ExitCode::SUCCESS)
}
