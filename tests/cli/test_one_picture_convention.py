"""One picture convention: ``compare``, ``show`` and the report draw the same sample's maps
with the same values, colour scale and colormap (the rendered map arrays are compared)."""

from __future__ import annotations

import numpy as np
import pytest

from xaiq.cli.main import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("XAIQ_HOME", str(tmp_path / "home"))
    for name in ("XAIQ_DB_URL", "XAIQ_ARTIFACTS", "XAIQ_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    yield tmp_path
    from xaiq.db.session import dispose_engines

    dispose_engines()


@pytest.fixture
def captured(monkeypatch):
    """Every figure drawn by ``comparison_figure``, whoever calls it."""
    import xaiq.report.plots as plots
    import xaiq.xai.figures as figures

    real = figures.comparison_figure
    figs: list = []

    def spy(*args, **kwargs):
        fig = real(*args, **kwargs)
        figs.append(fig)
        return fig

    monkeypatch.setattr(figures, "comparison_figure", spy)
    monkeypatch.setattr(plots, "comparison_figure", spy)
    return figs


def _ok(capsys, *args: str) -> None:
    code = main(list(args))
    _, err = capsys.readouterr()
    assert code == 0, err


def _layers(fig):
    from xaiq.xai.figures import map_images

    images = map_images(fig)
    assert len(images) == 2
    return [
        (np.asarray(im.get_array(), dtype=np.float64), im.get_clim(), im.cmap.name, im.get_alpha())
        for im in images
    ]


def test_compare_show_and_report_draw_a_sample_with_identical_colours(
    home, capsys, captured, tmp_path
):
    methods = "integrated_gradients,saliency"
    _ok(
        capsys,
        "compare",
        "digits:3",
        "--model",
        "digits-cnn",
        "--methods",
        methods,
        "--superpixels",
        "grid",
        "--n-segments",
        "16",
        "--out",
        str(tmp_path / "c.png"),
    )
    _ok(
        capsys,
        "submit",
        "disagreement",
        "--dataset",
        "digits",
        "--model",
        "digits-cnn",
        "--limit",
        "4",
        "--methods",
        methods,
        "--superpixels",
        "grid",
        "--n-segments",
        "16",
    )
    _ok(capsys, "show", "1", "3", "--out", str(tmp_path / "s.pdf"))
    from xaiq.db.session import get_engine
    from xaiq.report.data import get_job
    from xaiq.report.html import sample_block

    engine = get_engine()
    block = sample_block(engine, get_job(engine, 1), 3, "")
    assert '<img alt="sample 3' in block and 'data-panels="3"' in block
    assert len(captured) == 3
    compare, show, report = (_layers(f) for f in captured)
    for drawn in (show, report):
        for (values, clim, cmap, alpha), (want, want_clim, want_cmap, want_alpha) in zip(
            drawn, compare, strict=True
        ):
            # the job computes IG in a batch, compare on one image: equal up to float noise
            np.testing.assert_allclose(values, want, rtol=1e-4, atol=1e-6 * want_clim[1])
            assert clim == pytest.approx(want_clim, rel=1e-4)
            assert (cmap, alpha) == (want_cmap, want_alpha)
            if values.min() < 0:  # signed maps (IG): diverging, centred on zero
                assert cmap == "RdBu_r" and clim[0] == -clim[1]
            else:  # non-negative maps (|Saliency|): sequential from 0
                assert cmap == "magma" and clim[0] == 0.0
    # and the same title facts: true label, prediction and probability, readable names
    titles = [f._suptitle.get_text() for f in captured]
    assert all("true 3" in t and "predicted" in t for t in titles)
    panel_titles = [ax.get_title() for ax in captured[1].axes]
    assert "Integrated Gradients" in panel_titles and "integrated_gradients" not in panel_titles
    assert (tmp_path / "s.pdf").read_bytes().startswith(b"%PDF")


def test_figure_options_are_checked_before_any_work(home, capsys, tmp_path):
    for args, needle in (
        (["--out", str(tmp_path / "x.gif")], ".png, .pdf or .svg"),
        (["--dpi", "5"], "--dpi 5"),
        (["--sign", "both"], "unknown sign mode 'both'"),
        (["--preset", "fancy"], "unknown figure preset 'fancy'"),
    ):
        code = main(["compare", "digits:3", "--model", "digits-cnn", *args])
        err = capsys.readouterr().err
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_seed_preset_draws_magnitudes_with_jet_and_svg_by_extension(
    home, capsys, tmp_path, captured
):
    out = tmp_path / "seed.svg"
    _ok(
        capsys,
        "compare",
        "digits:3",
        "--model",
        "digits-cnn",
        "--preset",
        "seed",
        "--dpi",
        "60",
        "--out",
        str(out),
    )
    for values, clim, cmap, alpha in _layers(captured[0]):
        assert cmap == "jet" and alpha == 0.5 and clim[0] == 0.0 and values.min() >= 0.0
    assert out.read_text().lstrip().startswith("<?xml")
