"""Holm and Benjamini-Hochberg: a hand-computed case, scipy's BH, and the NULL rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from xaiq.analysis.multiplicity import (
    adjust,
    adjust_rows,
    adjusted_label,
    adjustment_note,
    benjamini_hochberg,
    check_adjust,
    for_display,
    holm,
)
from xaiq.db.errors import QueryError


def test_holm_matches_a_hand_computation():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> the
    # running maximum keeps 0.06); back in input order
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1, and monotone in the sorted order
    assert holm([0.5, 0.2, 0.9]) == pytest.approx([1.0, 0.6, 1.0])


def test_bh_matches_a_hand_computation():
    # m = 4, sorted 0.005, 0.01, 0.03, 0.04: m p / rank = 0.02, 0.02, 0.04, 0.04
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])


@pytest.mark.parametrize("m", [1, 2, 7, 96, 500])
def test_bh_equals_scipys_false_discovery_control(m):
    rng = np.random.default_rng(m)
    p = np.concatenate([rng.random(m - m // 3), rng.random(m // 3) * 1e-3])
    rng.shuffle(p)
    p[: m // 10] = p[m // 10 : 2 * (m // 10)]  # ties
    expected = stats.false_discovery_control(p, method="bh")
    assert benjamini_hochberg(list(p)) == pytest.approx(list(expected), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("m", [1, 3, 96])
def test_holm_is_never_below_raw_and_never_above_bonferroni(m):
    p = list(np.random.default_rng(m).random(m) ** 3)
    adjusted = holm(p)
    for raw, a in zip(p, adjusted, strict=True):
        assert raw <= a + 1e-15
        assert a <= min(1.0, m * raw) + 1e-15


def test_missing_p_values_are_not_tests():
    out = adjust([0.01, None, 0.04], "holm")
    assert out == pytest.approx([0.02, None, 0.04])
    assert adjust([0.01, None], "none") == [0.01, None]
    rows = [{"p_value": 0.01}, {"p_value": None}, {"p_value": 0.04}]
    assert adjust_rows(rows, "bh") == 2
    assert [r["p_adjusted"] for r in rows] == pytest.approx([0.02, None, 0.04])


def test_labels_name_the_method_and_the_number_of_tests():
    assert adjusted_label("holm", 96) == "p_adj (Holm, 96 tests)"
    assert adjusted_label("bh", 5) == "p_adj (Benjamini-Hochberg, 5 tests)"
    assert adjusted_label("none", 5) == "p_value (unadjusted, 5 tests)"
    assert adjustment_note("none", 3) == "p-values NOT adjusted (3 tests)"
    shown, cols = for_display(
        [{"a": 1, "p_value": 0.01, "p_adjusted": 0.02}], ["a", "p_value", "p_adjusted"], "holm", 1
    )
    assert cols == ["a", "p_adj (Holm, 1 test)"]
    assert shown[0]["p_adj (Holm, 1 test)"] == 0.02


def test_unknown_adjustment_is_refused_by_name():
    assert check_adjust(None) == "holm"
    assert check_adjust("BH") == "bh"
    with pytest.raises(QueryError, match="'bonferroni'"):
        check_adjust("bonferroni")
