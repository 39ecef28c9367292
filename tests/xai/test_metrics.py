"""Known answers for every disagreement metric (the metric contract, docs/architecture.md),
edge cases and checks."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

from tests.conftest import DATA
from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.metrics import (
    METRIC_NAMES,
    RANKING_METRICS,
    compare_batch,
    compare_vectors,
    top_k_size,
)

CASES = json.loads((DATA / "metric_cases.json").read_text())["cases"]


def assert_metrics(got: dict, expected: dict) -> None:
    for key, want in expected.items():
        value = got[key]
        if want is None:
            assert value is None, f"{key}: expected NULL, got {value!r}"
        else:
            assert value is not None, f"{key}: expected {want}, got NULL"
            ok = math.isclose(value, want, rel_tol=1e-9, abs_tol=1e-12)
            assert ok, f"{key}: {value} != {want}"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_contract_case_gives_the_expected_values(case):
    got = compare_vectors(np.array(case["a"]), np.array(case["b"]), case["k_frac"])
    assert_metrics(got, case["expected"])
    assert set(got) == set(METRIC_NAMES) | {"n", "k"}


def test_hand_computed_ties_with_opposite_signs():
    # |a| = |b| on the top two (tied, so lower index first); the signs are swapped there.
    got = compare_vectors([2.0, -2.0, 1.0, 0.0], [-2.0, 2.0, 0.0, 1.0], k_frac=0.5)
    assert_metrics(
        got,
        {
            "n": 4,
            "k": 2,
            "feature_agreement": 1.0,
            "feature_disagreement": 0.0,
            "sign_agreement": 0.0,
            "sign_disagreement": 1.0,
            "rank_agreement": 1.0,
            "signed_rank_agreement": 0.0,
            "rank_correlation": 7 / 9,
            "pairwise_rank_agreement": 5 / 6,
            "euclidean": math.sqrt(34) / 3,
            "euclidean_abs": math.sqrt(2) / 3,
        },
    )


def test_two_zero_vectors_have_no_ranking_and_no_distance():
    got = compare_vectors(np.zeros(3), np.zeros(3), k_frac=0.5)
    assert_metrics(got, {"n": 3, "k": 1, **dict.fromkeys(METRIC_NAMES)})


def test_a_zero_map_against_a_ranked_one_is_not_total_disagreement():
    # an all-zero Grad-CAM map used to rank by index and count as FD = 1 against anything
    ranked = np.array([0.1, 0.9, 0.3, 0.7, 0.5, 0.2])
    got = compare_vectors(np.zeros(6), ranked, k_frac=0.5)
    assert_metrics(got, {"n": 6, "k": 3, **dict.fromkeys(METRIC_NAMES)})


def test_a_constant_nonzero_map_keeps_its_distances_but_loses_its_ranking():
    const, ranked = np.full(4, -2.0), np.array([1.0, 2.0, 3.0, 4.0])
    got = compare_vectors(const, ranked, k_frac=0.5)
    for name in RANKING_METRICS:
        assert got[name] is None, name
    unit_ranked = ranked / np.linalg.norm(ranked)
    assert got["euclidean"] == pytest.approx(np.linalg.norm(-0.5 - unit_ranked))
    assert got["euclidean_abs"] == pytest.approx(np.linalg.norm(0.5 - unit_ranked))


def test_a_vector_with_one_distinct_magnitude_more_is_ranked_again():
    got = compare_vectors([1.0, 1.0, 1.0, 1.000001], [1.0, 2.0, 3.0, 4.0], k_frac=0.25)
    assert got["feature_agreement"] == 1.0
    assert got["pairwise_rank_agreement"] == pytest.approx(0.5)


def test_single_superpixel_orders_nothing_so_only_distances_remain():
    got = compare_vectors([2.0], [-3.0], k_frac=0.05)
    assert_metrics(
        got,
        {
            "n": 1,
            "k": 1,
            **dict.fromkeys(RANKING_METRICS),
            "euclidean": 2.0,
            "euclidean_abs": 0.0,
        },
    )


def test_negative_zero_has_the_sign_of_zero():
    got = compare_vectors([-0.0, 1.0], [0.0, 1.0], k_frac=1.0)
    assert got["sign_agreement"] == 1.0


def slow_pairwise(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.abs(a), np.abs(b)
    pairs = list(itertools.combinations(range(len(a)), 2))
    same = sum(np.sign(a[i] - a[j]) == np.sign(b[i] - b[j]) for i, j in pairs)
    return same / len(pairs)


@pytest.mark.parametrize("direct", [True, False], ids=["sign-matrices", "kendall-tau"])
@pytest.mark.parametrize("seed", range(6))
def test_pairwise_rank_agreement_matches_a_loop_over_pairs_with_many_ties(
    seed, direct, monkeypatch
):
    from xaiq.xai import metrics

    if not direct:  # the O(n log n) path used above _DIRECT_PAIRS_MAX superpixels
        monkeypatch.setattr(metrics, "_DIRECT_PAIRS_MAX", 1)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    a = rng.integers(-3, 4, size=n).astype(float)  # few distinct values: many ties, zeros
    b = rng.integers(-3, 4, size=n).astype(float)
    got = compare_vectors(a, b, k_frac=0.1)["pairwise_rank_agreement"]
    assert got == pytest.approx(slow_pairwise(a, b), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_rank_correlation_is_scipy_spearman_of_magnitudes(seed):
    rng = np.random.default_rng(100 + seed)
    a, b = np.round(rng.normal(size=50), 1), np.round(rng.normal(size=50), 1)
    want = stats.spearmanr(np.abs(a), np.abs(b)).statistic
    assert compare_vectors(a, b)["rank_correlation"] == pytest.approx(want, abs=1e-12)


def test_random_vectors_give_values_in_range_and_never_nan():
    rng = np.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(1, 40))
        a = rng.integers(-2, 3, size=n) * rng.random()
        b = rng.integers(-2, 3, size=n) * rng.random()
        got = compare_vectors(a, b, k_frac=float(rng.uniform(0.01, 1.0)))
        for name in METRIC_NAMES:
            v = got[name]
            assert v is None or math.isfinite(v)
        if got["euclidean"] is not None:
            assert 0.0 <= got["euclidean"] <= 2.0 + 1e-12
            assert 0.0 <= got["euclidean_abs"] <= math.sqrt(2) + 1e-12
        assert 1 <= got["k"] <= got["n"] == n


def test_identical_maps_agree_fully():
    a = np.random.default_rng(1).normal(size=300)
    got = compare_vectors(a, a.copy())
    assert got["feature_disagreement"] == 0.0 and got["sign_disagreement"] == 0.0
    assert got["rank_correlation"] == pytest.approx(1.0)
    assert got["pairwise_rank_agreement"] == 1.0
    assert got["euclidean"] == pytest.approx(0.0, abs=1e-12)


def test_k_is_the_floor_of_k_frac_times_n_without_float_artifacts():
    assert top_k_size(100, 0.29) == 29  # 0.29 * 100 == 28.999999999999996
    assert top_k_size(19, 0.05) == 1
    assert top_k_size(200, 0.05) == 10
    assert top_k_size(3, 1.0) == 3


@pytest.mark.parametrize("k_frac", [0.0, -0.1, 1.01, float("nan"), "half"])
def test_k_frac_outside_zero_one_is_refused(k_frac):
    with pytest.raises(InvalidParameterError, match="k_frac"):
        compare_vectors([1.0, 2.0], [2.0, 1.0], k_frac=k_frac)


def test_bad_vectors_are_refused_with_the_problem_named():
    with pytest.raises(InvalidParameterError, match="length"):
        compare_vectors([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(InvalidParameterError, match="non-finite"):
        compare_vectors([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(InvalidParameterError, match="empty"):
        compare_vectors([], [])
    with pytest.raises(InvalidParameterError, match="1-D"):
        compare_vectors(np.ones((2, 2)), np.ones((2, 2)))


def test_compare_batch_equals_per_image_comparisons():
    rng = np.random.default_rng(3)
    va = [rng.normal(size=n) for n in (5, 30, 200)]
    vb = [rng.normal(size=n) for n in (5, 30, 200)]
    batch = compare_batch(va, vb, k_frac=0.1)
    assert batch == [compare_vectors(a, b, 0.1) for a, b in zip(va, vb, strict=True)]


def test_compare_batch_names_the_failing_image_and_refuses_uneven_batches():
    with pytest.raises(InvalidParameterError, match="image 1"):
        compare_batch([[1.0], [1.0, 2.0]], [[1.0], [1.0]])
    with pytest.raises(InvalidParameterError, match="batches differ"):
        compare_batch([[1.0]], [])


def test_metric_names_follow_the_database_columns():
    from xaiq.db.models import METRIC_COLUMNS

    assert METRIC_NAMES == METRIC_COLUMNS
