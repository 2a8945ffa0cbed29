/*
 * Flowgate topology map: the page's one JavaScript island.
 *
 * It reads the graph address from #map[data-graph-url], fetches the JSON the server builds for it,
 * and draws it with cytoscape + fcose (vendored, see static/vendor/README.md). It talks to the rest
 * of the page only through DOM events:
 *
 *   listens   flowgate:decisions-changed (anywhere)      -> re-fetch
 *             htmx:afterSwap on or inside #review        -> re-fetch
 *             #map's data-graph-url attribute changes    -> re-fetch (new time window)
 *   emits     flowgate:map-ready on document.body        after every completed (re)render or error
 *             flowgate:map-select on document.body       when a node or edge is clicked
 *
 * Every string in the JSON came from the cluster and is untrusted: cytoscape draws labels on a
 * canvas, and the details panel is built with createElement/textContent only.
 *
 * After each render window.flowgateMap = { ready, nodes, edges, layoutMs, renderMs, ... } so that
 * browser tests and examples/map_bench.rs can wait for it.
 */
(function () {
  'use strict';

  // Above this many nodes fcose runs its spectral pass only ('draft'): the CoSE refinement that
  // 'default' adds is what makes small graphs tidy, but it grows much faster than linearly.
  var DRAFT_ABOVE_NODES = 300;
  // Up to this many edges every edge label is drawn; above it labels appear once zoomed in, so a
  // 2,000-node map does not spend its first frames measuring and drawing text nobody can read.
  var ALL_LABELS_UP_TO_EDGES = 200;
  // Canvas labels are cut to this length (the details panel shows the whole string).
  var LABEL_MAX_CHARS = 80;
  // If no frame is drawn within this time (hidden tab), report ready anyway.
  var FIRST_FRAME_TIMEOUT_MS = 1000;

  var KINDS = ['workload', 'service', 'external', 'unresolved', 'node', 'namespace'];
  var STATUSES = ['allowed', 'excluded', 'unresolved', 'no-rule'];
  var KIND_NAMES = {
    workload: 'Workload',
    service: 'Service',
    external: 'External address',
    unresolved: 'Unresolved address',
    node: 'Node (host)',
    namespace: 'Namespace',
  };
  var STATUS_NAMES = {
    allowed: 'allowed by the policy',
    excluded: 'excluded from the policy',
    unresolved: 'unresolved peer (excluded)',
    'no-rule': 'no rule needed',
  };
  // Non-colour cue in the edge label itself; the line style is the other one.
  var STATUS_PREFIX = { unresolved: '\u26A0 ' };

  var FONT = 'system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif';

  var state = {
    container: null,
    cy: null,
    shapeKey: null, // node ids + parents of what is drawn; equal -> keep positions and viewport
    controller: null,
    seq: 0,
    scheduled: false,
    large: null,
  };

  function MapError(message) {
    this.message = message;
  }

  // ---------------------------------------------------------------------------------------------
  // JSON -> cytoscape elements. Invalid entries are skipped (and counted), never fatal: one odd
  // record from the server should not blank the whole map.

  function str(v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'string') return v;
    if (Array.isArray(v)) return v.map(str).join(', ');
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  function shortLabel(s) {
    return s.length > LABEL_MAX_CHARS ? s.slice(0, LABEL_MAX_CHARS - 1) + '\u2026' : s;
  }

  function detailOf(v) {
    return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
  }

  function toElements(graph) {
    var rawNodes = graph && Array.isArray(graph.nodes) ? graph.nodes : [];
    var rawEdges = graph && Array.isArray(graph.edges) ? graph.edges : [];
    var focus = graph && typeof graph.focus === 'string' ? graph.focus : null;
    var dropped = 0;

    var byId = new Map();
    rawNodes.forEach(function (n) {
      if (!n || typeof n.id !== 'string' || n.id === '' || byId.has(n.id)) {
        dropped++;
        return;
      }
      byId.set(n.id, n);
    });

    // A parent must exist and the chain must not loop back (cytoscape would hang on a cycle).
    function parentOf(id) {
      var p = byId.get(id).parent;
      return typeof p === 'string' && p !== id && byId.has(p) ? p : null;
    }
    function safeParent(id) {
      var p = parentOf(id);
      var seen = new Set([id]);
      for (var cur = p; cur !== null; cur = parentOf(cur)) {
        if (seen.has(cur)) return null;
        seen.add(cur);
      }
      return p;
    }

    var nodes = [];
    var shape = [];
    byId.forEach(function (n, id) {
      var kind = KINDS.indexOf(n.kind) >= 0 ? n.kind : 'other';
      var full = str(n.label) || id;
      var isFocus = n.focus === true || (focus !== null && id === 'w:' + focus);
      var parent = safeParent(id);
      var data = {
        id: id,
        kind: kind,
        rawKind: str(n.kind),
        label: shortLabel((kind === 'unresolved' ? '\u26A0 ' : '') + full),
        fullLabel: full,
        detail: detailOf(n.detail),
      };
      if (parent !== null) data.parent = parent;
      nodes.push({ group: 'nodes', data: data, classes: 'kind-' + kind + (isFocus ? ' focus' : '') });
      shape.push(id + '\u0000' + (parent || ''));
    });

    var edges = [];
    var edgeIds = new Set();
    rawEdges.forEach(function (e, i) {
      if (!e || !byId.has(e.source) || !byId.has(e.target)) {
        dropped++;
        return;
      }
      var id = typeof e.id === 'string' && e.id !== '' ? e.id : 'edge-' + i;
      if (edgeIds.has(id) || byId.has(id)) {
        dropped++;
        return;
      }
      edgeIds.add(id);
      var status = STATUSES.indexOf(e.status) >= 0 ? e.status : 'other';
      var full = str(e.label);
      edges.push({
        group: 'edges',
        data: {
          id: id,
          source: e.source,
          target: e.target,
          status: status,
          rawStatus: str(e.status),
          label: shortLabel((STATUS_PREFIX[status] || '') + full),
          fullLabel: full,
          detail: detailOf(e.detail),
        },
        classes: 'status-' + status,
      });
    });

    shape.sort();
    return { nodes: nodes, edges: edges, dropped: dropped, shapeKey: shape.join('\u0001') };
  }

  // ---------------------------------------------------------------------------------------------
  // Style. Colour is never the only cue: node kinds differ by shape, edge statuses by line style
  // (solid / dashed / round dots / thin dots) and the unresolved ones also by a label prefix.

  function stylesheet(large, allEdgeLabels) {
    return [
      {
        selector: 'node',
        style: {
          label: 'data(label)',
          'font-family': FONT,
          'font-size': 11,
          color: '#1f2328',
          'text-valign': 'bottom',
          'text-halign': 'center',
          'text-margin-y': 3,
          'text-wrap': 'ellipsis',
          'text-max-width': 150,
          'text-background-color': '#ffffff',
          'text-background-opacity': 0.75,
          'text-background-padding': 1,
          'min-zoomed-font-size': large ? 6 : 0,
          width: 26,
          height: 26,
          'background-color': '#e6e6e6',
          'border-width': 1.5,
          'border-color': '#6e7781',
        },
      },
      {
        selector: 'node.kind-workload',
        style: { shape: 'round-rectangle', width: 36, height: 24, 'background-color': '#dbe9f8', 'border-color': '#2f6db5' },
      },
      {
        selector: 'node.kind-service',
        style: { shape: 'hexagon', width: 30, height: 26, 'background-color': '#ece2f7', 'border-color': '#7743a8' },
      },
      {
        selector: 'node.kind-external',
        style: { shape: 'octagon', width: 28, height: 28, 'background-color': '#fff1d6', 'border-color': '#b86e00' },
      },
      {
        selector: 'node.kind-unresolved',
        style: {
          shape: 'triangle',
          width: 30,
          height: 27,
          'background-color': '#fde2e1',
          'border-color': '#c62828',
          'border-width': 2,
          color: '#a4161a',
        },
      },
      {
        selector: 'node.kind-node',
        style: { shape: 'rectangle', width: 30, height: 22, 'background-color': '#eeeeee', 'border-color': '#555555' },
      },
      {
        // Namespaces (and any other node the server makes a parent) are compound boxes.
        selector: ':parent',
        style: {
          shape: 'round-rectangle',
          'background-color': '#f6f8fa',
          'background-opacity': 1,
          'border-color': '#8c959f',
          'border-style': 'dashed',
          'border-width': 1,
          padding: 16,
          'text-valign': 'top',
          'text-halign': 'center',
          'text-margin-y': -3,
          'font-size': 12,
          'font-weight': 'bold',
          color: '#57606a',
          'text-background-opacity': 0,
          'min-zoomed-font-size': 0,
        },
      },
      {
        selector: 'node.kind-namespace:childless',
        style: { shape: 'round-rectangle', 'background-color': '#f6f8fa', 'border-style': 'dashed' },
      },
      {
        selector: 'node.focus',
        style: {
          width: 50,
          height: 32,
          'border-width': 4,
          'border-color': '#0b3d91',
          'background-color': '#a9c9ef',
          'font-size': 13,
          'font-weight': 'bold',
          'min-zoomed-font-size': 0,
          'underlay-color': '#2f6db5',
          'underlay-opacity': 0.2,
          'underlay-padding': 7,
          'z-index': 10,
        },
      },
      {
        selector: 'edge',
        style: {
          'curve-style': 'bezier',
          'target-arrow-shape': 'triangle',
          'arrow-scale': 0.9,
          width: 1.5,
          'line-color': '#8c959f',
          'target-arrow-color': '#8c959f',
          label: 'data(label)',
          'font-family': FONT,
          'font-size': 10,
          color: '#1f2328',
          'text-background-color': '#ffffff',
          'text-background-opacity': 0.85,
          'text-background-padding': 2,
          'text-background-shape': 'round-rectangle',
          'min-zoomed-font-size': allEdgeLabels ? 0 : 9,
        },
      },
      {
        selector: 'edge.status-allowed',
        style: { 'line-style': 'solid', width: 2, 'line-color': '#1a7f37', 'target-arrow-color': '#1a7f37', color: '#0f5323' },
      },
      {
        selector: 'edge.status-excluded',
        style: {
          'line-style': 'dashed',
          'line-dash-pattern': [8, 5],
          width: 1.75,
          'line-color': '#8c959f',
          'target-arrow-color': '#8c959f',
          'target-arrow-fill': 'hollow',
          color: '#57606a',
        },
      },
      {
        selector: 'edge.status-unresolved',
        style: {
          'line-style': 'dashed',
          'line-dash-pattern': [0.1, 6],
          'line-cap': 'round',
          width: 3,
          'line-color': '#cf222e',
          'target-arrow-color': '#cf222e',
          color: '#a4161a',
        },
      },
      {
        selector: 'edge.status-no-rule',
        style: {
          'line-style': 'dashed',
          'line-dash-pattern': [1.5, 3],
          width: 1,
          'line-color': '#0969da',
          'target-arrow-color': '#0969da',
          'arrow-scale': 0.7,
          color: '#0a3069',
        },
      },
      {
        selector: 'node:selected',
        style: { 'border-color': '#bf8700', 'border-width': 4, 'min-zoomed-font-size': 0 },
      },
      {
        selector: 'edge:selected',
        style: { width: 4, 'min-zoomed-font-size': 0, 'z-index': 20, 'font-weight': 'bold' },
      },
      { selector: '.faded', style: { opacity: 0.18 } },
    ];
  }

  function layoutOptions(nodeCount) {
    var draft = nodeCount > DRAFT_ABOVE_NODES;
    return {
      name: 'fcose',
      quality: draft ? 'draft' : 'default',
      randomize: true,
      animate: false,
      fit: true,
      padding: 24,
      nodeDimensionsIncludeLabels: !draft,
      packComponents: true,
      nodeSeparation: 90,
      idealEdgeLength: function () {
        return 110;
      },
      nodeRepulsion: function () {
        return 9000;
      },
      nestingFactor: 0.2,
      gravity: 0.3,
      tile: true,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Details panel (#map-details): text only.

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function detailList(pairs) {
    var dl = el('dl', 'map-details-list');
    pairs.forEach(function (p) {
      dl.appendChild(el('dt', null, p[0]));
      dl.appendChild(el('dd', null, p[1]));
    });
    return dl;
  }

  function pairsOf(detail) {
    return Object.keys(detail).map(function (k) {
      return [k, str(detail[k])];
    });
  }

  function showDetails(children) {
    var panel = document.getElementById('map-details');
    if (!panel) return;
    panel.textContent = '';
    children.forEach(function (c) {
      panel.appendChild(c);
    });
  }

  function showNode(node) {
    var d = node.data();
    var kind = KIND_NAMES[d.kind] || d.rawKind || 'Node';
    var parts = [el('h3', 'map-details-title', d.fullLabel), el('p', 'map-details-kind', kind)];
    if (node.hasClass('focus')) parts[1].textContent = kind + ' (the workload this page is about)';
    var pairs = pairsOf(d.detail);
    var parent = node.parent();
    if (parent.nonempty() && !('Namespace' in d.detail)) pairs.unshift(['In', parent.data('fullLabel')]);
    pairs.push(['Connections', node.connectedEdges().length + ' shown']);
    parts.push(detailList(pairs));
    showDetails(parts);
    announce('node', d.id);
  }

  function showEdge(edge) {
    var d = edge.data();
    var status = STATUS_NAMES[d.status] || d.rawStatus || 'unknown';
    var parts = [
      el('h3', 'map-details-title', (STATUS_PREFIX[d.status] || '') + (d.fullLabel || 'connection')),
      el('p', 'map-details-kind', 'Connection, ' + status),
    ];
    var pairs = [
      ['From', edge.source().data('fullLabel')],
      ['To', edge.target().data('fullLabel')],
      ['Status', d.rawStatus || 'unknown'],
    ].concat(pairsOf(d.detail));
    parts.push(detailList(pairs));
    showDetails(parts);
    announce('edge', d.id);
  }

  function announce(type, id) {
    document.body.dispatchEvent(
      new CustomEvent('flowgate:map-select', { bubbles: true, detail: { type: type, id: id } })
    );
  }

  // Fade everything but the clicked element's neighbourhood (and the namespaces around it).
  function highlight(cy, ele) {
    cy.batch(function () {
      var keep;
      if (ele.isNode()) {
        var members = ele.union(ele.descendants());
        keep = members.union(members.connectedEdges()).union(members.connectedEdges().connectedNodes());
      } else {
        keep = ele.union(ele.connectedNodes());
      }
      keep = keep.union(keep.ancestors());
      cy.elements().not(keep).addClass('faded');
      keep.removeClass('faded');
    });
  }

  function clearHighlight(cy) {
    cy.batch(function () {
      cy.elements('.faded').removeClass('faded');
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Rendering.

  function createCy(container) {
    container.textContent = '';
    container.classList.remove('map-message');
    var cy = cytoscape({
      container: container,
      renderer: { name: 'canvas', webgl: false },
      minZoom: 0.02,
      maxZoom: 4,
      boxSelectionEnabled: false,
    });
    cy.on('tap', 'node', function (evt) {
      highlight(cy, evt.target);
      showNode(evt.target);
    });
    cy.on('tap', 'edge', function (evt) {
      highlight(cy, evt.target);
      showEdge(evt.target);
    });
    cy.on('tap', function (evt) {
      if (evt.target === cy) clearHighlight(cy);
    });
    return cy;
  }

  function destroyCy() {
    if (state.cy) state.cy.destroy();
    state.cy = null;
    state.shapeKey = null;
    state.large = null;
  }

  function applyStyle(cy, nodeCount, edgeCount) {
    var large = nodeCount > DRAFT_ABOVE_NODES;
    var all = edgeCount <= ALL_LABELS_UP_TO_EDGES;
    var key = large + '/' + all;
    if (state.large === key) return;
    state.large = key;
    cy.style(stylesheet(large, all));
    // Drawing edges while panning a big map is what makes it stutter; hide them mid-gesture.
    var r = cy.renderer();
    if (r) r.hideEdgesOnViewport = large;
  }

  // Same nodes as before: update labels, classes and edges in place, keep positions and viewport.
  function updateInPlace(cy, els) {
    cy.batch(function () {
      els.nodes.forEach(function (n) {
        var ele = cy.getElementById(n.data.id);
        ele.data(n.data);
        ele.classes(n.classes);
      });
      var wanted = new Map();
      els.edges.forEach(function (e) {
        wanted.set(e.data.id, e);
      });
      cy.edges().forEach(function (ele) {
        var w = wanted.get(ele.id());
        if (!w || w.data.source !== ele.data('source') || w.data.target !== ele.data('target')) {
          ele.remove();
        }
      });
      var add = [];
      wanted.forEach(function (e, id) {
        var ele = cy.getElementById(id);
        if (ele.nonempty()) {
          ele.data(e.data);
          ele.classes(e.classes);
        } else {
          add.push(e);
        }
      });
      if (add.length) cy.add(add);
    });
  }

  function firstFrame(cy) {
    return new Promise(function (resolve) {
      var done = false;
      function finish() {
        if (!done) {
          done = true;
          resolve();
        }
      }
      cy.one('render', finish);
      setTimeout(finish, FIRST_FRAME_TIMEOUT_MS);
    });
  }

  function render(graph) {
    var t0 = performance.now();
    var els = toElements(graph);
    var container = state.container;
    var info = { nodes: els.nodes.length, edges: els.edges.length, dropped: els.dropped };

    if (els.nodes.length === 0) {
      showMessage('No connections were seen in this time window.');
      info.layoutMs = 0;
      info.relayout = false;
      return Promise.resolve(finishInfo(info, t0));
    }

    var cy = state.cy;
    if (!cy) cy = state.cy = createCy(container);
    applyStyle(cy, els.nodes.length, els.edges.length);

    var layoutMs = 0;
    if (state.shapeKey === els.shapeKey) {
      updateInPlace(cy, els);
      info.relayout = false;
    } else {
      cy.elements().remove();
      cy.add(els.nodes);
      cy.add(els.edges);
      var tl = performance.now();
      info.buildMs = tl - t0;
      cy.layout(layoutOptions(els.nodes.length)).run();
      layoutMs = performance.now() - tl;
      state.shapeKey = els.shapeKey;
      info.relayout = true;
    }
    info.layoutMs = layoutMs;
    var tp = performance.now();
    return firstFrame(cy).then(function () {
      info.paintMs = performance.now() - tp;
      return finishInfo(info, t0);
    });
  }

  function finishInfo(info, t0) {
    info.renderMs = performance.now() - t0;
    return info;
  }

  function showMessage(text) {
    destroyCy();
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
    var url = state.container.getAttribute('data-graph-url');
    if (state.controller) state.controller.abort();
    var controller = new AbortController();
    state.controller = controller;
    var seq = ++state.seq;
    var previous = window.flowgateMap || {};
    window.flowgateMap = { ready: false, seq: seq, nodes: previous.nodes, edges: previous.edges };
    state.container.setAttribute('aria-busy', 'true');

    var t0 = performance.now();
    var fetchMs = 0;
    var p = url
      ? fetch(url, {
          headers: { Accept: 'application/json' },
          credentials: 'same-origin',
          cache: 'no-store',
          signal: controller.signal,
        })
      : Promise.reject(new MapError('This page does not say where to load the map from (data-graph-url).'));

    return p
      .then(function (resp) {
        if (!resp.ok) {
          throw new MapError(
            'The map could not be loaded: the server answered ' + resp.status + (resp.statusText ? ' ' + resp.statusText : '') + '.'
          );
        }
        return resp.json().catch(function () {
          throw new MapError('The map could not be loaded: the server sent something that is not JSON.');
        });
      })
      .then(function (graph) {
        if (seq !== state.seq) return null;
        fetchMs = performance.now() - t0;
        return render(graph);
      })
      .then(
        function (info) {
          if (!info || seq !== state.seq) return;
          info.fetchMs = fetchMs;
          state.container.removeAttribute('aria-busy');
          publish(info);
        },
        function (err) {
          if (seq !== state.seq) return; // superseded by a newer request
          state.container.removeAttribute('aria-busy');
          var message =
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
    Promise.resolve().then(function () {
      state.scheduled = false;
      refresh();
    });
  }

  function fit() {
    if (state.cy) state.cy.fit(undefined, 24);
  }

  function addToolbar(container) {
    var existing = document.querySelectorAll('[data-map-action="fit"]');
    if (existing.length) {
      existing.forEach(function (b) {
        b.addEventListener('click', fit);
      });
      return;
    }
    var bar = el('div', 'map-toolbar');
    var button = el('button', 'map-fit', 'Fit to view');
    button.type = 'button';
    button.addEventListener('click', fit);
    bar.appendChild(button);
    container.parentNode.insertBefore(bar, container);
  }

  function init() {
    var container = document.getElementById('map');
    if (!container) return;
    state.container = container;

    if (typeof window.cytoscape !== 'function') {
      fail('The map could not be drawn: its script (cytoscape) did not load.');
      return;
    }
    if (!cytoscape('layout', 'fcose')) {
      if (typeof window.cytoscapeFcose !== 'function') {
        fail('The map could not be drawn: its layout script (fcose) did not load.');
        return;
      }
      cytoscape.use(window.cytoscapeFcose);
    }

    addToolbar(container);

    // Capture phase on document: catches the event wherever it is dispatched (body or deeper),
    // bubbling or not, and survives the body's children being swapped.
    document.addEventListener('flowgate:decisions-changed', scheduleRefresh, true);
    document.addEventListener(
      'htmx:afterSwap',
      function (evt) {
        var target = (evt.detail && evt.detail.target) || evt.target;
        if (target && target.nodeType === 1 && (target.id === 'review' || target.closest('#review'))) {
          scheduleRefresh();
        }
      },
      true
    );
    new MutationObserver(scheduleRefresh).observe(container, {
      attributes: true,
      attributeFilter: ['data-graph-url'],
    });

    // For tests and the benchmark; not an API the page relies on.
    window.flowgateMapControl = {
      refresh: refresh,
      fit: fit,
      cy: function () {
        return state.cy;
      },
    };

    refresh();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
