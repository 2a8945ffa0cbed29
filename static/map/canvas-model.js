import { NODE_STYLES, FOCUS_STYLE } from './styles.js';
import { shortLabel, WARN } from './elements.js';

// The canvas view's model: what it draws and hit-tests, built once per render from the laid-out
// elements. Large maps: a plain 2D canvas.
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

export const LINE_GAP = 7; // model units between lines joining the same two nodes
export const HIT_PX = 6; // click tolerance, screen pixels
export const GRID = 240; // hit-test cell, model units
export const NODE_LABEL_PX = 11; // at zoom 1; drawn once >= NODE_LABEL_MIN_PX on screen
export const NODE_LABEL_MIN_PX = 6;
export const EDGE_LABEL_PX = 10;
export const EDGE_LABEL_MIN_PX = 9;
export const TITLE_MIN_PX = 5; // namespace names scale with their box, within these sizes
export const TITLE_MAX_PX = 22;
export const ARROW_LEN = 10; // model units, times the style's arrow scale; drawn once >= ARROW_MIN_PX
export const ARROW_MIN_PX = 4;
export const MIN_LINE_SCALE = 0.55; // zoomed out, lines stay at least this fraction of their width
export const MIN_NODE_SCALE = 0.1; // ... and nodes at least this fraction of their size
export const MAX_ZOOM = 4;
export const FIT_PAD = 24;
export const LINE_ORDER = ['no-rule', 'other', 'excluded', 'allowed', 'unresolved', 'would-break']; // later on top
export const STATUS_RANK = { 'would-break': 0, allowed: 1, excluded: 2, unresolved: 3, 'no-rule': 4, other: 5 };
export const NODE_ORDER = ['namespace', 'other', 'node', 'external', 'service', 'workload', 'unresolved'];
export const SHAPES = {
  hexagon: [[-1, 0], [-0.5, -1], [0.5, -1], [1, 0], [0.5, 1], [-0.5, 1]],
  octagon: [[-0.41, -1], [0.41, -1], [1, -0.41], [1, 0.41], [0.41, 1], [-0.41, 1], [-1, 0.41], [-1, -0.41]],
  triangle: [[0, -1], [1, 1], [-1, 1]],
};

// Elements (after groupedLayout) -> what the canvas draws and hit-tests.
export function buildModel(els) {
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
    byId: byId,
  };
}

export function distToSegment(px, py, line) {
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

export function lengthOf(line) {
  if (line.loop) return 2 * Math.PI * line.loop.r;
  return Math.sqrt((line.x2 - line.x1) * (line.x2 - line.x1) + (line.y2 - line.y1) * (line.y2 - line.y1));
}

export function shapePath(ctx, shape, x, y, w, h) {
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

export function roundRect(ctx, x, y, w, h, r) {
  r = Math.min(r, w / 2, h / 2);
  ctx.moveTo(x + r, y);
  ctx.arcTo(x + w, y, x + w, y + h, r);
  ctx.arcTo(x + w, y + h, x, y + h, r);
  ctx.arcTo(x, y + h, x, y, r);
  ctx.arcTo(x, y, x + w, y, r);
  ctx.closePath();
}

