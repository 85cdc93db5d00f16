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
    if (table.dataset.sortReady) return;
    table.dataset.sortReady = "1";
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
  // The figures ride on the canvas (htmx swaps in no script element, even a JSON one).
  const canvas = document.getElementById("shap-chart");
  if (!canvas || !canvas.dataset.chart || typeof Chart === "undefined" || Chart.getChart(canvas)) return;
  const data = JSON.parse(canvas.dataset.chart);
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

const VIOLATED = "#b3261e";
const RATE = "#0b5cad";
const SERIES = ["#0b5cad", "#b3261e", "#1b7f3b", "#7a4fb0", "#b25e00", "#00707a", "#5c6770"];

function fairnessCharts() {
  const source = document.getElementById("fairness-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const labels = data.groups.map((g) => g.label);
  const rates = document.getElementById("rates-chart");
  if (rates) {
    rates.dataset.groups = String(labels.length);
    new Chart(rates, {
      data: {
        labels,
        datasets: [
          { type: "bar", label: "selection rate", data: data.groups.map((g) => g.rate),
            backgroundColor: data.groups.map((g) => (g.violated ? VIOLATED : RATE)) },
          // The 95% interval as a thin floating bar over each group's rate: an error bar.
          { type: "bar", label: "95% interval", data: data.groups.map((g) => (g.low === null ? null : [g.low, g.high])),
            backgroundColor: "#1b1f24", barPercentage: 0.08, grouped: false },
        ],
      },
      options: { maintainAspectRatio: false, animation: false,
        scales: { y: { min: 0, max: 1, title: { display: true, text: "selection rate" } } } },
    });
  }
  const ratio = document.getElementById("ratio-chart");
  if (ratio) {
    ratio.dataset.violations = String(data.groups.filter((g) => g.violated).length);
    new Chart(ratio, {
      data: {
        labels,
        datasets: [
          { type: "bar", label: "disparate impact ratio", data: data.groups.map((g) => g.ratio),
            backgroundColor: data.groups.map((g) => (g.violated ? VIOLATED : RATE)) },
          { type: "line", label: `four-fifths line (${data.threshold})`, data: labels.map(() => data.threshold),
            borderColor: VIOLATED, borderDash: [6, 4], pointRadius: 0, borderWidth: 2 },
        ],
      },
      options: { maintainAspectRatio: false, animation: false,
        scales: { y: { min: 0, suggestedMax: 1.2, title: { display: true, text: "ratio to the most favoured group" } } } },
    });
  }
  const trend = document.getElementById("trend-chart");
  if (trend && data.periods.length) {
    new Chart(trend, {
      type: "line",
      data: { labels: data.periods, datasets: data.trend.map((series, i) => ({
        label: series.label, data: series.rates, borderColor: SERIES[i % SERIES.length],
        backgroundColor: SERIES[i % SERIES.length], spanGaps: false })) },
      options: { maintainAspectRatio: false, animation: false,
        scales: { y: { min: 0, max: 1, title: { display: true, text: "selection rate" } } } },
    });
  }
}

function distributionCharts(data) {
  document.querySelectorAll("canvas.dist-chart").forEach((canvas) => {
    const v = data.versions[Number(canvas.dataset.version)];
    const d = v && v.distributions[Number(canvas.dataset.feature)];
    if (!d) return;
    canvas.dataset.bins = String(d.labels.length);
    new Chart(canvas, {
      type: "bar",
      data: { labels: d.labels, datasets: [
        { label: "training", data: d.training, backgroundColor: "#9aa3ad" },
        { label: "these decisions", data: d.live, backgroundColor: RATE },
      ] },
      options: { maintainAspectRatio: false, animation: false,
        plugins: { tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${(100 * ctx.raw).toFixed(1)}%` } } },
        scales: { y: { min: 0, title: { display: true, text: "share of rows" },
          ticks: { callback: (value) => `${Math.round(100 * value)}%` } } } },
    });
  });
}

function driftCharts() {
  const source = document.getElementById("drift-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  document.querySelectorAll("canvas.psi-chart").forEach((canvas) => {
    const v = data.versions[Number(canvas.dataset.version)];
    if (!v) return;
    canvas.dataset.features = String(v.features.length);
    new Chart(canvas, {
      data: { labels: v.features, datasets: [
        { type: "bar", label: "PSI", data: v.psi, backgroundColor: v.drifted.map((d) => (d ? VIOLATED : RATE)) },
        { type: "line", label: "threshold", data: v.threshold, borderColor: VIOLATED, borderDash: [6, 4], pointRadius: 2 },
      ] },
      options: { maintainAspectRatio: false, animation: false,
        scales: { y: { min: 0, title: { display: true, text: "population stability index" } } } },
    });
  });
  distributionCharts(data);
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  sortable(document);
  shapWaterfall();
  fairnessCharts();
  driftCharts();
});
// htmx swapped in part of a page (the explanations, a replay): the same treatment as on load.
// After an outerHTML swap the event's element is the one replaced, so work from the document.
document.addEventListener("htmx:afterSwap", (event) => {
  const root = event.target.isConnected ? event.target : document;
  localTimes(root);
  sortable(root);
  shapWaterfall();
});
