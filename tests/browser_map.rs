//! The map's own behaviour in headless Chromium (Debian's chromium + chromedriver), against the
//! real server on a local port and a fresh database holding the demo cluster: it fits itself
//! when shown, its drawer's buttons act like the tables, its layout is the same on every load,
//! and it answers the keyboard. (tests/browser.rs drives the page as a whole.)

#[path = "support/chrome.rs"]
mod chrome;
#[path = "support/page.rs"]
mod page;

use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use serde_json::Value;
use sqlx::PgPool;

use page::{js, serve_demo, wait_for};

const TOKEN: &str = "browser-map-test-token-0123456789";
const PAGE: &str = "/clusters/demo/namespaces/example-java-app/workloads/deployment/example-java-app-javaapp";
const NAMESPACE: &str = "/clusters/demo?ns=example-java-app";

/// Waits for the map's latest render and returns `window.flowgateMap`.
async fn map_ready(c: &Client) -> Value {
    let m = wait_for(c, "window.flowgateMap && window.flowgateMap.ready && window.flowgateMap", 30).await;
    assert!(m.get("error").is_none(), "{m}");
    m
}

/// The demo cluster behind the real router, and a logged-in Chromium session of the given size.
async fn start(pool: PgPool, size: (u32, u32)) -> (String, chrome::Chromedriver, Client, tempfile::TempDir) {
    let (base, _) = serve_demo(pool, TOKEN).await;
    let driver = chrome::Chromedriver::start().expect("chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let c = driver.session(profile.path(), size).await.expect("session");
    c.goto(&format!("{base}/?token={TOKEN}")).await.unwrap();
    (base, driver, c, profile)
}

/// Every node the map has, inside #map, and spread over it (fitted, not shrunk into a corner).
const FITTED: &str = r#"(() => {
  const m = window.flowgateMapControl;
  const ids = Object.keys(m.positions());
  const seen = new Map(m.nodesInView().map(n => [n.id, n]));
  const box = document.getElementById('map').getBoundingClientRect();
  if (!(box.width > 0) || ids.length === 0 || !ids.every(id => seen.has(id))) return false;
  const xs = ids.map(id => seen.get(id).x), ys = ids.map(id => seen.get(id).y);
  const w = Math.max(...xs) - Math.min(...xs), h = Math.max(...ys) - Math.min(...ys);
  return (w > box.width / 2 || h > box.height / 2) && [ids.length, Math.round(w), Math.round(h)];
})()"#;

/// Reloaded on the Egress tab of the narrow layout, the map is drawn while hidden; chosen
/// later, it shows every node, fitted to its box.
#[sqlx::test(migrations = false)]
async fn the_map_fits_itself_when_shown_after_a_reload_on_another_tab(pool: PgPool) {
    let (base, _driver, c, _profile) = start(pool, (900, 900)).await;
    c.goto(&format!("{base}{PAGE}#tab-egress")).await.unwrap();
    map_ready(&c).await;
    c.refresh().await.unwrap();
    let m = map_ready(&c).await;
    assert_eq!(m["layout"], "lanes", "{m}");
    // Narrow: the map is a tab of its own, hidden behind Egress, so it was drawn at no size.
    let hidden = js(&c, "return [document.body.classList.contains('layout-wide'), document.getElementById('tab-map').hidden, document.getElementById('map').clientWidth]").await;
    assert_eq!(hidden, serde_json::json!([false, true, 0]), "{hidden}");
    c.find(Locator::Css("#tab-map-link")).await.unwrap().click().await.unwrap();
    let fitted = wait_for(&c, FITTED, 10).await;
    assert_eq!(fitted[0].as_u64(), Some(leaves(&c).await), "{fitted}");

    // Resized (the window grows, the map with it) and not touched since: fitted again.
    c.set_window_size(1100, 900).await.unwrap();
    wait_for(&c, FITTED, 10).await;
    c.close().await.unwrap();
}

/// The number of nodes drawn as nodes (namespaces are boxes), from the graph the page carries.
async fn leaves(c: &Client) -> u64 {
    let v = js(
        c,
        r#"const g = JSON.parse(document.getElementById('map-graph').textContent);
           const parents = new Set(g.nodes.map(n => n.parent).filter(Boolean));
           return g.nodes.filter(n => !parents.has(n.id)).length;"#,
    )
    .await;
    v.as_u64().unwrap()
}

/// On a wide screen the map and the tables share the screen: the map and the Ingress table's
/// first row are both in the viewport as the page opens.
#[sqlx::test(migrations = false)]
async fn a_wide_screen_shows_the_map_and_the_first_rows_together(pool: PgPool) {
    let (base, _driver, c, _profile) = start(pool, (1500, 1000)).await;
    c.goto(&format!("{base}{PAGE}")).await.unwrap();
    map_ready(&c).await;
    wait_for(&c, FITTED, 10).await;
    let r = js(
        &c,
        r#"const inside = e => { const b = e.getBoundingClientRect();
             return b.width > 0 && b.top >= 0 && b.bottom <= innerHeight && b.left >= 0 && b.right <= innerWidth; };
           const row = document.querySelector('#tab-ingress tbody tr');
           return [document.body.classList.contains('layout-wide'), inside(document.getElementById('map')),
                   !!row && inside(row.querySelector('input[type=checkbox]')),
                   // the peer's first line, at least (a cell may wrap)
                   !!row && row.cells[1].getBoundingClientRect().top >= 0 && row.cells[1].getBoundingClientRect().top + 20 <= innerHeight,
                   innerHeight, row && Math.round(row.getBoundingClientRect().top)];"#,
    )
    .await;
    assert_eq!(
        &r.as_array().unwrap()[..4],
        &[Value::Bool(true), Value::Bool(true), Value::Bool(true), Value::Bool(true)],
        "wide, map, first row's checkbox, its peer: {r}"
    );
    c.close().await.unwrap();
}

/// A button of the drawer whose text starts with `prefix`, once there.
async fn drawer_button(c: &Client, prefix: &str) -> Element {
    wait_for(
        c,
        &format!(
            "[...document.querySelectorAll('#map-details button')].some(b => !b.disabled && b.textContent.startsWith({}))",
            Value::String(prefix.into())
        ),
        15,
    )
    .await;
    for b in c.find_all(Locator::Css("#map-details button")).await.unwrap() {
        if b.text().await.unwrap().starts_with(prefix) {
            return b;
        }
    }
    panic!("no button {prefix}");
}

/// The drawer's buttons do what the table's checkbox and the trust form do: the YAML changes,
/// and the drawer still shows the same connection, its button now the other way round.
#[sqlx::test(migrations = false)]
async fn the_drawer_acts_like_the_tables(pool: PgPool) {
    let (base, _driver, c, _profile) = start(pool, (1400, 1000)).await;
    c.goto(&format!("{base}{PAGE}")).await.unwrap();
    map_ready(&c).await;
    let yaml = js(&c, "return document.getElementById('policy-yaml').textContent").await;
    assert!(yaml.as_str().unwrap().contains("example-java-app-cassandra"), "{yaml}");
    c.execute("window.__noReload = true;", vec![]).await.unwrap();

    // javaapp -> Service cassandra: the connection the table's row "cassandra 9042/TCP" stands for.
    let edge = js(
        &c,
        r#"const e = window.flowgateMapControl.cy().edges().filter(e => e.target().data('label') === 'svc example-java-app-cassandra')[0];
           return e.id();"#,
    )
    .await;
    let selected = c
        .execute("return window.flowgateMapControl.select({ type: 'edge', id: arguments[0] })", vec![edge.clone()])
        .await
        .unwrap();
    assert_eq!(selected, Value::Bool(true));
    let exclude = drawer_button(&c, "Exclude 9042/TCP egress").await;
    exclude.click().await.unwrap();
    wait_for(&c, "!document.getElementById('policy-yaml').textContent.includes('example-java-app-cassandra')", 15)
        .await;
    // The table's checkbox is what changed, and the map redrew with the drawer on the same edge.
    let unticked = js(
        &c,
        r#"const tr = [...document.querySelectorAll('#review tr[data-row]')].find(r => r.dataset.row.includes('example-java-app-cassandra') && r.dataset.row.endsWith('|9042/TCP'));
           return tr && tr.querySelector('input[type=checkbox]').checked === false;"#,
    )
    .await;
    assert_eq!(unticked, Value::Bool(true));
    drawer_button(&c, "Allow 9042/TCP egress").await;
    // The keyboard's place is kept: the new button has the focus the pressed one had.
    let focused = wait_for(
        &c,
        "document.activeElement && document.activeElement.textContent.startsWith('Allow 9042/TCP egress')",
        5,
    )
    .await;
    assert_eq!(focused, Value::Bool(true));
    let same = c.execute("return window.flowgateMapControl.selected()", vec![]).await.unwrap();
    assert_eq!(same["id"], edge, "{same}");
    // The status on the map followed (unticked and in use: it would break).
    wait_for(
        &c,
        &format!("window.flowgateMapControl.cy().getElementById({edge}).data('status') === 'would-break'"),
        15,
    )
    .await;

    // The external API's node: trust its /24.
    assert!(
        c.execute("return window.flowgateMapControl.select({ type: 'node', id: 'ip:192.229.173.207' })", vec![])
            .await
            .unwrap()
            .as_bool()
            .unwrap()
    );
    drawer_button(&c, "Trust 192.229.173.207/32").await;
    drawer_button(&c, "Trust 192.229.173.0/24").await.click().await.unwrap();
    wait_for(&c, "document.getElementById('policy-yaml').textContent.includes('192.229.173.0/24')", 15).await;
    assert!(
        js(&c, "return document.getElementById('trusted').textContent")
            .await
            .as_str()
            .unwrap()
            .contains("192.229.173.0/24")
    );
    assert_eq!(js(&c, "return window.__noReload === true").await, Value::Bool(true));

    // The namespace map has no tables: its connections offer no button.
    c.goto(&format!("{base}{NAMESPACE}")).await.unwrap();
    map_ready(&c).await;
    let buttons = js(
        &c,
        r#"const m = window.flowgateMapControl;
           const e = m.cy().edges()[0];
           m.select({ type: 'edge', id: e.id() });
           return [document.getElementById('map-details').textContent.includes('Connection'),
                   document.querySelectorAll('#map-details .map-actions button').length];"#,
    )
    .await;
    assert_eq!(buttons, serde_json::json!([true, 0]), "{buttons}");
    c.close().await.unwrap();
}

/// Node positions, rounded to a tenth of a unit, after the page's map is ready.
async fn positions(c: &Client, url: &str) -> (Value, Value) {
    c.goto(url).await.unwrap();
    let m = map_ready(c).await;
    let p = js(
        c,
        r#"const p = window.flowgateMapControl.positions();
           return Object.keys(p).sort().map(id => [id, Math.round(p[id].x * 10) / 10, Math.round(p[id].y * 10) / 10]);"#,
    )
    .await;
    assert!(p.as_array().unwrap().len() > 5, "{p}");
    (m["layout"].clone(), p)
}

/// The same graph is drawn the same way on every load: lanes for a workload, and fcose (seeded)
/// for the namespace map.
#[sqlx::test(migrations = false)]
async fn the_same_graph_gives_the_same_layout(pool: PgPool) {
    let (base, _driver, c, _profile) = start(pool, (1400, 1000)).await;
    // The map's module ran after the vendored classic scripts it uses.
    c.goto(&format!("{base}{PAGE}")).await.unwrap();
    map_ready(&c).await;
    let order = js(&c, "return [window.flowgateMapControl.vendorFirst, !!document.querySelector('script[type=module][src=\"/static/map/main.js\"]')]").await;
    assert_eq!(order, serde_json::json!([true, true]));

    let (layout, first) = positions(&c, &format!("{base}{PAGE}")).await;
    assert_eq!(layout, "lanes");
    let (_, second) = positions(&c, &format!("{base}{PAGE}")).await;
    assert_eq!(first, second);
    // Lanes: ingress peers left of the focus, egress peers right of it.
    let x = |id: &str| {
        first.as_array().unwrap().iter().find(|p| p[0] == id).unwrap_or_else(|| panic!("{id}: {first}"))[1]
            .as_f64()
            .unwrap()
    };
    let focus = x("w:deployment/example-java-app/example-java-app-javaapp");
    assert!(x("w:statefulset/monitoring/prometheus") < focus, "{first}");
    assert!(x("w:deployment/example-java-app/example-java-app-cassandra") > focus, "{first}");
    assert!(x("ip:192.229.173.207") > focus, "{first}");

    let (layout, first) = positions(&c, &format!("{base}{NAMESPACE}")).await;
    assert_eq!(layout, "fcose");
    let (_, second) = positions(&c, &format!("{base}{NAMESPACE}")).await;
    assert_eq!(first, second);
    c.close().await.unwrap();
}

/// The map takes the keyboard: + zooms, n selects a node, Enter shows it in the drawer, Escape
/// clears; #map says what it holds and where the keys are explained.
#[sqlx::test(migrations = false)]
async fn the_map_answers_the_keyboard(pool: PgPool) {
    let (base, _driver, c, _profile) = start(pool, (1400, 1000)).await;
    c.goto(&format!("{base}{PAGE}")).await.unwrap();
    let m = map_ready(&c).await;
    let map = c.find(Locator::Css("#map")).await.unwrap();
    assert_eq!(map.attr("tabindex").await.unwrap().as_deref(), Some("0"));
    assert_eq!(map.attr("role").await.unwrap().as_deref(), Some("application"));
    let label = map.attr("aria-label").await.unwrap().unwrap_or_default();
    assert!(
        label.starts_with(&format!("Map of {} nodes and {} connections", m["nodes"], m["edges"]))
            && label.contains("the tables list the same connections"),
        "{label}"
    );
    let help = js(&c, "return document.getElementById('map').getAttribute('aria-describedby').split(' ').map(id => document.getElementById(id).textContent).join(' | ')").await;
    assert!(help.as_str().unwrap().contains("n and p select") && help.as_str().unwrap().contains("Ingress"), "{help}");

    let before = js(&c, "return window.flowgateMapControl.zoom()").await.as_f64().unwrap();
    map.send_keys("+").await.unwrap();
    let after = js(&c, "return window.flowgateMapControl.zoom()").await.as_f64().unwrap();
    assert!(after > before * 1.1, "{before} -> {after}");
    assert_eq!(js(&c, "return document.activeElement.id").await, "map");

    map.send_keys("n").await.unwrap();
    let sel = js(&c, "return window.flowgateMapControl.selected()").await;
    assert_eq!(sel["type"], "node", "{sel}");
    assert_eq!(js(&c, "return document.getElementById('map-details').textContent").await, "");
    map.send_keys("\u{e007}").await.unwrap();
    let name = js(
        &c,
        "return window.flowgateMapControl.cy().getElementById(window.flowgateMapControl.selected().id).data('fullLabel')",
    )
    .await;
    let drawer = wait_for(&c, "document.getElementById('map-details').textContent", 5).await;
    assert!(drawer.as_str().unwrap().starts_with(name.as_str().unwrap()), "{drawer} / {name}");
    // n again: the next node; the status says which for a screen reader.
    map.send_keys("n").await.unwrap();
    let next = js(&c, "return window.flowgateMapControl.selected()").await;
    assert_ne!(next["id"], sel["id"]);
    assert!(
        js(&c, "return document.getElementById('map-status').textContent").await.as_str().unwrap().contains("2 of")
    );
    // The pointer: over a Service, its full name in a tooltip.
    let at = js(
        &c,
        r#"const box = document.getElementById('map').getBoundingClientRect();
           const n = window.flowgateMapControl.nodesInView('service').find(n => n.id === 'svc:example-java-app/example-java-app-cassandra');
           return { x: Math.round(box.left + n.x), y: Math.round(box.top + n.y) };"#,
    )
    .await;
    let mouse = MouseActions::new("mouse".to_string())
        .then(PointerAction::MoveTo {
            duration: None,
            x: at["x"].as_f64().unwrap() - 40.0,
            y: at["y"].as_f64().unwrap(),
        })
        .then(PointerAction::MoveTo { duration: None, x: at["x"].as_f64().unwrap(), y: at["y"].as_f64().unwrap() });
    c.perform_actions(mouse).await.unwrap();
    let tip = wait_for(
        &c,
        "(() => { const t = document.querySelector('#map .map-tooltip'); return t && !t.hidden && t.textContent; })()",
        5,
    )
    .await;
    assert_eq!(tip, "svc example-java-app-cassandra");
    c.release_actions().await.unwrap();
    map.send_keys("n").await.unwrap();
    // 0 fits again; Escape clears the selection and the drawer.
    map.send_keys("0").await.unwrap();
    wait_for(&c, FITTED, 5).await;
    map.send_keys("\u{e00c}").await.unwrap();
    assert_eq!(
        js(&c, "return [window.flowgateMapControl.selected(), document.getElementById('map-details').textContent]")
            .await,
        serde_json::json!([null, ""])
    );
    c.close().await.unwrap();
}
