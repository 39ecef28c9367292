"""The numpy summary definition itself, and the synthetic-row generator the bench uses."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sqlalchemy import func, select

from xaiq.analysis.queries import disagreement_stats
from xaiq.analysis.summary import GroupedColumns, summarize
from xaiq.analysis.synthetic import DEFAULT_METHODS, insert_synthetic_disagreements
from xaiq.db.models import METRIC_COLUMNS, Disagreement, SampleRow


def test_percentiles_are_linear_interpolation_between_order_statistics():
    s = summarize(np.array([4.0, 1.0, 3.0, 2.0, 10.0]))
    # sorted 1 2 3 4 10: p25 at h=1 -> 2, median at h=2 -> 3, p75 at h=3 -> 4
    assert (s["p25"], s["median"], s["p75"]) == (2.0, 3.0, 4.0)
    s = summarize(np.array([1.0, 2.0]))
    # h = 0.25, 0.5, 0.75 between 1 and 2
    assert (s["p25"], s["median"], s["p75"]) == (1.25, 1.5, 1.75)
    assert s["std"] == pytest.approx(np.sqrt(0.5))  # ddof=1


def test_grouped_columns_treat_none_and_nan_as_nulls_and_keep_groups_apart():
    acc = GroupedColumns(1)
    acc.add(iter([("a",), ("b",), ("a",)]), 3, [[1.0, None, 3.0]])
    acc.add(iter([("b",), ("a",)]), 2, [[float("nan"), 5.0]])
    (ka, (sa,)), (kb, (sb,)) = acc.results()
    assert (ka, kb) == (("a",), ("b",))
    assert (sa["n"], sa["nulls"], sa["median"]) == (3, 0, 3.0)
    assert (sb["n"], sb["nulls"], sb["mean"]) == (0, 2, None)


def test_synthetic_rows_cover_every_pair_with_nulls_and_ties(engine):
    job = insert_synthetic_disagreements(engine, 3_000, seed=3, null_frac=0.05)
    pairs = list(itertools.combinations(DEFAULT_METHODS, 2))
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).where(Disagreement.job_id == job))
        samples = conn.scalar(select(func.count()).where(SampleRow.job_id == job))
        nulls = conn.scalar(select(func.count()).where(Disagreement.euclidean.is_(None)))
    assert n == 3_000 and samples == 500
    assert 0.03 * n < nulls < 0.07 * n
    rows = disagreement_stats(engine, [job], ["pair"], "all")
    assert len(rows) == len(pairs) * len(METRIC_COLUMNS)
    assert {r["pair"] for r in rows} == {f"{a} vs {b}" for a, b in pairs}
    means = [r["mean"] for r in rows if r["metric"] == "feature_disagreement"]
    assert len(set(np.round(means, 2))) > 1  # pairs differ on purpose
