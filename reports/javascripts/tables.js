// Sortable and filterable tables, offline (no library): click a column header to sort by it; on pages
// with a filter box (<div data-filter-tables>), typing hides the rows that do not contain the text.
// Cells that hold a sentence rather than a number are marked (class "prose"), so that on a phone they
// keep a readable width and the table scrolls sideways instead of squeezing them to a few words a line.
// Material for MkDocs swaps pages without reloading, so the set-up runs on every page it shows.
(function () {
  function cellText(row, index) {
    const cell = row.children[index];
    return cell ? cell.textContent.trim() : "";
  }
  function sortKey(text) {
    const number = parseFloat(text.replace(/[%,]/g, ""));
    return Number.isNaN(number) ? text.toLowerCase() : number;
  }
  function makeSortable(table) {
    if (table.dataset.sortable) return;
    table.dataset.sortable = "yes";
    const headers = table.querySelectorAll("thead th");
    headers.forEach(function (header, index) {
      header.classList.add("sortable");
      header.title = "Sort by this column";
      header.addEventListener("click", function () {
        const body = table.tBodies[0];
        if (!body) return;
        const ascending = header.dataset.order !== "ascending";
        headers.forEach(function (h) { delete h.dataset.order; });
        header.dataset.order = ascending ? "ascending" : "descending";
        const rows = Array.from(body.rows);
        rows.sort(function (a, b) {
          const x = sortKey(cellText(a, index));
          const y = sortKey(cellText(b, index));
          if (x < y) return ascending ? -1 : 1;
          if (x > y) return ascending ? 1 : -1;
          return 0;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }
  function addFilter(box) {
    if (box.dataset.ready) return;
    box.dataset.ready = "yes";
    const input = document.createElement("input");
    input.type = "search";
    input.placeholder = "Filter rows (paper, claim, verdict, model)…";
    input.setAttribute("aria-label", "Filter the tables on this page");
    box.appendChild(input);
    input.addEventListener("input", function () {
      const needle = input.value.toLowerCase();
      document.querySelectorAll("article table tbody tr").forEach(function (row) {
        row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
      });
    });
  }
  const PROSE = 60; // characters: longer cells are sentences
  function markProse(table) {
    table.querySelectorAll("td").forEach(function (cell) {
      if (cell.textContent.trim().length > PROSE) cell.classList.add("prose");
    });
  }
  function setUp() {
    document.querySelectorAll("article table:not(.heatmap)").forEach(makeSortable);
    document.querySelectorAll("article table:not(.heatmap)").forEach(markProse);
    document.querySelectorAll("[data-filter-tables]").forEach(addFilter);
  }
  if (typeof document$ !== "undefined") {
    document$.subscribe(setUp);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
