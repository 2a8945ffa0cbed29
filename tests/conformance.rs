//! Conformance: the NetworkPolicy evaluator against the connectivity that np-guard's
//! netpol-analyzer computed for its test clusters (`tests/data/netpol-analyzer`, copied with its licence).
//!
//! Every case folder with a plain `<case>_connlist_output.txt` is either claimed (and must match
//! exactly) or listed in `UNCLAIMED` with the reason. The list is explicit so that the set of
//! claimed cases is visible in review and cannot shrink silently; `MIN_CLAIMED` backs that up.

#[path = "conformance/oracle.rs"]
mod oracle;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use flowgate::model::{Port, Protocol};
use flowgate::policy::admin::AdminPolicies;
use flowgate::policy::eval::{Evaluator, Peer, PodView};
use flowgate::policy::portset::{ConnSet, PortSet};
use ipnet::IpNet;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use oracle::{End, Range};

/// Cases we do not compare against, each with why. Every one involves objects besides plain
/// NetworkPolicies and workloads that change the analyzer's answer; the test checks that each
/// still does (see `FOREIGN_KINDS`), so a case cannot hide here because the evaluator got it wrong.
const UNCLAIMED: &[(&str, &str)] = &[
    // why: OVN-Kubernetes (Cluster)UserDefinedNetworks split the cluster into isolated networks, each
    // analyzed on its own; Flowgate models the single pod network.
    ("cudn_test_1", "uses ClusterUserDefinedNetwork, VirtualMachine"),
    ("cudn_test_2", "uses ClusterUserDefinedNetwork, VirtualMachine"),
    ("cudn_test_3", "uses ClusterUserDefinedNetwork, VirtualMachine"),
    ("cudn_test_4", "uses ClusterUserDefinedNetwork, UserDefinedNetwork, VirtualMachine"),
    ("cudn_test_5", "uses ClusterUserDefinedNetwork, UserDefinedNetwork"),
    ("cudn_test_6", "uses ClusterUserDefinedNetwork"),
    // why: OVN-Kubernetes UserDefinedNetworks isolate namespaces on their own primary network;
    // Flowgate models the single pod network.
    ("nad_test_12", "uses NetworkAttachmentDefinition, UserDefinedNetwork, VirtualMachine"),
    ("nad_test_13", "uses NetworkAttachmentDefinition, UserDefinedNetwork, VirtualMachine"),
    ("nad_test_14", "uses MultiNetworkPolicy, NetworkAttachmentDefinition, UserDefinedNetwork, VirtualMachine"),
    ("udn_and_vms_test_1", "uses UserDefinedNetwork, VirtualMachine"),
    ("udn_and_vms_test_2", "uses UserDefinedNetwork, VirtualMachine"),
    ("udn_and_vms_test_3", "uses UserDefinedNetwork, VirtualMachine"),
    ("udn_and_vms_test_4", "uses UserDefinedNetwork, VirtualMachine"),
    ("udn_and_vms_test_5", "uses UserDefinedNetwork, VirtualMachine, VirtualMachineInstance"),
    ("udn_test_1", "uses UserDefinedNetwork"),
    ("udn_test_2", "uses UserDefinedNetwork"),
    ("udn_test_3", "uses UserDefinedNetwork"),
    ("udn_test_4", "uses UserDefinedNetwork"),
    ("udn_with_ingress_controller", "uses UserDefinedNetwork"),
    ("udn_with_ingress_controller_two_pods", "uses UserDefinedNetwork"),
    ("udn_with_vm_and_ingress_controller", "uses UserDefinedNetwork, VirtualMachine"),
    // why: secondary networks (Multus NetworkAttachmentDefinitions, MultiNetworkPolicies) carry
    // connectivity outside the pod network that NetworkPolicies do not govern.
    ("nad_test_1", "uses NetworkAttachmentDefinition"),
    ("nad_test_15", "uses MultiNetworkPolicy, NetworkAttachmentDefinition"),
    ("nad_test_16", "uses MultiNetworkPolicy, NetworkAttachmentDefinition, VirtualMachine"),
    ("nad_test_17", "uses MultiNetworkPolicy, NetworkAttachmentDefinition"),
    ("nad_test_2", "uses NetworkAttachmentDefinition, VirtualMachine"),
    ("nad_test_3", "uses MultiNetworkPolicy, NetworkAttachmentDefinition"),
    ("nad_test_4", "uses MultiNetworkPolicy, NetworkAttachmentDefinition"),
    ("nad_test_5", "uses MultiNetworkPolicy, NetworkAttachmentDefinition"),
    ("nad_test_6", "uses MultiNetworkPolicy, NetworkAttachmentDefinition"),
    ("nad_test_8", "uses MultiNetworkPolicy, NetworkAttachmentDefinition"),
    // why: KubeVirt VirtualMachines are workloads the analyzer expands with their own rules;
    // Flowgate's inventory has no such kind.
    ("virtual_machines_example", "uses VirtualMachine"),
];

/// The number of claimed cases we reached; raise it when a case is added, never lower it.
const MIN_CLAIMED: usize = 104;

/// Object kinds that change the analyzer's answer but that Flowgate does not evaluate.
const FOREIGN_KINDS: &[&str] = &[
    "UserDefinedNetwork",
    "ClusterUserDefinedNetwork",
    "VirtualMachine",
    "VirtualMachineInstance",
    "NetworkAttachmentDefinition",
    "MultiNetworkPolicy",
];

fn oracle_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/netpol-analyzer")
}

#[test]
fn netpol_analyzer_cases() {
    let root = oracle_root();
    assert!(
        root.join("tests").is_dir() && root.join("test_outputs/connlist").is_dir(),
        "the oracle folder {} is missing (tests/data/netpol-analyzer/{{tests,test_outputs}}); \
         the conformance suite cannot run without it",
        root.display()
    );
    let cases = plain_cases(&root);
    for (name, _) in UNCLAIMED {
        assert!(cases.contains(*name), "UNCLAIMED names {name:?}, which is not a case of the oracle");
    }
    let unclaimed: BTreeMap<&str, &str> = UNCLAIMED.iter().copied().collect();
    let (mut passed, mut skipped, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for case in &cases {
        if let Some(why) = unclaimed.get(case.as_str()) {
            match foreign_kinds(&root, case) {
                Ok(kinds) if !kinds.is_empty() => skipped.push(format!("{case}: {why}")),
                Ok(_) => failures.push(format!("--- {case}\nlisted in UNCLAIMED but uses no foreign kind: claim it")),
                Err(e) => failures.push(format!("--- {case}\n{e}")),
            }
            continue;
        }
        match run_case(&root, case) {
            Ok(()) => passed.push(case.clone()),
            Err(e) => failures.push(format!("--- {case}\n{e}")),
        }
    }
    println!(
        "netpol-analyzer conformance: {} cases passed, {} skipped, {} failed",
        passed.len(),
        skipped.len(),
        failures.len()
    );
    for s in &skipped {
        println!("  skipped {s}");
    }
    assert!(failures.is_empty(), "{} claimed cases failed:\n{}", failures.len(), failures.join("\n"));
    assert!(passed.len() >= MIN_CLAIMED, "only {} cases claimed; expected at least {MIN_CLAIMED}", passed.len());
}

/// Case folders that have a plain connlist output.
fn plain_cases(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let dir = std::fs::read_dir(root.join("tests")).expect("read oracle tests folder");
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && expected_path(root, &name).is_file() {
            out.insert(name);
        }
    }
    out
}

/// The kinds of `FOREIGN_KINDS` that the case's folder holds (with their apiVersion).
fn foreign_kinds(root: &Path, case: &str) -> Result<Vec<String>, String> {
    let loaded = flowgate::inventory::load_paths(&[root.join("tests").join(case)]).map_err(|e| e.to_string())?;
    Ok(foreign_of(&loaded))
}

fn foreign_of(loaded: &flowgate::inventory::Loaded) -> Vec<String> {
    // `ignored` keys are `Kind (apiVersion)`.
    let kind = |k: &str| k.split(' ').next().unwrap_or_default().to_string();
    loaded.ignored.keys().filter(|k| FOREIGN_KINDS.contains(&kind(k).as_str())).cloned().collect()
}

fn expected_path(root: &Path, case: &str) -> PathBuf {
    root.join("test_outputs/connlist").join(format!("{case}_connlist_output.txt"))
}

fn run_case(root: &Path, case: &str) -> Result<(), String> {
    let loaded = flowgate::inventory::load_paths(&[root.join("tests").join(case)]).map_err(|e| e.to_string())?;
    let foreign = foreign_of(&loaded);
    if !foreign.is_empty() {
        return Err(format!("uses {foreign:?}, which Flowgate does not evaluate: list the case in UNCLAIMED"));
    }
    // Some case folders keep the analyzer's own JSON output beside the manifests; those documents
    // have no `kind`, and the analyzer skips them as we do.
    let errs: Vec<String> =
        loaded.errors.iter().filter(|e| e.reason != "object has no `kind`").map(|e| e.to_string()).collect();
    if !errs.is_empty() {
        return Err(format!("load errors:\n  {}", errs.join("\n  ")));
    }
    let path = expected_path(root, case);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let expected = oracle::parse_expected(&text, &path)?;
    let cluster = oracle::cluster(&loaded);
    let (eval, mut warnings) = Evaluator::new(&cluster.policies, &cluster.namespace_labels);
    let (eval, admin_warnings) = eval.with_admin(&cluster.admin);
    warnings.extend(admin_warnings);
    for w in &warnings {
        println!("{case}: warning: {w}");
    }

    let mut problems = Vec::new();
    let ids: BTreeSet<&str> = cluster.workloads.iter().map(|w| w.id.as_str()).collect();
    let mut between: BTreeMap<(&str, &str), &ConnSet> = BTreeMap::new();
    // Per workload, the external ranges it reaches (out) and is reached from (in).
    let mut ext_out: BTreeMap<&str, Vec<(Range, &ConnSet)>> = BTreeMap::new();
    let mut ext_in: BTreeMap<&str, Vec<(Range, &ConnSet)>> = BTreeMap::new();
    let mut ranges = Vec::new();
    for (src, dst, conns) in &expected.lines {
        let known = |id: &str| ids.contains(id);
        match (src, dst) {
            (End::Workload(a), End::Workload(b)) if known(a) && known(b) => {
                between.insert((a, b), conns);
            }
            (End::Workload(a), End::External(r)) if known(a) => {
                ext_out.entry(a).or_default().push((*r, conns));
                ranges.push(*r);
            }
            (End::External(r), End::Workload(b)) if known(b) => {
                ext_in.entry(b).or_default().push((*r, conns));
                ranges.push(*r);
            }
            _ => problems.push(format!("expected line names an unknown workload: {src:?} => {dst:?}")),
        }
    }

    let none = ConnSet::none();
    for a in &cluster.workloads {
        for b in &cluster.workloads {
            if a.id == b.id {
                continue;
            }
            let got = eval.allowed(&Peer::Pod(view(a)), &Peer::Pod(view(b)));
            let want = between.get(&(a.id.as_str(), b.id.as_str())).copied().unwrap_or(&none);
            if &got != want {
                problems.push(format!("{} => {}: got {got}, want {want}", a.id, b.id));
                continue;
            }
            // `check`, the per-connection query, must agree with the set at every edge of it.
            for proto in Protocol::ALL {
                for port in probe_ports(want.get(proto)) {
                    let Some(p) = Port::new(port) else { continue };
                    let d = eval.check(&Peer::Pod(view(a)), &Peer::Pod(view(b)), p, proto);
                    if d.allowed != want.contains(proto, port) {
                        problems.push(format!("{} => {} {proto} {port}: check says {d:?}, want {want}", a.id, b.id));
                    }
                }
            }
        }
    }

    let reps: Vec<IpAddr> = representatives(&ranges, &cluster.policies, &cluster.admin).into_iter().collect();
    for w in &cluster.workloads {
        let want_out = expected_at(&reps, ext_out.get(w.id.as_str()));
        let want_in = expected_at(&reps, ext_in.get(w.id.as_str()));
        for (i, &ip) in reps.iter().enumerate() {
            let got = eval.allowed(&Peer::Pod(view(w)), &Peer::Ip(ip));
            if got != want_out[i] {
                problems.push(format!("{} => {ip}: got {got}, want {}", w.id, want_out[i]));
            }
            let got = eval.allowed(&Peer::Ip(ip), &Peer::Pod(view(w)));
            if got != want_in[i] {
                problems.push(format!("{ip} => {}: got {got}, want {}", w.id, want_in[i]));
            }
        }
    }

    if problems.is_empty() {
        return Ok(());
    }
    let n = problems.len();
    problems.truncate(15);
    Err(format!("{n} differences, first ones:\n  {}", problems.join("\n  ")))
}

/// Addresses on both sides of every boundary the expected output or the policies draw. Within
/// the pieces these cut the address space into, every address is treated alike by both sides.
/// IPv6 is compared only when the expected output speaks of IPv6 ranges.
/// For each of the sorted addresses `reps`, the union of the expected lines whose range holds it.
/// Each line visits only the addresses inside its range (found by binary search), which keeps
/// cases with a thousand ranges fast.
fn expected_at(reps: &[IpAddr], lines: Option<&Vec<(Range, &ConnSet)>>) -> Vec<ConnSet> {
    let mut out = vec![ConnSet::none(); reps.len()];
    for (r, conns) in lines.into_iter().flatten() {
        let lo = reps.partition_point(|ip| *ip < r.start);
        let hi = reps.partition_point(|ip| *ip <= r.end);
        for acc in &mut out[lo..hi.max(lo)] {
            acc.union_with(conns);
        }
    }
    out
}

/// Ports on both sides of each edge of `set`, and a few common ones.
fn probe_ports(set: &PortSet) -> BTreeSet<u16> {
    let mut out = BTreeSet::from([1, 53, 80, 443, 8080, 65535]);
    for &(lo, hi) in set.ranges() {
        out.extend([lo.saturating_sub(1), lo, hi, hi.saturating_add(1)]);
    }
    out
}

fn view(w: &oracle::Workload) -> PodView<'_> {
    PodView { namespace: &w.namespace, name: &w.name, labels: &w.labels, ports: &w.ports }
}

fn representatives(ranges: &[Range], policies: &[NetworkPolicy], admin: &AdminPolicies) -> BTreeSet<IpAddr> {
    let mut bounds: Vec<(IpAddr, IpAddr)> = ranges.iter().map(|r| (r.start, r.end)).collect();
    // The admin policies' `networks` draw boundaries too.
    let specs = admin
        .admin
        .iter()
        .filter_map(|p| p.spec.as_ref())
        .chain(admin.baseline.iter().filter_map(|p| p.spec.as_ref()))
        .chain(admin.cluster.iter().filter_map(|p| p.spec.as_ref()));
    for spec in specs {
        for peer in spec.egress.iter().flatten().flat_map(|r| r.to.iter().flatten()) {
            for cidr in peer.networks.iter().flatten() {
                if let Ok(net) = cidr.trim().parse::<IpNet>() {
                    bounds.push((net.network(), net.broadcast()));
                }
            }
        }
    }
    for np in policies {
        let Some(spec) = &np.spec else { continue };
        let from = spec.ingress.iter().flatten().flat_map(|r| r.from.iter().flatten());
        let to = spec.egress.iter().flatten().flat_map(|r| r.to.iter().flatten());
        for block in from.chain(to).filter_map(|p| p.ip_block.as_ref()) {
            for cidr in std::iter::once(&block.cidr).chain(block.except.iter().flatten()) {
                if let Ok(net) = cidr.trim().parse::<IpNet>() {
                    bounds.push((net.network(), net.broadcast()));
                }
            }
        }
    }
    let v6 = ranges.iter().any(|r| r.start.is_ipv6());
    let mut out = BTreeSet::from(["0.0.0.0".parse().unwrap(), "255.255.255.255".parse().unwrap()]);
    for (start, end) in bounds {
        for ip in [Some(start), Some(end), oracle::prev(start), oracle::next(end)].into_iter().flatten() {
            if ip.is_ipv4() || v6 {
                out.insert(ip);
            }
        }
    }
    out
}
