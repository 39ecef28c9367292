"""Device selection: CUDA when present, else CPU. Nothing here assumes either."""

from __future__ import annotations

import torch

from xaiq.xai.errors import InvalidParameterError


def resolve_device(device: torch.device | str | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` means ``cuda`` when available, else ``cpu``.

    Raises :class:`InvalidParameterError` for a name torch does not know (``bogus``) or a
    device this machine does not have (``cuda:0`` without CUDA, ``cuda:3`` with two GPUs)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        return device
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidParameterError(
            f"device {device!r} is not a device name: cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidParameterError(f"device {device!r}: this machine has no CUDA device")
        if dev.index is not None and dev.index >= count:
            raise InvalidParameterError(
                f"device {device!r}: this machine has {count} CUDA device(s)"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidParameterError(f"device {device!r}: MPS is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise InvalidParameterError(f"device {device!r}: xaiq runs on cpu, cuda or mps")
    return dev


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a parameterless module)."""
    for param in module.parameters():
        return param.device
    for buffer in module.buffers():
        return buffer.device
    return torch.device("cpu")
