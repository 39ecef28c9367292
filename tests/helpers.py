"""Small test utilities shared across test packages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import nn

# a small disagreement job over the bundled digits: two cheap methods, one grid configuration
DIGITS_DISAGREEMENT: dict[str, Any] = {
    "kind": "disagreement",
    "dataset": "digits",
    "model": "digits-cnn",
    "methods": ["saliency", "grad_cam"],
    "superpixels": ["grid"],
    "n_segments": [16],
    "limit": 6,
    "shard_size": 3,
}


def assert_rows_close(got: Sequence[dict[str, Any]], want: Sequence[dict[str, Any]]) -> None:
    """Two runs' rows are the same up to float32 rounding: every non-float value equal, every
    float within 1e-6 relative (docs/architecture.md, Determinism)."""
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, float):
                assert value == pytest.approx(b[key], rel=1e-6, abs=1e-9, nan_ok=True), (key, a)
            else:
                assert value == b[key], (key, a)


class ForwardRecorder(nn.Module):
    """Wraps a model and records the batch size of every forward."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return self.inner(x)
