//! The review page on every screen and input, in headless Chromium against the real server and a
//! fresh database holding the demo cluster: the wide layout (map and tables together), narrow
//! screens (tables as cards, no sideways scroll), the dark scheme, keyboard-only review, activity
//! strips and the window's inline error.
//!
//! With `FLOWGATE_SCREENSHOTS=DIR` (scripts/screenshots sets it to docs/screenshots) each checked
//! screen is also saved there as a PNG.

#[path = "support/chrome.rs"]
mod chrome;
#[path = "support/page.rs"]
mod page;

use fantoccini::{Client, Locator};
use serde_json::Value;
use sqlx::PgPool;

use page::{js, serve_demo, wait_for};

const TOKEN: &str = "browser-ui-test-token-0123456789";
const JAVAAPP: &str = "example-java-app-javaapp";
const CASSANDRA: &str = "deployment/example-java-app/example-java-app-cassandra";
const PAGE: &str = "/clusters/demo/namespaces/example-java-app/workloads/deployment/example-java-app-javaapp";

/// How far the document reaches past the window sideways (0: no horizontal scroll).
async fn overflow_x(c: &Client) -> i64 {
    js(c, "return document.documentElement.scrollWidth - document.documentElement.clientWidth").await.as_i64().unwrap()
}

async fn save(c: &Client, name: &str) {
    let Some(dir) = std::env::var_os("FLOWGATE_SCREENSHOTS") else { return };
    let png = c.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
}

/// At 1500, 800 and 400 px wide, and dark at 1500: the review page, its Egress tab, the cluster
/// and namespace pages never scroll sideways; wide, the map and the tables share the first screen;
/// narrow, each table row is a card.
#[sqlx::test(migrations = false)]
async fn every_width_and_the_dark_scheme_fit_the_screen(pool: PgPool) {
    let (base, _) = serve_demo(pool, TOKEN).await;
    let driver = chrome::Chromedriver::start().expect("chromedriver");
    for (w, h, dark) in [(1500, 1000, false), (800, 1000, false), (400, 860, false), (1500, 1000, true)] {
        // (Exact viewports: the sizes are the page's, not a window's.)
        let profile = tempfile::tempdir().unwrap();
        let extra: &[&str] = if dark { &["--blink-settings=preferredColorScheme=0"] } else { &[] };
        let c = driver.session_with(profile.path(), (w, h), extra, true).await.expect("session");
        let name = if dark { "dark".to_string() } else { w.to_string() };
        c.goto(&format!("{base}/?token={TOKEN}")).await.unwrap();
        assert_eq!(overflow_x(&c).await, 0, "{name}: the cluster list scrolls sideways");
        save(&c, &format!("landing-{name}.png")).await;
        c.goto(&format!("{base}/clusters/demo?ns=example-java-app")).await.unwrap();
        wait_for(&c, "window.flowgateMap && window.flowgateMap.ready", 20).await;
        assert_eq!(overflow_x(&c).await, 0, "{name}: the namespace page scrolls sideways");
        save(&c, &format!("namespace-{name}.png")).await;
        c.goto(&format!("{base}/clusters/demo/namespaces/example-java-app/services/example-java-app-javaapp"))
            .await
            .unwrap();
        assert!(
            js(&c, "return document.getElementById('service-ports') !== null").await == Value::Bool(true),
            "{name}"
        );
        assert_eq!(overflow_x(&c).await, 0, "{name}: the Service page scrolls sideways");
        save(&c, &format!("service-{name}.png")).await;
        c.goto(&format!("{base}{PAGE}")).await.unwrap();
        wait_for(&c, "window.flowgateMap && window.flowgateMap.ready", 20).await;
        save(&c, &format!("review-{name}.png")).await;
        let size = js(&c, "return [innerWidth, innerHeight]").await;
        assert_eq!(size, serde_json::json!([w, h]), "{name}: the viewport");
        let dark_now = js(&c, "return matchMedia('(prefers-color-scheme: dark)').matches").await;
        assert_eq!(dark_now, Value::Bool(dark), "{name}");
        // The page's own colours follow: a dark background, light text.
        let bg = js(&c, "return getComputedStyle(document.body).backgroundColor").await;
        let dark_bg = bg.as_str().unwrap().starts_with("rgb(18, 22, 29");
        assert_eq!(dark_bg, dark, "{name}: body background {bg}");
        assert_eq!(overflow_x(&c).await, 0, "{name}: the review page scrolls sideways");
        if w >= 1200 {
            // Map and tables on one screen: the whole map, and the Ingress table's first row.
            let seen = js(
                &c,
                r#"const m = document.getElementById('map').getBoundingClientRect();
                   const r = document.querySelector('#tab-ingress-table tbody tr').getBoundingClientRect();
                   return [m.top >= 0 && m.bottom <= innerHeight && m.height > 200, r.top > 0 && r.bottom <= innerHeight,
                           document.getElementById('tab-map').hidden, document.getElementById('tab-ingress').hidden];"#,
            )
            .await;
            assert_eq!(seen, serde_json::json!([true, true, false, false]), "{name}: map and table on one screen");
            // And its labels readable there: every node's at least 11 px on the screen.
            let smallest = js(
                &c,
                "return Math.min(...window.flowgateMapControl.cy().nodes().filter(n => !n.isParent()).map(n => parseFloat(n.renderedStyle('font-size'))))",
            )
            .await;
            assert!(smallest.as_f64().unwrap() >= 11.0, "{name}: the smallest label is {smallest} px");
        } else {
            // One tab at a time, and a narrow screen shows rows as cards.
            let map_hidden = js(&c, "return document.getElementById('tab-map').hidden").await;
            assert_eq!(map_hidden, Value::Bool(false), "{name}: the map is the first tab");
            c.find(Locator::LinkText("Egress")).await.unwrap().click().await.unwrap();
            let display =
                js(&c, "return getComputedStyle(document.querySelector('#tab-egress-table tbody tr')).display").await;
            assert_eq!(display.as_str() == Some("block"), w <= 900, "{name}: row display {display}");
            assert_eq!(overflow_x(&c).await, 0, "{name}: the Egress tab scrolls sideways");
            save(&c, &format!("review-{name}-egress.png")).await;
            c.find(Locator::LinkText("Map")).await.unwrap().click().await.unwrap();
        }
        c.find(Locator::LinkText("Generated Policy")).await.unwrap().click().await.unwrap();
        assert_eq!(overflow_x(&c).await, 0, "{name}: the policy tab scrolls sideways");
        c.close().await.unwrap();
    }
}

/// A logged-in session of an exact `size` on javaapp's Egress tab, its map drawn.
async fn egress_tab(driver: &chrome::Chromedriver, base: &str, profile: &std::path::Path, size: (u32, u32)) -> Client {
    let c = driver.session_with(profile, size, &[], true).await.expect("session");
    c.goto(&format!("{base}/?token={TOKEN}")).await.unwrap();
    c.goto(&format!("{base}{PAGE}#tab-egress")).await.unwrap();
    wait_for(&c, "window.flowgateMap && window.flowgateMap.ready", 20).await;
    c
}

/// A review by keyboard alone: Tab from the Egress tab to cassandra's checkbox, Space unticks it,
/// the YAML drops it, and the focus stays on that checkbox after the swap.
#[sqlx::test(migrations = false)]
async fn a_workload_is_reviewed_by_keyboard_alone(pool: PgPool) {
    let (base, _) = serve_demo(pool, TOKEN).await;
    let driver = chrome::Chromedriver::start().expect("chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let c = egress_tab(&driver, &base, profile.path(), (1400, 1000)).await;
    assert!(
        js(&c, "return document.getElementById('policy-yaml').textContent")
            .await
            .as_str()
            .unwrap()
            .contains("example-java-app-cassandra")
    );
    js(&c, "document.getElementById('tab-egress-link').focus()").await;
    let want = format!("allow {CASSANDRA} ");
    let mut reached = false;
    for _ in 0..80 {
        c.active_element().await.unwrap().send_keys("\u{e004}").await.unwrap();
        let label =
            js(&c, "return document.activeElement.getAttribute('aria-label') || document.activeElement.tagName").await;
        if label.as_str().is_some_and(|l| l.starts_with(&want)) {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached cassandra's checkbox");
    c.active_element().await.unwrap().send_keys(" ").await.unwrap();
    wait_for(&c, "!document.getElementById('policy-yaml').textContent.includes('example-java-app-cassandra')", 15)
        .await;
    let focus =
        js(&c, "return [document.activeElement.getAttribute('aria-label'), document.activeElement.checked]").await;
    assert!(focus[0].as_str().unwrap().starts_with(&want) && focus[1] == Value::Bool(false), "{focus}");
    c.close().await.unwrap();
}

/// Each row's activity strip: the stale cassandra connection (last used 20 hours ago) has bars only
/// in the window's first hours, the external API in its last one; and a window the page cannot
/// read is said beside its field, not as JSON.
#[sqlx::test(migrations = false)]
async fn strips_show_a_quiet_dependency_and_a_bad_window_is_said_inline(pool: PgPool) {
    let (base, _) = serve_demo(pool, TOKEN).await;
    let driver = chrome::Chromedriver::start().expect("chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let c = egress_tab(&driver, &base, profile.path(), (1400, 1000)).await;
    let strip = |peer: &str| {
        format!(
            r#"(() => {{ const tr = [...document.querySelectorAll('#tab-egress-table tbody tr')].find(r => r.dataset.peer.startsWith({peer:?}));
                 const svg = tr && tr.querySelector('svg.strip'); if (!svg) return null;
                 const w = svg.viewBox.baseVal.width;
                 return [w, [...svg.querySelectorAll('rect')].map(r => Number(r.getAttribute('x'))), svg.querySelector('title').textContent]; }})()"#
        )
    };
    let cassandra = wait_for(&c, &strip(CASSANDRA), 5).await;
    let width = cassandra[0].as_f64().unwrap();
    let bars: Vec<f64> = cassandra[1].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert!(width >= 24.0 && !bars.is_empty(), "{cassandra}");
    // Nothing in the later part of the window: its recent strip is empty.
    assert!(bars.iter().all(|x| *x < width / 2.0), "cassandra's bars {bars:?} of {width}");
    assert!(cassandra[2].as_str().unwrap().contains("none in the last "), "{cassandra}");
    let api = wait_for(&c, &strip("192.229.173.207"), 5).await;
    let last = api[0].as_f64().unwrap() - 1.0;
    assert!(api[1].as_array().unwrap().iter().any(|x| x.as_f64() == Some(last)), "{api}");
    assert!(api[2].as_str().unwrap().ends_with("active in the last bin"), "{api}");

    // The drawer of cassandra's connection on the map carries the same strip as its row.
    let drawn = js(
        &c,
        r#"const m = window.flowgateMapControl;
           const e = m.cy().edges().filter(e => e.target().data('label') === 'svc example-java-app-cassandra')[0];
           if (!m.select({ type: 'edge', id: e.id() })) return null;
           const svg = document.querySelector('#map-details figure.map-strip svg.strip');
           return svg && [...svg.querySelectorAll('rect')].map(r => Number(r.getAttribute('x')));"#,
    )
    .await;
    let drawn: Vec<f64> =
        drawn.as_array().expect("a strip in the drawer").iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(drawn, bars, "the drawer's strip is the row's");

    c.goto(&format!("{base}{PAGE}?since=yesterday")).await.unwrap();
    let error = wait_for(
        &c,
        "document.getElementById('window-error') && document.getElementById('window-error').textContent",
        5,
    )
    .await;
    assert!(error.as_str().unwrap().starts_with("since: "), "{error}");
    let field = js(&c, "const f = document.getElementById('since'); return [f.value, f.getAttribute('aria-invalid'), f.getAttribute('aria-describedby')]").await;
    assert_eq!(field, serde_json::json!(["yesterday", "true", "window-error"]));
    let body = c.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    assert!(!body.trim_start().starts_with('{') && body.contains(JAVAAPP), "{body}");
    // The rest of the page still works on the default window.
    wait_for(&c, "window.flowgateMap && window.flowgateMap.ready && window.flowgateMap.nodes > 3", 20).await;
    c.close().await.unwrap();
}

/// On a screen 1900 px wide the Generated Policy is a panel beside the tables: unticking
/// cassandra in the Egress table changes the YAML in view, with no tab to switch to.
#[sqlx::test(migrations = false)]
async fn a_wide_screen_shows_the_yaml_beside_the_tables(pool: PgPool) {
    let (base, _) = serve_demo(pool, TOKEN).await;
    let driver = chrome::Chromedriver::start().expect("chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let c = egress_tab(&driver, &base, profile.path(), (1900, 1000)).await;
    save(&c, "review-1900.png").await;
    let layout = js(
        &c,
        r#"const p = document.getElementById('tab-policy').getBoundingClientRect();
           const t = document.getElementById('tab-egress-table').getBoundingClientRect();
           return [document.body.classList.contains('layout-xwide'), document.getElementById('tab-policy-link').hidden,
                   document.getElementById('tab-policy').hidden, p.left >= t.right, p.top < innerHeight, t.top < innerHeight];"#,
    )
    .await;
    assert_eq!(layout, serde_json::json!([true, true, false, true, true, true]), "policy beside the tables");
    let checkbox = format!(r#"#tab-egress input[type=checkbox][aria-label^="allow {CASSANDRA} "]"#);
    c.find(Locator::Css(&checkbox)).await.unwrap().click().await.unwrap();
    wait_for(&c, "!document.getElementById('policy-yaml').textContent.includes('example-java-app-cassandra')", 15)
        .await;
    // Still side by side after the swap, the YAML in view.
    let after = js(
        &c,
        r#"const y = document.getElementById('policy-yaml').getBoundingClientRect();
           return [document.getElementById('tab-policy').hidden, y.top < innerHeight && y.bottom > 0, !document.getElementById('tab-egress').hidden];"#,
    )
    .await;
    assert_eq!(after, serde_json::json!([false, true, true]));
    assert_eq!(overflow_x(&c).await, 0);
    c.close().await.unwrap();
}
