// sellersync admin: progressive enhancement of server-rendered pages. Everything reads without
// this script; it adds confirmation dialogs, select-all, the error page's Back link, the sign-in
// page's warning when a Secure cookie cannot be kept, and the live feed (Server-Sent Events from
// /api/events, with a pause toggle) that keeps states, counts, attempts, timings and a job's
// timeline current. No dependencies, nothing loaded from elsewhere, no inline script (the pages'
// Content-Security-Policy allows only this file).
(function () {
  "use strict";

  // Forms with data-confirm ask in a dialog, then send confirmed=yes (without this script the
  // server shows a confirmation page instead).
  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) {
          event.preventDefault();
          return;
        }
        var field = form.querySelector("input[name=confirmed]");
        if (!field) {
          field = document.createElement("input");
          field.type = "hidden";
          field.name = "confirmed";
          form.appendChild(field);
        }
        field.value = "yes";
      });
    });
  }

  function selectAll() {
    var all = document.getElementById("select-all");
    if (!all) return;
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=ids]").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }

  // "Back" goes back in history when there is somewhere to go; its href (the overview) otherwise.
  function backLinks() {
    document.querySelectorAll("a[data-back]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        if (window.history.length > 1) {
          event.preventDefault();
          window.history.back();
        }
      });
    });
  }

  // Browsers keep a Secure cookie only from a secure origin (HTTPS, or this machine).
  function insecureWarning() {
    var warning = document.getElementById("insecure-warning");
    if (warning && !window.isSecureContext) warning.hidden = false;
  }

  var MAX_ITEMS = 50;

  // A time in ms since the epoch as the server writes it: YYYY-MM-DD HH:MM:SS (UTC).
  function time(ms) {
    return ms ? new Date(ms).toISOString().replace("T", " ").substring(0, 19) : "";
  }

  function setText(scope, selector, text) {
    scope.querySelectorAll(selector).forEach(function (element) {
      element.textContent = text;
    });
  }

  // Rows of a job list and the job page follow the job: state, attempt, progress, timings, error.
  function updateJob(event) {
    if (!event.state) return;
    var id = CSS.escape(event.jobId);
    document.querySelectorAll("tr[data-job-id='" + id + "'], #live-entry[data-job-id='" + id + "']").forEach(function (scope) {
      scope.querySelectorAll(".state, #job-state").forEach(function (cell) {
        cell.textContent = event.state;
        cell.dataset.state = event.state;
      });
      setText(scope, "[data-live=attempt]", String(event.attempt));
      setText(scope, "#job-max-attempts", String(event.maxAttempts));
      setText(scope, "[data-live=started]", time(event.startedAt));
      setText(scope, "[data-live=finished]", time(event.finishedAt));
      setText(scope, "[data-live=due]", event.state === "delayed" ? time(event.dueAt) : "");
      setText(scope, "[data-live=error]", event.error || "");
      if (event.event === "completed" || event.state !== "completed") {
        setText(scope, "[data-live=duration]", event.durationMs != null ? String(event.durationMs) : "");
      }
      scope.querySelectorAll("progress").forEach(function (bar) {
        bar.value = event.progress;
        bar.textContent = event.progress + "%";
      });
    });
  }

  // The job page's timeline gets each new transition of its job.
  function appendTimeline(event) {
    var timeline = document.getElementById("timeline");
    var rows = document.getElementById("timeline-rows");
    if (!timeline || !rows || timeline.dataset.jobId !== event.jobId) return;
    var detail = event.error || "";
    if (event.event === "completed" && event.durationMs != null) detail = "took " + event.durationMs + " ms";
    var row = document.createElement("tr");
    row.dataset.event = event.event;
    row.dataset.live = "";
    [time(event.at), event.event, event.state, event.state ? String(event.attempt) : "", "", detail].forEach(function (text, i) {
      var cell = document.createElement("td");
      cell.textContent = text;
      if (i === 5) cell.className = "err";
      row.appendChild(cell);
    });
    rows.appendChild(row);
  }

  // Counts shown on the page ([data-count]) are read again shortly after events arrive.
  function countRefresher(base) {
    var timer = null;
    return function () {
      if (timer || !document.querySelector("[data-count]")) return;
      timer = window.setTimeout(function () {
        timer = null;
        fetch(base + "/counts", { credentials: "same-origin", headers: { accept: "application/json" } })
          .then(function (response) {
            if (!response.ok) throw new Error("counts: " + response.status);
            return response.json();
          })
          .then(function (counts) {
            document.querySelectorAll("[data-count]").forEach(function (element) {
              var queue = counts[element.dataset.queue];
              if (queue && queue[element.dataset.state] !== undefined) {
                element.textContent = String(queue[element.dataset.state]);
              }
            });
          })
          .catch(function () {
            // Signed out or unreachable: the next event tries again.
          });
      }, 300);
    };
  }

  function liveFeed() {
    var panel = document.getElementById("live");
    if (!panel || !window.EventSource) return;
    var feed = document.getElementById("live-feed");
    var status = document.getElementById("live-status");
    var toggle = document.getElementById("live-toggle");
    var base = panel.dataset.base;
    var refreshCounts = countRefresher(base);
    var paused = false;
    var source = null;

    function open() {
      source = new EventSource(panel.dataset.eventsUrl, { withCredentials: true });
      source.onopen = function () { status.textContent = "Connected."; };
      source.onerror = function () { status.textContent = "Reconnecting…"; };
      source.onmessage = function (message) { show(JSON.parse(message.data)); };
    }

    function show(event) {
      var item = document.createElement("li");
      item.className = "ev ev-" + event.event;
      item.dataset.jobId = event.jobId;
      item.dataset.event = event.event;
      var link = document.createElement("a");
      link.href = base + "/queues/" + encodeURIComponent(event.queue) + "/jobs/" + encodeURIComponent(event.jobId);
      link.textContent = event.jobId;
      var attempt = event.state ? " · attempt " + event.attempt + "/" + event.maxAttempts : "";
      item.append(time(event.at).substring(11) + " ", link, " " + event.event + attempt + (event.userId ? " · " + event.userId : ""));
      feed.prepend(item);
      while (feed.children.length > MAX_ITEMS) feed.lastChild.remove();
      updateJob(event);
      appendTimeline(event);
      refreshCounts();
    }

    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      paused = !paused;
      toggle.textContent = paused ? "Resume" : "Pause";
      if (paused) {
        source.close();
        status.textContent = "Paused.";
      } else {
        open();
      }
    });
    // Leaving the page closes the stream first, so the browser does not report it as broken.
    window.addEventListener("pagehide", function () { if (source) source.close(); });
    status.textContent = "Connecting…";
    open();
  }

  document.addEventListener("DOMContentLoaded", function () {
    confirmForms();
    selectAll();
    backLinks();
    insecureWarning();
    liveFeed();
  });
})();
