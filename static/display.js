// The wall display: a board per site, filled and kept current from the live channel (live.js).
// No interaction: it pages through more units than fit, shifts a little against burn-in, and
// shows "stale" — never an old number as if current — when it or a sensor stops hearing.
(function () {
  "use strict";
  var PER_PAGE = 12, PAGE_MS = 10000, ALERTS_SHOWN = 3;
  var SHIFT_MS = 120000, SHIFTS = [[0, 0], [4, 2], [8, 0], [4, -2], [0, -4], [-4, -2], [-8, 0], [-4, 2]];
  var body, labels, board = null, live = null, page = 0, shiftIndex = 0;
  var lastOk = 0, offset = 0, gone = false;

  function t(key, values) {
    var text = labels[key] || key;
    Object.keys(values || {}).forEach(function (k) { text = text.split("{" + k + "}").join(values[k]); });
    return text;
  }
  function serverNow() { return Date.now() + offset; }
  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return t("sec", { n: s });
    var m = Math.floor(s / 60);
    if (m < 60) return t("min", { n: m });
    return t("hour_min", { h: Math.floor(m / 60), m: m % 60 });
  }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function channelDown() { return !lastOk || Date.now() - lastOk > Number(body.dataset.staleMs); }

  function renderTiles() {
    var box = document.getElementById("wall-tiles");
    box.textContent = "";
    var units = board.units;
    var pages = Math.max(1, Math.ceil(units.length / PER_PAGE));
    if (page >= pages) page = 0;
    var shown = units.slice(page * PER_PAGE, (page + 1) * PER_PAGE);
    var n = shown.length;
    var cols = n <= 1 ? 1 : n <= 4 ? 2 : n <= 6 ? 3 : n <= 9 ? 3 : 4;
    box.style.setProperty("--cols", cols);
    box.style.setProperty("--rows", Math.max(1, Math.ceil(n / cols)));
    document.getElementById("wall-page").textContent = pages > 1 ? t("page", { n: page + 1, total: pages }) : "";
    if (!n) { box.appendChild(el("p", "wall-empty", t("no_units"))); return; }
    var now = serverNow(), down = channelDown();
    shown.forEach(function (u) {
      var age = u.last_at ? now - Date.parse(u.last_at) : null;
      var staleSensor = age === null || age > u.stale_after_s * 1000 || u.state === "offline";
      var stale = down || staleSensor;
      var tile = el("article", "tile tile-" + u.state + (stale ? " tile-stale" : ""));
      tile.dataset.testid = "tile-" + u.id;
      tile.dataset.state = u.state;
      tile.dataset.stale = stale ? "1" : "0";
      tile.appendChild(el("h2", "tile-name", u.name));
      var main = el("div", "tile-main");
      if (stale) {
        main.appendChild(el("span", "tile-stale-word", t("stale")));
      } else {
        var value = el("span", "tile-value", u.value.replace("-", "\u2212"));
        value.appendChild(el("span", "tile-symbol", u.symbol));
        main.appendChild(value);
        if (u.trend) {
          var arrow = el("span", "tile-trend tile-trend-" + u.trend, { up: "\u2191", down: "\u2193", steady: "\u2192" }[u.trend]);
          arrow.title = t(u.trend);
          arrow.setAttribute("aria-label", t(u.trend));
          main.appendChild(arrow);
        }
      }
      tile.appendChild(main);
      var foot = el("p", "tile-foot");
      // The state is the server's: not shown while the channel is down (it may have moved on).
      if (!down) foot.appendChild(el("span", "tile-state", t(u.state)));
      var ageText;
      if (down) ageText = t("no_connection_for", { age: duration(Date.now() - lastOk) });
      else if (age === null) ageText = t("never");
      else if (staleSensor) ageText = t("no_reading_for", { age: duration(age) });
      else ageText = t("ago", { age: duration(age) });
      foot.appendChild(el("span", "tile-age", ageText));
      if (stale && u.value !== null) {
        main.appendChild(el("span", "tile-last", t("last_value", { value: u.value.replace("-", "\u2212") + " " + u.symbol })));
      }
      tile.appendChild(foot);
      box.appendChild(tile);
    });
  }

  function renderAlerts() {
    var box = document.getElementById("wall-alerts");
    box.textContent = "";
    // The server sends the alerts a wall shows in full and counts the rest (alerts_more).
    var alerts = board.alerts, more = (board.alerts_more || 0) + Math.max(0, alerts.length - ALERTS_SHOWN);
    box.hidden = !alerts.length;
    var now = serverNow();
    alerts.slice(0, ALERTS_SHOWN).forEach(function (a) {
      var row = el("article", "wall-alert wall-alert-" + a.status + (a.tier === "critical" ? " wall-alert-critical" : ""));
      row.dataset.testid = "wall-alert-" + a.id;
      row.dataset.status = a.status;
      row.appendChild(el("span", "wall-alert-icon", a.status === "open" ? "!" : "\u2713"));
      var text = el("div", "wall-alert-text");
      text.appendChild(el("strong", "wall-alert-head", a.headline));
      text.appendChild(el("span", "wall-alert-todo", a.todo));
      if (a.rule) text.appendChild(el("span", "wall-alert-rule", a.rule));
      row.appendChild(text);
      row.appendChild(el("span", "wall-alert-age", a.label + " \u00b7 " + t("open_for", { age: duration(now - Date.parse(a.opened_at)) })));
      box.appendChild(row);
    });
    if (more > 0) box.appendChild(el("p", "wall-alert-more", t("more_alerts", { n: more })));
  }

  function renderFoot() {
    var box = document.getElementById("wall-foot");
    box.textContent = "";
    var now = serverNow();
    board.overdue.forEach(function (o) {
      var item = el("span", "foot-item foot-overdue");
      item.dataset.testid = "wall-overdue";
      item.appendChild(el("strong", null, t("overdue") + ": "));
      item.appendChild(document.createTextNode(o.title + " \u2014 " + o.slot));
      box.appendChild(item);
    });
    board.timers.forEach(function (timer) {
      var left = Date.parse(timer.expires_at) - now;
      var item = el("span", "foot-item " + (left <= 0 ? "foot-expired" : "foot-timer"));
      item.dataset.testid = "wall-timer-" + timer.id;
      item.appendChild(el("strong", null, timer.dish + ": "));
      item.appendChild(document.createTextNode(left <= 0 ? t("time_up") : t("left", { time: clock(left) })));
      box.appendChild(item);
    });
    box.hidden = !box.childElementCount;
  }

  function clock(ms) {
    var s = Math.ceil(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    s = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(s).padStart(2, "0");
  }

  function renderHead() {
    var conn = document.getElementById("wall-conn");
    var down = channelDown();
    conn.dataset.state = !lastOk ? "connecting" : down ? "down" : "live";
    conn.textContent = !lastOk ? t("connecting") : down
      ? t("no_connection_for", { age: duration(Date.now() - lastOk) }) : t("live");
    var fmt = new Intl.DateTimeFormat(body.dataset.locale, {
      hour: "2-digit", minute: "2-digit", hour12: false, timeZone: body.dataset.timezone });
    document.getElementById("wall-clock").textContent = fmt.format(new Date(serverNow()));
  }

  function render() {
    if (gone) return;
    renderHead();
    if (!board) return;
    renderAlerts();
    renderTiles();
    renderFoot();
  }

  function switchedOff() {
    gone = true;
    if (live) live.stop();
    board = null;
    document.body.className = "wall wall-gone";
    document.body.textContent = "";
    var msg = el("main", "wall-message");
    msg.dataset.testid = "display-gone";
    msg.appendChild(el("p", null, t("gone")));
    document.body.appendChild(msg);
  }

  document.addEventListener("DOMContentLoaded", function () {
    body = document.body;
    if (!body.dataset.liveUrl) return;
    labels = JSON.parse(body.dataset.labels);
    live = window.BrigadeLive.watch(body.dataset.liveUrl, {
      onChange: function (data) { board = data; render(); },
      onStatus: function (s) {
        if (s.connected) { lastOk = s.lastOk; offset = s.serverOffset; }
        body.dataset.connected = s.connected ? "1" : "0";
        body.dataset.via = s.via;  // "socket" or "poll": how changes reach it now
      },
      onGone: switchedOff,
    }, { interval: Number(body.dataset.pollMs) });
    setInterval(render, 1000);
    setInterval(function () { page += 1; render(); }, PAGE_MS);
    // Against burn-in: the whole board moves a few pixels every two minutes, round a loop.
    setInterval(function () {
      shiftIndex = (shiftIndex + 1) % SHIFTS.length;
      var frame = document.getElementById("wall-frame");
      if (frame) frame.style.transform = "translate(" + SHIFTS[shiftIndex][0] + "px," + SHIFTS[shiftIndex][1] + "px)";
    }, SHIFT_MS);
  });
})();
