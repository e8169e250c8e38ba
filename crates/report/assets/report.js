// Builds each uPlot chart from the page's JSON, keeps them sized to their column, and marks
// the page ready (data-ready="1") once every chart is drawn. Failures are counted in
// data-errors; nothing is logged.
(function () {
  "use strict";
  var body = document.body;
  var errors = 0;
  function failed() {
    errors += 1;
    body.setAttribute("data-errors", String(errors));
  }
  window.addEventListener("error", failed);

  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"];
  var FAILURE = "#d62728";
  var HEIGHT = 300;

  // x = -log10(1 - p): 0 is the minimum, 1 is p90, 2 is p99, 3 is p99.9.
  function ninesLabel(v) {
    var p = 100 * (1 - Math.pow(10, -v));
    return p.toFixed(Math.max(0, Math.ceil(v - 1e-9) - 2)) + "%";
  }
  function ninesSplits(u, axis, min, max) {
    var s = [0, Math.log10(2)];
    for (var k = 1; k <= Math.ceil(max); k++) s.push(k);
    return s.filter(function (v) { return v >= min && v <= max; });
  }
  function number(v) {
    if (v == null) return "–";
    var a = Math.abs(v);
    return a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
  }

  function crosses(u, idx) {
    var ctx = u.ctx, xs = u.data[0], ys = u.data[idx], r = 4 * devicePixelRatio;
    ctx.save();
    ctx.strokeStyle = FAILURE;
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.beginPath();
    for (var i = 0; i < xs.length; i++) {
      if (ys[i] == null) continue;
      var x = u.valToPos(xs[i], "x", true), y = u.valToPos(ys[i], "y", true);
      ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y + r);
      ctx.moveTo(x - r, y + r); ctx.lineTo(x + r, y - r);
    }
    ctx.stroke();
    ctx.restore();
  }

  function rules(u, list) {
    var ctx = u.ctx, left = u.bbox.left, right = left + u.bbox.width;
    ctx.save();
    ctx.strokeStyle = FAILURE;
    ctx.fillStyle = FAILURE;
    ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
    ctx.font = (11 * devicePixelRatio) + "px sans-serif";
    list.forEach(function (r) {
      var y = u.valToPos(r.y, "y", true);
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(right, y); ctx.stroke();
      ctx.fillText(r.label, left + 4 * devicePixelRatio, y - 3 * devicePixelRatio);
    });
    ctx.restore();
  }

  function xRules(u, list) {
    var ctx = u.ctx, top = u.bbox.top, bottom = top + u.bbox.height;
    ctx.save();
    ctx.strokeStyle = FAILURE;
    ctx.fillStyle = FAILURE;
    ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
    ctx.font = (11 * devicePixelRatio) + "px sans-serif";
    list.forEach(function (r) {
      var x = u.valToPos(r.x, "x", true);
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
      ctx.fillText(r.label, x + 4 * devicePixelRatio, top + 12 * devicePixelRatio);
    });
    ctx.restore();
  }

  function xRange(spec) {
    var extra = spec.x_rules.map(function (r) { return r.x; });
    return function (u, min, max) {
      extra.forEach(function (x) { min = Math.min(min, x); max = Math.max(max, x); });
      if (min == null || max == null || !isFinite(min) || !isFinite(max)) return [0, 1];
      if (spec.x.scale === "log") return uPlot.rangeLog(min, max, 10, true);
      return min === max ? uPlot.rangeNum(min, max, 0.1, true) : [min, max];
    };
  }

  function yRange(spec) {
    var extra = spec.rules.map(function (r) { return r.y; });
    return function (u, min, max) {
      extra.forEach(function (y) { min = Math.min(min, y); max = Math.max(max, y); });
      if (min == null || max == null || !isFinite(min) || !isFinite(max)) return [1, 10];
      if (spec.y.scale === "log") return uPlot.rangeLog(min, max, 10, true);
      return uPlot.rangeNum(min, max, 0.1, true);
    };
  }

  function options(spec, width) {
    var series = [{ label: spec.x.label, value: function (u, v) { return spec.x.scale === "nines" ? (v == null ? "–" : ninesLabel(v)) : number(v); } }];
    var crossIdx = [];
    spec.series.forEach(function (s, i) {
      var color = s.style === "cross" ? FAILURE : COLORS[i % COLORS.length];
      var o = { label: s.label, stroke: color, width: 1.5, spanGaps: true, value: function (u, v) { return number(v); } };
      if (s.style === "points" || s.style === "cross") {
        o.paths = function () { return null; };
        o.spanGaps = false;
        o.points = s.style === "points" ? { show: true, size: 3, stroke: color, fill: color, width: 0 } : { show: false };
        if (s.style === "cross") crossIdx.push(i + 1);
      } else if (s.style === "band") {
        o.width = 0.5;
        o.points = { show: false };
      } else if (s.style === "steps") {
        o.paths = uPlot.paths.stepped({ align: 1 });
        o.points = { show: false };
      } else {
        o.points = { show: false };
      }
      series.push(o);
    });
    var xAxis = { label: spec.x.label };
    if (spec.x.scale === "nines") {
      xAxis.splits = ninesSplits;
      xAxis.values = function (u, vals) { return vals.map(ninesLabel); };
    }
    return {
      width: width,
      height: HEIGHT,
      series: series,
      scales: {
        x: { time: false, distr: spec.x.scale === "log" ? 3 : 1, range: xRange(spec) },
        y: { distr: spec.y.scale === "log" ? 3 : 1, range: yRange(spec) }
      },
      axes: [xAxis, { label: spec.y.label, size: 60 }],
      bands: spec.bands.map(function (b) { return { series: [b[0] + 1, b[1] + 1], fill: "rgba(31,119,180,0.15)" }; }),
      legend: { live: true },
      hooks: {
        draw: [function (u) {
          crossIdx.forEach(function (i) { crosses(u, i); });
          if (spec.rules.length) rules(u, spec.rules);
          if (spec.x_rules.length) xRules(u, spec.x_rules);
        }]
      }
    };
  }

  // Mostly-empty series come as {at: [indices], v: [values]}.
  function expand(n) {
    return function (col) {
      if (Array.isArray(col)) return col;
      var out = new Array(n).fill(null);
      col.at.forEach(function (i, k) { out[i] = col.v[k]; });
      return out;
    };
  }

  function widthOf(el) {
    return el.clientWidth || document.querySelector("main").clientWidth || 960;
  }

  var plots = [];
  try {
    var data = JSON.parse(document.getElementById("loupe-data").textContent);
    var holders = document.querySelectorAll("div.plot[data-chart]");
    Array.prototype.forEach.call(holders, function (el) {
      try {
        var spec = data.charts[Number(el.getAttribute("data-chart"))];
        spec.data = spec.data.map(expand(spec.data[0].length));
        plots.push({ el: el, plot: new uPlot(options(spec, widthOf(el)), spec.data, el) });
      } catch (e) {
        failed();
      }
    });
  } catch (e) {
    failed();
  }
  function resize() {
    plots.forEach(function (p) {
      var w = widthOf(p.el);
      if (w !== p.plot.width) p.plot.setSize({ width: w, height: HEIGHT });
    });
  }
  window.addEventListener("resize", resize);
  Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) {
    d.addEventListener("toggle", resize);
  });
  body.setAttribute("data-charts", String(plots.length));
  body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
  body.setAttribute("data-ready", "1");
})();
