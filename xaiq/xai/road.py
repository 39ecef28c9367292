"""ROAD's noisy linear imputation (Rong et al., 2022, "A Consistent and Efficient Evaluation
Strategy for Attribution Methods"), batched on the images' device.

Removed pixels are not replaced by a constant (which a model can detect, leaking the order
through the mask's shape) but by the weighted mean of their 8 neighbours: weight 1/6 for the
4 direct and 1/12 for the 4 diagonal neighbours, neighbours outside the image dropped (the
mean divides by the weights that remain). Every removed pixel's value depends on its removed
neighbours, so the values solve a sparse linear system per image and channel:

    s_i x_i - sum_{j removed} w_ij x_j = sum_{j kept} w_ij v_j       (i removed)

with ``s_i`` the sum of pixel ``i``'s in-image neighbour weights and ``v`` the image. The
matrix is symmetric and diagonally dominant, so it is solved by conjugate gradients with the
diagonal as preconditioner, all systems of a batch at once (per iteration, the neighbour sum
is 8 shifted adds of a zero-padded copy, which beat a depthwise 3 x 3 ``conv2d`` on the CPU),
each stopped on its own when its residual falls below ``tol`` times its right-hand side. A
removed region that touches no kept pixel (everything removed) has a zero right-hand side and
gets 0, the model-input baseline. Then N(0, ``noise``^2) is added to the
removed pixels only (ROAD's default noise is 0.01), from counter-based streams so that a
sample's noise does not depend on its batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xaiq.xai.errors import InvalidParameterError

ROAD_NOISE = 0.01
ROAD_TOL = 1e-5
DIRECT, DIAGONAL = 1.0 / 6.0, 1.0 / 12.0


_OFFSETS = [
    ((dy, dx), DIRECT if 0 in (dy, dx) else DIAGONAL)
    for dy in (-1, 0, 1)
    for dx in (-1, 0, 1)
    if (dy, dx) != (0, 0)
]


def check_road_params(noise: float, tol: float) -> None:
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0.0 <= noise <= 1.0:
        raise InvalidParameterError(f"road_noise must be in [0, 1], got {noise!r}")
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0.0 < tol < 1.0:
        raise InvalidParameterError(f"road_tol must be in (0, 1), got {tol!r}")


@torch.no_grad()
def road_impute(
    images: torch.Tensor,
    removed: torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    tol: float = ROAD_TOL,
    max_iter: int | None = None,
) -> torch.Tensor:
    """Impute the ``removed`` pixels of ``images`` (module docstring).

    Args:
        images: ``[B, C, H, W]`` float (any device); kept pixels are returned unchanged.
        removed: ``[B, 1, H, W]`` or ``[B, H, W]`` bool (or 0/1): the pixels to impute (every
            channel).
        noise: ``[B, C, H, W]`` added to the imputed pixels (already scaled), or None.
        tol: relative residual ``|r| / |b|`` at which a system stops.
        max_iter: cap on iterations (default ``4 * (H + W)``, far more than the grids need).

    Returns:
        ``[B, C, H, W]`` in the images' dtype.
    """
    b_count, c, h, w = images.shape
    mask = removed.reshape(b_count, 1, h, w).to(images.dtype)
    if max_iter is None:
        max_iter = 4 * (h + w)

    def conv(v: torch.Tensor) -> torch.Tensor:  # sum of w_ij v_j over in-image neighbours
        padded = F.pad(v, (1, 1, 1, 1))
        out = torch.zeros_like(v)
        for (dy, dx), weight in _OFFSETS:
            out.add_(padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w], alpha=weight)
        return out

    rem = mask.expand(b_count, c, h, w).contiguous()
    # in-image neighbour weight per pixel
    s = conv(torch.ones(1, 1, h, w, dtype=images.dtype, device=images.device))

    def apply(v: torch.Tensor) -> torch.Tensor:  # A v on the removed pixels, 0 elsewhere
        return (s * v - conv(v * rem)) * rem

    rhs = conv(images * (1.0 - rem)) * rem
    x = torch.zeros_like(images)
    r = rhs.clone()
    z = r / s
    p = z.clone()
    rz = (r * z).sum(dim=(2, 3), keepdim=True)
    bound = tol * rhs.norm(dim=(2, 3), keepdim=True)
    active = r.norm(dim=(2, 3), keepdim=True) > bound
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        ap = apply(p)
        pap = (p * ap).sum(dim=(2, 3), keepdim=True)
        alpha = torch.where(active & (pap > 0), rz / pap.clamp_min(1e-30), torch.zeros_like(pap))
        x = x + alpha * p
        r = r - alpha * ap
        active = active & (r.norm(dim=(2, 3), keepdim=True) > bound)
        z = r / s
        rz_new = (r * z).sum(dim=(2, 3), keepdim=True)
        beta = torch.where(active, rz_new / rz.clamp_min(1e-30), torch.zeros_like(rz))
        p = z + beta * p
        rz = rz_new
    filled = x if noise is None else x + noise
    return torch.where(rem > 0, filled, images)
