// The monitoring dashboard: draws the payload the page was rendered with, then polls the JSON view and
// updates the same charts in place (no reload, no flicker). Reads only what monitoring/dashboard.py returns.
(function () {
  "use strict";
  const root = document.getElementById("dashboard");
  const url = root.dataset.url;
  const pollMs = 1000 * Number(root.dataset.poll || 5);
  let payload = JSON.parse(document.getElementById("dashboard-payload").textContent);
  const state = { range: payload.range, filters: Object.assign({}, payload.filters) };
  const charts = {};
  const palette = ["#2f6fb0", "#d9822b", "#3a9a5b", "#c0392b", "#7d5ba6", "#8c6d31", "#17a2b8"];

  const CHARTS = [
    { id: "answers", title: "Answers per minute", series: [["answers_per_minute", "answers/min"]], type: "bar" },
    { id: "ttft", title: "Time to first token (ms)", series: [["ttft_p50_ms", "p50"], ["ttft_p95_ms", "p95"]] },
    { id: "latency", title: "Answer latency (ms)", series: [["latency_p50_ms", "p50"], ["latency_p95_ms", "p95"]] },
    { id: "cost", title: "Cost per hour by model (USD)", perModel: true, type: "bar", stacked: true },
    { id: "reuse", title: "Reuse rate and cost avoided", series: [["reuse_rate", "reuse rate", "percent"], ["cost_avoided", "cost avoided (USD)", "right"]] },
    { id: "thumbs", title: "Thumbs up / down", series: [["thumbs_up", "up"], ["thumbs_down", "down"]], type: "bar" },
    { id: "handoff", title: "Handoff rate and errors", series: [["handoff_rate", "handoffs per answer", "percent"], ["error_rate", "failed answers", "percent"]] },
    { id: "lowconf", title: "Share of low-confidence answers", series: [["low_confidence_share", "low confidence", "percent"]] },
    { id: "queue", title: "Review queue", series: [["review_queue_depth", "waiting items"], ["review_queue_oldest_minutes", "oldest wait (min)", "right"]] },
  ];

  function label(iso) {
    const d = new Date(iso);
    const long = payload.step_seconds >= 3600;
    return d.toLocaleString([], long ? { month: "short", day: "numeric", hour: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
  }

  function percent(v) { return v === null || v === undefined ? null : Math.round(v * 1000) / 10; }

  function datasets(spec) {
    const s = payload.series;
    if (spec.perModel) {
      return Object.keys(s.cost_per_hour_by_model).sort().map((model, i) => ({
        label: model, data: s.cost_per_hour_by_model[model], backgroundColor: palette[i % palette.length], stack: "cost",
      }));
    }
    return spec.series.map(([key, name, axis], i) => ({
      label: name,
      data: axis === "percent" ? s[key].map(percent) : s[key],
      yAxisID: axis === "right" ? "y1" : "y",
      borderColor: palette[i], backgroundColor: palette[i], spanGaps: true, pointRadius: 2, borderWidth: 2,
    }));
  }

  function options(spec) {
    const right = (spec.series || []).some(([, , axis]) => axis === "right");
    const pct = (spec.series || []).some(([, , axis]) => axis === "percent");
    const scales = {
      x: { stacked: !!spec.stacked, ticks: { maxTicksLimit: 8, autoSkip: true } },
      y: { stacked: !!spec.stacked, beginAtZero: true, title: { display: pct, text: "%" } },
    };
    if (right) scales.y1 = { position: "right", beginAtZero: true, grid: { drawOnChartArea: false } };
    return { animation: false, maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
             plugins: { legend: { labels: { boxWidth: 10 } } }, scales: scales };
  }

  function drawCharts() {
    const holder = document.getElementById("charts");
    const labels = payload.bins.map(label);
    CHARTS.forEach((spec) => {
      if (!charts[spec.id]) {
        const box = document.createElement("div");
        box.className = "chart";
        box.innerHTML = "<h3></h3><canvas></canvas>";
        box.querySelector("h3").textContent = spec.title;
        box.querySelector("canvas").id = "chart-" + spec.id;
        holder.appendChild(box);
        charts[spec.id] = new Chart(box.querySelector("canvas"), {
          type: spec.type || "line", data: { labels: labels, datasets: datasets(spec) }, options: options(spec),
        });
      } else {
        const chart = charts[spec.id];
        chart.data.labels = labels;
        chart.data.datasets = datasets(spec);
        chart.update("none");
      }
    });
  }

  function money(v) { return v === null || v === undefined ? "–" : "$" + Number(v).toFixed(v < 1 ? 4 : 2); }
  function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %"; }
  function ms(v) { return v === null || v === undefined ? "–" : Math.round(v) + " ms"; }

  function drawTiles() {
    const t = payload.totals, q = payload.queue;
    const tiles = [
      ["answers", String(t.answers), "answers"],
      ["ttft", ms(t.ttft_p95_ms), "first token p95"],
      ["latency", ms(t.latency_p95_ms), "latency p95"],
      ["cost", money(t.cost), "cost"],
      ["reuse", pct(t.reuse_rate), "reused (" + money(t.cost_avoided) + " avoided)"],
      ["thumbs", t.thumbs_up + " / " + t.thumbs_down, "thumbs up / down"],
      ["handoff", pct(t.handoff_rate), "handoff rate"],
      ["lowconf", pct(t.low_confidence_share), "low confidence"],
      ["queue", String(q.depth), "review queue (oldest " + q.oldest_minutes + " min)"],
      ["alerts", String(payload.alerts.open), payload.alerts.critical ? payload.alerts.critical + " critical open alerts" : "open alerts", root.dataset.alerts],
    ];
    const holder = document.getElementById("tiles");
    holder.replaceChildren(...tiles.map(([id, value, key, link]) => {
      const tile = document.createElement(link ? "a" : "div");
      if (link) tile.href = link;
      tile.className = "tile";
      tile.dataset.tile = id;
      tile.innerHTML = '<div class="v"></div><div class="k"></div>';
      tile.querySelector(".v").textContent = value;
      tile.querySelector(".k").textContent = key;
      return tile;
    }));
  }

  const FILTER_LABELS = { language: "Language", prompt_version_id: "Prompt version", arm: "Experiment arm", intent: "Intent" };

  function drawFilters() {
    const holder = document.getElementById("filters");
    holder.replaceChildren();
    Object.keys(FILTER_LABELS).forEach((name) => {
      const values = payload.options[name] || [];
      if (values.length < 2 && !state.filters[name]) return; // nothing to choose between
      const lab = document.createElement("label");
      lab.textContent = FILTER_LABELS[name] + " ";
      const select = document.createElement("select");
      select.name = name;
      select.add(new Option("all", ""));
      values.forEach((v) => select.add(new Option(v, v, false, state.filters[name] === v)));
      select.addEventListener("change", () => {
        if (select.value) state.filters[name] = select.value; else delete state.filters[name];
        refresh();
      });
      lab.appendChild(select);
      holder.appendChild(lab);
    });
  }

  function query() {
    const params = new URLSearchParams(Object.assign({ range: state.range }, state.filters));
    return params.toString();
  }

  async function refresh() {
    const live = document.getElementById("live");
    try {
      const response = await fetch(url + "?" + query(), { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      payload = await response.json();
      draw();
      live.textContent = "live · updated " + new Date().toLocaleTimeString();
    } catch (err) {
      live.textContent = "not updating: " + err.message;
    }
  }

  function draw() {
    drawTiles();
    drawCharts();
    drawFilters();
  }

  root.querySelectorAll("a.range").forEach((link) => link.addEventListener("click", (event) => {
    event.preventDefault();
    state.range = link.dataset.range;
    root.querySelectorAll("a.range").forEach((l) => l.classList.toggle("on", l === link));
    history.replaceState(null, "", "?" + query());
    refresh();
  }));

  draw();
  setInterval(refresh, pollMs);
})();
