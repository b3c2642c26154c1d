// Draws each chart whose data the server embedded (<script type="application/json" class="chart-data">) with uPlot.
// The uPlot instances are kept in window.emtuneCharts by chart id, so tests can read the series they were given.
(function () {
  "use strict";
  const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
  window.emtuneCharts = window.emtuneCharts || {};

  function draw(figure) {
    const spec = JSON.parse(figure.querySelector(".chart-data").textContent);
    const canvas = figure.querySelector(".chart-canvas");
    let colour = 0;
    const lineColour = {};
    const series = [{ label: "step" }].concat(spec.series.map(function (s) {
      // A benchmark's "best" marker takes the colour of its benchmark's line.
      const base = s.points ? s.label.replace(/ best$/, "") : s.label;
      if (!(base in lineColour)) { lineColour[base] = palette[colour++ % palette.length]; }
      return s.points
        ? { label: s.label, stroke: lineColour[base], width: 0, points: { show: true, size: 14, fill: lineColour[base] } }
        : { label: s.label, stroke: lineColour[base], width: 2, spanGaps: true, points: { show: true, size: 5 } };
    }));
    const options = {
      width: Math.max(320, canvas.clientWidth || 640),
      height: 260,
      scales: { x: { time: false } },
      // Steps are whole numbers: ticks only at integer increments.
      axes: [{ label: "step", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] }, { label: spec.y_label }],
      series: series,
    };
    const data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    window.emtuneCharts[spec.id] = new uPlot(options, data, canvas);
  }

  function drawAll() {
    document.querySelectorAll("figure.chart").forEach(function (figure) {
      if (figure.querySelector(".chart-data") && !figure.dataset.drawn) {
        figure.dataset.drawn = "1";
        draw(figure);
      }
    });
  }

  // The live log is replaced every few seconds: keep the reader's place (or follow the end when they were there).
  let logPlace = null;
  function logBox() { return document.querySelector("pre.log"); }
  document.addEventListener("htmx:beforeSwap", function () {
    const box = logBox();
    logPlace = box ? { atEnd: box.scrollHeight - box.scrollTop - box.clientHeight < 8, top: box.scrollTop } : null;
  });
  document.addEventListener("htmx:afterSettle", function () {
    const box = logBox();
    if (box && logPlace) { box.scrollTop = logPlace.atEnd ? box.scrollHeight : logPlace.top; }
    drawAll();
  });
  // An edited field's old error is stale: clear it as soon as the value changes.
  document.addEventListener("input", function (event) {
    const field = event.target.closest ? event.target.closest(".field") : null;
    if (field) {
      field.classList.remove("invalid");
      field.querySelectorAll(".field-error").forEach(function (error) { error.remove(); });
      const summary = document.getElementById("form-errors");
      if (summary) { summary.remove(); }
    }
  });

  // Copy a checkpoint's store URI.
  document.addEventListener("click", function (event) {
    const button = event.target.closest ? event.target.closest("button.copy") : null;
    if (button && navigator.clipboard) {
      navigator.clipboard.writeText(button.dataset.copy).then(function () { button.textContent = "copied"; });
    }
  });

  drawAll();
  const box = logBox();
  if (box) { box.scrollTop = box.scrollHeight; }
})();
