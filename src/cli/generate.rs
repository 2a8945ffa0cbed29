//! `flowgate generate` and `flowgate connections`: one review, from files or the store, printed as
//! YAML or as the review tables' rows.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use flowgate::policy::Dialect;
use flowgate::report::{self, Spelled, Summary};

use super::source::Selection;
use super::{Fail, to_json, write_stdout};

#[derive(Args)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    sel: Selection,
    /// Write the YAML to this file instead of stdout
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Also write, as JSON to this file, each rule with the observed connections that justify it
    /// (flows, first and last seen, processes)
    #[arg(long, value_name = "FILE")]
    explain: Option<PathBuf>,
    /// Policy language: kubernetes (networking.k8s.io/v1 NetworkPolicy) or cilium
    /// (cilium.io/v2 CiliumNetworkPolicy, with toFQDNs for trusted names and entities for nodes)
    #[arg(long, default_value = "kubernetes")]
    dialect: Dialect,
}

#[derive(Args)]
pub(crate) struct ConnectionsArgs {
    #[command(flatten)]
    sel: Selection,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

/// The YAML in the chosen dialect, then the summary on stderr; exit 1 when the verification (of
/// that dialect's policies) found a mismatch.
pub(crate) fn run_generate(args: GenerateArgs) -> Result<ExitCode, Fail> {
    let (inv, r) = args.sel.review()?;
    let spelled = Spelled::new(&r, &inv, args.dialect).map_err(Fail)?;
    match &args.output {
        Some(path) => std::fs::write(path, &spelled.yaml).map_err(|e| Fail(format!("{}: {e}", path.display())))?,
        None => write_stdout(spelled.yaml.as_bytes())?,
    }
    if let Some(path) = &args.explain {
        let rules = flowgate::policy::provenance::provenance(&r.generation, &inv, &r.connections);
        std::fs::write(path, super::to_json(&rules)?)
            .map_err(|e| Fail(format!("--explain {}: {e}", path.display())))?;
    }
    for s in flowgate::policy::safety::warnings(&r.generation, &inv, &r.connections, None) {
        let level = if s.loud { "WARNING" } else { "warning" };
        eprintln!("{level} [{}]: {}", s.kind, flowgate::report::visible(&s.message));
    }
    for w in r.generation.warnings.iter().chain(&spelled.warnings).chain(&spelled.verification.warnings) {
        eprintln!("warning: {w}");
    }
    let summary = Summary::new(&r.generation, &spelled.verification);
    eprintln!("{}", summary.generated());
    eprintln!("verified: {}", summary.verified());
    for m in &summary.mismatches {
        eprintln!("MISMATCH: {m}");
    }
    Ok(if spelled.verification.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The review's rows, from files or the store alike.
pub(crate) fn run_connections(args: ConnectionsArgs) -> Result<ExitCode, Fail> {
    let (_, r) = args.sel.review()?;
    let rows = report::rows(&r.generation.review, &r.connections, None);
    let out = if args.json { to_json(&rows)? } else { report::rows_table(&rows) };
    write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
