//! Measures how long the topology map (`static/map/`) takes to become interactive in headless
//! Chromium: `cargo run --release --example map_bench [-- OPTIONS]`.
//!
//! Serves `static/` and a minimal page with the same script tags as the real one from an in-process
//! axum server, generates synthetic graphs (namespaces of 20-50 workloads with services, some
//! external, unresolved and host peers, about 3.5 edges per node), and drives Chromium through
//! `chromedriver` (Debian: `apt-get install chromium chromium-driver`). Every run is a fresh browser
//! session with an empty profile, so scripts are fetched and compiled cold.
//!
//! Per run it reads what the page itself recorded (`performance.now()`, navigation start = 0):
//! - ready: navigation start -> `flowgate:map-ready` (scripts, fetch, layout, first frame drawn,
//!   and the map answering pan, zoom and clicks);
//! - layout: the layout step (fcose or the grouped arrangement); render: JSON parsed -> first
//!   frame (includes layout);
//! - zoom: zoom x1.5 (`flowgateMapControl.zoomBy`) -> the next full frame drawn;
//! - click node / click edge: a real WebDriver mouse click on a workload / on the middle of a
//!   connection -> `#map-details` filled with its details and the highlighted frame drawn
//!   (measured from the `mouseup`). The details are checked: a connection's must show its
//!   port/protocol, status and flows, or the run fails.
//!
//! The probes use `window.flowgateMapControl` (zoomBy, nextFrame, nodesInView, connectionsInView),
//! which both renderers of the map implement: cytoscape up to 300 nodes, its own canvas above.
//! "drawn edges" is what the canvas draws: one line per source, target and status.
//!
//! It prints the median of the runs per size. A program, not a timed test: the numbers belong in
//! BENCHMARKS.md, not in an assertion.
//!
//! Options: `--sizes 500,2000` (total nodes, namespaces included), `--runs 3`,
//! `--layouts auto,fcose` (the map's `data-map-layout`; default `auto`),
//! `--screenshot PATH` (also renders the java-app fixture and saves a PNG; `--screenshot-of
//! synthetic-500` takes a synthetic graph instead), `--window WxH`,
//! `--write-graphs DIR` (only write the synthetic graphs as JSON files, run nothing),
//! `--profile DIR` (save a JS Self-Profiling trace of each run up to `flowgate:map-ready`).
//! Environment: `CHROMEDRIVER` (default `chromedriver`), `CHROME` (default `/usr/bin/chromium` if present).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use fantoccini::Client;
use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use serde_json::{Value, json};
use tower_http::services::ServeDir;

/// The page: the same stylesheet and script tags, in the same order, as the real workload page.
/// `{GRAPH}` is replaced by the graph's URL and `{LAYOUT}` by `auto` or `fcose` (ours, not cluster data).
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Flowgate map</title>
<link rel="stylesheet" href="/static/map.css">
<script>
  // --profile: sample the page's JavaScript from the start (JS Self-Profiling API).
  if (location.search.indexOf('profile=1') >= 0 && window.Profiler) {
    window.__profiler = new Profiler({ sampleInterval: 1, maxBufferSize: 1000000 });
  }
</script>
<script defer src="/static/vendor/htmx-2.0.11.min.js"></script>
<script defer src="/static/vendor/cytoscape-3.35.0.min.js"></script>
<script defer src="/static/vendor/layout-base-2.0.1.js"></script>
<script defer src="/static/vendor/cose-base-2.2.0.js"></script>
<script defer src="/static/vendor/cytoscape-fcose-2.2.0.js"></script>
<script type="module" src="/static/map/main.js"></script>
<style>
  body { font-family: system-ui, "DejaVu Sans", sans-serif; margin: 12px 16px; color: #1f2328; }
  h1 { font-size: 1.1rem; margin: 0 0 0.5rem; }
  #map { height: 520px; min-height: 0; }
</style>
</head>
<body>
<h1>Connections of deployment example-java-app-javaapp</h1>
<div id="map" data-graph-url="{GRAPH}" data-map-layout="{LAYOUT}"></div>
<ul id="map-legend">
  <li><span class="legend-node legend-focus"></span>this workload</li>
  <li><span class="legend-node legend-workload"></span>workload</li>
  <li><span class="legend-node legend-service"></span>service</li>
  <li><span class="legend-node legend-external"></span>external address</li>
  <li><span class="legend-node legend-unresolved"></span>unresolved address</li>
  <li><span class="legend-node legend-host"></span>node (host)</li>
  <li><span class="legend-node legend-namespace"></span>namespace</li>
  <li><span class="legend-edge legend-allowed"></span>allowed</li>
  <li><span class="legend-edge legend-excluded"></span>excluded</li>
  <li><span class="legend-edge legend-unresolved-edge"></span>&#x26A0; unresolved</li>
  <li><span class="legend-edge legend-no-rule"></span>no rule needed</li>
</ul>
<div id="map-details" aria-live="polite"></div>
</body>
</html>
"#;

/// Waits for the map's first `flowgate:map-ready` and returns `window.flowgateMap`.
const WAIT_READY: &str = r#"
const done = arguments[arguments.length - 1];
const m = window.flowgateMap;
if (m && m.ready) { done(m); }
else { document.body.addEventListener('flowgate:map-ready', () => done(window.flowgateMap), { once: true }); }
"#;

/// Zooms in around the centre and returns the ms until the map has drawn the new frame (the full
/// frame at the new zoom, not a scaled copy of the old one).
const PROBE_ZOOM: &str = r#"
const done = arguments[arguments.length - 1];
const map = window.flowgateMapControl;
const t0 = performance.now();
map.zoomBy(1.5);
map.nextFrame(() => {
  const ms = performance.now() - t0;
  map.fit();
  map.nextFrame(() => done(ms));
});
"#;

/// Picks a workload (`arguments[0] == "node"`) or a connection (`"edge"`) in view, away from the
/// map's edges (and, for a connection, from every node, so that the click lands on the line), and
/// arms the click measurement; returns its viewport coordinates. `arguments[1]` skips candidates.
const ARM_CLICK: &str = r#"
const [what, skip] = arguments;
const map = window.flowgateMapControl;
const box = document.getElementById('map').getBoundingClientRect();
const inner = p => p.x > 20 && p.y > 20 && p.x < box.width - 20 && p.y < box.height - 20;
let candidates;
if (what === 'node') {
  candidates = map.nodesInView('workload').filter(inner);
} else {
  const nodes = map.nodesInView();
  candidates = map.connectionsInView().filter(c => inner(c) && nodes.every(n => Math.hypot(n.x - c.x, n.y - c.y) > 12));
}
if (candidates.length <= skip) return null;
const target = candidates[(Math.floor(candidates.length / 2) + skip) % candidates.length];
const details = document.getElementById('map-details');
details.textContent = '';
window.__clickProbe = { ms: null };
window.addEventListener('mouseup', () => {
  const t0 = performance.now();
  const obs = new MutationObserver(() => {
    obs.disconnect();
    map.nextFrame(() => { window.__clickProbe.ms = performance.now() - t0; });
  });
  obs.observe(details, { childList: true, subtree: true, characterData: true });
}, { capture: true, once: true });
return { x: box.left + target.x, y: box.top + target.y };
"#;

/// Returns [ms, text of #map-details] once the click has been answered (ms null: no answer in 10 s).
const WAIT_CLICK: &str = r#"
const done = arguments[arguments.length - 1];
const t = performance.now();
const text = () => document.getElementById('map-details').textContent;
(function poll() {
  const p = window.__clickProbe;
  if (p && p.ms !== null) return done([p.ms, text()]);
  if (performance.now() - t > 10000) return done([null, text()]);
  requestAnimationFrame(poll);
})();
"#;

/// `data-map-layout` values the map knows: `auto` (fcose up to 300 nodes, grouped above) and
/// `fcose` (fcose at every size, 'draft' quality above 300 nodes).
const LAYOUTS: [&str; 2] = ["auto", "fcose"];

#[derive(Clone)]
struct Graphs(Arc<HashMap<String, String>>);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let opts = Options::parse()?;
    tokio::select! {
        r = run(opts) => r,
        _ = tokio::signal::ctrl_c() => {
            // Returning drops the chromedriver guard and the temporary profile directory.
            eprintln!("interrupted");
            Ok(())
        }
    }
}

struct Options {
    sizes: Vec<usize>,
    runs: usize,
    screenshot: Option<PathBuf>,
    window: (u32, u32),
    write_graphs: Option<PathBuf>,
    layouts: Vec<String>,
    profile: Option<PathBuf>,
    screenshot_of: String,
}

impl Options {
    fn parse() -> Result<Options> {
        let mut o = Options {
            sizes: vec![500, 2000],
            runs: 3,
            screenshot: None,
            window: (1280, 900),
            write_graphs: None,
            layouts: vec!["auto".to_string()],
            profile: None,
            screenshot_of: "java-app".to_string(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
            match a.as_str() {
                "--sizes" => {
                    let v = value()?;
                    o.sizes = v
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.trim().parse().context("--sizes takes numbers"))
                        .collect::<Result<_>>()?;
                }
                "--layouts" => {
                    o.layouts = value()?.split(',').map(str::to_string).collect();
                    if let Some(bad) = o.layouts.iter().find(|l| !LAYOUTS.contains(&l.as_str())) {
                        bail!("unknown layout {bad}; known: {LAYOUTS:?}");
                    }
                }
                "--runs" => o.runs = value()?.parse().context("--runs takes a number")?,
                "--screenshot" => o.screenshot = Some(PathBuf::from(value()?)),
                "--screenshot-of" => o.screenshot_of = value()?,
                "--profile" => o.profile = Some(PathBuf::from(value()?)),
                "--write-graphs" => o.write_graphs = Some(PathBuf::from(value()?)),
                "--window" => {
                    let v = value()?;
                    let (w, h) = v.split_once('x').ok_or_else(|| anyhow!("--window takes WxH"))?;
                    o.window = (w.parse()?, h.parse()?);
                }
                _ => bail!("unknown argument {a}; see the comment at the top of examples/map_bench.rs"),
            }
        }
        if o.runs == 0 {
            bail!("--runs must be at least 1");
        }
        Ok(o)
    }
}

async fn run(opts: Options) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut graphs = HashMap::new();
    let mut shapes = Vec::new();
    for &n in &opts.sizes {
        let g = synthetic_graph(n, 0x5eed_0000 + n as u64);
        let edges = g["edges"].as_array().map_or(0, Vec::len);
        shapes.push((n, edges));
        let text = serde_json::to_string(&g)?;
        if let Some(dir) = &opts.write_graphs {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join(format!("synthetic-{n}.json")), &text)?;
        }
        graphs.insert(format!("synthetic-{n}"), text);
    }
    if opts.write_graphs.is_some() {
        return Ok(());
    }
    let fixture = root.join("tests/fixtures/graph/java-app.json");
    graphs.insert(
        "java-app".to_string(),
        std::fs::read_to_string(&fixture).context("reading the java-app graph fixture")?,
    );

    let addr = serve(root.join("static"), Graphs(Arc::new(graphs))).await?;
    let profiles = tempfile::Builder::new().prefix("flowgate-map-bench-").tempdir()?;
    let driver = Chromedriver::start().map_err(anyhow::Error::msg)?;

    let load_before = loadavg();
    let mut rows = Vec::new();
    for (n, edges) in shapes {
        for layout in &opts.layouts {
            let mut runs = Vec::new();
            for i in 0..opts.runs {
                let profile = profiles.path().join(format!("{n}-{layout}-{i}"));
                let client = driver.session(&profile, opts.window).await.map_err(anyhow::Error::msg)?;
                let profile_out = opts.profile.as_ref().map(|d| d.join(format!("map-{n}-{layout}-{i}.json")));
                let query = if profile_out.is_some() { "&profile=1" } else { "" };
                let r = measure(
                    &client,
                    &format!("http://{addr}/page/synthetic-{n}?layout={layout}{query}"),
                    profile_out.as_deref(),
                )
                .await;
                client.close().await.ok();
                let r = r.with_context(|| format!("run {} at {n} nodes, layout {layout}", i + 1))?;
                eprintln!(
                    "  {n} nodes, {}, run {}: ready {:.0} ms (scripts {:.0}, fetch {:.0}, render {:.0}: build {:.0}, layout {:.0}, first frame {:.0}), zoom {:.0} ms, click {}, edge click {}",
                    r.layout_name,
                    i + 1,
                    r.ready,
                    r.ready - r.render - r.fetch,
                    r.fetch,
                    r.render,
                    r.build,
                    r.layout,
                    r.paint,
                    r.zoom,
                    r.click.map_or("-".to_string(), |c| format!("{c:.0} ms")),
                    r.edge_click.map_or("-".to_string(), |c| format!("{c:.0} ms")),
                );
                runs.push(r);
            }
            let name = runs[0].layout_name.clone();
            rows.push((n, edges, name, runs));
        }
    }

    if !rows.is_empty() {
        println!();
        // The figures are wall-clock times: on a shared machine other work shows up in them.
        println!("load average (1 min) before: {}, after: {}", load_before, loadavg());
        println!(
            "Topology map, headless Chromium, median of {} runs (ms; ready = navigation start to flowgate:map-ready)",
            opts.runs
        );
        println!();
        println!(
            "| nodes | edges | drawn edges | layout, renderer | ready | layout ms | render ms | zoom redraw | click node -> details | click edge -> details |"
        );
        println!(
            "|------:|------:|------------:|:-----------------|------:|----------:|----------:|------------:|----------------------:|----------------------:|"
        );
        for (n, edges, name, runs) in &rows {
            let med = |f: &dyn Fn(&Run) -> Option<f64>| median(runs.iter().filter_map(f).collect());
            println!(
                "| {n} | {edges} | {} | {name} | {} | {} | {} | {} | {} | {} |",
                runs[0].drawn_edges.map_or_else(|| edges.to_string(), |d| format!("{d:.0}")),
                fmt(med(&|r| Some(r.ready))),
                fmt(med(&|r| Some(r.layout))),
                fmt(med(&|r| Some(r.render))),
                fmt(med(&|r| Some(r.zoom))),
                fmt(med(&|r| r.click)),
                fmt(med(&|r| r.edge_click)),
            );
        }
    }

    if let Some(path) = &opts.screenshot {
        let client =
            driver.session(&profiles.path().join("screenshot"), opts.window).await.map_err(anyhow::Error::msg)?;
        let r = screenshot(&client, &format!("http://{addr}/page/{}", opts.screenshot_of), path).await;
        client.close().await.ok();
        r?;
        eprintln!("screenshot written to {}", path.display());
    }

    drop(driver);
    profiles.close().context("removing the temporary browser profiles")?;
    Ok(())
}

struct Run {
    layout_name: String,
    ready: f64,
    fetch: f64,
    build: f64,
    paint: f64,
    layout: f64,
    render: f64,
    zoom: f64,
    click: Option<f64>,
    edge_click: Option<f64>,
    drawn_edges: Option<f64>,
}

async fn measure(client: &Client, url: &str, profile: Option<&Path>) -> Result<Run> {
    client.goto(url).await?;
    let m = client.execute_async(WAIT_READY, vec![]).await?;
    if let Some(path) = profile {
        let trace = client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 if (!window.__profiler) return done(null);
                 window.__profiler.stop().then(t => done(JSON.stringify(t)));",
                vec![],
            )
            .await?;
        match trace.as_str() {
            Some(t) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(path, t)?;
            }
            None => eprintln!("  (no JS Self-Profiling API in this browser: no profile)"),
        }
    }
    if let Some(e) = m.get("error") {
        bail!("the map reported an error: {e}");
    }
    let num = |k: &str| m.get(k).and_then(Value::as_f64).ok_or_else(|| anyhow!("flowgateMap.{k} missing in {m}"));
    // Every node and edge of the graph must be on the map, or the figures would flatter it.
    if num("dropped")? != 0.0 {
        bail!("the map left out {} nodes or edges", num("dropped")?);
    }
    let (ready, layout, render) = (num("readyAt")?, num("layoutMs")?, num("renderMs")?);
    let (fetch, build, paint) = (num("fetchMs")?, num("buildMs")?, num("paintMs")?);
    let layout_kind = m.get("layout").and_then(Value::as_str).unwrap_or("?");
    let renderer = m.get("renderer").and_then(Value::as_str).unwrap_or("?");
    let layout_name = format!("{layout_kind}, {renderer}");
    let drawn_edges = m.get("drawnEdges").and_then(Value::as_f64);
    let zoom = client.execute_async(PROBE_ZOOM, vec![]).await?.as_f64().ok_or_else(|| anyhow!("zoom probe failed"))?;
    let click = click_probe(client, "node").await?;
    let edge_click = click_probe(client, "edge").await?;
    Ok(Run { layout_name, ready, fetch, build, paint, layout, render, zoom, click, edge_click, drawn_edges })
}

/// Clicks a workload or a connection like a user (WebDriver pointer actions) and returns the ms
/// from `mouseup` to the details shown and the next frame drawn. The details must be the ones of
/// what was clicked; a connection candidate that turns out to be covered by something else is
/// skipped (at most a few).
async fn click_probe(client: &Client, what: &str) -> Result<Option<f64>> {
    for skip in 0..5 {
        let target = client.execute(ARM_CLICK, vec![what.into(), skip.into()]).await?;
        let (Some(x), Some(y)) = (target["x"].as_f64(), target["y"].as_f64()) else {
            return Ok(None);
        };
        let mouse = MouseActions::new("mouse".to_string())
            .then(PointerAction::MoveTo { duration: None, x: x.round(), y: y.round() })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
        client.perform_actions(mouse).await?;
        client.release_actions().await?;
        let answer = client.execute_async(WAIT_CLICK, vec![]).await?;
        let text = answer[1].as_str().unwrap_or_default();
        let is_connection =
            text.contains("Status") && text.contains("Flows") && (text.contains("/TCP") || text.contains("/UDP"));
        match what {
            "node" if text.contains("Connections") => return Ok(answer[0].as_f64()),
            "edge" if is_connection => return Ok(answer[0].as_f64()),
            "edge" => continue,
            _ => bail!("a click on a {what} showed unexpected details: {text:?}"),
        }
    }
    bail!("no click on a connection showed its details (port/protocol, status, flows)")
}

async fn screenshot(client: &Client, url: &str, path: &Path) -> Result<()> {
    client.goto(url).await?;
    let m = client.execute_async(WAIT_READY, vec![]).await?;
    if let Some(e) = m.get("error") {
        bail!("the map reported an error: {e}");
    }
    // Click the focus workload, so the picture shows the details panel too.
    let pos = client
        .execute(
            r#"const box = document.getElementById('map').getBoundingClientRect();
               const p = window.flowgateMapControl.nodesInView().find(n => n.focus);
               return p ? { x: box.left + p.x, y: box.top + p.y } : null;"#,
            vec![],
        )
        .await?;
    if let (Some(x), Some(y)) = (pos["x"].as_f64(), pos["y"].as_f64()) {
        let mouse = MouseActions::new("mouse".to_string())
            .then(PointerAction::MoveTo { duration: None, x: x.round(), y: y.round() })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT })
            // Move away so no hover state is captured.
            .then(PointerAction::MoveTo { duration: None, x: 2.0, y: 2.0 });
        client.perform_actions(mouse).await?;
        client.release_actions().await?;
    }
    // Let the map draw the selection before the capture.
    client
        .execute_async(
            "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done(null)));",
            vec![],
        )
        .await?;
    let png = client.screenshot().await?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.0}"))
}

// ---- the in-process server ------------------------------------------------------------------

async fn serve(static_dir: PathBuf, graphs: Graphs) -> Result<SocketAddr> {
    let app = Router::new()
        .route("/page/{name}", get(page))
        .route("/graph/{name}", get(graph))
        .nest_service("/static", ServeDir::new(static_dir))
        .with_state(graphs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("bench server stopped: {e}");
        }
    });
    Ok(addr)
}

async fn page(
    State(g): State<Graphs>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let layout = q.get("layout").map_or("auto", String::as_str);
    if !g.0.contains_key(&name) || !LAYOUTS.contains(&layout) {
        return StatusCode::NOT_FOUND.into_response();
    }
    // Both values are checked against our own lists above.
    let html = PAGE.replace("{GRAPH}", &format!("/graph/{name}")).replace("{LAYOUT}", layout);
    // Lets the page use the JS Self-Profiling API (--profile).
    ([(header::HeaderName::from_static("document-policy"), "js-profiling")], Html(html)).into_response()
}

async fn graph(State(g): State<Graphs>, UrlPath(name): UrlPath<String>) -> Response {
    match g.0.get(&name) {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

// ---- chromedriver: shared with the browser tests -----------------------------------------------

#[path = "../tests/support/chrome.rs"]
mod chrome;
use chrome::Chromedriver;

// ---- synthetic graphs -----------------------------------------------------------------------

/// SplitMix64: deterministic graphs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A graph of `total` nodes (namespaces included) in the JSON shape the map reads: namespaces of
/// 20-50 workloads plus a service for every third one, ~3% external, ~2% unresolved and a few
/// host peers, and about 3.5 edges per node, mostly inside a namespace.
fn synthetic_graph(total: usize, seed: u64) -> Value {
    let mut rng = Rng(seed);
    let others = (total * 6 / 100).max(3);
    let mut nodes = Vec::new();
    let mut namespaces: Vec<(Vec<String>, Vec<String>)> = Vec::new(); // (workloads, services)
    let mut left = total.saturating_sub(others);
    let mut ns_i = 0;
    while left > 4 {
        let ns = format!("team-{ns_i:02}");
        nodes.push(json!({"id": format!("ns:{ns}"), "kind": "namespace", "label": ns, "detail": {}, "parent": null}));
        left -= 1;
        let workloads_n = (20 + rng.below(31)).min(left * 3 / 4).max(1);
        let services_n = (workloads_n / 3).min(left - workloads_n);
        let (mut ws, mut ss) = (Vec::new(), Vec::new());
        for w in 0..workloads_n {
            let name = format!("svc{ns_i:02}-app-{w:02}");
            let id = format!("w:deployment/{ns}/{name}");
            nodes.push(json!({"id": id, "kind": "workload", "label": name,
                "detail": {"Kind": "deployment", "Namespace": ns, "Selector": format!("app={name}")},
                "parent": format!("ns:{ns}")}));
            ws.push(id);
        }
        for s in 0..services_n {
            let name = format!("api-{ns_i:02}-{s:02}");
            let id = format!("svc:{ns}/{name}");
            nodes.push(json!({"id": id, "kind": "service", "label": format!("svc {name}"),
                "detail": {"Namespace": ns, "ClusterIP": format!("10.96.{ns_i}.{s}")}, "parent": format!("ns:{ns}")}));
            ss.push(id);
        }
        left -= workloads_n + services_n;
        namespaces.push((ws, ss));
        ns_i += 1;
    }
    let others = total - nodes.len();
    let (mut external, mut unresolved, mut hosts) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..others {
        let (kind, id, label, list) = match i % 6 {
            0 | 2 | 4 => {
                let ip = format!("203.0.{}.{}", i / 250, i % 250);
                ("external", format!("ip:{ip}"), ip, &mut external)
            }
            1 | 3 => {
                let ip = format!("10.244.{}.{}", 200 + i / 250, i % 250);
                ("unresolved", format!("ip:{ip}"), ip, &mut unresolved)
            }
            _ => {
                let name = format!("node-{i}");
                ("node", format!("node:{name}"), name, &mut hosts)
            }
        };
        nodes.push(json!({"id": id, "kind": kind, "label": label, "detail": {"Address": label}, "parent": null}));
        list.push(id);
    }

    const PORTS: [&str; 8] =
        ["8080/TCP", "443/TCP", "5432/TCP", "6379/TCP", "9042/TCP", "27017/TCP", "53/UDP", "9090/TCP"];
    let mut edges = Vec::new();
    let want_edges = total * 7 / 2;
    while edges.len() < want_edges {
        let ns = rng.below(namespaces.len());
        let (ws, _) = &namespaces[ns];
        let src = ws[rng.below(ws.len())].clone();
        let roll = rng.below(100);
        let (source, target, status) = if roll < 65 {
            let (ws, ss) = &namespaces[ns];
            let pick = if !ss.is_empty() && rng.chance(40) {
                ss[rng.below(ss.len())].clone()
            } else {
                ws[rng.below(ws.len())].clone()
            };
            (src, pick, if rng.chance(85) { "allowed" } else { "excluded" })
        } else if roll < 85 {
            let (ws, ss) = &namespaces[rng.below(namespaces.len())];
            let pick = if !ss.is_empty() && rng.chance(50) {
                ss[rng.below(ss.len())].clone()
            } else {
                ws[rng.below(ws.len())].clone()
            };
            (src, pick, if rng.chance(70) { "allowed" } else { "excluded" })
        } else if roll < 93 && !external.is_empty() {
            (src, external[rng.below(external.len())].clone(), if rng.chance(40) { "allowed" } else { "excluded" })
        } else if roll < 97 && !unresolved.is_empty() {
            (unresolved[rng.below(unresolved.len())].clone(), src, "unresolved")
        } else if !hosts.is_empty() {
            (hosts[rng.below(hosts.len())].clone(), src, "no-rule")
        } else {
            continue;
        };
        if source == target {
            continue;
        }
        let port = PORTS[rng.below(PORTS.len())];
        edges.push(json!({"id": format!("e{}", edges.len()), "source": source, "target": target, "label": port,
            "status": status, "detail": {"Flows": (1 + rng.below(500)).to_string()}}));
    }
    let focus = namespaces[0].0[0].trim_start_matches("w:").to_string();
    json!({"focus": focus, "nodes": nodes, "edges": edges})
}
