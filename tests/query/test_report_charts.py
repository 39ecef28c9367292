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
    figs = charts.distributions_figures(values, DISAGREEMENT_METRICS)
    figs += charts.correctness_figures(values, "feature_disagreement")
    assert [config for config, _ in figs] == ["n_segments 16", "n_segments 16"]
    for _, fig in figs:
        png = plots.png_bytes(fig)
        assert png.startswith(b"\x89PNG") and len(png) > 5_000


def test_pair_titles_are_readable():
    assert (
        charts.pair_title("integrated_gradients vs grad_cam") == "Integrated Gradients vs Grad-CAM"
    )
    assert charts.pair_title("rise vs saliency", "\n") == "RISE\nvs Saliency"
    # cross-model map names keep the model's spelling and title the method
    pair = "digits-cnn:saliency vs digits-cnn-weak:grad_cam"
    assert charts.pair_title(pair) == "digits-cnn: Saliency vs digits-cnn-weak: Grad-CAM"
    assert charts.pair_tick(pair) == "digits-cnn:\nSaliency\nvs digits-cnn-weak:\nGrad-CAM"


def _drawn(groups: list[np.ndarray]) -> tuple[int, int]:
    """(boxes, error bars) drawn for ``groups`` on a fresh axis."""
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    charts.draw_groups(ax, groups, charts.OKABE_ITO[: len(groups)], "feature_disagreement")
    boxes = sum(1 for p in ax.patches if p.__class__.__name__ == "PathPatch")
    return boxes, len(ax.containers)


def test_boxes_only_where_n_allows_and_the_values_are_not_binary():
    rng = np.random.default_rng(1)
    many, few = rng.random(30), rng.random(4)
    binary = (rng.random(40) > 0.5).astype(float)  # a top-k metric at k = 1
    assert _drawn([many]) == (1, 0)
    assert _drawn([few]) == (0, 1)  # n < 10: mean and interval
    assert _drawn([binary]) == (0, 1)  # 0/1 values: never a box
    mean, low, high = charts.mean_and_interval(binary, "feature_disagreement")
    from xaiq.analysis.intervals import wilson_interval

    assert (low, high) == pytest.approx(wilson_interval(int(binary.sum()), binary.size))
    assert low <= mean <= high


def test_no_red_against_green_in_the_charts():
    # misclassified vs correct and the pair colours come from the Okabe-Ito palette
    assert charts.MISCLASSIFIED in charts.OKABE_ITO and charts.CORRECT in charts.OKABE_ITO
    assert {"tab:red", "tab:green", "red", "green"}.isdisjoint(charts.OKABE_ITO)
