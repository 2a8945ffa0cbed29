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
 * After each render window.flowgateMap = { ready, nodes, edges, layout, layoutMs, renderMs, ... }
 * so that browser tests and examples/map_bench.rs can wait for it.
 */
(function () {
  'use strict';

  // Up to this many nodes fcose lays the map out ('default' quality: spectral pass + CoSE
  // refinement) and namespaces are cytoscape compound nodes. Above it the map is "grouped" (see
  // groupedLayout), unless #map has data-map-layout="fcose", which forces fcose at every size
  // ('draft' quality above this one).
  var GROUPED_ABOVE_NODES = 300;
  // Up to this many edges every edge label is drawn; above it labels appear once zoomed in, so a
  // 2,000-node map does not spend its first frames on text nobody can read.
  var ALL_LABELS_UP_TO_EDGES = 200;
  // Canvas labels are cut to this length (the details panel shows the whole string); in large
  // maps, to what fits a grid cell at 11px.
  var LABEL_MAX_CHARS = 80;
  var LARGE_LABEL_MAX_CHARS = 26;
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
  // Non-colour cue in the label itself; the line style (edges) and shape (nodes) are the other one.
  var WARN = '\u26A0 ';

  var FONT = 'system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif';

  var state = {
    container: null,
    cy: null,
    mode: null, // 'fcose' | 'grouped' for what is drawn
    shapeKey: null, // mode + node ids + parents of what is drawn; equal -> keep positions and viewport
    styleKey: null,
    controller: null,
    seq: 0,
    scheduled: false,
    highlighted: null,
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

  function shortLabel(s, max) {
    max = max || LABEL_MAX_CHARS;
    return s.length > max ? s.slice(0, max - 1) + '\u2026' : s;
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
        label: shortLabel((kind === 'unresolved' ? WARN : '') + full),
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
          label: shortLabel((status === 'unresolved' ? WARN : '') + full),
          fullLabel: full,
          detail: detailOf(e.detail),
        },
        classes: 'status-' + status,
      });
    });

    // Edges sharing their two ends (either direction) are drawn curved apart.
    var pairs = new Map();
    edges.forEach(function (e) {
      var k = e.data.source < e.data.target ? e.data.source + '\u0000' + e.data.target : e.data.target + '\u0000' + e.data.source;
      pairs.set(k, (pairs.get(k) || 0) + 1);
      e.pair = k;
    });
    edges.forEach(function (e) {
      if (pairs.get(e.pair) > 1) e.classes += ' multi';
      delete e.pair;
    });

    shape.sort();
    return { nodes: nodes, edges: edges, dropped: dropped, shapeKey: shape.join('\u0001') };
  }

  // ---------------------------------------------------------------------------------------------
  // Grouped arrangement for large maps.
  //
  // fcose's spectral pass alone took ~3 s of CPU for 2,000 nodes in namespaces here (most of it in
  // its connected-components walk over cytoscape collections), and cytoscape styles every element
  // of a graph with compound nodes several times slower than a flat one (each style property
  // dirties the caches of the element's parents, descendants and their edges). Both blow the 2 s
  // budget, so a large map is arranged, not simulated, and has no compound nodes:
  // - each namespace is a block, its members in a staggered grid (the focus first, then
  //   workloads, services, by name); the namespace itself is a plain node drawn as the block's
  //   transparent box;
  // - blocks are ordered so that namespaces that talk a lot sit next to each other, starting from
  //   the focus, and packed in rows matching the container's shape; peers outside namespaces
  //   (external, unresolved, hosts) form blocks of their own;
  // - linear in nodes and edges (quadratic only in the number of blocks), and the same graph
  //   always looks the same, which helps a page that re-renders after every decision.
  var CELL_W = 170;
  var CELL_H = 80;
  var BLOCK_GAP = 120;
  var BOX_PAD = 20;
  var KIND_ORDER = { workload: 0, service: 1, node: 2, external: 3, unresolved: 4, namespace: 5, other: 6 };

  function groupedLayout(els, aspect) {
    var parentOf = new Map();
    var boxes = new Map();
    els.nodes.forEach(function (n) {
      if (n.data.parent !== undefined) parentOf.set(n.data.id, n.data.parent);
    });
    parentOf.forEach(function (p) {
      boxes.set(p, null);
    });
    function topOf(id) {
      var cur = id;
      while (parentOf.has(cur)) cur = parentOf.get(cur);
      return cur;
    }

    var units = new Map();
    var unitOf = new Map();
    var focusUnit = null;
    els.nodes.forEach(function (n) {
      var d = n.data;
      if (boxes.has(d.id)) {
        boxes.set(d.id, n);
        return;
      }
      var top = topOf(d.id);
      var key = top !== d.id ? 'c:' + top : 'k:' + d.kind;
      var u = units.get(key);
      if (!u) {
        u = { key: key, box: top !== d.id ? top : null, members: [], weights: new Map(), placed: false, score: 0, total: 0 };
        units.set(key, u);
      }
      u.members.push(n);
      unitOf.set(d.id, u);
      if (n.classes.indexOf('focus') >= 0) {
        focusUnit = u;
        n.first = true;
      }
    });

    els.edges.forEach(function (e) {
      var a = unitOf.get(e.data.source);
      var b = unitOf.get(e.data.target);
      if (!a || !b || a === b) return;
      a.weights.set(b, (a.weights.get(b) || 0) + 1);
      b.weights.set(a, (b.weights.get(a) || 0) + 1);
      a.total++;
      b.total++;
    });

    // Greedy order: next is the unplaced block with the most edges to blocks already placed.
    var list = Array.from(units.values());
    function better(a, b) {
      if (a.score !== b.score) return a.score > b.score;
      if (a.total !== b.total) return a.total > b.total;
      return a.key < b.key;
    }
    var order = [];
    var next = focusUnit;
    while (order.length < list.length) {
      if (!next) {
        for (var i = 0; i < list.length; i++) {
          if (!list[i].placed && (!next || better(list[i], next))) next = list[i];
        }
      }
      next.placed = true;
      order.push(next);
      next.weights.forEach(function (w, other) {
        other.score += w;
      });
      next = null;
    }

    // Each block: a staggered grid, roughly square.
    var area = 0;
    var widest = 0;
    order.forEach(function (u) {
      u.members.sort(function (a, b) {
        if (!!a.first !== !!b.first) return a.first ? -1 : 1;
        var ka = KIND_ORDER[a.data.kind];
        var kb = KIND_ORDER[b.data.kind];
        if (ka !== kb) return ka - kb;
        return a.data.fullLabel < b.data.fullLabel ? -1 : a.data.fullLabel > b.data.fullLabel ? 1 : 0;
      });
      var n = u.members.length;
      u.cols = Math.max(1, Math.ceil(Math.sqrt((n * CELL_H) / CELL_W)));
      u.rows = Math.ceil(n / u.cols);
      u.w = u.cols * CELL_W + (u.rows > 1 ? CELL_W / 2 : 0);
      u.h = u.rows * CELL_H;
      area += (u.w + BLOCK_GAP) * (u.h + BLOCK_GAP);
      widest = Math.max(widest, u.w);
    });

    // Shelf packing: blocks left to right, a new row when the next one would pass the row width.
    // The width is the one, among a few candidates, that lets the whole map be shown largest in
    // a container of the given shape (rows of uneven height make the plain sqrt(area) guess poor).
    function pack(rowWidth) {
      var x = 0;
      var y = 0;
      var rowH = 0;
      var right = 0;
      order.forEach(function (u) {
        if (x > 0 && x + u.w > rowWidth) {
          x = 0;
          y += rowH + BLOCK_GAP;
          rowH = 0;
        }
        u.x = x;
        u.y = y;
        x += u.w + BLOCK_GAP;
        right = Math.max(right, x - BLOCK_GAP);
        rowH = Math.max(rowH, u.h);
      });
      return { w: right, h: y + rowH };
    }
    var guess = Math.sqrt(area * aspect);
    var best = null;
    for (var f = 0.5; f <= 3.01; f += 0.1) {
      var width = Math.max(widest, guess * f);
      var size = pack(width);
      var scale = Math.min(aspect / size.w, 1 / size.h);
      if (!best || scale > best.scale) best = { width: width, scale: scale };
    }
    pack(best.width);
    var x = 0;
    var y = 0;
    order.forEach(function (u) {
      x = u.x;
      y = u.y;
      u.members.forEach(function (n, i) {
        var row = Math.floor(i / u.cols);
        var col = i % u.cols;
        n.position = {
          x: x + col * CELL_W + CELL_W / 2 + (row % 2 === 1 ? CELL_W / 2 : 0),
          y: y + row * CELL_H + CELL_H / 2,
        };
        if (u.box !== null) n.data.ns = u.box;
        delete n.data.parent;
        delete n.first;
      });
      var box = u.box !== null ? boxes.get(u.box) : null;
      if (box) {
        box.position = { x: x + u.w / 2, y: y + u.h / 2 };
        box.data.w = u.w + 2 * BOX_PAD;
        box.data.h = u.h + 2 * BOX_PAD;
        // Readable at the zoom that shows the whole map: scale the name with the block.
        box.data.fontSize = Math.max(16, Math.min(140, Math.round(u.w / 7)));
        box.classes += ' ns-box';
        boxes.delete(u.box);
      }
    });
    x = best.width + BLOCK_GAP;
    y = 0;
    // Parents left over had no members (or only nested parents): plain nodes at the end.
    boxes.forEach(function (n) {
      if (!n) return;
      delete n.data.parent;
      n.position = { x: x + CELL_W / 2, y: y + CELL_H / 2 };
      x += CELL_W;
    });
    els.nodes.forEach(function (n) {
      if (n.data.parent !== undefined) {
        n.data.ns = n.data.parent;
        delete n.data.parent;
      }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Style. Colour is never the only cue: node kinds differ by shape, edge statuses by line style
  // (solid / dashed / round dots / thin dots) and unresolved ones also by a "⚠" in the label.

  // Cytoscape's cost of styling an element grows with the number of properties that apply to it
  // (each one dirties caches of the element and its edges), so a large map gets a leaner sheet:
  // default font, no label backgrounds or ellipsis (labels are cut in toElements instead),
  // straight edges unless two edges share their ends.
  function stylesheet(grouped, large, allEdgeLabels) {
    function rich(style, extra) {
      if (!large) Object.keys(extra).forEach(function (k) {
        style[k] = extra[k];
      });
      return style;
    }
    var sheet = [
      {
        selector: 'node',
        style: rich(
          {
            label: 'data(label)',
            'font-size': large ? 11 : 12,
            'text-valign': 'bottom',
            'text-margin-y': 3,
            'min-zoomed-font-size': large ? 6 : 0,
            width: 26,
            height: 26,
            'background-color': '#e6e6e6',
            'border-width': 1.5,
            'border-color': '#6e7781',
          },
          {
            'font-family': FONT,
            color: '#1f2328',
            'text-wrap': 'ellipsis',
            'text-max-width': 180,
            'text-background-color': '#ffffff',
            'text-background-opacity': 0.75,
            'text-background-padding': 1,
          }
        ),
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
        selector: ':parent, node.kind-namespace',
        style: {
          shape: 'round-rectangle',
          'background-color': '#f6f8fa',
          'background-opacity': 1,
          'border-color': '#8c959f',
          'border-style': 'dashed',
          'border-width': 1,
          padding: 16,
          'text-valign': 'top',
          'text-margin-y': -3,
          'font-size': 12,
          'font-weight': 'bold',
          color: '#57606a',
          'text-background-opacity': 0,
          'min-zoomed-font-size': 0,
        },
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
          'text-max-width': 260,
          'min-zoomed-font-size': 0,
          'underlay-color': '#2f6db5',
          'underlay-opacity': 0.2,
          'underlay-padding': 7,
          'z-index': 10,
        },
      },
      {
        selector: 'edge',
        style: rich(
          {
            'curve-style': large ? 'straight' : 'bezier',
            'target-arrow-shape': 'triangle',
            'arrow-scale': 0.9,
            width: 1.5,
            'line-color': '#8c959f',
            'target-arrow-color': '#8c959f',
            label: 'data(label)',
            'font-size': large ? 10 : 11,
            'min-zoomed-font-size': allEdgeLabels ? 0 : 9,
          },
          {
            'font-family': FONT,
            color: '#1f2328',
            'text-background-color': '#ffffff',
            'text-background-opacity': 0.85,
            'text-background-padding': 2,
            'text-background-shape': 'round-rectangle',
          }
        ),
      },
      // Two or more edges between the same pair: curve them apart, or their labels would overlap.
      { selector: 'edge.multi', style: { 'curve-style': 'bezier' } },
      {
        selector: 'edge.status-allowed',
        style: rich({ 'line-style': 'solid', width: 2, 'line-color': '#1a7f37', 'target-arrow-color': '#1a7f37' }, { color: '#0f5323' }),
      },
      {
        selector: 'edge.status-excluded',
        style: rich(
          {
            'line-style': 'dashed',
            'line-dash-pattern': [8, 5],
            width: 1.75,
            'line-color': '#8c959f',
            'target-arrow-color': '#8c959f',
            'target-arrow-fill': 'hollow',
          },
          { color: '#57606a' }
        ),
      },
      {
        selector: 'edge.status-unresolved',
        style: rich(
          {
            'line-style': 'dashed',
            'line-dash-pattern': [0.1, 6],
            'line-cap': 'round',
            width: 3,
            'line-color': '#cf222e',
            'target-arrow-color': '#cf222e',
          },
          { color: '#a4161a' }
        ),
      },
      {
        selector: 'edge.status-no-rule',
        style: rich(
          {
            'line-style': 'dashed',
            'line-dash-pattern': [1.5, 3],
            width: 1,
            'line-color': '#0969da',
            'target-arrow-color': '#0969da',
            'arrow-scale': 0.7,
          },
          { color: '#0a3069' }
        ),
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
      // Clicking in a large map marks the neighbourhood instead of fading everything else:
      // restyling all 9,000 elements took well over a second per click.
      // (No z-index here: changing it re-sorts the whole draw order, a third of the cost.)
      { selector: 'edge.hl', style: { width: 3.5, 'min-zoomed-font-size': 0 } },
      { selector: 'node.hl', style: { 'border-width': 3, 'min-zoomed-font-size': 0 } },
    ];
    if (grouped) {
      // Haystack edges (centre to centre, arrow at the middle) are the cheapest cytoscape draws:
      // about a second less at 7,000 edges than straight ones. Edges sharing their ends stay
      // curved, with the arrow at the target.
      sheet.push(
        {
          selector: 'edge',
          style: {
            'curve-style': 'haystack',
            'haystack-radius': 0,
            'target-arrow-shape': 'none',
            'mid-target-arrow-shape': 'triangle',
          },
        },
        { selector: 'edge.status-allowed', style: { 'mid-target-arrow-color': '#1a7f37' } },
        { selector: 'edge.status-excluded', style: { 'mid-target-arrow-color': '#8c959f', 'mid-target-arrow-fill': 'hollow' } },
        { selector: 'edge.status-unresolved', style: { 'mid-target-arrow-color': '#cf222e' } },
        { selector: 'edge.status-no-rule', style: { 'mid-target-arrow-color': '#0969da' } },
        {
          selector: 'edge.multi',
          style: { 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', 'mid-target-arrow-shape': 'none' },
        }
      );
      // The namespace box is a plain node: nodes are drawn over edges, so it stays transparent and
      // lets clicks through to the edges and nodes inside it.
      sheet.push({
        selector: 'node.ns-box',
        style: {
          width: 'data(w)',
          height: 'data(h)',
          'font-size': 'data(fontSize)',
          'text-margin-y': -6,
          'background-opacity': 0,
          'border-width': 2,
          events: 'no',
          'z-index': 0,
        },
      });
    }
    return sheet;
  }

  function fcoseOptions(nodeCount) {
    var draft = nodeCount > GROUPED_ABOVE_NODES;
    return {
      name: 'fcose',
      quality: draft ? 'draft' : 'default',
      randomize: true,
      animate: false,
      fit: true,
      padding: 24,
      nodeDimensionsIncludeLabels: !draft,
      packComponents: true,
      nodeSeparation: 75,
      idealEdgeLength: function () {
        return 80;
      },
      nodeRepulsion: function () {
        return 6500;
      },
      nestingFactor: 0.2,
      gravity: 0.3,
      tile: true,
    };
  }

  // fcose ignores the container's shape; a map in a wide box would be fitted by its height and
  // drawn small. Stretching the positions horizontally (at most 1.8 times) keeps the topology
  // and gives labels more room.
  function stretchToContainer(cy) {
    var w = cy.width();
    var h = cy.height();
    var leaves = cy.nodes().filter(function (n) {
      return !n.isParent();
    });
    if (!(w > 0 && h > 0) || leaves.length < 2) return;
    var bb = leaves.boundingBox({ includeLabels: false });
    if (!(bb.w > 0 && bb.h > 0)) return;
    var factor = Math.min(1.8, w / h / (bb.w / bb.h));
    if (factor <= 1.05) return;
    var cx = (bb.x1 + bb.x2) / 2;
    cy.batch(function () {
      leaves.forEach(function (n) {
        var p = n.position();
        n.position({ x: cx + (p.x - cx) * factor, y: p.y });
      });
    });
    cy.fit(undefined, 24);
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

  // The namespace box around a node: its compound parent, or in a grouped map its `ns`.
  function boxOf(cy, node) {
    var parent = node.parent();
    if (parent.nonempty()) return parent;
    var ns = node.data('ns');
    return ns ? cy.getElementById(ns) : cy.collection();
  }

  function membersOf(cy, node) {
    if (node.isParent()) return node.descendants();
    if (node.hasClass('ns-box')) {
      var id = node.id();
      return cy.nodes().filter(function (n) {
        return n.data('ns') === id;
      });
    }
    return cy.collection();
  }

  function showNode(cy, node) {
    var d = node.data();
    var kind = KIND_NAMES[d.kind] || d.rawKind || 'Node';
    var parts = [el('h3', 'map-details-title', d.fullLabel), el('p', 'map-details-kind', kind)];
    if (node.hasClass('focus')) parts[1].textContent = kind + ' (the workload this page is about)';
    var pairs = pairsOf(d.detail);
    var box = boxOf(cy, node);
    if (box.nonempty() && !('Namespace' in d.detail)) pairs.unshift(['In', box.data('fullLabel')]);
    var members = membersOf(cy, node);
    if (members.nonempty()) pairs.push(['Members', String(members.length)]);
    pairs.push(['Connections', node.union(members).connectedEdges().length + ' shown']);
    parts.push(detailList(pairs));
    showDetails(parts);
    announce('node', d.id);
  }

  function showEdge(edge) {
    var d = edge.data();
    var status = STATUS_NAMES[d.status] || d.rawStatus || 'unknown';
    var parts = [
      el('h3', 'map-details-title', (d.status === 'unresolved' ? WARN : '') + (d.fullLabel || 'connection')),
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

  // The clicked element's neighbourhood, and the namespaces around it.
  function neighbourhood(cy, ele) {
    var keep;
    if (ele.isNode()) {
      var members = ele.union(membersOf(cy, ele));
      var edges = members.connectedEdges();
      keep = members.union(edges).union(edges.connectedNodes());
    } else {
      keep = ele.union(ele.connectedNodes());
    }
    var boxes = cy.collection();
    keep.nodes().forEach(function (n) {
      boxes.merge(boxOf(cy, n));
    });
    return keep.union(boxes).union(keep.ancestors());
  }

  // Small maps fade everything else; large ones mark the neighbourhood (see the style).
  function highlight(cy, ele) {
    clearHighlight(cy);
    var keep = neighbourhood(cy, ele);
    cy.batch(function () {
      if (state.mode === 'grouped' || cy.elements().length > 3000) {
        keep.addClass('hl');
      } else {
        cy.elements().not(keep).addClass('faded');
      }
    });
    state.highlighted = keep;
  }

  function clearHighlight(cy) {
    var prev = state.highlighted;
    state.highlighted = null;
    if (!prev) return;
    cy.batch(function () {
      prev.removeClass('hl');
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
      showNode(cy, evt.target);
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
    state.mode = null;
    state.shapeKey = null;
    state.styleKey = null;
    state.highlighted = null;
  }

  function applyStyle(cy, grouped, nodeCount, edgeCount) {
    var large = nodeCount > GROUPED_ABOVE_NODES;
    var all = edgeCount <= ALL_LABELS_UP_TO_EDGES;
    var key = [grouped, large, all].join('/');
    if (state.styleKey === key) return;
    state.styleKey = key;
    cy.style(stylesheet(grouped, large, all));
    // Drawing edges while panning a big map is what makes it stutter; hide them mid-gesture.
    cy.renderer().hideEdgesOnViewport = large;
    // A grouped map's boxes do not follow dragged nodes, so nodes stay where the layout put them.
    cy.autoungrabify(grouped);
  }

  // Data without the keys cytoscape does not let ele.data() change.
  function mutableData(d) {
    var out = {};
    Object.keys(d).forEach(function (k) {
      if (k !== 'id' && k !== 'parent' && k !== 'source' && k !== 'target') out[k] = d[k];
    });
    return out;
  }

  // Same nodes as before: update labels, classes and edges in place, keep positions and viewport.
  function updateInPlace(cy, els) {
    cy.batch(function () {
      els.nodes.forEach(function (n) {
        var ele = cy.getElementById(n.data.id);
        ele.data(mutableData(n.data));
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
          ele.data(mutableData(e.data));
          ele.classes(e.classes);
        } else {
          add.push(e);
        }
      });
      if (add.length) cy.add(add);
    });
    // Neighbourhoods may have changed; a stale highlight would mislead.
    clearHighlight(cy);
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
      info.layout = 'none';
      info.layoutMs = 0;
      info.relayout = false;
      return Promise.resolve(finishInfo(info, t0));
    }

    var forced = container.getAttribute('data-map-layout') === 'fcose';
    var mode = !forced && els.nodes.length > GROUPED_ABOVE_NODES ? 'grouped' : 'fcose';
    var shapeKey = mode + '\u0002' + els.shapeKey;
    var layoutMs = 0;
    var tl = performance.now();
    if (els.nodes.length > GROUPED_ABOVE_NODES) {
      // The large style has no ellipsis wrapping (see stylesheet): cut labels to a grid cell.
      els.nodes.forEach(function (n) {
        n.data.label = shortLabel(n.data.label, LARGE_LABEL_MAX_CHARS);
      });
    }
    if (mode === 'grouped') {
      var box = container.getBoundingClientRect();
      groupedLayout(els, box.width > 0 && box.height > 0 ? box.width / box.height : 2);
      layoutMs = performance.now() - tl;
    }

    var cy = state.cy;
    if (!cy) cy = state.cy = createCy(container);
    applyStyle(cy, mode === 'grouped', els.nodes.length, els.edges.length);

    if (state.shapeKey === shapeKey) {
      updateInPlace(cy, els);
      info.relayout = false;
    } else {
      clearHighlight(cy);
      cy.elements().remove();
      cy.add(els.nodes);
      cy.add(els.edges);
      info.buildMs = performance.now() - t0 - layoutMs;
      if (mode === 'grouped') {
        cy.fit(undefined, 24);
      } else {
        tl = performance.now();
        cy.layout(fcoseOptions(els.nodes.length)).run();
        stretchToContainer(cy);
        layoutMs = performance.now() - tl;
      }
      state.shapeKey = shapeKey;
      info.relayout = true;
    }
    state.mode = mode;
    info.layout = mode === 'grouped' ? 'grouped' : els.nodes.length > GROUPED_ABOVE_NODES ? 'fcose-draft' : 'fcose';
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
            'The map could not be loaded: the server answered ' +
              resp.status +
              (resp.statusText ? ' ' + resp.statusText : '') +
              '.'
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
      attributeFilter: ['data-graph-url', 'data-map-layout'],
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
