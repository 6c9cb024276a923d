// Brigade's one live channel, for every screen that updates by itself.
//
// Where the page names a live socket (<meta name="brigade-live-socket">, app/live/socket.py),
// the screen holds a WebSocket and is sent each change as it happens; the server also sends
// its time every 2 s, so 5 s of silence means the socket is dead: it is closed and opened
// again (after 1 s, then less often, at most every 15 s). Whenever the socket is not open the
// screen asks over HTTP instead — "anything since this ETag?" every half second (a conditional
// GET, no connection held between questions: the server answers 304). Either way, after a
// server restart, a Wi-Fi drop or a closed lid the next answer brings the whole current state
// (or a version to refresh from), so nothing missed in between is lost.
//
//   BrigadeLive.watch(url, {onChange(body, etag), onStatus(status), onGone(httpStatus)},
//                     {interval: 500, etag: '"v12.3"', socket: "ws://host:8001/live"})
//     -> {stop(), status()}
//
// Markup-only use: an element with data-live-src="<url>" (and data-live-etag, the ETag it was
// rendered at) makes the page watch that URL; each change fires a "brigade:live" event on
// <body>, so an HTMX section refreshes itself with hx-trigger="brigade:live from:body".
(function () {
  "use strict";

  var SILENT_MS = 5000;  // a socket this long without a frame is dead (heartbeat: 2 s)

  // The socket's address for a watched URL: the page's live socket and the URL's path.
  function socketFor(url) {
    var meta = document.querySelector('meta[name="brigade-live-socket"]');
    if (!meta || !meta.content || !window.WebSocket) return null;
    var path = new URL(url, window.location.href).pathname;
    return meta.content.replace(/\/$/, "") + path;
  }

  function watch(url, handlers, options) {
    options = options || {};
    var interval = options.interval || 500;
    var timeout = options.timeout || 4000;
    var etag = options.etag || null;
    var socketUrl = options.socket === undefined ? socketFor(url) : options.socket;
    var stopped = false, timer = null, inFlight = false;
    var lastOk = 0, failures = 0, serverOffset = 0, retry = 0, spread = true;
    var socket = null, socketOpen = false, socketTries = 0, socketTimer = null, heard = 0;
    var socketOpenings = 0;  // an answer asked for before the last opening is out of date

    function status() {
      if (handlers.onStatus) {
        handlers.onStatus({ connected: failures === 0 && lastOk > 0, lastOk: lastOk,
                            failures: failures, serverOffset: serverOffset,
                            via: socketOpen ? "socket" : "poll" });
      }
    }

    function gone(httpStatus) {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(socketTimer);
      clearInterval(watchdog);
      if (socket) socket.close();
      if (handlers.onGone) handlers.onGone(httpStatus);
    }

    function changed(body, tag) {
      if (tag && tag !== etag) {
        etag = tag;
        if (handlers.onChange) handlers.onChange(body, etag);
      }
    }

    // --- the socket: pushed changes while it is open --------------------------------------
    function openSocket() {
      if (stopped || !socketUrl || socket) return;
      clearTimeout(socketTimer);
      try {
        socket = new WebSocket(socketUrl);
      } catch (e) {
        socket = null;
        return;  // a malformed address: ask over HTTP only
      }
      var mine = socket;
      mine.onmessage = function (event) {
        if (mine !== socket || stopped) return;
        var frame;
        try { frame = JSON.parse(event.data); } catch (e) { return; }
        heard = Date.now();
        if (!socketOpen) {  // the socket carries the changes now: stop asking over HTTP
          socketOpen = true;
          socketOpenings += 1;
          socketTries = 0;
          clearTimeout(timer);
        }
        if (frame.now) serverOffset = frame.now - heard;
        failures = 0;
        lastOk = heard;
        status();  // first: a handler rendering the change sees the channel up
        if (frame.etag) changed(frame.body, frame.etag);
      };
      mine.onclose = function (event) {
        if (mine !== socket) return;
        socket = null;
        var was = socketOpen;
        socketOpen = false;
        if (stopped) return;
        if (event.code === 4403) { gone(410); return; }  // the display was switched off
        // Ask over HTTP at once (it catches up on anything missed and, for a session the app
        // no longer takes, learns what to do), and try the socket again a little later.
        if (was) { failures = 0; schedule(0); }
        socketTries += 1;
        socketTimer = setTimeout(openSocket, was && event.code === 4401 ? 200 :
          Math.min(15000, 1000 * socketTries) * (0.75 + Math.random() / 2));
      };
    }

    // A socket that went quiet (Wi-Fi gone without a goodbye) is closed, so that the screen
    // says so and asks over HTTP until it can open one again.
    var watchdog = setInterval(function () {
      if (socketOpen && Date.now() - heard > SILENT_MS) {
        var dead = socket;
        socket = null;
        socketOpen = false;
        if (dead) { dead.onclose = null; dead.onmessage = null; dead.close(); }
        failures += 1;
        status();
        schedule(0);
        socketTimer = setTimeout(openSocket, 1000);
      }
    }, 1000);

    // --- asking over HTTP: whenever the socket is not open --------------------------------
    function schedule(ms) {
      if (stopped || socketOpen) return;
      clearTimeout(timer);
      timer = setTimeout(ask, ms);
    }

    function ask() {
      if (stopped || inFlight || socketOpen) return;
      inFlight = true;
      var openings = socketOpenings;
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
            gone(response.status);
            return null;
          }
          throw new Error("HTTP " + response.status);
        })
        .then(function (fresh) {
          // An answer asked for before the socket opened is not shown over what it brought.
          if (stopped || socketOpen || openings !== socketOpenings) return;
          failures = 0;
          lastOk = Date.now();
          status();  // first: a handler rendering the change sees the channel up
          if (fresh) changed(fresh.body, fresh.tag);
        })
        .catch(function () {
          if (stopped || socketOpen) return;
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

    function now() { ask(); openSocket(); }
    // Back from a closed lid, a hidden tab or a lost network: ask at once.
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") now();
    });
    window.addEventListener("online", now);
    window.addEventListener("pageshow", now);
    ask();
    openSocket();
    return {
      stop: function () {
        stopped = true;
        clearTimeout(timer);
        clearTimeout(socketTimer);
        clearInterval(watchdog);
        if (socket) socket.close();
      },
      status: function () { return { connected: failures === 0 && lastOk > 0, lastOk: lastOk,
                                      serverOffset: serverOffset,
                                      via: socketOpen ? "socket" : "poll" }; },
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
