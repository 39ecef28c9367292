"""Catalog listings: models, datasets and methods."""

from __future__ import annotations

import json

from xaiq.cli.main import main
from xaiq.xai.explainers import EXPLAINERS
from xaiq.xai.metrics import METRIC_NAMES
from xaiq.xai.superpixels import SEGMENTERS


def run_json(capsys, *args: str) -> list[dict]:
    assert main([*args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_methods_lists_every_explainer_segmenter_and_metric(capsys):
    rows = run_json(capsys, "methods")
    by_kind: dict[str, list[str]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row["name"])
    assert by_kind["explainer"] == EXPLAINERS.names()
    assert by_kind["superpixels"] == SEGMENTERS.names()
    assert by_kind["metric"] == list(METRIC_NAMES)
    assert {"integrated_gradients", "saliency", "grad_cam", "occlusion"} <= set(EXPLAINERS)


def test_models_lists_the_bundled_digits_models(capsys):
    names = [row["name"] for row in run_json(capsys, "models")]
    assert "digits-cnn" in names and "digits-cnn-weak" in names


def test_datasets_lists_the_dataset_specs(capsys):
    specs = " ".join(row["spec"] for row in run_json(capsys, "datasets"))
    for kind in ("digits", "skimage", "folder", "file", "mnist", "cifar10"):
        assert kind in specs


def test_help_is_available_for_the_one_image_commands(capsys):
    for command in ("explain", "compare", "compare-maps"):
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "Usage" in out and ("digits:N" in out or "IMAGE" in out or "MAP_A" in out)
