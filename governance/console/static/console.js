// govern console: local times, sortable tables and the SHAP waterfall. No inline script anywhere
// (the Content-Security-Policy allows scripts from this service only).
"use strict";

function localTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  root.querySelectorAll("time[datetime]").forEach((el) => {
    const when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) el.textContent = format.format(when);
  });
}

function sortable(root) {
  root.querySelectorAll("table.sortable").forEach((table) => {
    const heads = table.querySelectorAll("thead th");
    heads.forEach((th, index) => {
      th.tabIndex = 0;
      th.setAttribute("aria-sort", "none");
      const sort = () => {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach((other) => other.setAttribute("aria-sort", "none"));
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const numeric = th.dataset.type === "number";
        const body = table.tBodies[0];
        const key = (row) => {
          const cell = row.cells[index];
          const text = cell.dataset.sort ?? cell.textContent.trim();
          return numeric ? (text === "" ? -Infinity : Number(text)) : text.toLowerCase();
        };
        const rows = Array.from(body.rows);
        rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * (ascending ? 1 : -1));
        rows.forEach((row) => body.appendChild(row));
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  });
}

function shapWaterfall() {
  const canvas = document.getElementById("shap-chart");
  const source = document.getElementById("shap-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const labels = ["base value", ...data.bars.map((b) => b.label), "this decision"];
  const spans = [[0, data.base], ...data.bars.map((b) => [b.start, b.end]), [0, data.output]];
  const colours = ["#6b7280", ...data.bars.map((b) => (b.value >= 0 ? "#0b5cad" : "#b3261e")), "#12263f"];
  canvas.dataset.bars = String(data.bars.length);
  new Chart(canvas, {
    type: "bar",
    data: { labels, datasets: [{ data: spans, backgroundColor: colours, borderSkipped: false }] },
    options: {
      indexAxis: "y", maintainAspectRatio: false, animation: false,
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: (ctx) => {
          const [from, to] = ctx.raw;
          const i = ctx.dataIndex;
          if (i === 0 || i === labels.length - 1) return `${to.toPrecision(6)}`;
          return `${(to - from >= 0 ? "+" : "")}${(to - from).toPrecision(6)} (to ${to.toPrecision(6)})`;
        } } },
      },
      scales: { x: { title: { display: true, text: data.space === "probability" ? "probability" : "log-odds" } } },
    },
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  sortable(document);
  shapWaterfall();
});
document.addEventListener("htmx:afterSwap", (event) => localTimes(event.target));
