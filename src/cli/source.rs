//! The one pipeline's two sources, with the same flags for every command that reviews: files (an
//! inventory and flows, read and settled by `offline`) or the store (`--cluster`: a window of its
//! connections, settled the same way, and its stored decisions). Either way the result is one
//! observed set, then the same pure generation and verification.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::Args;
use flowgate::flows::FlowFormat;
use flowgate::inventory::Inventory;
use flowgate::model::{Cidr, DnsName, PeerSpec};
use flowgate::offline::{self, Inputs, Observed, WorkloadArg};
use flowgate::policy::generate::{Decisions, Options};
use flowgate::review::Reviewed;
use flowgate::store::Store;
use flowgate::topology::{Connections, TimeBound};

use super::{DbArgs, Fail, connect, print_warnings, runtime, store_err};

/// Where the connections come from: files, or the store with `--cluster`.
#[derive(Args)]
pub(crate) struct SourceArgs {
    /// Cluster objects: `kubectl get ... -o json` output, YAML, or folders of them
    #[arg(long, num_args = 1..)]
    inventory: Vec<PathBuf>,
    /// Flow files (Hubble JSON or Flowgate NDJSON); `-` reads standard input
    #[arg(long, num_args = 1..)]
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
    /// Read connections, inventory and decisions from the store for this cluster instead of files
    #[arg(long, conflicts_with_all = ["flows", "inventory"])]
    cluster: Option<String>,
    #[command(flatten)]
    db: DbArgs,
}

/// What gets policies, and the decisions given on the command line.
#[derive(Args)]
pub(crate) struct Selection {
    #[command(flatten)]
    source: SourceArgs,
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
    /// External services that may be reached by DNS name (api.example.com): the addresses it was
    /// seen resolving to (DNS answers, destination names in the flows)
    #[arg(long, num_args = 1..)]
    trust_name: Vec<DnsName>,
    /// Allow unresolved in-cluster addresses too (as /32)
    #[arg(long)]
    include_unresolved: bool,
    /// Leave this direction out of the policies (ingress or egress): not isolated, everything
    /// that way allowed; for a workload exposed outside the cluster whose clients the flows do
    /// not show
    #[arg(long, value_name = "DIRECTION")]
    leave_out: Option<flowgate::policy::generate::Direction>,
    /// Do not add the DNS rule (53/UDP and 53/TCP to the cluster DNS)
    #[arg(long)]
    no_dns: bool,
}

impl SourceArgs {
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

    /// The files read, settled, and what was read reported on stderr.
    fn observe(&self) -> Result<Observed, Fail> {
        if self.flows.is_empty() {
            return Err(Fail("--flows is required (or --cluster to read from the store)".into()));
        }
        let obs = offline::observe(&self.inputs())?;
        report_inputs(&obs);
        if obs.flows.flows == 0 && obs.flows.errors > 0 {
            return Err(Fail(format!("no valid flow in the input ({} malformed records)", obs.flows.errors)));
        }
        Ok(obs)
    }

    /// Every connection in the window and the inventory they were enriched against, from either
    /// source: what `check` evaluates.
    pub(crate) fn connections(&self) -> Result<(Inventory, Connections), Fail> {
        let Some(cluster) = &self.cluster else {
            let obs = self.observe()?;
            return Ok((obs.inventory, obs.connections));
        };
        let rt = runtime()?;
        let store = connect(&rt, &self.db)?;
        rt.block_on(async {
            let (id, inv, since, until) = self.stored(&store, cluster).await?;
            let catalog = store.load_catalog(id, &inv).await.map_err(store_err)?;
            let mut conns = store
                .connections(id, flowgate::store::query::Scope::All, since, until, catalog)
                .await
                .map_err(store_err)?;
            conns.settle(&inv);
            eprintln!("store: {} connections in the window", conns.map.len());
            Ok((inv, conns))
        })
    }

    /// The cluster's id, its inventory (notes printed) and the window resolved against its newest
    /// flow.
    async fn stored(
        &self,
        store: &Store,
        cluster: &str,
    ) -> Result<(i32, Inventory, Option<jiff::Timestamp>, Option<jiff::Timestamp>), Fail> {
        let id = store.cluster_id(cluster, false).await.map_err(store_err)?;
        let newest = store.newest_flow(id).await.map_err(store_err)?;
        let since = self.since.and_then(|b| b.resolve(newest));
        let until = self.until.and_then(|b| b.resolve(newest));
        let inv = store.load_inventory(id).await.map_err(store_err)?;
        for n in &inv.notes {
            eprintln!("note: {}", n.0);
        }
        Ok((id, inv, since, until))
    }
}

impl Selection {
    /// Every connection of the whole cluster (guardrails): `-A` is required, and no decision
    /// flag applies.
    pub(crate) fn cluster_connections(&self) -> Result<(Inventory, Connections), Fail> {
        if !self.all_namespaces {
            return Err(Fail("guardrails are for the whole cluster: give -A (--all-namespaces)".into()));
        }
        if !self.workload.is_empty()
            || !self.exclude.is_empty()
            || !self.trust.is_empty()
            || !self.trust_name.is_empty()
            || self.leave_out.is_some()
        {
            return Err(Fail(
                "--workload, --exclude, --trust, --trust-name and --leave-out are workload decisions; guardrails take --exclude-pair and --include-pair".into(),
            ));
        }
        self.source.connections()
    }

    /// With `--cluster`, the guardrail decisions stored for it (the cluster's guardrails page).
    pub(crate) fn stored_pair_decisions(&self) -> Result<Option<flowgate::policy::guardrails::PairDecisions>, Fail> {
        let Some(cluster) = &self.source.cluster else { return Ok(None) };
        let rt = runtime()?;
        let store = connect(&rt, &self.source.db)?;
        rt.block_on(async {
            let id = store.cluster_id(cluster, false).await?;
            Ok(Some(store.guardrail_decisions(id).await?.0))
        })
        .map_err(store_err)
    }

    fn namespaces(&self) -> Result<Option<BTreeSet<String>>, Fail> {
        for ns in &self.namespace {
            flowgate::model::Name::namespace(ns).map_err(|e| Fail(format!("--namespace: {e}")))?;
        }
        Ok((!self.all_namespaces).then(|| self.namespace.iter().cloned().collect()))
    }

    /// The decisions given as flags; from the store they are added to each workload's own.
    fn decisions(&self) -> Decisions {
        Decisions {
            exclude: self.exclude.iter().cloned().collect(),
            trust: self.trust.iter().cloned().collect(),
            include_unresolved: Default::default(),
            include_all_unresolved: self.include_unresolved,
            trust_names: self.trust_name.iter().cloned().collect(),
            leave_out: self.leave_out.into_iter().collect(),
        }
    }

    /// A selection of namespaces and nothing else (no decisions given as flags): what `check
    /// --proposed` proposes policies for.
    pub(crate) fn of_namespaces(source: SourceArgs, namespace: Vec<String>) -> Selection {
        Selection {
            source,
            namespace,
            all_namespaces: false,
            workload: Vec::new(),
            exclude: Vec::new(),
            trust: Vec::new(),
            trust_name: Vec::new(),
            include_unresolved: false,
            leave_out: None,
            no_dns: false,
        }
    }

    /// The review: policies generated for the selection and verified against the connections they
    /// came from, from files or from the store; with the inventory they were enriched against.
    pub(crate) fn review(&self) -> Result<(Inventory, Reviewed), Fail> {
        match &self.source.cluster {
            Some(cluster) => self.review_stored(cluster),
            None => {
                let namespaces = self.namespaces()?;
                let obs = self.source.observe()?;
                let workloads =
                    offline::resolve_workloads(&obs.connections.catalog, namespaces.as_ref(), &self.workload)?;
                let opts = Options {
                    namespaces,
                    workloads,
                    decisions: self.decisions(),
                    per_workload: Default::default(),
                    dns: !self.no_dns,
                };
                let (generation, verification) = offline::generate_and_verify(&obs, &opts);
                let r = Reviewed { connections: obs.connections, generation, verification, decisions: Vec::new() };
                Ok((obs.inventory, r))
            }
        }
    }

    fn review_stored(&self, cluster: &str) -> Result<(Inventory, Reviewed), Fail> {
        let [namespace] = self.namespace.as_slice() else {
            return Err(Fail("--cluster takes exactly one --namespace".into()));
        };
        self.namespaces()?;
        let rt = runtime()?;
        let store = connect(&rt, &self.source.db)?;
        rt.block_on(async {
            let (id, inv, since, until) = self.source.stored(&store, cluster).await?;
            // Resolve --workload against what the store knows of the namespace.
            let catalog = store.load_catalog(id, &inv).await.map_err(store_err)?;
            let ns = BTreeSet::from([namespace.clone()]);
            let workloads = offline::resolve_workloads(&catalog, Some(&ns), &self.workload)?;
            let target = flowgate::review::Target::Namespace { namespace, only: workloads.as_ref() };
            let r = flowgate::review::review(&store, id, &inv, target, since, until, &self.decisions(), !self.no_dns)
                .await
                .map_err(store_err)?;
            eprintln!("store: {} connections in the window", r.connections.map.len());
            Ok((inv, r))
        })
    }
}

/// The NetworkPolicies in `--policies` files or folders (documents that are not one are ignored),
/// with what could not be read said on stderr.
pub(crate) fn policy_files(paths: &[PathBuf]) -> Result<Vec<k8s_openapi::api::networking::v1::NetworkPolicy>, Fail> {
    let loaded = flowgate::inventory::load_paths(paths).map_err(|e| Fail(e.to_string()))?;
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    print_warnings(&loaded.warnings);
    Ok(loaded
        .objects
        .into_iter()
        .filter_map(|o| match o {
            flowgate::inventory::KubeObject::NetworkPolicy(p) => Some(p),
            o @ (flowgate::inventory::KubeObject::AdminNetworkPolicy(_)
            | flowgate::inventory::KubeObject::BaselineAdminNetworkPolicy(_)
            | flowgate::inventory::KubeObject::ClusterNetworkPolicy(_)) => {
                // Only NetworkPolicies are proposed; the cluster's admin policies come with its inventory.
                eprintln!(
                    "warning: {}: only NetworkPolicies are applied as a proposal; give admin policies with the inventory",
                    flowgate::inventory::check::who(&o)
                );
                None
            }
            _ => None,
        })
        .collect())
}

/// What the files held and how the pipeline settled it, on stderr.
fn report_inputs(obs: &Observed) {
    for e in &obs.loaded.errors {
        eprintln!("error: {e}");
    }
    print_warnings(&obs.loaded.warnings);
    for n in &obs.inventory.notes {
        eprintln!("note: {}", n.0);
    }
    let skipped = match obs.loaded.skipped {
        0 => String::new(),
        n => format!(", {n} skipped (invalid names)"),
    };
    if !obs.loaded.ignored.is_empty() {
        let ignored: Vec<String> = obs.loaded.ignored.iter().map(|(k, n)| format!("{n} {k}")).collect();
        eprintln!("inventory: {} objects read{skipped}, ignored: {}", obs.loaded.objects.len(), ignored.join(", "));
    } else if obs.loaded.files > 0 {
        eprintln!("inventory: {} objects read{skipped}", obs.loaded.objects.len());
    }
    // The summary's Display lists the kept `FILE:LINE: reason` errors after its counts.
    eprintln!("{}", obs.flows);
    let s = &obs.settled;
    if s.replies + s.requests + s.undecided > 0 {
        eprintln!(
            "direction: {} flows without is_reply or telling TCP flags: {} replies (dropped), {} requests, {} undecided (flagged; never a rule for an ephemeral port)",
            s.replies + s.requests + s.undecided,
            s.replies,
            s.requests,
            s.undecided
        );
    }
    if s.identities + s.unmatched_identities > 0 {
        eprintln!(
            "identity: {} flows carried a pod identity from an address no pod holds: {} matched a workload, {} matched none (unresolved)",
            s.identities + s.unmatched_identities,
            s.identities,
            s.unmatched_identities
        );
    }
    if !obs.connections.inferred.is_empty() {
        let mut by_how: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        // DaemonSets folded from their pods are listed below, with the count.
        for (w, how) in
            obs.connections.inferred.iter().filter(|(_, how)| **how != flowgate::enrich::Inference::SameLabels)
        {
            by_how.entry(how.describe()).or_default().push(w.to_string());
        }
        for (how, ws) in by_how {
            let shown = ws.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
            let more = if ws.len() > 10 { format!(" and {} more", ws.len() - 10) } else { String::new() };
            eprintln!("inferred from flow metadata ({how}): {shown}{more}");
        }
    }
    for (ds, pods) in &s.daemonsets {
        eprintln!("inferred: {ds} from {pods} pods with one label set");
    }
    if obs.connections.outside_window > 0 {
        eprintln!("{} flows outside --since/--until left out", obs.connections.outside_window);
    }
}
