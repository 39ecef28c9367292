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
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from xaiq.scheduler.bounds import MAX_LIST, MAX_SPEC_DEPTH, depth, spec_range
from xaiq.scheduler.errors import SpecError
from xaiq.scheduler.spec_extras import validate_faithfulness, validate_models, validate_sanity

KINDS = ("attribution", "disagreement", "attack")
QUEUES = ("cpu", "gpu")
TARGETS = ("pred", "label")

_COMMON: dict[str, Any] = {
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
MAP_DTYPES = ("float32", "float16")
_KIND_KEYS: dict[str, dict[str, Any]] = {
    "attribution": {"methods": None, "params": {}, "target": "pred"},
    "disagreement": {
        "methods": None,
        "params": {},
        "target": "pred",
        "from_job": None,
        "superpixels": ["slic"],
        "n_segments": [200],
        "k_frac": [0.05],
        "models": None,  # these three: see xaiq.scheduler.spec_extras
        "faithfulness": None,
        "sanity": None,
    },
    "attack": {"attack": {}},
}


def _int(key: str, value: Any, low: int | None = None) -> int:
    """``value`` as an int within its documented range (:mod:`xaiq.scheduler.bounds`)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{key} must be an integer, got {value!r}")
    lowest, highest = spec_range(key)
    lowest = lowest if low is None else max(low, lowest)
    if value < lowest:
        raise SpecError(f"{key} must be >= {lowest}, got {value!r}")
    if value > highest:
        raise SpecError(f"{key} must be <= {highest} (documented maximum), got {value!r}")
    return value


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _list(key: str, value: Any, item: Callable[[str, Any], Any]) -> list[Any]:
    if not isinstance(value, list | tuple) or not value:
        raise SpecError(f"{key} must be a non-empty list, got {value!r}")
    if len(value) > MAX_LIST:
        raise SpecError(f"{key} has {len(value)} entries; at most {MAX_LIST}")
    out = [item(f"{key}[{i}]", v) for i, v in enumerate(value)]
    if len({json.dumps(v) for v in out}) != len(out):
        raise SpecError(f"{key} has duplicates: {value!r}")
    return out


def _xai(key: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call an ``xai`` validator; its errors become a :class:`SpecError` naming ``key``."""
    from xaiq.xai.errors import XaiError

    try:
        return fn(*args)
    except XaiError as exc:
        raise SpecError(f"{key}: {exc}") from None


def _methods(spec: dict[str, Any], minimum: int) -> None:
    from xaiq.xai.explainers import EXPLAINERS, validate_params

    methods = _list("methods", spec["methods"], _str)
    if len(methods) < minimum:
        raise SpecError(f"methods needs at least {minimum} names, got {methods!r}")
    for m in methods:
        _xai("methods", EXPLAINERS.get, m)
    params = spec["params"]
    if not isinstance(params, Mapping):
        raise SpecError(f"params must be an object {{method: {{param: value}}}}, got {params!r}")
    extra = sorted(set(params) - set(methods))
    if extra:
        raise SpecError(f"params: {extra[0]!r} is not one of the methods {methods}")
    clean = {}
    for m in methods:
        given = params.get(m) or {}
        if not isinstance(given, Mapping):
            raise SpecError(f"params.{m} must be an object, got {given!r}")
        clean[m] = _xai(f"params.{m}", validate_params, m, dict(given))
    spec["methods"], spec["params"] = methods, clean


def _superpixel_sweep(spec: dict[str, Any]) -> None:
    from xaiq.xai.metrics import check_k_frac
    from xaiq.xai.superpixels import validate_segment_params

    spec["superpixels"] = _list("superpixels", spec["superpixels"], _str)
    spec["n_segments"] = _list("n_segments", spec["n_segments"], lambda k, v: _int(k, v, 1))
    for method in spec["superpixels"]:
        for n in spec["n_segments"]:
            _xai("superpixels", validate_segment_params, method, {"n_segments": n})

    def k_frac(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"{key} must be a number in (0, 1], got {value!r}")
        return float(_xai(key, check_k_frac, value))

    spec["k_frac"] = _list("k_frac", spec["k_frac"], k_frac)


def _attack(spec: dict[str, Any]) -> None:
    params = spec["attack"]
    if not isinstance(params, Mapping):
        raise SpecError(f"attack must be an object of attack parameters, got {params!r}")
    try:
        from xaiq.xai.attack import validate_attack_params
    except ImportError:
        raise SpecError("attack jobs need xaiq.xai.attack, which is not installed") from None
    spec["attack"] = dict(_xai("attack", validate_attack_params, dict(params)))


def _attack_fits_model(spec: dict[str, Any]) -> None:
    """Refuse at submit what would fail on every sample: a pixel budget ``floor(frac*H*W)``
    of 0 on this model's inputs, and a targeted class the model does not have."""
    from xaiq.xai.models import model_input_shape, model_num_classes

    params = spec["attack"]
    _, h, w = _xai("model", model_input_shape, spec["model"])
    if math.floor(params["frac"] * h * w) < 1:
        raise SpecError(
            f"attack: frac={params['frac']!r} gives a budget of 0 pixels on {h}x{w} inputs "
            f"of {spec['model']} (the smallest frac is {1 / (h * w):.3g})"
        )
    target = params.get("target_class")
    if target is not None:
        n_classes = _xai("model", model_num_classes, spec["model"])
        if n_classes is not None and target >= n_classes:
            raise SpecError(
                f"attack: target_class={target} is out of range for {spec['model']} "
                f"({n_classes} classes: 0..{n_classes - 1})"
            )


def validate_spec(raw: Mapping[str, Any], *, check_dataset: bool = True) -> dict[str, Any]:
    """A complete, validated copy of ``raw`` (see the module docstring for the keys).

    Raises :class:`SpecError` naming the bad key and value. With ``check_dataset``, the
    dataset is opened (to count its samples into ``n_samples``) and the model name checked.
    """
    if not isinstance(raw, Mapping):
        raise SpecError(f"a job spec must be an object, got {type(raw).__name__}")
    if depth(dict(raw)) > MAX_SPEC_DEPTH:
        raise SpecError(f"a job spec nests deeper than {MAX_SPEC_DEPTH} levels")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise SpecError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "attack" and "target" in raw:
        raise SpecError(
            "target does not apply to attack jobs: an attack explains its goal class "
            "(repair: the true label); choose it with attack.mode / attack.target_class"
        )
    allowed = {"kind", "dataset", "model", "n_samples", *_COMMON, *_KIND_KEYS[kind]}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SpecError(
            f"unknown key {unknown[0]!r} for a {kind} job; known: {', '.join(sorted(allowed))}"
        )
    spec: dict[str, Any] = {**_COMMON, **json.loads(json.dumps(_KIND_KEYS[kind]))}
    spec.update(json.loads(json.dumps(dict(raw))))  # a JSON round trip: plain data only
    spec["dataset"] = _str("dataset", raw.get("dataset"))
    if kind == "disagreement" and "model" not in raw and isinstance(raw.get("models"), list):
        spec["model"] = raw["models"][0] if raw["models"] else None
    spec["model"] = _str("model", spec.get("model"))
    spec["seed"] = _int("seed", spec["seed"], 0)
    spec["shard_size"] = _int("shard_size", spec["shard_size"], 1)
    spec["batch_size"] = _int("batch_size", spec["batch_size"], 1)
    spec["priority"] = _int("priority", spec["priority"])
    spec["max_attempts"] = _int("max_attempts", spec["max_attempts"], 1)
    if spec["limit"] is not None:
        spec["limit"] = _int("limit", spec["limit"], 1)
    if spec["map_dtype"] not in MAP_DTYPES:
        raise SpecError(
            f"map_dtype must be one of {', '.join(MAP_DTYPES)}, got {spec['map_dtype']!r}"
        )
    if not isinstance(spec["recompute"], bool):
        raise SpecError(f"recompute must be true or false, got {spec['recompute']!r}")
    if spec["queue"] not in QUEUES:
        raise SpecError(f"queue must be one of {', '.join(QUEUES)}, got {spec['queue']!r}")

    if "target" in spec and spec["target"] not in TARGETS:
        raise SpecError(f"target must be one of {', '.join(TARGETS)}, got {spec['target']!r}")
    if kind == "attribution":
        _methods(spec, 1)
    elif kind == "disagreement":
        if spec["from_job"] is not None:
            spec["from_job"] = _int("from_job", spec["from_job"], 1)
            if spec["methods"] is not None:
                _methods(spec, 2)
        else:
            if spec["methods"] is None:
                raise SpecError("methods is required (or from_job: an attribution job id)")
            several = isinstance(raw.get("models"), list | tuple) and len(raw["models"]) > 1
            _methods(spec, 1 if several else 2)  # one method over two models is a pair
        _superpixel_sweep(spec)
        validate_models(spec, raw, check_dataset)
        validate_faithfulness(spec)
        validate_sanity(spec)
    else:
        _attack(spec)

    if check_dataset:
        from xaiq.xai.datasets import open_dataset
        from xaiq.xai.models import check_model_name

        _xai("model", check_model_name, spec["model"])
        if kind == "attack":
            _attack_fits_model(spec)
        size = len(_xai("dataset", open_dataset, spec["dataset"]))
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
