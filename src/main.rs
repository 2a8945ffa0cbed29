//! The `flowgate` command line: argument parsing and printing only; the work is in the library.

use std::collections::BTreeSet;
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
use flowgate::topology::TimeBound;

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
    },
}

#[derive(Args)]
struct InputArgs {
    /// Cluster objects: `kubectl get ... -o json` output, YAML, or folders of them
    #[arg(long, num_args = 1..)]
    inventory: Vec<PathBuf>,
    /// Flow files (Hubble JSON or Flowgate NDJSON); `-` reads standard input
    #[arg(long, required = true, num_args = 1..)]
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

/// Bad input: say where and why, exit 2.
struct Fail(String);

impl From<offline::OfflineError> for Fail {
    fn from(e: offline::OfflineError) -> Self {
        Fail(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(Fail(msg)) => {
            eprintln!("flowgate: error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Fail> {
    match cli.command {
        Command::Generate { sel, output } => {
            let (obs, opts) = observe_selection(&sel)?;
            let (generation, verification) = offline::generate_and_verify(&obs, &opts);
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
        Command::Connections { sel, json } => {
            let (obs, opts) = observe_selection(&sel)?;
            let generation = flowgate::policy::generate::generate(&obs.inventory, &obs.connections, &opts);
            let mut out = String::new();
            if json {
                let rows: Vec<serde_json::Value> = generation
                    .review
                    .iter()
                    .map(|r| {
                        let stats = &obs.connections.map[&r.key];
                        let peer = if r.direction == Direction::Ingress { &r.key.src } else { &r.key.dst };
                        serde_json::json!({
                            "workload": r.workload.to_string(),
                            "direction": r.direction,
                            "peer": peer_name(peer),
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
                            "status": r.status,
                            "decision": r.status.to_string(),
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
                    let stats = &obs.connections.map[&r.key];
                    let peer = if r.direction == Direction::Ingress { &r.key.src } else { &r.key.dst };
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}/{}\t{}\t{}\t{}\t{}\t{}\n",
                        r.workload,
                        direction(r.direction),
                        peer_name(peer),
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
                        r.status
                    ));
                }
            }
            write_stdout(out.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { input, policies, fail_on_blocked, json } => {
            let obs = observe(&input)?;
            let extra = flowgate::inventory::load_paths(&policies).map_err(|e| Fail(e.to_string()))?;
            for e in &extra.errors {
                eprintln!("error: {e}");
            }
            let in_force = offline::policies_in_force(&obs.inventory, &extra);
            let (checked, warnings) = offline::check(&obs, &in_force);
            for w in warnings {
                eprintln!("warning: {w}");
            }
            let blocked = checked.iter().filter(|c| !c.decision.allowed && !c.from_node).count();
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
                "checked {} connections against {} policies: {} allowed, {} blocked",
                checked.len(),
                in_force.len(),
                checked.len() - blocked,
                blocked
            );
            Ok(if fail_on_blocked && blocked > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
    }
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

fn peer_name(e: &Endpoint) -> String {
    match e {
        Endpoint::Workload { workload } => workload.to_string(),
        Endpoint::Node { name, ip } => format!("node/{name} ({ip})"),
        Endpoint::External { ip } | Endpoint::Unresolved { ip } => ip.to_string(),
    }
}

fn peer_of_row<'a>(d: Direction, src: &'a Endpoint, dst: &'a Endpoint) -> String {
    match d {
        Direction::Ingress => format!("from {}", peer_name(src)),
        Direction::Egress => format!("to {}", peer_name(dst)),
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
    let obs = offline::observe(&input.inputs())?;
    report_inputs(&obs);
    if obs.flows.flows == 0 && obs.flows.errors > 0 {
        return Err(Fail(format!("no valid flow in the input ({} malformed records)", obs.flows.errors)));
    }
    Ok(obs)
}

fn report_inputs(obs: &Observed) {
    for e in &obs.loaded.errors {
        eprintln!("error: {e}");
    }
    for n in &obs.inventory.notes {
        eprintln!("note: {}", n.0);
    }
    if !obs.loaded.ignored.is_empty() {
        let ignored: Vec<String> = obs.loaded.ignored.iter().map(|(k, n)| format!("{n} {k}")).collect();
        eprintln!("inventory: {} objects read, ignored: {}", obs.loaded.objects.len(), ignored.join(", "));
    } else if obs.loaded.files > 0 {
        eprintln!("inventory: {} objects read", obs.loaded.objects.len());
    }
    // The summary's Display lists the kept `FILE:LINE: reason` errors after its counts.
    eprintln!("{}", obs.flows);
    if obs.connections.outside_window > 0 {
        eprintln!("{} flows outside --since/--until left out", obs.connections.outside_window);
    }
}

fn observe_selection(sel: &Selection) -> Result<(Observed, Options), Fail> {
    for ns in &sel.namespace {
        flowgate::model::check_name(ns).map_err(|e| Fail(format!("--namespace: {e}")))?;
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
        dns: !sel.no_dns,
    };
    Ok((obs, opts))
}
