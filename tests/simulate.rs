//! What applying policies would break: `flowgate check` simulates the cluster's policies, then the
//! same with the proposal (Flowgate's own with `--proposed`, and files with `--policies`) applied
//! over them, against the observed connections, through the real binary; from files and from the
//! store alike.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

#[path = "support/bin.rs"]
mod bin;
use bin::{Run, flowgate};

fn file(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p).to_str().unwrap().to_string()
}

fn inv() -> String {
    file("tests/fixtures/java-app/inventory.json")
}
fn existing() -> String {
    file("tests/fixtures/java-app-extra/existing-policies.yaml")
}
fn flows() -> String {
    file("tests/fixtures/java-app/flows.ndjson")
}

/// `src -> dst port/proto` with the namespace prefix cut, to the row.
fn by_conn(run: &Run) -> BTreeMap<String, Value> {
    let rows: Vec<Value> = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    let short = |v: &Value| {
        let s = match (v.get("workload"), v.get("name")) {
            (Some(w), _) => w.as_str().unwrap().to_string(),
            (None, Some(node)) => format!("node/{}", node.as_str().unwrap()),
            (None, None) => v["ip"].as_str().unwrap().to_string(),
        };
        s.replace("deployment/example-java-app/example-java-app-", "~")
            .replace("statefulset/example-java-app/example-java-app-", "~")
    };
    rows.into_iter()
        .map(|r| {
            (
                format!(
                    "{} -> {} {}/{}",
                    short(&r["src"]),
                    short(&r["dst"]),
                    r["port"],
                    r["protocol"].as_str().unwrap()
                ),
                r,
            )
        })
        .collect()
}

fn effects(run: &Run) -> BTreeMap<String, String> {
    by_conn(run).into_iter().map(|(k, r)| (k, r["effect"].as_str().unwrap().to_string())).collect()
}

#[test]
fn the_proposal_over_the_clusters_policies_says_what_it_breaks_and_why() {
    let (inv, existing, flows) = (inv(), existing(), flows());
    let run = flowgate(&[
        "check",
        "--inventory",
        &inv,
        &existing,
        "--flows",
        &flows,
        "--proposed",
        "--namespace",
        "example-java-app",
        "--json",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let want: BTreeMap<String, String> = [
        // Blocked today by the namespace's default deny, allowed by the proposed policy.
        ("~jclient -> ~javaapp 8080/TCP", "newly_allowed"),
        // Blocked today by another team's policy on redis (monitoring only); the proposal adds
        // the app's own rule beside it (policies add up).
        ("~javaapp -> ~redis 6379/TCP", "newly_allowed"),
        ("~javaapp -> ~cassandra 9042/TCP", "newly_allowed"),
        ("~javaapp -> ~mongo 27017/TCP", "newly_allowed"),
        // The external API is not trusted: the proposed egress policy would cut it off.
        ("~javaapp -> 192.229.173.207 443/TCP", "would_break"),
        ("~javaapp -> deployment/kube-system/coredns 53/UDP", "allowed"),
        ("~jclient -> deployment/kube-system/coredns 53/UDP", "allowed"),
        ("node/node-1 -> ~javaapp 8080/TCP", "not_subject"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(effects(&run), want);
    let rows = by_conn(&run);
    let api = &rows["~javaapp -> 192.229.173.207 443/TCP"];
    assert_eq!(
        api["reason"],
        "blocked by the default deny of example-java-app/example-java-app-javaapp (egress: no rule allows it)"
    );
    assert_eq!(api["processes"], serde_json::json!(["java"]));
    assert!(run.stderr.contains("applying them breaks 1 connection seen in the window:"), "{}", run.stderr);
    assert!(run.stderr.contains("WOULD BREAK: deployment/example-java-app/example-java-app-javaapp -> 192.229.173.207 (external) 443/TCP (5 flows, last seen 2026-11-25T10:04:12Z, process java)"), "{}", run.stderr);
    let jclient = &rows["~jclient -> ~javaapp 8080/TCP"];
    assert_eq!(
        jclient["reason"],
        "allowed by example-java-app/example-java-app-javaapp spec.ingress[0]; example-java-app/example-java-app-jclient spec.egress[0]"
    );

    // Without the proposal, the cluster's own policies decide: nothing changes, and what they
    // block today is named with the policy that blocks it.
    let today =
        flowgate(&["check", "--inventory", &inv, &existing, "--flows", &flows, "--policies", &existing, "--json"]);
    assert_eq!(today.code, Some(0), "{}", today.stderr);
    let rows = by_conn(&today);
    assert!(rows.values().all(|r| r["effect"] != "would_break" && r["effect"] != "newly_allowed"), "{rows:?}");
    let redis = &rows["~javaapp -> ~redis 6379/TCP"];
    assert_eq!(redis["effect"], "blocked");
    assert_eq!(
        redis["reason"],
        "blocked by the default deny of example-java-app/default-deny-ingress, example-java-app/redis-from-monitoring (ingress: no rule allows it)"
    );
}

/// The seed's story: a hand-written policy that forgets DNS and the external API.
#[test]
fn a_hand_written_policy_that_forgets_dns_breaks_dns() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("javaapp.yaml");
    std::fs::write(
        &mine,
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: javaapp, namespace: example-java-app}
spec:
  podSelector: {matchLabels: {app.kubernetes.io/name: example-java-app-javaapp}}
  policyTypes: [Egress]
  egress:
    - to: [{podSelector: {matchLabels: {app.kubernetes.io/name: example-java-app-redis}}}]
      ports: [{port: 6379}]
",
    )
    .unwrap();
    let (inv, flows) = (inv(), flows());
    let run = flowgate(&[
        "check",
        "--inventory",
        &inv,
        "--flows",
        &flows,
        "--policies",
        mine.to_str().unwrap(),
        "--json",
        "--fail-on-blocked",
    ]);
    assert_eq!(run.code, Some(1), "--fail-on-blocked: {}", run.stderr);
    let broken: Vec<String> = effects(&run).into_iter().filter(|(_, e)| e == "would_break").map(|(k, _)| k).collect();
    assert_eq!(
        broken,
        [
            "~javaapp -> 192.229.173.207 443/TCP",
            "~javaapp -> deployment/kube-system/coredns 53/UDP",
            "~javaapp -> ~cassandra 9042/TCP",
            "~javaapp -> ~mongo 27017/TCP",
        ]
    );
    for k in &broken {
        assert_eq!(
            by_conn(&run)[k]["reason"],
            "blocked by the default deny of example-java-app/javaapp (egress: no rule allows it)",
            "{k}"
        );
    }
}

fn database_url(pool: &sqlx::PgPool) -> String {
    let o = pool.connect_options();
    format!("postgres://{}@{}:{}/{}", o.get_username(), o.get_host(), o.get_port(), o.get_database().unwrap())
}

/// The same simulation from the store: the cluster's policies imported with its objects, the
/// proposal from the stored connections and decisions.
#[sqlx::test(migrations = false)]
async fn the_store_simulates_like_the_files(pool: sqlx::PgPool) {
    let url = database_url(&pool);
    let (inv, existing, flows) = (inv(), existing(), flows());
    let ok = |args: &[&str]| {
        let r = flowgate(args);
        assert_eq!(r.code, Some(0), "flowgate {}\n{}", args.join(" "), r.stderr);
        r
    };
    ok(&["import", "--cluster", "c", "--at", "2000-01-01T00:00:00Z", "--database-url", &url, &inv, &existing]);
    ok(&["ingest", "--cluster", "c", "--retention", "36500d", "--database-url", &url, &flows]);
    let args = ["--proposed", "--namespace", "example-java-app", "--json"];
    let mut offline = vec!["check", "--inventory", &inv, &existing, "--flows", &flows];
    offline.extend(args);
    let mut stored = vec!["check", "--cluster", "c", "--database-url", &url];
    stored.extend(args);
    let (offline, stored) = (ok(&offline), ok(&stored));
    assert_eq!(stored.stdout, offline.stdout);
    assert!(stored.stderr.contains("applying them breaks 1 connection"), "{}", stored.stderr);
}

/// `flowgate explain`: one connection, both sides, today and with a file applied; bad input said.
#[test]
fn explain_says_which_side_decides_and_why() {
    let (inv, existing, flows) = (inv(), existing(), flows());
    let run = flowgate(&[
        "explain",
        "deployment/example-java-app/example-java-app-javaapp",
        "deployment/example-java-app/example-java-app-redis",
        "6379/TCP",
        "--inventory",
        &inv,
        &existing,
        "--flows",
        &flows,
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[1],
        "today, under the cluster's 3 policies: BLOCKED (blocked by the default deny of example-java-app/default-deny-ingress, example-java-app/redis-from-monitoring (ingress: no rule allows it))"
    );
    assert_eq!(lines[2], "  egress of the source:       not isolated: no policy selects it for egress");
    assert!(lines[3].starts_with("  ingress of the destination: isolated for ingress by example-java-app/default-deny-ingress, example-java-app/redis-from-monitoring"), "{}", lines[3]);
    assert!(lines[4].starts_with("observed: 5 flows (0 dropped)"), "{}", lines[4]);

    let deny = file("tests/fixtures/java-app-extra/deny-all.yaml");
    let run = flowgate(&[
        "explain",
        "deployment/example-java-app/example-java-app-javaapp",
        "203.0.113.9",
        "443/TCP",
        "--inventory",
        &inv,
        "--flows",
        &flows,
        "--policies",
        &deny,
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("today, under the cluster's 0 policies: allowed"), "{}", run.stdout);
    assert!(run.stdout.contains("with the 1 given policies applied: BLOCKED (blocked by the default deny of example-java-app/deny-all (egress"), "{}", run.stdout);
    assert!(run.stdout.contains("observed: not in the flows of this window"), "{}", run.stdout);

    let bad = flowgate(&["explain", "deployment/x/y", "10.0.0.0/8", "443/TCP", "--inventory", &inv, "--flows", &flows]);
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("DST 10.0.0.0/8: expected one address"), "{}", bad.stderr);
    let bad = flowgate(&["explain", "deployment/x/y", "10.0.0.1", "443", "--inventory", &inv, "--flows", &flows]);
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("expected a port and a protocol such as 8080/TCP"), "{}", bad.stderr);
}

/// `generate --explain FILE`: every rule with the observed connections behind it; every allowed
/// connection is behind some rule, and a rule nothing observed needs (cassandra's DNS rule: it
/// resolved nothing) says so with an empty list.
#[test]
fn every_rule_lists_the_connections_that_justify_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("why.json");
    let (inv, flows) = (inv(), flows());
    let run = flowgate(&[
        "generate",
        "--inventory",
        &inv,
        "--flows",
        &flows,
        "--namespace",
        "example-java-app",
        "-o",
        dir.path().join("p.yaml").to_str().unwrap(),
        "--explain",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let rules: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let rule = |policy: &str, direction: &str, i: u64| {
        rules
            .iter()
            .find(|r| r["policy"] == policy && r["direction"] == direction && r["rule"] == i)
            .unwrap_or_else(|| panic!("{policy} {direction} {i}: {rules:?}"))
    };
    let javaapp = "example-java-app/example-java-app-javaapp";
    let redis = rule(javaapp, "egress", 2);
    assert_eq!(redis["connections"][0]["peer"], "deployment/example-java-app/example-java-app-redis");
    assert_eq!(redis["connections"][0]["flows"], 5);
    assert_eq!(redis["connections"][0]["processes"], serde_json::json!(["java"]));
    assert_eq!(rule("example-java-app/example-java-app-cassandra", "egress", 0)["connections"], serde_json::json!([]));
    // Each allowed row of `connections` is justified by a rule of its workload's policy.
    let rows: Vec<Value> = serde_json::from_str(
        &flowgate(&[
            "connections",
            "--inventory",
            &inv,
            "--flows",
            &flows,
            "--namespace",
            "example-java-app",
            "--json",
        ])
        .stdout,
    )
    .unwrap();
    for row in rows.iter().filter(|r| r["status"] == "allowed") {
        let w = row["workload"].as_str().unwrap();
        let policy = format!("example-java-app/{}", w.rsplit('/').next().unwrap());
        let justified = rules.iter().any(|r| {
            r["policy"] == policy.as_str()
                && r["direction"] == row["direction"]
                && r["connections"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["peer"] == row["peer"] && c["port"] == row["port"])
        });
        assert!(justified, "{row}");
    }
}
