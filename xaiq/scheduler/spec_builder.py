"""Job specs built from command-line flags (``xaiq submit KIND``), one builder per kind.

Each builder takes the flag values as given (``None``: not given), turns the list, number
and ``KEY=VALUE`` spellings into spec values and lays them over the ``--spec`` file's object,
if any. The result is a raw spec for :func:`xaiq.scheduler.spec.validate_spec`, which checks
every value; here only the spelling is checked (:class:`SpecError` naming the flag). The
kind registry (:mod:`xaiq.scheduler.kinds`) names each kind's builder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xaiq.scheduler.bounds import MAX_SPEC_BYTES
from xaiq.scheduler.errors import SpecError


def split_list(values: list[str] | None) -> list[str] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (options accept lists both ways)."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _finite_or_text(text: str) -> Any:
    number = float(text)
    return number if math.isfinite(number) else text


def _value(text: str) -> Any:
    """A ``KEY=VALUE`` value as JSON reads it; a number that is not finite (``NaN``,
    ``Infinity``, ``1e400``) stays the text typed, which validation refuses by name."""
    try:
        return json.loads(text, parse_float=_finite_or_text, parse_constant=str)
    except json.JSONDecodeError:
        return text


def numbers(values: list[str] | None, kind: type, flag: str) -> list[Any] | None:
    """A list flag's values as ``kind`` (``int`` or ``float``)."""
    items = split_list(values)
    if items is None:
        return None
    try:
        return [kind(v) for v in items]
    except ValueError:
        raise SpecError(f"{flag} takes {kind.__name__} values, got {','.join(items)!r}") from None


def key_values(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (a value is JSON when it parses)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, val = pair.partition("=")
        if not sep or not key:
            raise SpecError(f"{flag} expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = _value(val.strip())
    return out


def method_params(pairs: list[str] | None, flag: str = "--param") -> dict[str, dict[str, Any]]:
    """``["rise.n_masks=1000"]`` -> ``{"rise": {"n_masks": 1000}}``."""
    params: dict[str, dict[str, Any]] = {}
    for key, val in key_values(pairs, flag).items():
        method, sep, name = key.partition(".")
        if not sep:
            raise SpecError(f"{flag} expects METHOD.KEY=VALUE, got {key!r}")
        params.setdefault(method, {})[name] = val
    return params


def read_spec_file(path: Path) -> dict[str, Any]:
    """The JSON object of a ``--spec`` file (at most ``MAX_SPEC_BYTES``, UTF-8)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
        if len(data) > MAX_SPEC_BYTES:
            raise SpecError(f"spec file {path} is larger than {MAX_SPEC_BYTES} bytes")
        spec = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError(f"spec file {path} is not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise SpecError(f"spec file {path} nests too deep") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecError(f"cannot read spec file {path}: {exc}") from None
    if not isinstance(spec, dict):
        raise SpecError(f"spec file {path} must hold a JSON object")
    return spec


def build_spec(
    kind: str, options: Mapping[str, Any], spec_file: Path | None = None
) -> dict[str, Any]:
    """The raw spec from ``spec_file`` (if any) overridden by the options that were given
    (``None`` and ``{}`` are "not given")."""
    spec: dict[str, Any] = read_spec_file(spec_file) if spec_file is not None else {}
    spec["kind"] = kind
    spec.update({k: v for k, v in options.items() if v is not None and v != {}})
    return spec


def common_options(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The keys every kind takes: dataset, model, seed, shard and batch sizes, limit,
    priority, queue, max_attempts."""
    keys = ("dataset", "model", "seed", "shard_size", "batch_size", "limit", "priority")
    out = {k: flags.get(k) for k in (*keys, "queue", "max_attempts", "map_dtype")}
    out["recompute"] = flags.get("recompute") or None  # absent unless asked for
    return out


def attribution_spec(flags: Mapping[str, Any], spec_file: Path | None = None) -> dict[str, Any]:
    """``submit attribution``: methods (a list), ``--param``, target."""
    options = {
        **common_options(flags),
        "methods": split_list(flags.get("methods")),
        "params": method_params(flags.get("param")),
        "target": flags.get("target"),
    }
    return build_spec("attribution", options, spec_file)


def disagreement_spec(flags: Mapping[str, Any], spec_file: Path | None = None) -> dict[str, Any]:
    """``submit disagreement``: methods, ``--param``, the superpixel sweep, from_job, target,
    models, and the faithfulness and sanity add-ons."""
    faith = key_values(flags.get("faith_param"), "--faith-param")
    sanity_params = key_values(flags.get("sanity_param"), "--sanity-param")
    sanity = flags.get("sanity")
    options = {
        **common_options(flags),
        "methods": split_list(flags.get("methods")),
        "params": method_params(flags.get("param")),
        "superpixels": split_list(flags.get("superpixels")),
        "n_segments": numbers(flags.get("n_segments"), int, "--n-segments"),
        "k_frac": numbers(flags.get("k_frac"), float, "--k-frac"),
        "from_job": flags.get("from_job"),
        "target": flags.get("target"),
        "models": split_list(flags.get("models")),
        "faithfulness": (faith or True) if flags.get("faithfulness") or faith else None,
        "sanity": {"mode": sanity or "cascading", **sanity_params}
        if sanity or sanity_params
        else None,
    }
    return build_spec("disagreement", options, spec_file)


ATTACK_FLAGS = (
    "mode",
    "frac",
    "sigma",
    "clamp",
    "preset",
    "max_iters",
    "candidates",
    "strategies",
    "n_masks",
    "s",
    "p1",
)


def attack_spec(flags: Mapping[str, Any], spec_file: Path | None = None) -> dict[str, Any]:
    """``submit attack``: the search's options (spelled as on ``xaiq attack``), the class to
    reach (``target``), the guides' ``--param``, ``--attack-param KEY=VALUE``."""
    attack = {k: flags[k] for k in ATTACK_FLAGS if flags.get(k) is not None}
    if flags.get("compare"):
        attack["compare"] = True
    attack.update(key_values(flags.get("attack_param"), "--attack-param"))
    target = flags.get("target")
    if target is not None:  # the class to reach, as on `xaiq attack`
        attack["target_class"] = (numbers([str(target)], int, "--target") or [None])[0]
    guides = method_params(flags.get("param"))
    if guides:  # an attack's --param sets its guides' parameters
        attack["guide_params"] = guides
    if flags.get("attack_all"):
        attack["only_misclassified"] = False
    return build_spec("attack", {**common_options(flags), "attack": attack}, spec_file)
