"""Which colour scale a map gets, and what its colour bar says."""

from __future__ import annotations

import numpy as np

from xaiq.xai.figures import MapStyle, comparison_figure, map_images, method_title


def _bars(fig) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]


def test_non_negative_maps_get_a_sequential_scale_from_zero_and_signed_maps_a_diverging_one():
    rng = np.random.default_rng(0)
    rise = 0.25 + 0.17 * rng.random((12, 12))  # RISE-like: every value in [0.25, 0.42]
    signed = rng.normal(size=(12, 12))
    fig = comparison_figure(rng.random((12, 12)), {"rise": rise, "integrated_gradients": signed})
    seq, div = map_images(fig)
    assert seq.cmap.name == "magma" and seq.get_clim()[0] == 0.0
    assert div.cmap.name == "RdBu_r" and div.get_clim()[0] == -div.get_clim()[1]
    assert _bars(fig) == ["non-negative map (from 0)", "signed (diverging, 0 at centre)"]


def test_sign_negative_on_a_non_negative_map_says_so_instead_of_an_empty_panel():
    rng = np.random.default_rng(1)
    fig = comparison_figure(
        rng.random((12, 12)),
        {"grad_cam": rng.random((12, 12)), "saliency": rng.normal(size=(12, 12))},
        style=MapStyle(sign="negative"),
    )
    assert len(map_images(fig)) == 1  # only the map that has a negative part is drawn
    assert _bars(fig) == ["negative part, magnitude (from 0)"]  # no invented colour bar
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no negative attribution" in texts


def test_more_than_four_panels_wrap_into_balanced_rows():
    rng = np.random.default_rng(2)
    maps = {m: rng.normal(size=(8, 8)) for m in ("saliency", "grad_cam", "rise", "occlusion")}
    fig = comparison_figure(rng.random((8, 8)), maps)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.axison]
    lefts = {round(ax.get_position().x0, 2) for ax in panels}
    assert len(panels) == 5 and len(lefts) == 3  # 3 + 2


def test_cross_model_map_names_read_as_model_then_method():
    assert method_title("digits-cnn-weak:grad_cam") == "digits-cnn-weak: Grad-CAM"
    assert method_title("grad_cam") == "Grad-CAM"


def test_the_title_sits_just_above_the_panels_and_wrapped_rows_do_not_touch():
    rng = np.random.default_rng(3)
    names = ("digits-cnn:saliency", "digits-cnn:grad_cam", "weak:saliency", "weak:grad_cam")
    title = "sample 4 (digits/4): true 4\nA predicted 4 · B predicted 4\nmean: 1.000"
    fig = comparison_figure(
        rng.random((28, 28)), {n: rng.random((28, 28)) for n in names}, title=title
    )
    fig.draw_without_rendering()
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    dpi = fig.dpi
    boxes = [ax.get_tightbbox() for ax in panels]  # pixels, titles included
    (title_box,) = [t.get_window_extent() for t in fig.texts if t.get_text() == title]
    gap_in = (title_box.y0 - max(b.y1 for b in boxes)) / dpi
    assert 0 <= gap_in < 0.2, f"{gap_in:.2f} in between the figure title and the panels"
    first_row = [ax.get_window_extent() for ax in panels[:3]]
    second_row_titles = [ax.title.get_window_extent() for ax in panels[3:]]
    clearance = min(a.y0 for a in first_row) - max(t.y1 for t in second_row_titles)
    assert clearance / dpi > 0.1, "a second-row title touches the panels above it"


def test_boundaries_are_drawn_at_the_most_informative_configuration() -> None:
    # a sweep over 16/49 segments and k_frac 0.05/0.25: the first configuration's top-k is
    # one superpixel (every top-k metric 0 or 1); the drawing takes the largest top-k
    from types import SimpleNamespace

    from xaiq.report.show import boundary_segments

    job = SimpleNamespace(
        spec={"superpixels": ["grid"], "n_segments": [16, 49], "k_frac": [0.05, 0.25]}
    )
    labels, top_k = boundary_segments(job, np.zeros((28, 28, 1), dtype=np.float32))
    assert labels is not None and np.unique(labels).size == 49
    assert top_k == 12  # floor(0.25 * 49)
