"""``xaiq attack``: dataset and one-image runs, JSON and table output, the figure, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xaiq.cli.main import main

FAST = ["--max-iters", "30", "--n-masks", "50"]


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory):
    """Digit sample 5 (label 5, misclassified by digits-cnn-weak) as an 8x8 grey PNG."""
    from PIL import Image

    from xaiq.xai.digits import digits_arrays

    images, labels = digits_arrays()
    path = tmp_path_factory.mktemp("img") / "five.png"
    Image.fromarray((images[5] * 255).round().astype(np.uint8), mode="L").save(path)
    return path, int(labels[5])


def test_attack_on_a_dataset_prints_json_results_and_a_summary(capsys):
    rc = main(
        [
            "attack",
            "--dataset",
            "digits",
            "--model",
            "digits-cnn-weak",
            "--limit",
            "30",
            "--json",
            *FAST,
        ]
    )
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    rows, summary = doc["results"], doc["summary"]
    assert rows and all(r["pred_before"] != r["target"] for r in rows)  # only misclassified
    assert {r["sample"] for r in rows} <= set(range(30))
    assert summary["samples"] == 30 and summary["attacked"] == len(rows)
    # valid by default: every final image inside [0, 1], so every success is a plain one
    assert all(r["out_of_domain"] == 0.0 and r["max_excursion"] == 0.0 for r in rows)
    assert summary["succeeded"] == sum(r["outcome"] == "success" for r in rows)
    assert summary["succeeded"] == sum(r["success"] for r in rows)
    assert summary["succeeded_out_of_domain"] == 0
    assert [p["strategy"] for p in summary["per_strategy"]] == ["rise-least", "central"]
    assert sum(p["succeeded"] for p in summary["per_strategy"]) == summary["succeeded"]
    assert all(r["forward_passes"] == 1 + 50 + r["iterations"] for r in rows)
    assert doc["params"]["strategies"] == ["rise-least", "central"]


def test_attack_on_one_image_prints_a_table_and_writes_the_four_panel_figure(
    digit_png, tmp_path, capsys
):
    from PIL import Image

    path, label = digit_png
    fig = tmp_path / "out" / "fig.png"
    rc = main(
        [
            "attack",
            str(path),
            "--model",
            "digits-cnn-weak",
            "--label",
            str(label),
            "--out",
            str(fig),
            "--strategies",
            "rise-least",
            *FAST,
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "attack results" in out and "rise-least" in out
    with Image.open(fig) as img:  # four panels of 300 px, one row per image
        assert img.format == "PNG" and img.width == 1200 and img.height == 300


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--frac", "0"], "frac=0.0"),
        (["--frac", "1.2"], "frac=1.2"),
        (["--sigma", "0"], "sigma=0.0"),
        (["--n-masks", "0"], "n_masks=0"),
        (["--s", "0"], "s=0"),
        (["--p1", "1"], "p1=1.0"),
        (["--mode", "evade"], "mode='evade'"),
        (["--strategies", "rise-least,middle"], "'middle'"),
        (["--mode", "targeted", "--target", "10"], "target_class=10"),
        (["--label", "12"], "label 12"),
    ],
)
def test_bad_parameters_exit_with_a_one_line_error_naming_them(digit_png, capsys, args, needle):
    path, label = digit_png
    argv = ["attack", str(path), "--model", "digits-cnn-weak", *FAST, *args]
    if "--label" not in args:
        argv += ["--label", str(label)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_preset_seed_labels_its_out_of_domain_successes(capsys):
    # the source lab's procedure: no clamp; a repair it finds leaves [0, 1], and says so
    args = ["attack", "--dataset", "digits", "--model", "digits-cnn-weak", "--limit", "40"]
    rc = main(
        [*args, "--strategies", "central", "--max-iters", "150", "--preset", "seed", "--json"]
    )
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["params"]["clamp"] is False and doc["params"]["ties"] == "index"
    rows = doc["results"]
    raw = [r for r in rows if r["success"]]
    assert raw and all(r["outcome"] == "success (out of domain)" for r in raw)
    assert all(r["out_of_domain"] > 0 and r["max_excursion"] > 0 for r in rows)
    assert doc["summary"]["succeeded"] == 0
    assert doc["summary"]["succeeded_out_of_domain"] == len(raw)
    per = doc["summary"]["per_strategy"][0]
    assert per["succeeded"] == 0 and per["succeeded_out_of_domain"] == len(raw)


def test_repairing_one_image_needs_its_label(digit_png, capsys):
    path, _ = digit_png
    assert main(["attack", str(path), "--model", "digits-cnn-weak"]) == 2
    assert "--label" in capsys.readouterr().err


def test_compare_runs_every_guide_with_its_own_parameters_on_every_sample(capsys):
    rc = main(
        [
            "attack",
            "--dataset",
            "digits",
            "--model",
            "digits-cnn-weak",
            "--limit",
            "12",
            "--strategies",
            "least:integrated_gradients,most:rise,random",
            "--compare",
            "--param",
            "integrated_gradients.n_steps=3",
            "--json",
            *FAST,
        ]
    )
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["params"]["compare"] is True
    assert doc["params"]["guide_params"] == {"integrated_gradients": {"n_steps": 3}}
    assert doc["results"]
    for row in doc["results"]:
        names = [o["strategy"] for o in row["outcomes"]]
        assert names == ["least:integrated_gradients", "rise-most", "random"]
        ig = row["outcomes"][0]
        assert ig["guide_passes"] == 3 and ig["forward_passes"] == 3 + ig["iterations"]
    per = {p["strategy"]: p for p in doc["summary"]["per_strategy"]}
    assert per["random"]["tried"] == len(doc["results"])
    assert per["random"]["success_low"] <= per["random"]["success_rate_when_tried"]


def test_an_unknown_guide_parameter_is_a_usage_error(capsys):
    args = ["attack", "--dataset", "digits", "--model", "digits-cnn-weak", "--limit", "3"]
    rc = main([*args, "--strategies", "least:saliency", "--param", "saliency.absolute=true"])
    assert rc == 2
    assert "absolute" in capsys.readouterr().err


def test_the_attack_figure_names_the_guide_map_and_the_pixels_really_shown():
    from types import SimpleNamespace

    from xaiq.cli.attack_cmd import guide_title

    # the default chain: the map is RISE's, the undimmed pixels are those of the last
    # strategy tried (central won: not "chosen bright")
    chain = SimpleNamespace(strategies_tried=("rise-least", "central"), target=2)
    assert guide_title(chain) == "RISE map (target 2)\nundimmed: pixels of central"
    guided = SimpleNamespace(strategies_tried=("least:saliency",), target=5)
    assert guide_title(guided) == "Saliency map (target 5)\nundimmed: pixels of least:saliency"
    control = SimpleNamespace(strategies_tried=("random",), target=1)
    assert guide_title(control) == "no guide map (target 1)"
