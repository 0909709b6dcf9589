// The operators' dashboard (templates/admin/jobs/dashboard.html): draws the figures the page
// was rendered with, then asks dashboard/data/ for new ones every few seconds. Every figure
// links into the admin's job list, filtered to the jobs behind it. Text from the server goes
// in through textContent only.
"use strict";

(function () {
  const root = document.getElementById("dashboard");
  const dataUrl = root.dataset.url;
  const refreshMs = Number(root.dataset.refresh) * 1000;
  let figures = JSON.parse(document.getElementById("dashboard-figures").textContent);
  let refreshes = 0;

  const COLOURS = {
    created: "#0d6efd",
    completed: "#198754",
    failed: "#dc3545",
    cancelled: "#6c757d",
    retried: "#d98b00",
  };
  Chart.defaults.animation = false;  // a redraw every few seconds: no animation to sit through
  Chart.defaults.maintainAspectRatio = false;  // each chart fills its container's height

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function link(href, text) {
    return el("a", { href }, text);
  }

  function seconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 120) return `${s.toFixed(1)} s`;
    if (s < 7200) return `${(s / 60).toFixed(1)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }

  function percent(rate) {
    return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`;
  }

  function listUrl(filters) {
    return `${figures.list_url}?${new URLSearchParams(filters)}`;
  }

  // --- jobs per minute ---------------------------------------------------------------------

  const SERIES = ["created", "completed", "failed", "cancelled", "retried"];

  function minuteLabel(iso) {
    const t = new Date(iso);
    return t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function pointUrl(series, index) {
    // The jobs behind a point: created, or ended with that status, within its minutes.
    const start = new Date(figures.series.starts[index]);
    const end = new Date(start.getTime() + figures.step_minutes * 60000);
    if (series === "retried") return listUrl({ status__exact: "retrying" });
    const field = series === "created" ? "created_at" : "completed_at";
    const filters = { [`${field}__gte`]: start.toISOString(), [`${field}__lt`]: end.toISOString() };
    if (series !== "created") filters.status__exact = series;
    return listUrl(filters);
  }

  const perMinute = new Chart(document.getElementById("per-minute"), {
    type: "line",
    data: { labels: [], datasets: [] },
    options: {
      interaction: { mode: "nearest", intersect: false },
      elements: { point: { radius: 0, hitRadius: 6 }, line: { borderWidth: 1.5 } },
      scales: { y: { beginAtZero: true, title: { display: true, text: "jobs / minute" } } },
      onClick(event, elements) {
        if (elements.length) {
          const { datasetIndex, index } = elements[0];
          window.location = pointUrl(SERIES[datasetIndex], index);
        }
      },
    },
  });

  function drawPerMinute() {
    perMinute.data.labels = figures.series.starts.map(minuteLabel);
    perMinute.data.datasets = SERIES.map((name) => ({
      label: name,
      data: figures.series.counts[name],
      borderColor: COLOURS[name],
      backgroundColor: COLOURS[name],
      borderDash: name === "created" ? [4, 3] : [],
    }));
    perMinute.update();
  }

  // --- bar charts whose bars are links -------------------------------------------------------

  function barChart(id, { horizontal, label, format }) {
    const chart = new Chart(document.getElementById(id), {
      type: "bar",
      data: { labels: [], datasets: [{ label, data: [], backgroundColor: [] }] },
      options: {
        indexAxis: horizontal ? "y" : "x",
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (ctx) => `${label}: ${format(ctx.raw)}` } },
        },
        scales: { [horizontal ? "x" : "y"]: { beginAtZero: true, ticks: { callback: format } } },
        onClick(event, elements) {
          if (elements.length) window.location = chart.$links[elements[0].index];
        },
      },
    });
    chart.$links = [];
    return chart;
  }

  const queueChart = barChart("queue-chart", { label: "pending jobs", format: (v) => v });
  const failureChart = barChart("failure-chart", {
    horizontal: true,
    label: "failure rate",
    format: (v) => `${Math.round(v * 100)}%`,
  });
  const slowChart = barChart("slow-chart", { horizontal: true, label: "p95", format: seconds });

  function drawBars(chart, rows, value, colour, href) {
    chart.data.labels = rows.map((row) => row.type || row.queue);
    chart.data.datasets[0].data = rows.map(value);
    chart.data.datasets[0].backgroundColor = rows.map(colour);
    chart.$links = rows.map(href);
    chart.update();
  }

  // --- tables and tiles ----------------------------------------------------------------------

  function fill(id, rows) {
    document.getElementById(id).replaceChildren(...rows);
  }

  function drawNow() {
    fill(
      "unfinished",
      figures.unfinished.map((row) =>
        el("a", { class: "tile", href: row.link, "data-status": row.status },
          el("strong", {}, row.jobs.toLocaleString()), row.status),
      ),
    );
    const online = figures.workers.online;
    document.getElementById("workers-online").textContent = online === null ? "unknown" : online;
    fill(
      "workers",
      figures.workers.running.map((row) =>
        el("tr", {}, el("td", {}, row.worker || "unknown"),
          el("td", { class: "n" }, link(row.link, row.jobs.toLocaleString()))),
      ),
    );
    fill(
      "queues",
      figures.queues.map((row) =>
        el("tr", { "data-queue": row.queue },
          el("td", {}, row.queue),
          el("td", { class: "n" }, row.depth === null ? "broker down" : row.depth.toLocaleString()),
          el("td", { class: "n" }, link(row.link, row.pending.toLocaleString())),
          el("td", { class: "n" }, row.pending ? seconds(row.oldest_pending_age_s) : "–")),
      ),
    );
    drawBars(queueChart, figures.queues, (row) => row.pending,
      (row) => (row.stale ? COLOURS.failed : COLOURS.created),
      (row) => row.link);
  }

  function drawTypes() {
    const types = figures.types;
    fill(
      "types",
      types.map((row) =>
        el("tr", { "data-type": row.type },
          el("td", {}, row.type),
          el("td", { class: "n" }, link(row.links.created, row.created.toLocaleString())),
          el("td", { class: "n" }, link(row.links.completed, row.completed.toLocaleString())),
          el("td", { class: "n" }, link(row.links.failed, row.failed.toLocaleString())),
          el("td", { class: "n" }, link(row.links.cancelled, row.cancelled.toLocaleString())),
          el("td", { class: "n" }, row.retried.toLocaleString()),
          el("td", { class: "n" }, percent(row.failure_rate)),
          el("td", { class: "n" }, seconds(row.avg_s)),
          el("td", { class: "n" }, seconds(row.p50_s)),
          el("td", { class: "n" }, seconds(row.p95_s))),
      ),
    );
    const rated = types.filter((row) => row.failure_rate !== null);
    drawBars(failureChart, rated, (row) => row.failure_rate,
      (row) => (row.failure_rate > 0.1 ? COLOURS.failed : COLOURS.retried),
      (row) => row.links.failed);
    const byName = Object.fromEntries(types.map((row) => [row.type, row]));
    const slowest = figures.slowest.map((name) => byName[name]);
    drawBars(slowChart, slowest, (row) => row.p95_s, () => COLOURS.created,
      (row) => row.links.completed);
  }

  function draw() {
    drawPerMinute();
    drawNow();
    drawTypes();
    document.getElementById("updated").textContent = new Date(figures.generated_at).toLocaleTimeString();
    const backlog = document.getElementById("backlog");
    backlog.hidden = !figures.backlog_events;
    backlog.querySelector("span").textContent = figures.backlog_events.toLocaleString();
    root.dataset.refreshes = refreshes;
  }

  async function refresh() {
    const status = document.getElementById("status");
    try {
      const response = await fetch(`${dataUrl}?window=${figures.window_minutes}`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      figures = await response.json();
      refreshes += 1;
      status.textContent = "";
      status.className = "";
      draw();
    } catch (error) {
      status.textContent = `(not refreshed: ${error.message}; retrying)`;
      status.className = "stale";
    } finally {
      setTimeout(refresh, refreshMs);
    }
  }

  draw();
  setTimeout(refresh, refreshMs);
})();
