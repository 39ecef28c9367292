"""Maps computed once: a map's identity, and the lookup of maps the store already has.

A map is determined by the model's weights, the model input it explains, the method and its
parameters, the class it explains, the input size, the device class and the way xaiq makes
and stores maps. :func:`map_key` hashes exactly these (the sha256 of the model's state dict,
the sha256 of the preprocessed input tensor, the method's validated parameters, plus the job
seed and sample index for a stochastic method, whose random stream derives from them). An
``attributions`` row keeps its map's key; a later job that needs a map with the same key
reads the stored bytes instead of recomputing, and its row says ``reused``. A job with
``recompute`` set skips the lookup.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sqlalchemy import Engine, select

from xaiq.xai.models import LoadedModel

# bumped whenever a change to xaiq makes an earlier stored map stale (explainer code, layout)
MAP_VERSION = 1

_weights: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()


def weights_sha256(model: LoadedModel) -> str:
    """sha256 over the state dict's names, dtypes, shapes and bytes (once per module)."""
    module = model.module
    if module not in _weights:
        h = hashlib.sha256()
        for name, tensor in module.state_dict().items():
            t = tensor.detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        _weights[module] = h.hexdigest()
    return _weights[module]


def input_sha256(x: torch.Tensor) -> str:
    """sha256 of one model input ``[C, H, W]`` as float32 bytes (what the explainer sees)."""
    arr = x.detach().cpu().to(torch.float32).contiguous().numpy()
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def device_class(model: LoadedModel) -> str:
    return "cuda" if model.device.type == "cuda" else model.device.type


def map_keys(
    model: LoadedModel,
    method: str,
    params: dict[str, Any],
    inputs: torch.Tensor,
    targets: Sequence[int],
    sample_ids: Sequence[int],
    seed: int,
    dtype: str,
) -> list[str]:
    """One identity per sample of the batch (see the module docstring)."""
    from xaiq.xai.explainers.base import EXPLAINERS

    stochastic = bool(EXPLAINERS.get(method).stochastic)
    common = {
        "v": MAP_VERSION,
        "weights": weights_sha256(model),
        "method": method,
        "params": params,
        "size": list(inputs.shape[1:]),
        "device": device_class(model),
        "dtype": dtype,
    }
    keys = []
    for i, idx in enumerate(sample_ids):
        ident = {
            **common,
            "input": input_sha256(inputs[i]),
            "target": int(targets[i]),
            "random": [int(seed), int(idx)] if stochastic else None,
        }
        text = json.dumps(ident, sort_keys=True, default=str)
        keys.append(hashlib.sha256(text.encode()).hexdigest())
    return keys


def stored_maps(engine: Engine | None, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{key: (artifact, checksum)}`` for the keys some earlier row already stored."""
    if engine is None or not keys:
        return {}
    from xaiq.db.models import Attribution
    from xaiq.db.session import read_session

    found: dict[str, tuple[str, str]] = {}
    unique = sorted(set(keys))
    with read_session(engine) as session:
        for lo in range(0, len(unique), 500):
            part = unique[lo : lo + 500]
            for key, artifact, checksum in session.execute(
                select(Attribution.map_key, Attribution.artifact, Attribution.checksum)
                .where(Attribution.map_key.in_(part))
                .order_by(Attribution.id)
            ):
                found.setdefault(key, (artifact, checksum))
    return found
