// Flowgate page behaviour: tabs, table filter and sort, copy YAML, and telling the map when
// decisions change. Everything works without it (all sections visible, plain forms).
(function () {
  'use strict';

  function showTab(id) {
    var tabs = document.querySelectorAll('.tabs a[role="tab"]');
    tabs.forEach(function (a) {
      var target = a.getAttribute('href').slice(1);
      var on = target === id;
      a.setAttribute('aria-selected', on ? 'true' : 'false');
      var panel = document.getElementById(target);
      if (panel) panel.hidden = !on;
    });
    // The trusted CIDRs belong with the Egress table.
    var trust = document.getElementById('tab-trust');
    if (trust) trust.hidden = !(id === 'tab-egress');
  }

  function currentTab() {
    var h = location.hash.slice(1);
    return document.getElementById(h) && h.indexOf('tab-') === 0 ? h : 'tab-map';
  }

  function applyFilters(root) {
    (root || document).querySelectorAll('input.row-filter').forEach(function (input) {
      var table = document.getElementById(input.dataset.table);
      if (!table) return;
      var q = input.value.trim().toLowerCase();
      table.querySelectorAll('tbody tr').forEach(function (tr) {
        tr.hidden = q !== '' && tr.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  }

  function sortBy(th) {
    var table = th.closest('table');
    var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.dataset.sort === 'num';
    var dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
    th.parentNode.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; h.removeAttribute('aria-sort'); });
    th.dataset.dir = dir;
    th.setAttribute('aria-sort', dir === 'asc' ? 'ascending' : 'descending');
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    rows.sort(function (a, b) {
      var x = a.cells[idx].textContent.trim(), y = b.cells[idx].textContent.trim();
      var c = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
      return dir === 'asc' ? c : -c;
    });
    rows.forEach(function (r) { table.tBodies[0].appendChild(r); });
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
  // Pickers submit on change (inline handlers are not allowed by the Content-Security-Policy).
  document.addEventListener('change', function (e) {
    if (e.target.matches('select[data-autosubmit]')) e.target.form.submit();
  });
  document.addEventListener('input', function (e) {
    if (e.target.matches('input.row-filter')) applyFilters();
  });
  // After htmx swapped the review in, keep the tab, re-apply filters and tell the map.
  document.addEventListener('htmx:afterSwap', function () {
    if (document.getElementById('review')) {
      showTab(currentTab());
      applyFilters();
    }
  });
  document.addEventListener('DOMContentLoaded', function () {
    if (document.querySelector('.tabs')) showTab(currentTab());
  });
})();
