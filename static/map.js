/*
 * Flowgate topology map: the page's one JavaScript island.
 *
 * It draws the graph the review partial carries (#map-graph, a <script type="application/json">
 * from the same review as the tables, drawn once), else fetches #map[data-graph-url]: up to 300 nodes with cytoscape + fcose (vendored, see static/vendor/README.md),
 * above that on a plain canvas of its own (canvasView: cytoscape could not draw 2,000 nodes in
 * under 2 s). Both share the styles, the details panel and everything below. It talks to the rest
 * of the page only through DOM events:
 *
 *   listens   flowgate:decisions-changed (anywhere)      -> redraw (the swapped partial's graph)
 *             htmx:afterSwap on or inside #review        -> redraw (the swapped partial's graph)
 *             #map's data-graph-url attribute changes    -> re-fetch (new time window)
 *   emits     flowgate:map-ready on document.body        after every completed (re)render or error
 *             flowgate:map-select on document.body       when a node or edge is clicked
 *
 * Every string in the JSON came from the cluster and is untrusted: both renderers draw labels on a
 * canvas, and the details panel is built with createElement/textContent only.
 *
 * After each render window.flowgateMap = { ready, nodes, edges, renderer, layout, layoutMs,
 * renderMs, ... }, and window.flowgateMapControl offers zoomBy, nextFrame, nodesInView and
 * connectionsInView for either renderer, so that browser tests and examples/map_bench.rs can
 * wait for and drive the map.
 */
(function () {
  'use strict';

  // Up to this many nodes fcose lays the map out ('default' quality: spectral pass + CoSE
  // refinement), namespaces are cytoscape compound nodes and cytoscape draws. Above it the map is
  // "grouped" (see groupedLayout) and drawn by canvasView, unless #map has
  // data-map-layout="fcose", which forces fcose and cytoscape at every size ('draft' quality
  // above this one).
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
  var STATUSES = ['allowed', 'excluded', 'unresolved', 'no-rule', 'would-break'];
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
    'would-break': 'would break: seen, and blocked once the policy is applied',
  };
  // Non-colour cue in the label itself; the line style (edges) and shape (nodes) are the other one.
  var WARN = '\u26A0 ';

  var FONT = 'system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif';

  var state = {
    container: null,
    cy: null,
    view: null, // the renderer drawing the map (see Rendering)
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
          label: shortLabel((status === 'unresolved' || status === 'would-break' ? WARN : '') + full),
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
  //   workloads, services, by name); the namespace itself becomes the block's box (class
  //   ns-box, with its size in data w/h), which canvasView draws behind the block;
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
  // Style, shared by both renderers (and by the legend in map.css / the templates). Colour is never
  // the only cue: node kinds differ by shape, edge statuses by line style (solid / dashed / round
  // dots / thin dots) and unresolved ones also by a "⚠" in the label.

  var NODE_STYLES = {
    workload: { shape: 'round-rectangle', w: 36, h: 24, fill: '#dbe9f8', stroke: '#2f6db5', border: 1.5 },
    service: { shape: 'hexagon', w: 30, h: 26, fill: '#ece2f7', stroke: '#7743a8', border: 1.5 },
    external: { shape: 'octagon', w: 28, h: 28, fill: '#fff1d6', stroke: '#b86e00', border: 1.5 },
    unresolved: { shape: 'triangle', w: 30, h: 27, fill: '#fde2e1', stroke: '#c62828', border: 2, text: '#a4161a' },
    node: { shape: 'rectangle', w: 30, h: 22, fill: '#eeeeee', stroke: '#555555', border: 1.5 },
    namespace: { shape: 'round-rectangle', w: 26, h: 26, fill: '#f6f8fa', stroke: '#8c959f', border: 1, dashed: true },
    other: { shape: 'ellipse', w: 26, h: 26, fill: '#e6e6e6', stroke: '#6e7781', border: 1.5 },
  };
  var FOCUS_STYLE = { w: 50, h: 32, fill: '#a9c9ef', stroke: '#0b3d91', border: 4, underlay: '#2f6db5' };
  var SELECTED_COLOR = '#bf8700';
  var EDGE_STYLES = {
    allowed: { color: '#1a7f37', width: 2, dash: null, cap: 'butt', hollow: false, text: '#0f5323', arrow: 0.9 },
    excluded: { color: '#8c959f', width: 1.75, dash: [8, 5], cap: 'butt', hollow: true, text: '#57606a', arrow: 0.9 },
    unresolved: { color: '#cf222e', width: 3, dash: [0.1, 6], cap: 'round', hollow: false, text: '#a4161a', arrow: 0.9 },
    'no-rule': { color: '#0969da', width: 1, dash: [1.5, 3], cap: 'butt', hollow: false, text: '#0a3069', arrow: 0.7 },
    'would-break': { color: '#cf222e', width: 3.5, dash: [10, 4], cap: 'butt', hollow: false, text: '#a4161a', arrow: 1 },
    other: { color: '#8c959f', width: 1.5, dash: null, cap: 'butt', hollow: false, text: '#1f2328', arrow: 0.9 },
  };

  // Cytoscape's cost of styling an element grows with the number of properties that apply to it
  // (each one dirties caches of the element and its edges), so a large map (only drawn by
  // cytoscape when fcose is forced) gets a leaner sheet: default font, no label backgrounds or
  // ellipsis (labels are cut in toElements instead), straight edges unless two share their ends.
  function stylesheet(large, allEdgeLabels) {
    function rich(style, extra) {
      if (!large) Object.keys(extra).forEach(function (k) {
        style[k] = extra[k];
      });
      return style;
    }
    var base = NODE_STYLES.other;
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
            width: base.w,
            height: base.h,
            'background-color': base.fill,
            'border-width': base.border,
            'border-color': base.stroke,
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
    ];
    ['workload', 'service', 'external', 'unresolved', 'node'].forEach(function (kind) {
      var k = NODE_STYLES[kind];
      var style = { shape: k.shape, width: k.w, height: k.h, 'background-color': k.fill, 'border-color': k.stroke };
      if (k.border !== base.border) style['border-width'] = k.border;
      if (k.text) style.color = k.text;
      sheet.push({ selector: 'node.kind-' + kind, style: style });
    });
    var ns = NODE_STYLES.namespace;
    sheet.push(
      {
        // Namespaces (and any other node the server makes a parent) are compound boxes.
        selector: ':parent, node.kind-namespace',
        style: {
          shape: ns.shape,
          'background-color': ns.fill,
          'background-opacity': 1,
          'border-color': ns.stroke,
          'border-style': 'dashed',
          'border-width': ns.border,
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
          width: FOCUS_STYLE.w,
          height: FOCUS_STYLE.h,
          'border-width': FOCUS_STYLE.border,
          'border-color': FOCUS_STYLE.stroke,
          'background-color': FOCUS_STYLE.fill,
          'font-size': 13,
          'font-weight': 'bold',
          'text-max-width': 260,
          'min-zoomed-font-size': 0,
          'underlay-color': FOCUS_STYLE.underlay,
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
            'arrow-scale': EDGE_STYLES.other.arrow,
            width: EDGE_STYLES.other.width,
            'line-color': EDGE_STYLES.other.color,
            'target-arrow-color': EDGE_STYLES.other.color,
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
      // Two or more edges between the same pair: curve them apart, with their labels along them,
      // or the labels of short edges (53/TCP beside 53/UDP) would overprint each other.
      {
        selector: 'edge.multi',
        style: { 'curve-style': 'bezier', 'control-point-step-size': 60, 'text-rotation': 'autorotate' },
      }
    );
    STATUSES.forEach(function (status) {
      var e = EDGE_STYLES[status];
      var style = {
        'line-style': e.dash ? 'dashed' : 'solid',
        width: e.width,
        'line-color': e.color,
        'target-arrow-color': e.color,
      };
      if (e.dash) style['line-dash-pattern'] = e.dash;
      if (e.cap !== 'butt') style['line-cap'] = e.cap;
      if (e.hollow) style['target-arrow-fill'] = 'hollow';
      if (e.arrow !== EDGE_STYLES.other.arrow) style['arrow-scale'] = e.arrow;
      sheet.push({ selector: 'edge.status-' + status, style: rich(style, { color: e.text }) });
    });
    sheet.push(
      {
        selector: 'node:selected',
        style: { 'border-color': SELECTED_COLOR, 'border-width': 4, 'min-zoomed-font-size': 0 },
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
      { selector: 'node.hl', style: { 'border-width': 3, 'min-zoomed-font-size': 0 } }
    );
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

  // The namespace box around a node in a cytoscape map: its compound parent.
  function boxOf(node) {
    return node.parent();
  }

  // Shared by both renderers. `n`: { fullLabel, kind, rawKind, detail, focus }; `extra`: what the
  // renderer knows about its surroundings ({ inLabel, members, connections }).
  function showNodeDetails(n, extra) {
    var kind = KIND_NAMES[n.kind] || n.rawKind || 'Node';
    var parts = [el('h3', 'map-details-title', n.fullLabel), el('p', 'map-details-kind', kind)];
    if (n.focus) parts[1].textContent = kind + ' (the workload this page is about)';
    var pairs = pairsOf(n.detail);
    if (extra.inLabel && !('Namespace' in n.detail)) pairs.unshift(['In', extra.inLabel]);
    if (extra.members) pairs.push(['Members', String(extra.members)]);
    pairs.push(['Connections', extra.connections + ' shown']);
    parts.push(detailList(pairs));
    showDetails(parts);
  }

  function connectionPairs(c, from, to) {
    return [
      ['From', from],
      ['To', to],
      ['Status', c.rawStatus || 'unknown'],
    ].concat(pairsOf(c.detail));
  }

  function connectionTitle(c) {
    return (c.status === 'unresolved' || c.status === 'would-break' ? WARN : '') + (c.fullLabel || 'connection');
  }

  // `conns`: [{ fullLabel, status, rawStatus, detail, from, to }], one or more connections
  // between the same two ends (a large map draws them as one line per direction and status).
  function showConnectionDetails(conns) {
    var first = conns[0];
    if (conns.length === 1) {
      var status = STATUS_NAMES[first.status] || first.rawStatus || 'unknown';
      showDetails([
        el('h3', 'map-details-title', connectionTitle(first)),
        el('p', 'map-details-kind', 'Connection, ' + status),
        detailList(connectionPairs(first, first.from, first.to)),
      ]);
      return;
    }
    var parts = [
      el('h3', 'map-details-title', conns.length + ' connections'),
      el('p', 'map-details-kind', 'Between ' + first.from + ' and ' + first.to),
    ];
    conns.forEach(function (c) {
      var status = STATUS_NAMES[c.status] || c.rawStatus || 'unknown';
      parts.push(el('h4', 'map-details-conn', connectionTitle(c) + ' \u2014 ' + status));
      parts.push(detailList(connectionPairs(c, c.from, c.to)));
    });
    showDetails(parts);
  }

  function showNode(cy, node) {
    var d = node.data();
    var box = boxOf(node);
    var members = node.isParent() ? node.descendants() : cy.collection();
    showNodeDetails(
      { fullLabel: d.fullLabel, kind: d.kind, rawKind: d.rawKind, detail: d.detail, focus: node.hasClass('focus') },
      {
        inLabel: box.nonempty() ? box.data('fullLabel') : null,
        members: members.length,
        connections: node.union(members).connectedEdges().length,
      }
    );
    announce('node', d.id);
  }

  function showEdge(edge) {
    var d = edge.data();
    showConnectionDetails([
      {
        fullLabel: d.fullLabel,
        status: d.status,
        rawStatus: d.rawStatus,
        detail: d.detail,
        from: edge.source().data('fullLabel'),
        to: edge.target().data('fullLabel'),
      },
    ]);
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
      var members = ele.union(ele.descendants());
      var edges = members.connectedEdges();
      keep = members.union(edges).union(edges.connectedNodes());
    } else {
      keep = ele.union(ele.connectedNodes());
    }
    return keep.union(keep.ancestors());
  }

  // Small maps fade everything else; large ones mark the neighbourhood (see the style).
  function highlight(cy, ele) {
    clearHighlight(cy);
    var keep = neighbourhood(cy, ele);
    cy.batch(function () {
      if (cy.elements().length > 3000) {
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
  // Rendering. A view is one renderer behind the interface render(), the control API and the
  // benchmark use:
  //   kind                 'cytoscape' (up to GROUPED_ABOVE_NODES, or fcose forced) | 'canvas'
  //   show(els, same, large) -> { relayout, builtAt, layoutMs }; `same`: the nodes are those
  //                        drawn now (keep positions and viewport)
  //   nextFrame(cb)        cb once the next frame has been drawn
  //   fit(), zoomBy(factor), destroy()
  //   nodesInView(kind), connectionsInView()  positions in the map's pixels, for tests

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

  function applyStyle(cy, large, edgeCount) {
    var all = edgeCount <= ALL_LABELS_UP_TO_EDGES;
    var key = [large, all].join('/');
    if (state.styleKey === key) return;
    state.styleKey = key;
    cy.style(stylesheet(large, all));
    // Drawing edges while panning a big map is what makes it stutter; hide them mid-gesture.
    cy.renderer().hideEdgesOnViewport = large;
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

  function cytoscapeView(container) {
    if (typeof window.cytoscape !== 'function') {
      throw new MapError('The map could not be drawn: its script (cytoscape) did not load.');
    }
    if (!cytoscape('layout', 'fcose')) {
      if (typeof window.cytoscapeFcose !== 'function') {
        throw new MapError('The map could not be drawn: its layout script (fcose) did not load.');
      }
      cytoscape.use(window.cytoscapeFcose);
    }
    var cy = (state.cy = createCy(container));
    function rendered(p) {
      return p.x >= 0 && p.y >= 0 && p.x <= cy.width() && p.y <= cy.height();
    }
    return {
      kind: 'cytoscape',
      show: function (els, same, large) {
        applyStyle(cy, large, els.edges.length);
        if (same) {
          updateInPlace(cy, els);
          return { relayout: false, builtAt: performance.now(), layoutMs: 0 };
        }
        clearHighlight(cy);
        cy.elements().remove();
        cy.add(els.nodes);
        cy.add(els.edges);
        var built = performance.now();
        cy.layout(fcoseOptions(els.nodes.length)).run();
        stretchToContainer(cy);
        return { relayout: true, builtAt: built, layoutMs: performance.now() - built };
      },
      nextFrame: function (cb) {
        cy.one('render', function () {
          cb();
        });
      },
      fit: function () {
        cy.fit(undefined, 24);
      },
      zoomBy: function (f) {
        cy.zoom({ level: cy.zoom() * f, renderedPosition: { x: cy.width() / 2, y: cy.height() / 2 } });
      },
      nodesInView: function (kind) {
        return cy
          .nodes(kind ? '.kind-' + kind : undefined)
          .map(function (n) {
            var p = n.renderedPosition();
            return { id: n.id(), x: p.x, y: p.y, focus: n.hasClass('focus') };
          })
          .filter(rendered);
      },
      connectionsInView: function () {
        return cy
          .edges()
          .map(function (e) {
            var p = e.renderedMidpoint();
            return { ids: [e.id()], label: e.data('label'), status: e.data('status'), x: p.x, y: p.y };
          })
          .filter(rendered);
      },
      destroy: function () {
        cy.destroy();
      },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Large maps: a plain 2D canvas.
  //
  // Cytoscape needed 2.2-2.7 s on a software canvas just to style and draw 2,000 nodes and 7,000
  // edges, even with an almost empty stylesheet (BENCHMARKS.md). Above GROUPED_ABOVE_NODES the map
  // is arranged by groupedLayout, nothing is dragged and nothing animates, so all a renderer has
  // to do is draw fixed shapes, pan, zoom and answer clicks; this one does only that:
  // - one path per line style and one per node kind, stroked and filled once per frame (a few
  //   dozen canvas calls instead of several per element); what is outside the view is skipped;
  // - connections with the same two ends, direction and status are one drawn line, labelled with
  //   all their ports; lines between the same two nodes are drawn side by side, and a click on
  //   any of them lists every connection between the two (ports, status, flows);
  // - level of detail: labels where they are readable (the font sizes of the cytoscape sheet),
  //   arrows where they are a few pixels long, and the clicked neighbourhood always;
  // - clicks through a uniform grid over the model: nodes first, then namespace titles, then the
  //   nearest line within a few pixels.
  // Styles come from NODE_STYLES / EDGE_STYLES, like cytoscape's, so the legend holds for both.

  var LINE_GAP = 7; // model units between lines joining the same two nodes
  var HIT_PX = 6; // click tolerance, screen pixels
  var GRID = 240; // hit-test cell, model units
  var NODE_LABEL_PX = 11; // at zoom 1; drawn once >= NODE_LABEL_MIN_PX on screen
  var NODE_LABEL_MIN_PX = 6;
  var EDGE_LABEL_PX = 10;
  var EDGE_LABEL_MIN_PX = 9;
  var TITLE_MIN_PX = 5; // namespace names scale with their box, within these sizes
  var TITLE_MAX_PX = 22;
  var ARROW_LEN = 10; // model units, times the style's arrow scale; drawn once >= ARROW_MIN_PX
  var ARROW_MIN_PX = 4;
  var MIN_LINE_SCALE = 0.55; // zoomed out, lines stay at least this fraction of their width
  var MIN_NODE_SCALE = 0.1; // ... and nodes at least this fraction of their size
  var MAX_ZOOM = 4;
  var FIT_PAD = 24;
  var LINE_ORDER = ['no-rule', 'other', 'excluded', 'allowed', 'unresolved', 'would-break']; // later on top
  var STATUS_RANK = { 'would-break': 0, allowed: 1, excluded: 2, unresolved: 3, 'no-rule': 4, other: 5 };
  var NODE_ORDER = ['namespace', 'other', 'node', 'external', 'service', 'workload', 'unresolved'];
  var SHAPES = {
    hexagon: [[-1, 0], [-0.5, -1], [0.5, -1], [1, 0], [0.5, 1], [-0.5, 1]],
    octagon: [[-0.41, -1], [0.41, -1], [1, -0.41], [1, 0.41], [0.41, 1], [-0.41, 1], [-1, 0.41], [-1, -0.41]],
    triangle: [[0, -1], [1, 1], [-1, 1]],
  };

  // Elements (after groupedLayout) -> what the canvas draws and hit-tests.
  function buildModel(els) {
    var byId = new Map();
    var nodes = [];
    var boxes = [];
    els.nodes.forEach(function (n) {
      var d = n.data;
      var cls = ' ' + n.classes + ' ';
      var item = {
        id: d.id,
        kind: d.kind,
        rawKind: d.rawKind,
        label: d.label,
        fullLabel: d.fullLabel,
        detail: d.detail,
        focus: cls.indexOf(' focus ') >= 0,
        x: n.position.x,
        y: n.position.y,
        pairs: [],
        edgeCount: 0,
        box: null,
      };
      if (cls.indexOf(' ns-box ') >= 0) {
        item.isBox = true;
        item.w = d.w;
        item.h = d.h;
        item.fontSize = d.fontSize;
        item.members = [];
        boxes.push(item);
      } else {
        var st = item.focus ? FOCUS_STYLE : NODE_STYLES[d.kind] || NODE_STYLES.other;
        item.w = st.w;
        item.h = st.h;
        item.ns = d.ns;
        nodes.push(item);
      }
      byId.set(d.id, item);
    });
    nodes.forEach(function (n) {
      var box = n.ns ? byId.get(n.ns) : null;
      if (box && box.isBox) {
        n.box = box;
        box.members.push(n);
      }
    });

    var lines = [];
    var lineByKey = new Map();
    var pairs = new Map();
    els.edges.forEach(function (e) {
      var d = e.data;
      var s = byId.get(d.source);
      var t = byId.get(d.target);
      var key = d.source + '\u0000' + d.target + '\u0000' + d.status;
      var line = lineByKey.get(key);
      if (!line) {
        var forward = d.source <= d.target;
        var pk = forward ? d.source + '\u0000' + d.target : d.target + '\u0000' + d.source;
        var pair = pairs.get(pk);
        if (!pair) {
          pair = { a: forward ? s : t, b: forward ? t : s, lines: [] };
          pairs.set(pk, pair);
          s.pairs.push(pair);
          if (t !== s) t.pairs.push(pair);
        }
        line = { source: s, target: t, status: d.status, forward: forward, pair: pair, edges: [] };
        lineByKey.set(key, line);
        pair.lines.push(line);
        lines.push(line);
      }
      line.edges.push(d);
      s.edgeCount++;
      if (t !== s) t.edgeCount++;
    });

    // Geometry: centre to centre, side by side when two nodes share several lines.
    pairs.forEach(function (pair) {
      pair.lines.sort(function (p, q) {
        if (p.forward !== q.forward) return p.forward ? -1 : 1;
        return STATUS_RANK[p.status] - STATUS_RANK[q.status];
      });
      var dx = pair.b.x - pair.a.x;
      var dy = pair.b.y - pair.a.y;
      var len = Math.sqrt(dx * dx + dy * dy);
      var k = pair.lines.length;
      pair.lines.forEach(function (line, i) {
        var s = line.source;
        var t = line.target;
        var seen = new Set();
        line.edges.forEach(function (d) {
          seen.add(d.fullLabel || 'connection');
        });
        line.label = shortLabel((line.status === 'unresolved' || line.status === 'would-break' ? WARN : '') + Array.from(seen).join(', '), 40);
        if (len === 0) {
          // A node talking to itself: a small loop above its right corner.
          line.loop = { x: s.x + s.w / 2, y: s.y - s.h / 2, r: 10 + 4 * i };
          line.x1 = line.x2 = line.loop.x;
          line.y1 = line.y2 = line.loop.y - line.loop.r;
        } else {
          var off = (i - (k - 1) / 2) * LINE_GAP;
          var nx = (-dy / len) * off;
          var ny = (dx / len) * off;
          line.x1 = s.x + nx;
          line.y1 = s.y + ny;
          line.x2 = t.x + nx;
          line.y2 = t.y + ny;
        }
        var r = line.loop ? line.loop.r : 0;
        line.minX = Math.min(line.x1, line.x2) - r;
        line.maxX = Math.max(line.x1, line.x2) + r;
        line.minY = Math.min(line.y1, line.y2) - r;
        line.maxY = Math.max(line.y1, line.y2) + r;
      });
    });

    var bounds = { x1: Infinity, y1: Infinity, x2: -Infinity, y2: -Infinity };
    function grow(x1, y1, x2, y2) {
      bounds.x1 = Math.min(bounds.x1, x1);
      bounds.y1 = Math.min(bounds.y1, y1);
      bounds.x2 = Math.max(bounds.x2, x2);
      bounds.y2 = Math.max(bounds.y2, y2);
    }
    nodes.forEach(function (n) {
      grow(n.x - n.w / 2, n.y - n.h / 2, n.x + n.w / 2, n.y + n.h / 2 + NODE_LABEL_PX * 1.5);
    });
    boxes.forEach(function (b) {
      grow(b.x - b.w / 2, b.y - b.h / 2 - b.fontSize * 1.4, b.x + b.w / 2, b.y + b.h / 2);
    });

    // Hit-test grid. Nodes go in the cell of their centre; lines in every cell of a sample taken
    // every half cell, so any point of a line is within one cell of a cell that lists it.
    var grid = new Map();
    function add(cx, cy, item) {
      var key = cx * 1048576 + cy;
      var list = grid.get(key);
      if (!list) grid.set(key, (list = []));
      if (list[list.length - 1] !== item) list.push(item);
    }
    nodes.forEach(function (n) {
      add(Math.floor(n.x / GRID), Math.floor(n.y / GRID), n);
    });
    lines.forEach(function (line) {
      var dx = line.x2 - line.x1;
      var dy = line.y2 - line.y1;
      var steps = Math.max(1, Math.ceil(Math.sqrt(dx * dx + dy * dy) / (GRID / 2)));
      for (var i = 0; i <= steps; i++) {
        add(Math.floor((line.x1 + (dx * i) / steps) / GRID), Math.floor((line.y1 + (dy * i) / steps) / GRID), line);
      }
    });

    var byStatus = {};
    LINE_ORDER.forEach(function (s) {
      byStatus[s] = [];
    });
    lines.forEach(function (line) {
      (byStatus[line.status] || byStatus.other).push(line);
    });
    var byKind = {};
    NODE_ORDER.forEach(function (k) {
      byKind[k] = [];
    });
    nodes.forEach(function (n) {
      if (!n.focus) (byKind[n.kind] || byKind.other).push(n);
    });

    return {
      nodes: nodes,
      boxes: boxes,
      lines: lines,
      byStatus: byStatus,
      byKind: byKind,
      focus: nodes.filter(function (n) {
        return n.focus;
      }),
      bounds: bounds,
      grid: grid,
    };
  }

  function distToSegment(px, py, line) {
    if (line.loop) {
      var c = line.loop;
      return Math.abs(Math.sqrt((px - c.x) * (px - c.x) + (py - c.y) * (py - c.y)) - c.r);
    }
    var dx = line.x2 - line.x1;
    var dy = line.y2 - line.y1;
    var l2 = dx * dx + dy * dy;
    var t = l2 > 0 ? ((px - line.x1) * dx + (py - line.y1) * dy) / l2 : 0;
    t = Math.max(0, Math.min(1, t));
    var x = line.x1 + t * dx - px;
    var y = line.y1 + t * dy - py;
    return Math.sqrt(x * x + y * y);
  }

  function lengthOf(line) {
    if (line.loop) return 2 * Math.PI * line.loop.r;
    return Math.sqrt((line.x2 - line.x1) * (line.x2 - line.x1) + (line.y2 - line.y1) * (line.y2 - line.y1));
  }

  function shapePath(ctx, shape, x, y, w, h) {
    var pts = SHAPES[shape];
    if (pts) {
      ctx.moveTo(x + (pts[0][0] * w) / 2, y + (pts[0][1] * h) / 2);
      for (var i = 1; i < pts.length; i++) ctx.lineTo(x + (pts[i][0] * w) / 2, y + (pts[i][1] * h) / 2);
      ctx.closePath();
    } else if (shape === 'ellipse') {
      ctx.moveTo(x + w / 2, y);
      ctx.ellipse(x, y, w / 2, h / 2, 0, 0, 2 * Math.PI);
      ctx.closePath();
    } else if (shape === 'round-rectangle') {
      roundRect(ctx, x - w / 2, y - h / 2, w, h, Math.min(w, h) / 4);
    } else {
      ctx.rect(x - w / 2, y - h / 2, w, h);
    }
  }

  function roundRect(ctx, x, y, w, h, r) {
    r = Math.min(r, w / 2, h / 2);
    ctx.moveTo(x + r, y);
    ctx.arcTo(x + w, y, x + w, y + h, r);
    ctx.arcTo(x + w, y + h, x, y + h, r);
    ctx.arcTo(x, y + h, x, y, r);
    ctx.arcTo(x, y, x + w, y, r);
    ctx.closePath();
  }

  function canvasView(container) {
    container.textContent = '';
    container.classList.remove('map-message');
    var canvas = document.createElement('canvas');
    canvas.className = 'map-canvas';
    canvas.tabIndex = 0;
    canvas.setAttribute('role', 'img');
    container.appendChild(canvas);
    var ctx = canvas.getContext('2d', { alpha: false });

    var model = null;
    var view = { z: 1, x: 0, y: 0, minZ: 0.01, fitted: false };
    var size = { w: 0, h: 0, dpr: 1 };
    var selection = null; // { item, nodes: Set, lines: Set }
    var queued = false;
    var callbacks = [];
    var dead = false;

    function measure() {
      var w = container.clientWidth;
      var h = container.clientHeight;
      var dpr = window.devicePixelRatio || 1;
      if (w === size.w && h === size.h && dpr === size.dpr) return false;
      // Keep the centre where it was.
      view.x += (w - size.w) / 2;
      view.y += (h - size.h) / 2;
      size = { w: w, h: h, dpr: dpr };
      canvas.width = Math.max(1, Math.round(w * dpr));
      canvas.height = Math.max(1, Math.round(h * dpr));
      canvas.style.width = w + 'px';
      canvas.style.height = h + 'px';
      return true;
    }

    function fit() {
      measure();
      if (!model || !(size.w > 0 && size.h > 0)) return;
      var b = model.bounds;
      var bw = Math.max(1, b.x2 - b.x1);
      var bh = Math.max(1, b.y2 - b.y1);
      var z = Math.min(MAX_ZOOM, (size.w - 2 * FIT_PAD) / bw, (size.h - 2 * FIT_PAD) / bh);
      if (!(z > 0)) z = 0.01;
      view.z = z;
      view.minZ = Math.min(z / 2, 0.5);
      view.x = size.w / 2 - ((b.x1 + b.x2) / 2) * z;
      view.y = size.h / 2 - ((b.y1 + b.y2) / 2) * z;
      view.fitted = true;
      requestDraw();
    }

    function zoomAt(factor, sx, sy) {
      var z = Math.max(view.minZ, Math.min(MAX_ZOOM, view.z * factor));
      view.x = sx - ((sx - view.x) * z) / view.z;
      view.y = sy - ((sy - view.y) * z) / view.z;
      view.z = z;
      requestDraw();
    }

    function inside(p) {
      return p.x >= 0 && p.y >= 0 && p.x <= size.w && p.y <= size.h;
    }

    function requestDraw() {
      if (queued || dead) return;
      queued = true;
      requestAnimationFrame(function () {
        queued = false;
        if (dead) return;
        draw();
        var cbs = callbacks;
        callbacks = [];
        cbs.forEach(function (cb) {
          cb();
        });
      });
    }

    // ---- drawing

    function strokeLines(list, style, scale, z, ox, oy, v) {
      if (!list.length) return;
      ctx.beginPath();
      var any = false;
      for (var i = 0; i < list.length; i++) {
        var l = list[i];
        if (v && (l.maxX < v.x1 || l.minX > v.x2 || l.maxY < v.y1 || l.minY > v.y2)) continue;
        any = true;
        if (l.loop) {
          ctx.moveTo((l.loop.x + l.loop.r) * z + ox, l.loop.y * z + oy);
          ctx.arc(l.loop.x * z + ox, l.loop.y * z + oy, l.loop.r * z, 0, 2 * Math.PI);
        } else {
          ctx.moveTo(l.x1 * z + ox, l.y1 * z + oy);
          ctx.lineTo(l.x2 * z + ox, l.y2 * z + oy);
        }
      }
      if (!any) return;
      ctx.lineWidth = style.width * scale;
      ctx.lineCap = style.cap;
      ctx.setLineDash(
        style.dash
          ? style.dash.map(function (d) {
              return d * scale;
            })
          : []
      );
      ctx.strokeStyle = style.color;
      ctx.stroke();
    }

    // Arrows at the middle of each line, pointing at its target.
    function arrows(list, style, len, z, ox, oy, v) {
      ctx.beginPath();
      var any = false;
      for (var i = 0; i < list.length; i++) {
        var l = list[i];
        if (l.loop) continue;
        var mx = (l.x1 + l.x2) / 2;
        var my = (l.y1 + l.y2) / 2;
        if (v && (mx < v.x1 || mx > v.x2 || my < v.y1 || my > v.y2)) continue;
        var dx = l.x2 - l.x1;
        var dy = l.y2 - l.y1;
        var d = Math.sqrt(dx * dx + dy * dy);
        if (!(d > 0)) continue;
        var ux = dx / d;
        var uy = dy / d;
        var cx = mx * z + ox;
        var cy = my * z + oy;
        ctx.moveTo(cx + (ux * len) / 2, cy + (uy * len) / 2);
        ctx.lineTo(cx - (ux * len) / 2 - uy * len * 0.45, cy - (uy * len) / 2 + ux * len * 0.45);
        ctx.lineTo(cx - (ux * len) / 2 + uy * len * 0.45, cy - (uy * len) / 2 - ux * len * 0.45);
        ctx.closePath();
        any = true;
      }
      if (!any) return;
      ctx.setLineDash([]);
      if (style.hollow) {
        ctx.fillStyle = '#ffffff';
        ctx.fill();
        ctx.lineWidth = 1;
        ctx.strokeStyle = style.color;
        ctx.stroke();
      } else {
        ctx.fillStyle = style.color;
        ctx.fill();
      }
    }

    function fillNodes(list, st, nz, z, ox, oy, v, border) {
      ctx.beginPath();
      var any = false;
      for (var i = 0; i < list.length; i++) {
        var n = list[i];
        if (v && (n.x < v.x1 || n.x > v.x2 || n.y < v.y1 || n.y > v.y2)) continue;
        shapePath(ctx, st.shape, n.x * z + ox, n.y * z + oy, n.w * nz, n.h * nz);
        any = true;
      }
      if (!any) return;
      ctx.fillStyle = st.fill;
      ctx.fill();
      ctx.setLineDash(st.dashed ? [4, 3] : []);
      ctx.lineWidth = border;
      ctx.strokeStyle = st.stroke;
      ctx.stroke();
    }

    // Labels that would overlap one already drawn are left out (the details panel has them all).
    function placer() {
      var rects = [];
      return function (x1, y1, x2, y2) {
        for (var i = 0; i < rects.length; i++) {
          var r = rects[i];
          if (x1 < r[2] && x2 > r[0] && y1 < r[3] && y2 > r[1]) return false;
        }
        rects.push([x1, y1, x2, y2]);
        return true;
      };
    }

    function text(s, x, y, px, color, bold) {
      ctx.font = (bold ? 'bold ' : '') + px.toFixed(1) + 'px ' + FONT;
      ctx.fillStyle = color;
      ctx.fillText(s, x, y);
    }

    function nodeLabels(list, px, z, ox, oy, v, nz, fits, skip) {
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      ctx.font = px.toFixed(1) + 'px ' + FONT;
      var color = null;
      for (var i = 0; i < list.length; i++) {
        var n = list[i];
        if (v && (n.x < v.x1 || n.x > v.x2 || n.y < v.y1 || n.y > v.y2)) continue;
        if (skip && skip.has(n)) continue;
        var x = n.x * z + ox;
        var y = n.y * z + oy + (n.h * nz) / 2 + 3 * Math.max(z, 0.3);
        if (fits) {
          var hw = ctx.measureText(n.label).width / 2;
          if (!fits(x - hw, y, x + hw, y + px * 1.2)) continue;
        }
        var c = (NODE_STYLES[n.kind] || NODE_STYLES.other).text || '#1f2328';
        if (c !== color) ctx.fillStyle = color = c;
        ctx.fillText(n.label, x, y);
      }
    }

    function lineLabels(list, px, z, ox, oy, v, fits, skip) {
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.font = px.toFixed(1) + 'px ' + FONT;
      for (var i = 0; i < list.length; i++) {
        var l = list[i];
        if (skip && skip.has(l)) continue;
        var mx = (l.x1 + l.x2) / 2;
        var my = (l.y1 + l.y2) / 2 - (l.loop ? l.loop.r : 0);
        if (v && (mx < v.x1 || mx > v.x2 || my < v.y1 || my > v.y2)) continue;
        var x = mx * z + ox;
        var y = my * z + oy;
        var w = ctx.measureText(l.label).width;
        if (!fits(x - w / 2 - 2, y - px * 0.65, x + w / 2 + 2, y + px * 0.65)) continue;
        var alpha = ctx.globalAlpha;
        ctx.globalAlpha = 0.85 * alpha;
        ctx.fillStyle = '#ffffff';
        ctx.fillRect(x - w / 2 - 2, y - px * 0.65, w + 4, px * 1.3);
        ctx.globalAlpha = alpha;
        ctx.fillStyle = (EDGE_STYLES[l.status] || EDGE_STYLES.other).text;
        ctx.fillText(l.label, x, y);
      }
    }

    // A namespace name's size on screen, or null when it is too small to draw (or to click).
    function titleOf(b) {
      var px = Math.min(b.fontSize * view.z, TITLE_MAX_PX);
      return px >= TITLE_MIN_PX ? { px: px, bottom: (b.y - b.h / 2) * view.z + view.y - 6 * Math.min(view.z, 1) } : null;
    }

    function draw() {
      var W = size.w;
      var H = size.h;
      ctx.setTransform(size.dpr, 0, 0, size.dpr, 0, 0);
      ctx.globalAlpha = 1;
      ctx.fillStyle = '#ffffff';
      ctx.fillRect(0, 0, W, H);
      if (!model || !(W > 0 && H > 0)) return;
      var z = view.z;
      var ox = view.x;
      var oy = view.y;
      var m = 40 / z; // margin: shapes and labels reaching into the view
      var v = { x1: -ox / z - m, y1: -oy / z - m, x2: (W - ox) / z + m, y2: (H - oy) / z + m };
      var scale = Math.max(z, MIN_LINE_SCALE);
      var nz = Math.max(z, MIN_NODE_SCALE);
      var border = Math.max(1, 1.5 * z);
      var sel = selection;

      // Namespace boxes, then their names above them.
      var ns = NODE_STYLES.namespace;
      ctx.beginPath();
      model.boxes.forEach(function (b) {
        if (b.x + b.w / 2 < v.x1 || b.x - b.w / 2 > v.x2 || b.y + b.h / 2 < v.y1 || b.y - b.h / 2 - b.fontSize * 1.4 > v.y2) return;
        roundRect(ctx, (b.x - b.w / 2) * z + ox, (b.y - b.h / 2) * z + oy, b.w * z, b.h * z, 8 * z);
      });
      ctx.fillStyle = ns.fill;
      ctx.fill();
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = ns.stroke;
      ctx.stroke();
      ctx.textAlign = 'center';
      ctx.textBaseline = 'bottom';
      model.boxes.forEach(function (b) {
        var t = titleOf(b);
        var chosen = sel && sel.item === b;
        if (!t && !chosen) return;
        text(b.label, b.x * z + ox, (b.y - b.h / 2) * z + oy - 6 * Math.min(z, 1), t ? t.px : TITLE_MIN_PX, chosen ? SELECTED_COLOR : '#57606a', true);
      });

      // Lines and arrows; faded behind the clicked neighbourhood.
      var arrowPx = ARROW_LEN * z;
      if (sel) ctx.globalAlpha = 0.18;
      LINE_ORDER.forEach(function (s) {
        strokeLines(model.byStatus[s], EDGE_STYLES[s], scale, z, ox, oy, v);
      });
      LINE_ORDER.forEach(function (s) {
        var st = EDGE_STYLES[s];
        if (arrowPx * st.arrow >= ARROW_MIN_PX) arrows(model.byStatus[s], st, arrowPx * st.arrow, z, ox, oy, v);
      });

      // Nodes, one path per kind; the focus on top with its halo.
      ctx.globalAlpha = sel ? 0.25 : 1;
      NODE_ORDER.forEach(function (k) {
        fillNodes(model.byKind[k], NODE_STYLES[k], nz, z, ox, oy, v, Math.max(border, (NODE_STYLES[k].border - 1.5) * z + border));
      });
      if (model.focus.length) {
        ctx.globalAlpha = 0.2 * (sel ? 0.25 : 1);
        ctx.beginPath();
        model.focus.forEach(function (n) {
          var pad = 7 * nz;
          roundRect(ctx, (n.x - n.w / 2) * z + ox - pad, (n.y - n.h / 2) * z + oy - pad, n.w * nz + 2 * pad, n.h * nz + 2 * pad, 8 * nz);
        });
        ctx.fillStyle = FOCUS_STYLE.underlay;
        ctx.fill();
        ctx.globalAlpha = sel ? 0.25 : 1;
        fillNodes(model.focus, {
          shape: 'round-rectangle',
          fill: FOCUS_STYLE.fill,
          stroke: FOCUS_STYLE.stroke,
        }, nz, z, ox, oy, null, Math.max(2, FOCUS_STYLE.border * z));
      }
      ctx.globalAlpha = 1;

      // The clicked neighbourhood, drawn again on top, thicker and with arrows and labels.
      var hlLines = [];
      var hlNodes = [];
      if (sel) {
        sel.lines.forEach(function (l) {
          hlLines.push(l);
        });
        sel.nodes.forEach(function (n) {
          hlNodes.push(n);
        });
        LINE_ORDER.forEach(function (s) {
          var st = EDGE_STYLES[s];
          var list = hlLines.filter(function (l) {
            return (EDGE_STYLES[l.status] ? l.status : 'other') === s;
          });
          strokeLines(list, st, Math.max(scale, 0.8) * 1.75, z, ox, oy, null);
          arrows(list, st, Math.max(arrowPx * st.arrow, 8), z, ox, oy, null);
        });
        NODE_ORDER.forEach(function (k) {
          var list = hlNodes.filter(function (n) {
            return !n.focus && (NODE_STYLES[n.kind] ? n.kind : 'other') === k;
          });
          if (list.length) fillNodes(list, NODE_STYLES[k], nz, z, ox, oy, null, Math.max(2, 3 * z));
        });
        var focusHl = hlNodes.filter(function (n) {
          return n.focus;
        });
        if (focusHl.length) {
          fillNodes(focusHl, { shape: 'round-rectangle', fill: FOCUS_STYLE.fill, stroke: FOCUS_STYLE.stroke }, nz, z, ox, oy, null, Math.max(2, FOCUS_STYLE.border * z));
        }
        if (sel.item && !sel.item.isBox && sel.item.x !== undefined && !sel.item.lines) {
          ctx.beginPath();
          var it = sel.item;
          shapePath(ctx, (NODE_STYLES[it.kind] || NODE_STYLES.other).shape, it.x * z + ox, it.y * z + oy, it.w * nz, it.h * nz);
          ctx.setLineDash([]);
          ctx.lineWidth = Math.max(2.5, 4 * z);
          ctx.strokeStyle = SELECTED_COLOR;
          ctx.stroke();
        }
      }

      // Labels where readable; the focus and the clicked neighbourhood always.
      // Labels of the neighbourhood are drawn below; the others fade with their elements.
      var nodePx = NODE_LABEL_PX * z;
      var edgePx = EDGE_LABEL_PX * z;
      ctx.globalAlpha = sel ? 0.35 : 1;
      if (nodePx >= NODE_LABEL_MIN_PX) {
        NODE_ORDER.forEach(function (k) {
          nodeLabels(model.byKind[k], nodePx, z, ox, oy, v, nz, null, sel && sel.nodes);
        });
      }
      if (edgePx >= EDGE_LABEL_MIN_PX) {
        var fits = placer();
        // Most important first: what is kept when labels collide.
        LINE_ORDER.slice().reverse().forEach(function (s) {
          lineLabels(model.byStatus[s], edgePx, z, ox, oy, v, fits, sel && sel.lines);
        });
      }
      ctx.globalAlpha = 1;
      if (sel) {
        // The clicked node's name first, then its neighbours' and the ports, where they fit.
        var hlFits = placer();
        var named = hlNodes.filter(function (n) {
          return !n.focus;
        });
        named.sort(function (p, q) {
          return (p === sel.item ? 0 : 1) - (q === sel.item ? 0 : 1);
        });
        model.focus.forEach(function (n) {
          var y = n.y * z + oy + (n.h * nz) / 2 + 7 * nz + 2;
          var px = Math.max(13 * z, 11);
          var hw = (n.label.length * px * 0.6) / 2;
          hlFits(n.x * z + ox - hw, y, n.x * z + ox + hw, y + px * 1.2);
        });
        nodeLabels(named, Math.max(nodePx, 10), z, ox, oy, null, nz, hlFits);
        lineLabels(hlLines, Math.max(edgePx, EDGE_LABEL_MIN_PX), z, ox, oy, null, hlFits);
      }
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      model.focus.forEach(function (n) {
        text(n.label, n.x * z + ox, n.y * z + oy + (n.h * nz) / 2 + 7 * nz + 2, Math.max(13 * z, 11), '#1f2328', true);
      });
    }

    // ---- clicks

    function hitTest(sx, sy) {
      if (!model) return null;
      var z = view.z;
      var px = (sx - view.x) / z;
      var py = (sy - view.y) / z;
      var tol = HIT_PX / z;
      var nz = Math.max(z, MIN_NODE_SCALE) / z; // drawn size / model size
      var reach = tol + 30 * nz + GRID / 2;
      var cx1 = Math.floor((px - reach) / GRID);
      var cx2 = Math.floor((px + reach) / GRID);
      var cy1 = Math.floor((py - reach) / GRID);
      var cy2 = Math.floor((py + reach) / GRID);
      var bestNode = null;
      var bestNodeD = Infinity;
      var bestLine = null;
      var bestLineD = Infinity;
      for (var cx = cx1; cx <= cx2; cx++) {
        for (var cy = cy1; cy <= cy2; cy++) {
          var list = model.grid.get(cx * 1048576 + cy);
          if (!list) continue;
          for (var i = 0; i < list.length; i++) {
            var it = list[i];
            if (it.edges) {
              var d = distToSegment(px, py, it);
              var w = ((EDGE_STYLES[it.status] || EDGE_STYLES.other).width * Math.max(z, MIN_LINE_SCALE)) / z / 2;
              // Within a pixel of each other (lines cross on the layout's lattice), the shorter
              // line wins: a long one can be clicked anywhere else along its length.
              if (d <= tol + w && (d < bestLineD - 1 / z || (d < bestLineD + 1 / z && lengthOf(it) < lengthOf(bestLine)))) {
                bestLine = it;
                bestLineD = d;
              }
            } else {
              var dx = Math.abs(px - it.x);
              var dy = Math.abs(py - it.y);
              if (dx <= (it.w * nz) / 2 + tol / 2 && dy <= (it.h * nz) / 2 + tol / 2) {
                var dn = dx * dx + dy * dy;
                if (dn < bestNodeD) {
                  bestNode = it;
                  bestNodeD = dn;
                }
              }
            }
          }
        }
      }
      if (bestNode) return bestNode;
      for (var b = 0; b < model.boxes.length; b++) {
        var box = model.boxes[b];
        var t = titleOf(box);
        if (!t) continue;
        var halfW = box.label.length * t.px * 0.3 + HIT_PX;
        if (Math.abs(sx - (box.x * z + view.x)) <= halfW && sy <= t.bottom + HIT_PX && sy >= t.bottom - t.px * 1.2 - HIT_PX) {
          return box;
        }
      }
      return bestLine ? bestLine.pair : null;
    }

    function neighbourhoodOf(nodes) {
      var keepNodes = new Set(nodes);
      var keepLines = new Set();
      nodes.forEach(function (n) {
        n.pairs.forEach(function (pair) {
          pair.lines.forEach(function (l) {
            keepLines.add(l);
            keepNodes.add(l.source);
            keepNodes.add(l.target);
          });
        });
      });
      return { nodes: keepNodes, lines: keepLines };
    }

    function select(hit) {
      if (!hit) {
        if (selection) {
          selection = null;
          requestDraw();
        }
        return;
      }
      if (hit.lines) {
        // A pair of nodes: every connection between them.
        selection = { item: hit, nodes: new Set([hit.a, hit.b]), lines: new Set(hit.lines) };
        requestDraw();
        var conns = [];
        hit.lines.forEach(function (l) {
          l.edges.forEach(function (d) {
            conns.push({
              fullLabel: d.fullLabel,
              status: d.status,
              rawStatus: d.rawStatus,
              detail: d.detail,
              from: l.source.fullLabel,
              to: l.target.fullLabel,
              id: d.id,
            });
          });
        });
        showConnectionDetails(conns);
        document.body.dispatchEvent(
          new CustomEvent('flowgate:map-select', {
            bubbles: true,
            detail: {
              type: 'edge',
              id: conns[0].id,
              ids: conns.map(function (c) {
                return c.id;
              }),
            },
          })
        );
        return;
      }
      var members = hit.isBox ? hit.members : [hit];
      var keep = neighbourhoodOf(members);
      selection = { item: hit, nodes: keep.nodes, lines: keep.lines };
      requestDraw();
      var connections = 0;
      keep.lines.forEach(function (l) {
        connections += l.edges.length;
      });
      showNodeDetails(hit, {
        inLabel: hit.box ? hit.box.fullLabel : null,
        members: hit.isBox ? hit.members.length : 0,
        connections: connections,
      });
      announce('node', hit.id);
    }

    // ---- input: drag to pan, wheel, pinch or +/- to zoom, click for details

    var pointers = new Map(); // pointerId -> client position
    var drag = null;
    var pinch = null;
    var dragged = false; // suppresses the click that ends a drag or a pinch
    function pinchState() {
      var p = Array.from(pointers.values());
      return {
        d: Math.max(1, Math.hypot(p[0].x - p[1].x, p[0].y - p[1].y)),
        x: (p[0].x + p[1].x) / 2,
        y: (p[0].y + p[1].y) / 2,
      };
    }
    canvas.addEventListener('pointerdown', function (e) {
      if (e.pointerType === 'mouse' && e.button !== 0) return;
      pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
      try {
        canvas.setPointerCapture(e.pointerId);
      } catch (err) {
        // A pointer the browser no longer tracks: no capture, the gesture still works inside.
      }
      if (pointers.size === 1) {
        drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false };
        dragged = false;
      } else if (pointers.size === 2) {
        pinch = pinchState();
        drag = null;
        dragged = true;
      }
    });
    canvas.addEventListener('pointermove', function (e) {
      if (!pointers.has(e.pointerId)) return;
      pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
      if (pinch && pointers.size === 2) {
        var now = pinchState();
        var r = canvas.getBoundingClientRect();
        view.x += now.x - pinch.x;
        view.y += now.y - pinch.y;
        zoomAt(now.d / pinch.d, now.x - r.left, now.y - r.top);
        pinch = now;
        return;
      }
      if (!drag) return;
      var dx = e.clientX - drag.x;
      var dy = e.clientY - drag.y;
      if (!drag.moved && dx * dx + dy * dy < 16) return;
      drag.moved = true;
      canvas.classList.add('map-panning');
      view.x = drag.vx + dx;
      view.y = drag.vy + dy;
      requestDraw();
    });
    function endPointer(e) {
      pointers.delete(e.pointerId);
      if (drag && drag.moved) dragged = true;
      if (pointers.size < 2) pinch = null;
      drag = null;
      canvas.classList.remove('map-panning');
    }
    canvas.addEventListener('pointerup', endPointer);
    canvas.addEventListener('pointercancel', endPointer);
    canvas.addEventListener('click', function (e) {
      if (dragged) {
        dragged = false;
        return;
      }
      var r = canvas.getBoundingClientRect();
      select(hitTest(e.clientX - r.left, e.clientY - r.top));
    });
    canvas.addEventListener(
      'wheel',
      function (e) {
        e.preventDefault();
        var r = canvas.getBoundingClientRect();
        var unit = e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? size.h : 1;
        zoomAt(Math.pow(2, (-e.deltaY * unit) / 500), e.clientX - r.left, e.clientY - r.top);
      },
      { passive: false }
    );
    canvas.addEventListener('keydown', function (e) {
      var step = 60;
      var handled = true;
      if (e.key === '+' || e.key === '=') zoomAt(1.25, size.w / 2, size.h / 2);
      else if (e.key === '-' || e.key === '_') zoomAt(0.8, size.w / 2, size.h / 2);
      else if (e.key === '0') fit();
      else if (e.key === 'ArrowLeft') view.x += step;
      else if (e.key === 'ArrowRight') view.x -= step;
      else if (e.key === 'ArrowUp') view.y += step;
      else if (e.key === 'ArrowDown') view.y -= step;
      else if (e.key === 'Escape') select(null);
      else handled = false;
      if (handled) {
        e.preventDefault();
        requestDraw();
      }
    });

    var resizer = new ResizeObserver(function () {
      if (!measure()) return;
      if (!view.fitted) fit();
      requestDraw();
    });
    resizer.observe(container);

    return {
      kind: 'canvas',
      show: function (els, same) {
        model = buildModel(els);
        var built = performance.now();
        // Statuses may have changed; a stale highlight would mislead.
        selection = null;
        canvas.setAttribute(
          'aria-label',
          'Map of ' + model.nodes.length + ' nodes and ' + els.edges.length +
            ' connections; drag to pan, wheel or +/- to zoom, click for details. The tables list every connection.'
        );
        if (same && view.fitted) requestDraw();
        else fit();
        if (!view.fitted) requestDraw();
        return { relayout: !same, builtAt: built, layoutMs: 0, drawnEdges: model.lines.length };
      },
      nextFrame: function (cb) {
        callbacks.push(cb);
        requestDraw();
      },
      fit: fit,
      zoomBy: function (f) {
        zoomAt(f, size.w / 2, size.h / 2);
      },
      nodesInView: function (kind) {
        if (!model) return [];
        return model.nodes
          .filter(function (n) {
            return !kind || n.kind === kind;
          })
          .map(function (n) {
            return { id: n.id, x: n.x * view.z + view.x, y: n.y * view.z + view.y, focus: n.focus };
          })
          .filter(inside);
      },
      connectionsInView: function () {
        if (!model) return [];
        return model.lines.map(function (l) {
          return {
            ids: l.edges.map(function (d) {
              return d.id;
            }),
            label: l.label,
            status: l.status,
            x: ((l.x1 + l.x2) / 2) * view.z + view.x,
            y: ((l.y1 + l.y2) / 2) * view.z + view.y,
          };
        }).filter(inside);
      },
      destroy: function () {
        dead = true;
        resizer.disconnect();
        callbacks = [];
      },
    };
  }

  function destroyView() {
    if (state.view) state.view.destroy();
    state.view = null;
    state.cy = null;
    state.mode = null;
    state.shapeKey = null;
    state.styleKey = null;
    state.highlighted = null;
  }

  function firstFrame(view) {
    return new Promise(function (resolve) {
      var done = false;
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
    var large = els.nodes.length > GROUPED_ABOVE_NODES;
    var mode = !forced && large ? 'grouped' : 'fcose';
    var kind = mode === 'grouped' ? 'canvas' : 'cytoscape';
    var shapeKey = mode + '\u0002' + els.shapeKey;
    var layoutMs = 0;
    if (large) {
      // The large styles have no ellipsis wrapping: cut labels to a grid cell.
      els.nodes.forEach(function (n) {
        n.data.label = shortLabel(n.data.label, LARGE_LABEL_MAX_CHARS);
      });
    }
    if (mode === 'grouped') {
      var tl = performance.now();
      var box = container.getBoundingClientRect();
      groupedLayout(els, box.width > 0 && box.height > 0 ? box.width / box.height : 2);
      layoutMs = performance.now() - tl;
    }

    if (!state.view || state.view.kind !== kind) {
      destroyView();
      state.view = kind === 'canvas' ? canvasView(container) : cytoscapeView(container);
    }
    var view = state.view;
    var shown = view.show(els, state.shapeKey === shapeKey, large);
    info.buildMs = shown.builtAt - t0 - layoutMs;
    info.layoutMs = layoutMs + shown.layoutMs;
    info.relayout = shown.relayout;
    if (shown.drawnEdges !== undefined) info.drawnEdges = shown.drawnEdges;
    state.shapeKey = shapeKey;
    state.mode = mode;
    info.renderer = kind;
    info.layout = mode === 'grouped' ? 'grouped' : large ? 'fcose-draft' : 'fcose';
    var tp = performance.now();
    return firstFrame(view).then(function () {
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
    // The page (and each review partial swapped in after a decision) carries its graph, from the
    // same review as its tables: drawn once as it is, without asking the server again.
    var embedded = document.getElementById('map-graph');
    var p;
    if (embedded && !embedded.hasAttribute('data-drawn')) {
      embedded.setAttribute('data-drawn', '');
      p = Promise.resolve({
        ok: true,
        json: function () {
          return Promise.resolve(JSON.parse(embedded.textContent));
        },
      });
    } else p = url
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
    if (state.view) state.view.fit();
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
    function withView(name) {
      return function (a) {
        return state.view ? state.view[name](a) : name === 'nextFrame' ? a() : [];
      };
    }
    window.flowgateMapControl = {
      refresh: refresh,
      fit: fit,
      // cytoscape, or null when the canvas draws the map
      cy: function () {
        return state.cy;
      },
      renderer: function () {
        return state.view ? state.view.kind : null;
      },
      zoomBy: withView('zoomBy'),
      nextFrame: withView('nextFrame'),
      nodesInView: withView('nodesInView'),
      connectionsInView: withView('connectionsInView'),
    };

    refresh();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
