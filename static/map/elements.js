// The graph JSON (report::graph) -> renderer-neutral elements, validated. Invalid entries are
// skipped (and counted), never fatal: one odd record from the server should not blank the map.
// Every string here came from the cluster and is untrusted: it only ever reaches textContent or
// a canvas.

export const KINDS = ['workload', 'service', 'external', 'unresolved', 'node', 'namespace'];
export const STATUSES = ['allowed', 'excluded', 'unresolved', 'no-rule', 'would-break'];
export const KIND_NAMES = {
  workload: 'Workload',
  service: 'Service',
  external: 'External address',
  unresolved: 'Unresolved address',
  node: 'Node (host)',
  namespace: 'Namespace',
};
export const STATUS_NAMES = {
  allowed: 'allowed by the policy',
  excluded: 'excluded from the policy',
  unresolved: 'unresolved peer (excluded)',
  'no-rule': 'no rule needed',
  'would-break': 'would break: seen, and blocked once the policy is applied',
};
// Non-colour cue in the label itself; the line style (edges) and shape (nodes) are the other one.
export const WARN = '\u26A0 ';
// Labels are cut to this length on the map (the drawer and the tooltip show the whole string);
// in large maps, to what fits a grid cell at 11px.
export const LABEL_MAX_CHARS = 80;
export const LARGE_LABEL_MAX_CHARS = 26;

// A failure to tell the user as it is (the map shows the message instead of a drawing).
export class MapError {
  constructor(message) {
    this.message = message;
  }
}

export function str(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map(str).join(', ');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function shortLabel(s, max) {
  max = max || LABEL_MAX_CHARS;
  return s.length > max ? s.slice(0, max - 1) + '\u2026' : s;
}

function detailOf(v) {
  return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
}

// Row keys (`direction|peer key|port/protocol`, as the tables' data-row): strings only.
function rowsOf(v) {
  return Array.isArray(v) ? v.filter((r) => typeof r === 'string' && r !== '') : [];
}

// Returns { nodes, edges, dropped, shapeKey, focusId }. Nodes and edges are cytoscape element
// definitions ({ group, data, classes }), which the canvas model reads too.
export function toElements(graph) {
  const rawNodes = graph && Array.isArray(graph.nodes) ? graph.nodes : [];
  const rawEdges = graph && Array.isArray(graph.edges) ? graph.edges : [];
  const focus = graph && typeof graph.focus === 'string' ? graph.focus : null;
  let dropped = 0;

  const byId = new Map();
  rawNodes.forEach((n) => {
    if (!n || typeof n.id !== 'string' || n.id === '' || byId.has(n.id)) {
      dropped++;
      return;
    }
    byId.set(n.id, n);
  });

  // A parent must exist and the chain must not loop back (cytoscape would hang on a cycle).
  function parentOf(id) {
    const p = byId.get(id).parent;
    return typeof p === 'string' && p !== id && byId.has(p) ? p : null;
  }
  function safeParent(id) {
    const p = parentOf(id);
    const seen = new Set([id]);
    for (let cur = p; cur !== null; cur = parentOf(cur)) {
      if (seen.has(cur)) return null;
      seen.add(cur);
    }
    return p;
  }

  const nodes = [];
  const shape = [];
  let focusId = null;
  byId.forEach((n, id) => {
    const kind = KINDS.indexOf(n.kind) >= 0 ? n.kind : 'other';
    const full = str(n.label) || id;
    const isFocus = n.focus === true || (focus !== null && id === 'w:' + focus);
    if (isFocus && focusId === null) focusId = id;
    const parent = safeParent(id);
    const data = {
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

  const edges = [];
  const edgeIds = new Set();
  rawEdges.forEach((e, i) => {
    if (!e || !byId.has(e.source) || !byId.has(e.target)) {
      dropped++;
      return;
    }
    const id = typeof e.id === 'string' && e.id !== '' ? e.id : 'edge-' + i;
    if (edgeIds.has(id) || byId.has(id)) {
      dropped++;
      return;
    }
    edgeIds.add(id);
    const status = STATUSES.indexOf(e.status) >= 0 ? e.status : 'other';
    const full = str(e.label);
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
        rows: rowsOf(e.rows),
      },
      classes: 'status-' + status,
    });
  });

  // Edges sharing their two ends (either direction) are drawn curved apart.
  const pairs = new Map();
  const pairOf = (e) =>
    e.data.source < e.data.target ? e.data.source + '\u0000' + e.data.target : e.data.target + '\u0000' + e.data.source;
  edges.forEach((e) => pairs.set(pairOf(e), (pairs.get(pairOf(e)) || 0) + 1));
  edges.forEach((e) => {
    if (pairs.get(pairOf(e)) > 1) e.classes += ' multi';
  });

  shape.sort();
  return { nodes: nodes, edges: edges, dropped: dropped, shapeKey: shape.join('\u0001'), focusId: focusId };
}

// Name order for sorting within a group: plain code-unit order, so that every browser and
// locale gives the same picture.
export function byName(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}
