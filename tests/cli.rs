//! End to end: the real `flowgate` binary on fixture files, as a user or a pipeline runs it.
//!
//! Every test runs the binary with the crate root as working directory, so fixture paths (and the
//! paths the binary prints back) are relative: `tests/fixtures/...`. Policies are read back from
//! the YAML and flattened to `PEER PORT/PROTO` strings per direction, so an assertion names exactly
//! the rules a workload gets; `check --json` and `connections --json` are read as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[path = "support/served.rs"]
mod served;
use served::Served;

const JAVA_INV: &str = "tests/fixtures/java-app/inventory.json";
const JAVA_FLOWS: &str = "tests/fixtures/java-app/flows.ndjson";
const EXTRA: &str = "tests/fixtures/java-app-extra";
const NS: &str = "example-java-app";

const CASSANDRA: &str = "deployment/example-java-app/example-java-app-cassandra";
const EXTERNAL: &str = "192.229.173.207";

/// Peers as `flat` names them.
const DNS: &str = "ns[kubernetes.io/metadata.name=kube-system] pods[k8s-app=kube-dns]";
const JAVAAPP: &str = "pods[app.kubernetes.io/name=example-java-app-javaapp]";
const JCLIENT: &str = "pods[app.kubernetes.io/name=example-java-app-jclient]";
const MONGO: &str = "pods[app.kubernetes.io/name=example-java-app-mongo]";
const REDIS: &str = "pods[app.kubernetes.io/name=example-java-app-redis]";
const TRUSTED: &str = "cidr[192.229.173.0/24]";

// ---------------------------------------------------------------------------------------------
// Running the binary and reading what it wrote
// ---------------------------------------------------------------------------------------------

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    fn ok(self) -> Self {
        self.expect_code(0)
    }

    fn json(&self) -> Vec<Value> {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

fn flowgate<S: AsRef<str>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("run flowgate");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// `SUBCOMMAND --inventory <java app> --flows <java app> [extra flow files] --namespace NS ARGS...`
fn java(subcommand: &str, more_flows: &[&str], args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![subcommand.into(), "--inventory".into(), JAVA_INV.into(), "--flows".into()];
    v.push(JAVA_FLOWS.into());
    v.extend(more_flows.iter().map(|f| format!("{EXTRA}/{f}")));
    v.extend(["--namespace".into(), NS.into()]);
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

fn extra(file: &str) -> String {
    format!("{EXTRA}/{file}")
}

fn hubble_sample(file: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hubble");
    let path = dir.join(file);
    assert!(
        path.is_file(),
        "the real Hubble samples are missing: expected {} (copied into tests/data/hubble)",
        path.display()
    );
    path.to_str().expect("UTF-8 path").to_string()
}

// ---------------------------------------------------------------------------------------------
// Reading policies back
// ---------------------------------------------------------------------------------------------

fn parse_policies(yaml: &str) -> Vec<Value> {
    let docs = serde_saphyr::from_multiple::<Value>(yaml).unwrap_or_else(|e| panic!("bad YAML ({e}):\n{yaml}"));
    for d in &docs {
        assert_eq!(d["kind"], "NetworkPolicy", "{d}");
        assert_eq!(d["apiVersion"], "networking.k8s.io/v1", "{d}");
    }
    docs
}

/// A policy's `(namespace, name)`.
type PolicyName = (String, String);

/// `(namespace, name)` of every policy, in output order.
fn names(policies: &[Value]) -> Vec<PolicyName> {
    policies
        .iter()
        .map(|p| {
            let m = &p["metadata"];
            (m["namespace"].as_str().unwrap().to_string(), m["name"].as_str().unwrap().to_string())
        })
        .collect()
}

fn policy<'a>(policies: &'a [Value], name: &str) -> &'a Value {
    policies
        .iter()
        .find(|p| p["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no policy {name} in {:?}", names(policies)))
}

fn labels(v: &Value) -> String {
    if v.is_null() {
        // An empty selector (`namespaceSelector: {}`) selects everything.
        return "*".to_string();
    }
    let map = v.as_object().unwrap_or_else(|| panic!("matchLabels is not a map: {v}"));
    map.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap())).collect::<Vec<_>>().join(",")
}

fn peer_name(peer: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(ns) = peer.get("namespaceSelector") {
        assert!(ns.get("matchExpressions").is_none(), "{peer}");
        parts.push(format!("ns[{}]", labels(&ns["matchLabels"])));
    }
    if let Some(pods) = peer.get("podSelector") {
        assert!(pods.get("matchExpressions").is_none(), "{peer}");
        parts.push(format!("pods[{}]", labels(&pods["matchLabels"])));
    }
    if let Some(block) = peer.get("ipBlock") {
        assert!(block.get("except").is_none(), "{peer}");
        parts.push(format!("cidr[{}]", block["cidr"].as_str().unwrap()));
    }
    assert!(!parts.is_empty(), "empty peer {peer}");
    parts.join(" ")
}

/// One `PEER PORT/PROTO` string per peer and port of a policy's `ingress` or `egress` rules.
/// Generated rules always name their peers and ports; a rule without them fails the test.
fn flat(policy: &Value, direction: &str) -> BTreeSet<String> {
    let peers_key = if direction == "ingress" { "from" } else { "to" };
    let mut out = BTreeSet::new();
    for rule in policy["spec"][direction].as_array().into_iter().flatten() {
        let peers = rule[peers_key].as_array().unwrap_or_else(|| panic!("rule without {peers_key}: {rule}"));
        let ports = rule["ports"].as_array().unwrap_or_else(|| panic!("rule without ports: {rule}"));
        for peer in peers {
            for port in ports {
                assert!(port.get("endPort").is_none(), "{port}");
                out.insert(format!("{} {}/{}", peer_name(peer), port["port"], port["protocol"].as_str().unwrap()));
            }
        }
    }
    out
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every label key used by any selector in the policies.
fn selector_keys(policies: &[Value]) -> BTreeSet<String> {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "matchLabels" {
                        out.extend(v.as_object().unwrap().keys().cloned());
                    } else {
                        walk(v, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for p in policies {
        walk(&p["spec"], &mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Reading check and connections JSON
// ---------------------------------------------------------------------------------------------

/// An endpoint of `src`/`dst`: the workload, the IP, or `node/NAME`.
fn endpoint(v: &Value) -> String {
    match v["type"].as_str().unwrap() {
        "workload" => v["workload"].as_str().unwrap().to_string(),
        "node" => format!("node/{}", v["name"].as_str().unwrap()),
        "external" | "unresolved" => v["ip"].as_str().unwrap().to_string(),
        other => panic!("unknown endpoint type {other}: {v}"),
    }
}

/// `SRC -> DST PORT/PROTO`, the key of a connection, with the workloads' common prefix shortened
/// to `~` so the tables below stay readable.
fn conn_key(row: &Value) -> String {
    let short = |s: String| {
        s.replace("deployment/example-java-app/example-java-app-", "~")
            .replace("statefulset/example-java-app/example-java-app-", "~sts-")
    };
    format!(
        "{} -> {} {}/{}",
        short(endpoint(&row["src"])),
        short(endpoint(&row["dst"])),
        row["port"],
        row["protocol"].as_str().unwrap()
    )
}

/// `check --json` as `connection -> verdict`.
fn verdicts(run: &Run) -> BTreeMap<String, String> {
    let rows = run.json();
    let map: BTreeMap<String, String> =
        rows.iter().map(|r| (conn_key(r), r["verdict"].as_str().unwrap().to_string())).collect();
    assert_eq!(map.len(), rows.len(), "a connection is listed twice: {rows:?}");
    map
}

/// The article's decisions: cassandra is not wanted, the external API is.
const ARTICLE: [&str; 4] = ["--exclude", CASSANDRA, "--trust", "192.229.173.0/24"];

// ---------------------------------------------------------------------------------------------
// 1. The article's scenario
// ---------------------------------------------------------------------------------------------

#[test]
fn article_scenario_generate_then_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("policies.yaml");
    let out_s = out.to_str().unwrap();
    let mut args = java("generate", &[], &ARTICLE);
    args.extend(["-o".into(), out_s.into()]);
    let run = flowgate(&args).ok();
    assert_eq!(run.stdout, "", "with -o the YAML goes to the file only");
    assert!(run.stderr.contains("generated 5 policies from 12 connections (9 allowed, 2 excluded)"), "{}", run.stderr);
    assert!(
        run.stderr.contains("verified: 9 allowed connections allowed, 2 excluded connections blocked, 0 mismatches"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("MISMATCH"), "{}", run.stderr);

    let yaml = std::fs::read_to_string(&out).unwrap();
    let policies = parse_policies(&yaml);
    assert_eq!(
        names(&policies),
        [
            "example-java-app-cassandra",
            "example-java-app-javaapp",
            "example-java-app-jclient",
            "example-java-app-redis",
            "example-java-app-mongo"
        ]
        .map(|n| (NS.to_string(), n.to_string()))
    );

    // Exactly the rules each workload gets. javaapp listens on 8080 behind a Service on 80: the
    // rule names 8080. Cassandra was excluded: javaapp may not reach it, and it admits nobody.
    let dns = [format!("{DNS} 53/TCP"), format!("{DNS} 53/UDP")];
    let cases: [(&str, &str, BTreeSet<String>); 10] = [
        ("example-java-app-javaapp", "ingress", set([&format!("{JCLIENT} 8080/TCP")])),
        (
            "example-java-app-javaapp",
            "egress",
            set([
                &format!("{MONGO} 27017/TCP"),
                &format!("{REDIS} 6379/TCP"),
                &format!("{TRUSTED} 443/TCP"),
                &dns[0],
                &dns[1],
            ]),
        ),
        ("example-java-app-jclient", "ingress", set([])),
        ("example-java-app-jclient", "egress", set([&format!("{JAVAAPP} 8080/TCP"), &dns[0], &dns[1]])),
        ("example-java-app-mongo", "ingress", set([&format!("{JAVAAPP} 27017/TCP")])),
        ("example-java-app-mongo", "egress", set([&dns[0], &dns[1]])),
        ("example-java-app-redis", "ingress", set([&format!("{JAVAAPP} 6379/TCP")])),
        ("example-java-app-redis", "egress", set([&dns[0], &dns[1]])),
        ("example-java-app-cassandra", "ingress", set([])),
        ("example-java-app-cassandra", "egress", set([&dns[0], &dns[1]])),
    ];
    for (name, direction, want) in cases {
        assert_eq!(flat(policy(&policies, name), direction), want, "{name} {direction}");
    }
    for p in &policies {
        assert_eq!(p["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]), "{p}");
    }
    // The Service port never appears as a rule port.
    assert!(!yaml.contains("port: 80\n"), "{yaml}");

    let keys = selector_keys(&policies);
    for unstable in ["pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name"] {
        assert!(!keys.contains(unstable), "selector uses {unstable}: {keys:?}");
    }
    assert_eq!(keys, set(["app.kubernetes.io/name", "k8s-app", "kubernetes.io/metadata.name"]));

    insta::assert_snapshot!("java_app_article", yaml);

    // The policies, checked against the traffic they were built from.
    let check = flowgate(&[
        "check",
        "--inventory",
        JAVA_INV,
        "--policies",
        out_s,
        "--flows",
        JAVA_FLOWS,
        "--json",
        "--fail-on-blocked",
    ]);
    // Cassandra is blocked on purpose, so --fail-on-blocked fails the pipeline.
    let check = check.expect_code(1);
    let want: BTreeMap<String, String> = [
        ("~jclient -> ~javaapp 8080/TCP", "allowed"),
        ("~jclient -> deployment/kube-system/coredns 53/UDP", "allowed"),
        ("~javaapp -> ~sts-mongo 27017/TCP", "allowed"),
        ("~javaapp -> ~redis 6379/TCP", "allowed"),
        ("~javaapp -> 192.229.173.207 443/TCP", "allowed"),
        ("~javaapp -> deployment/kube-system/coredns 53/UDP", "allowed"),
        ("~javaapp -> ~cassandra 9042/TCP", "BLOCKED"),
        ("node/node-1 -> ~javaapp 8080/TCP", "not subject (node)"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(verdicts(&check), want);
    // And by which policy.
    let rows = check.json();
    let row = |key: &str| rows.iter().find(|r| conn_key(r) == key).unwrap().clone();
    let to_javaapp = row("~jclient -> ~javaapp 8080/TCP");
    // And by which rule: jclient's first egress rule names javaapp, its second is DNS.
    assert_eq!(to_javaapp["egress"], "allowed by example-java-app/example-java-app-jclient spec.egress[0]");
    assert_eq!(to_javaapp["ingress"], "allowed by example-java-app/example-java-app-javaapp spec.ingress[0]");
    let to_dns = row("~jclient -> deployment/kube-system/coredns 53/UDP");
    assert_eq!(to_dns["egress"], "allowed by example-java-app/example-java-app-jclient spec.egress[1]");
    let to_cassandra = row("~javaapp -> ~cassandra 9042/TCP");
    assert_eq!(to_cassandra["egress"], "blocked (isolated by example-java-app/example-java-app-javaapp)");
    assert_eq!(to_cassandra["ingress"], "blocked (isolated by example-java-app/example-java-app-cassandra)");
}

// ---------------------------------------------------------------------------------------------
// 2. Determinism
// ---------------------------------------------------------------------------------------------

/// The flow lines in a fixed pseudo-random order (xorshift, Fisher-Yates): a shuffle that is the
/// same on every run, so a failure can be reproduced.
fn shuffled(lines: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..v.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(JAVA_FLOWS)).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let mixed = shuffled(&lines);
    assert_ne!(mixed, lines, "the shuffle must change the order, or this test proves nothing");
    let shuffled_path = dir.path().join("shuffled.ndjson");
    std::fs::write(&shuffled_path, mixed.join("\n") + "\n").unwrap();
    let shuffled_path = shuffled_path.to_str().unwrap().to_string();

    let base = |flows: &str, more: &[&str]| {
        let mut v: Vec<String> =
            ["generate", "--inventory", JAVA_INV, "--flows", flows, "--namespace", NS].map(String::from).into();
        v.extend(ARTICLE.map(String::from));
        v.extend(more.iter().map(|s| s.to_string()));
        v
    };
    let reference = flowgate(&base(JAVA_FLOWS, &[])).ok().stdout;
    assert!(reference.contains("kind: NetworkPolicy"), "{reference}");

    let cases: [(&str, Vec<String>); 4] = [
        ("the same run again", base(JAVA_FLOWS, &[])),
        ("flow lines shuffled", base(&shuffled_path, &[])),
        ("one parser thread", base(&shuffled_path, &["--threads", "1"])),
        ("two parser threads", base(JAVA_FLOWS, &["--threads", "2"])),
    ];
    for (what, args) in cases {
        let yaml = flowgate(&args).ok().stdout;
        assert!(yaml == reference, "{what}: the YAML differs\n--- reference\n{reference}\n--- got\n{yaml}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Flags
// ---------------------------------------------------------------------------------------------

/// `--leave-out ingress`: every policy isolates Egress only and keeps its egress rules exactly;
/// `--leave-out egress` the other way round (the added DNS rule goes with egress); a direction
/// that is neither is refused.
#[test]
fn leave_out_drops_one_direction_and_keeps_the_other() {
    let full = parse_policies(&flowgate(&java("generate", &[], &ARTICLE)).ok().stdout);
    for (dir, kept, gone, types) in
        [("ingress", "egress", "ingress", ["Egress"]), ("egress", "ingress", "egress", ["Ingress"])]
    {
        let mut args = ARTICLE.to_vec();
        args.extend(["--leave-out", dir]);
        let run = flowgate(&java("generate", &[], &args)).ok();
        assert!(run.stderr.contains(" 0 mismatches"), "{}", run.stderr);
        let left = parse_policies(&run.stdout);
        assert_eq!(names(&left), names(&full));
        for (l, f) in left.iter().zip(&full) {
            assert_eq!(l["spec"]["policyTypes"], serde_json::json!(types), "{l}");
            assert!(l["spec"][gone].is_null(), "{l}");
            assert_eq!(l["spec"][kept], f["spec"][kept], "{dir}: {l}");
        }
    }
    let mut args = ARTICLE.to_vec();
    args.extend(["--leave-out", "sideways"]);
    let run = flowgate(&java("generate", &[], &args));
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("not a direction: ingress or egress"), "{}", run.stderr);
}

#[test]
fn no_dns_leaves_out_the_added_dns_rule() {
    let with = parse_policies(&flowgate(&java("generate", &[], &ARTICLE)).ok().stdout);
    let mut args = ARTICLE.to_vec();
    args.push("--no-dns");
    let without = parse_policies(&flowgate(&java("generate", &[], &args)).ok().stdout);

    let cases = [
        // javaapp resolved names over UDP: that observed connection stays, the added 53/TCP goes.
        ("example-java-app-javaapp", true, true),
        ("example-java-app-jclient", true, true),
        // mongo never used DNS: with --no-dns it has no egress rule at all.
        ("example-java-app-mongo", false, false),
    ];
    for (name, udp_without, has_egress_without) in cases {
        let w = flat(policy(&with, name), "egress");
        assert!(w.contains(&format!("{DNS} 53/UDP")) && w.contains(&format!("{DNS} 53/TCP")), "{name}: {w:?}");
        let wo = flat(policy(&without, name), "egress");
        assert!(!wo.contains(&format!("{DNS} 53/TCP")), "{name}: {wo:?}");
        assert_eq!(wo.contains(&format!("{DNS} 53/UDP")), udp_without, "{name}: {wo:?}");
        assert_eq!(!wo.is_empty(), has_egress_without, "{name}: {wo:?}");
    }
}

#[test]
fn external_peers_need_trust_and_exclude_wins() {
    // (args, the ipBlock javaapp's egress gets, status of the external connection)
    let cases: [(&[&str], Option<&str>, &str); 4] = [
        (&[], None, "excluded (external, not trusted)"),
        (&["--trust", "192.229.173.0/24"], Some("cidr[192.229.173.0/24] 443/TCP"), "allowed"),
        // The narrowest trusted range names the rule.
        (&["--trust", "192.229.0.0/16", "192.229.173.0/24"], Some("cidr[192.229.173.0/24] 443/TCP"), "allowed"),
        (&["--trust", "192.229.173.0/24", "--exclude", EXTERNAL], None, "excluded (192.229.173.207/32)"),
    ];
    for (args, block, decision) in cases {
        let run = flowgate(&java("generate", &[], args)).ok();
        let policies = parse_policies(&run.stdout);
        let egress = flat(policy(&policies, "example-java-app-javaapp"), "egress");
        let blocks: BTreeSet<String> = egress.iter().filter(|r| r.starts_with("cidr[")).cloned().collect();
        assert_eq!(blocks, block.iter().map(|b| b.to_string()).collect(), "{args:?}");
        if block.is_none() {
            assert!(!run.stdout.contains("ipBlock") && !run.stdout.contains("192.229"), "{args:?}\n{}", run.stdout);
        }

        let rows = flowgate(&java("connections", &[], &[args, &["--json"]].concat())).ok().json();
        let ext: Vec<&Value> = rows.iter().filter(|r| r["peer"] == EXTERNAL).collect();
        assert_eq!(ext.len(), 1, "{args:?}: {ext:?}");
        assert_eq!(ext[0]["decision"], decision, "{args:?}");
    }
}

#[test]
fn include_unresolved_allows_the_address_as_a_host_block() {
    let cases: [(&[&str], bool); 2] = [(&[], false), (&["--include-unresolved"], true)];
    for (args, included) in cases {
        let run = flowgate(&java("generate", &["unresolved.ndjson"], args)).ok();
        let egress = flat(policy(&parse_policies(&run.stdout), "example-java-app-javaapp"), "egress");
        assert_eq!(egress.contains("cidr[10.244.9.9/32] 5432/TCP"), included, "{args:?}: {egress:?}");
        assert_eq!(run.stdout.contains("10.244.9.9"), included, "{args:?}");

        let rows = flowgate(&java("connections", &["unresolved.ndjson"], &[args, &["--json"]].concat())).ok().json();
        let row = rows.iter().find(|r| r["peer"] == "10.244.9.9").expect("the unresolved connection is listed");
        assert_eq!(row["peer_class"], "unresolved");
        assert_eq!(row["decision"], if included { "allowed" } else { "excluded (unresolved)" }, "{args:?}");
    }
}

#[test]
fn workload_selects_exactly_the_named_workloads() {
    let cases: [(&[&str], &[&str]); 3] = [
        (&["--workload", "deployment/example-java-app-javaapp"], &["example-java-app-javaapp"]),
        (&["--workload", "statefulset/example-java-app/example-java-app-mongo"], &["example-java-app-mongo"]),
        (
            &["--workload", "deployment/example-java-app-redis", "statefulset/example-java-app-mongo"],
            &["example-java-app-redis", "example-java-app-mongo"],
        ),
    ];
    for (args, want) in cases {
        let policies = parse_policies(&flowgate(&java("generate", &[], args)).ok().stdout);
        let got: Vec<String> = names(&policies).into_iter().map(|(_, n)| n).collect();
        assert_eq!(got, want, "{args:?}");
    }
    // The one policy is the same as javaapp's in the full run.
    let full = parse_policies(&flowgate(&java("generate", &[], &ARTICLE)).ok().stdout);
    let mut args = ARTICLE.to_vec();
    args.extend(["--workload", "deployment/example-java-app-javaapp"]);
    let one = parse_policies(&flowgate(&java("generate", &[], &args)).ok().stdout);
    assert_eq!(one.len(), 1);
    assert_eq!(&one[0], policy(&full, "example-java-app-javaapp"));
}

#[test]
fn bad_flags_exit_2_and_say_why() {
    // (args, text stderr must contain)
    let cases: [(&[&str], &[&str]); 5] = [
        (&["--workload", "deployment/nope"], &["deployment/nope"]),
        // A workload that exists, but in a namespace not selected.
        (&["--workload", "deployment/coredns"], &["deployment/coredns"]),
        (&["--trust", "192.229.173.7/24"], &["192.229.173.7/24", "192.229.173.0/24"]),
        (&["--exclude", "deployment/only-two-parts"], &["deployment/only-two-parts"]),
        (&["--since", "yesterday"], &["yesterday"]),
    ];
    for (args, needles) in cases {
        for sub in ["generate", "connections"] {
            let run = flowgate(&java(sub, &[], args)).expect_code(2);
            assert_eq!(run.stdout, "", "{sub} {args:?}");
            for n in needles {
                assert!(run.stderr.contains(n), "{sub} {args:?}: stderr lacks {n:?}:\n{}", run.stderr);
            }
        }
    }
}

#[test]
fn since_and_until_select_flows_by_time() {
    // timeline.ndjson: javaapp -> redis at 06:00, javaapp -> mongo at 09:30, jclient -> javaapp at
    // 10:00 (the newest flow, from which durations count back).
    let all = ["javaapp -> redis", "javaapp -> mongo", "jclient -> javaapp"];
    let cases: [(&[&str], &[&str]); 9] = [
        (&[], &all),
        (&["--since", "1h"], &["javaapp -> mongo", "jclient -> javaapp"]),
        (&["--since", "2026-11-25T09:00:00Z"], &["javaapp -> mongo", "jclient -> javaapp"]),
        (&["--since", "30m"], &["javaapp -> mongo", "jclient -> javaapp"]),
        (&["--since", "29m"], &["jclient -> javaapp"]),
        (&["--until", "3h"], &["javaapp -> redis"]),
        (&["--until", "2026-11-25T07:00:00Z"], &["javaapp -> redis"]),
        (&["--since", "5h", "--until", "30m"], &["javaapp -> redis", "javaapp -> mongo"]),
        (&["--since", "2026-11-25T09:30:00Z", "--until", "2026-11-25T09:30:00Z"], &["javaapp -> mongo"]),
    ];
    for (args, want) in cases {
        let mut v: Vec<String> =
            ["connections", "--inventory", JAVA_INV, "--flows", &extra("timeline.ndjson")].map(String::from).into();
        v.extend(["--namespace", NS, "--json"].map(String::from));
        v.extend(args.iter().map(|s| s.to_string()));
        let run = flowgate(&v).ok();
        let got: BTreeSet<String> = run
            .json()
            .iter()
            .filter(|r| r["direction"] == "egress")
            .map(|r| {
                let short = |e: &Value| endpoint(e).rsplit('-').next().unwrap().to_string();
                format!("{} -> {}", short(&r["src"]), short(&r["dst"]))
            })
            .collect();
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{args:?}");
        let left_out = all.len() - want.len();
        assert_eq!(
            run.stderr.contains(&format!("{left_out} flows outside --since/--until left out")),
            left_out > 0,
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn namespaces_scope_the_policies() {
    let java_ns: Vec<(String, String)> = [
        "example-java-app-cassandra",
        "example-java-app-javaapp",
        "example-java-app-jclient",
        "example-java-app-redis",
        "example-java-app-mongo",
    ]
    .map(|n| (NS.to_string(), n.to_string()))
    .into();
    let coredns = ("kube-system".to_string(), "coredns".to_string());
    let cases: [(&[&str], Vec<PolicyName>); 4] = [
        (&["--namespace", NS], java_ns.clone()),
        (&["--namespace", "kube-system"], vec![coredns.clone()]),
        (&["--namespace", NS, "kube-system"], [java_ns.clone(), vec![coredns.clone()]].concat()),
        (&["--all-namespaces"], [java_ns.clone(), vec![coredns.clone()]].concat()),
    ];
    for (args, want) in cases {
        let mut v: Vec<String> = ["generate", "--inventory", JAVA_INV, "--flows", JAVA_FLOWS].map(String::from).into();
        v.extend(args.iter().map(|s| s.to_string()));
        let policies = parse_policies(&flowgate(&v).ok().stdout);
        let got: BTreeSet<(String, String)> = names(&policies).into_iter().collect();
        assert_eq!(got, want.into_iter().collect(), "{args:?}");
    }
    // CoreDNS, seen from its own namespace, answers every pod on 53/UDP and 53/TCP (the two
    // observed clients are covered by that rule, so they get none of their own).
    let mut v: Vec<String> = ["generate", "--inventory", JAVA_INV, "--flows", JAVA_FLOWS].map(String::from).into();
    v.extend(["--namespace", "kube-system"].map(String::from));
    let policies = parse_policies(&flowgate(&v).ok().stdout);
    assert_eq!(flat(policy(&policies, "coredns"), "ingress"), set(["ns[*] 53/TCP", "ns[*] 53/UDP"]));
    // Neither flag, or both, is a usage error.
    for args in [&[][..], &["--namespace", NS, "--all-namespaces"][..]] {
        let mut v: Vec<String> = ["generate", "--inventory", JAVA_INV, "--flows", JAVA_FLOWS].map(String::from).into();
        v.extend(args.iter().map(|s| s.to_string()));
        flowgate(&v).expect_code(2);
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Malformed input
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_flow_lines_are_reported_and_the_rest_is_used() {
    let file = extra("malformed.ndjson");
    let mut v: Vec<String> = ["generate", "--inventory", JAVA_INV, "--flows", &file].map(String::from).into();
    v.extend(["--namespace", NS].map(String::from));
    let run = flowgate(&v).ok();

    // (line, what the reason must mention)
    let bad = [(2, "src_ip"), (4, "dst_port"), (5, "JSON")];
    for (line, why) in bad {
        let prefix = format!("{file}:{line}: ");
        let hits: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(hits.len(), 1, "line {line} must be reported once:\n{}", run.stderr);
        assert!(hits[0].contains(why), "line {line}: {}", hits[0]);
    }
    for good in [1, 3, 6] {
        assert!(!run.stderr.contains(&format!("{file}:{good}:")), "good line {good} reported:\n{}", run.stderr);
    }
    assert!(run.stderr.contains("6 lines: 3 flows, 0 skipped, 3 errors"), "{}", run.stderr);
    assert!(run.stderr.contains("0 mismatches"), "{}", run.stderr);

    // Lines 1, 3 and 6 (after every bad line) all became rules.
    let policies = parse_policies(&run.stdout);
    assert_eq!(flat(policy(&policies, "example-java-app-javaapp"), "ingress"), set([&format!("{JCLIENT} 8080/TCP")]));
    let egress = flat(policy(&policies, "example-java-app-javaapp"), "egress");
    assert!(egress.contains(&format!("{REDIS} 6379/TCP")), "{egress:?}");
    assert!(egress.contains(&format!("{MONGO} 27017/TCP")), "{egress:?}");
    // Line 4 (no port) went to cassandra: no rule came from it.
    assert!(!egress.iter().any(|r| r.contains("cassandra")), "{egress:?}");
    assert_eq!(flat(policy(&policies, "example-java-app-cassandra"), "ingress"), set([]));
}

/// `flowgate ingest` counts flows older than `--retention` as expired and rejects flows dated past
/// now plus `--max-skew`, naming their lines; the good line lands, and a second run changes nothing.
/// Times are relative to the real clock, since the binary reads it.
#[sqlx::test(migrations = false)]
async fn ingest_counts_expired_flows_and_rejects_future_ones(pool: sqlx::PgPool) {
    let o = pool.connect_options();
    let url = format!(
        "postgres://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().expect("a test database")
    );
    let now = jiff::Timestamp::now();
    let line = |t: jiff::Timestamp| {
        format!(
            r#"{{"time":"{t}","src_ip":"10.244.0.5","src_port":40000,"dst_ip":"10.244.0.7","dst_port":80,"protocol":"TCP"}}"#
        ) + "\n"
    };
    let hours = |h: i64| jiff::SignedDuration::from_hours(h);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let body = [line(now - hours(1)), line(now + hours(24 * 400)), line(now - hours(24 * 30))].concat();
    std::io::Write::write_all(&mut file, body.as_bytes()).unwrap();
    let path = file.path().to_str().unwrap().to_string();
    let ingest = |more: &[&str]| {
        let mut args = vec!["ingest", "--cluster", "prod", "--database-url", &url, &path];
        args.extend(more);
        flowgate(&args)
    };
    let run = ingest(&["--retention", "7d"]).ok();
    assert!(run.stderr.contains("3 lines: 1 accepted, 0 duplicate, 1 expired"), "{}", run.stderr);
    assert!(run.stderr.contains(", 1 rejected"), "{}", run.stderr);
    let reported: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with(&format!("{path}:"))).collect();
    assert_eq!(reported.len(), 1, "{}", run.stderr);
    assert!(reported[0].starts_with(&format!("{path}:2: time ")), "{}", reported[0]);
    assert!(reported[0].contains("is in the future"), "{}", reported[0]);
    let run = ingest(&[]).ok();
    assert!(run.stderr.contains("3 lines: 0 accepted, 1 duplicate, 1 expired"), "{}", run.stderr);
    // With a skew allowance of 500 days the far line is no longer the future.
    let run = ingest(&["--max-skew", "500d"]).ok();
    assert!(run.stderr.contains("1 accepted, 1 duplicate, 1 expired"), "{}", run.stderr);
    assert!(run.stderr.contains(", 0 rejected"), "{}", run.stderr);
    // Raw rows for a day (and, bare, for the retention): taken, with nothing new to write.
    for keep in ["--keep-flows=1d", "--keep-flows"] {
        let run = ingest(&[keep]).ok();
        assert!(run.stderr.contains("0 accepted, 1 duplicate, 1 expired"), "{keep}: {}", run.stderr);
    }
    let bad: [&[&str]; 4] =
        [&["--max-skew", "soon"], &["--retention", "0d"], &["--keep-flows=30d"], &["--keep-flows=soon"]];
    for bad in bad {
        let run = ingest(bad).expect_code(2);
        assert!(run.stderr.contains(bad[0]), "{}", run.stderr);
    }
}

#[test]
fn missing_files_exit_2_naming_the_path() {
    let missing = "tests/fixtures/does-not-exist/flows.ndjson";
    let missing_inv = "tests/fixtures/does-not-exist/inventory.json";
    let missing_pol = "tests/fixtures/does-not-exist/policies.yaml";
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["generate", "--inventory", JAVA_INV, "--flows", missing, "--namespace", NS], missing),
        (vec!["generate", "--inventory", missing_inv, "--flows", JAVA_FLOWS, "--namespace", NS], missing_inv),
        // A missing file after a good one still stops the run.
        (vec!["connections", "--inventory", JAVA_INV, "--flows", JAVA_FLOWS, missing, "-A"], missing),
        (vec!["check", "--inventory", JAVA_INV, "--policies", missing_pol, "--flows", JAVA_FLOWS], missing_pol),
        (vec!["check", "--inventory", missing_inv, "--policies", JAVA_INV, "--flows", JAVA_FLOWS], missing_inv),
    ];
    for (args, path) in cases {
        let run = flowgate(&args).expect_code(2);
        assert!(run.stderr.contains(path), "{args:?}: stderr does not name {path}:\n{}", run.stderr);
        assert_eq!(run.stdout, "", "{args:?}");
    }
}

#[test]
fn a_broken_inventory_document_costs_only_itself() {
    // The same objects as the java app's inventory, as YAML documents, with a broken Pod added as
    // document 5: the policies must be the same bytes.
    let broken = "tests/fixtures/broken-inventory/inventory.yaml";
    let run_with = |inv: &str| {
        let mut v: Vec<String> = ["generate", "--inventory", inv, "--flows", JAVA_FLOWS].map(String::from).into();
        v.extend(["--namespace", NS].map(String::from));
        v.extend(ARTICLE.map(String::from));
        flowgate(&v).ok()
    };
    let reference = run_with(JAVA_INV);
    let run = run_with(broken);
    let reports: Vec<&str> = run.stderr.lines().filter(|l| l.contains(&format!("{broken}: document "))).collect();
    assert_eq!(reports.len(), 1, "{}", run.stderr);
    assert!(reports[0].contains(&format!("{broken}: document 5: ")), "{}", reports[0]);
    assert!(run.stderr.contains("inventory: 25 objects read"), "{}", run.stderr);
    assert!(run.stdout == reference.stdout, "--- from JSON\n{}\n--- from YAML\n{}", reference.stdout, run.stdout);
}

// ---------------------------------------------------------------------------------------------
// 5. Hubble input, no inventory
// ---------------------------------------------------------------------------------------------

fn hubble(sub: &str, file: &str, more: &[&str]) -> Run {
    let path = hubble_sample(file);
    let mut v: Vec<String> = [sub, "--flows", &path, "--all-namespaces"].map(String::from).into();
    v.extend(more.iter().map(|s| s.to_string()));
    flowgate(&v).ok()
}

#[test]
fn hubble_sample_10_flows_bookinfo_and_istio() {
    let file = "hubble-otel_basic-sample-10-flows.json";
    let run = hubble("generate", file, &[]);
    assert!(run.stderr.contains("10 lines: 5 flows, 5 skipped (reply 5), 0 errors"), "{}", run.stderr);
    assert!(run.stderr.contains(", 0 mismatches"), "{}", run.stderr);
    let policies = parse_policies(&run.stdout);
    let got: BTreeSet<(String, String)> = names(&policies).into_iter().collect();
    let want: BTreeSet<(String, String)> = [
        ("bookinfo", "reviews-v1"),
        ("istio-system", "istio-galley"),
        ("istio-system", "istio-telemetry"),
        ("istio-system", "prometheus"),
        ("kube-system", "event-exporter-gke"),
        ("kube-system", "kube-dns"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .into();
    assert_eq!(got, want);

    let dns = [format!("{DNS} 53/TCP"), format!("{DNS} 53/UDP")];
    let cases: [(&str, &str, BTreeSet<String>); 6] = [
        // Prometheus scrapes reviews-v1's sidecar; the kubelet's probe on 15020 needs no rule.
        ("reviews-v1", "ingress", set(["ns[kubernetes.io/metadata.name=istio-system] pods[app=prometheus] 15090/TCP"])),
        (
            "prometheus",
            "egress",
            set(["ns[kubernetes.io/metadata.name=bookinfo] pods[app=reviews] 15090/TCP", &dns[0], &dns[1]]),
        ),
        ("istio-galley", "ingress", set(["pods[app=telemetry] 9901/TCP"])),
        ("istio-telemetry", "egress", set(["pods[app=galley] 9901/TCP", &dns[0], &dns[1]])),
        // Its only peer is an untrusted external address; DNS is in its own namespace.
        ("event-exporter-gke", "egress", set(["pods[k8s-app=kube-dns] 53/TCP", "pods[k8s-app=kube-dns] 53/UDP"])),
        // The DNS server answers every pod on both DNS ports, observed or not.
        ("kube-dns", "ingress", set(["ns[*] 53/TCP", "ns[*] 53/UDP"])),
    ];
    for (name, direction, want) in cases {
        assert_eq!(flat(policy(&policies, name), direction), want, "{name} {direction}");
    }

    // Replies did not become connections: only the servers' ports appear, never a client's.
    let rows = hubble("connections", file, &["--json"]).json();
    let ports: BTreeSet<u64> = rows.iter().map(|r| r["port"].as_u64().unwrap()).collect();
    assert_eq!(ports, [443, 9901, 10054, 15020, 15090].into());
    for reply_port in [36804, 42044, 58698, 55574, 50908] {
        assert!(!ports.contains(&reply_port), "{reply_port}");
    }
    let ext: Vec<&Value> = rows.iter().filter(|r| r["peer_class"] == "external").collect();
    assert_eq!(ext.len(), 1, "{ext:?}");
    assert_eq!(ext[0]["peer"], "35.246.31.234");

    insta::assert_snapshot!("hubble_sample_10_flows", run.stdout);
}

#[test]
fn hubble_sample_udp_dns_of_bookinfo() {
    let file = "hubble-otel_basic-sample-400-udp-flows.json";
    let run = hubble("generate", file, &[]);
    assert!(run.stderr.contains("400 lines: 252 flows"), "{}", run.stderr);
    assert!(run.stderr.contains(", 0 mismatches"), "{}", run.stderr);
    let policies = parse_policies(&run.stdout);
    assert_eq!(
        names(&policies),
        [("bookinfo", "productpage-v1"), ("bookinfo", "ratings-v1"), ("kube-system", "coredns")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(flat(policy(&policies, "coredns"), "ingress"), set(["ns[*] 53/TCP", "ns[*] 53/UDP"]));
    for name in ["productpage-v1", "ratings-v1"] {
        assert_eq!(flat(policy(&policies, name), "egress"), set([&format!("{DNS} 53/TCP"), &format!("{DNS} 53/UDP")]));
        assert_eq!(flat(policy(&policies, name), "ingress"), set([]), "{name}");
    }

    // 74 replies from CoreDNS to the clients' ports: none is a connection.
    let rows = hubble("connections", file, &["--json"]).json();
    assert!(rows.iter().all(|r| r["port"] == 53 && r["protocol"] == "UDP"), "{rows:?}");
    // The remote node's queries need no rule.
    let node: Vec<&Value> = rows.iter().filter(|r| r["peer_class"] == "node").collect();
    assert_eq!(node.len(), 1, "{node:?}");
    assert_eq!(node[0]["status"], "no_rule_needed");
    assert_eq!(node[0]["flows"], 74);
}

// ---------------------------------------------------------------------------------------------
// 6. connections --json
// ---------------------------------------------------------------------------------------------

#[test]
fn connections_json_rows() {
    let rows = flowgate(&java("connections", &[], &["--json"])).ok().json();
    assert_eq!(rows.len(), 12);
    for row in &rows {
        for field in [
            "workload",
            "direction",
            "peer",
            "peer_class",
            "port",
            "protocol",
            "flows",
            "first_seen",
            "last_seen",
            "processes",
            "status",
        ] {
            assert!(row.get(field).is_some_and(|v| !v.is_null()), "{field} missing in {row}");
        }
    }
    let find = |workload: &str, direction: &str, peer: &str| -> &Value {
        let hits: Vec<&Value> = rows
            .iter()
            .filter(|r| r["workload"] == workload && r["direction"] == direction && r["peer"] == peer)
            .collect();
        assert_eq!(hits.len(), 1, "{workload} {direction} {peer}: {hits:?}");
        hits[0]
    };
    let javaapp = "deployment/example-java-app/example-java-app-javaapp";
    // (row, expected fields)
    let cases: [(&Value, Value); 3] = [
        (
            find(javaapp, "ingress", "node/node-1 (172.18.0.2)"),
            serde_json::json!({
                "peer_class": "node", "port": 8080, "protocol": "TCP", "flows": 5,
                "first_seen": "2026-11-25T10:00:49Z", "last_seen": "2026-11-25T10:04:33Z",
                "processes": ["kubelet"], "status": "no_rule_needed", "reason": null,
                "decision": "no rule needed (node)",
            }),
        ),
        (
            find(javaapp, "egress", EXTERNAL),
            serde_json::json!({
                "peer_class": "external", "port": 443, "protocol": "TCP", "flows": 5,
                "first_seen": "2026-11-25T10:00:28Z", "last_seen": "2026-11-25T10:04:12Z",
                "processes": ["java"], "status": "excluded", "reason": "untrusted_external",
            }),
        ),
        (
            // Through the Service: the targetPort, and the Service with its own port.
            find(javaapp, "ingress", "deployment/example-java-app/example-java-app-jclient"),
            serde_json::json!({
                "peer_class": "in-cluster", "port": 8080, "protocol": "TCP", "flows": 5,
                "first_seen": "2026-11-25T10:00:00Z", "last_seen": "2026-11-25T10:03:44Z",
                "processes": ["java"], "status": "allowed", "reason": null,
                "services": ["example-java-app/example-java-app-javaapp:80"],
            }),
        ),
    ];
    for (row, want) in cases {
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&row[k], v, "{k} of {row}");
        }
    }
    // The javaapp -> redis connection appears from both sides.
    let redis = "deployment/example-java-app/example-java-app-redis";
    assert_eq!(find(javaapp, "egress", redis)["flows"], 5);
    assert_eq!(find(redis, "ingress", javaapp)["flows"], 5);
}

// ---------------------------------------------------------------------------------------------
// 7. check --fail-on-blocked
// ---------------------------------------------------------------------------------------------

#[test]
fn check_fail_on_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("allowed.yaml");
    let generated = generated.to_str().unwrap();
    let g = java("generate", &[], &["--trust", "192.229.173.0/24", "-o", generated]);
    flowgate(&g).ok();
    let deny_all = extra("deny-all.yaml");

    // (policies, --fail-on-blocked, exit code, blocked count)
    let cases: [(&str, bool, i32, usize); 4] =
        [(&deny_all, true, 1, 7), (&deny_all, false, 0, 7), (generated, true, 0, 0), (generated, false, 0, 0)];
    for (policies, fail, code, blocked) in cases {
        let mut v = vec!["check", "--inventory", JAVA_INV, "--policies", policies, "--flows", JAVA_FLOWS, "--json"];
        if fail {
            v.push("--fail-on-blocked");
        }
        let run = flowgate(&v).expect_code(code);
        let verdicts = verdicts(&run);
        assert_eq!(verdicts.len(), 8, "{verdicts:?}");
        assert_eq!(verdicts.values().filter(|v| *v == "BLOCKED").count(), blocked, "{policies}: {verdicts:?}");
        // The kubelet's probe is never counted as blocked: CNIs let the node in.
        assert_ne!(verdicts["node/node-1 -> ~javaapp 8080/TCP"], "BLOCKED");
        assert!(run.stderr.contains(&format!("{blocked} blocked")), "{}", run.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// 8. IP recycling
// ---------------------------------------------------------------------------------------------

#[test]
fn a_recycled_ip_resolves_to_the_pod_that_held_it_then() {
    // 10.244.1.5 is alpha-0 (created 08:00, deleted 09:00), then beta-0 (created 10:00). The client
    // talks to it at 08:30 (port 5432) and 10:30 (port 6379); it calls the client back each time.
    let inv = "tests/fixtures/ip-recycling/inventory.json";
    let flows = "tests/fixtures/ip-recycling/flows.ndjson";
    let rows =
        flowgate(&["connections", "--inventory", inv, "--flows", flows, "--namespace", "shop", "--json"]).ok().json();
    let got: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {}:{} at {}",
                r["workload"].as_str().unwrap(),
                r["direction"].as_str().unwrap(),
                r["peer"].as_str().unwrap(),
                r["port"],
                r["first_seen"].as_str().unwrap()
            )
        })
        .collect();
    let want = set([
        "deployment/shop/client egress statefulset/shop/alpha:5432 at 2026-11-25T08:30:00Z",
        "deployment/shop/client egress statefulset/shop/beta:6379 at 2026-11-25T10:30:00Z",
        "deployment/shop/client ingress statefulset/shop/alpha:8080 at 2026-11-25T08:31:00Z",
        "deployment/shop/client ingress statefulset/shop/beta:8080 at 2026-11-25T10:31:00Z",
        "statefulset/shop/alpha ingress deployment/shop/client:5432 at 2026-11-25T08:30:00Z",
        "statefulset/shop/alpha egress deployment/shop/client:8080 at 2026-11-25T08:31:00Z",
        "statefulset/shop/beta ingress deployment/shop/client:6379 at 2026-11-25T10:30:00Z",
        "statefulset/shop/beta egress deployment/shop/client:8080 at 2026-11-25T10:31:00Z",
    ]);
    assert_eq!(got, want);

    let run = flowgate(&["generate", "--inventory", inv, "--flows", flows, "--namespace", "shop", "--no-dns"]).ok();
    assert!(run.stderr.contains(", 0 mismatches"), "{}", run.stderr);
    let policies = parse_policies(&run.stdout);
    let cases: [(&str, &str, BTreeSet<String>); 6] = [
        ("client", "egress", set(["pods[app=alpha] 5432/TCP", "pods[app=beta] 6379/TCP"])),
        ("client", "ingress", set(["pods[app=alpha] 8080/TCP", "pods[app=beta] 8080/TCP"])),
        ("alpha", "ingress", set(["pods[app=client] 5432/TCP"])),
        ("alpha", "egress", set(["pods[app=client] 8080/TCP"])),
        ("beta", "ingress", set(["pods[app=client] 6379/TCP"])),
        ("beta", "egress", set(["pods[app=client] 8080/TCP"])),
    ];
    for (name, direction, want) in cases {
        assert_eq!(flat(policy(&policies, name), direction), want, "{name} {direction}");
    }
}

// ---------------------------------------------------------------------------------------------
// The server's start
// ---------------------------------------------------------------------------------------------

/// Starts `flowgate serve ARGS...` on a free port and returns what it wrote to stderr up to its
/// login line; the server is then stopped.
fn serve_until_login_line(database_url: &str, args: &[&str], env_token: Option<&str>) -> String {
    Served::start(database_url, args, env_token).stderr.clone()
}

#[sqlx::test(migrations = false)]
async fn serve_prints_the_token_only_when_it_made_it(pool: sqlx::PgPool) {
    use sqlx::ConnectOptions;
    let url = pool.connect_options().to_url_lossy().to_string();
    let given = "operator-chosen-token-0123";

    for (args, env) in [(&["--token", given][..], None), (&[][..], Some(given))] {
        let out = serve_until_login_line(&url, args, env);
        assert!(!out.contains(given), "{args:?} {env:?}:\n{out}");
        assert!(out.contains("log in at http://127.0.0.1:") && !out.contains("?token="), "{out}");
    }

    let out = serve_until_login_line(&url, &[], None);
    let token: String =
        out.split("?token=").nth(1).unwrap_or_default().chars().take_while(char::is_ascii_hexdigit).collect();
    assert_eq!(token.len(), 32, "{out}");
    assert!(out.contains(&format!("Authorization: Bearer {token}")), "{out}");
}

/// SIGTERM (what Kubernetes and `docker stop` send) stops the server gracefully: an ingest whose
/// body is still arriving when the signal comes is finished and answered, no new connection is
/// accepted, and the process exits 0. (Before, only SIGINT did; SIGTERM cut the request.)
#[sqlx::test(migrations = false)]
async fn sigterm_finishes_the_ingest_in_flight_and_exits_0(pool: sqlx::PgPool) {
    use sqlx::ConnectOptions;
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let url = pool.connect_options().to_url_lossy().to_string();
    let token = "sigterm-test-token-0123456789";
    let mut server = Served::start(&url, &["--token", token], None);
    let addr = server.addr();
    let now = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let body: String = (0..3)
        .map(|i| {
            format!(
                r#"{{"time":"{now}","src_ip":"10.244.0.5","src_port":{},"dst_ip":"10.244.0.7","dst_port":80,"protocol":"TCP"}}"#,
                40000 + i
            ) + "\n"
        })
        .collect();

    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        conn,
        "POST /api/v1/clusters/prod/flows HTTP/1.1\r\nHost: flowgate\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    )
    .unwrap();
    // hyper says 100 Continue when the handler first reads the body: the ingest is under way.
    let mut head = [0u8; 25];
    conn.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 100 Continue\r\n\r\n");

    let killed = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    server.wait_for("SIGTERM: shutting down", Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting connections after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }

    conn.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains(r#""accepted":3"#), "{answer}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM:\n{}", server.stderr);
        std::thread::sleep(Duration::from_millis(10));
    };
    server.wait_for("flowgate: stopped", Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", server.stderr);
}

/// `serve --kube` reads its Kubernetes configuration before it serves: a kubeconfig that cannot
/// be read is bad input (exit 2, saying which), and the watch flags need `--kube`.
#[sqlx::test(migrations = false)]
async fn serve_kube_refuses_a_kubeconfig_it_cannot_read(pool: sqlx::PgPool) {
    use sqlx::ConnectOptions;
    let url = pool.connect_options().to_url_lossy().to_string();
    let run = flowgate(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
        "--kube",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
    ]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("Kubernetes configuration: --kubeconfig /nonexistent/kubeconfig"), "{}", run.stderr);
    let run = flowgate(&["serve", "--database-url", &url, "--cluster", "prod"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--kube"), "{}", run.stderr);
    let run = flowgate(&["serve", "--database-url", &url, "--kube", "--cluster", "Not_A_Name"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--cluster: "), "{}", run.stderr);
}

/// `--log-format json`: every line `serve` writes, from its start to its stop, is one JSON object
/// with a level and a message (what a log collector reads), the start lines included.
#[sqlx::test(migrations = false)]
async fn serve_with_log_format_json_writes_only_json_lines(pool: sqlx::PgPool) {
    use sqlx::ConnectOptions;
    let url = pool.connect_options().to_url_lossy().to_string();
    let mut server = Served::start(&url, &["--log-format", "json", "--token", "json-log-test-token-0123"], None);
    let status = server.terminate(std::time::Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", server.stderr);
    let messages: Vec<String> = server
        .stderr
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(event["level"].is_string() && event["timestamp"].is_string(), "{line}");
            event["fields"]["message"].as_str().unwrap_or_else(|| panic!("no message: {line}")).to_string()
        })
        .collect();
    for said in [
        "flowgate is listening on http://127.0.0.1:",
        "log in at http://",
        "SIGTERM: shutting down",
        "flowgate: stopped",
    ] {
        assert!(messages.iter().any(|m| m.contains(said)), "{said:?} not in {messages:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Hostile names: what Kubernetes would refuse never reaches a key, a selector or a page
// ---------------------------------------------------------------------------------------------

const HOSTILE_INV: &str = "tests/fixtures/hostile/inventory.json";
const HOSTILE_FLOWS: &str = "tests/fixtures/hostile/flows.ndjson";

/// What must never appear in generated YAML: the fixture's bad names and labels.
const HOSTILE: [&str; 7] = ["UPPER", "<img", "\u{202e}", "\u{200b}", "a:b", "aaaaaaaaaaaaaaaa", "empty"];

#[test]
fn hostile_names_and_labels_never_reach_the_policies() {
    let run = flowgate(&["generate", "--inventory", HOSTILE_INV, "--flows", HOSTILE_FLOWS, "--namespace", "shop"]).ok();
    for bad in HOSTILE {
        assert!(!run.stdout.contains(bad), "{bad:?} in the policies:\n{}", run.stdout);
    }
    let policies = parse_policies(&run.stdout);
    assert_eq!(
        flat(policy(&policies, "web"), "ingress"),
        set(["pods[app=client] 8080/TCP", "pods[app=upper] 8080/TCP"])
    );
    assert_eq!(labels(&policy(&policies, "client")["spec"]["podSelector"]["matchLabels"]), "app=client");
    // Each skipped object and each dropped label is named with its file, document, kind and name.
    let warned = |what: &str| run.stderr.lines().any(|l| l.starts_with("warning: ") && l.contains(what));
    assert!(
        warned(
            r#"tests/fixtures/hostile/inventory.json: document 1: items[6]: document 7: Deployment "shop/UPPER_case": metadata.name: "UPPER_case" is not a valid DNS-1123 subdomain"#
        ),
        "{}",
        run.stderr
    );
    assert!(warned(r#"Pod "shop/client": label dropped: label key "a:b""#), "{}", run.stderr);
    assert!(warned(r#"Deployment "shop/web\u{202e}""#), "{}", run.stderr);
    assert!(run.stderr.contains("inventory: 8 objects read, 5 skipped (invalid names)"), "{}", run.stderr);
    assert!(
        run.stderr.contains("; 1 flows cleaned (2 fields with invalid names or labels left out)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(", 0 mismatches"), "{}", run.stderr);
}

fn db_url(pool: &sqlx::PgPool) -> String {
    let o = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().expect("a test database")
    )
}

/// `import` records only what passes the checks; and names an older version stored unchecked
/// (inserted here as it would have stored them) cost only their rows: `generate --cluster` still
/// answers, without them.
#[sqlx::test(migrations = false)]
async fn the_store_keeps_out_bad_names_and_reads_past_old_ones(pool: sqlx::PgPool) {
    let url = db_url(&pool);
    let db = ["--database-url", url.as_str()];
    let run = flowgate(&[&["import", "--cluster", "prod", HOSTILE_INV][..], &db].concat()).ok();
    assert!(run.stderr.contains("5 objects skipped (invalid names)"), "{}", run.stderr);
    assert!(
        run.stderr.contains(r#"warning: tests/fixtures/hostile/inventory.json: document 1: items[6]"#),
        "{}",
        run.stderr
    );
    let names: Vec<String> =
        sqlx::query_scalar("select name from k8s_objects order by name").fetch_all(&pool).await.unwrap();
    assert_eq!(
        names,
        ["client", "n1", "shop", "upper-5d4f8b6c5d-abcde", "web", "web", "web-7d9f8b6c5d", "web-7d9f8b6c5d-x2x9q"]
    );
    let labels: serde_json::Value =
        sqlx::query_scalar("select body->'metadata'->'labels' from k8s_objects where name = 'client'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(labels, serde_json::json!({"app": "client"}));
    flowgate(&[&["ingest", "--cluster", "prod", "--retention", "3650d", HOSTILE_FLOWS][..], &db].concat()).ok();
    let generate = || flowgate(&[&["generate", "--cluster", "prod", "--namespace", "shop"][..], &db].concat());
    let before = generate().ok().stdout;

    // As an older version stored them: a Deployment named against the rules, connections whose
    // keys carry such names (or a protocol no policy has), labels learned from a bad Hubble
    // endpoint, and a decision that excludes a bad name.
    let cluster: i32 =
        sqlx::query_scalar("select id from clusters where name = 'prod'").fetch_one(&pool).await.unwrap();
    let body = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "UPPER_case", "namespace": "shop", "labels": {"a:b": "<img src=x>"}},
        "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "<img src=x onerror=alert(1)>"}}}}});
    sqlx::query(
        "insert into k8s_objects (cluster_id, kind, namespace, name, uid, body, valid_from)
         values ($1, 'Deployment', 'shop', 'UPPER_case', 'u', $2, timestamptz '2026-11-24T00:00:00Z')",
    )
    .bind(cluster)
    .bind(&body)
    .execute(&pool)
    .await
    .unwrap();
    for (src, dst, protocol) in [
        ("deployment/shop/UPPER_case", "deployment/shop/web", "TCP"),
        ("deployment/shop/web", "pod/shop/<img src=x onerror=alert(1)>", "TCP"),
        ("pod/shop/client", "deployment/shop/web", "ICMP"),
    ] {
        // In both aggregates: a window reads whole days from the daily one.
        for (table, bucket) in [("conn_hourly", "2026-11-25T10:00:00Z"), ("conn_daily", "2026-11-25T00:00:00Z")] {
            let sql = format!(
                "insert into {table} (cluster_id, bucket, src_endpoint, dst_endpoint, src_namespace, dst_namespace,
                                      port, protocol, flows, dropped, first_seen, last_seen, processes, services)
                 values ($1, timestamptz '{bucket}', $2, $3, 'shop', 'shop', 8080, $4, 1, 0,
                         timestamptz '2026-11-25T10:00:00Z', timestamptz '2026-11-25T10:00:00Z', '{{}}', '{{}}')"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(cluster)
                .bind(src)
                .bind(dst)
                .bind(protocol)
                .execute(&pool)
                .await
                .unwrap();
        }
    }
    sqlx::query(
        "insert into observed_workloads (cluster_id, workload, labels, last_seen)
         values ($1, 'deployment/shop/UPPER_case', '{\"app\": \"x\"}', now()),
                ($1, 'pod/shop/client', '{\"app\": \"client\", \"a:b\": \"<img src=x>\"}', now())",
    )
    .bind(cluster)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into decisions (cluster_id, workload, version, exclude, trust, include_unresolved, author)
         values ($1, 'deployment/shop/web', 1, '{deployment/shop/UPPER_case,deployment/sh.op/x}', '{10.0.0.0/33}', '{x}', 'old')",
    )
    .bind(cluster)
    .execute(&pool)
    .await
    .unwrap();

    let run = generate().ok();
    for bad in HOSTILE {
        assert!(!run.stdout.contains(bad), "{bad:?} in the policies:\n{}", run.stdout);
    }
    assert_eq!(run.stdout, before, "the unreadable rows change nothing");
    assert!(
        run.stderr.contains(r#"note: Deployment "shop/UPPER_case": metadata.name: "UPPER_case""#),
        "{}",
        run.stderr
    );
}

/// `generate -A --dialect admin|admin-v1alpha1`: the cluster guardrails, verified; the flags
/// that make no sense for them are refused with why.
#[test]
fn generate_writes_guardrails_in_both_api_versions() {
    let inv = "tests/fixtures/java-app/inventory.json";
    let flows = "tests/fixtures/java-app/flows.ndjson";
    for (dialect, kind) in [("admin", "kind: ClusterNetworkPolicy"), ("admin-v1alpha1", "kind: AdminNetworkPolicy")] {
        let run =
            flowgate(&["generate", "--inventory", inv, "--flows", flows, "-A", "--dialect", dialect]).expect_code(0);
        assert!(run.stdout.contains(kind), "{}", run.stdout);
        assert!(run.stderr.contains("verified: 0 mismatches"), "{}", run.stderr);
        let again = flowgate(&["generate", "--inventory", inv, "--flows", flows, "-A", "--dialect", dialect]);
        assert_eq!(again.stdout, run.stdout, "same input, same bytes");
    }
    let run = flowgate(&["generate", "--inventory", inv, "--flows", flows, "--namespace", "x", "--dialect", "admin"])
        .expect_code(2);
    assert!(run.stderr.contains("-A"), "{}", run.stderr);
    let run =
        flowgate(&["generate", "--inventory", inv, "--flows", flows, "-A", "--exclude-pair", "a/b"]).expect_code(2);
    assert!(run.stderr.contains("--dialect admin"), "{}", run.stderr);
    let run = flowgate(&[
        "generate",
        "--inventory",
        inv,
        "--flows",
        flows,
        "-A",
        "--dialect",
        "admin",
        "--exclude-pair",
        "Bad/b",
    ])
    .expect_code(2);
    assert!(run.stderr.contains("Bad"), "{}", run.stderr);
    let run = flowgate(&["generate", "--inventory", inv, "--flows", flows, "-A", "--dialect", "calico"]).expect_code(2);
    assert!(run.stderr.contains("admin-v1alpha1"), "{}", run.stderr);
}

/// Reading a file long enough shows its progress on standard error when that is a terminal (here
/// a pseudo-terminal from util-linux `script`), and never into a pipe.
#[test]
fn progress_is_shown_on_a_terminal_only() {
    let sample =
        format!("{}/tests/data/hubble/hubble-otel_basic-sample-400-udp-flows.json", env!("CARGO_MANIFEST_DIR"));
    let bin = env!("CARGO_BIN_EXE_flowgate");
    // Standard input that pauses half a second between two copies: the read outlasts the redraw
    // interval, so a line is drawn.
    let pipeline = format!(
        "(cat '{sample}'; sleep 0.6; cat '{sample}') | '{bin}' generate --flows - --all-namespaces -o /dev/null"
    );
    let Ok(out) = std::process::Command::new("script").args(["-qec", &pipeline, "/dev/null"]).output() else {
        panic!("util-linux `script` is needed for this test (Debian: bsdutils)");
    };
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains("\r\x1b[Kstandard input: 1.0 MiB, 800 lines, "), "{tty:?}");
    assert!(tty.contains("800 lines: 504 flows"), "{tty:?}");
    // The same into a pipe: the summary, no progress line.
    let piped = std::process::Command::new("sh").args(["-c", &format!("{pipeline} 2>&1")]).output().unwrap();
    let piped = String::from_utf8_lossy(&piped.stdout);
    assert!(piped.contains("800 lines: 504 flows") && !piped.contains("MiB/s"), "{piped:?}");
}

/// `import` on a terminal says its two steps as they happen (reading and parsing, storing), and
/// into a pipe only its summary.
#[sqlx::test(migrations = false)]
async fn import_says_its_steps_on_a_terminal_only(pool: sqlx::PgPool) {
    let url = db_url(&pool);
    let bin = env!("CARGO_BIN_EXE_flowgate");
    let inv = format!("{}/{JAVA_INV}", env!("CARGO_MANIFEST_DIR"));
    let command = format!("'{bin}' import --cluster prod --database-url '{url}' '{inv}'");
    let out =
        std::process::Command::new("script").args(["-qec", &command, "/dev/null"]).output().expect("util-linux script");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains("import: reading 1 path\u{2026} ") && tty.contains(" objects in "), "{tty:?}");
    assert!(tty.contains("import: storing ") && tty.contains("imported "), "{tty:?}");
    let piped = flowgate(&["import", "--cluster", "prod", "--database-url", &url, JAVA_INV]).ok();
    assert!(!piped.stderr.contains("import: reading") && piped.stderr.contains("imported "), "{}", piped.stderr);
}
