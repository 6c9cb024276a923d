// Brigade's one live channel, for every screen that updates by itself.
//
// A screen asks "anything since this ETag?" every half second (a conditional GET, no
// connection held between questions: the server answers 304 from one indexed read). When the
// answer changes, the screen's handler gets the new body. After a server restart, a Wi-Fi drop
// or a closed lid the next question simply succeeds again, and since every answer is the whole
// current state (or a version to refresh from), nothing missed in between is lost.
//
//   BrigadeLive.watch(url, {onChange(body, etag), onStatus(status), onGone(httpStatus)},
//                     {interval: 500, etag: '"v12.3"'})  -> {stop()}
//
// Markup-only use: an element with data-live-src="<url>" (and data-live-etag, the ETag it was
// rendered at) makes the page watch that URL; each change fires a "brigade:live" event on
// <body>, so an HTMX section refreshes itself with hx-trigger="brigade:live from:body".
(function () {
  "use strict";

  function watch(url, handlers, options) {
    options = options || {};
    var interval = options.interval || 500;
    var timeout = options.timeout || 4000;
    var etag = options.etag || null;
    var stopped = false, timer = null, inFlight = false;
    var lastOk = 0, failures = 0, serverOffset = 0, retry = 0, spread = true;

    function status() {
      if (handlers.onStatus) {
        handlers.onStatus({ connected: failures === 0 && lastOk > 0, lastOk: lastOk,
                            failures: failures, serverOffset: serverOffset });
      }
    }

    function schedule(ms) {
      if (stopped) return;
      clearTimeout(timer);
      timer = setTimeout(ask, ms);
    }

    function ask() {
      if (stopped || inFlight) return;
      inFlight = true;
      var headers = { "Accept": "application/json", "X-Brigade-Poll": "1" };
      if (etag) headers["If-None-Match"] = etag;
      var controller = window.AbortController ? new AbortController() : null;
      var guard = controller ? setTimeout(function () { controller.abort(); }, timeout) : null;
      var sent = Date.now();
      fetch(url, { cache: "no-store", credentials: "same-origin", headers: headers,
                   redirect: "error", signal: controller ? controller.signal : undefined })
        .then(function (response) {
          var now = Number(response.headers.get("X-Brigade-Now"));
          if (now) serverOffset = now - (sent + Date.now()) / 2;
          // "Nothing yet, ask again in N ms": the new state is being prepared.
          retry = Number(response.headers.get("X-Brigade-Retry")) || 0;
          if (response.status === 304) return null;
          if (response.status === 200) {
            var tag = response.headers.get("ETag");
            return response.json().then(function (body) { return { body: body, tag: tag }; });
          }
          if ([401, 403, 404, 410].indexOf(response.status) >= 0) {
            stopped = true;
            if (handlers.onGone) handlers.onGone(response.status);
            return null;
          }
          throw new Error("HTTP " + response.status);
        })
        .then(function (fresh) {
          if (stopped) return;
          failures = 0;
          lastOk = Date.now();
          status();  // first: a handler rendering the change sees the channel up
          if (fresh) {
            etag = fresh.tag;
            if (handlers.onChange) handlers.onChange(fresh.body, etag);
          }
        })
        .catch(function () {
          failures += 1;
          status();
        })
        .then(function () {
          inFlight = false;
          if (guard) clearTimeout(guard);
          schedule(wait());
        });
    }

    // How long until the next question. Screens are often set going together — switched on at
    // once, back after a server restart, told the same "ask again in N ms" while a change is
    // built — and a hundred asking in the same instant delay everyone else's requests. So the
    // question after such a moment comes at a random point of the interval, and each other
    // one a little earlier or later than the interval: the screens' questions stay spread out.
    function wait() {
      if (failures) {  // down: keep asking, a little less often (at most every 2 s)
        spread = true;
        return Math.min(2000, interval * (1 + failures)) * (0.75 + Math.random() / 2);
      }
      if (retry) {
        spread = true;
        return retry * (1 + Math.random() / 2);
      }
      if (spread) {
        spread = false;
        return Math.max(50, interval * Math.random());
      }
      return interval * (0.9 + Math.random() / 5);
    }

    function now() { ask(); }
    // Back from a closed lid, a hidden tab or a lost network: ask at once.
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") now();
    });
    window.addEventListener("online", now);
    window.addEventListener("pageshow", now);
    ask();
    return {
      stop: function () { stopped = true; clearTimeout(timer); },
      status: function () { return { connected: failures === 0 && lastOk > 0, lastOk: lastOk,
                                      serverOffset: serverOffset }; },
    };
  }

  window.BrigadeLive = { watch: watch };

  document.addEventListener("DOMContentLoaded", function () {
    var watched = {};
    document.querySelectorAll("[data-live-src]").forEach(function (el) {
      var src = el.dataset.liveSrc;
      if (watched[src]) return;
      watched[src] = watch(src, {
        onChange: function (body, tag) {
          document.body.dispatchEvent(new CustomEvent("brigade:live",
                                                      { detail: { src: src, etag: tag, body: body } }));
        },
        onStatus: function (s) {
          document.body.classList.toggle("live-down", !s.connected && s.failures > 2);
        },
      }, { etag: el.dataset.liveEtag ? '"' + el.dataset.liveEtag + '"' : null });
    });
  });
})();
