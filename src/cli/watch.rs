//! `flowgate watch`: a live cluster's objects, recorded in the store whenever they change.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{DbArgs, Fail, connect, parse_duration, print_warnings, runtime, store_err};

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
        eprintln!("watching the cluster as {cluster:?}; a changed snapshot is recorded every {}s", interval.as_secs());
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
