//! Selectors that say what they mean: with an inventory where workloads share `app` and differ by
//! `tier`, `version` or `track`, every selector names the app *and* the distinguishing label, and
//! a pod that appears tomorrow carrying only the shared labels is granted nothing by any
//! generated policy.

use std::collections::BTreeMap;
use std::io::Write;

use flowgate::model::{Labels, Port, Protocol};
use flowgate::offline::{self, Inputs};
use flowgate::policy::eval::{Evaluator, Peer, PodView};
use flowgate::policy::generate::Options;

/// (workload, its pods' labels, its address)
type Workload = (&'static str, &'static [(&'static str, &'static str)], &'static str);
const WORKLOADS: &[Workload] = &[
    ("web", &[("app", "web"), ("tier", "frontend"), ("track", "stable")], "10.244.0.10"),
    ("api-backend", &[("app", "api"), ("tier", "backend")], "10.244.0.11"),
    ("api-canary", &[("app", "api"), ("tier", "canary")], "10.244.0.12"),
    ("svc-v1", &[("app", "svc"), ("version", "v1")], "10.244.0.13"),
    ("svc-v2", &[("app", "svc"), ("version", "v2")], "10.244.0.14"),
    ("worker", &[("app", "worker"), ("track", "stable")], "10.244.0.15"),
    ("worker-canary", &[("app", "worker"), ("track", "canary")], "10.244.0.16"),
];

/// (client, server, port)
const CALLS: &[(&str, &str, u16)] = &[
    ("web", "api-backend", 8080),
    ("web", "api-canary", 8080),
    ("api-backend", "svc-v1", 9090),
    ("api-canary", "svc-v2", 9090),
    ("web", "worker-canary", 7000),
    ("api-backend", "worker", 7001),
];

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn write_inputs(dir: &std::path::Path) -> Inputs {
    let pods: Vec<serde_json::Value> = WORKLOADS
        .iter()
        .map(|(name, l, ip)| {
            serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{name}-0"), "namespace": "shop", "labels": labels(l),
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": name, "controller": true}]},
                "spec": {"containers": [{"name": "c"}]},
                "status": {"podIP": ip}
            })
        })
        .collect();
    let inv = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": pods});
    std::fs::write(dir.join("inventory.json"), inv.to_string()).unwrap();
    let ip = |w: &str| WORKLOADS.iter().find(|(n, _, _)| *n == w).unwrap().2;
    let mut flows = std::fs::File::create(dir.join("flows.ndjson")).unwrap();
    for (i, (client, server, port)) in CALLS.iter().enumerate() {
        writeln!(
            flows,
            r#"{{"time":"2026-01-02T00:00:{i:02}Z","src_ip":"{}","src_port":4{i:04},"dst_ip":"{}","dst_port":{port},"protocol":"TCP"}}"#,
            ip(client),
            ip(server)
        )
        .unwrap();
    }
    Inputs {
        inventory: vec![dir.join("inventory.json")],
        flows: vec![dir.join("flows.ndjson").to_str().unwrap().to_string()],
        ..Default::default()
    }
}

#[test]
fn shared_labels_never_select_alone_and_a_new_pod_with_only_them_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let obs = offline::observe(&write_inputs(dir.path())).unwrap();
    let opts = Options { namespaces: Some(["shop".to_string()].into()), ..Default::default() };
    let (generation, verification) = offline::generate_and_verify(&obs, &opts);
    assert!(verification.ok(), "{:?}", verification.mismatches);

    let selectors: BTreeMap<String, Labels> =
        generation.policies.iter().map(|g| (g.workload.name.clone(), g.selector.clone())).collect();
    let want = [
        ("web", labels(&[("app", "web")])),
        ("api-backend", labels(&[("app", "api"), ("tier", "backend")])),
        ("api-canary", labels(&[("app", "api"), ("tier", "canary")])),
        ("svc-v1", labels(&[("app", "svc"), ("version", "v1")])),
        ("svc-v2", labels(&[("app", "svc"), ("version", "v2")])),
        ("worker", labels(&[("app", "worker"), ("track", "stable")])),
        ("worker-canary", labels(&[("app", "worker"), ("track", "canary")])),
    ];
    for (w, sel) in &want {
        assert_eq!(selectors.get(*w), Some(sel), "{w}");
    }
    // web reaches both api workloads on one port: that is every pod with app=api.
    let web = generation.policies.iter().find(|g| g.workload.name == "web").unwrap();
    let yaml = flowgate::policy::generate::to_yaml(std::slice::from_ref(web)).unwrap();
    assert!(yaml.contains("app: api\n"), "{yaml}");

    // Tomorrow's pods: each carries only labels observed workloads share with others.
    let policies: Vec<_> = generation.policies.iter().map(|g| g.policy.clone()).collect();
    let (evaluator, warnings) = Evaluator::new(&policies, &BTreeMap::new());
    assert!(warnings.is_empty(), "{warnings:?}");
    let newcomers = [
        labels(&[("tier", "backend")]),
        labels(&[("version", "v1")]),
        labels(&[("track", "stable")]),
        labels(&[("tier", "backend"), ("version", "v1"), ("track", "stable")]),
        labels(&[("app", "other"), ("tier", "canary"), ("version", "v2"), ("track", "canary")]),
    ];
    let ports = [7000u16, 7001, 8080, 9090];
    for newcomer in &newcomers {
        let stranger = Peer::Pod(PodView { namespace: "shop", name: "stranger", labels: newcomer, ports: &[] });
        for (name, l, _) in WORKLOADS {
            let l = labels(l);
            let observed = Peer::Pod(PodView { namespace: "shop", name, labels: &l, ports: &[] });
            for port in ports {
                let port = Port::new(port).unwrap();
                assert!(
                    !evaluator.allows(&stranger, &observed, port, Protocol::Tcp),
                    "{newcomer:?} may reach {name} on {port}"
                );
                assert!(
                    !evaluator.allows(&observed, &stranger, port, Protocol::Tcp),
                    "{name} may reach {newcomer:?} on {port}"
                );
            }
        }
    }
}
