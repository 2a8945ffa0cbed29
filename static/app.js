// Flowgate page behaviour: tabs, table filter and sort, copy YAML, and telling the map when
// decisions change. Everything works without it (all sections visible, plain forms).
(function () {
  'use strict';

  // On a wide screen the map is always shown above the tabs (its own tab is hidden), so that the
  // map and the tables are seen together; a narrower one shows one tab at a time.
  var WIDE = window.matchMedia ? window.matchMedia('(min-width: 1200px)') : null;
  function wide() {
    return !!(WIDE && WIDE.matches) && !!document.getElementById('tab-map');
  }
  // Wider still, the Generated Policy is a panel beside the tables (its tab hidden too), so that
  // a tick and the YAML it changes are seen together.
  var XWIDE = window.matchMedia ? window.matchMedia('(min-width: 1600px)') : null;
  function xwide() {
    return wide() && !!(XWIDE && XWIDE.matches);
  }

  // Wide, the map comes first, then the tabs and their panels; narrow, it is the first tab's panel,
  // after the tabs. Moved in the document, not only drawn elsewhere, so that reading and Tab order
  // follow what is seen.
  function placeMap(w) {
    var map = document.getElementById('tab-map');
    var tabs = document.querySelector('.tabs');
    if (!map || !tabs) return;
    if (w && map.nextElementSibling !== tabs) tabs.parentNode.insertBefore(map, tabs);
    if (!w && tabs.nextElementSibling !== map) tabs.parentNode.insertBefore(map, tabs.nextElementSibling);
  }

  // The panels a layout always shows, beside the one tab chosen.
  function alwaysShown(target) {
    return (target === 'tab-map' && wide()) || (target === 'tab-policy' && xwide());
  }

  function showTab(id) {
    var w = wide();
    document.body.classList.toggle('layout-wide', w);
    document.body.classList.toggle('layout-xwide', xwide());
    placeMap(w);
    if (alwaysShown(id)) id = 'tab-ingress';
    var tabs = document.querySelectorAll('.tabs a[role="tab"]');
    tabs.forEach(function (a) {
      var target = a.getAttribute('href').slice(1);
      var on = target === id;
      a.setAttribute('aria-selected', on ? 'true' : 'false');
      a.tabIndex = on ? 0 : -1;
      var panel = document.getElementById(target);
      var always = alwaysShown(target);
      a.hidden = always;
      if (panel) panel.hidden = !(on || always);
    });
    // The trusted CIDRs and names belong with the Egress table.
    ['tab-trust', 'tab-names'].forEach(function (t) {
      var el = document.getElementById(t);
      if (el) el.hidden = !(id === 'tab-egress');
    });
  }

  function currentTab() {
    var h = location.hash.slice(1);
    return document.getElementById(h) && h.indexOf('tab-') === 0 ? h : 'tab-map';
  }

  // What a cell shows, without its <noscript> fallback buttons ("Allow" would match every row)
  // and the words of its activity strip ("Flows per hour" is in every row).
  function cellText(c) {
    var s = c.textContent;
    c.querySelectorAll('noscript, svg').forEach(function (n) { s = s.replace(n.textContent, ''); });
    return s;
  }
  function rowText(tr) {
    var t = '';
    Array.prototype.forEach.call(tr.cells, function (c) { t += ' ' + cellText(c); });
    return t.toLowerCase();
  }

  function applyFilters(root) {
    (root || document).querySelectorAll('input.row-filter').forEach(function (input) {
      var table = document.getElementById(input.dataset.table);
      if (!table) return;
      var q = input.value.trim().toLowerCase();
      var shown = 0;
      table.querySelectorAll('tbody tr').forEach(function (tr) {
        tr.hidden = q !== '' && rowText(tr).indexOf(q) < 0;
        if (!tr.hidden) shown++;
      });
      var note = table.parentNode.querySelector('p.no-matches[data-table="' + table.id + '"]');
      if (!note) {
        note = document.createElement('p');
        note.className = 'muted no-matches';
        note.dataset.table = table.id;
        note.setAttribute('role', 'status');
        table.insertAdjacentElement('afterend', note);
      }
      var any = table.querySelectorAll('tbody tr').length > 0;
      note.hidden = !(q !== '' && shown === 0 && any);
      note.textContent = note.hidden ? '' : 'No connection matches \u201c' + input.value.trim() + '\u201d.';
    });
  }

  function sortBy(th, wanted) {
    var table = th.closest('table');
    var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.dataset.sort === 'num';
    var dir = wanted || (th.dataset.dir === 'asc' ? 'desc' : 'asc');
    th.parentNode.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; h.removeAttribute('aria-sort'); });
    th.dataset.dir = dir;
    th.setAttribute('aria-sort', dir === 'asc' ? 'ascending' : 'descending');
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    rows.sort(function (a, b) {
      var ca = a.cells[idx], cb = b.cells[idx];
      var x = (ca.dataset.value || cellText(ca)).trim(), y = (cb.dataset.value || cellText(cb)).trim();
      var c = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
      return dir === 'asc' ? c : -c;
    });
    rows.forEach(function (r) { table.tBodies[0].appendChild(r); });
  }

  // Beside each absolute time in the tables, how long ago it was ("20 h ago"), from this
  // browser's clock; the absolute time (UTC) stays what is sorted and copied.
  function ago(ms) {
    var s = Math.round(ms / 1000);
    if (s < 60) return 'just now';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 48 * 3600) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }
  function relativeTimes() {
    document.querySelectorAll('td > time[datetime]').forEach(function (t) {
      var at = Date.parse(t.getAttribute('datetime'));
      if (isNaN(at)) return;
      var span = t.nextElementSibling && t.nextElementSibling.classList.contains('ago') ? t.nextElementSibling : null;
      if (!span) {
        span = document.createElement('span');
        span.className = 'ago';
        t.insertAdjacentElement('afterend', span);
      }
      span.textContent = ago(Date.now() - at);
    });
  }
  document.addEventListener('click', function (e) {
    var tab = e.target.closest('.tabs a[role="tab"]');
    if (tab) {
      e.preventDefault();
      var id = tab.getAttribute('href').slice(1);
      history.replaceState(null, '', '#' + id);
      showTab(id);
      return;
    }
    var th = e.target.closest('th[data-sort]');
    if (th) { sortBy(th); return; }
    if (e.target.id === 'copy-yaml') {
      var text = document.getElementById('policy-yaml').textContent;
      if (navigator.clipboard) {
        var button = e.target;
        var said = function (words) {
          button.textContent = words;
          // Back to its label, so a second copy says something too.
          setTimeout(function () { button.textContent = 'Copy'; }, 2000);
        };
        navigator.clipboard.writeText(text).then(function () { said('Copied'); }, function () { said('Copy failed'); });
      }
    }
  });
  // Keyboard: a header's sort button answers Enter and Space as every button does; the arrow keys
  // move between tabs.
  document.addEventListener('keydown', function (e) {
    var tab = e.target.closest && e.target.closest('.tabs a[role="tab"]');
    if (tab && (e.key === 'ArrowRight' || e.key === 'ArrowLeft')) {
      var tabs = Array.prototype.slice.call(document.querySelectorAll('.tabs a[role="tab"]')).filter(function (a) {
        return !a.hidden;
      });
      var next = tabs[(tabs.indexOf(tab) + (e.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
      e.preventDefault();
      next.focus();
      next.click();
    }
  });
  // Pickers submit on change (inline handlers are not allowed by the Content-Security-Policy).
  document.addEventListener('change', function (e) {
    if (e.target.matches('select[data-autosubmit]')) e.target.form.submit();
  });
  document.addEventListener('input', function (e) {
    if (e.target.matches('input.row-filter')) applyFilters();
  });
  // A decision swaps the review section: what the user had set up in it (filters, sort order, the
  // control in focus) is kept across the swap.
  var kept = null;
  document.addEventListener('htmx:beforeSwap', function () {
    if (!document.getElementById('review')) return;
    kept = { filters: {}, sorts: {}, focus: null };
    document.querySelectorAll('input.row-filter').forEach(function (i) { kept.filters[i.dataset.table] = i.value; });
    document.querySelectorAll('table.sortable th[data-dir]').forEach(function (th) {
      kept.sorts[th.closest('table').id] = [Array.prototype.indexOf.call(th.parentNode.children, th), th.dataset.dir];
    });
    var a = document.activeElement;
    if (a && a.getAttribute && a.getAttribute('aria-label')) kept.focus = a.getAttribute('aria-label');
  });
  // After htmx swapped the review in, keep the tab, restore what was kept and tell the map.
  document.addEventListener('htmx:afterSwap', function () {
    if (!document.getElementById('review')) return;
    showTab(currentTab());
    if (kept) {
      document.querySelectorAll('input.row-filter').forEach(function (i) {
        if (kept.filters[i.dataset.table] !== undefined) i.value = kept.filters[i.dataset.table];
      });
      Object.keys(kept.sorts).forEach(function (id) {
        var table = document.getElementById(id);
        var th = table && table.tHead && table.tHead.rows[0].cells[kept.sorts[id][0]];
        if (th) sortBy(th, kept.sorts[id][1]);
      });
      if (kept.focus) {
        var same = Array.prototype.find.call(document.querySelectorAll('#review [aria-label]'), function (el) {
          return el.getAttribute('aria-label') === kept.focus;
        });
        if (same) same.focus();
      }
      kept = null;
    }
    relativeTimes();
    applyFilters();
  });
  document.addEventListener('DOMContentLoaded', function () {
    if (document.querySelector('.tabs')) showTab(currentTab());
    if (WIDE && document.querySelector('.tabs')) {
      var relayout = function () { showTab(currentTab()); };
      [WIDE, XWIDE].forEach(function (q) {
        if (q.addEventListener) q.addEventListener('change', relayout);
        else if (q.addListener) q.addListener(relayout);
      });
    }
    relativeTimes();
  });
})();
