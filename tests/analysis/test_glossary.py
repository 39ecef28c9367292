"""The glossary covers every stored metric, and its ranges hold for ``compare_vectors``."""

from __future__ import annotations

import numpy as np

from xaiq.analysis.glossary import GLOSSARY, clip_to_range, glossary_rows
from xaiq.db.models import METRIC_COLUMNS
from xaiq.xai.metrics import compare_vectors


def test_glossary_names_every_stored_metric_once():
    assert list(GLOSSARY) == list(METRIC_COLUMNS)
    assert [r["metric"] for r in glossary_rows()] == list(METRIC_COLUMNS)


def test_metric_values_stay_inside_the_glossary_ranges_and_directions_hold():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 60))
        a = rng.normal(size=n)
        b = rng.normal(size=n) if rng.random() < 0.8 else -a
        values = compare_vectors(a, b, k_frac=float(rng.choice([0.05, 0.25, 0.5])))
        for name, info in GLOSSARY.items():
            v = values[name]
            assert v is None or info.low - 1e-12 <= v <= info.high + 1e-12, (name, v)
    same = compare_vectors(np.arange(1.0, 11.0), np.arange(1.0, 11.0), k_frac=0.3)
    for name, info in GLOSSARY.items():  # identical maps sit at the agreeing end
        want = info.high if info.agreement_when == "high" else info.low
        assert abs(same[name] - want) < 1e-12, name


def test_intervals_are_clipped_to_the_metric_range():
    assert clip_to_range("feature_disagreement", -0.1, 1.2) == (0.0, 1.0)
    assert clip_to_range("rank_correlation", -1.5, 0.2) == (-1.0, 0.2)
    assert clip_to_range("unknown", -5.0, 5.0) == (-5.0, 5.0)
