"""The explainer registry, parameter validation and the public ``explain`` entry point.

An explainer is a function ``fn(module, images, targets, *, seed, sample_ids, **params)``:
``images`` are model inputs ``[N, C, H, W]`` float32 on the module's device, ``targets``
int64 ``[N]`` on the same device; it returns ``[N, H, W]`` float32 attributions (channel
attributions summed, sign kept). ``seed`` and ``sample_ids`` derive per-sample random streams
(:mod:`xaiq.xai.seeding`) for stochastic methods, so a sample's map never depends on the batch
it was computed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.registry import Registry

ExplainerFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Param:
    """One explainer parameter: default, type, and an optional domain check."""

    default: Any
    kind: type = float
    check: Callable[[Any], bool] | None = None
    domain: str = ""  # human-readable domain for error messages, e.g. "> 0"
    doc: str = ""


@dataclass(frozen=True)
class Explainer:
    name: str
    fn: ExplainerFn
    params: Mapping[str, Param] = field(default_factory=dict)
    stochastic: bool = False
    doc: str = ""


EXPLAINERS: Registry[Explainer] = Registry("method")


def register(
    name: str, params: Mapping[str, Param] | None = None, *, stochastic: bool = False
) -> Callable[[ExplainerFn], ExplainerFn]:
    """Register ``fn`` as the explainer ``name`` with its parameter table."""

    def decorator(fn: ExplainerFn) -> ExplainerFn:
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        EXPLAINERS.add(name, Explainer(name, fn, dict(params or {}), stochastic, doc))
        return fn

    return decorator


def _coerce(method: str, key: str, value: Any, spec: Param) -> Any:
    typed = value  # as the user gave it, for the message ("1e400", not inf)

    def bad(what: str) -> InvalidParameterError:
        return InvalidParameterError(f"{method}: parameter {key!r} must be {what}, got {typed!r}")

    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        raise bad("true/false")
    if spec.kind in (int, float):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise bad("a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise bad("a finite number")  # nan/inf/1e400: before int() raises on them
        if spec.kind is int and float(value) != int(value):
            raise bad("an integer")
        return spec.kind(value)
    if spec.kind is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    return value


# The documented maximum of every numeric explainer parameter (by name; docs/operations.md,
# "Limits"): beyond these a single batch needs more memory or time than any machine here has.
MAXIMA: dict[str, float] = {
    "n_steps": 10_000,
    "n_samples": 10_000,
    "n_masks": 100_000,
    "s": 256,
    "window": 4096,
    "stride": 4096,
    "internal_batch_size": 65_536,
    "batch_size": 65_536,
    "perturbations_per_eval": 65_536,
    "stdev": 1_000.0,
}


def validate_params(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in, types coerced, domains checked; unknown keys are refused. Numbers
    must be finite and at most :data:`MAXIMA` (when the name is there)."""
    explainer = EXPLAINERS.get(method)
    unknown = sorted(set(params) - set(explainer.params))
    if unknown:
        known = ", ".join(sorted(explainer.params)) or "none"
        raise InvalidParameterError(f"{method}: unknown parameter {unknown[0]!r}; known: {known}")
    out: dict[str, Any] = {}
    for key, spec in explainer.params.items():
        value = params.get(key, spec.default)
        if value is None:
            out[key] = None
            continue
        value = _coerce(method, key, value, spec)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidParameterError(f"{method}: parameter {key} must be finite, got {value!r}")
        if key in MAXIMA and isinstance(value, int | float) and value > MAXIMA[key]:
            raise InvalidParameterError(
                f"{method}: parameter {key}={value!r} is above its maximum {MAXIMA[key]:g}"
            )
        if spec.check is not None and not spec.check(value):
            raise InvalidParameterError(
                f"{method}: parameter {key}={value!r} is out of range ({spec.domain or 'invalid'})"
            )
        out[key] = value
    return out


def explain(
    method: str,
    model: Any,
    images: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | int,
    *,
    seed: int = 0,
    sample_ids: Sequence[int] | None = None,
    **params: Any,
) -> torch.Tensor:
    """Attribution maps of ``method`` for ``images``.

    Args:
        method: a registered explainer name (see ``EXPLAINERS.names()``).
        model: a :class:`~xaiq.xai.models.LoadedModel` or a bare ``nn.Module`` (eval mode).
        images: model inputs ``[N, C, H, W]`` (preprocessed), any device.
        targets: class per image, ``[N]`` ints (or one int for all).
        seed: job seed for stochastic methods.
        sample_ids: stable sample indices ``[N]`` (default ``0..N-1``): per-sample streams.
        **params: method parameters (validated; unknown keys refused).

    Returns:
        ``[N, H, W]`` float32 on the model's device.
    """
    from xaiq.xai.device import module_device
    from xaiq.xai.models import as_module

    explainer = EXPLAINERS.get(method)
    clean = validate_params(method, params)
    module: nn.Module = as_module(model)
    device = module_device(module)
    x = images.to(device=device, dtype=torch.float32)
    if x.ndim != 4:
        raise InvalidParameterError(f"images must be [N, C, H, W], got shape {tuple(x.shape)}")
    n = x.shape[0]
    t = torch.as_tensor(targets, dtype=torch.long, device=device).reshape(-1)
    if t.numel() == 1 and n != 1:
        t = t.expand(n)
    if t.numel() != n:
        raise InvalidParameterError(f"targets must have {n} entries, got {t.numel()}")
    ids = list(range(n)) if sample_ids is None else [int(i) for i in sample_ids]
    if len(ids) != n:
        raise InvalidParameterError(f"sample_ids must have {n} entries, got {len(ids)}")
    out = explainer.fn(module, x, t, seed=seed, sample_ids=ids, **clean)
    if out.shape != (n, x.shape[2], x.shape[3]):
        raise AssertionError(f"{method} returned shape {tuple(out.shape)}")
    return out.to(torch.float32)
