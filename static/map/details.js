// The details drawer (#map-details, an <aside> beside the map): what was selected, and the
// actions the page offers for it. Text only: every string is set with textContent.
//
// The actions do not talk to the server themselves: a connection's button clicks the table's
// own checkbox for that row (tr[data-row] in #review), so htmx posts the same form the table
// would; an address's "Trust" buttons fill the trust form's #trust_cidr and submit that form.
// The review partial is swapped in, the map redraws, and main.js selects the same element
// again, which rebuilds this drawer from the new rows.

import { KIND_NAMES, STATUS_NAMES, WARN, str } from './elements.js';

// Set by main.js: shows another element of the map (a node's list of connections uses it).
let picker = null;
export function onPick(fn) {
  picker = fn;
}

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function detailList(pairs) {
  const dl = el('dl', 'map-details-list');
  pairs.forEach((p) => {
    dl.appendChild(el('dt', null, p[0]));
    dl.appendChild(el('dd', null, p[1]));
  });
  return dl;
}

function pairsOf(detail) {
  return Object.keys(detail).map((k) => [k, str(detail[k])]);
}

function panel() {
  return document.getElementById('map-details');
}

// Replaces the drawer's content. A button that had the focus (the one just pressed, say) hands
// it to its successor with the same key, so a keyboard user stays where they were.
// The key of the action button last pressed: disabled while its post runs, it has lost the
// focus by the time the drawer is rebuilt, and its successor takes it back.
let pressedKey = null;

function showDetails(children) {
  const p = panel();
  if (!p) return;
  const a = document.activeElement;
  let key = a && p.contains(a) ? a.getAttribute('data-key') : null;
  if (key === null && pressedKey !== null && (!a || a === document.body)) key = pressedKey;
  pressedKey = null;
  p.textContent = '';
  children.forEach((c) => p.appendChild(c));
  if (key !== null) {
    const same = Array.prototype.find.call(p.querySelectorAll('[data-key]'), (b) => b.getAttribute('data-key') === key);
    if (same) same.focus();
  }
}

export function clearDetails() {
  const p = panel();
  if (p) p.textContent = '';
}

function button(text, key, onClick) {
  const b = el('button', 'map-action', text);
  b.type = 'button';
  b.setAttribute('data-key', key);
  b.addEventListener('click', (e) => {
    pressedKey = key;
    onClick(e);
  });
  return b;
}

// ---- connections: the table's checkbox for each row the connection stands for

// The table row a row key names, if the page shows it.
function rowOf(key) {
  if (typeof CSS === 'undefined' || !CSS.escape) return null;
  return document.querySelector('#review tr[data-row="' + CSS.escape(key) + '"]');
}

function rowCheckbox(key) {
  const tr = rowOf(key);
  const cb = tr && tr.querySelector('input[type=checkbox]');
  return cb && !cb.disabled ? cb : null;
}

// `direction|peer key|port/protocol`; the peer key sits in the middle, whatever it holds.
function rowWords(key) {
  const parts = key.split('|');
  return { direction: parts[0] || '', port: parts.length > 1 ? parts[parts.length - 1] : '' };
}

function rowActions(rows) {
  const out = [];
  rows.forEach((key) => {
    const cb = rowCheckbox(key);
    if (!cb) return; // a namespace map, or a row the table does not show
    const w = rowWords(key);
    const text = (cb.checked ? 'Exclude ' : 'Allow ') + w.port + ' ' + w.direction;
    const b = button(text, 'row:' + key, () => {
      // One post per press: the swap that follows rebuilds the drawer.
      b.disabled = true;
      b.setAttribute('aria-busy', 'true');
      const now = rowCheckbox(key);
      if (now) now.click();
    });
    b.title = (cb.checked ? 'Untick' : 'Tick') + ' this connection in the ' + w.direction + ' table';
    out.push(b);
  });
  return out;
}

// ---- addresses: trust the address or its network

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

// The eight groups of an IPv6 address, or null.
function v6Groups(ip) {
  if (!/^[0-9a-fA-F:]+$/.test(ip) || ip.length > 39) return null;
  const halves = ip.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = head.concat(new Array(halves.length === 2 ? missing : 0).fill('0'), tail);
  if (groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return null;
  return groups.map((g) => parseInt(g, 16).toString(16));
}

// [host CIDR, its network's CIDR] for an address, or null if it is not one.
export function trustRanges(ip) {
  if (V4.test(ip)) {
    const o = ip.split('.');
    return [ip + '/32', o[0] + '.' + o[1] + '.' + o[2] + '.0/24'];
  }
  const g = v6Groups(ip);
  if (!g) return null;
  return [compress(g) + '/128', compress(g.slice(0, 4).concat(['0', '0', '0', '0'])) + '/64'];
}

// RFC 5952's text form: the longest run of two or more zero groups becomes "::".
function compress(groups) {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j > i ? j : i + 1;
  }
  if (best < 0) return groups.join(':');
  return groups.slice(0, best).join(':') + '::' + groups.slice(best + bestLen).join(':');
}

function trustActions(ip) {
  const input = document.getElementById('trust_cidr');
  const form = input && input.form;
  const ranges = trustRanges(ip);
  if (!form || !ranges) return [];
  return ranges.map((cidr) => {
    const b = button('Trust ' + cidr, 'trust:' + cidr, () => {
      b.disabled = true;
      input.value = cidr;
      // requestSubmit fires the submit event htmx listens for (form.submit() would not).
      if (form.requestSubmit) form.requestSubmit();
      else form.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true }));
    });
    b.title = 'Add ' + cidr + ' to the trusted ranges (Egress)';
    return b;
  });
}

// The activity strip of the first of `rows` the tables show (flows per hour across the window,
// drawn by the server from the hourly aggregates): the same picture as in its row, copied from the
// page's own markup, never from the graph's text.
function stripOf(rows) {
  for (const key of rows) {
    const tr = rowOf(key);
    const svg = tr && tr.querySelector('svg.strip');
    if (svg) {
      const box = el('figure', 'map-strip');
      box.appendChild(svg.cloneNode(true));
      const title = svg.querySelector('title');
      box.appendChild(el('figcaption', null, title ? title.textContent : 'Flows per hour across the window'));
      return box;
    }
  }
  return null;
}

function actionsBox(buttons) {
  const box = el('div', 'map-actions');
  buttons.forEach((b) => box.appendChild(b));
  return box;
}

// ---- what the renderers call

// `n`: { id, fullLabel, kind, rawKind, detail, focus }; `extra`: what the renderer knows about
// the node's surroundings: { inLabel, members, connections, links: [{ id, text }] }.
export function showNodeDetails(n, extra) {
  const kind = KIND_NAMES[n.kind] || n.rawKind || 'Node';
  const parts = [el('h3', 'map-details-title', n.fullLabel), el('p', 'map-details-kind', kind)];
  if (n.focus) parts[1].textContent = kind + ' (the workload this page is about)';
  if ((n.kind === 'external' || n.kind === 'unresolved') && typeof n.detail.IP === 'string') {
    const buttons = trustActions(n.detail.IP);
    if (buttons.length) parts.push(actionsBox(buttons));
  }
  const pairs = pairsOf(n.detail);
  if (extra.inLabel && !('Namespace' in n.detail)) pairs.unshift(['In', extra.inLabel]);
  if (extra.members) pairs.push(['Members', String(extra.members)]);
  pairs.push(['Connections', extra.connections + ' shown']);
  parts.push(detailList(pairs));
  // Its connections, each a button to show that one: the keyboard's way to an edge.
  const links = extra.links || [];
  if (links.length) {
    const list = el('ul', 'map-details-links');
    links.slice(0, 40).forEach((l) => {
      const li = el('li');
      li.appendChild(
        button(l.text, 'edge:' + l.id, () => {
          if (picker) picker({ type: 'edge', id: l.id });
        })
      );
      list.appendChild(li);
    });
    if (links.length > 40) list.appendChild(el('li', 'muted', 'and ' + (links.length - 40) + ' more (see the tables)'));
    parts.push(list);
  }
  showDetails(parts);
}

function connectionPairs(c) {
  return [
    ['From', c.from],
    ['To', c.to],
    ['Status', c.rawStatus || 'unknown'],
  ].concat(pairsOf(c.detail));
}

function connectionTitle(c) {
  return (c.status === 'unresolved' || c.status === 'would-break' ? WARN : '') + (c.fullLabel || 'connection');
}

// What the drawer shows of one connection under its title: the rows' actions, the activity
// strip, the details.
function connectionParts(c) {
  const out = [];
  const buttons = rowActions(c.rows || []);
  if (buttons.length) out.push(actionsBox(buttons));
  const strip = stripOf(c.rows || []);
  if (strip) out.push(strip);
  out.push(detailList(connectionPairs(c)));
  return out;
}

// `conns`: [{ fullLabel, status, rawStatus, detail, rows, from, to }], one or more connections
// between the same two ends (the canvas draws them as one line per direction and status).
export function showConnectionDetails(conns) {
  const first = conns[0];
  if (conns.length === 1) {
    const status = STATUS_NAMES[first.status] || first.rawStatus || 'unknown';
    const parts = [el('h3', 'map-details-title', connectionTitle(first)), el('p', 'map-details-kind', 'Connection, ' + status)];
    showDetails(parts.concat(connectionParts(first)));
    return;
  }
  const parts = [
    el('h3', 'map-details-title', conns.length + ' connections'),
    el('p', 'map-details-kind', 'Between ' + first.from + ' and ' + first.to),
  ];
  conns.forEach((c) => {
    const status = STATUS_NAMES[c.status] || c.rawStatus || 'unknown';
    parts.push(el('h4', 'map-details-conn', connectionTitle(c) + ' \u2014 ' + status));
    parts.push(...connectionParts(c));
  });
  showDetails(parts);
}

export function announce(type, id, ids) {
  const detail = { type: type, id: id };
  if (ids) detail.ids = ids;
  document.body.dispatchEvent(new CustomEvent('flowgate:map-select', { bubbles: true, detail: detail }));
}
