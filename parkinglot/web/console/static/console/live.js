/* Dashboard live updates: poll /live.json every second and swap in the server-rendered panels.
   No inline script anywhere (the CSP forbids it); this file is the console's only moving part. */
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  if (!status || !window.fetch) { return; }
  var url = status.getAttribute("data-url");
  var loginUrl = status.getAttribute("data-login");
  var token = status.getAttribute("data-token");
  var baseTitle = document.title.replace(/^\(\d+\)\s*/, "");
  var failures = 0;
  var timer = null;
  var known = openAlertIds();

  function openAlertIds() {
    var ids = {};
    var cards = document.querySelectorAll(".alert-card.alert-open[data-alert-id]");
    for (var i = 0; i < cards.length; i++) { ids[cards[i].getAttribute("data-alert-id")] = true; }
    return ids;
  }

  function setStatus(text, bad) {
    status.textContent = text;
    status.classList.toggle("live-bad", !!bad);
  }

  function focusInside(el) {
    var active = document.activeElement;
    return active && active !== document.body && el.contains(active);
  }

  function apply(panels) {
    var deferred = false;
    Object.keys(panels).forEach(function (name) {
      var el = document.querySelector('[data-live="' + name + '"]');
      if (!el) { return; }
      if (focusInside(el)) { deferred = true; return; }  // never yank a button from under the keyboard
      el.innerHTML = panels[name];
    });
    return !deferred;
  }

  function markNew(ids) {
    var next = {};
    (ids || []).forEach(function (id) {
      id = String(id);
      next[id] = true;
      if (!known[id]) {
        var card = document.querySelector('.alert-card[data-alert-id="' + id + '"]');
        if (card) { card.classList.add("is-new"); }
      }
    });
    known = next;
  }

  function updateCount(n) {
    var badge = document.getElementById("open-alert-count");
    if (badge) {
      badge.textContent = String(n);
      badge.hidden = !n;
    }
    document.title = (n ? "(" + n + ") " : "") + baseTitle;
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  function poll() {
    fetch(url + "?token=" + encodeURIComponent(token), {
      credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" }
    }).then(function (resp) {
      if (resp.status === 401) { window.location.assign(loginUrl); return null; }
      if (!resp.ok) { throw new Error("HTTP " + resp.status); }
      return resp.json();
    }).then(function (data) {
      if (!data) { return; }
      failures = 0;
      setStatus("Live", false);
      if (data.changed) {
        if (apply(data.panels)) { token = String(data.token); }
        markNew(data.alert_ids);
        updateCount(data.open_alerts);
      }
      schedule(1000);
    }).catch(function () {
      failures += 1;
      setStatus("Connection lost, retrying…", true);
      schedule(Math.min(1000 * failures, 5000));
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { schedule(0); }
  });
  schedule(1000);
}());
