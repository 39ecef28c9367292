"""The interval module against scipy's own implementations and hand-checkable cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from xaiq.analysis.intervals import (
    mann_whitney,
    mean_interval,
    mean_interval_of,
    moments_from_sums,
    welch_difference,
    wilson_interval,
)


@pytest.mark.parametrize("n", [2, 5, 40, 3000])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_mean_interval_equals_scipys_one_sample_t_interval(n, level):
    x = np.random.default_rng(n).beta(0.5, 2.0, size=n)
    expected = stats.ttest_1samp(x, 0.0).confidence_interval(confidence_level=level)
    low, high = mean_interval(n, float(x.mean()), float(x.std(ddof=1)), level)
    assert low == pytest.approx(expected.low, rel=1e-12, abs=1e-14)
    assert high == pytest.approx(expected.high, rel=1e-12, abs=1e-14)
    assert mean_interval_of(x, level) == pytest.approx((low, high), rel=1e-12)


def test_mean_interval_from_sums_matches_the_interval_from_the_values():
    x = np.random.default_rng(1).random(10_000) * 2
    mean, sd = moments_from_sums(x.size, float(x.sum()), float((x * x).sum()))
    assert mean == pytest.approx(x.mean(), rel=1e-12)
    assert sd == pytest.approx(x.std(ddof=1), rel=1e-9)
    assert mean_interval(x.size, mean, sd) == pytest.approx(mean_interval_of(x), rel=1e-9)


def test_undefined_and_degenerate_mean_intervals():
    assert mean_interval(1, 0.5, None) is None
    assert mean_interval(0, None, None) is None
    assert moments_from_sums(0, 0.0, 0.0) == (None, None)
    assert moments_from_sums(1, 0.3, 0.09) == (0.3, None)
    # constant data: the rounding of sum(x*x) - sum(x)^2/n never gives a negative variance
    mean, sd = moments_from_sums(3, 0.3, 3 * 0.1 * 0.1)
    assert sd == pytest.approx(0.0, abs=1e-8)
    assert mean_interval(5, 0.25, 0.0) == (0.25, 0.25)
    with pytest.raises(ValueError, match="level"):
        mean_interval(5, 0.25, 0.1, level=95)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (5, 10), (10, 10), (424, 427), (3, 1000)])
@pytest.mark.parametrize("level", [0.9, 0.95])
def test_wilson_interval_equals_scipys_binomtest_wilson(k, n, level):
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    low, high = wilson_interval(k, n, level)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) is None
    assert wilson_interval(0, 7)[0] == 0.0
    assert wilson_interval(7, 7)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(8, 7)


@pytest.mark.parametrize(("na", "nb"), [(2, 2), (5, 40), (300, 120)])
def test_welch_difference_equals_scipys_welch_t_interval(na, nb):
    rng = np.random.default_rng(na * nb)
    a, b = rng.normal(0.3, 1.0, na), rng.normal(0.0, 2.5, nb)
    res = stats.ttest_ind(a, b, equal_var=False)
    expected = res.confidence_interval(confidence_level=0.95)
    d = welch_difference(na, a.mean(), a.std(ddof=1), nb, b.mean(), b.std(ddof=1))
    assert d.diff == pytest.approx(a.mean() - b.mean(), rel=1e-12)
    assert d.low == pytest.approx(expected.low, rel=1e-10)
    assert d.high == pytest.approx(expected.high, rel=1e-10)
    assert d.df == pytest.approx(res.df, rel=1e-10)


def test_welch_difference_without_enough_values_has_no_interval():
    d = welch_difference(1, 0.5, None, 10, 0.2, 0.1)
    assert (d.diff, d.low, d.high) == (pytest.approx(0.3), None, None)
    assert welch_difference(3, 1.0, 0.0, 4, 1.0, 0.0).low == 0.0


def _pairwise_dominance(a, b):
    diff = np.subtract.outer(np.asarray(a), np.asarray(b))
    return float((diff > 0).mean() - (diff < 0).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mann_whitney_is_scipys_and_rank_biserial_is_cliffs_delta(seed):
    rng = np.random.default_rng(seed)
    # coarse values: many ties, as the top-k metrics have
    a = np.round(rng.random(37) * 4) / 4
    b = np.round(rng.random(23) * 4 + 0.5) / 4
    res = stats.mannwhitneyu(a, b, alternative="two-sided")
    mw = mann_whitney(a, b)
    assert mw.u == res.statistic
    assert mw.p_value == pytest.approx(res.pvalue, rel=1e-12)
    assert mw.rank_biserial == pytest.approx(_pairwise_dominance(a, b), abs=1e-12)


def test_mann_whitney_extremes():
    assert mann_whitney([], [1.0]) is None
    full = mann_whitney([2.0, 3.0, 4.0], [0.0, 1.0])
    assert full.rank_biserial == 1.0
    assert mann_whitney([0.0, 1.0], [2.0, 3.0, 4.0]).rank_biserial == -1.0
    same = mann_whitney([0.5, 0.5], [0.5, 0.5, 0.5])
    assert same.rank_biserial == 0.0 and same.p_value == 1.0
    assert not math.isnan(same.p_value)


def test_signed_rank_is_scipys_wilcoxon_with_the_matched_pairs_rank_biserial():
    from xaiq.analysis.intervals import signed_rank

    rng = np.random.default_rng(3)
    d = np.round(rng.normal(0.1, 0.3, 60) * 8) / 8  # ties and zeros, as metric differences
    res = stats.wilcoxon(d[d != 0])
    got = signed_rank(d)
    assert got.statistic == res.statistic and got.p_value == pytest.approx(res.pvalue)
    nz = d[d != 0]
    ranks = stats.rankdata(np.abs(nz))
    want = (ranks[nz > 0].sum() - ranks[nz < 0].sum()) / ranks.sum()
    assert got.rank_biserial == pytest.approx(want) and got.n == nz.size
    assert signed_rank([0.0, 0.0]) is None
    assert signed_rank([0.5, 0.25, 1.0]).rank_biserial == 1.0
