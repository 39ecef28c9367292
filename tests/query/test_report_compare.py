"""``xaiq report A B``: every metric x pair x configuration both jobs have, compared with
intervals and Holm-adjusted p-values, paired by sample where the jobs share images."""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy import stats
from sqlalchemy.orm import Session

from xaiq.analysis.job_compare import compare_jobs
from xaiq.analysis.multiplicity import holm
from xaiq.db.models import METRIC_COLUMNS, Faithfulness, SanityCheck
from xaiq.report import build_report

K_FRAC_FREE = {"euclidean", "euclidean_abs"}


@pytest.fixture
def engine(tmp_path, monkeypatch):
    """The store the CLI opens (XAIQ_HOME in tmp, migrated), on SQLite: the comparison reads
    through plain selects; the page is backend-independent (as in test_report)."""
    from xaiq.db.session import dispose_engines, get_engine

    monkeypatch.setenv("XAIQ_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XAIQ_DB_URL", raising=False)
    yield get_engine()
    dispose_engines()


def _add_faith_and_sanity(store) -> None:  # noqa: ANN001
    """Deletion/insertion AUCs (two methods, pixels) and a cascading sanity check for both
    jobs of the fixture; sample i's values differ between the jobs."""
    rng = np.random.default_rng(3)
    with Session(store.engine) as s, s.begin():
        for job in (store.disagreement_job, store.second_job):
            model = store.jobs[job]["model"]
            n = sum(1 for j, _ in store.samples if j == job)
            for i in range(n):
                for m in ("integrated_gradients", "saliency"):
                    dele, ins = (float(x) for x in rng.uniform(0, 1, 2))
                    s.add(
                        Faithfulness(
                            job_id=job,
                            sample_index=i,
                            method=m,
                            model=model,
                            target=1,
                            target_kind="pred",
                            unit="pixels",
                            n_segments=0,
                            order="signed",
                            substrate="baseline",
                            step=28,
                            n_steps=28,
                            deletion_auc=dele,
                            insertion_auc=ins,
                            ties="random",
                            kernel="reference",
                        )
                    )
                    for order, layer in enumerate(("fc", "conv1"), start=1):
                        s.add(
                            SanityCheck(
                                job_id=job,
                                sample_index=i,
                                method=m,
                                model=model,
                                target=1,
                                target_kind="pred",
                                mode="cascading",
                                layer=layer,
                                layer_order=order,
                                spearman_abs=float(rng.uniform(0.6, 0.9))
                                if m == "integrated_gradients"
                                else float(rng.uniform(0.0, 0.2)),
                                spearman_signed=float(rng.uniform(-0.1, 0.1)),
                                ssim=float(rng.uniform(0, 1)),
                                superpixels="grid",
                                n_segments=16,
                                k_frac=0.25,
                                n=16,
                                k=4,
                            )
                        )


def _expected_cells(store) -> dict[str, set[tuple]]:  # noqa: ANN001
    """metric -> the (pair, n_segments, k_frac) cells present in both jobs, from the rows
    the fixture wrote (the distances once per configuration: k_frac None)."""
    per_job: dict[int, dict[str, set[tuple]]] = {}
    for d in store.disagreements:
        for m in METRIC_COLUMNS:
            k = None if m in K_FRAC_FREE else d["k_frac"]
            cell = (f"{d['method_a']} vs {d['method_b']}", d["n_segments"], k)
            per_job.setdefault(d["job_id"], {}).setdefault(m, set()).add(cell)
    a, b = per_job[store.disagreement_job], per_job[store.second_job]
    return {m: a[m] & b[m] for m in METRIC_COLUMNS}


def _values(store, job: int, metric: str, cell: tuple) -> dict[int, float]:  # noqa: ANN001
    pair, nseg, k = cell
    out: dict[int, tuple[float, float]] = {}
    for d in store.disagreements:
        if d["job_id"] != job or f"{d['method_a']} vs {d['method_b']}" != pair:
            continue
        if d["n_segments"] != nseg or (k is not None and d["k_frac"] != k):
            continue
        i = d["sample_index"]
        if i in out and out[i][0] <= d["k_frac"]:  # the smallest k_frac's value
            continue
        out[i] = (d["k_frac"], d[metric])
    return {i: v for i, (_, v) in out.items() if v is not None}


def test_every_metric_pair_and_configuration_is_compared_paired_and_holm_adjusted(store):
    cmp = compare_jobs(store.engine, store.disagreement_job, store.second_job)
    expected = _expected_cells(store)
    got: dict[str, set[tuple]] = {}
    for r in cmp.disagreement:
        got.setdefault(r["metric"], set()).add((r["pair"], r["n_segments"], r["k_frac"]))
    assert got == expected
    assert len(cmp.disagreement) == sum(len(c) for c in expected.values()) == 10 * 3 * 2
    # same dataset: paired over the samples both jobs have (the second job has 7 of 12)
    assert cmp.paired and cmp.shared_samples == 7
    assert cmp.label_a == f"job {store.disagreement_job} (digits-cnn-weak)"
    assert cmp.label_b == f"job {store.second_job} (digits-cnn)"
    p_values = []
    for r in cmp.disagreement:
        cell = (r["pair"], r["n_segments"], r["k_frac"])
        a = _values(store, store.disagreement_job, r["metric"], cell)
        b = _values(store, store.second_job, r["metric"], cell)
        assert r["n_a"] == len(a) and r["n_b"] == len(b)
        assert r["mean_a"] == pytest.approx(np.mean(list(a.values())))
        shared = sorted(set(a) & set(b))
        d = np.array([a[i] - b[i] for i in shared])
        assert r["n_pairs"] == len(shared) and r["diff"] == pytest.approx(d.mean())
        nz = d[d != 0]
        p = 1.0 if nz.size == 0 else stats.wilcoxon(nz).pvalue
        assert r["p_value"] == pytest.approx(p)
        p_values.append(p)
    for r, p_adj in zip(cmp.disagreement, holm(p_values), strict=True):
        assert r["p_adjusted"] == pytest.approx(p_adj)
    assert cmp.tests == len(p_values)
    assert not cmp.faithfulness and not cmp.sanity  # the fixture's jobs measured neither


def test_faithfulness_aucs_and_sanity_verdicts_are_compared_when_both_jobs_have_them(store):
    _add_faith_and_sanity(store)
    cmp = compare_jobs(store.engine, store.disagreement_job, store.second_job)
    # two methods x deletion/insertion, one game; the tests join the section's family
    assert sorted((r["method"], r["measure"]) for r in cmp.faithfulness) == [
        (m, x)
        for m in ("integrated_gradients", "saliency")
        for x in ("deletion_auc", "insertion_auc")
    ]
    assert all(r["n_pairs"] == 7 and r["n_a"] == 12 and r["n_b"] == 7 for r in cmp.faithfulness)
    assert cmp.tests == len(cmp.disagreement) + 4
    verdicts = {r["method"]: (r["verdict_a"], r["verdict_b"]) for r in cmp.sanity}
    assert verdicts == {"integrated_gradients": ("fail", "fail"), "saliency": ("pass", "pass")}


def test_jobs_on_different_datasets_are_compared_as_independent_samples(store):
    from sqlalchemy import update

    from xaiq.db.models import Job

    with store.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == store.second_job).values(dataset="mnist"))
    cmp = compare_jobs(store.engine, store.disagreement_job, store.second_job)
    assert not cmp.paired
    assert all(r["test"] == "Mann-Whitney U" and r["n_pairs"] is None for r in cmp.disagreement)
    assert cmp.label_b == f"job {store.second_job} (digits-cnn on mnist)"


def _section(raw: str) -> str:
    start = raw.index('<h2 class="compare">')
    return raw[start : raw.index("<h2>Glossary</h2>", start)]


def test_the_report_has_a_row_for_every_metric_pair_and_configuration(store, tmp_path):
    _add_faith_and_sanity(store)
    a, b = store.disagreement_job, store.second_job
    raw = build_report(store.engine, [a, b], tmp_path / "two.html").read_text()
    part = _section(raw)
    title = re.search(r'<h2 class="compare">(.*?)</h2>', part).group(1)
    tests = len(compare_jobs(store.engine, a, b).disagreement) + 4
    assert f"job {a} (digits-cnn-weak) vs job {b} (digits-cnn)" in html_lib.unescape(title)
    assert "paired by sample" in title and f"Holm-adjusted for {tests} tests" in title
    assert "7 samples are in both" in part
    expected = _expected_cells(store)
    tables = re.findall(r'<h4 data-metric="([a-z_]+)">.*?</h4>(.*?)</table>', part, re.S)
    by_metric = {m: t for m, t in tables}
    assert set(by_metric) == {*METRIC_COLUMNS, "deletion_auc", "insertion_auc"}
    for metric, cells in expected.items():
        body = by_metric[metric].split("<tbody>")[1]
        rows = [re.findall(r"<td[^>]*>(.*?)</td>", tr) for tr in body.split("<tr>")[1:]]
        assert len(rows) == len(cells), metric
        seen = set()
        for cols in rows:
            # pair | n_segments | k_frac (distances: any) | A | B | diff | n pairs | p | rb
            k = None if cols[2] == "any" else float(cols[2])
            seen.add((cols[0], int(cols[1]), k))
            assert "[" in cols[3] and "(n=" in cols[3] and "(n=" in cols[4]
        titled = {(_title(p), n, k) for p, n, k in cells}
        assert seen == titled, metric
    assert "Sanity check verdicts" in part and "fail: |map|" in part


def _title(pair: str) -> str:
    from xaiq.report.charts import pair_title

    return html_lib.escape(pair_title(pair))


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_xaiq_report_of_two_jobs_renders_every_row_uncut_in_headless_chromium(
    store, tmp_path, monkeypatch
):
    """The user's command in a subprocess, then the page in the browser: every comparison
    table is inside the page's width or scrolls inside its box, every row is laid out, and
    no table cell is wrapped (one line per row)."""
    browser = _chromium()
    if browser is None:
        if os.environ.get("XAIQ_REQUIRE_SERVICES") == "1":
            pytest.fail("chromium is required (XAIQ_REQUIRE_SERVICES=1) but not installed")
        pytest.skip("chromium not installed")
    _add_faith_and_sanity(store)
    out = tmp_path / "ab.html"
    env = {**os.environ, "XAIQ_ARTIFACTS": str(store.root)}
    code = "from xaiq.cli.main import run; run()"
    a, b = str(store.disagreement_job), str(store.second_job)
    proc = subprocess.run(
        [sys.executable, "-c", code, "report", a, b, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"comparing job {a} with job {b}" in proc.stderr
    probe = (
        "<script>document.title = JSON.stringify({"
        "page: document.documentElement.clientWidth,"
        "tables: Array.from(document.querySelectorAll('table.cmp')).map(t => {"
        " const box = t.parentElement.getBoundingClientRect();"
        " const rows = Array.from(t.tBodies[0].rows);"
        " const tall = rows.map(r => r.getBoundingClientRect().height);"
        " return [rows.length, box.right, t.parentElement.scrollWidth,"
        " t.parentElement.clientWidth, Math.max(...tall), Math.min(...tall)]; })})"
        "</script>"
    )
    probed = tmp_path / "probe.html"
    probed.write_text(out.read_text().replace("</body>", probe + "</body>"))
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1300,3000",
    ]
    dom = subprocess.run(
        [*cmd, "--dump-dom", probed.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    got = json.loads(html_lib.unescape(dom[dom.index("<title>") + 7 : dom.index("</title>")]))
    # a table per metric (6 rows: 3 pairs x 2 configurations), per AUC (2 methods), and
    # the sanity verdicts (2 methods)
    rows = [t[0] for t in got["tables"]]
    assert rows == [6] * len(METRIC_COLUMNS) + [2, 2, 2]
    for _, right, scroll_w, client_w, tallest, lowest in got["tables"]:
        assert right <= got["page"] + 1  # the box stays inside the page
        assert scroll_w >= client_w  # wider content scrolls in its box, never clipped away
        assert tallest <= lowest + 1  # no cell wraps onto a second line
    shot = tmp_path / "ab.png"
    subprocess.run(
        [*cmd, "--window-size=1300,9000", f"--screenshot={shot}", out.resolve().as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file()
    Image.open(shot).load()
    keep = os.environ.get("XAIQ_KEEP_SCREENSHOTS")
    if keep:  # for a human to look at
        shutil.copy(shot, os.path.join(keep, "report_ab.png"))


def test_jobs_without_a_common_pair_say_what_each_has_instead(store, tmp_path):
    """A cross-model job's maps are named model:method: no pair of a single-model job."""
    from sqlalchemy import update

    from xaiq.db.models import Disagreement

    d = Disagreement
    with store.engine.begin() as conn:
        conn.execute(
            update(d)
            .where(d.job_id == store.second_job)
            .values(method_a="digits-cnn:" + d.method_a, method_b="digits-cnn-weak:" + d.method_b)
        )
    a, b = store.disagreement_job, store.second_job
    cmp = compare_jobs(store.engine, a, b)
    assert cmp.disagreement == [] and cmp.tests == 0
    assert cmp.only_a == cmp.only_b == 60
    part = _section(build_report(store.engine, [a, b], tmp_path / "none.html").read_text())
    text = html_lib.unescape(part)
    assert "no pair and configuration in common" in text and "0 tests" not in text
    assert "Integrated Gradients vs Saliency" in text
    assert "digits-cnn: Integrated Gradients vs digits-cnn-weak: Saliency" in text
