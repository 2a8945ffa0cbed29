//! The kube-rs watcher against a fake Kubernetes API server that speaks the real list/watch
//! protocol (typed lists with a resourceVersion, then newline-delimited watch events on a held-open
//! response) with real object JSON, recording into a fresh database; and `serve --kube`'s side
//! of it: `/readyz` waits for every kind's first list, the watcher stops with the server.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use flowgate::store::Store;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

#[path = "support/served.rs"]
mod served;

/// Objects by resource plural, and the watch channels opened so far per plural.
#[derive(Clone, Default)]
struct Fake {
    objects: Arc<HashMap<String, Vec<Value>>>,
    watchers: Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Value>>>>>,
    /// When set, lists are answered only once it holds `true` (the API server is slow to list).
    lists_open: Option<watch::Receiver<bool>>,
    /// This many watch requests are answered 500 before the rest are served.
    failing_watches: Arc<AtomicUsize>,
    /// Every request as RBAC sees it: (API group, resource, verb).
    requests: Arc<Mutex<BTreeSet<(String, String, String)>>>,
}

/// The (API group, resource) of a collection's path: `/api/v1/pods` or `/apis/apps/v1/deployments`.
fn group_resource(path: &str) -> (String, String) {
    match path.trim_start_matches('/').split('/').collect::<Vec<_>>()[..] {
        ["api", _version, resource] => (String::new(), resource.to_string()),
        ["apis", group, _version, resource] => (group.to_string(), resource.to_string()),
        _ => panic!("a request for {path}, not a collection"),
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "Endpoints" => "endpoints".into(),
        "NetworkPolicy" => "networkpolicies".into(),
        "Ingress" => "ingresses".into(),
        "AdminNetworkPolicy" => "adminnetworkpolicies".into(),
        "BaselineAdminNetworkPolicy" => "baselineadminnetworkpolicies".into(),
        "ClusterNetworkPolicy" => "clusternetworkpolicies".into(),
        k => format!("{}s", k.to_ascii_lowercase()),
    }
}

async fn api(State(fake): State<Fake>, uri: Uri, Query(q): Query<HashMap<String, String>>) -> Response {
    let resource = uri.path().rsplit('/').next().unwrap_or_default().to_string();
    let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let (group, resource_name) = group_resource(uri.path());
    let verb = if watching { "watch" } else { "list" };
    fake.requests.lock().unwrap().insert((group, resource_name, verb.to_string()));
    if watching && fake.failing_watches.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "watch failed").into_response();
    }
    if watching {
        let (tx, rx) = mpsc::unbounded_channel::<Value>();
        fake.watchers.lock().unwrap().entry(resource).or_default().push(tx);
        // The response stays open; every event is one JSON line, as the API server sends them.
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            let ev = rx.recv().await?;
            Some((Ok::<_, std::io::Error>(format!("{ev}\n")), rx))
        });
        return Response::builder().header("content-type", "application/json").body(Body::from_stream(stream)).unwrap();
    }
    if let Some(mut open) = fake.lists_open.clone() {
        let _ = open.wait_for(|open| *open).await;
    }
    let Some(items) = fake.objects.get(&resource) else {
        return (StatusCode::NOT_FOUND, format!("no resource {resource}")).into_response();
    };
    // A real API server's list items carry neither kind nor apiVersion.
    let items: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut o = o.clone();
            o.as_object_mut().unwrap().remove("kind");
            o.as_object_mut().unwrap().remove("apiVersion");
            o
        })
        .collect();
    axum::Json(json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "100"}, "items": items}))
        .into_response()
}

type Import = (flowgate::store::inventory::ImportReport, usize);

async fn next(imports: &mut mpsc::UnboundedReceiver<Import>) -> Import {
    tokio::time::timeout(Duration::from_secs(20), imports.recv()).await.expect("an import within 20 s").unwrap()
}

/// The java-app fixture as the API server would hold it, by plural (every kind the watcher
/// reads, most empty), and how many objects that is.
fn java_app_objects() -> (HashMap<String, Vec<Value>>, usize) {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/java-app/inventory.json")).expect("fixture is JSON");
    let mut objects: HashMap<String, Vec<Value>> = HashMap::new();
    for plural_name in [
        "namespaces",
        "nodes",
        "pods",
        "services",
        "endpointslices",
        "replicasets",
        "replicationcontrollers",
        "deployments",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
        "networkpolicies",
        "ingresses",
        "adminnetworkpolicies",
        "baselineadminnetworkpolicies",
        "clusternetworkpolicies",
    ] {
        objects.insert(plural_name.to_string(), Vec::new());
    }
    let mut expected = 0;
    for item in fixture["items"].as_array().unwrap() {
        let mut item = item.clone();
        item["metadata"]["resourceVersion"] = json!("50");
        if let Some(list) = objects.get_mut(&plural(item["kind"].as_str().unwrap())) {
            list.push(item);
            expected += 1;
        }
    }
    (objects, expected)
}

/// Serves the fake API server on a free port; its URL.
async fn serve_fake(fake: &Fake) -> String {
    let app = axum::Router::new().fallback(api).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn client(url: &str) -> kube::Client {
    kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
}

#[sqlx::test(migrations = false)]
async fn watches_a_cluster_and_closes_deleted_objects(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let cluster = store.cluster_id("live", true).await.unwrap();
    let (mut objects, expected) = java_app_objects();
    // A Deployment whose name the API server would refuse: the watcher does not record it, and
    // says so in the import's report.
    objects.get_mut("deployments").unwrap().push(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "UPPER_case", "namespace": "example-java-app", "resourceVersion": "50"},
        "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "<img src=x onerror=alert(1)>"}}}}
    }));
    let cassandra_pod = objects["pods"]
        .iter()
        .find(|p| p["metadata"]["name"].as_str().unwrap().starts_with("example-java-app-cassandra-"))
        .cloned()
        .unwrap();
    let fake = Fake { objects: Arc::new(objects), ..Fake::default() };
    let client = client(&serve_fake(&fake).await);
    let (tx, mut imports) = mpsc::unbounded_channel();
    let watcher =
        tokio::spawn(flowgate::watch::watch(client, store.clone(), cluster, Duration::from_millis(50), move |r, n| {
            let _ = tx.send((r.clone(), n));
        }));

    // First, the full snapshot once every kind has listed.
    let (report, n) = next(&mut imports).await;
    assert_eq!((n, report.added as usize, report.closed, report.skipped), (expected + 1, expected, 0, 1));
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].starts_with(r#"Deployment "example-java-app/UPPER_case": metadata.name: "#),
        "{report:?}"
    );
    let stored: i64 =
        sqlx::query_scalar("select count(*) from k8s_objects where cluster_id = $1 and name = 'UPPER_case'")
            .bind(cluster)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(stored, 0);

    // The cassandra pod is deleted: a watch event, then an import that closes it.
    let mut deleted = cassandra_pod.clone();
    deleted["metadata"]["resourceVersion"] = json!("101");
    let watchers = fake.watchers.lock().unwrap().get("pods").cloned().unwrap_or_default();
    assert!(!watchers.is_empty(), "the watcher opened a watch on pods");
    for w in &watchers {
        w.send(json!({"type": "DELETED", "object": deleted})).unwrap();
    }
    let (report, n) = next(&mut imports).await;
    assert_eq!((n, report.closed), (expected, 1));
    let open: Option<(Option<i64>,)> = sqlx::query_as(
        "select (extract(epoch from valid_to))::bigint from k8s_objects
         where cluster_id = $1 and kind = 'Pod' and name = $2",
    )
    .bind(cluster)
    .bind(cassandra_pod["metadata"]["name"].as_str().unwrap())
    .fetch_optional(&store.pool)
    .await
    .unwrap();
    assert!(open.expect("the pod is kept").0.is_some(), "the deleted pod is closed, not deleted");
    watcher.abort();
}

/// Waits until the cluster's current objects are `expected` many; panics at `deadline`.
async fn wait_for_objects(store: &Store, cluster: i32, expected: usize, deadline: Instant) {
    loop {
        let recorded: i64 =
            sqlx::query_scalar("select count(*) from k8s_objects where cluster_id = $1 and valid_to is null")
                .bind(cluster)
                .fetch_one(&store.pool)
                .await
                .unwrap();
        if recorded == expected as i64 {
            return;
        }
        assert!(Instant::now() < deadline, "{recorded} of {expected} objects recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let resp = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// `serve --kube`: `/readyz` is 503 naming the kinds not listed yet while the API server holds
/// its lists back, 200 once every kind has listed; the watcher then records the cluster, counts
/// a failed watch as a restart in `/metrics`, and stops when told to.
#[sqlx::test(migrations = false)]
async fn readyz_waits_for_every_kind_to_list_and_the_watcher_stops_with_the_server(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let cluster = store.cluster_id("live", true).await.unwrap();
    let (objects, expected) = java_app_objects();
    let (open_lists, lists_open) = watch::channel(false);
    let fake = Fake {
        objects: Arc::new(objects),
        lists_open: Some(lists_open),
        failing_watches: Arc::new(AtomicUsize::new(1)),
        ..Fake::default()
    };
    let client = client(&serve_fake(&fake).await);
    let mut state = flowgate::web::AppState::new(store.clone(), "watch-test-token-0123456789");
    let watcher = flowgate::watch::Watcher::start(&client, &state.metrics);
    state.watching = Some(watcher.synced());
    let metrics = state.metrics.clone();
    let app = flowgate::web::router(state);

    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.starts_with("not ready: Kubernetes objects not listed yet: Namespace, Node, Pod,"), "{body}");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(watcher.run(store.clone(), cluster, Duration::from_millis(50), async move {
        let _ = stopped.await;
    }));
    open_lists.send(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(&app, "/readyz").await;
        if status == StatusCode::OK {
            assert_eq!(body, "ready\n");
            break;
        }
        assert!(Instant::now() < deadline, "not ready 20 s after the lists: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Recorded by the server's watcher, as by `flowgate watch`.
    wait_for_objects(&store, cluster, expected, deadline).await;
    // The first watch failed: one restart, under its kind.
    let restarted = || metrics.watch_restarts.values().iter().map(|(_, c)| c.get()).sum::<u64>();
    while restarted() < 1 {
        assert!(Instant::now() < deadline, "no watch restart counted within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, text) = get(&app, "/metrics").await;
    let restarts: Vec<&str> = text.lines().filter(|l| l.starts_with("flowgate_watch_restarts_total{")).collect();
    assert!(restarts.iter().any(|l| l.ends_with(" 1")), "{restarts:?}");

    // The deployment's ClusterRole grants exactly what the watcher asks for: every request is
    // allowed, and every rule is used.
    let role: k8s_openapi::api::rbac::v1::ClusterRole =
        serde_saphyr::from_str(include_str!("../deploy/base/clusterrole.yaml")).expect("the ClusterRole parses");
    let granted: BTreeSet<(String, String, String)> = role
        .rules
        .unwrap_or_default()
        .iter()
        .flat_map(|rule| {
            let groups = rule.api_groups.clone().unwrap_or_default();
            let resources = rule.resources.clone().unwrap_or_default();
            groups.into_iter().flat_map(move |g| {
                let verbs = rule.verbs.clone();
                resources.clone().into_iter().flat_map(move |r| {
                    let g = g.clone();
                    verbs.clone().into_iter().map(move |v| (g.clone(), r.clone(), v))
                })
            })
        })
        .collect();
    while *fake.requests.lock().unwrap() != granted {
        let requested = fake.requests.lock().unwrap().clone();
        let beyond: Vec<_> = requested.difference(&granted).collect();
        assert!(beyond.is_empty(), "requests the ClusterRole does not allow: {beyond:?}");
        assert!(
            Instant::now() < deadline,
            "rules never used: {:?}",
            granted.difference(&requested).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running).await.expect("the watcher stops when told").unwrap();
}

/// A GET over a real connection: the status and the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: flowgate\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut answer)).await.unwrap().unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{answer}"));
    (status, answer.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

/// The binary: `serve --kube --kubeconfig F --cluster NAME` watches the cluster its kubeconfig
/// names, is not ready until every kind has listed, records the cluster under that name, and
/// stops with its watchers at SIGTERM (exit 0).
#[sqlx::test(migrations = false)]
async fn serve_kube_watches_the_kubeconfig_cluster_until_sigterm(pool: PgPool) {
    use sqlx::ConnectOptions;
    let db_url = pool.connect_options().to_url_lossy().to_string();
    let store = Store::from_pool(pool).await.unwrap();
    let (objects, expected) = java_app_objects();
    let (open_lists, lists_open) = watch::channel(false);
    let fake = Fake { objects: Arc::new(objects), lists_open: Some(lists_open), ..Fake::default() };
    let api_url = serve_fake(&fake).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters: [{{name: fake, cluster: {{server: \"{api_url}\"}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n"
        ),
    )
    .unwrap();
    let kubeconfig = kubeconfig.to_str().unwrap().to_string();
    // The child is waited for on a blocking thread: this runtime serves the fake API meanwhile.
    let mut server = tokio::task::spawn_blocking(move || {
        let args = ["--kube", "--kubeconfig", &kubeconfig, "--cluster", "live", "--watch-interval", "1s"];
        served::Served::start(&db_url, &args, Some("serve-kube-test-token-0123"))
    })
    .await
    .unwrap();
    let addr = server.addr();

    let (status, body) = http_get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not listed yet"), "{body}");
    open_lists.send(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(addr, "/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "not ready 30 s after the lists:\n{}", server.stderr);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cluster = loop {
        if let Ok(id) = store.cluster_id("live", false).await {
            break id;
        }
        assert!(Instant::now() < deadline, "no cluster \"live\" recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    wait_for_objects(&store, cluster, expected, deadline).await;

    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate(Duration::from_secs(20));
        (status, server.stderr.clone())
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(0), "{}", status.1);
    assert!(status.1.contains("watching the cluster as \"live\""), "{}", status.1);
}

/// The Network Policy API's cluster-scoped kinds: where their CRDs are installed they are watched
/// and recorded like any kind, and read back into the inventory the evaluator uses; where they are
/// not (the API server answers 404), the watcher records everything else without them.
#[sqlx::test(migrations = false)]
async fn admin_policies_are_watched_where_their_crds_are_installed(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let (mut objects, expected) = java_app_objects();
    objects.get_mut("adminnetworkpolicies").unwrap().push(json!({
        "metadata": {"name": "protect-db", "resourceVersion": "50"},
        "spec": {"priority": 10, "subject": {"namespaces": {}},
                 "ingress": [{"name": "no-web", "action": "Deny", "from": [{"namespaces": {"matchLabels": {"team": "web"}}}]}]}
    }));
    objects.get_mut("clusternetworkpolicies").unwrap().push(json!({
        "metadata": {"name": "baseline-deny", "resourceVersion": "50"},
        "spec": {"tier": "Baseline", "priority": 100, "subject": {"namespaces": {}},
                 "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]}
    }));
    let installed = store.cluster_id("installed", true).await.unwrap();
    let fake = Fake { objects: Arc::new(objects.clone()), ..Fake::default() };
    let (tx, mut imports) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(flowgate::watch::watch(
        client(&serve_fake(&fake).await),
        store.clone(),
        installed,
        Duration::from_millis(50),
        move |r, n| {
            let _ = tx.send((r.clone(), n));
        },
    ));
    let (report, n) = next(&mut imports).await;
    assert_eq!((n, report.added as usize), (expected + 2, expected + 2), "{report:?}");
    watcher.abort();
    let inv = store.load_inventory(installed).await.unwrap();
    assert!(inv.notes.is_empty(), "{:?}", inv.notes);
    assert_eq!(inv.admin.admin.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect::<Vec<_>>(), ["protect-db"]);
    assert_eq!(inv.admin.cluster.len(), 1);
    assert_eq!(inv.admin.cluster[0].api_version, "policy.networking.k8s.io/v1alpha2");

    // A cluster without those CRDs.
    for plural in ["adminnetworkpolicies", "baselineadminnetworkpolicies", "clusternetworkpolicies"] {
        objects.remove(plural);
    }
    let bare = store.cluster_id("bare", true).await.unwrap();
    let fake = Fake { objects: Arc::new(objects), ..Fake::default() };
    let (tx, mut imports) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(flowgate::watch::watch(
        client(&serve_fake(&fake).await),
        store.clone(),
        bare,
        Duration::from_millis(50),
        move |r, n| {
            let _ = tx.send((r.clone(), n));
        },
    ));
    let (report, n) = next(&mut imports).await;
    assert_eq!((n, report.added as usize), (expected, expected), "{report:?}");
    watcher.abort();
    // They were asked for, once each, and not watched.
    let asked = fake.requests.lock().unwrap().clone();
    assert!(asked.contains(&("policy.networking.k8s.io".into(), "adminnetworkpolicies".into(), "list".into())));
    assert!(!asked.contains(&("policy.networking.k8s.io".into(), "adminnetworkpolicies".into(), "watch".into())));
}
