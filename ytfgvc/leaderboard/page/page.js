(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("leaderboard-data").textContent);

  function value(dataset, row, key) {
    var r = data.datasets[dataset].rows[row.getAttribute("data-slug")];
    var v = r ? r[key] : null;
    return v === undefined ? null : v;
  }

  // Empty cells (a paper row has no interval or coverage) go last in either direction.
  function sortTable(table, key, descending) {
    var dataset = table.getAttribute("data-dataset");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (ra, rb) {
      var a = value(dataset, ra, key), b = value(dataset, rb, key);
      var c = 0;
      if (a === null || b === null) {
        c = a === null ? (b === null ? 0 : 1) : -1;
      } else {
        c = typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
        if (descending) c = -c;
      }
      return c || value(dataset, ra, "rank") - value(dataset, rb, "rank");
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      if (th.getAttribute("data-key") === key) th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      var button = th.querySelector("button");
      if (!button) return;
      button.addEventListener("click", function () {
        var now = th.getAttribute("aria-sort");
        var descending = now ? now === "ascending" : th.getAttribute("data-type") === "num";
        sortTable(table, th.getAttribute("data-key"), descending);
      });
    });
  });

  var tabs = Array.prototype.slice.call(document.querySelectorAll("nav.tabs button"));
  function select(name) {
    tabs.forEach(function (tab) {
      var on = tab.getAttribute("data-tab") === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
    });
  }
  tabs.forEach(function (tab) {
    tab.addEventListener("click", function () {
      select(tab.getAttribute("data-tab"));
      if (history.replaceState) history.replaceState(null, "", "#" + tab.getAttribute("data-tab"));
    });
  });
  var wanted = decodeURIComponent(location.hash.slice(1));
  var known = tabs.some(function (t) { return t.getAttribute("data-tab") === wanted; });
  if (tabs.length) select(known ? wanted : tabs[0].getAttribute("data-tab"));
})();
