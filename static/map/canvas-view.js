// The canvas renderer (large maps; see canvas-model.js for why). It follows the view interface
// described at the top of main.js.

import { NODE_STYLES, EDGE_STYLES, FOCUS_STYLE, SELECTED_COLOR, FONT } from './styles.js';
import { showNodeDetails, showConnectionDetails, announce } from './details.js';
import {
  HIT_PX, GRID, NODE_LABEL_PX, NODE_LABEL_MIN_PX, EDGE_LABEL_PX, EDGE_LABEL_MIN_PX, TITLE_MIN_PX,
  TITLE_MAX_PX, ARROW_LEN, ARROW_MIN_PX, MIN_LINE_SCALE, MIN_NODE_SCALE, MAX_ZOOM, FIT_PAD, LINE_ORDER,
  NODE_ORDER, buildModel, distToSegment, lengthOf, shapePath, roundRect,
} from './canvas-model.js';

export function canvasView(container, hooks) {
  container.textContent = '';
  container.classList.remove('map-message');
  var canvas = document.createElement('canvas');
  canvas.className = 'map-canvas';
  // #map takes the keyboard and carries the description (main.js); the canvas can still be
  // focused by a click or a script, and its keys reach #map's handler as they bubble.
  canvas.tabIndex = -1;
  canvas.setAttribute('aria-hidden', 'true');
  container.appendChild(canvas);
  var ctx = canvas.getContext('2d', { alpha: false });

  var model = null;
  var view = { z: 1, x: 0, y: 0, minZ: 0.01, fitted: false, moved: false };
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
    if (!model || !(size.w > 0 && size.h > 0)) {
      view.fitted = false;
      return;
    }
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
    view.moved = false;
    requestDraw();
  }

  function zoomAt(factor, sx, sy) {
    var z = Math.max(view.minZ, Math.min(MAX_ZOOM, view.z * factor));
    view.x = sx - ((sx - view.x) * z) / view.z;
    view.y = sy - ((sy - view.y) * z) / view.z;
    view.z = z;
    view.moved = true;
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

  // `hit`: a node, a namespace box or a pair of nodes (every line between them), or null.
  function selectItem(hit, opts) {
    opts = opts || {};
    if (!hit) {
      if (selection) {
        selection = null;
        requestDraw();
      }
      return null;
    }
    if (hit.lines) {
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
            rows: d.rows,
            from: l.source.fullLabel,
            to: l.target.fullLabel,
            id: d.id,
          });
        });
      });
      var ids = conns.map(function (c) {
        return c.id;
      });
      var ref = { type: 'edge', id: opts.edgeId && ids.indexOf(opts.edgeId) >= 0 ? opts.edgeId : ids[0] };
      if (opts.details) showConnectionDetails(conns);
      if (!opts.quiet) announce('edge', ref.id, ids);
      return ref;
    }
    var members = hit.isBox ? hit.members : [hit];
    var keep = neighbourhoodOf(members);
    selection = { item: hit, nodes: keep.nodes, lines: keep.lines };
    requestDraw();
    if (opts.details) nodeDetails(hit, keep);
    if (!opts.quiet) announce('node', hit.id);
    return { type: 'node', id: hit.id };
  }

  function nodeDetails(hit, keep) {
    var connections = 0;
    var links = [];
    keep.lines.forEach(function (l) {
      connections += l.edges.length;
      l.edges.forEach(function (d) {
        var out = l.source === hit;
        links.push({ id: d.id, text: d.label + (out ? ' to ' : ' from ') + (out ? l.target : l.source).fullLabel });
      });
    });
    links.sort(function (a, b) {
      return a.text < b.text ? -1 : a.text > b.text ? 1 : 0;
    });
    showNodeDetails(hit, {
      inLabel: hit.box ? hit.box.fullLabel : null,
      members: hit.isBox ? hit.members.length : 0,
      connections: connections,
      links: hit.isBox ? [] : links,
    });
  }

  // A reference ({ type, id }) -> what selectItem takes.
  function itemOf(ref) {
    if (!model || !ref) return null;
    if (ref.type === 'node') {
      var n = model.byId.get(ref.id);
      return n && n.x !== undefined ? n : null;
    }
    for (var i = 0; i < model.lines.length; i++) {
      var l = model.lines[i];
      for (var k = 0; k < l.edges.length; k++) if (l.edges[k].id === ref.id) return l.pair;
    }
    return null;
  }

  var current = null;
  function select(ref, opts) {
    if (!ref) {
      selectItem(null);
      current = null;
      return true;
    }
    var item = itemOf(ref);
    if (!item) return false;
    current = selectItem(item, Object.assign({}, opts, { edgeId: ref.type === 'edge' ? ref.id : null }));
    hooks.selected(current, !!(opts && opts.details));
    return true;
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
    if (!pointers.has(e.pointerId)) {
      // Hovering: the full name of the node under the pointer.
      if (e.pointerType === 'mouse') {
        var r0 = canvas.getBoundingClientRect();
        var over = hitTest(e.clientX - r0.left, e.clientY - r0.top);
        if (over && !over.lines) hooks.hover(over.fullLabel, { x: e.clientX - r0.left, y: e.clientY - r0.top });
        else hooks.hover(null);
      }
      return;
    }
    hooks.hover(null);
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    if (pinch && pointers.size === 2) {
      var now = pinchState();
      var r = canvas.getBoundingClientRect();
      view.moved = true;
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
    view.moved = true;
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
    current = selectItem(hitTest(e.clientX - r.left, e.clientY - r.top), { details: true });
    hooks.selected(current, true);
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
  canvas.addEventListener('pointerleave', function () {
    hooks.hover(null);
  });

  return {
    kind: 'canvas',
    show: function (els, same) {
      model = buildModel(els);
      var built = performance.now();
      // Statuses may have changed; a stale highlight would mislead.
      selection = null;
      current = null;
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
    resize: function () {
      if (measure()) requestDraw();
    },
    visible: function () {
      return container.clientWidth > 0 && container.clientHeight > 0;
    },
    moved: function () {
      return view.moved;
    },
    pendingFit: function () {
      return !view.fitted;
    },
    zoomBy: function (f) {
      zoomAt(f, size.w / 2, size.h / 2);
    },
    zoom: function () {
      return view.z;
    },
    panBy: function (dx, dy) {
      view.x += dx;
      view.y += dy;
      view.moved = true;
      requestDraw();
    },
    select: select,
    selected: function () {
      return current;
    },
    showDetails: function (ref) {
      var item = itemOf(ref);
      if (!item) return;
      if (item.lines) selectItem(item, { details: true, quiet: true, edgeId: ref.id });
      else nodeDetails(item, neighbourhoodOf(item.isBox ? item.members : [item]));
    },
    labelOf: function (ref) {
      var item = itemOf(ref);
      return item && !item.lines ? item.fullLabel : '';
    },
    nodeOrder: function () {
      if (!model) return [];
      return model.nodes
        .map(function (n) {
          return { id: n.id, x: Math.round(n.x / 10), y: n.y };
        })
        .sort(function (a, b) {
          return a.x - b.x || a.y - b.y || (a.id < b.id ? -1 : 1);
        })
        .map(function (n) {
          return n.id;
        });
    },
    positions: function () {
      var out = {};
      if (model) model.nodes.forEach(function (n) {
        out[n.id] = { x: n.x, y: n.y };
      });
      return out;
    },
    cy: function () {
      return null;
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
      callbacks = [];
    },
  };
}

