// sellersync admin: progressive enhancement of server-rendered pages. Everything reads without
// this script; it adds confirmation dialogs, select-all and the live feed (Server-Sent Events
// from /api/events, with a pause toggle). No dependencies, nothing loaded from elsewhere.
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

  var MAX_ITEMS = 50;

  function liveFeed() {
    var panel = document.getElementById("live");
    if (!panel || !window.EventSource) return;
    var feed = document.getElementById("live-feed");
    var status = document.getElementById("live-status");
    var toggle = document.getElementById("live-toggle");
    var base = panel.dataset.base;
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
      var time = new Date(event.at).toISOString().substring(11, 19);
      item.append(time + " ", link, " " + event.event + (event.userId ? " · " + event.userId : ""));
      feed.prepend(item);
      while (feed.children.length > MAX_ITEMS) feed.lastChild.remove();
      updateRows(event);
    }

    // Rows and the job page follow the job's state.
    function updateRows(event) {
      if (!event.state) return;
      document.querySelectorAll("[data-job-id='" + CSS.escape(event.jobId) + "'] .state, #live-entry[data-job-id='" + CSS.escape(event.jobId) + "'] #job-state").forEach(function (cell) {
        cell.textContent = event.state;
        cell.dataset.state = event.state;
      });
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
    status.textContent = "Connecting…";
    open();
  }

  document.addEventListener("DOMContentLoaded", function () {
    confirmForms();
    selectAll();
    liveFeed();
  });
})();
