"""Job specs: validation (before anything is written) and planning into shards.

A spec is a JSON dict. :func:`validate_spec` returns a complete copy (every default filled
in, every method's parameters validated through the ``xai`` registries) so that the stored
spec alone determines the results; workers rebuild everything from it.

Keys (all kinds): ``kind``, ``dataset``, ``model``, ``seed`` (0), ``shard_size`` (64),
``batch_size`` (32), ``limit`` (None: the first N samples), ``priority`` (0), ``queue``
(``cpu`` | ``gpu``), ``max_attempts`` (3), ``map_dtype`` (``float32`` | ``float16``: how maps
are stored; rows are computed from the float32 maps either way), ``recompute`` (False: a
map the store already has, same identity, is reused; True: computed afresh).
attribution: ``methods`` (non-empty list), ``params`` ({method: {param: value}}), ``target``
(``pred``: explain the model's prediction, as the source pipeline does; ``label``: the true
label, the prediction for a sample without one).
disagreement: ``methods`` (>= 2) or ``from_job`` (an attribution job whose maps are reused),
``params``, ``target``, ``superpixels`` (["slic"]), ``n_segments`` ([200]), ``k_frac``
([0.05]); every combination of the three lists is computed (a sweep).
attack: ``attack`` (``validate_attack_params`` keys: mode, frac, sigma, ..., and
``only_misclassified`` (True: in ``repair`` mode only misclassified samples are attacked)).

The kinds, their keys and their validators are registered in :mod:`xaiq.scheduler.kinds`;
the value checks are in :mod:`xaiq.scheduler.spec_checks`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from xaiq.scheduler.bounds import MAX_SPEC_DEPTH, depth
from xaiq.scheduler.errors import SpecError
from xaiq.scheduler.kinds import get_kind
from xaiq.scheduler.spec_checks import integer, text, via_xai

QUEUES = ("cpu", "gpu")
MAP_DTYPES = ("float32", "float16")
COMMON_KEYS: dict[str, Any] = {
    "seed": 0,
    "shard_size": 64,
    "batch_size": 32,
    "limit": None,
    "priority": 0,
    "queue": "cpu",
    "max_attempts": 3,
    "map_dtype": "float32",
    "recompute": False,
}


def validate_spec(raw: Mapping[str, Any], *, check_dataset: bool = True) -> dict[str, Any]:
    """A complete, validated copy of ``raw`` (see the module docstring for the keys).

    Raises :class:`SpecError` naming the bad key and value. With ``check_dataset``, the
    dataset is opened (to count its samples into ``n_samples``) and the model name checked.
    """
    if not isinstance(raw, Mapping):
        raise SpecError(f"a job spec must be an object, got {type(raw).__name__}")
    if depth(dict(raw)) > MAX_SPEC_DEPTH:
        raise SpecError(f"a job spec nests deeper than {MAX_SPEC_DEPTH} levels")
    kind = get_kind(raw.get("kind"))
    for key, why in kind.refused.items():
        if key in raw:
            raise SpecError(why)
    allowed = {"kind", "dataset", "model", "n_samples", *COMMON_KEYS, *kind.keys}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SpecError(
            f"unknown key {unknown[0]!r} for a {kind.name} job; known: {', '.join(sorted(allowed))}"
        )
    spec: dict[str, Any] = {**COMMON_KEYS, **json.loads(json.dumps(dict(kind.keys)))}
    spec.update(json.loads(json.dumps(dict(raw))))  # a JSON round trip: plain data only
    spec["dataset"] = text("dataset", raw.get("dataset"))
    given = raw.get(kind.model_from) if kind.model_from else None
    if "model" not in raw and isinstance(given, list):
        spec["model"] = given[0] if given else None
    spec["model"] = text("model", spec.get("model"))
    spec["seed"] = integer("seed", spec["seed"], 0)
    spec["shard_size"] = integer("shard_size", spec["shard_size"], 1)
    spec["batch_size"] = integer("batch_size", spec["batch_size"], 1)
    spec["priority"] = integer("priority", spec["priority"])
    spec["max_attempts"] = integer("max_attempts", spec["max_attempts"], 1)
    if spec["limit"] is not None:
        spec["limit"] = integer("limit", spec["limit"], 1)
    if spec["map_dtype"] not in MAP_DTYPES:
        raise SpecError(
            f"map_dtype must be one of {', '.join(MAP_DTYPES)}, got {spec['map_dtype']!r}"
        )
    if not isinstance(spec["recompute"], bool):
        raise SpecError(f"recompute must be true or false, got {spec['recompute']!r}")
    if spec["queue"] not in QUEUES:
        raise SpecError(f"queue must be one of {', '.join(QUEUES)}, got {spec['queue']!r}")
    kind.validate(spec, raw, check_dataset)

    if check_dataset:
        from xaiq.xai.datasets import open_dataset
        from xaiq.xai.models import check_model_name

        via_xai("model", check_model_name, spec["model"])
        if kind.check_model is not None:
            kind.check_model(spec)
        size = len(via_xai("dataset", open_dataset, spec["dataset"]))
        spec["n_samples"] = min(size, spec["limit"]) if spec["limit"] else size
        if spec["n_samples"] < 1:
            raise SpecError(f"dataset {spec['dataset']!r} has no samples")
    return spec


def plan_shards(n_samples: int, shard_size: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` ranges covering ``0..n_samples-1``."""
    return [(a, min(a + shard_size, n_samples)) for a in range(0, n_samples, shard_size)]


def method_pairs(methods: list[str]) -> list[tuple[str, str]]:
    """Every unordered pair of methods, in the spec's order (a before b)."""
    return [(a, b) for i, a in enumerate(methods) for b in methods[i + 1 :]]
