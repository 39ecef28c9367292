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


def test_methods_lists_every_explainer_parameter_with_its_default(capsys):
    rows = run_json(capsys, "methods")
    by_kind: dict[str, list[str]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row["name"])
    assert list(dict.fromkeys(by_kind["explainer"])) == EXPLAINERS.names()
    assert list(dict.fromkeys(by_kind["superpixels"])) == SEGMENTERS.names()
    assert {"integrated_gradients", "saliency", "grad_cam", "occlusion"} <= set(EXPLAINERS)
    for name in EXPLAINERS.names():
        params = EXPLAINERS.get(name).params
        listed = {r["parameter"]: r["default"] for r in rows if r["name"] == name}
        assert listed == ({k: str(p.default) for k, p in params.items()} or {"-": "-"})
    ig = {r["parameter"]: r for r in rows if r["name"] == "integrated_gradients"}
    assert ig["n_steps"]["default"] == "50" and ig["n_steps"]["allowed"] == ">= 1"


def test_metrics_prints_the_glossary_of_every_metric(capsys):
    rows = run_json(capsys, "metrics")
    assert [r["metric"] for r in rows] == list(METRIC_NAMES)
    by = {r["metric"]: r for r in rows}
    assert by["euclidean"]["range"] == "[0, 2]" and by["euclidean"]["agreement when"] == "low"
    assert by["rank_correlation"]["range"] == "[-1, 1]" and by["rank_correlation"]["kind"] == (
        "agreement"
    )


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
