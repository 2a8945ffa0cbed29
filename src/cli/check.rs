//! `flowgate check`: what the cluster's policies, with given files and (`--proposed`) Flowgate's
//! own proposal applied over them, do to the observed connections, from files or the store: each
//! connection allowed or blocked and by what, and what applying them would break.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use flowgate::policy::simulate::{self, Effect};
use flowgate::report::{self, CheckRow};

use super::source::{Selection, SourceArgs, policy_files};
use super::{Fail, to_json, write_stdout};

#[derive(Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// NetworkPolicy files or folders (YAML or JSON), applied over the cluster's: one replaces the
    /// cluster's policy of the same namespace and name, as `kubectl apply` would
    #[arg(long, num_args = 1.., required_unless_present = "proposed")]
    policies: Vec<PathBuf>,
    /// Apply the policies Flowgate proposes for --namespace too (from the files, or with --cluster
    /// from the store with its stored decisions): what would applying them break?
    #[arg(long, requires = "namespace")]
    proposed: bool,
    /// Only connections with an end in these namespaces (with --proposed: the namespaces whose
    /// workloads get the proposed policies; with --cluster, exactly one)
    #[arg(long, num_args = 1..)]
    namespace: Vec<String>,
    /// Exit 1 if any observed connection would be blocked
    #[arg(long)]
    fail_on_blocked: bool,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: CheckArgs) -> Result<ExitCode, Fail> {
    let CheckArgs { source, policies, proposed, namespace, fail_on_blocked, json } = args;
    for ns in &namespace {
        flowgate::model::Name::namespace(ns).map_err(|e| Fail(format!("--namespace: {e}")))?;
    }
    let (inventory, conns, generated) = if proposed {
        let (inv, r) = Selection::of_namespaces(source, namespace.clone()).review()?;
        let generated: Vec<_> = r.generation.policies.into_iter().map(|g| g.policy).collect();
        (inv, r.connections, generated)
    } else {
        let (inv, conns) = source.connections()?;
        (inv, conns, Vec::new())
    };
    let files = policy_files(&policies)?;
    // A file's policy replaces a proposed one of its name too: the file is what the user says.
    let proposal = simulate::with_proposed(&generated, &files);
    let in_scope = |end: &flowgate::enrich::Endpoint| end.workload().is_some_and(|w| namespace.contains(&w.namespace));
    let sim = simulate::simulate(&inventory, &conns, &proposal, |k| {
        namespace.is_empty() || in_scope(&k.src) || in_scope(&k.dst)
    });
    for w in &sim.warnings {
        eprintln!("warning: {w}");
    }
    let rows: Vec<CheckRow> = sim.rows.iter().map(CheckRow::new).collect();
    let blocked = rows.iter().filter(|c| c.blocked).count();
    let not_subject = rows.iter().filter(|c| c.not_subject).count();
    let out = if json { to_json(&rows)? } else { report::check_table(&rows) };
    write_stdout(out.as_bytes())?;
    let in_force = simulate::with_proposed(&inventory.policies, &proposal).len();
    eprintln!(
        "checked {} connections against {} policies ({} in the cluster, {} applied over them): {} allowed, {} blocked, {} from nodes (not subject to policy)",
        rows.len(),
        in_force,
        inventory.policies.len(),
        proposal.len(),
        rows.len() - blocked - not_subject,
        blocked,
        not_subject
    );
    let breaks: Vec<&CheckRow> = rows.iter().filter(|r| r.effect == Effect::WouldBreak).collect();
    if proposal.is_empty() {
        // Nothing applied: no change to report.
    } else if breaks.is_empty() {
        eprintln!("applying them breaks none of the connections seen");
    } else {
        let n = breaks.len();
        eprintln!("applying them breaks {n} connection{} seen in the window:", if n == 1 { "" } else { "s" });
        for r in breaks {
            eprintln!("WOULD BREAK: {}", r.summary());
        }
    }
    Ok(if fail_on_blocked && blocked > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
