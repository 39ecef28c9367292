"""What a number was computed with: the model weights' sha256 and the library versions (the
runtime half of a job's protocol card, docs/faithfulness.md)."""

from __future__ import annotations

import hashlib
from importlib import metadata

import torch
from torch import nn

_hashes: dict[int, tuple[nn.Module, str]] = {}


def weights_sha256(module: nn.Module) -> str:
    """sha256 over every parameter and buffer of ``module`` in ``state_dict`` order: its name,
    dtype, shape and little-endian bytes (on the CPU). The same weights give the same digest
    whatever file format or device they came from. Cached per module object."""
    cached = _hashes.get(id(module))
    if cached is not None and cached[0] is module:
        return cached[1]
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    digest = h.hexdigest()
    _hashes[id(module)] = (module, digest)
    return digest


def library_versions() -> dict[str, str | None]:
    """Installed versions of xaiq, torch and captum (None when not installed)."""
    out: dict[str, str | None] = {}
    for name in ("xaiq", "torch", "captum"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out["torch"] is None:
        out["torch"] = str(torch.__version__)
    return out
