/* Brigade's report charts, drawn with plotly.js (served by the app, see reports.plotly_js).
 *
 * .js-chart[data-chart]  a chart whose data is in the attribute (heatmap, bars by rule);
 * .js-chart[data-src]    a unit's temperatures fetched as JSON; zooming in (plotly_relayout)
 *                        asks the server again for the narrower window, at a finer grain;
 *                        data-kind="sparkline" draws a small line without axes.
 * .js-window             a button that points its data-target chart at another data-src.
 * No inline script anywhere: the Content-Security-Policy forbids it.
 */
(function () {
  "use strict";
  // No mode bar: plotly.js would add a <style> element for it, which the CSP refuses.
  var CONFIG = {displaylogo: false, responsive: true, displayModeBar: false};
  var RED = "#b3261e", AMBER = "#f9ab00", BLUE = "#0b57d0", GREY = "#5f6368";

  function fetchJSON(url) {
    return fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
  }

  function withParams(src, params) {
    var url = new URL(src, window.location.href);
    Object.keys(params).forEach(function (k) {
      if (params[k] === null) { url.searchParams.delete(k); } else { url.searchParams.set(k, params[k]); }
    });
    return url.pathname + url.search;
  }

  function hline(y, color, dash) {
    return {type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: y, y1: y,
            line: {color: color, width: 1.5, dash: dash}};
  }

  function temperatureFigure(d) {
    var traces = [];
    if (d.min.length) {
      traces.push({x: d.t, y: d.max, mode: "lines", line: {width: 0}, hoverinfo: "skip",
                   showlegend: false, type: "scatter"});
      traces.push({x: d.t, y: d.min, mode: "lines", line: {width: 0}, fill: "tonexty",
                   fillcolor: "rgba(11,87,208,0.18)", name: d.labels.range, type: "scatter"});
    }
    traces.push({x: d.t, y: d.avg, mode: "lines", name: d.labels.temperature, type: "scatter",
                 line: {color: BLUE, width: 1.5}, connectgaps: false});
    var alerts = d.alerts.filter(function (m) { return m.kind === "alert"; });
    var acks = d.alerts.filter(function (m) { return m.kind === "ack"; });
    if (alerts.length) {
      traces.push({x: alerts.map(function (m) { return m.t; }),
                   y: alerts.map(function (m) { return m.y === null ? d.limits.critical : m.y; }),
                   text: alerts.map(function (m) { return m.text; }), mode: "markers",
                   marker: {color: RED, size: 12, symbol: "triangle-up"}, name: d.labels.alert,
                   type: "scatter", customdata: alerts.map(function (m) { return m.url; })});
    }
    if (acks.length) {
      traces.push({x: acks.map(function (m) { return m.t; }),
                   y: acks.map(function () { return d.limits.target; }),
                   text: acks.map(function (m) { return m.text; }), mode: "markers",
                   marker: {color: AMBER, size: 11, symbol: "diamond"}, name: d.labels.ack,
                   type: "scatter"});
    }
    var shapes = [hline(d.limits.target, AMBER, "dash"), hline(d.limits.critical, RED, "dot")];
    if (d.limits.min !== null) { shapes.push(hline(d.limits.min, BLUE, "dash")); }
    d.excursions.forEach(function (e) {
      shapes.push({type: "rect", xref: "x", yref: "paper", x0: e.start, x1: e.end, y0: 0, y1: 1,
                   line: {width: 0}, layer: "below",
                   fillcolor: e.defrost ? "rgba(95,99,104,0.12)" : "rgba(179,38,30,0.16)"});
    });
    d.defrosts.forEach(function (w) {
      shapes.push({type: "rect", xref: "x", yref: "paper", x0: w[0], x1: w[1], y0: 0, y1: 1,
                   line: {width: 0}, layer: "below", fillcolor: "rgba(95,99,104,0.10)"});
    });
    var layout = {margin: {l: 48, r: 12, t: 8, b: 36}, height: 320, shapes: shapes,
                  xaxis: {type: "date"}, yaxis: {title: {text: d.symbol}, fixedrange: true},
                  legend: {orientation: "h", y: -0.2}, hovermode: "x unified"};
    return {data: traces, layout: layout};
  }

  function drawTemperature(el, src, keepRange) {
    el.dataset.loading = "1";
    return fetchJSON(src).then(function (d) {
      var fig = temperatureFigure(d);
      if (keepRange) { fig.layout.xaxis.range = keepRange; fig.layout.xaxis.autorange = false; }
      el.dataset.grain = d.grain;
      el.dataset.points = String(d.t.length);
      el.dataset.drawnSrc = src;
      return window.Plotly.react(el, fig.data, fig.layout, CONFIG).then(function () {
        delete el.dataset.loading;
        if (!el.dataset.zoomBound) {
          el.dataset.zoomBound = "1";
          el.on("plotly_relayout", function (ev) { zoomed(el, ev); });
          el.on("plotly_click", function (ev) {
            var url = ev.points && ev.points[0] && ev.points[0].customdata;
            if (url) { window.location.href = url; }
          });
        }
      });
    }).catch(function () { delete el.dataset.loading; el.classList.add("chart-failed"); });
  }

  function zoomed(el, ev) {
    var base = el.dataset.src;
    if (ev["xaxis.autorange"]) {
      drawTemperature(el, base, null);
      return;
    }
    var a = ev["xaxis.range[0]"], b = ev["xaxis.range[1]"];
    if (a === undefined && ev["xaxis.range"]) { a = ev["xaxis.range"][0]; b = ev["xaxis.range"][1]; }
    if (a === undefined || b === undefined) { return; }
    var src = withParams(base, {window: null, start: String(a), end: String(b)});
    drawTemperature(el, src, [a, b]);
  }

  function drawSparkline(el, src) {
    return fetchJSON(src).then(function (d) {
      var layout = {margin: {l: 0, r: 0, t: 0, b: 0}, height: 48, width: 180, showlegend: false,
                    xaxis: {visible: false}, yaxis: {visible: false},
                    shapes: [hline(d.limit, AMBER, "dot")]};
      return window.Plotly.newPlot(el, [{x: d.t, y: d.y, mode: "lines", type: "scatter",
                                         line: {color: GREY, width: 1.5}, hoverinfo: "skip"}],
                                   layout, {staticPlot: true, displayModeBar: false});
    });
  }

  function drawInline(el) {
    var d = JSON.parse(el.dataset.chart);
    // The title is the page's (a heading above): plotly's own title text sets a style attribute.
    var layout = {margin: {l: 160, r: 12, t: 12, b: 48}};
    if (d.type === "heatmap") {
      // Squares on a scatter plot, not plotly's heatmap trace: that one sets style attributes,
      // which the CSP refuses.
      var xs = [], ys = [], zs = [], text = [];
      d.y.forEach(function (slot, i) {
        d.x.forEach(function (day, j) {
          if (d.z[i][j] === null) { return; }
          xs.push(day); ys.push(slot); zs.push(d.z[i][j]);
          text.push(Math.round(d.z[i][j] * 100) + " %");
        });
      });
      var width = Math.max(320, el.clientWidth || 800);
      var size = Math.max(4, Math.min(26, (width - 180) / Math.max(1, d.x.length) * 0.85));
      layout.height = 90 + 30 * d.y.length;
      layout.margin.l = 12;
      layout.xaxis = {type: "category", categoryorder: "array", categoryarray: d.x};
      layout.yaxis = {type: "category", categoryorder: "array", categoryarray: d.y.slice().reverse(),
                      automargin: true};
      return window.Plotly.newPlot(el, [{type: "scatter", mode: "markers", x: xs, y: ys, text: text,
        hovertemplate: "%{x} · %{y}: %{text}<extra></extra>",
        marker: {symbol: "square", size: size, color: zs, cmin: 0, cmax: 1, showscale: false,
                 colorscale: [[0, "#b3261e"], [0.5, "#f9ab00"], [1, "#1f7a3a"]]}}], layout, CONFIG);
    }
    layout.height = 300;
    layout.barmode = "stack";
    layout.margin.l = 48;
    return window.Plotly.newPlot(el, [
      {type: "bar", x: d.x, y: d.fail, name: d.labels.fail, marker: {color: RED}},
      {type: "bar", x: d.x, y: d["pass"], name: d.labels["pass"], marker: {color: "#1f7a3a"}},
      {type: "bar", x: d.x, y: d.na, name: d.labels.na, marker: {color: GREY}}
    ], layout, CONFIG);
  }

  function start() {
    if (!window.Plotly) { return; }
    document.querySelectorAll(".js-chart").forEach(function (el) {
      if (el.dataset.chart) { drawInline(el); }
      else if (el.dataset.kind === "sparkline") { drawSparkline(el, el.dataset.src); }
      else if (el.dataset.src) { drawTemperature(el, el.dataset.src, null); }
    });
    document.querySelectorAll(".js-window").forEach(function (button) {
      button.addEventListener("click", function () {
        var el = document.getElementById(button.dataset.target);
        document.querySelectorAll(".js-window").forEach(function (b) { b.classList.remove("chosen"); });
        button.classList.add("chosen");
        el.dataset.src = button.dataset.src;
        drawTemperature(el, button.dataset.src, null);
      });
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
})();
