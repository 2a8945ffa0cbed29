/*
 * Flowgate topology map: the page's one JavaScript island, as ES modules (no bundler; loaded as
 * <script type="module" src="/static/map/main.js"> after the vendored cytoscape, layout-base,
 * cose-base and fcose, which are classic deferred scripts and globals: module scripts run after
 * the deferred ones before them, in document order, so they are there when this runs).
 *
 *   elements.js       graph JSON -> validated elements (the shared shape both renderers read)
 *   layouts.js        lanes (a workload's map), fcose seeded (a namespace map up to 300 nodes),
 *                     grouped (a namespace map above that)
 *   styles.js         colours, shapes, line styles; the cytoscape stylesheet
 *   details.js        the drawer (#map-details) and its actions (the tables' own forms)
 *   cytoscape-view.js the cytoscape renderer (up to 300 nodes; namespaces as compound nodes)
 *   canvas-model.js,  the canvas renderer (above 300 nodes), its model and hit-testing
 *   canvas-view.js
 *   main.js           this file: fetching, choosing layout and renderer, the keyboard, resizing,
 *                     the test and benchmark hooks
 *
 * It draws the graph the review partial carries (#map-graph, a <script type="application/json">
 * from the same review as the tables, drawn once), else fetches #map[data-graph-url]. It talks
 * to the rest of the page only through DOM events:
 *
 *   listens   flowgate:decisions-changed (anywhere)      -> redraw (the swapped partial's graph)
 *             htmx:afterSwap on or inside #review        -> redraw (the swapped partial's graph)
 *             #map's data-graph-url attribute changes    -> re-fetch (new time window)
 *   emits     flowgate:map-ready on document.body        after every completed (re)render or error
 *             flowgate:map-select on document.body       when a node or edge is selected
 *
 * Every string in the JSON came from the cluster and is untrusted: both renderers draw labels on a
 * canvas, and the drawer and the tooltip are built with createElement/textContent only.
 *
 * THE VIEW INTERFACE. A renderer is a function (container, hooks) -> view; main.js uses nothing
 * else of it. `hooks` is main's side: selected(ref, detailsShown) after the user (or select())
 * selected something, or null when a click on the background cleared it; hover(text, {x, y})
 * to show a node's full name at a point of the container, hover(null) to hide it. A `ref` is
 * { type: 'node' | 'edge', id } with the graph's ids.
 *
 *   kind                  'cytoscape' | 'canvas'
 *   show(els, same, opts) draws laid-out elements; `same`: the nodes are those drawn now, so
 *                         update statuses and edges in place, keeping positions and viewport.
 *                         opts: { large, mode: 'lanes' | 'fcose' | 'grouped' }. Fits the map if
 *                         it is visible. -> { relayout, builtAt, layoutMs, drawnEdges? }
 *   fit()                 everything in view (or, while the container has no size, on the next
 *                         fit after resize()); pendingFit() says a fit is owed
 *   resize()              the container changed size: measure it again
 *   visible()             the container has a size
 *   moved()               the user panned or zoomed since the last fit
 *   zoomBy(f), zoom(), panBy(dx, dy)   around the centre; screen pixels
 *   select(ref, { details, quiet }) highlight ref (null clears), fill the drawer if `details`,
 *                         emit flowgate:map-select unless `quiet`; false if ref is not drawn
 *   selected()            the current ref or null
 *   showDetails(ref)      fill the drawer for ref
 *   labelOf(ref)          its full name
 *   nodeOrder()           node ids in reading order (column by column), for n / p
 *   positions()           { id: { x, y } } in model units (tests: the same graph, the same map)
 *   nodesInView(kind), connectionsInView()   what is on screen, in the container's pixels
 *   nextFrame(cb)         cb once the next frame has been drawn
 *   cy()                  cytoscape's instance, or null
 *   destroy()
 *
 * The keyboard belongs to #map (tabindex=0, role=application), handled here for both renderers:
 * + / - zoom, arrows pan, 0 or f fit, n / p select the next / previous node, Enter shows the
 * selection in the drawer, Escape clears it. Tab leaves the map (to the drawer's buttons).
 *
 * After each render window.flowgateMap = { ready, nodes, edges, renderer, layout, layoutMs,
 * renderMs, ... }, and window.flowgateMapControl offers zoomBy, nextFrame, nodesInView,
 * connectionsInView, positions, select, ... for either renderer, so that browser tests and
 * examples/map_bench.rs can wait for and drive the map.
 */

import { LARGE_LABEL_MAX_CHARS, MapError, shortLabel, str, toElements } from './elements.js';
import { GROUPED_ABOVE_NODES, groupedLayout, isWorkloadMap, lanesLayout } from './layouts.js';
import { clearDetails, el, onPick } from './details.js';
import { cytoscapeView } from './cytoscape-view.js';
import { canvasView } from './canvas-view.js';

// If no frame is drawn within this time (hidden tab), report ready anyway.
const FIRST_FRAME_TIMEOUT_MS = 1000;
const PAN_STEP = 60;

// Whether the vendored globals were there when this module ran (see the top): the browser test
// checks it, as the order of classic and module scripts is what makes the map work at all.
const VENDOR_FIRST = typeof window.cytoscape === 'function' && typeof window.cytoscapeFcose === 'function';

const state = {
  container: null,
  view: null, // the renderer drawing the map (see THE VIEW INTERFACE)
  shapeKey: null, // mode + node ids + parents of what is drawn; equal -> keep positions and viewport
  controller: null,
  seq: 0,
  scheduled: false,
  selected: null, // ref of the selection, kept across redraws
  shown: false, // the drawer shows the selection
  status: null, // live region for keyboard selection
  tooltip: null,
  toolbar: null,
  size: { w: 0, h: 0 },
};

function sameRef(a, b) {
  return !!a && !!b && a.type === b.type && a.id === b.id;
}

const hooks = {
  selected(ref, detailsShown) {
    state.selected = ref;
    if (detailsShown) state.shown = !!ref;
    if (!ref && detailsShown) clearDetails();
  },
  hover(text, at) {
    const tip = state.tooltip;
    if (!tip) return;
    if (text === null || text === undefined || text === '') {
      tip.hidden = true;
      return;
    }
    tip.textContent = text;
    tip.hidden = false;
    at = at || { x: 0, y: 0 };
    // Beside the pointer, kept inside the map.
    const w = state.container.clientWidth;
    const x = Math.max(4, Math.min(at.x + 12, w - tip.offsetWidth - 4));
    const y = Math.max(4, at.y - tip.offsetHeight - 10);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  },
};

function destroyView() {
  if (state.view) state.view.destroy();
  state.view = null;
  state.shapeKey = null;
}

function firstFrame(view) {
  return new Promise((resolve) => {
    let done = false;
    function finish() {
      if (!done) {
        done = true;
        resolve();
      }
    }
    view.nextFrame(finish);
    setTimeout(finish, FIRST_FRAME_TIMEOUT_MS);
  });
}

function describe(nodes, edges) {
  const c = state.container;
  c.setAttribute(
    'aria-label',
    'Map of ' + nodes + ' node' + (nodes === 1 ? '' : 's') + ' and ' + edges + ' connection' + (edges === 1 ? '' : 's') +
      (document.getElementById('review') ? '; the tables list the same connections' : '')
  );
}

function render(graph) {
  const t0 = performance.now();
  const els = toElements(graph);
  const container = state.container;
  const info = { nodes: els.nodes.length, edges: els.edges.length, dropped: els.dropped };

  if (els.nodes.length === 0) {
    showMessage('No connections were seen in this time window.');
    describe(0, 0);
    info.layout = 'none';
    info.layoutMs = 0;
    info.relayout = false;
    return Promise.resolve(finishInfo(info, t0));
  }

  const forced = container.getAttribute('data-map-layout') === 'fcose';
  const large = els.nodes.length > GROUPED_ABOVE_NODES;
  const lanes = !forced && isWorkloadMap(els, els.focusId);
  const mode = lanes ? 'lanes' : !forced && large ? 'grouped' : 'fcose';
  const kind = mode === 'grouped' || (mode === 'lanes' && large) ? 'canvas' : 'cytoscape';
  const shapeKey = mode + '\u0002' + els.shapeKey;
  let layoutMs = 0;
  if (large) {
    // The large styles have no wrapping: cut labels to a grid cell.
    els.nodes.forEach((n) => {
      n.data.label = shortLabel(n.data.label, LARGE_LABEL_MAX_CHARS);
    });
  }
  const tl = performance.now();
  if (mode === 'grouped') {
    const box = container.getBoundingClientRect();
    groupedLayout(els, box.width > 0 && box.height > 0 ? box.width / box.height : 2);
  } else if (mode === 'lanes') {
    lanesLayout(els, els.focusId, kind === 'canvas');
  }
  layoutMs = performance.now() - tl;

  if (!state.view || state.view.kind !== kind) {
    destroyView();
    state.view = kind === 'canvas' ? canvasView(container, hooks) : cytoscapeView(container, hooks);
    container.appendChild(state.toolbar);
    container.appendChild(state.tooltip);
  }
  const view = state.view;
  const shown = view.show(els, state.shapeKey === shapeKey, { large: large, mode: mode });
  state.shapeKey = shapeKey;
  describe(els.nodes.length, els.edges.length);

  // The same element selected again (a decision redraws the map): its drawer rebuilt from the
  // new rows, so its buttons say what a press does now.
  if (state.selected) {
    const again = view.select(state.selected, { details: state.shown, quiet: true });
    if (!again) {
      if (state.shown) clearDetails();
      state.selected = null;
      state.shown = false;
    }
  }

  info.buildMs = shown.builtAt - t0 - layoutMs;
  info.layoutMs = layoutMs + shown.layoutMs;
  info.relayout = shown.relayout;
  if (shown.drawnEdges !== undefined) info.drawnEdges = shown.drawnEdges;
  info.renderer = kind;
  info.layout = mode === 'fcose' && large ? 'fcose-draft' : mode;
  const tp = performance.now();
  return firstFrame(view).then(() => {
    info.paintMs = performance.now() - tp;
    return finishInfo(info, t0);
  });
}

function finishInfo(info, t0) {
  info.renderMs = performance.now() - t0;
  return info;
}

function showMessage(text) {
  destroyView();
  state.container.textContent = text;
  state.container.classList.add('map-message');
}

function publish(info) {
  info.ready = true;
  info.readyAt = performance.now();
  info.seq = state.seq;
  window.flowgateMap = info;
  document.body.dispatchEvent(new CustomEvent('flowgate:map-ready', { bubbles: true, detail: info }));
}

function fail(message) {
  showMessage(message);
  publish({ error: message });
}

// ---------------------------------------------------------------------------------------------
// Fetching. A newer request aborts an older one, so the last time window or decision wins.

function refresh() {
  const url = state.container.getAttribute('data-graph-url');
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const seq = ++state.seq;
  const previous = window.flowgateMap || {};
  window.flowgateMap = { ready: false, seq: seq, nodes: previous.nodes, edges: previous.edges };
  state.container.setAttribute('aria-busy', 'true');

  const t0 = performance.now();
  let fetchMs = 0;
  // The page (and each review partial swapped in after a decision) carries its graph, from the
  // same review as its tables: drawn once as it is, without asking the server again.
  const embedded = document.getElementById('map-graph');
  let p;
  if (embedded && !embedded.hasAttribute('data-drawn')) {
    embedded.setAttribute('data-drawn', '');
    p = Promise.resolve({ ok: true, json: () => Promise.resolve(JSON.parse(embedded.textContent)) });
  } else if (url) {
    p = fetch(url, {
      headers: { Accept: 'application/json' },
      credentials: 'same-origin',
      cache: 'no-store',
      signal: controller.signal,
    });
  } else {
    p = Promise.reject(new MapError('This page does not say where to load the map from (data-graph-url).'));
  }

  return p
    .then((resp) => {
      if (!resp.ok) {
        throw new MapError(
          'The map could not be loaded: the server answered ' + resp.status + (resp.statusText ? ' ' + resp.statusText : '') + '.'
        );
      }
      return resp.json().catch(() => {
        throw new MapError('The map could not be loaded: the server sent something that is not JSON.');
      });
    })
    .then((graph) => {
      if (seq !== state.seq) return null;
      fetchMs = performance.now() - t0;
      return render(graph);
    })
    .then(
      (info) => {
        if (!info || seq !== state.seq) return;
        info.fetchMs = fetchMs;
        state.container.removeAttribute('aria-busy');
        publish(info);
      },
      (err) => {
        if (seq !== state.seq) return; // superseded by a newer request
        state.container.removeAttribute('aria-busy');
        const message =
          err instanceof MapError
            ? err.message
            : err && err.name === 'TypeError'
              ? 'The map could not be loaded: the server did not answer.'
              : 'The map could not be drawn: ' + str(err && err.message ? err.message : err);
        fail(message);
      }
    );
}

// Several triggers in one task (htmx swap + decisions event) become one request.
function scheduleRefresh() {
  if (state.scheduled) return;
  state.scheduled = true;
  Promise.resolve().then(() => {
    state.scheduled = false;
    refresh();
  });
}

function fit() {
  if (state.view) state.view.fit();
}

// ---------------------------------------------------------------------------------------------
// Showing and resizing. A map drawn while hidden (the narrow layout's Map tab, before it is
// chosen) has no size to fit to: it used to show a corner of itself until "Fit to view". It
// fits whenever it goes from no size to a size, and on any other change of size unless the
// user has panned or zoomed since the last fit (then only the drawing surface follows).

function watchSize(container) {
  if (typeof ResizeObserver !== 'function') return;
  new ResizeObserver(() => {
    const w = container.clientWidth;
    const h = container.clientHeight;
    if (w === state.size.w && h === state.size.h) return;
    const wasHidden = !(state.size.w > 0 && state.size.h > 0);
    state.size = { w: w, h: h };
    if (!state.view || !(w > 0 && h > 0)) return;
    state.view.resize();
    if (wasHidden || state.view.pendingFit() || !state.view.moved()) state.view.fit();
  }).observe(container);
}

// ---------------------------------------------------------------------------------------------
// Keyboard and screen readers.

function say(text) {
  if (state.status) state.status.textContent = text;
}

function step(dir) {
  const view = state.view;
  if (!view) return;
  const order = view.nodeOrder();
  if (!order.length) return;
  const cur = state.selected && state.selected.type === 'node' ? order.indexOf(state.selected.id) : -1;
  const next = cur < 0 ? (dir > 0 ? 0 : order.length - 1) : (cur + dir + order.length) % order.length;
  const ref = { type: 'node', id: order[next] };
  view.select(ref, { details: false });
  state.shown = false;
  say(view.labelOf(ref) + ', ' + (next + 1) + ' of ' + order.length + '. Enter shows its details.');
}

function onKey(e) {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  const view = state.view;
  if (!view) return;
  const k = e.key;
  if (k === '+' || k === '=') view.zoomBy(1.25);
  else if (k === '-' || k === '_') view.zoomBy(0.8);
  else if (k === 'ArrowLeft') view.panBy(PAN_STEP, 0);
  else if (k === 'ArrowRight') view.panBy(-PAN_STEP, 0);
  else if (k === 'ArrowUp') view.panBy(0, PAN_STEP);
  else if (k === 'ArrowDown') view.panBy(0, -PAN_STEP);
  else if (k === '0' || k === 'f' || k === 'F') view.fit();
  else if (k === 'n' || k === 'N') step(1);
  else if (k === 'p' || k === 'P') step(-1);
  else if (k === 'Enter') {
    if (!state.selected) return;
    view.showDetails(state.selected);
    state.shown = true;
    const sel = state.selected;
    document.body.dispatchEvent(new CustomEvent('flowgate:map-select', { bubbles: true, detail: { type: sel.type, id: sel.id } }));
  } else if (k === 'Escape') {
    view.select(null);
    state.selected = null;
    state.shown = false;
    clearDetails();
    say('Selection cleared.');
  } else return;
  e.preventDefault();
}

// The toolbar: "Fit to view", drawn over the map's top right corner (a row of its own above the
// map cost the tables their place on a wide screen). A child of #map, put back after each new
// view; the keys, which #map names as its description, are the legend's last entry.
function addToolbar(container) {
  const bar = el('div', 'map-toolbar');
  const existing = document.querySelectorAll('[data-map-action="fit"]');
  if (existing.length) {
    existing.forEach((b) => b.addEventListener('click', fit));
  } else {
    const button = el('button', 'map-fit', 'Fit to view');
    button.type = 'button';
    button.addEventListener('click', fit);
    bar.appendChild(button);
  }
  // cytoscape listens on its container: a press here is not a tap on the map's background.
  ['mousedown', 'mouseup', 'pointerdown', 'pointerup', 'touchstart', 'touchend', 'click', 'wheel', 'keydown'].forEach((t) =>
    bar.addEventListener(t, (e) => e.stopPropagation())
  );
  state.toolbar = bar;

  const help = el(
    'li',
    'map-help',
    'Keys on the map: + and \u2212 zoom, arrows pan, 0 or f fits, n and p select the next or previous node, Enter shows it, Escape clears.'
  );
  help.id = 'map-help';
  const legend = document.getElementById('map-legend');
  const area = container.closest('.map-area') || container;
  if (legend) legend.appendChild(help);
  else area.parentNode.insertBefore(el('ul', 'map-legend-keys'), area.nextSibling).appendChild(help);

  // For screen readers: the tables say the same as the picture, and are one link away.
  const note = el('p', 'map-sr-only');
  note.id = 'map-note';
  const tables = ['tab-ingress', 'tab-egress'].filter((id) => document.getElementById(id));
  if (tables.length) {
    note.appendChild(document.createTextNode('The map draws the connections listed in the tables: '));
    tables.forEach((id, i) => {
      const a = el('a', null, id === 'tab-ingress' ? 'Ingress' : 'Egress');
      a.href = '#' + id;
      a.addEventListener('click', (e) => {
        // The tab's own link shows its panel (app.js); then the table takes the focus.
        const tab = document.getElementById(id + '-link');
        if (!tab) return;
        e.preventDefault();
        tab.click();
        const t = document.getElementById(id + '-table') || document.getElementById(id);
        if (t) {
          if (!t.hasAttribute('tabindex')) t.setAttribute('tabindex', '-1');
          t.focus();
        }
      });
      if (i > 0) note.appendChild(document.createTextNode(', '));
      note.appendChild(a);
    });
    note.appendChild(document.createTextNode('.'));
  } else {
    note.textContent = 'Each workload\u2019s page lists its connections in tables.';
  }
  area.parentNode.insertBefore(note, area);

  const status = el('p', 'map-sr-only');
  status.id = 'map-status';
  status.setAttribute('role', 'status');
  area.parentNode.insertBefore(status, area.nextSibling);
  state.status = status;

  container.tabIndex = 0;
  container.setAttribute('role', 'application');
  container.setAttribute('aria-roledescription', 'map');
  container.setAttribute('aria-describedby', 'map-help map-note');
  container.addEventListener('keydown', onKey);
}

function init() {
  const container = document.getElementById('map');
  if (!container) return;
  state.container = container;
  const tip = el('div', 'map-tooltip');
  tip.hidden = true;
  tip.setAttribute('aria-hidden', 'true');
  state.tooltip = tip;

  addToolbar(container);
  watchSize(container);
  // A node's drawer lists its connections as buttons: they show that connection.
  onPick((ref) => {
    if (state.view && state.view.select(ref, { details: true })) state.shown = true;
  });

  // Capture phase on document: catches the event wherever it is dispatched (body or deeper),
  // bubbling or not, and survives the body's children being swapped.
  document.addEventListener('flowgate:decisions-changed', scheduleRefresh, true);
  document.addEventListener(
    'htmx:afterSwap',
    (evt) => {
      const target = (evt.detail && evt.detail.target) || evt.target;
      if (target && target.nodeType === 1 && (target.id === 'review' || target.closest('#review'))) {
        scheduleRefresh();
      }
    },
    true
  );
  new MutationObserver(scheduleRefresh).observe(container, {
    attributes: true,
    attributeFilter: ['data-graph-url', 'data-map-layout'],
  });

  // For tests and the benchmark; not an API the page relies on.
  function withView(name, none) {
    return (a, b) => (state.view ? state.view[name](a, b) : none(a));
  }
  const nothing = () => [];
  window.flowgateMapControl = {
    refresh: refresh,
    fit: fit,
    // cytoscape, or null when the canvas draws the map
    cy: () => (state.view ? state.view.cy() : null),
    renderer: () => (state.view ? state.view.kind : null),
    zoomBy: withView('zoomBy', nothing),
    zoom: withView('zoom', () => null),
    nextFrame: withView('nextFrame', (cb) => cb()),
    nodesInView: withView('nodesInView', nothing),
    connectionsInView: withView('connectionsInView', nothing),
    positions: withView('positions', () => ({})),
    // select({ type, id }) as a click would: highlighted, and in the drawer
    select: (ref) => {
      const ok = !!state.view && state.view.select(ref, { details: true });
      if (ok) state.shown = true;
      return ok;
    },
    selected: () => state.selected,
    vendorFirst: VENDOR_FIRST,
  };

  refresh();
}

// Drawn once the page has its layout: app.js (a deferred script after this one) picks the tab
// and the wide or narrow layout in its DOMContentLoaded handler, which runs after ours, so the
// first render waits a task more. The map may still be hidden then (the narrow layout's Egress
// tab): watchSize fits it when it is shown. (Deferred scripts run while readyState is already
// 'interactive', before DOMContentLoaded; 'load' covers a module loaded later than that.)
let started = false;
function start() {
  if (started) return;
  started = true;
  init();
}
if (document.readyState === 'complete') {
  start();
} else {
  document.addEventListener('DOMContentLoaded', () => setTimeout(start, 0));
  window.addEventListener('load', start);
}
