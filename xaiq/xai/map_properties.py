"""Properties of one attribution map, as Quantus defines them (Hedström et al., 2023), so that
"the faithful map is just the blurrier one" can be checked next to deletion/insertion.

- ``sparseness``: the Gini index of the flattened ``|map|`` (Chalasani et al., 2020):
  with ``x`` sorted ascending and ``i = 1..n``,
  ``G = sum((2 i - n - 1) x_i) / (n sum x_i)``; 0 when every pixel carries the same weight,
  ``(n - 1) / n`` when one pixel carries it all. Higher: sparser.
- ``complexity``: the Shannon entropy (natural log) of the normalised ``|map|``
  (Bhatt et al., 2020): ``p = |x| / sum |x|``, ``H = -sum p log p`` with ``0 log 0 = 0``;
  0 for one pixel, ``log n`` for a uniform map. Higher: more complex.

An all-zero map has neither (NaN, stored as NULL). Quantus adds 1e-7 to every value before
the Gini index to avoid that division; here the formula is exact and undefined stays
undefined.
"""

from __future__ import annotations

from typing import Any

import torch

from xaiq.xai.errors import InvalidParameterError


def _flat_abs(maps: Any) -> torch.Tensor:
    m = torch.as_tensor(maps).detach()
    if m.ndim < 2:
        raise InvalidParameterError(f"maps must be [N, H, W] (or [N, D]), got {tuple(m.shape)}")
    return m.reshape(m.shape[0], -1).to(torch.float64).abs()


def sparseness(maps: Any) -> torch.Tensor:
    """``[N]`` float64 (CPU) Gini index of each map's ``|values|`` (NaN for an all-zero map).
    ``maps``: ``[N, H, W]`` (or ``[N, D]``) tensor or array, any device."""
    x = torch.sort(_flat_abs(maps), dim=1).values
    n = x.shape[1]
    i = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)
    total = x.sum(dim=1)
    gini = ((2 * i - n - 1) * x).sum(dim=1) / (n * total)
    return torch.where(total > 0, gini, torch.full_like(gini, float("nan"))).cpu()


def complexity(maps: Any) -> torch.Tensor:
    """``[N]`` float64 (CPU) entropy of each map's normalised ``|values|`` (NaN when all-zero).
    ``maps``: ``[N, H, W]`` (or ``[N, D]``) tensor or array, any device."""
    x = _flat_abs(maps)
    total = x.sum(dim=1, keepdim=True)
    p = x / torch.where(total > 0, total, torch.ones_like(total))
    h = -torch.where(p > 0, p * torch.log(torch.where(p > 0, p, torch.ones_like(p))), 0.0).sum(1)
    return torch.where(total[:, 0] > 0, h, torch.full_like(h, float("nan"))).cpu()
