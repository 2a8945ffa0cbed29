//! One review, two sources: the same inventory and flows give the same connections, rows, JSON and
//! YAML whether they are read from files (`--inventory`, `--flows`) or imported and ingested into
//! the store and read back (`--cluster`), byte for byte. Run through the real binary on the
//! fixtures, the real Hubble captures and a connection with more processes than the cap.

use std::collections::BTreeSet;
use std::path::Path;

#[path = "support/bin.rs"]
mod bin;
use bin::{Run, flowgate};

fn ok(what: &str, args: &[&str]) -> Run {
    let r = flowgate(args);
    assert_eq!(r.code, Some(0), "{what}: flowgate {}\n{}", args.join(" "), r.stderr);
    r
}

fn database_url(pool: &sqlx::PgPool) -> String {
    let o = pool.connect_options();
    format!("postgres://{}@{}:{}/{}", o.get_username(), o.get_host(), o.get_port(), o.get_database().unwrap())
}

/// The namespaces a Hubble file's endpoints name.
fn hubble_namespaces(path: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let f = v.get("flow").unwrap_or(&v);
        for end in ["source", "destination"] {
            if let Some(ns) = f[end]["namespace"].as_str().filter(|s| !s.is_empty()) {
                out.insert(ns.to_string());
            }
        }
    }
    out
}

struct Case {
    name: String,
    inventory: Option<String>,
    flows: Vec<String>,
    namespaces: Vec<String>,
    /// Decisions given on the command line, the same both ways.
    extra: Vec<&'static str>,
}

fn cases(dir: &Path) -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = |p: &str| root.join(p).to_str().unwrap().to_string();
    // A connection with eleven processes: more than the eight a connection keeps.
    let many = dir.join("many-processes.ndjson");
    let lines: String = (0..11)
        .map(|i| {
            format!(
                r#"{{"time":"2026-11-25T10:0{}:00Z","src_ip":"10.244.0.12","src_port":{},"dst_ip":"10.96.10.13","dst_port":6379,"protocol":"TCP","process":"proc-{}"}}"#,
                i % 10,
                41000 + i,
                (i * 7) % 11
            ) + "\n"
        })
        .collect();
    std::fs::write(&many, lines).unwrap();
    let mut v = vec![
        Case {
            name: "java-app".into(),
            inventory: Some(file("tests/fixtures/java-app/inventory.json")),
            flows: vec![file("tests/fixtures/java-app/flows.ndjson"), many.to_str().unwrap().to_string()],
            namespaces: vec!["example-java-app".into()],
            extra: vec![
                "--exclude",
                "deployment/example-java-app/example-java-app-cassandra",
                "--trust",
                "192.229.173.0/24",
            ],
        },
        Case {
            name: "ip-recycling".into(),
            inventory: Some(file("tests/fixtures/ip-recycling/inventory.json")),
            flows: vec![file("tests/fixtures/ip-recycling/flows.ndjson")],
            namespaces: vec!["shop".into()],
            extra: vec![],
        },
        Case {
            name: "bookinfo-proxy".into(),
            inventory: None,
            flows: vec![file("tests/fixtures/bookinfo-proxy/flows.json")],
            namespaces: vec!["bookinfo".into()],
            extra: vec![],
        },
    ];
    let mut samples: Vec<_> =
        std::fs::read_dir(root.join("tests/data/hubble")).unwrap().map(|e| e.unwrap().path()).collect();
    samples.sort();
    for path in samples.into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let namespaces: Vec<String> = hubble_namespaces(&path).into_iter().collect();
        v.push(Case {
            name: path.file_stem().unwrap().to_str().unwrap().to_string(),
            inventory: None,
            flows: vec![path.to_str().unwrap().to_string()],
            namespaces,
            extra: vec![],
        });
    }
    v
}

#[sqlx::test(migrations = false)]
async fn files_and_the_store_give_the_same_connections_rows_json_and_yaml(pool: sqlx::PgPool) {
    let url = database_url(&pool);
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    let mut capped = false;
    for (i, case) in cases(dir.path()).iter().enumerate() {
        let cluster = format!("c{i}");
        // Objects valid from before the oldest flow, as a snapshot taken then would be.
        if let Some(inv) = &case.inventory {
            ok(
                &case.name,
                &["import", "--cluster", &cluster, "--at", "2000-01-01T00:00:00Z", "--database-url", &url, inv],
            );
        }
        let mut ingest = vec!["ingest", "--cluster", &cluster, "--retention", "36500d", "--database-url", &url];
        ingest.extend(case.flows.iter().map(String::as_str));
        let r = ok(&case.name, &ingest);
        assert!(r.stderr.contains(" 0 rejected") || r.stderr.contains("0 rejected"), "{}: {}", case.name, r.stderr);

        for ns in &case.namespaces {
            let what = format!("{} --namespace {ns}", case.name);
            let mut files: Vec<&str> = Vec::new();
            if let Some(inv) = &case.inventory {
                files.extend(["--inventory", inv.as_str()]);
            }
            files.push("--flows");
            files.extend(case.flows.iter().map(String::as_str));
            let store = ["--cluster", cluster.as_str(), "--database-url", url.as_str()];
            for (sub, more) in [("generate", &[][..]), ("connections", &["--json"][..]), ("connections", &[][..])] {
                let run = |source: &[&str]| {
                    let mut args = vec![sub];
                    args.extend_from_slice(source);
                    args.extend(["--namespace", ns.as_str()]);
                    args.extend_from_slice(more);
                    args.extend(case.extra.iter().copied());
                    ok(&what, &args)
                };
                let (offline, stored) = (run(&files), run(&store));
                assert_eq!(stored.stdout, offline.stdout, "{what}: {sub} {more:?} differs between files and the store");
                compared += 1;
                if sub == "connections" && more.is_empty() && offline.stdout.contains("proc-0,proc-1,proc-10,proc-2") {
                    capped = true;
                }
            }
        }
    }
    assert!(compared >= 3 * 10, "{compared} comparisons");
    assert!(capped, "the eleven-process connection was compared, capped at its eight smallest names");
}

#[sqlx::test(migrations = false)]
async fn check_reads_the_store_like_the_files(pool: sqlx::PgPool) {
    let url = database_url(&pool);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let inv = root.join("tests/fixtures/java-app/inventory.json");
    let flows = root.join("tests/fixtures/java-app/flows.ndjson");
    let deny = root.join("tests/fixtures/java-app-extra/deny-all.yaml");
    let (inv, flows, deny) = (inv.to_str().unwrap(), flows.to_str().unwrap(), deny.to_str().unwrap());
    ok("import", &["import", "--cluster", "c", "--at", "2000-01-01T00:00:00Z", "--database-url", &url, inv]);
    ok("ingest", &["ingest", "--cluster", "c", "--retention", "36500d", "--database-url", &url, flows]);
    let offline =
        flowgate(&["check", "--inventory", inv, "--flows", flows, "--policies", deny, "--json", "--fail-on-blocked"]);
    let stored = flowgate(&[
        "check",
        "--cluster",
        "c",
        "--database-url",
        &url,
        "--policies",
        deny,
        "--json",
        "--fail-on-blocked",
    ]);
    assert_eq!(offline.code, Some(1), "the deny-all blocks something: {}", offline.stderr);
    assert_eq!(stored.code, offline.code, "{}", stored.stderr);
    assert_eq!(stored.stdout, offline.stdout);
}

#[test]
fn a_refused_database_connection_is_a_runtime_failure_not_bad_input() {
    let r = flowgate(&["stats", "--cluster", "c", "--database-url", "postgres://postgres@127.0.0.1:1/none"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    let r = flowgate(&[
        "connections",
        "--cluster",
        "c",
        "--namespace",
        "shop",
        "--database-url",
        "postgres://postgres@127.0.0.1:1/none",
    ]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    // Bad input is still 2.
    let r = flowgate(&["connections", "--namespace", "shop"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
}

/// One report: the web API's rows of a workload are the CLI's rows of that workload, field for
/// field (the same `report::rows` behind both), on the store the CLI reads.
#[sqlx::test(migrations = false)]
async fn the_web_api_and_the_cli_give_the_same_rows(pool: sqlx::PgPool) {
    use tower::ServiceExt;
    let url = database_url(&pool);
    let dir = tempfile::tempdir().unwrap();
    let case = cases(dir.path()).into_iter().next().unwrap();
    let inv = case.inventory.as_deref().unwrap();
    ok("import", &["import", "--cluster", "c", "--at", "2000-01-01T00:00:00Z", "--database-url", &url, inv]);
    let mut ingest = vec!["ingest", "--cluster", "c", "--retention", "36500d", "--database-url", &url];
    ingest.extend(case.flows.iter().map(String::as_str));
    ok("ingest", &ingest);
    let ns = &case.namespaces[0];
    let cli =
        ok("connections", &["connections", "--cluster", "c", "--database-url", &url, "--namespace", ns, "--json"]);
    let cli: Vec<serde_json::Value> = serde_json::from_str(&cli.stdout).unwrap();

    let token = "pipelines-test-token-0123";
    let store = flowgate::store::Store::from_pool(pool).await.unwrap();
    let app = flowgate::web::router(flowgate::web::AppState::new(store, token));
    let workloads: BTreeSet<String> = cli.iter().map(|r| r["workload"].as_str().unwrap().to_string()).collect();
    assert!(workloads.len() >= 4, "{workloads:?}");
    for w in &workloads {
        let (kind, rest) = w.split_once('/').unwrap();
        let name = rest.split_once('/').unwrap().1;
        // The CLI reads every stored flow; the web's window is given to cover them all.
        let path = format!("/api/v1/clusters/c/namespaces/{ns}/workloads/{kind}/{name}/connections?since=3650d");
        let req = axum::http::Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{w}");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
        let web: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mine: Vec<&serde_json::Value> = cli.iter().filter(|r| r["workload"] == w.as_str()).collect();
        let web: Vec<&serde_json::Value> = web["connections"].as_array().unwrap().iter().collect();
        assert_eq!(web, mine, "{w}: the web API's rows differ from the CLI's");
    }
}
