//! `flowgate check`: policies (the cluster's and given files) evaluated against observed
//! connections, from files or the store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use flowgate::offline;
use flowgate::report::{self, CheckRow};

use super::source::SourceArgs;
use super::{Fail, print_warnings, to_json, write_stdout};

#[derive(Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// NetworkPolicy files or folders (YAML or JSON)
    #[arg(long, required = true, num_args = 1..)]
    policies: Vec<PathBuf>,
    /// Exit 1 if any observed connection would be blocked
    #[arg(long)]
    fail_on_blocked: bool,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: CheckArgs) -> Result<ExitCode, Fail> {
    let (inventory, conns) = args.source.connections()?;
    let extra = flowgate::inventory::load_paths(&args.policies).map_err(|e| Fail(e.to_string()))?;
    for e in &extra.errors {
        eprintln!("error: {e}");
    }
    print_warnings(&extra.warnings);
    let in_force = offline::policies_in_force(&inventory, &extra);
    let (checked, warnings) = offline::check(&inventory, &conns, &in_force);
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let rows: Vec<CheckRow> = checked
        .iter()
        .map(|c| {
            CheckRow::new(c.key, c.stats, c.decision.allowed, c.from_node, &c.decision.egress, &c.decision.ingress)
        })
        .collect();
    let blocked = rows.iter().filter(|c| c.blocked).count();
    let not_subject = rows.iter().filter(|c| c.not_subject).count();
    let out = if args.json { to_json(&rows)? } else { report::check_table(&rows) };
    write_stdout(out.as_bytes())?;
    eprintln!(
        "checked {} connections against {} policies: {} allowed, {} blocked, {} from nodes (not subject to policy)",
        rows.len(),
        in_force.len(),
        rows.len() - blocked - not_subject,
        blocked,
        not_subject
    );
    Ok(if args.fail_on_blocked && blocked > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
