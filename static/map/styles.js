// Style, shared by both renderers (and by the legend in map.css / the templates). Colour is never
// the only cue: node kinds differ by shape, edge statuses by line style (solid / dashed / round
// dots / thin dots) and unresolved ones also by a "⚠" in the label.

import { STATUSES } from './elements.js';

export const FONT = 'system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif';
// Node labels on the map are at least this size on screen where the fitted zoom allows it
// (cytoscape's font sizes are in model units: the views scale them after a fit).
export const MIN_LABEL_PX = 11;

export const NODE_STYLES = {
  workload: { shape: 'round-rectangle', w: 36, h: 24, fill: '#dbe9f8', stroke: '#2f6db5', border: 1.5 },
  service: { shape: 'hexagon', w: 30, h: 26, fill: '#ece2f7', stroke: '#7743a8', border: 1.5 },
  external: { shape: 'octagon', w: 28, h: 28, fill: '#fff1d6', stroke: '#b86e00', border: 1.5 },
  unresolved: { shape: 'triangle', w: 30, h: 27, fill: '#fde2e1', stroke: '#c62828', border: 2, text: '#a4161a' },
  node: { shape: 'rectangle', w: 30, h: 22, fill: '#eeeeee', stroke: '#555555', border: 1.5 },
  namespace: { shape: 'round-rectangle', w: 26, h: 26, fill: '#f6f8fa', stroke: '#8c959f', border: 1, dashed: true },
  other: { shape: 'ellipse', w: 26, h: 26, fill: '#e6e6e6', stroke: '#6e7781', border: 1.5 },
};
export const FOCUS_STYLE = { w: 50, h: 32, fill: '#a9c9ef', stroke: '#0b3d91', border: 4, underlay: '#2f6db5' };
export const SELECTED_COLOR = '#bf8700';
export const EDGE_STYLES = {
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
// `k` scales every font: a view whose fitted zoom would show labels below MIN_LABEL_PX asks for
// larger ones (see cytoscape-view.js).
export function stylesheet(large, allEdgeLabels, k) {
  k = k || 1;
  function rich(style, extra) {
    if (!large) Object.keys(extra).forEach(function (k) {
      style[k] = extra[k];
    });
    return style;
  }
  let base = NODE_STYLES.other;
  let sheet = [
    {
      selector: 'node',
      style: rich(
        {
          label: 'data(label)',
          'font-size': (large ? 11 : 12) * k,
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
          // Wrapped at spaces, never cut: "svc example-java-app-cassandra" stays whole (labels
          // longer than LABEL_MAX_CHARS are cut in toElements; the tooltip and drawer have them).
          'text-wrap': 'wrap',
          'text-max-width': 300,
          'text-background-color': '#ffffff',
          'text-background-opacity': 0.75,
          'text-background-padding': 1,
        }
      ),
    },
  ];
  ['workload', 'service', 'external', 'unresolved', 'node'].forEach(function (kind) {
    let k = NODE_STYLES[kind];
    let style = { shape: k.shape, width: k.w, height: k.h, 'background-color': k.fill, 'border-color': k.stroke };
    if (k.border !== base.border) style['border-width'] = k.border;
    if (k.text) style.color = k.text;
    sheet.push({ selector: 'node.kind-' + kind, style: style });
  });
  let ns = NODE_STYLES.namespace;
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
        'font-size': 12 * k,
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
        'font-size': 13 * k,
        'font-weight': 'bold',
        'text-max-width': 280,
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
          'font-size': (large ? 10 : 11) * k,
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
    let e = EDGE_STYLES[status];
    let style = {
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

