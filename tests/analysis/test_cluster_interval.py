"""The cluster-robust interval: the plain t interval with one row per cluster, the t interval
of the cluster means with equal clusters, wider than the naive one when rows repeat."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from xaiq.analysis.intervals import cluster_interval, mean_interval_of


def test_one_row_per_cluster_is_the_plain_student_t_interval():
    x = np.random.default_rng(1).random(25)
    got = cluster_interval(x, np.arange(25))
    assert (got.units, got.rows) == (25, 25)
    assert got.interval == pytest.approx(mean_interval_of(x), rel=1e-12)


def test_equal_clusters_give_the_t_interval_of_the_cluster_means():
    rng = np.random.default_rng(2)
    effect = rng.normal(size=30)
    x = np.repeat(effect, 4) + rng.normal(scale=0.1, size=120)
    clusters = np.repeat(np.arange(30), 4)
    got = cluster_interval(x, clusters)
    means = x.reshape(30, 4).mean(axis=1)
    want = stats.ttest_1samp(means, 0.0).confidence_interval()
    assert (got.units, got.rows) == (30, 120)
    assert got.mean == pytest.approx(x.mean())
    assert got.interval == pytest.approx((want.low, want.high), rel=1e-10)
    naive = mean_interval_of(x)
    assert got.interval[1] - got.interval[0] > 1.5 * (naive[1] - naive[0])


def test_nan_rows_are_dropped_and_one_cluster_has_no_interval():
    x = np.array([0.5, np.nan, 0.7, 0.1])
    got = cluster_interval(x, [1, 2, 1, 1])
    assert (got.units, got.rows) == (1, 3) and got.interval is None
    assert got.mean == pytest.approx(np.nanmean(x))
    empty = cluster_interval([np.nan], [3])
    assert (empty.units, empty.rows, empty.mean, empty.interval) == (0, 0, None, None)


def test_unequal_clusters_match_the_cr1_formula_by_hand():
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    c = np.array([0, 0, 1, 1, 2])
    mean = x.mean()  # 4
    # cluster sums 3, 7, 10 with sizes 2, 2, 1: residual sums -5, -1, 6
    se = np.sqrt(3 / 2 * (25 + 1 + 36)) / 5
    half = stats.t.ppf(0.975, 2) * se
    assert cluster_interval(x, c).interval == pytest.approx((mean - half, mean + half))
