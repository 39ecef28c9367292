// Live progress on the Jobs page: polls /api/jobs every 2 s and updates each row in place.
(function () {
  "use strict";
  var table = document.getElementById("jobs");
  if (!table) { return; }
  var live = document.getElementById("live");
  var query = new URLSearchParams();
  if (table.dataset.status) { query.set("status", table.dataset.status); }
  if (table.dataset.kind) { query.set("kind", table.dataset.kind); }
  function update(job) {
    var row = table.querySelector('tr[data-job="' + job.job + '"]');
    if (!row) { return false; }
    var status = row.querySelector(".status");
    status.textContent = job.status;
    status.className = "status st-" + job.status;
    row.querySelector("progress").value = job.percent;
    var text = job.samples_finished + "/" + job.n_samples + " (" + job.percent + "%)";
    if (job.samples_failed) { text += ", " + job.samples_failed + " failed"; }
    if (job.rate && !job.finished_at) { text += ", " + job.rate.toFixed(2) + " samples/s"; }
    if (job.eta_seconds && !job.finished_at) { text += ", ETA " + Math.round(job.eta_seconds) + " s"; }
    row.querySelector(".ptext").textContent = text;
    return true;
  }
  function poll() {
    fetch("/api/jobs?" + query.toString(), {credentials: "same-origin"})
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (data) {
        var unknown = data.jobs.filter(function (j) { return !update(j); });
        live.textContent = "updated " + new Date().toLocaleTimeString() +
          (unknown.length ? "; new jobs: reload to list them" : "");
      })
      .catch(function (e) { live.textContent = "progress not updated: " + e.message; });
  }
  setInterval(poll, 2000);
})();
