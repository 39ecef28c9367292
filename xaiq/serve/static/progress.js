// Live progress on the Jobs page: polls /api/jobs every 2 s and updates each row in place;
// a job submitted since the page opened gets a new row (no reload needed).
(function () {
  "use strict";
  var table = document.getElementById("jobs");
  if (!table) { return; }
  var live = document.getElementById("live");
  var body = table.tBodies[0];
  var query = new URLSearchParams();
  if (table.dataset.status) { query.set("status", table.dataset.status); }
  if (table.dataset.kind) { query.set("kind", table.dataset.kind); }
  function cell(row, text, cls) {
    var td = row.insertCell(-1);
    if (cls) { td.className = cls; }
    if (text !== undefined) { td.textContent = text; }
    return td;
  }
  function link(td, href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    td.appendChild(a);
  }
  function addRow(job) {
    // every value goes in as text: names and tags are the user's
    var empty = body.querySelector("td.note");
    if (empty) { empty.parentNode.remove(); }
    var row = document.createElement("tr");
    row.dataset.job = job.job;
    link(cell(row), "/jobs/" + job.job, String(job.job));
    cell(row, job.name);
    cell(row, job.tags.join(", "));
    cell(row, job.kind);
    cell(row, job.models.join(", "));
    cell(row, job.dataset);
    cell(row, job.status, "status st-" + job.status);
    var progress = cell(row, undefined, "progress");
    var bar = document.createElement("progress");
    bar.max = 100;
    progress.appendChild(bar);
    var text = document.createElement("span");
    text.className = "ptext";
    progress.appendChild(text);
    var stage = document.createElement("span");
    stage.className = "stage";
    progress.appendChild(stage);
    cell(row, job.created_at || "");
    link(cell(row), "/jobs/" + job.job + "/samples", "samples");
    // the API lists the newest first: keep the table in that order
    var after = null;
    Array.prototype.forEach.call(body.rows, function (r) {
      if (after === null && Number(r.dataset.job) < job.job) { after = r; }
    });
    body.insertBefore(row, after);
    return row;
  }
  function update(job) {
    var row = body.querySelector('tr[data-job="' + job.job + '"]') || addRow(job);
    var status = row.querySelector(".status");
    status.textContent = job.status;
    status.className = "status st-" + job.status;
    row.querySelector("progress").value = job.percent;
    var text = job.samples_finished + "/" + job.n_samples + " (" + job.percent + "%)";
    if (job.samples_failed) { text += ", " + job.samples_failed + " failed"; }
    if (job.rate && !job.finished_at) { text += ", " + job.rate.toFixed(2) + " samples/s"; }
    if (job.eta_seconds && !job.finished_at) { text += ", ETA " + Math.round(job.eta_seconds) + " s"; }
    row.querySelector(".ptext").textContent = text;
    var stage = row.querySelector(".stage");
    if (stage) { stage.textContent = job.finished_at ? "" : job.stage_text; }
  }
  function poll() {
    fetch("/api/jobs?" + query.toString(), {credentials: "same-origin"})
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (data) {
        data.jobs.slice().reverse().forEach(update);
        live.textContent = "updated " + new Date().toLocaleTimeString();
      })
      .catch(function (e) { live.textContent = "progress not updated: " + e.message; });
  }
  setInterval(poll, 2000);
})();
