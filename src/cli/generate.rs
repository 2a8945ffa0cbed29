//! `flowgate generate` and `flowgate connections`: one review, from files or the store, printed as
//! YAML or as the review tables' rows.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use flowgate::policy::Dialect;
use flowgate::policy::guardrails::AdminApi;
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
    /// (cilium.io/v2 CiliumNetworkPolicy, with toFQDNs for trusted names and entities for nodes);
    /// with -A, admin (cluster guardrails as policy.networking.k8s.io/v1alpha2
    /// ClusterNetworkPolicy) or admin-v1alpha1 (AdminNetworkPolicy)
    #[arg(long, default_value = "kubernetes")]
    dialect: OutputDialect,
    /// Guardrails: a pair of namespaces seen talking whose traffic is to be denied (FROM/TO)
    #[arg(long, num_args = 1.., value_name = "FROM/TO", value_parser = pair)]
    exclude_pair: Vec<(String, String)>,
    /// Guardrails: a pair of namespaces that may talk although not seen (FROM/TO)
    #[arg(long, num_args = 1.., value_name = "FROM/TO", value_parser = pair)]
    include_pair: Vec<(String, String)>,
}

/// `--dialect`: a workload policy language, or the cluster guardrails in one of two API versions.
#[derive(Debug, Clone, Copy)]
enum OutputDialect {
    Workload(Dialect),
    Guardrails(AdminApi),
}

impl std::str::FromStr for OutputDialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "admin" | "admin-v1alpha2" => Ok(OutputDialect::Guardrails(AdminApi::V1alpha2)),
            "admin-v1alpha1" => Ok(OutputDialect::Guardrails(AdminApi::V1alpha1)),
            other => other
                .parse::<Dialect>()
                .map(OutputDialect::Workload)
                .map_err(|e| format!("{e}, admin or admin-v1alpha1")),
        }
    }
}

/// `FROM/TO`, two namespace names.
fn pair(s: &str) -> Result<(String, String), String> {
    let (a, b) = s.split_once('/').ok_or_else(|| format!("{s:?}: expected FROM/TO (two namespaces)"))?;
    for n in [a, b] {
        flowgate::model::Name::namespace(n).map_err(|e| e.to_string())?;
    }
    Ok((a.to_string(), b.to_string()))
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
    let dialect = match args.dialect {
        OutputDialect::Workload(d) => d,
        OutputDialect::Guardrails(api) => return run_guardrails(&args, api),
    };
    if !args.exclude_pair.is_empty() || !args.include_pair.is_empty() {
        return Err(Fail("--exclude-pair and --include-pair are for --dialect admin (guardrails)".into()));
    }
    let (inv, r) = args.sel.review()?;
    let spelled = Spelled::new(&r, &inv, dialect).map_err(Fail)?;
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

/// `generate -A --dialect admin|admin-v1alpha1`: the cluster guardrails as YAML, verified
/// against the connections between namespaces (read back from the YAML); exit 1 on a mismatch.
fn run_guardrails(args: &GenerateArgs, api: AdminApi) -> Result<ExitCode, Fail> {
    use flowgate::policy::guardrails as g;
    let (inv, conns) = args.sel.cluster_connections()?;
    // The stored decisions (from the cluster's guardrails page), then the flags over them.
    let mut decisions = args.sel.stored_pair_decisions()?.unwrap_or_default();
    for p in &args.exclude_pair {
        decisions.include.remove(p);
        decisions.exclude.insert(p.clone());
    }
    for p in &args.include_pair {
        decisions.exclude.remove(p);
        decisions.include.insert(p.clone());
    }
    let opts = g::GuardOptions { decisions, ..Default::default() };
    let rails = g::guardrails(&inv, &conns, &opts);
    let yaml = match api {
        AdminApi::V1alpha2 => g::to_yaml(&g::to_cluster_network_policies(&rails).map_err(Fail)?),
        AdminApi::V1alpha1 => g::to_yaml(&g::to_admin_network_policies(&rails).map_err(Fail)?),
    }
    .map_err(Fail)?;
    match &args.output {
        Some(path) => std::fs::write(path, &yaml).map_err(|e| Fail(format!("{}: {e}", path.display())))?,
        None => write_stdout(yaml.as_bytes())?,
    }
    for w in &rails.warnings {
        eprintln!("warning: {w}");
    }
    let policies = g::read_back(&yaml).map_err(Fail)?;
    let mismatches = g::verify(&rails, &policies, &inv, &conns);
    let allowed = rails.pairs.iter().filter(|p| p.allowed).count();
    eprintln!(
        "guardrails: {} namespaces, {} pairs of namespaces seen talking or included ({allowed} allowed, {} denied), {} shared services, {} policies",
        rails.namespaces.len(),
        rails.pairs.len(),
        rails.pairs.len() - allowed,
        rails.shared.len(),
        policies.len()
    );
    for s in &rails.shared {
        eprintln!("  shared: {} ({:?}): {}", s.workload, s.direction, s.reason);
    }
    eprintln!("verified: {} mismatches over the connections between namespaces", mismatches.len());
    for m in &mismatches {
        eprintln!(
            "MISMATCH: {} ({} -> {} should be {})",
            m.connection,
            m.from,
            m.to,
            if m.expected_allowed { "allowed" } else { "denied" }
        );
    }
    Ok(if mismatches.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The review's rows, from files or the store alike.
pub(crate) fn run_connections(args: ConnectionsArgs) -> Result<ExitCode, Fail> {
    let (_, r) = args.sel.review()?;
    let rows = report::rows(&r.generation.review, &r.connections, None);
    let out = if args.json { to_json(&rows)? } else { report::rows_table(&rows) };
    write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
