// meshlog live tail: reads /ui/tail/events (server-sent events) with the page's filters, shows
// each record as a row, newest first. Pause closes the stream; Resume reopens it from the last
// event id seen (from=ID), so nothing is missed or repeated.
(function () {
  "use strict";
  var box = document.getElementById("tail");
  if (!box) { return; }
  var base = box.getAttribute("data-src");
  var rows = document.getElementById("tail-rows");
  var status = document.getElementById("tail-state");
  var button = document.getElementById("tail-toggle");
  var es = null, last = null, count = 0;

  function say(state, text) { box.setAttribute("data-state", state); status.textContent = text; }
  function cell(tr, v) { var td = document.createElement("td"); td.textContent = v == null ? "" : String(v); tr.appendChild(td); }
  function time(r) {
    var ns = r["time_unix_nano"];
    return typeof ns === "number" ? new Date(ns / 1e6).toISOString() : "";
  }
  function add(id, r) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-id", id);
    tr.setAttribute("data-request-id", r["meshlog.request_id"] || "");
    cell(tr, time(r));
    cell(tr, r["resource.service.name"]);
    cell(tr, r["http.request.method"]);
    cell(tr, r["http.response.status_code"]);
    cell(tr, r["url.path"]);
    cell(tr, r["meshlog.request_id"] || r["event_name"]);
    cell(tr, id);
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > 500) { rows.removeChild(rows.lastChild); }
  }
  function open() {
    var url = base;
    if (last) { url += (url.indexOf("?") >= 0 ? "&" : "?") + "from=" + encodeURIComponent(last); }
    es = new EventSource(url);
    say("opening", "Connecting…");
    es.onopen = function () { say("live", "Live" + (last ? ", resumed after " + last : "") + "."); };
    es.onmessage = function (e) {
      var r;
      try { r = JSON.parse(e.data); } catch (_) { return; }
      if (e.lastEventId) { last = e.lastEventId; }
      count += 1;
      add(e.lastEventId, r);
      say("live", "Live: " + count + " records, last id " + last + ".");
    };
    es.addEventListener("lag", function (e) { say("live", "Fell behind: some records were skipped (" + e.data + "); pause and resume to fetch them."); });
    es.addEventListener("gap", function (e) { say("live", "Retention deleted positions " + e.data + "."); });
    es.onerror = function () { if (es && es.readyState === 2) { say("closed", "The stream was refused or closed."); } else { say("opening", "Reconnecting…"); } };
    button.textContent = "Pause";
    button.setAttribute("aria-pressed", "false");
  }
  function pause() {
    if (es) { es.close(); es = null; }
    say("paused", "Paused" + (last ? " at " + last : "") + ".");
    button.textContent = "Resume";
    button.setAttribute("aria-pressed", "true");
  }
  button.addEventListener("click", function () { if (es) { pause(); } else { open(); } });
  open();
})();
