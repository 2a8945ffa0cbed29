// The cytoscape renderer: maps up to GROUPED_ABOVE_NODES nodes (and every size when
// data-map-layout="fcose" forces it), namespaces as compound nodes. It follows the view
// interface described at the top of main.js.

import { MIN_LABEL_PX, stylesheet } from './styles.js';
import { fcoseOptions, seededLayout } from './layouts.js';
import { showNodeDetails, showConnectionDetails, announce } from './details.js';
import { MapError } from './elements.js';

// Up to this many edges every edge label is drawn; above it labels appear once zoomed in.
const ALL_LABELS_UP_TO_EDGES = 200;
const FIT_PAD = 24;
// The largest font scale a fit may ask for (labels grow in model units and need room: lanes
// leave some between columns, fcose's packing less).
const MAX_LABEL_SCALE = { lanes: 1.25, fcose: 1.2 };

// Data without the keys cytoscape does not let ele.data() change.
function mutableData(d) {
  const out = {};
  Object.keys(d).forEach((k) => {
    if (k !== 'id' && k !== 'parent' && k !== 'source' && k !== 'target') out[k] = d[k];
  });
  return out;
}

// fcose ignores the container's shape; a map in a wide box would be fitted by its height and
// drawn small. Stretching the positions horizontally (at most 1.8 times) keeps the topology
// and gives labels more room.
function stretchToContainer(cy) {
  const w = cy.width();
  const h = cy.height();
  const leaves = cy.nodes().filter((n) => !n.isParent());
  if (!(w > 0 && h > 0) || leaves.length < 2) return;
  const bb = leaves.boundingBox({ includeLabels: false });
  if (!(bb.w > 0 && bb.h > 0)) return;
  const factor = Math.min(1.8, w / h / (bb.w / bb.h));
  if (factor <= 1.05) return;
  const cx = (bb.x1 + bb.x2) / 2;
  cy.batch(() => {
    leaves.forEach((n) => {
      const p = n.position();
      n.position({ x: cx + (p.x - cx) * factor, y: p.y });
    });
  });
}

function edgeText(edge, node) {
  const out = edge.source().same(node);
  const other = out ? edge.target() : edge.source();
  return edge.data('label') + (out ? ' to ' : ' from ') + other.data('fullLabel');
}

export function cytoscapeView(container, hooks) {
  if (typeof window.cytoscape !== 'function') {
    throw new MapError('The map could not be drawn: its script (cytoscape) did not load.');
  }
  const cytoscape = window.cytoscape;
  if (!cytoscape('layout', 'fcose')) {
    if (typeof window.cytoscapeFcose !== 'function') {
      throw new MapError('The map could not be drawn: its layout script (fcose) did not load.');
    }
    cytoscape.use(window.cytoscapeFcose);
  }
  container.textContent = '';
  container.classList.remove('map-message');
  const cy = cytoscape({
    container: container,
    renderer: { name: 'canvas', webgl: false },
    minZoom: 0.02,
    maxZoom: 4,
    boxSelectionEnabled: false,
  });
  // cytoscape's own canvases are not for the keyboard: #map is (main.js).
  container.querySelectorAll('canvas').forEach((c) => c.setAttribute('aria-hidden', 'true'));

  let styleKey = null;
  let labelScale = 1;
  let large = false;
  let edgeCount = 0;
  let mode = 'fcose';
  let highlighted = null;
  let current = null;
  let fitting = false;
  let moved = false;
  let pendingFit = true;

  function applyStyle() {
    const all = edgeCount <= ALL_LABELS_UP_TO_EDGES;
    const key = [large, all, labelScale].join('/');
    if (styleKey === key) return;
    styleKey = key;
    cy.style(stylesheet(large, all, labelScale));
    // Drawing edges while panning a big map is what makes it stutter; hide them mid-gesture.
    cy.renderer().hideEdgesOnViewport = large;
  }

  // The clicked element's neighbourhood, and the namespaces around it.
  function neighbourhood(ele) {
    let keep;
    if (ele.isNode()) {
      const members = ele.union(ele.descendants());
      const edges = members.connectedEdges();
      keep = members.union(edges).union(edges.connectedNodes());
    } else {
      keep = ele.union(ele.connectedNodes());
    }
    return keep.union(keep.ancestors());
  }

  // Small maps fade everything else; large ones mark the neighbourhood (see the style).
  function highlight(ele) {
    clearHighlight();
    const keep = neighbourhood(ele);
    cy.batch(() => {
      if (cy.elements().length > 3000) keep.addClass('hl');
      else cy.elements().not(keep).addClass('faded');
    });
    highlighted = keep;
  }

  function clearHighlight() {
    const prev = highlighted;
    highlighted = null;
    if (!prev) return;
    cy.batch(() => {
      prev.removeClass('hl');
      cy.elements('.faded').removeClass('faded');
    });
  }

  function details(ele) {
    const d = ele.data();
    if (ele.isNode()) {
      const box = ele.parent();
      const members = ele.isParent() ? ele.descendants() : cy.collection();
      const edges = ele.union(members).connectedEdges();
      const links = edges
        .map((e) => ({ id: e.id(), text: edgeText(e, ele) }))
        .sort((a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0));
      showNodeDetails(
        { id: d.id, fullLabel: d.fullLabel, kind: d.kind, rawKind: d.rawKind, detail: d.detail, focus: ele.hasClass('focus') },
        {
          inLabel: box.nonempty() ? box.data('fullLabel') : null,
          members: members.length,
          connections: edges.length,
          links: ele.isParent() ? [] : links,
        }
      );
    } else {
      showConnectionDetails([
        {
          fullLabel: d.fullLabel,
          status: d.status,
          rawStatus: d.rawStatus,
          detail: d.detail,
          rows: d.rows,
          from: ele.source().data('fullLabel'),
          to: ele.target().data('fullLabel'),
        },
      ]);
    }
  }

  function select(ref, opts) {
    opts = opts || {};
    if (!ref) {
      clearHighlight();
      cy.elements(':selected').unselect();
      current = null;
      return true;
    }
    const ele = cy.getElementById(ref.id);
    if (ele.empty() || (ref.type === 'edge') !== ele.isEdge()) return false;
    cy.batch(() => {
      cy.elements(':selected').not(ele).unselect();
      ele.select();
    });
    highlight(ele);
    current = { type: ele.isEdge() ? 'edge' : 'node', id: ele.id() };
    if (opts.details) details(ele);
    if (!opts.quiet) announce(current.type, current.id);
    hooks.selected(current, !!opts.details);
    return true;
  }

  cy.on('tap', 'node', (evt) => select({ type: 'node', id: evt.target.id() }, { details: true }));
  cy.on('tap', 'edge', (evt) => select({ type: 'edge', id: evt.target.id() }, { details: true }));
  cy.on('tap', (evt) => {
    if (evt.target === cy) {
      select(null);
      hooks.selected(null, true);
    }
  });
  cy.on('mouseover', 'node', (evt) => hooks.hover(evt.target.data('fullLabel'), evt.renderedPosition));
  cy.on('mouseout', 'node', () => hooks.hover(null));
  cy.on('viewport', () => {
    if (!fitting) moved = true;
    hooks.hover(null);
  });

  function visible() {
    return cy.width() > 0 && cy.height() > 0;
  }

  // Fits the map, then makes the labels readable at that zoom where the layout has room: a font
  // scale for which 12px labels are MIN_LABEL_PX on screen, and a second fit (labels are part
  // of the bounding box, so the zoom moves a little).
  function fit() {
    if (!visible()) {
      pendingFit = true;
      return;
    }
    fitting = true;
    try {
      cy.fit(undefined, FIT_PAD);
      const cap = MAX_LABEL_SCALE[mode] || 1;
      for (let i = 0; i < 2; i++) {
        const want = Math.max(1, Math.min(cap, MIN_LABEL_PX / (12 * cy.zoom())));
        // Up to the next twentieth, so that the labels reach MIN_LABEL_PX rather than fall just short.
        const k = Math.ceil(want * 20) / 20;
        if (k === labelScale) break;
        labelScale = k;
        applyStyle();
        cy.fit(undefined, FIT_PAD);
      }
    } finally {
      fitting = false;
    }
    moved = false;
    pendingFit = false;
  }

  function rendered(p) {
    return p.x >= 0 && p.y >= 0 && p.x <= cy.width() && p.y <= cy.height();
  }

  return {
    kind: 'cytoscape',
    show(els, same, opts) {
      large = opts.large;
      mode = opts.mode;
      edgeCount = els.edges.length;
      applyStyle();
      if (same) {
        cy.batch(() => {
          els.nodes.forEach((n) => {
            const ele = cy.getElementById(n.data.id);
            ele.data(mutableData(n.data));
            ele.classes(n.classes);
          });
          const wanted = new Map();
          els.edges.forEach((e) => wanted.set(e.data.id, e));
          cy.edges().forEach((ele) => {
            const w = wanted.get(ele.id());
            if (!w || w.data.source !== ele.data('source') || w.data.target !== ele.data('target')) ele.remove();
          });
          const add = [];
          wanted.forEach((e, id) => {
            const ele = cy.getElementById(id);
            if (ele.nonempty()) {
              ele.data(mutableData(e.data));
              ele.classes(e.classes);
            } else add.push(e);
          });
          if (add.length) cy.add(add);
        });
        // Neighbourhoods may have changed; a stale highlight would mislead (main.js selects
        // the same element again).
        clearHighlight();
        cy.elements(':selected').unselect();
        if (pendingFit) fit();
        return { relayout: false, builtAt: performance.now(), layoutMs: 0 };
      }
      clearHighlight();
      current = null;
      cy.elements().remove();
      // Lanes: every leaf has its position already; compound boxes follow their members.
      cy.add(els.nodes);
      cy.add(els.edges);
      const built = performance.now();
      if (mode === 'fcose') {
        const options = fcoseOptions(els.nodes.length);
        options.fit = false;
        seededLayout(() => cy.layout(options).run());
        stretchToContainer(cy);
      }
      labelScale = 1;
      applyStyle();
      fit();
      return { relayout: true, builtAt: built, layoutMs: performance.now() - built };
    },
    fit: fit,
    // The container changed size (shown, hidden, or the page's layout moved).
    resize() {
      cy.resize();
    },
    visible: visible,
    moved() {
      return moved;
    },
    pendingFit() {
      return pendingFit;
    },
    zoomBy(f) {
      cy.zoom({ level: cy.zoom() * f, renderedPosition: { x: cy.width() / 2, y: cy.height() / 2 } });
    },
    zoom() {
      return cy.zoom();
    },
    panBy(dx, dy) {
      cy.panBy({ x: dx, y: dy });
    },
    select: select,
    selected() {
      return current;
    },
    showDetails(ref) {
      const ele = ref && cy.getElementById(ref.id);
      if (ele && ele.nonempty()) details(ele);
    },
    labelOf(ref) {
      const ele = ref && cy.getElementById(ref.id);
      return ele && ele.nonempty() ? ele.data('fullLabel') : '';
    },
    // Leaves in reading order of the layout: by column (x), then down the column.
    nodeOrder() {
      return cy
        .nodes()
        .filter((n) => !n.isParent())
        .map((n) => ({ id: n.id(), x: Math.round(n.position('x') / 10), y: n.position('y') }))
        .sort((a, b) => a.x - b.x || a.y - b.y || (a.id < b.id ? -1 : 1))
        .map((n) => n.id);
    },
    positions() {
      const out = {};
      cy.nodes()
        .filter((n) => !n.isParent())
        .forEach((n) => {
          out[n.id()] = { x: n.position('x'), y: n.position('y') };
        });
      return out;
    },
    nextFrame(cb) {
      cy.one('render', () => cb());
    },
    nodesInView(kind) {
      return cy
        .nodes(kind ? '.kind-' + kind : undefined)
        .map((n) => {
          const p = n.renderedPosition();
          return { id: n.id(), x: p.x, y: p.y, focus: n.hasClass('focus') };
        })
        .filter(rendered);
    },
    connectionsInView() {
      return cy
        .edges()
        .map((e) => {
          const p = e.renderedMidpoint();
          return { ids: [e.id()], label: e.data('label'), status: e.data('status'), x: p.x, y: p.y };
        })
        .filter(rendered);
    },
    cy() {
      return cy;
    },
    destroy() {
      cy.destroy();
    },
  };
}
