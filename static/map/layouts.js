// Where the nodes go. Three arrangements, each a pure function of the elements (and, for the
// grouped one, the container's shape), so that the same graph always gives the same picture:
// - lanesLayout: a workload's page (the graph has a focus), at any size and for both renderers;
// - fcose (cytoscape's force-directed layout, vendored) for a namespace map up to
//   GROUPED_ABOVE_NODES nodes, run with a seeded random source (seededLayout);
// - groupedLayout: a namespace map above that, drawn by the canvas view.

import { byName } from './elements.js';

// Up to this many nodes fcose lays a namespace map out ('default' quality: spectral pass + CoSE
// refinement), namespaces are cytoscape compound nodes and cytoscape draws. Above it the map is
// "grouped" and drawn by the canvas view, unless #map has data-map-layout="fcose", which forces
// fcose and cytoscape at every size ('draft' quality above this one).
export const GROUPED_ABOVE_NODES = 300;

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

export function groupedLayout(els, aspect) {
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
// Lanes: a workload's connections read left to right.
//
//   ingress peers | their Services | the focus | Services it calls | egress peers
//
// A force layout put javaapp's twenty peers wherever the simulation settled, different on every
// load; here each peer's column says which way the connection goes, and its row comes from its
// namespace and name. Namespaces are horizontal bands across the columns (each band as tall as
// its fullest column), so their boxes, cytoscape's compound nodes or the canvas's ns-box, never
// overlap; the focus's namespace comes first, then the others by name, then one band of the
// peers outside any namespace (hosts, external, unresolved addresses). Within a band and column,
// members are sorted by kind and name and centred on the band, which keeps lines short.
// Columns are as wide as their longest label (at the stylesheet's 12px, up to the 220px the
// labels wrap at), so labels do not run into the next column.
var LANE_GAP = 60; // between columns, beyond the widest label
var LANE_ROW = 44; // row pitch: a node and its label under it (a wide page's map is short: rows bound its zoom)
var BAND_GAP = 48; // between namespace bands: the boxes' padding and the title
var LANE_MIN_W = 90;
var LANE_MAX_W = 280;
var CHAR_W = 7.6; // an average character at 12px, with room for the larger font a fit may ask for
var LANE_BOX_PAD = 18;

// Whether the lanes say everything: a workload's map, where every connection has the focus, or a
// Service next to it, at one end. (A namespace map has no focus; a graph with a focus but other
// traffic, like the benchmark's synthetic ones, keeps the namespace layouts.)
export function isWorkloadMap(els, focusId) {
  if (!focusId) return false;
  var near = new Set([focusId]);
  els.edges.forEach(function (e) {
    if (e.data.source === focusId) near.add(e.data.target);
    if (e.data.target === focusId) near.add(e.data.source);
  });
  var kind = new Map();
  els.nodes.forEach(function (n) {
    kind.set(n.data.id, n.data.kind);
  });
  function hub(id) {
    return id === focusId || (near.has(id) && kind.get(id) === 'service');
  }
  return els.edges.every(function (e) {
    return hub(e.data.source) || hub(e.data.target);
  });
}

export function lanesLayout(els, focusId, forCanvas) {
  var byId = new Map();
  els.nodes.forEach(function (n) {
    byId.set(n.data.id, n);
  });
  var parents = new Set();
  els.nodes.forEach(function (n) {
    if (n.data.parent !== undefined) parents.add(n.data.parent);
  });
  function topOf(id) {
    var cur = id;
    var guard = 0;
    while (byId.get(cur).data.parent !== undefined && guard++ < 64) cur = byId.get(cur).data.parent;
    return cur;
  }
  var leaves = els.nodes.filter(function (n) {
    return !parents.has(n.data.id);
  });
  var ins = new Map();
  var outs = new Map();
  els.edges.forEach(function (e) {
    var s = e.data.source;
    var t = e.data.target;
    if (s === t) return;
    if (!outs.has(s)) outs.set(s, []);
    if (!ins.has(t)) ins.set(t, []);
    outs.get(s).push(t);
    ins.get(t).push(s);
  });
  function isService(id) {
    return byId.get(id).data.kind === 'service';
  }

  // Columns -2..2 as drawn above; 3 for anything not joined to the focus (none in today's
  // graphs, but a map must not lose a node). The first column given wins: ingress before egress.
  var col = new Map();
  function put(id, c) {
    if (!col.has(id) && !parents.has(id)) col.set(id, c);
  }
  if (focusId && byId.has(focusId)) {
    col.set(focusId, 0);
    (ins.get(focusId) || []).forEach(function (s) {
      if (isService(s)) {
        put(s, -1);
        (ins.get(s) || []).forEach(function (c) {
          put(c, -2);
        });
      } else put(s, -2);
    });
    (outs.get(focusId) || []).forEach(function (t) {
      if (isService(t)) {
        put(t, 1);
        (outs.get(t) || []).forEach(function (b) {
          put(b, 2);
        });
      } else put(t, 2);
    });
  }
  leaves.forEach(function (n) {
    put(n.data.id, 3);
  });
  var used = Array.from(new Set(col.values())).sort(function (a, b) {
    return a - b;
  });

  // Bands: one per namespace (the node's top parent); peers outside any namespace form one per
  // column, without a box.
  var focusTop = focusId && byId.has(focusId) ? topOf(focusId) : null;
  var bands = new Map();
  leaves.forEach(function (n) {
    var top = topOf(n.data.id);
    var outside = top === n.data.id && n.data.id !== focusId;
    var c = col.get(n.data.id);
    var key = outside ? 'outside:' + c : top;
    var band = bands.get(key);
    if (!band) {
      band = {
        key: key,
        box: outside || top === n.data.id ? null : top,
        rank: key === focusTop || n.data.id === focusId ? 0 : outside ? 2 : 1,
        name: outside ? '' : byId.get(top).data.fullLabel,
        cols: new Map(),
      };
      bands.set(key, band);
    }
    if (!band.cols.has(c)) band.cols.set(c, []);
    band.cols.get(c).push(n);
  });
  var order = Array.from(bands.values()).sort(function (a, b) {
    return a.rank - b.rank || byName(a.name, b.name) || byName(a.key, b.key);
  });

  // Column widths from the labels they hold.
  var widths = new Map();
  leaves.forEach(function (n) {
    var c = col.get(n.data.id);
    // (The focus's label is bold and a size larger.)
    var chars = n.data.label.length * (n.data.id === focusId ? 1.15 : 1);
    var w = Math.min(LANE_MAX_W, Math.max(LANE_MIN_W, chars * CHAR_W));
    widths.set(c, Math.max(widths.get(c) || 0, w));
  });
  var xOf = new Map();
  var x = 0;
  used.forEach(function (c, i) {
    var w = widths.get(c);
    if (i > 0) x += w / 2;
    xOf.set(c, x);
    x += w / 2 + LANE_GAP;
  });

  // Each band goes as high as the columns it spans allow (a skyline per column), so a namespace
  // on the left does not push one on the right down: compact, and still no box over another.
  var KIND_RANK = { workload: 0, service: 1, node: 2, external: 3, unresolved: 4, other: 5, namespace: 6 };
  var sky = new Map();
  used.forEach(function (c) {
    sky.set(c, 0);
  });
  var bottom = 0;
  var boxes = [];
  order.forEach(function (band) {
    var rows = 0;
    var lo = Infinity;
    var hi = -Infinity;
    band.cols.forEach(function (list, c) {
      rows = Math.max(rows, list.length);
      lo = Math.min(lo, c);
      hi = Math.max(hi, c);
    });
    var spanned = used.filter(function (c) {
      return c >= lo && c <= hi;
    });
    var y = 0;
    spanned.forEach(function (c) {
      y = Math.max(y, sky.get(c));
    });
    var x1 = Infinity;
    var x2 = -Infinity;
    band.cols.forEach(function (list, c) {
      list.sort(function (a, b) {
        return (
          KIND_RANK[a.data.kind] - KIND_RANK[b.data.kind] ||
          byName(a.data.fullLabel, b.data.fullLabel) ||
          byName(a.data.id, b.data.id)
        );
      });
      var top = y + ((rows - list.length) * LANE_ROW) / 2;
      list.forEach(function (n, i) {
        n.position = { x: xOf.get(c), y: top + i * LANE_ROW + LANE_ROW / 2 };
      });
      x1 = Math.min(x1, xOf.get(c) - widths.get(c) / 2);
      x2 = Math.max(x2, xOf.get(c) + widths.get(c) / 2);
    });
    if (band.box !== null) boxes.push({ id: band.box, x1: x1, x2: x2, y1: y, y2: y + rows * LANE_ROW });
    var next = y + rows * LANE_ROW + (band.box !== null ? BAND_GAP : BAND_GAP / 2);
    spanned.forEach(function (c) {
      sky.set(c, next);
    });
    bottom = Math.max(bottom, next);
  });

  if (!forCanvas) return;
  // The canvas has no compound nodes: a namespace becomes the box drawn behind its band.
  boxes.forEach(function (b) {
    var n = byId.get(b.id);
    n.position = { x: (b.x1 + b.x2) / 2, y: (b.y1 + b.y2) / 2 };
    n.data.w = b.x2 - b.x1 + 2 * LANE_BOX_PAD;
    n.data.h = b.y2 - b.y1 + LANE_BOX_PAD;
    n.data.fontSize = 13;
    n.classes += ' ns-box';
  });
  els.nodes.forEach(function (n) {
    if (n.data.parent !== undefined) {
      n.data.ns = topOf(n.data.id);
      delete n.data.parent;
    }
    if (!n.position) n.position = { x: 0, y: bottom };
  });
}

// ---------------------------------------------------------------------------------------------
// fcose, made repeatable. fcose draws on Math.random (spectral sampling, the placement of pruned
// tree nodes) and layout-base on a global counter that grows with every run, so the same
// namespace came out differently on every load and after every decision. The layout runs
// synchronously (animate: false): for its duration Math.random is a seeded generator and the
// counter starts again at 1. Same elements in the same order -> same positions.

function mulberry32(seed) {
  return function () {
    seed = (seed + 0x6d2b79f5) | 0;
    var t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seededLayout(run) {
  var saved = Math.random;
  Math.random = mulberry32(0x5eed);
  var lb = window.layoutBase;
  if (lb && lb.RandomSeed) lb.RandomSeed.seed = 1;
  try {
    return run();
  } finally {
    Math.random = saved;
  }
}

export function fcoseOptions(nodeCount) {
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
