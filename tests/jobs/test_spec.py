"""Spec validation fails before anything is written, naming the bad key and value."""

from __future__ import annotations

import json

import pytest

from xaiq.scheduler.errors import SpecError
from xaiq.scheduler.spec import method_pairs, plan_shards, validate_spec

BASE = {
    "kind": "attribution",
    "dataset": "digits",
    "model": "digits-cnn-weak",
    "methods": ["saliency"],
}


def test_a_valid_spec_gets_every_default_and_its_parameters_filled_in() -> None:
    spec = validate_spec({**BASE, "methods": ["saliency", "integrated_gradients"], "limit": 10})
    assert spec["n_samples"] == 10 and spec["seed"] == 0 and spec["queue"] == "cpu"
    assert spec["map_dtype"] == "float32" and spec["recompute"] is False
    assert spec["params"]["integrated_gradients"]["n_steps"] == 50
    assert spec["params"]["saliency"] == {"abs": True}


def test_a_validated_spec_round_trips_through_json_unchanged() -> None:
    spec = validate_spec(
        {
            **BASE,
            "kind": "disagreement",
            "methods": ["saliency", "grad_cam"],
            "superpixels": ["grid", "slic"],
            "n_segments": [16, 49],
        }
    )
    assert validate_spec(json.loads(json.dumps(spec))) == spec


def test_the_dataset_size_caps_the_limit() -> None:
    assert validate_spec({**BASE, "limit": 10**6})["n_samples"] == 1797


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"kind": "explode"}, "kind must be one of"),
        ({"methods": ["salience"]}, "unknown method 'salience'"),
        ({"methods": []}, "methods must be a non-empty list"),
        ({"methods": ["saliency", "saliency"]}, "methods has duplicates"),
        (
            {"params": {"saliency": {"bogus": 1}}},
            "params.saliency: saliency: unknown parameter 'bogus'",
        ),
        ({"params": {"grad_cam": {}}}, "params: 'grad_cam' is not one of the methods"),
        ({"shard_size": "10"}, "shard_size must be an integer, got '10'"),
        ({"shard_size": 0}, "shard_size must be >= 1, got 0"),
        ({"limit": 0}, "limit must be >= 1, got 0"),
        ({"seed": True}, "seed must be an integer, got True"),
        ({"queue": "tpu"}, "queue must be one of cpu, gpu, got 'tpu'"),
        ({"map_dtype": "int8"}, "map_dtype must be one of float32, float16, got 'int8'"),
        ({"recompute": "yes"}, "recompute must be true or false, got 'yes'"),
        ({"model": "no-such-model"}, "model: unknown model 'no-such-model'"),
        ({"dataset": "nowhere/at/all"}, "dataset: dataset not found: nowhere/at/all"),
    ],
)
def test_a_bad_attribution_spec_fails_naming_the_key_and_value(change: dict, needle: str) -> None:
    with pytest.raises(SpecError, match=None) as err:
        validate_spec({**BASE, **change})
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"methods": ["saliency"]}, "methods needs at least 2 names"),
        ({"superpixels": ["voronoi"]}, "unknown superpixel method 'voronoi'"),
        ({"n_segments": [0]}, "n_segments[0] must be >= 1, got 0"),
        ({"k_frac": [1.5]}, "k_frac must be in (0, 1], got 1.5"),
        ({"k_frac": ["a"]}, "k_frac[0] must be a number in (0, 1], got 'a'"),
        ({"from_job": "3"}, "from_job must be an integer, got '3'"),
        ({"attack": {}}, "unknown key 'attack' for a disagreement job"),
    ],
)
def test_a_bad_disagreement_spec_fails_naming_the_key_and_value(change: dict, needle: str) -> None:
    raw = {**BASE, "kind": "disagreement", "methods": ["saliency", "grad_cam"], **change}
    with pytest.raises(SpecError) as err:
        validate_spec(raw)
    assert needle in str(err.value)


def test_attack_parameters_are_validated_by_the_attack_library() -> None:
    raw = {"kind": "attack", "dataset": "digits", "model": "digits-cnn-weak"}
    assert validate_spec(raw)["attack"]["frac"] == pytest.approx(0.4)
    with pytest.raises(SpecError, match="attack: .*frac"):
        validate_spec({**raw, "attack": {"frac": 2.0}})
    with pytest.raises(SpecError, match="unknown key 'methods' for a attack job"):
        validate_spec({**raw, "methods": ["saliency"]})


def test_shards_are_contiguous_and_cover_every_sample_once() -> None:
    ranges = plan_shards(23, 5)
    assert ranges == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    assert plan_shards(5, 5) == [(0, 5)]


def test_method_pairs_are_unordered_and_keep_the_spec_order() -> None:
    assert method_pairs(["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "c")]
