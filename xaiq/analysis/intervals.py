"""Confidence intervals and two-group comparisons: the one definition every table reuses.

Pure functions of numbers (numpy and scipy only, no store), so any query can call them on
the aggregates it already has:

- :func:`mean_interval` — the Student-t interval of a mean, from ``n``, the mean and the
  sample standard deviation (ddof=1). It needs only SQL-aggregatable quantities
  (``count``, ``sum``, ``sum of squares`` via :func:`moments_from_sums`, or ``avg`` and
  ``stddev_samp``), so it costs nothing extra at any row count::

      mean ± t(1 - alpha/2, n - 1) · sd / √n

  It assumes independent observations; with a few hundred samples or more the central
  limit theorem makes it accurate for the bounded metrics stored here even though their
  distributions are skewed or spiky. ``n < 2`` has no interval (``None``); ``sd = 0``
  gives the degenerate interval ``[mean, mean]``.
- :func:`cluster_interval` — the interval of a mean over rows that repeat a unit (a sample
  seen under several configurations): the cluster-robust (CR1) standard error of the row
  mean, ``se² = G/(G−1) · Σ_g (S_g − n_g·mean)² / N²`` (``G`` clusters, ``S_g`` and ``n_g``
  the sum and count of cluster g, ``N`` rows), with ``t(1 − alpha/2, G − 1)``. With one row
  per cluster it is exactly :func:`mean_interval`; with equal-size clusters it is exactly
  the Student-t interval of the per-cluster means over ``G`` values. Chosen over a cluster
  bootstrap because it is deterministic (no resampling seed), costs one pass, keeps the
  reported mean the plain row mean, and its degrees of freedom are the number of
  independent units, which is what a reader of ``n`` expects.
- :func:`wilson_interval` — the Wilson score interval of a success rate (never outside
  [0, 1], sensible at 0 and n successes, unlike the normal approximation).
- :func:`welch_difference` — the difference of two means with Welch's interval (unequal
  variances, Welch–Satterthwaite degrees of freedom), again from aggregates only.
- :func:`mann_whitney` — scipy's Mann-Whitney U test (two-sided) with the rank-biserial
  correlation as effect size, ``r = 2·U_a / (n_a·n_b) − 1`` in [−1, 1]: the probability
  that a value of group a exceeds one of group b minus the reverse (ties count half). It
  equals Cliff's delta. Positive means group a tends to be larger.
- :func:`signed_rank` — the paired counterpart: scipy's Wilcoxon signed-rank test of
  differences ``a − b`` with the matched-pairs rank-biserial correlation.

``level`` is the confidence level (default 0.95) everywhere; an interval is a
``(low, high)`` tuple of floats, or ``None`` when undefined. Every function accepts plain
Python numbers and returns plain Python floats (no numpy scalars), ready for JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

LEVEL = 0.95

Interval = tuple[float, float]


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), not {level!r}")
    return float(level)


def moments_from_sums(n: int, total: float, total_sq: float) -> tuple[float | None, float | None]:
    """``(mean, sample sd)`` from ``count``, ``sum(x)`` and ``sum(x*x)``; ``None`` where
    undefined (mean for n = 0, sd for n < 2). The variance is clamped at 0 against rounding
    (``sum(x*x) - sum(x)²/n`` can come out a hair negative for constant data)."""
    if n <= 0:
        return None, None
    mean = total / n
    if n < 2:
        return mean, None
    var = max(0.0, (total_sq - total * total / n) / (n - 1))
    return float(mean), math.sqrt(var)


def mean_interval(
    n: int, mean: float | None, sd: float | None, level: float = LEVEL
) -> Interval | None:
    """Student-t interval of a mean from ``n`` values with sample sd ``sd`` (ddof=1);
    ``None`` when ``n < 2`` or an input is missing."""
    level = _check_level(level)
    if mean is None or sd is None or n < 2:
        return None
    half = float(_st.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return float(mean - half), float(mean + half)


def mean_interval_of(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> Interval | None:
    """:func:`mean_interval` of raw values (NaN not allowed)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return None
    return mean_interval(int(v.size), float(v.mean()), float(v.std(ddof=1)), level)


@dataclass(frozen=True)
class ClusteredMean:
    """A row mean with its cluster-robust interval: ``units`` clusters, ``rows`` values."""

    units: int
    rows: int
    mean: float | None
    interval: Interval | None


def cluster_interval(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence[int] | np.ndarray,
    level: float = LEVEL,
) -> ClusteredMean:
    """The mean of ``values`` (float64 ``[N]``, NaN = NULL, dropped with its cluster entry)
    with its CR1 cluster-robust Student-t interval over ``G - 1`` degrees of freedom
    (module doc); ``clusters``: ``[N]`` integer ids. No interval for fewer than 2 clusters."""
    level = _check_level(level)
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(clusters)
    keep = ~np.isnan(v)
    v, c = v[keep], c[keep]
    if v.size == 0:
        return ClusteredMean(0, 0, None, None)
    _, inverse = np.unique(c, return_inverse=True)
    sums = np.bincount(inverse, weights=v)
    counts = np.bincount(inverse).astype(np.float64)
    g, n = int(sums.size), int(v.size)
    mean = float(v.mean())
    if g < 2:
        return ClusteredMean(g, n, mean, None)
    spread = float(np.sum((sums - counts * mean) ** 2))
    se = math.sqrt(g / (g - 1) * spread) / n
    half = float(_st.t.ppf(0.5 + level / 2, g - 1)) * se
    return ClusteredMean(g, n, mean, (mean - half, mean + half))


def wilson_interval(successes: int, n: int, level: float = LEVEL) -> Interval | None:
    """Wilson score interval of the rate ``successes / n``; ``None`` for ``n = 0``."""
    level = _check_level(level)
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, {n}], not {successes}")
    z = float(_st.norm.ppf(0.5 + level / 2))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact ends at 0 and n successes (rounding would leave 1e-17 outside [0, 1])
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return float(low), float(high)


@dataclass(frozen=True)
class Difference:
    """``mean_a - mean_b`` with its Welch interval and degrees of freedom."""

    diff: float
    low: float | None
    high: float | None
    df: float | None


def welch_difference(
    n_a: int,
    mean_a: float,
    sd_a: float | None,
    n_b: int,
    mean_b: float,
    sd_b: float | None,
    level: float = LEVEL,
) -> Difference:
    """Difference of two independent means with Welch's t interval (unequal variances).

    ``se = √(sd_a²/n_a + sd_b²/n_b)``, ``df`` by Welch–Satterthwaite. No interval when a
    group has fewer than 2 values; a zero standard error gives ``[diff, diff]``."""
    level = _check_level(level)
    diff = float(mean_a - mean_b)
    if sd_a is None or sd_b is None or n_a < 2 or n_b < 2:
        return Difference(diff, None, None, None)
    va, vb = sd_a * sd_a / n_a, sd_b * sd_b / n_b
    se2 = va + vb
    if se2 == 0.0:
        return Difference(diff, diff, diff, float(n_a + n_b - 2))
    df = se2 * se2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1))
    half = float(_st.t.ppf(0.5 + level / 2, df)) * math.sqrt(se2)
    return Difference(diff, diff - half, diff + half, float(df))


@dataclass(frozen=True)
class MannWhitney:
    """Two-sided Mann-Whitney U test of group a against group b."""

    u: float  # U statistic of group a
    p_value: float
    rank_biserial: float  # 2·U/(n_a·n_b) − 1; > 0: a tends larger


def mann_whitney(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> MannWhitney | None:
    """scipy's two-sided Mann-Whitney U test (``method="auto"``: exact for small samples
    without ties, else the normal approximation with tie correction) and the rank-biserial
    correlation; ``None`` when a group is empty."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        return None
    res = _st.mannwhitneyu(x, y, alternative="two-sided", method="auto")
    u = float(res.statistic)
    p = float(res.pvalue)
    if math.isnan(p):  # every value equal in both groups: no evidence of a shift
        p = 1.0
    return MannWhitney(u=u, p_value=p, rank_biserial=2.0 * u / (x.size * y.size) - 1.0)


@dataclass(frozen=True)
class SignedRank:
    """Two-sided Wilcoxon signed-rank test of paired differences ``d = a − b``."""

    statistic: float  # scipy's W (the smaller of the positive and negative rank sums)
    p_value: float
    rank_biserial: float  # (R+ − R−) / (R+ + R−) over non-zero d; > 0: a tends larger
    n: int  # pairs used (zero differences dropped, as scipy's default "wilcox")


def signed_rank(d: Sequence[float] | np.ndarray) -> SignedRank | None:
    """scipy's two-sided Wilcoxon signed-rank test of the paired differences ``d`` and the
    matched-pairs rank-biserial correlation; ``None`` when no difference is non-zero."""
    x = np.asarray(d, dtype=np.float64)
    x = x[x != 0.0]
    if x.size == 0:
        return None
    res = _st.wilcoxon(x, alternative="two-sided")
    ranks = _st.rankdata(np.abs(x))
    plus, minus = float(ranks[x > 0].sum()), float(ranks[x < 0].sum())
    return SignedRank(
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        rank_biserial=(plus - minus) / (plus + minus),
        n=int(x.size),
    )


__all__ = [
    "LEVEL",
    "ClusteredMean",
    "cluster_interval",
    "SignedRank",
    "signed_rank",
    "Difference",
    "Interval",
    "MannWhitney",
    "mann_whitney",
    "mean_interval",
    "mean_interval_of",
    "moments_from_sums",
    "welch_difference",
    "wilson_interval",
]
