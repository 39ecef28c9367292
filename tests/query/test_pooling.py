"""The pooling rule, intervals, NULL reasons and ``--compare`` of ``xaiq stats disagreement``,
checked against scipy over the fixture's rows (two jobs, two models, two configurations)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from sqlalchemy.orm import Session

from xaiq.analysis.compare import compare_table
from xaiq.analysis.grouping import resolve_grouping
from xaiq.analysis.stats_table import disagreement_table
from xaiq.cli.main import main
from xaiq.db.errors import QueryError
from xaiq.db.models import Disagreement, Job, JobKind, JobStatus


@pytest.fixture(autouse=True)
def _cli_reads_the_fixture_store(request, monkeypatch):
    if "store" in request.fixturenames:
        store = request.getfixturevalue("store")
        monkeypatch.setattr("xaiq.cli.query._engine", lambda: store.engine)


def _run(capsys, *args: str) -> tuple[str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out, captured.err


def _values(store, job, pair, n_segments, metric):
    return [
        d[metric]
        for d in store.disagreements
        if d["job_id"] == job
        and f"{d['method_a']} vs {d['method_b']}" == pair
        and d["n_segments"] == n_segments
    ]


def test_a_sweep_job_without_group_by_gives_one_row_per_configuration_and_pair(store, capsys):
    job = store.disagreement_job
    out, _ = _run(
        capsys, "stats", "disagreement", "--job", str(job), "-M", "euclidean", "-f", "json"
    )
    rows = json.loads(out)
    # 3 pairs x 2 configurations (n_segments 16 with k_frac 0.05, 49 with 0.1): never pooled;
    # euclidean does not depend on k_frac, so its rows leave it empty
    assert sorted((r["pair"], r["n_segments"], r["k_frac"]) for r in rows) == sorted(
        (p, n, None)
        for p in (
            "integrated_gradients vs saliency",
            "integrated_gradients vs grad_cam",
            "saliency vs grad_cam",
        )
        for n in (16, 49)
    )
    n_samples = 12
    for r in rows:
        assert r["n"] + r["nulls"] == n_samples  # one value per sample, not two
        values = np.array(
            [
                v
                for v in _values(store, job, r["pair"], r["n_segments"], "euclidean")
                if v is not None
            ]
        )
        assert r["mean"] == pytest.approx(values.mean())
        low, high = stats.t.interval(0.95, values.size - 1, values.mean(), stats.sem(values))
        assert r["ci_low"] == pytest.approx(max(low, 0.0))
        assert r["ci_high"] == pytest.approx(min(high, 2.0))


def test_pool_flag_pools_the_configurations_and_the_title_says_so(store, capsys):
    job = str(store.disagreement_job)
    out, _ = _run(capsys, "stats", "disagreement", "--job", job, "-M", "euclidean", "--pool")
    assert "POOLED over n_segments (16, 49)" in out
    out, _ = _run(
        capsys, "stats", "disagreement", "--job", job, "-M", "euclidean", "--pool", "-f", "json"
    )
    rows = json.loads(out)
    # 12 samples x 2 configurations: n counts the samples with a value, rows the values
    assert len(rows) == 3 and all(r["rows"] + r["nulls"] == 24 for r in rows)
    for r in rows:
        members = [
            d
            for d in store.disagreements
            if d["job_id"] == store.disagreement_job
            and f"{d['method_a']} vs {d['method_b']}" == r["pair"]
            and d["euclidean"] is not None
        ]
        assert r["rows"] == len(members)
        assert r["n"] == len({d["sample_index"] for d in members}) < r["rows"]
    unpooled, _ = _run(capsys, "stats", "disagreement", "--job", job, "-M", "euclidean")
    assert "POOLED" not in unpooled and "model digits-cnn-weak" in unpooled


def test_without_job_filter_models_are_groups_not_pooled(store):
    table = disagreement_table(store.engine, None, ["pair"], ["euclidean"])
    assert table.grouping.added == ["model", "n_segments", "k_frac"]
    assert {r["model"] for r in table.rows} == {"digits-cnn", "digits-cnn-weak"}
    assert len(table.rows) == 2 * 3 * 2


def _job(engine, params: dict) -> int:
    with Session(engine) as s:
        job = Job(
            kind=JobKind.disagreement,
            status=JobStatus.succeeded,
            spec={"superpixels": ["grid"], "n_segments": [4], "k_frac": [0.5], "params": params},
            dataset="d",
            model="m",
            n_samples=1,
            shard_size=1,
        )
        s.add(job)
        s.commit()
        return job.id


def test_jobs_with_different_method_parameters_are_kept_apart_by_job(engine):
    a = _job(engine, {"rise": {"n_masks": 1000}})
    b = _job(engine, {"rise": {"n_masks": 4000}})
    same = _job(engine, {"rise": {"n_masks": 4000}})
    assert resolve_grouping(engine, [a, b], ["pair"]).keys == ["pair", "job"]
    assert resolve_grouping(engine, [b, same], ["pair"]).keys == ["pair"]
    pooled = resolve_grouping(engine, [a, b], ["pair"], pool=True)
    assert pooled.keys == ["pair"] and "method params" in pooled.title("t")


def test_null_reasons_tell_zero_maps_from_constant_maps(engine):
    job = _job(engine, {})
    with Session(engine) as s:
        for i, (fa, euc) in enumerate([(None, None), (None, 0.5), (None, 0.7), (0.25, 1.0)]):
            s.add(
                Disagreement(
                    job_id=job,
                    sample_index=i,
                    method_a="a",
                    method_b="b",
                    superpixels="grid",
                    n_segments=4,
                    k_frac=0.5,
                    n=4,
                    k=2,
                    feature_agreement=fa,
                    euclidean=euc,
                )
            )
        s.commit()
    rows = disagreement_table(engine, [job], ["pair"], "feature_agreement,euclidean").rows
    by = {r["metric"]: r for r in rows}
    assert by["feature_agreement"]["nulls"] == 3
    assert by["feature_agreement"]["null_reason"] == "zero map 1, constant |map| 2"
    assert by["euclidean"]["null_reason"] == "zero map 1"


def test_compare_correct_matches_scipy_on_each_group(store, capsys):
    job = store.disagreement_job
    out, _ = _run(
        capsys,
        "stats",
        "disagreement",
        "--job",
        str(job),
        "--compare",
        "correct",
        "-M",
        "euclidean",
        "-f",
        "json",
    )
    rows = json.loads(out)
    assert len(rows) == 6 and all((r["a"], r["b"]) == (False, True) for r in rows)
    for r in rows:
        members = [
            d
            for d in store.disagreements
            if d["job_id"] == job
            and f"{d['method_a']} vs {d['method_b']}" == r["pair"]
            and d["n_segments"] == r["n_segments"]
            and d["euclidean"] is not None
        ]
        wrong = np.array(
            [
                d["euclidean"]
                for d in members
                if not store.samples[(job, d["sample_index"])]["correct"]
            ]
        )
        right = np.array(
            [d["euclidean"] for d in members if store.samples[(job, d["sample_index"])]["correct"]]
        )
        assert (r["n_a"], r["n_b"]) == (wrong.size, right.size)
        assert r["diff"] == pytest.approx(wrong.mean() - right.mean())
        welch = stats.ttest_ind(wrong, right, equal_var=False).confidence_interval()
        assert (r["diff_low"], r["diff_high"]) == pytest.approx((welch.low, welch.high))
        mw = stats.mannwhitneyu(wrong, right, alternative="two-sided")
        assert r["p_value"] == pytest.approx(mw.pvalue)
        assert r["rank_biserial"] == pytest.approx(2 * mw.statistic / (wrong.size * right.size) - 1)


def test_compare_refuses_keys_without_exactly_two_values(store):
    with pytest.raises(QueryError, match="exactly two values"):
        compare_table(store.engine, [store.disagreement_job], ["pair"], "label")
    with pytest.raises(QueryError, match="cannot also be a group-by key"):
        compare_table(store.engine, None, ["pair", "correct"], "correct")
    # two models in two jobs: a two-level key, the rest of the configuration still grouped
    table = compare_table(store.engine, None, ["pair"], "model", "euclidean")
    assert table.grouping.keys == ["pair", "n_segments", "k_frac"]
    assert {(r["a"], r["b"]) for r in table.rows} == {("digits-cnn", "digits-cnn-weak")}


def test_configuration_comes_from_the_specs_scalars_included_without_reading_rows(engine):
    with Session(engine) as s:
        job = Job(
            kind=JobKind.disagreement,
            status=JobStatus.succeeded,
            # as xaiq.analysis.synthetic writes it: scalars, no target key; no rows at all
            spec={"superpixels": "grid", "n_segments": 49, "k_frac": 0.05},
            dataset="d",
            model="m",
            n_samples=1,
            shard_size=1,
        )
        s.add(job)
        s.commit()
        job_id = job.id
    grouping = resolve_grouping(engine, [job_id], ["pair"])
    assert grouping.keys == ["pair"]
    assert grouping.constant == {
        "model": "m",
        "dataset": "d",
        "superpixels": "grid",
        "n_segments": 49,
        "k_frac": 0.05,
        "target": None,
    }


def test_compare_on_a_key_that_splits_the_same_samples_is_paired(engine):
    rng = np.random.default_rng(5)
    job = _job(engine, {})
    values = {}
    with Session(engine) as s:
        for i in range(30):
            for n_seg in (16, 49):
                v = None if (i == 3 and n_seg == 49) else float(rng.random() + (n_seg == 16) * 0.2)
                values[(i, n_seg)] = v
                s.add(
                    Disagreement(
                        job_id=job,
                        sample_index=i,
                        method_a="a",
                        method_b="b",
                        superpixels="grid",
                        n_segments=n_seg,
                        k_frac=0.5,
                        n=4,
                        k=2,
                        euclidean=v,
                    )
                )
        s.commit()
    (row,) = compare_table(engine, [job], ["pair"], "n_segments", "euclidean").rows
    assert (row["a"], row["b"], row["test"]) == (16, 49, "Wilcoxon signed-rank (paired)")
    d = np.array([values[(i, 16)] - values[(i, 49)] for i in range(30) if i != 3])
    assert row["n_pairs"] == 29 and (row["n_a"], row["n_b"]) == (30, 29)
    assert row["diff"] == pytest.approx(d.mean())
    ci = stats.ttest_1samp(d, 0.0).confidence_interval()
    assert (row["diff_low"], row["diff_high"]) == pytest.approx((ci.low, ci.high))
    assert row["p_value"] == pytest.approx(stats.wilcoxon(d).pvalue)
    ranks = stats.rankdata(np.abs(d))
    want = (ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum()
    assert row["rank_biserial"] == pytest.approx(want) and want > 0  # a shifted up by 0.2
