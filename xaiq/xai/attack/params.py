"""Attack parameters: one table of defaults and domains, validated at submit time.

``validate_attack_params(params)`` fills the defaults, coerces types, refuses unknown keys
and out-of-domain values with a one-line :class:`InvalidParameterError` naming the key and
the value. The same table drives :func:`~xaiq.xai.attack.rise_guided_search` and the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.ties import TIES

CENTRAL = ("exact", "rect")  # the central region: exactly b pixels, or the lab's rectangle
NOISE = ("common", "strategy")  # common random numbers, or a stream per strategy

MODES = ("repair", "targeted", "untargeted")
# The fixed names; ``least:METHOD`` / ``most:METHOD`` add one per registered explainer.
STRATEGIES = ("rise-least", "rise-most", "central", "random")
DEFAULT_STRATEGIES = ("rise-least", "central")
PRESETS = ("default", "seed")
# ``preset="seed"``: the source lab's procedure exactly (no clamp, ties by lower flat index,
# the rectangle alone as ``central``, each strategy its own noise stream, sigma 1); keys
# given explicitly still win.
SEED_PRESET: dict[str, object] = {
    "clamp": False,
    "ties": "index",
    "central": "rect",
    "noise": "strategy",
    "sigma": 1.0,
}
# Noise streams of the fixed names: a strategy draws the same noise wherever it sits in the
# chain (the guided ones: :func:`~xaiq.xai.attack.strategies.parse_strategy`).
STRATEGY_STREAMS = {"rise-least": 1, "rise-most": 2, "central": 3, "random": 4}


@dataclass(frozen=True)
class AttackParam:
    default: Any
    kind: type
    check: Callable[[Any], bool] | None = None
    domain: str = ""
    job_only: bool = False  # chooses samples/targets in the job layer; not a search parameter


def _strategies(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        names = tuple(v.strip() for v in value.split(",") if v.strip())
    elif isinstance(value, list | tuple):
        names = tuple(str(v).strip() for v in value)
    else:
        raise InvalidParameterError(f"attack: strategies must be a list of names, got {value!r}")
    if not names:
        raise InvalidParameterError(f"attack: strategies must name at least one of {STRATEGIES}")
    from xaiq.xai.attack.strategies import parse_strategy

    names = tuple(parse_strategy(name).name for name in names)
    if len(set(names)) != len(names):
        raise InvalidParameterError(f"attack: strategies repeat a name: {','.join(names)}")
    return names


def _guide_params(value: Any) -> dict[str, dict[str, Any]]:
    """``{METHOD: {key: value}}``: each method's own parameters, validated by its explainer."""
    from xaiq.xai.explainers import EXPLAINERS, validate_params

    if not isinstance(value, Mapping):
        raise InvalidParameterError(
            f"attack: guide_params must map a method to its parameters, got {value!r}"
        )
    out: dict[str, dict[str, Any]] = {}
    for method, params in value.items():
        if method not in EXPLAINERS:
            raise InvalidParameterError(
                f"attack: guide_params: {EXPLAINERS.unknown_message(method)}"
            )
        if not isinstance(params, Mapping):
            raise InvalidParameterError(
                f"attack: guide_params[{method!r}] must be an object, got {params!r}"
            )
        validate_params(method, params)  # refuses unknown keys and bad values, naming them
        out[str(method)] = dict(params)
    return out


PARAMS: dict[str, AttackParam] = {
    "mode": AttackParam("repair", str, lambda v: v in MODES, "one of " + ", ".join(MODES)),
    "frac": AttackParam(0.4, float, lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
    "sigma": AttackParam(1.0, float, lambda v: v > 0.0, "> 0"),
    "clamp": AttackParam(True, bool),
    "ties": AttackParam("random", str, lambda v: v in TIES, "one of " + ", ".join(TIES)),
    "central": AttackParam("exact", str, lambda v: v in CENTRAL, "one of " + ", ".join(CENTRAL)),
    "noise": AttackParam("common", str, lambda v: v in NOISE, "one of " + ", ".join(NOISE)),
    "preset": AttackParam("default", str, lambda v: v in PRESETS, "one of " + ", ".join(PRESETS)),
    "max_iters": AttackParam(10_000, int, lambda v: v >= 1, ">= 1"),
    "candidates": AttackParam(1, int, lambda v: v >= 1, ">= 1"),
    "strategies": AttackParam(DEFAULT_STRATEGIES, tuple),
    "compare": AttackParam(False, bool),
    "guide_params": AttackParam({}, dict),
    "fill": AttackParam(256, int, lambda v: v >= 0, ">= 0"),
    "n_masks": AttackParam(4000, int, lambda v: v >= 1, ">= 1"),
    "s": AttackParam(7, int, lambda v: v >= 1, ">= 1"),
    "p1": AttackParam(0.5, float, lambda v: 0.0 < v < 1.0, "in (0, 1)"),
    "batch_size": AttackParam(None, int, lambda v: v >= 1, ">= 1"),
    "only_misclassified": AttackParam(True, bool, job_only=True),
    "target_class": AttackParam(None, int, lambda v: v >= 0, ">= 0", job_only=True),
}


# The documented maximum of every numeric attack parameter (docs/operations.md, "Limits"):
# a single search beyond these needs more memory or time than any machine here has.
MAXIMA: dict[str, float] = {
    "sigma": 1_000.0,
    "max_iters": 1_000_000,
    "candidates": 1024,
    "fill": 1_000_000,
    "n_masks": 100_000,
    "s": 256,
    "batch_size": 65_536,
    "target_class": 1_000_000,
}


def _coerce(key: str, value: Any, spec: AttackParam) -> Any:
    if spec.kind is tuple:
        return _strategies(value)
    if spec.kind is dict:
        return _guide_params(value)
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        raise InvalidParameterError(f"attack: {key} must be true or false, got {value!r}")
    if spec.kind is str:
        if not isinstance(value, str):
            raise InvalidParameterError(f"attack: {key} must be a string, got {value!r}")
        return value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidParameterError(f"attack: {key} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidParameterError(f"attack: {key} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidParameterError(f"attack: {key} must be finite, got {value!r}")
    if key in MAXIMA and value > MAXIMA[key]:
        raise InvalidParameterError(f"attack: {key}={value!r} is above its maximum {MAXIMA[key]:g}")
    if spec.kind is int:
        if float(value) != int(value):
            raise InvalidParameterError(f"attack: {key} must be an integer, got {value!r}")
        return int(value)
    return float(value)


def validate_attack_params(params: Mapping[str, Any], *, search_only: bool = False) -> dict:
    """``params`` with defaults filled in, coerced and checked; unknown keys are refused.

    Keys and defaults: mode="repair" (repair | targeted | untargeted), frac=0.4 in (0, 1],
    sigma=1.0 > 0, clamp=True (candidates stay inside the model's input domain),
    ties="random" (random | index | reverse: how a guide orders equal map values; random is
    seeded per sample), central="exact" (exact: exactly floor(frac H W) pixels; rect: the
    source lab's rectangle), noise="common" (common: every strategy draws the same noise
    for the same sample and iteration; strategy: a stream per strategy),
    preset="default" (seed: the source lab's procedure, i.e. clamp=False, ties="index",
    central="rect", noise="strategy", sigma=1.0 unless given explicitly), max_iters=10000
    (per strategy), candidates=1 (K per image per iteration),
    strategies=("rise-least", "central") (the fallback chain; names as in
    :mod:`~xaiq.xai.attack.strategies`, ``least:rise`` stored as ``rise-least``),
    compare=False (True: every strategy attacks every sample from the original, no chain),
    guide_params={} (``{METHOD: {key: value}}``, the guiding explainers' own parameters;
    RISE's default to n_masks, s, p1), n_masks=4000, s=7, p1=0.5 in (0, 1) (RISE),
    batch_size=None (candidates per forward), fill=256 (while fewer candidates than this
    are in a forward, a chain runs its later strategies speculatively and every track
    evaluates its next iterations ahead; 0: never; results do not depend on it), and the
    job-level
    only_misclassified=True (repair: attack only misclassified samples) and target_class=None
    (required by, and only allowed in, targeted mode). ``search_only`` drops the job-level keys.
    """
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise InvalidParameterError(
            f"attack: unknown parameter {unknown[0]!r}; known: {', '.join(sorted(PARAMS))}"
        )
    out: dict[str, Any] = {}
    preset = params.get("preset", "default")
    if preset not in PRESETS:
        raise InvalidParameterError(
            f"attack: preset={preset!r} is out of range (one of {', '.join(PRESETS)})"
        )
    defaults = SEED_PRESET if preset == "seed" else {}
    for key, spec in PARAMS.items():
        value = params.get(key, defaults.get(key, spec.default))
        if value is not None:
            value = _coerce(key, value, spec)
            if spec.check is not None and not spec.check(value):
                raise InvalidParameterError(
                    f"attack: {key}={value!r} is out of range ({spec.domain})"
                )
        out[key] = value
    if out["mode"] == "targeted" and out["target_class"] is None and not search_only:
        raise InvalidParameterError("attack: mode='targeted' needs target_class")
    if out["mode"] != "targeted" and out["target_class"] is not None:
        raise InvalidParameterError(
            f"attack: target_class={out['target_class']} is only used with mode='targeted'"
        )
    if search_only:
        out = {k: v for k, v in out.items() if not PARAMS[k].job_only}
    return out
