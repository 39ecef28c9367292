"""Statistics that stay valid: pooled groups count samples and cluster their intervals,
distances are not repeated over k_frac, p-values are adjusted and say so, every n shown is
the n used (through the CLI in a subprocess where users see it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import update
from sqlalchemy.orm import Session

from xaiq.analysis.compare import compare_table
from xaiq.analysis.queries import disagreement_stats
from xaiq.analysis.stats_table import disagreement_table
from xaiq.db.models import Disagreement, Job, JobKind, JobStatus, SanityCheck, utcnow

N = 40
CONFIGS = [(16, 0.05), (16, 0.1), (49, 0.05), (49, 0.1)]


def _sweep_job(engine, seed: int = 3) -> tuple[int, dict]:
    """One pair, 40 samples, n_segments x k_frac (a product, as the worker writes it). Each
    sample has its own level (the rows of one image move together); euclidean depends on
    n_segments only, as the metric contract says."""
    rng = np.random.default_rng(seed)
    level = rng.random(N)
    values: dict = {}
    with Session(engine) as s:
        job = Job(
            kind=JobKind.disagreement,
            status=JobStatus.succeeded,
            spec={
                "methods": ["a", "b"],
                "superpixels": ["grid"],
                "n_segments": [16, 49],
                "k_frac": [0.05, 0.1],
            },
            dataset="digits",
            model="m",
            n_samples=N,
            shard_size=8,
        )
        s.add(job)
        s.flush()
        euclid = {(i, n): float(level[i] + rng.normal(0, 0.05)) for i in range(N) for n in (16, 49)}
        for i in range(N):
            for n_seg, k in CONFIGS:
                fd = float(np.clip(level[i] + rng.normal(0, 0.05), 0, 1))
                values[(i, n_seg, k)] = (fd, euclid[(i, n_seg)])
                s.add(
                    Disagreement(
                        job_id=job.id,
                        sample_index=i,
                        method_a="a",
                        method_b="b",
                        superpixels="grid",
                        n_segments=n_seg,
                        k_frac=k,
                        n=n_seg,
                        k=2,
                        feature_disagreement=fd,
                        euclidean=euclid[(i, n_seg)],
                    )
                )
        s.commit()
        return job.id, values


def test_a_pooled_group_counts_samples_and_its_interval_is_clustered(engine):
    job, values = _sweep_job(engine)
    table = disagreement_table(engine, [job], ["pair"], "feature_disagreement", pool=True)
    (row,) = table.rows
    assert (row["n"], row["rows"], row["nulls"]) == (N, 4 * N, 0)
    fd = np.array([[values[(i, n, k)][0] for n, k in CONFIGS] for i in range(N)])
    naive = stats.t.interval(0.95, fd.size - 1, fd.mean(), stats.sem(fd.ravel()))
    clustered = stats.ttest_1samp(fd.mean(axis=1), 0.0).confidence_interval()
    assert row["mean"] == pytest.approx(fd.mean())
    # equal clusters: the t interval of the 40 per-sample means, much wider than 160 rows'
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((clustered.low, clustered.high))
    assert row["ci_high"] - row["ci_low"] > 1.5 * (naive[1] - naive[0])
    assert "n = distinct samples" in table.title and "POOLED" in table.title


def test_euclidean_is_read_once_per_configuration_not_per_k_frac(engine):
    job, values = _sweep_job(engine)
    (pooled,) = disagreement_table(engine, [job], ["pair"], "euclidean", pool=True).rows
    assert (pooled["n"], pooled["rows"]) == (N, 2 * N)  # 2 n_segments, not 4 configurations
    euclid = [values[(i, n, 0.05)][1] for i in range(N) for n in (16, 49)]
    assert pooled["mean"] == pytest.approx(np.mean(euclid))
    # unpooled: one row per n_segments, k_frac empty; feature_disagreement per k_frac
    table = disagreement_table(engine, [job], ["pair"], "feature_disagreement,euclidean")
    shown = sorted(
        (r["metric"], r["n_segments"], r["k_frac"] if r["k_frac"] is not None else -1)
        for r in table.rows
    )
    assert shown == sorted(
        [("euclidean", n, -1) for n in (16, 49)]
        + [("feature_disagreement", n, k) for n, k in CONFIGS]
    )
    assert all(r["n"] == r["rows"] == N for r in table.rows)
    assert "euclidean do not depend on k_frac" in table.title
    # the digest of the finished job answers with the same numbers
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job).values(finished_at=utcnow()))
    keys = ["pair", "n_segments", "k_frac"]
    exact = disagreement_stats(engine, [job], keys, "euclidean", strategy="client")
    digest = disagreement_stats(engine, [job], keys, "euclidean", strategy="digest")
    assert len(digest) == 2 and [r["k_frac"] for r in digest] == [None, None]
    for d, e in zip(digest, exact, strict=True):
        assert d["n"] == e["n"] == N and d["mean"] == pytest.approx(e["mean"], rel=1e-12)


def test_pooled_compare_tests_samples_and_adjusts_its_p_values(engine):
    job, values = _sweep_job(engine)
    table = compare_table(
        engine, [job], ["pair"], "n_segments", "feature_disagreement,euclidean", pool=True
    )
    by = {r["metric"]: r for r in table.rows}
    assert {r["n_pairs"] for r in table.rows} == {N}  # samples, not rows
    d = np.array(
        [
            np.mean([values[(i, 16, k)][0] - values[(i, 49, k)][0] for k in (0.05, 0.1)])
            for i in range(N)
        ]
    )
    assert by["feature_disagreement"]["p_value"] == pytest.approx(stats.wilcoxon(d).pvalue)
    raw = [r["p_value"] for r in table.rows]
    holm = sorted(raw)
    want = [min(1.0, max(2 * holm[0], holm[1])) if p == holm[1] else min(1.0, 2 * p) for p in raw]
    assert [r["p_adjusted"] for r in table.rows] == pytest.approx(want)
    assert table.tests == 2 and "Holm-adjusted for 2 tests" in table.title
    with pytest.raises(Exception, match="do not depend on k_frac"):
        compare_table(engine, [job], ["pair"], "k_frac", "euclidean")


def _cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env_code = "from xaiq.cli.main import run; run()"
    env = {**os.environ, "XAIQ_HOME": str(tmp_path / "home")}
    env.pop("XAIQ_DB_URL", None)
    return subprocess.run(
        [sys.executable, "-c", env_code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture
def cli_store(tmp_path, monkeypatch):
    from xaiq.db.session import dispose_engines, get_engine

    monkeypatch.setenv("XAIQ_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XAIQ_DB_URL", raising=False)
    engine = get_engine()
    yield engine
    dispose_engines()


def test_the_cli_says_how_p_values_are_adjusted(cli_store, tmp_path):
    job, _ = _sweep_job(cli_store)
    base = ["stats", "disagreement", "--job", str(job), "--compare", "n_segments", "--pool"]
    shown = _cli(tmp_path, *base, "-M", "all")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    # two metrics hold values in this job: two tests (a metric without values is no test)
    assert "Holm-adjusted for 2 tests" in text and "p_adj (Holm, 2 tests)" in text
    assert "p_value" not in text  # the raw p stays in csv/json
    bh = _cli(tmp_path, *base, "--adjust", "bh")
    assert "Benjamini-Hochberg-adjusted" in " ".join(bh.stdout.split())
    none = _cli(tmp_path, *base, "--adjust", "none", "-f", "json")
    rows = json.loads(none.stdout)
    assert all(r["p_adjusted"] == r["p_value"] for r in rows)
    held = json.loads(_cli(tmp_path, *base, "-f", "json").stdout)
    tested = [r for r in held if r["p_value"] is not None]
    assert len(tested) == 2 and all(r["p_adjusted"] >= r["p_value"] for r in tested)
    bad = _cli(tmp_path, *base, "--adjust", "bonferroni")
    assert bad.returncode == 2 and "error: unknown p-value adjustment 'bonferroni'" in bad.stderr


def test_sanity_n_is_the_number_of_values_in_the_mean(cli_store, tmp_path):
    rng = np.random.default_rng(4)
    spearman = [None if i == 7 else float(rng.random()) for i in range(30)]
    with Session(cli_store) as s:
        job = Job(
            kind=JobKind.disagreement,
            status=JobStatus.succeeded,
            spec={"methods": ["grad_cam"]},
            dataset="digits",
            model="m",
            n_samples=30,
            shard_size=8,
        )
        s.add(job)
        s.flush()
        for i, v in enumerate(spearman):
            s.add(
                SanityCheck(
                    job_id=job.id,
                    sample_index=i,
                    method="grad_cam",
                    model="m",
                    target=1,
                    target_kind="pred",
                    mode="cascading",
                    layer="fc",
                    layer_order=1,
                    spearman_abs=v,
                    spearman_signed=0.1,
                    ssim=None if i < 3 else 0.5,
                    superpixels="grid",
                    n_segments=16,
                    k_frac=0.25,
                    n=16,
                    k=4,
                    rank_correlation=0.2,
                )
            )
        s.commit()
    out = _cli(tmp_path, "stats", "sanity", "-f", "json")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    used = [v for v in spearman if v is not None]
    assert (row["n"], row["nulls"]) == (29, 1)
    assert row["spearman_abs_mean"] == pytest.approx(np.mean(used))
    assert (row["ssim_n"], row["spearman_signed_n"]) == (27, 30)
    (verdict,) = json.loads(_cli(tmp_path, "stats", "sanity", "--verdicts", "-f", "json").stdout)
    assert (verdict["n"], verdict["nulls"]) == (29, 1)
