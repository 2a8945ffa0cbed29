//! `flowgate explain SRC DST PORT/PROTO`: for one connection, seen or not, which policies decide
//! it on each side, whether each side is isolated, what allows it or why nothing does; today and
//! with `--policies` files applied over the cluster's.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use flowgate::enrich::Endpoint;
use flowgate::model::{PeerSpec, parse_port_proto};
use flowgate::policy::simulate::{self, explain, side_words};
use flowgate::report::visible;
use flowgate::topology::ConnKey;

use super::source::{SourceArgs, policy_files};
use super::{Fail, write_stdout};

#[derive(Args)]
pub(crate) struct ExplainArgs {
    /// The source: KIND/NAMESPACE/NAME or an IP address
    src: PeerSpec,
    /// The destination: KIND/NAMESPACE/NAME or an IP address
    dst: PeerSpec,
    /// The destination port and protocol: 8080/TCP (the pod's port, not a Service's)
    port: String,
    #[command(flatten)]
    source: SourceArgs,
    /// NetworkPolicy files or folders to apply over the cluster's before explaining
    #[arg(long, num_args = 1..)]
    policies: Vec<PathBuf>,
}

pub(crate) fn run(args: ExplainArgs) -> Result<ExitCode, Fail> {
    let (port, protocol) = parse_port_proto(&args.port).map_err(|e| Fail(format!("PORT/PROTO {e}")))?;
    let (inv, conns) = args.source.connections()?;
    let end = |spec, what| Endpoint::named(&inv, spec, what).map_err(Fail);
    let key = ConnKey { src: end(&args.src, "SRC")?, dst: end(&args.dst, "DST")?, port, protocol };
    let files = policy_files(&args.policies)?;
    let e = simulate::explain_one(&inv, &conns, &files, &key);
    let verdict = |allowed: bool| if allowed { "allowed" } else { "BLOCKED" };
    let mut out = format!("{} -> {} {}/{}\n", key.src, key.dst, key.port, key.protocol);
    let mut says = |title: &str, d: &flowgate::policy::eval::Decision| {
        out.push_str(&format!("{title}: {} ({})\n", verdict(d.allowed), explain(d)));
        out.push_str(&format!("  egress of the source:       {}\n", side_words(&d.egress, "egress")));
        out.push_str(&format!("  ingress of the destination: {}\n", side_words(&d.ingress, "ingress")));
    };
    let today = match inv.admin.len() {
        0 => format!("today, under the cluster's {} policies", inv.policies.len()),
        n => format!("today, under the cluster's {} policies and {n} admin policies", inv.policies.len()),
    };
    says(&today, &e.before);
    if !files.is_empty() {
        says(&format!("with the {} given policies applied", files.len()), &e.after);
    }
    match &e.observed {
        Some(s) => out.push_str(&format!(
            "observed: {} flows ({} dropped), first seen {}, last seen {}{}\n",
            s.flows,
            s.dropped,
            s.first_seen,
            s.last_seen,
            if s.processes.is_empty() {
                String::new()
            } else {
                format!(", process {}", s.processes.iter().cloned().collect::<Vec<_>>().join(","))
            }
        )),
        None => out.push_str("observed: not in the flows of this window\n"),
    }
    if matches!(key.src, Endpoint::Node { .. }) {
        out.push_str("note: traffic from a node to its own pods passes whatever the policies say\n");
    }
    write_stdout(visible(&out).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
