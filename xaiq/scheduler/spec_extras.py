"""Disagreement-job options of the faithfulness issue: several models, deletion/insertion,
the model-randomisation sanity check.

- ``models``: null, or a list of >= 2 model names; the first is the job's ``model``. Every
  (model, method) map is compared with every other; the models must take the same input shape.
  Rows of such a job name a map ``model:method`` (``method_a``, ``method`` columns) and carry
  the model in their own columns.
- ``faithfulness``: null, or ``{step, substrate, order, blur_kernel, blur_sigma, kernel, ties,
  road_noise, superpixels, superpixel_step}`` (defaults of
  :func:`xaiq.xai.faithfulness.deletion_insertion`: the RISE reference protocol;
  ``superpixels`` true also plays the game over every superpixel configuration of the sweep,
  ``superpixel_step`` superpixels at a time, default 1).
- ``sanity``: null, or ``{mode, max_layers}`` (``cascading`` or ``independent``; default all
  layers); the disagreement metrics of a sanity row use the sweep's first superpixel
  configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from xaiq.scheduler.bounds import SPEC_RANGES
from xaiq.scheduler.errors import SpecError

FAITHFULNESS_DEFAULTS: dict[str, Any] = {
    "step": None,
    "substrate": "baseline",
    "order": "signed",
    "blur_kernel": 11,
    "blur_sigma": 5.0,
    "kernel": "reference",
    "ties": "random",
    "road_noise": 0.01,
    "superpixels": True,
    "superpixel_step": 1,
}
SANITY_DEFAULTS: dict[str, Any] = {"mode": "cascading", "max_layers": None}
MAX_NAME = 128  # the width of the method columns
MAX_SEGMENTS = SPEC_RANGES["n_segments"][1]  # superpixels per step: at most all of them
MAX_LAYERS = 10_000  # sanity: layers randomised (more than any torchvision classifier has)


def _options(key: str, value: Any, defaults: dict[str, Any]) -> dict[str, Any] | None:
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{key} must be an object of options (or true), got {value!r}")
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        known = ", ".join(defaults)
        raise SpecError(f"{key}: unknown option {unknown[0]!r}; known: {known}")
    return {**defaults, **value}


def _xai(key: str, fn: Callable[..., Any], *args: Any) -> Any:
    from xaiq.xai.errors import XaiError

    try:
        return fn(*args)
    except XaiError as exc:
        raise SpecError(f"{key}: {exc}") from None


def _int_or_none(key: str, value: Any, maximum: int | None = None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise SpecError(f"{key} must be an integer >= 1, got {value!r}")
    if value is not None and maximum is not None and value > maximum:
        raise SpecError(f"{key}={value!r} is above its maximum {maximum}")


def validate_faithfulness(spec: dict[str, Any]) -> None:
    from xaiq.xai.faithfulness import check_faithfulness_params

    opts = _options("faithfulness", spec.get("faithfulness"), FAITHFULNESS_DEFAULTS)
    if opts is not None:
        _int_or_none("faithfulness.superpixel_step", opts["superpixel_step"], MAX_SEGMENTS)
        if not isinstance(opts["superpixels"], bool):
            raise SpecError(
                f"faithfulness.superpixels must be true/false, got {opts['superpixels']!r}"
            )
        names = ("substrate", "order", "step", "blur_kernel", "blur_sigma", "kernel", "ties")
        args = [*(opts[k] for k in names), "most", opts["road_noise"]]
        _xai("faithfulness", check_faithfulness_params, *args)
    spec["faithfulness"] = opts


def validate_sanity(spec: dict[str, Any]) -> None:
    from xaiq.xai.sanity import MODES

    opts = _options("sanity", spec.get("sanity"), SANITY_DEFAULTS)
    if opts is not None:
        if opts["mode"] not in MODES:
            raise SpecError(f"sanity.mode must be one of {', '.join(MODES)}, got {opts['mode']!r}")
        _int_or_none("sanity.max_layers", opts["max_layers"], MAX_LAYERS)
    spec["sanity"] = opts


def validate_models(spec: dict[str, Any], raw: Mapping[str, Any], check: bool) -> None:
    """``models``: >= 2 distinct names, the first is ``model``; same input shape (``check``)."""
    models = spec.get("models")
    if models is None:
        return
    if not isinstance(models, list | tuple) or len(models) < 2:
        raise SpecError(f"models must list at least two model names, got {models!r}")
    if not all(isinstance(m, str) and m for m in models) or len(set(models)) != len(models):
        raise SpecError(f"models must be distinct non-empty names, got {models!r}")
    if raw.get("model") not in (None, models[0]):
        raise SpecError(f"model {raw.get('model')!r} must be the first of models {models!r}")
    if spec.get("from_job") is not None:
        raise SpecError("models: a job reusing maps (from_job) takes the source job's one model")
    spec["model"], spec["models"] = models[0], list(models)
    for m in models:
        for method in spec["methods"]:
            if len(f"{m}:{method}") > MAX_NAME:
                raise SpecError(f"models: {m!r} is too long to name its maps ({MAX_NAME} max)")
    if check:
        from xaiq.xai.models import model_input_shape

        shapes = {m: _xai("models", model_input_shape, m) for m in models}
        first = shapes[models[0]]
        for m in models[1:]:
            if shapes[m] != first:
                raise SpecError(
                    f"models: {m!r} takes inputs {shapes[m]}, {models[0]!r} takes {first}; "
                    "maps of different input sizes cannot share superpixels"
                )
