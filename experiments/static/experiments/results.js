// The experiment's results, redrawn from its JSON every few seconds without a reload.
(function () {
  "use strict";
  const panel = document.getElementById("experiment-panel");
  if (!panel) return;
  const url = panel.dataset.url;
  const pollMs = (parseInt(panel.dataset.poll, 10) || 5) * 1000;
  const live = document.getElementById("results-live");
  const tables = [...document.querySelectorAll(".results-table")];
  const verdicts = document.getElementById("verdicts");
  const colours = ["#417690", "#e07a1f", "#2e7d32", "#8e24aa", "#c62828", "#00838f"];
  let chart = null;

  const pct = (x) => (x === null ? "—" : (x * 100).toFixed(1) + "%");
  const num = (digits) => (x) => (x === null ? "—" : Number(x).toFixed(digits));
  const ms = (x) => (x === null ? "—" : Math.round(x) + " ms");
  const usd = (x) => (x === null ? "—" : "$" + Number(x).toPrecision(3));
  const COLUMNS = {
    quality: [["thumbs_up_rate", pct], ["thumbs_down_rate", pct], ["handoff_rate", pct], ["reuse_rate", pct],
      ["approval_rate", pct], ["confidence", num(3)]],
    speed: [["latency_p50", ms], ["latency_p95", ms], ["ttft_p50", ms], ["ttft_p95", ms],
      ["tokens_per_answer", num(0)], ["cost_per_answer", usd]],
  };

  function cell(row, text, interval) {
    const td = document.createElement("td");
    td.textContent = text;
    if (interval) {
      const ci = document.createElement("span");
      ci.className = "ci";
      ci.textContent = interval;
      td.appendChild(ci);
    }
    row.appendChild(td);
    return td;
  }

  function drawTable(table, arms) {
    const group = table.dataset.group;
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const arm of arms) {
      const row = document.createElement("tr");
      row.dataset.arm = arm.name;
      if (arm.status === "paused") row.className = "paused";
      const label = arm.name + (arm.is_control ? " (control)" : "") + (arm.status === "paused" ? " — paused" : "");
      cell(row, label, arm.prompt_version + (arm.model ? " · " + arm.model : ""));
      if (group === "quality") {
        cell(row, String(arm.answers)).className = "answers";
        cell(row, String(arm.visitors));
      }
      for (const [name, format] of COLUMNS[group]) {
        const m = arm.metrics[name];
        const interval = m.low === null && m.high === null ? "" : format(m.low) + " – " + format(m.high);
        cell(row, format(m.value), m.value === null ? "" : interval).dataset.metric = name;
      }
      body.appendChild(row);
    }
  }

  function drawVerdicts(arms) {
    verdicts.replaceChildren();
    for (const arm of arms) {
      if (!arm.verdict && !arm.pause_reason) continue;
      const li = document.createElement("li");
      li.className = arm.verdict ? arm.verdict.verdict : "";
      li.dataset.arm = arm.name;
      const words = arm.verdict ? arm.verdict.words : "";
      li.textContent = arm.name + ": " + words + (arm.pause_reason ? " — paused: " + arm.pause_reason : "");
      verdicts.appendChild(li);
    }
  }

  function drawChart(data) {
    const labels = data.series.labels.map((t) => new Date(t).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}));
    const datasets = data.series.datasets.map((d, i) => ({
      label: d.arm, data: d.data, borderColor: colours[i % colours.length], backgroundColor: colours[i % colours.length],
      spanGaps: true, tension: 0.2, pointRadius: 2,
    }));
    if (chart) {
      chart.data.labels = labels;
      chart.data.datasets = datasets;
      chart.update("none");
      return;
    }
    chart = new Chart(document.getElementById("primary-chart"), {
      type: "line", data: {labels, datasets},
      options: {responsive: true, maintainAspectRatio: false, animation: false,
        plugins: {title: {display: true, text: data.primary_label + " (cumulative)"}},
        scales: {y: {beginAtZero: true}}},
    });
  }

  async function refresh() {
    try {
      const response = await fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"});
      if (!response.ok) throw new Error(response.status);
      const data = await response.json();
      for (const table of tables) drawTable(table, data.arms);
      drawVerdicts(data.arms);
      drawChart(data);
      live.textContent = "live · updated " + new Date(data.updated_at).toLocaleTimeString();
    } catch (error) {
      live.textContent = "not updating (" + error.message + ")";
    }
  }

  document.addEventListener("submit", (event) => {
    const button = event.submitter;
    if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });
  refresh();
  setInterval(refresh, pollMs);
})();
