// trailguard console: the little script the pages use. Plain JavaScript, no dependencies.
// - live regions: [data-live-url] is polled while the tab is visible; the server answers 204
//   when nothing changed, or the region's new HTML (rendered and escaped by the server).
// - copy buttons: [data-copy] puts its value on the clipboard.
// Nothing here builds HTML from data: fragments come from the server, text goes in as text.
(function () {
  "use strict";

  function setStatus(region, text) {
    var id = region.getAttribute("data-live-status");
    var target = id ? document.getElementById(id) : null;
    if (target) { target.textContent = text; }
  }

  function startLive(region) {
    var base = region.getAttribute("data-live-url");
    var fingerprint = region.getAttribute("data-live-fingerprint") || "";
    var interval = parseInt(region.getAttribute("data-live-interval") || "5000", 10);
    var stopped = false;

    function schedule() {
      if (!stopped) { window.setTimeout(poll, interval); }
    }

    function poll() {
      if (document.hidden) { schedule(); return; }
      var url = base + (base.indexOf("?") >= 0 ? "&" : "?") + "fp=" + encodeURIComponent(fingerprint);
      fetch(url, { credentials: "same-origin", redirect: "manual", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403) {
            stopped = true;
            setStatus(region, "live updates stopped: sign in again");
            return null;
          }
          if (response.status === 204) { return null; }
          if (!response.ok) { setStatus(region, "live update failed (" + response.status + ")"); return null; }
          fingerprint = response.headers.get("X-Live-Fingerprint") || fingerprint;
          return response.text().then(function (html) {
            var parsed = new DOMParser().parseFromString(html, "text/html");
            region.replaceChildren.apply(region, Array.prototype.slice.call(parsed.body.childNodes));
            region.setAttribute("data-live-fingerprint", fingerprint);
            setStatus(region, "updated " + new Date().toLocaleTimeString());
          });
        })
        .catch(function () { setStatus(region, "live update failed: is the gateway running?"); })
        .then(schedule);
    }

    schedule();
  }

  function copy(button) {
    var value = button.getAttribute("data-copy") || "";
    var done = function () {
      var label = button.textContent;
      button.textContent = "copied";
      window.setTimeout(function () { button.textContent = label; }, 1200);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(done, function () {});
      return;
    }
    var field = document.createElement("textarea");
    field.value = value;
    field.setAttribute("readonly", "");
    document.body.appendChild(field);
    field.select();
    try { document.execCommand("copy"); done(); } catch (e) { /* nothing to do */ }
    document.body.removeChild(field);
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
    if (target) { event.preventDefault(); copy(target); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-live-url]"), startLive);
  });
})();
