//! Real captures, as a new user runs them: every Hubble sample in `tests/data/hubble` through
//! `flowgate generate` without an inventory, and the hand-written proxy fixture shaped on a kind +
//! Cilium L7-proxy capture (`tests/fixtures/bookinfo-proxy`). What a reviewer would reject is
//! checked on every sample: rules for ephemeral ports, ipBlocks for pod addresses, selectors that
//! rest on labels many apps share, verification mismatches, a failing exit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

const EPHEMERAL_START: u64 = 32768;
/// Keys that, alone, would select any future pod of any app (the generator's shared keys).
const SHARED: &[&str] =
    &["version", "tier", "env", "track", "release", "chart", "heritage", "security.istio.io/tlsMode"];

#[path = "support/bin.rs"]
mod bin;
use bin::{Run, flowgate};

fn samples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hubble");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/data/hubble")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    assert!(v.len() >= 7, "the seven copied samples");
    v
}

/// Every flow object of a sample file.
fn flows_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v.get("flow").cloned().unwrap_or(v)
        })
        .collect()
}

/// Addresses that a pod held in the capture (an endpoint with a pod name).
fn pod_ips(flows: &[Value]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in flows {
        for (end, ip) in [("source", "source"), ("destination", "destination")] {
            if f[end]["pod_name"].as_str().is_some_and(|p| !p.is_empty())
                && let Some(ip) = f["IP"][ip].as_str()
            {
                out.insert(ip.to_string());
            }
        }
    }
    out
}

fn policies(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml).unwrap_or_else(|e| panic!("bad YAML ({e}):\n{yaml}"))
}

/// Every `matchLabels` map of pod selectors in a policy: its own and its peers'.
fn pod_selectors(p: &Value) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut push = |sel: &Value| {
        if let Some(m) = sel["matchLabels"].as_object() {
            out.push(m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect());
        }
    };
    push(&p["spec"]["podSelector"]);
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        for rule in p["spec"][dir].as_array().into_iter().flatten() {
            for peer in rule[peers].as_array().into_iter().flatten() {
                push(&peer["podSelector"]);
            }
        }
    }
    out
}

fn rule_ports(p: &Value) -> Vec<u64> {
    let mut out = Vec::new();
    for dir in ["ingress", "egress"] {
        for rule in p["spec"][dir].as_array().into_iter().flatten() {
            for port in rule["ports"].as_array().into_iter().flatten() {
                out.push(port["port"].as_u64().expect("numeric port"));
            }
        }
    }
    out
}

fn ip_blocks(p: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        for rule in p["spec"][dir].as_array().into_iter().flatten() {
            for peer in rule[peers].as_array().into_iter().flatten() {
                if let Some(c) = peer["ipBlock"]["cidr"].as_str() {
                    out.push(c.to_string());
                }
            }
        }
    }
    out
}

/// The checks every generated set must pass, whatever the input.
fn assert_sound(name: &str, run: &Run, pods: &BTreeSet<String>) -> Vec<Value> {
    assert_eq!(run.code, Some(0), "{name}: exit code\n{}", run.stderr);
    assert!(run.stderr.contains(" 0 mismatches"), "{name}: verification\n{}", run.stderr);
    let docs = policies(&run.stdout);
    for p in &docs {
        let pname = p["metadata"]["name"].as_str().unwrap_or_default();
        for port in rule_ports(p) {
            assert!(port < EPHEMERAL_START, "{name}: {pname} has a rule for ephemeral port {port}");
        }
        for cidr in ip_blocks(p) {
            let host = cidr.split('/').next().unwrap();
            assert!(!pods.contains(host), "{name}: {pname} names the pod address {cidr} as an ipBlock");
        }
        for sel in pod_selectors(p) {
            assert!(
                !sel.is_empty() && !sel.keys().all(|k| SHARED.contains(&k.as_str())),
                "{name}: {pname} selects by shared labels only: {sel:?}"
            );
        }
    }
    docs
}

#[test]
fn every_sample_generates_a_sound_verified_set_without_an_inventory() {
    let mut total_policies = 0;
    for path in samples() {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let pods = pod_ips(&flows_of(&path));
        let run = flowgate(&["generate", "--flows", path.to_str().unwrap(), "--all-namespaces"]);
        let docs = assert_sound(&name, &run, &pods);
        total_policies += docs.len();
        insta::assert_snapshot!(format!("real_capture__{}", name.trim_end_matches(".json")), run.stdout);
    }
    assert!(total_policies > 10, "the samples produce policies ({total_policies})");
}

/// The Cilium spelling of every sample: verified against its own traffic by the evaluator reading
/// CiliumNetworkPolicy, no rule for an ephemeral port, no pod address as a CIDR, no node address
/// at all (nodes are entities), and the same selectors as the NetworkPolicy.
#[test]
fn every_sample_verifies_in_the_cilium_dialect() {
    for path in samples().into_iter().chain([PathBuf::from(proxy_fixture())]) {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let flows = flows_of(&path);
        let pods = pod_ips(&flows);
        let p = path.to_str().unwrap();
        let run = flowgate(&["generate", "--flows", p, "--all-namespaces", "--dialect", "cilium"]);
        assert_eq!(run.code, Some(0), "{name}: exit code\n{}", run.stderr);
        assert!(run.stderr.contains(" 0 mismatches"), "{name}: verification\n{}", run.stderr);
        let knp = policies(&flowgate(&["generate", "--flows", p, "--all-namespaces"]).stdout);
        let cnp = policies(&run.stdout);
        assert_eq!(cnp.len(), knp.len(), "{name}: one policy per workload in both dialects");
        for (c, k) in cnp.iter().zip(&knp) {
            assert_eq!(c["spec"]["endpointSelector"], k["spec"]["podSelector"], "{name}: same selector");
            let text = c.to_string();
            for ip in &pods {
                assert!(
                    !text.contains(&format!("\"{ip}/")),
                    "{name}: {} names pod address {ip}",
                    c["metadata"]["name"]
                );
            }
            for dir in ["ingress", "egress"] {
                for rule in c["spec"][dir].as_array().into_iter().flatten() {
                    for port in rule["toPorts"][0]["ports"].as_array().into_iter().flatten() {
                        let port: u64 = port["port"].as_str().unwrap().parse().unwrap();
                        assert!(port < EPHEMERAL_START, "{name}: a rule for ephemeral port {port}");
                    }
                }
            }
        }
        // Nodes are entities in Cilium's dialect: no node or host address appears.
        for f in &flows {
            for end in ["source", "destination"] {
                let reserved = f[end]["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|l| l.as_str().is_some_and(|l| l == "reserved:host" || l == "reserved:remote-node"));
                if reserved && let Some(ip) = f["IP"][end].as_str() {
                    assert!(!run.stdout.contains(&format!("{ip}/")), "{name}: node address {ip} in\n{}", run.stdout);
                }
            }
        }
    }
}

#[test]
fn bookinfo_is_selected_by_its_app_label() {
    for file in ["hubble-otel_basic-sample-10-flows.json", "hubble-otel_basic-sample-348-http-flows.json"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hubble").join(file);
        let run = flowgate(&["generate", "--flows", path.to_str().unwrap(), "--namespace", "bookinfo"]);
        let docs = policies(&run.stdout);
        assert!(!docs.is_empty(), "{file}: bookinfo gets policies");
        for p in &docs {
            let own = &p["spec"]["podSelector"]["matchLabels"];
            assert!(own.get("app").is_some(), "{file}: {} is selected by {own}", p["metadata"]["name"]);
        }
    }
}

#[test]
fn node_local_dns_is_one_daemonset_that_kube_dns_admits() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hubble/hubble-otel_basic-sample-330-dns-flows.json");
    let path = path.to_str().unwrap();
    let run = flowgate(&["generate", "--flows", path, "--namespace", "kube-system"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("inferred: daemonset/kube-system/node-local-dns from 4 pods"), "{}", run.stderr);
    let docs = policies(&run.stdout);
    let names: Vec<&str> = docs.iter().map(|p| p["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["kube-dns", "node-local-dns"]);
    let nld = &docs[1];
    assert_eq!(nld["metadata"]["annotations"]["flowgate.io/workload"], "daemonset/kube-system/node-local-dns");
    assert_eq!(nld["spec"]["podSelector"]["matchLabels"], serde_json::json!({"k8s-app": "node-local-dns"}));

    let rows = flowgate(&["connections", "--flows", path, "--namespace", "kube-system", "--json"]);
    let rows: Vec<Value> = serde_json::from_str(&rows.stdout).unwrap();
    let into_dns: Vec<&Value> = rows
        .iter()
        .filter(|r| r["workload"] == "deployment/kube-system/kube-dns" && r["direction"] == "ingress")
        .collect();
    assert_eq!(into_dns.len(), 1, "{into_dns:?}");
    assert_eq!(into_dns[0]["peer"], "daemonset/kube-system/node-local-dns");
    assert_eq!(into_dns[0]["status"], "allowed");
}

fn proxy_fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bookinfo-proxy/flows.json").to_str().unwrap().to_string()
}

#[test]
fn behind_the_l7_proxy_replies_identities_and_versions_come_out_right() {
    let flows = proxy_fixture();
    let pods = pod_ips(&flows_of(Path::new(&flows)));
    let run = flowgate(&["generate", "--flows", &flows, "--namespace", "bookinfo"]);
    let docs = assert_sound("bookinfo-proxy", &run, &pods);
    insta::assert_snapshot!("real_capture__bookinfo_proxy", run.stdout);
    assert!(run.stderr.contains("3 replies (dropped), 1 requests, 1 undecided"), "{}", run.stderr);
    assert!(run.stderr.contains("2 matched a workload, 0 matched none"), "{}", run.stderr);
    let by_name: BTreeMap<&str, &Value> = docs.iter().map(|p| (p["metadata"]["name"].as_str().unwrap(), p)).collect();
    // The replies never became rules: ratings has no egress but DNS, and nothing names the nodes.
    assert!(ip_blocks(by_name["ratings-v1"]).is_empty());
    assert_eq!(by_name["ratings-v1"]["spec"]["egress"].as_array().unwrap().len(), 1, "DNS only");
    // The versions of reviews are told apart by app and version together...
    assert_eq!(
        by_name["reviews-v2"]["spec"]["podSelector"]["matchLabels"],
        serde_json::json!({"app": "reviews", "version": "v2"})
    );
    let ratings_from: BTreeSet<String> = by_name["ratings-v1"]["spec"]["ingress"][0]["from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["podSelector"]["matchLabels"].to_string())
        .collect();
    assert_eq!(
        ratings_from,
        BTreeSet::from([
            r#"{"app":"reviews","version":"v2"}"#.to_string(),
            r#"{"app":"reviews","version":"v3"}"#.to_string()
        ])
    );
    // ...and productpage, which calls all three, names them by the app they are.
    let to: Vec<String> = by_name["productpage-v1"]["spec"]["egress"][0]["to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["podSelector"]["matchLabels"].to_string())
        .collect();
    assert_eq!(to, [r#"{"app":"details"}"#, r#"{"app":"reviews"}"#]);

    // The proxy's flows from cilium_host are productpage's; the address is nowhere.
    let rows = flowgate(&["connections", "--flows", &flows, "--namespace", "bookinfo", "--json"]);
    assert!(!rows.stdout.contains("10.244.0.148"), "{}", rows.stdout);
    let rows: Vec<Value> = serde_json::from_str(&rows.stdout).unwrap();
    let undecided: Vec<&Value> = rows.iter().filter(|r| r["undecided"] == true).collect();
    assert_eq!(undecided.len(), 2, "the one unsettled connection, seen from both ends: {undecided:?}");
    assert!(undecided.iter().all(|r| r["reason"] == "undecided_direction" && r["port"] == 45001));
}
