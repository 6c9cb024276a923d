// Brigade tablet behaviour: idle lock, keypads (PIN, temperature), live countdowns, retries.
// Loaded in <head> without defer: the keypads' taps are handled on the document from the
// first moment a key is on screen, not lost until a deferred script attaches handlers.
(function () {
  "use strict";
  // HTMX 2 does not swap 4xx responses by default; 422 carries the item with its error.
  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx) {
      htmx.config.responseHandling = [
        { code: "204", swap: false }, { code: "[23]..", swap: true },
        { code: "422", swap: true }, { code: "[45]..", swap: false, error: true },
      ];
    }
    setupIdleLock();
    keypadInputs(document);
    tickCountdowns();
    setInterval(tickCountdowns, 1000);
  });
  document.addEventListener("htmx:load", function (ev) { keypadInputs(ev.detail.elt); });
  document.addEventListener("click", keypadTap);

  // The shared tablet returns to the PIN pad after the configured idle time.
  function setupIdleLock() {
    var seconds = parseInt(document.body.dataset.idleSeconds || "0", 10);
    if (!seconds) return;
    var last = Date.now();
    ["pointerdown", "keydown", "touchstart", "input"].forEach(function (ev) {
      document.addEventListener(ev, function () { last = Date.now(); }, { passive: true });
    });
    setInterval(function () {
      if (Date.now() - last < seconds * 1000) return;
      var form = document.createElement("form");
      form.method = "post"; form.action = document.body.dataset.idleUrl;
      var token = document.querySelector("input[name=csrf_token]");
      if (token) form.appendChild(token.cloneNode());
      document.body.appendChild(form); form.submit();
    }, 1000);
  }

  // The on-screen keypad is the keyboard: keep the tablet's own from covering it.
  function keypadInputs(root) {
    if (!root.querySelectorAll) return;
    root.querySelectorAll(".pin-input, .keypad-input").forEach(function (input) {
      input.setAttribute("inputmode", "none");
    });
  }

  // One handler for every keypad, on the document: a PIN (digits, up to 8) or a temperature
  // (minus sign, one decimal point, up to 6 characters). OK is the form's own submit button.
  function keypadTap(ev) {
    var key = ev.target.closest && ev.target.closest(".key[data-key]");
    if (!key) return;
    var form = key.closest("form");
    var input = form && form.querySelector(".pin-input, .keypad-input");
    if (!input) return;
    var k = key.dataset.key, v = input.value;
    if (k === "clear") v = v.slice(0, -1);
    else if (input.classList.contains("pin-input")) { if (v.length < 8) v += k; }
    else if (k === "-") v = v.charAt(0) === "-" ? v.slice(1) : "-" + v;
    else if (k === ".") { if (v.indexOf(".") < 0 && v.length < 6) v += (/\d$/.test(v) ? "" : "0") + "."; }
    else if (v.length < 6) v += k;
    input.value = v;
    if (input.classList.contains("pin-input")) input.focus();
  }

  // A sensor reading offered for a temperature item: its age kept current, and the offer
  // taken away once the reading is stale (the server refuses it then anyway).
  function tickSensorReadings() {
    document.querySelectorAll("[data-read-at]").forEach(function (button) {
      var now = Date.now();
      if (now >= Date.parse(button.dataset.staleAt)) {
        var form = button.closest("form");
        if (form) form.hidden = true;
        return;
      }
      var age = button.querySelector(".sensor-age");
      var s = Math.max(0, Math.floor((now - Date.parse(button.dataset.readAt)) / 1000));
      if (age) age.textContent = (s < 60 ? age.dataset.seconds : age.dataset.minutes)
        .replace("{n}", String(s < 60 ? s : Math.floor(s / 60)));
    });
  }

  function tickCountdowns() {
    tickSensorReadings();
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var left = Math.round((Date.parse(el.dataset.countdown) - Date.now()) / 1000);
      if (left <= 0) {
        var timer = el.closest(".timer");
        if (timer && !timer.classList.contains("timer-expired")) {
          timer.classList.add("timer-expired");
          el.textContent = el.dataset.expiredText || "0:00";
          if (window.htmx) htmx.trigger("#timers", "refresh");
        }
        return;
      }
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(s).padStart(2, "0");
    });
  }

  // Polls are not someone using the tablet: marked so the server's idle lock ignores them.
  // (An inherited hx-headers would also mark the forms inside the polled section.)
  document.addEventListener("htmx:configRequest", function (ev) {
    if (ev.detail.elt.hasAttribute("data-poll")) ev.detail.headers["X-Brigade-Poll"] = "1";
  });

  // A section marked data-hold-while-typing skips its timed refresh while someone types in
  // one of its fields (the swap would wipe what they typed); other triggers still refresh it.
  // Done here, not as an hx-trigger filter: those are evaluated code, which the CSP forbids.
  document.addEventListener("htmx:confirm", function (ev) {
    var elt = ev.detail.elt, active = document.activeElement;
    if (elt.hasAttribute("data-hold-while-typing") && !ev.detail.triggeringEvent &&
        active && active.tagName === "INPUT" && elt.contains(active)) {
      ev.preventDefault();
    }
  });

  // A tap made while the connection is down is kept and retried until it is saved.
  document.addEventListener("htmx:sendError", function (ev) {
    var cfg = ev.detail.requestConfig;
    var box = cfg.elt.closest(".item, .timer, section");
    if (box) {
      box.classList.add("unsaved");
      box.dataset.unsaved = document.body.dataset.unsavedText || "Not saved yet, retrying";
    }
    setTimeout(function () {
      htmx.ajax(cfg.verb.toUpperCase(), cfg.path, {
        source: cfg.elt, target: cfg.target, values: Object.fromEntries(cfg.formData),
        swap: cfg.elt.getAttribute("hx-swap") || "innerHTML",
      });
    }, 3000);
  });
})();
