//! Cluster guardrails (`generate -A --dialect admin|admin-v1alpha1`) for the demo cluster: its
//! inventory and a day of its traffic, through the offline pipeline. What is written is read back
//! from its YAML and evaluated ([`flowgate::policy::eval::Evaluator::with_admin`]).

#[path = "support/schema.rs"]
mod schema;

use std::collections::BTreeSet;

use flowgate::enrich::Endpoint;
use flowgate::flows::FlowFormat;
use flowgate::model::{Port, Protocol, WorkloadKind, WorkloadRef};
use flowgate::offline::{Inputs, Observed, observe};
use flowgate::policy::admin::AdminPolicies;
use flowgate::policy::eval::Evaluator;
use flowgate::policy::guardrails::{
    self as g, GuardOptions, Guardrails, PairDecisions, SharedDirection, read_back, to_admin_network_policies,
    to_cluster_network_policies, to_yaml,
};
use flowgate::policy::verify::{PortIndex, peer_of};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::networking::v1::NetworkPolicy;

/// The demo cluster (`serve --demo`): its inventory and 24 hours of its feed.
fn demo() -> (tempfile::TempDir, Observed) {
    let dir = tempfile::tempdir().unwrap();
    let now: Timestamp = "2026-11-30T12:00:00Z".parse().unwrap();
    let mut flows = String::new();
    let mut t = now - SignedDuration::from_hours(24);
    while t <= now {
        flows += &flowgate::web::demo::tick(t, now);
        t += SignedDuration::from_mins(10);
    }
    let (inv, fl) = (dir.path().join("inventory.json"), dir.path().join("flows.ndjson"));
    std::fs::write(&inv, flowgate::web::demo::INVENTORY).unwrap();
    std::fs::write(&fl, flows).unwrap();
    let obs = observe(&Inputs {
        inventory: vec![inv],
        flows: vec![fl.to_string_lossy().into_owned()],
        format: FlowFormat::Auto,
        since: None,
        until: None,
        cluster_cidrs: Vec::new(),
        threads: 1,
    })
    .unwrap();
    (dir, obs)
}

fn both(rails: &Guardrails) -> [(&'static str, String); 2] {
    [
        ("v1alpha2", to_yaml(&to_cluster_network_policies(rails).unwrap()).unwrap()),
        ("v1alpha1", to_yaml(&to_admin_network_policies(rails).unwrap()).unwrap()),
    ]
}

fn w(kind: WorkloadKind, ns: &str, name: &str) -> Endpoint {
    Endpoint::Workload { workload: WorkloadRef::new(kind, ns, name) }
}

/// Whether the guardrails (and `nps`) allow `src` -> `dst` on `port`/TCP.
fn allows(
    obs: &Observed,
    policies: &AdminPolicies,
    nps: &[NetworkPolicy],
    src: &Endpoint,
    dst: &Endpoint,
    port: u16,
) -> bool {
    let (eval, _) = Evaluator::new(nps, &obs.inventory.namespaces);
    let (eval, warnings) = eval.with_admin(policies);
    assert!(warnings.is_empty(), "{warnings:?}");
    let ports = PortIndex::new(&obs.inventory);
    let s = peer_of(src, &obs.connections.catalog, &ports);
    let d = peer_of(dst, &obs.connections.catalog, &ports);
    eval.check(&s.as_peer(), &d.as_peer(), Port::new(port).unwrap(), Protocol::Tcp).allowed
}

fn javaapp() -> Endpoint {
    w(WorkloadKind::Deployment, "example-java-app", "example-java-app-javaapp")
}

fn prometheus() -> Endpoint {
    w(WorkloadKind::StatefulSet, "monitoring", "prometheus")
}

fn grafana() -> Endpoint {
    w(WorkloadKind::Deployment, "monitoring", "grafana")
}

fn nginx() -> Endpoint {
    w(WorkloadKind::Deployment, "ingress-nginx", "ingress-nginx-controller")
}

#[test]
fn the_demo_clusters_guardrails_verify_against_its_traffic_in_both_api_versions() {
    let (_dir, obs) = demo();
    let rails = g::guardrails(&obs.inventory, &obs.connections, &GuardOptions::default());
    assert_eq!(rails.namespaces, ["example-java-app", "ingress-nginx", "kube-system", "monitoring"]);
    let pairs: Vec<(&str, &str, bool)> =
        rails.pairs.iter().map(|p| (p.from.as_str(), p.to.as_str(), p.shared)).collect();
    assert_eq!(
        pairs,
        [
            ("example-java-app", "kube-system", true),
            ("ingress-nginx", "example-java-app", false),
            ("ingress-nginx", "kube-system", true),
            ("monitoring", "example-java-app", false),
            ("monitoring", "kube-system", true),
        ]
    );
    assert!(rails.pairs.iter().all(|p| p.allowed && p.observed));
    // Only the DNS is shared: no other workload talks with most namespaces.
    assert_eq!(rails.shared.len(), 1, "{:?}", rails.shared);
    assert_eq!(rails.shared[0].direction, SharedDirection::To);
    assert_eq!(rails.shared[0].namespace, "kube-system");

    for (api, yaml) in both(&rails) {
        let policies = read_back(&yaml).unwrap();
        let mismatches = g::verify(&rails, &policies, &obs.inventory, &obs.connections);
        assert!(mismatches.is_empty(), "{api}: {mismatches:?}\n{yaml}");
        // What was seen passes; what was never seen between namespaces does not.
        assert!(allows(&obs, &policies, &[], &prometheus(), &javaapp(), 8080), "{api}");
        assert!(allows(&obs, &policies, &[], &nginx(), &javaapp(), 8080), "{api}");
        assert!(!allows(&obs, &policies, &[], &javaapp(), &grafana(), 3000), "{api}: never seen");
        assert!(!allows(&obs, &policies, &[], &nginx(), &prometheus(), 9090), "{api}: never seen");
        // kube-system's clients reach its DNS through the shared rule, and nothing else of it.
        let dns = w(WorkloadKind::Deployment, "kube-system", "coredns");
        assert!(!allows(&obs, &policies, &[], &javaapp(), &dns, 9153), "{api}: only the DNS ports");
        // Within a namespace nothing changes.
        assert!(allows(&obs, &policies, &[], &grafana(), &prometheus(), 9090), "{api}");
        // Same input, same bytes.
        assert_eq!(both(&rails).iter().find(|(a, _)| *a == api).unwrap().1, yaml);
    }
    insta::assert_snapshot!("guardrails_demo_v1alpha2", both(&rails)[0].1);
    insta::assert_snapshot!("guardrails_demo_v1alpha1", both(&rails)[1].1);
}

/// An excluded pair is denied; a pair never seen can be included. In v1alpha2 the deny is the
/// baseline, which a namespace owner's NetworkPolicy that isolates the pod overrides; v1alpha1
/// has no per-namespace baseline, so there the deny is an admin rule that holds against it.
#[test]
fn excluded_pairs_are_denied_and_included_ones_allowed() {
    let (_dir, obs) = demo();
    let opts = GuardOptions {
        decisions: PairDecisions {
            exclude: BTreeSet::from([("monitoring".to_string(), "example-java-app".to_string())]),
            include: BTreeSet::from([("example-java-app".to_string(), "monitoring".to_string())]),
        },
        ..Default::default()
    };
    let rails = g::guardrails(&obs.inventory, &obs.connections, &opts);
    let row = |from: &str, to: &str| rails.pairs.iter().find(|p| p.from == from && p.to == to).unwrap();
    assert!(!row("monitoring", "example-java-app").allowed);
    assert!(row("example-java-app", "monitoring").allowed && !row("example-java-app", "monitoring").observed);
    // The owner of example-java-app allows the scrape with a NetworkPolicy of their own.
    let owner: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-scrape", "namespace": "example-java-app"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"namespaceSelector": {}}]}]}
    }))
    .unwrap();
    for (api, yaml) in both(&rails) {
        let policies = read_back(&yaml).unwrap();
        let mismatches = g::verify(&rails, &policies, &obs.inventory, &obs.connections);
        assert!(mismatches.is_empty(), "{api}: {mismatches:?}\n{yaml}");
        assert!(!allows(&obs, &policies, &[], &prometheus(), &javaapp(), 8080), "{api}: excluded");
        assert!(allows(&obs, &policies, &[], &javaapp(), &grafana(), 3000), "{api}: included");
        assert!(allows(&obs, &policies, &[], &nginx(), &javaapp(), 8080), "{api}: untouched");
        let with_owner = allows(&obs, &policies, std::slice::from_ref(&owner), &prometheus(), &javaapp(), 8080);
        assert_eq!(with_owner, api == "v1alpha2", "{api}: the baseline yields to the namespace's own policy");
    }
}

/// A workload most namespaces reach becomes a shared service: every namespace may reach it on
/// its ports by an admin rule, which no NetworkPolicy can take away.
#[test]
fn a_service_most_namespaces_reach_is_shared_by_an_admin_rule() {
    let (_dir, obs) = demo();
    // javaapp is reached from two other namespaces (ingress-nginx and monitoring): shared once
    // two are enough.
    let opts = GuardOptions { min_shared: 2, ..Default::default() };
    let rails = g::guardrails(&obs.inventory, &obs.connections, &opts);
    let shared: Vec<&str> = rails.shared.iter().map(|s| s.workload.as_str()).collect();
    assert!(shared.contains(&"deployment/example-java-app/example-java-app-javaapp"), "{shared:?}");
    let deny_all: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny-all", "namespace": "example-java-app"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
    }))
    .unwrap();
    for (api, yaml) in both(&rails) {
        let policies = read_back(&yaml).unwrap();
        let mismatches = g::verify(&rails, &policies, &obs.inventory, &obs.connections);
        assert!(mismatches.is_empty(), "{api}: {mismatches:?}\n{yaml}");
        // kube-system's pods never called it, but every namespace may now, on its port only.
        let dns = w(WorkloadKind::Deployment, "kube-system", "coredns");
        assert!(allows(&obs, &policies, std::slice::from_ref(&deny_all), &dns, &javaapp(), 8080), "{api}");
        assert!(!allows(&obs, &policies, std::slice::from_ref(&deny_all), &dns, &javaapp(), 9999), "{api}");
    }
}

/// Every document written, in both versions and for every case above, passes the published CRD's
/// `openAPIV3Schema` (kubernetes-sigs/network-policy-api: ClusterNetworkPolicy of v0.2.0, Admin-
/// and BaselineAdminNetworkPolicy of v0.1.8, vendored in tests/data/network-policy-api); and the
/// check refuses what the API server would.
#[test]
fn every_document_passes_the_published_crd_schema() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/network-policy-api/");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}{f}")).unwrap();
    let cnp = schema::crd_schema(&read("policy.networking.k8s.io_clusternetworkpolicies.yaml"), "v1alpha2");
    let anp = schema::crd_schema(&read("policy.networking.k8s.io_adminnetworkpolicies.yaml"), "v1alpha1");
    let (_dir, obs) = demo();
    let cases = [
        GuardOptions::default(),
        GuardOptions { min_shared: 2, ..Default::default() },
        GuardOptions {
            decisions: PairDecisions {
                exclude: BTreeSet::from([("monitoring".to_string(), "example-java-app".to_string())]),
                include: BTreeSet::from([("example-java-app".to_string(), "monitoring".to_string())]),
            },
            ..Default::default()
        },
    ];
    let (mut documents, mut cel_total) = (0, 0);
    for opts in &cases {
        let rails = g::guardrails(&obs.inventory, &obs.connections, opts);
        for (api, yaml) in both(&rails) {
            for doc in serde_saphyr::from_multiple::<serde_json::Value>(&yaml).unwrap() {
                let s = if api == "v1alpha2" { &cnp } else { &anp };
                let (errors, cel) = schema::validate(&doc, s);
                assert!(errors.is_empty(), "{api} {}: {errors:#?}", doc["metadata"]["name"]);
                documents += 1;
                cel_total += cel;
            }
        }
    }
    assert!(documents >= 20, "{documents}");
    // The check can fail: what the API server refuses, it refuses.
    let mut bad = serde_saphyr::from_multiple::<serde_json::Value>(
        &both(&g::guardrails(&obs.inventory, &obs.connections, &cases[0]))[0].1,
    )
    .unwrap()
    .remove(0);
    bad["spec"]["priority"] = serde_json::json!(5000);
    bad["spec"]["tier"] = serde_json::json!("Platform");
    bad["spec"]["egress"][0]["action"] = serde_json::json!("Allow");
    bad["spec"]["egress"][0]["colour"] = serde_json::json!("red");
    let (errors, _) = schema::validate(&bad, &cnp);
    let text = errors.join("\n");
    for want in [".spec.priority", ".spec.tier", ".spec.egress[0].action", ".spec.egress[0].colour: unknown field"] {
        assert!(text.contains(want), "{want} not refused:\n{text}");
    }
    println!("CRD schema check: {documents} documents valid; CEL rules met but not evaluated: {cel_total}");
}
