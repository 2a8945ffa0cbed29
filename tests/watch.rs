//! The kube-rs watcher against a fake Kubernetes API server that speaks the real list/watch
//! protocol (typed lists with a resourceVersion, then newline-delimited watch events on a held-open
//! response) with real object JSON, recording into a fresh database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use flowgate::store::Store;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::mpsc;

/// Objects by resource plural, and the watch channels opened so far per plural.
#[derive(Clone, Default)]
struct Fake {
    objects: Arc<HashMap<String, Vec<Value>>>,
    watchers: Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Value>>>>>,
}

fn plural(kind: &str) -> String {
    match kind {
        "Endpoints" => "endpoints".into(),
        "NetworkPolicy" => "networkpolicies".into(),
        k => format!("{}s", k.to_ascii_lowercase()),
    }
}

async fn api(State(fake): State<Fake>, uri: Uri, Query(q): Query<HashMap<String, String>>) -> Response {
    let resource = uri.path().rsplit('/').next().unwrap_or_default().to_string();
    let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1");
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

#[sqlx::test(migrations = false)]
async fn watches_a_cluster_and_closes_deleted_objects(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let cluster = store.cluster_id("live", true).await.unwrap();

    // The java-app fixture, as the API server would hold it.
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
    let app = axum::Router::new().fallback(api).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = kube::Config::new(url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
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
