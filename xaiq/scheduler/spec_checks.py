"""The checks of a job spec's values, and the part of validation each job kind adds.

The common checks (:func:`integer`, :func:`text`, :func:`items`, :func:`via_xai`) raise
:class:`SpecError` naming the key and the value. The per-kind validators
(:func:`validate_attribution`, :func:`validate_disagreement`, :func:`validate_attack`) are
named by the kind registry (:mod:`xaiq.scheduler.kinds`) and called by
:func:`xaiq.scheduler.spec.validate_spec` on a spec whose common keys are already checked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from xaiq.scheduler.bounds import MAX_LIST, spec_range
from xaiq.scheduler.errors import SpecError
from xaiq.scheduler.spec_extras import validate_faithfulness, validate_models, validate_sanity

TARGETS = ("pred", "label")


def integer(key: str, value: Any, low: int | None = None) -> int:
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


def text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(f"{key} must be a non-empty string, got {value!r}")
    return value


def items(key: str, value: Any, item: Callable[[str, Any], Any]) -> list[Any]:
    """A non-empty list without duplicates, each entry checked by ``item(key[i], entry)``."""
    if not isinstance(value, list | tuple) or not value:
        raise SpecError(f"{key} must be a non-empty list, got {value!r}")
    if len(value) > MAX_LIST:
        raise SpecError(f"{key} has {len(value)} entries; at most {MAX_LIST}")
    out = [item(f"{key}[{i}]", v) for i, v in enumerate(value)]
    if len({json.dumps(v) for v in out}) != len(out):
        raise SpecError(f"{key} has duplicates: {value!r}")
    return out


def via_xai(key: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call an ``xai`` validator; its errors become a :class:`SpecError` naming ``key``."""
    from xaiq.xai.errors import XaiError

    try:
        return fn(*args)
    except XaiError as exc:
        raise SpecError(f"{key}: {exc}") from None


def check_target(spec: dict[str, Any]) -> None:
    if spec["target"] not in TARGETS:
        raise SpecError(f"target must be one of {', '.join(TARGETS)}, got {spec['target']!r}")


def check_methods(spec: dict[str, Any], minimum: int) -> None:
    """``methods`` (at least ``minimum`` known explainers) and their ``params``."""
    from xaiq.xai.explainers import EXPLAINERS, validate_params

    methods = items("methods", spec["methods"], text)
    if len(methods) < minimum:
        raise SpecError(f"methods needs at least {minimum} names, got {methods!r}")
    for m in methods:
        via_xai("methods", EXPLAINERS.get, m)
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
        clean[m] = via_xai(f"params.{m}", validate_params, m, dict(given))
    spec["methods"], spec["params"] = methods, clean


def check_superpixel_sweep(spec: dict[str, Any]) -> None:
    """``superpixels``, ``n_segments`` and ``k_frac``: every combination is computed."""
    from xaiq.xai.metrics import check_k_frac
    from xaiq.xai.superpixels import validate_segment_params

    spec["superpixels"] = items("superpixels", spec["superpixels"], text)
    spec["n_segments"] = items("n_segments", spec["n_segments"], lambda k, v: integer(k, v, 1))
    for method in spec["superpixels"]:
        for n in spec["n_segments"]:
            via_xai("superpixels", validate_segment_params, method, {"n_segments": n})

    def k_frac(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"{key} must be a number in (0, 1], got {value!r}")
        return float(via_xai(key, check_k_frac, value))

    spec["k_frac"] = items("k_frac", spec["k_frac"], k_frac)


def validate_attribution(spec: dict[str, Any], raw: Mapping[str, Any], check: bool) -> None:
    check_target(spec)
    check_methods(spec, 1)


def validate_disagreement(spec: dict[str, Any], raw: Mapping[str, Any], check: bool) -> None:
    check_target(spec)
    if spec["from_job"] is not None:
        spec["from_job"] = integer("from_job", spec["from_job"], 1)
        if spec["methods"] is not None:
            check_methods(spec, 2)
    else:
        if spec["methods"] is None:
            raise SpecError("methods is required (or from_job: an attribution job id)")
        several = isinstance(raw.get("models"), list | tuple) and len(raw["models"]) > 1
        check_methods(spec, 1 if several else 2)  # one method over two models is a pair
    check_superpixel_sweep(spec)
    validate_models(spec, raw, check)
    validate_faithfulness(spec)
    validate_sanity(spec)


def validate_attack(spec: dict[str, Any], raw: Mapping[str, Any], check: bool) -> None:
    params = spec["attack"]
    if not isinstance(params, Mapping):
        raise SpecError(f"attack must be an object of attack parameters, got {params!r}")
    try:
        from xaiq.xai.attack import validate_attack_params
    except ImportError:
        raise SpecError("attack jobs need xaiq.xai.attack, which is not installed") from None
    spec["attack"] = dict(via_xai("attack", validate_attack_params, dict(params)))


def attack_fits_model(spec: dict[str, Any]) -> None:
    """Refuse at submit what would fail on every sample: a pixel budget ``floor(frac*H*W)``
    of 0 on this model's inputs, and a targeted class the model does not have."""
    from xaiq.xai.models import model_input_shape, model_num_classes

    params = spec["attack"]
    _, h, w = via_xai("model", model_input_shape, spec["model"])
    if math.floor(params["frac"] * h * w) < 1:
        raise SpecError(
            f"attack: frac={params['frac']!r} gives a budget of 0 pixels on {h}x{w} inputs "
            f"of {spec['model']} (the smallest frac is {1 / (h * w):.3g})"
        )
    target = params.get("target_class")
    if target is not None:
        n_classes = via_xai("model", model_num_classes, spec["model"])
        if n_classes is not None and target >= n_classes:
            raise SpecError(
                f"attack: target_class={target} is out of range for {spec['model']} "
                f"({n_classes} classes: 0..{n_classes - 1})"
            )
