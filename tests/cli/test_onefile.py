"""One-image commands through ``xaiq.cli.main.main`` (exit codes, one-line errors, outputs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xaiq.cli.main import main
from xaiq.xai.metrics import METRIC_NAMES

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert lines[0].startswith("error:") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def test_compare_on_a_digit_prints_every_metric_as_json_and_writes_the_figure(capsys, tmp_path):
    fig = tmp_path / "fig.png"
    code, out, _ = run(
        capsys,
        "compare",
        "digits:0",
        "--model",
        "digits-cnn",
        "--superpixels",
        "grid",
        "--n-segments",
        "49",
        "--json",
        "--out",
        str(fig),
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["method_a"] == "integrated_gradients" and doc["method_b"] == "saliency"
    assert doc["pred"] == doc["target"] == 0  # digit 0 is classified correctly
    metrics = doc["metrics"]
    assert metrics["n"] == 49 and metrics["k"] == 2
    for name in METRIC_NAMES:
        assert metrics[name] is None or 0.0 <= metrics[name] <= 2.0
    from PIL import Image

    with Image.open(fig) as img:
        assert img.format == "PNG" and img.width > 2 * img.height  # three panels side by side


def test_compare_table_lists_the_source_metrics_first(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "compare",
        "digits:3",
        "--model",
        "digits-cnn",
        "--methods",
        "saliency,input_x_gradient",
        "--n-segments",
        "30",
        "--no-figure",
    )
    assert code == 0
    positions = [out.index(name + " ") for name in METRIC_NAMES]
    assert positions == sorted(positions)
    assert not (tmp_path / "compare.png").exists()


@pytest.mark.slow
def test_compare_on_the_cat_photo_with_a_local_resnet18_checkpoint(
    capsys, tmp_path, resnet18_state_dict
):
    fig = tmp_path / "cat.png"
    code, out, _ = run(
        capsys,
        "compare",
        "skimage:cat",
        "--model",
        f"resnet18:{resnet18_state_dict}",
        "--json",
        "--out",
        str(fig),
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["superpixels"] == "slic" and doc["n_segments"] == 200 and doc["k_frac"] == 0.05
    assert 100 <= doc["metrics"]["n"] <= 250  # SLIC asked for 200 on the 224x224 crop
    assert doc["metrics"]["k"] == int(0.05 * doc["metrics"]["n"])
    assert fig.stat().st_size > 10_000


def test_explain_saves_maps_that_compare_maps_reads_back(capsys, tmp_path):
    out_dir = tmp_path / "maps"
    code, _, _ = run(
        capsys,
        "explain",
        "digits:7",
        "--model",
        "digits-cnn",
        "--methods",
        "saliency,grad_cam",
        "--out",
        str(out_dir),
        "--format",
        "json",
    )
    assert code == 0
    sal, cam = np.load(out_dir / "saliency.npy"), np.load(out_dir / "grad_cam.npy")
    assert sal.shape == cam.shape == (28, 28) and sal.dtype == np.float32
    assert (out_dir / "input.png").is_file()
    code, out, _ = run(
        capsys,
        "compare-maps",
        str(out_dir / "saliency.npy"),
        str(out_dir / "saliency.npy"),
        "--image",
        str(out_dir / "input.png"),
        "--superpixels",
        "grid",
        "--n-segments",
        "49",
        "--json",
    )
    assert code == 0
    metrics = json.loads(out)["metrics"]
    assert metrics["feature_agreement"] == 1.0 and metrics["euclidean"] == pytest.approx(0.0)


def test_params_reach_the_explainer(capsys, tmp_path):
    from xaiq.xai.explainers import explain
    from xaiq.xai.models import load_model

    code, _, _ = run(
        capsys,
        "explain",
        "digits:2",
        "--model",
        "digits-cnn",
        "--methods",
        "integrated_gradients,saliency",
        "-p",
        "integrated_gradients.n_steps=3",
        "-p",
        "abs=false",
        "--out",
        str(tmp_path),
    )
    assert code == 0
    model = load_model("digits-cnn", "cpu")
    from xaiq.xai.datasets import open_dataset

    x = model.preprocess([open_dataset("digits").load(2).image])
    pred = int(model.predict_proba(x).argmax())
    want_ig = explain("integrated_gradients", model, x, [pred], n_steps=3)[0].numpy()
    want_sal = explain("saliency", model, x, [pred], abs=False)[0].numpy()
    np.testing.assert_allclose(np.load(tmp_path / "integrated_gradients.npy"), want_ig, rtol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "saliency.npy"), want_sal, rtol=1e-5)
    assert (want_sal < 0).any(), "abs=false keeps negative gradients"


def test_figure_has_three_panels_with_colour_bars_and_handles_an_all_zero_map(tmp_path):
    from xaiq.xai.figures import MapStyle, comparison_figure, map_images, prepare_map

    image = np.random.default_rng(0).random((16, 20, 3))
    fig = comparison_figure(
        image, [np.zeros((16, 20)), -np.ones((16, 20))], ["integrated_gradients", "grad_cam"]
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["original", "Integrated Gradients", "Grad-CAM"]
    assert len(fig.axes) == 3 + 2  # one colour bar per map panel
    zero, neg = map_images(fig)
    assert zero.get_clim() == (-1.0, 1.0) and np.all(zero.get_array() == 0)
    assert neg.get_clim() == (-1.0, 1.0) and neg.cmap.name == "RdBu_r"  # centred on zero
    values, low, high = prepare_map(np.array([[-2.0, 1.0], [0.0, 0.5]]), MapStyle(percentile=100))
    assert (low, high) == (-2.0, 2.0)
    values, low, high = prepare_map(np.array([[-2.0, 1.0], [0.0, 0.5]]), MapStyle("positive"))
    assert low == 0.0 and values.min() == 0.0 and values[0, 0] == 0.0


def test_compare_maps_agrees_with_the_library_on_slic(capsys, tmp_path):
    from skimage import data

    from xaiq.xai.metrics import compare_vectors
    from xaiq.xai.superpixels import segment, segment_means

    rng = np.random.default_rng(0)
    image = data.astronaut()[::8, ::8] / 255.0
    a, b = rng.normal(size=image.shape[:2]), rng.normal(size=image.shape[:2])
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    from PIL import Image

    Image.fromarray((image * 255).round().astype(np.uint8)).save(tmp_path / "img.png")
    code, out, _ = run(
        capsys,
        "compare-maps",
        str(tmp_path / "a.npy"),
        str(tmp_path / "b.npy"),
        "--image",
        str(tmp_path / "img.png"),
        "--n-segments",
        "40",
        "--json",
    )
    assert code == 0
    shown = np.asarray(Image.open(tmp_path / "img.png"), dtype=np.float64) / 255.0
    labels = segment(shown[None], "slic", n_segments=40)
    va, vb = (segment_means(m[None], labels)[0] for m in (a, b))
    assert json.loads(out)["metrics"] == pytest.approx(compare_vectors(va, vb))


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["compare", "missing.png", "--model", "digits-cnn"], ["missing.png"]),
        (["compare", "digits:5", "--model", "no-such-net"], ["no-such-net"]),
        (
            ["compare", "digits:5", "--model", "digits-cnn", "--methods", "saliency,magic"],
            ["magic", "saliency"],
        ),
        (["compare", "digits:5", "--model", "digits-cnn", "--methods", "saliency"], ["--methods"]),
        (["compare", "digits:5", "--model", "digits-cnn", "--k-frac", "0"], ["k_frac"]),
        (["compare", "digits:5", "--model", "digits-cnn", "--k-frac", "1.5"], ["k_frac"]),
        (["compare", "digits:5", "--model", "digits-cnn", "--n-segments", "0"], ["n_segments"]),
        (["compare", "digits:5", "--model", "digits-cnn", "--superpixels", "hex"], ["hex"]),
        (["compare", "digits:99999", "--model", "digits-cnn"], ["99999"]),
        (["compare", "digits:x", "--model", "digits-cnn"], ["'x'"]),
        (["compare", "skimage:dog", "--model", "digits-cnn"], ["dog"]),
        (["compare", "nosuchset@3", "--model", "digits-cnn"], ["nosuchset"]),
        (["compare", "digits:5", "--model", "digits-cnn", "--target", "10"], ["--target 10"]),
        (["explain", "digits:5", "--model", "digits-cnn", "--methods", "ig"], ["ig"]),
        (["explain", "digits:5", "--model", "digits-cnn", "-p", "n_steps=0"], ["n_steps"]),
        (["explain", "digits:5", "--model", "digits-cnn", "-p", "window=3"], ["window"]),
        (["explain", "digits:5", "--model", "digits-cnn", "-p", "grad_cam.layer=x"], ["grad_cam"]),
        (["explain", "digits:5", "--model", "digits-cnn", "-p", "n_steps"], ["--param"]),
    ],
)
def test_bad_input_gives_a_one_line_error(capsys, tmp_path, monkeypatch, args, needles):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *args)
    assert_one_line_error(code, err, *needles)


def test_corrupt_image_file_gives_a_one_line_error(capsys, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    code, _, err = run(capsys, "compare", str(bad), "--model", "digits-cnn", "--no-figure")
    assert_one_line_error(code, err, "broken.png")


def test_compare_maps_refuses_nan_maps_different_shapes_and_bad_files(capsys, tmp_path):
    good, other, nan = tmp_path / "good.npy", tmp_path / "other.npy", tmp_path / "nan.npy"
    np.save(good, np.ones((8, 8)))
    np.save(other, np.ones((8, 9)))
    nan_map = np.ones((8, 8))
    nan_map[2, 3] = np.nan
    np.save(nan, nan_map)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    grid = ["--superpixels", "grid", "--n-segments", "4"]
    code, _, err = run(capsys, "compare-maps", str(good), str(other), *grid)
    assert_one_line_error(code, err, "differ in shape", "(8, 8)", "(8, 9)")
    code, _, err = run(capsys, "compare-maps", str(good), str(nan), *grid)
    assert_one_line_error(code, err, "nan.npy", "non-finite")
    code, _, err = run(capsys, "compare-maps", str(good), str(tmp_path / "junk.npy"), *grid)
    assert_one_line_error(code, err, "junk.npy")
    code, _, err = run(capsys, "compare-maps", str(good), str(tmp_path / "gone.npy"), *grid)
    assert_one_line_error(code, err, "gone.npy")
    code, _, err = run(capsys, "compare-maps", str(good), str(good))
    assert_one_line_error(code, err, "--image")
