"""The report's charts draw whatever the store holds: all-NULL groups, no labels."""

from __future__ import annotations

import numpy as np
import pytest

from xaiq.report import charts, plots
from xaiq.report.results_section import DISAGREEMENT_METRICS

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _values(n: int, *, labels: bool, all_null_pair: bool) -> charts.Values:
    rng = np.random.default_rng(0)
    pair = np.array(["saliency vs grad_cam", "integrated_gradients vs saliency"] * n, dtype=object)
    config = np.array(["n_segments 16"] * (2 * n), dtype=object)
    correct = rng.integers(0, 2, 2 * n).astype(float) if labels else np.full(2 * n, np.nan)
    metrics = {m: rng.random(2 * n) for m in DISAGREEMENT_METRICS}
    if all_null_pair:  # Grad-CAM all zero: every value of that pair NULL
        for v in metrics.values():
            v[pair == "saliency vs grad_cam"] = np.nan
    return charts.Values(pair, config, correct, rng.random(2 * n), metrics)


@pytest.mark.parametrize(("labels", "all_null_pair"), [(True, True), (False, False)])
def test_charts_draw_all_null_groups_and_unlabelled_samples(labels, all_null_pair):
    values = _values(20, labels=labels, all_null_pair=all_null_pair)
    for fig in (
        charts.distributions_figure(values, DISAGREEMENT_METRICS),
        charts.correctness_figure(values, "feature_disagreement"),
    ):
        png = plots.png_bytes(fig)
        assert png.startswith(b"\x89PNG") and len(png) > 5_000


def test_pair_titles_are_readable():
    assert (
        charts.pair_title("integrated_gradients vs grad_cam") == "Integrated Gradients vs Grad-CAM"
    )
    assert charts.pair_title("rise vs saliency", "\n") == "RISE\nvs Saliency"
