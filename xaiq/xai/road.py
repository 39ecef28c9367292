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
diagonal as preconditioner, all systems of a batch at once (a 3 x 3 depthwise convolution per
iteration), each stopped on its own when its residual falls below ``tol`` times its
right-hand side. A removed region that touches no kept pixel (everything removed) has a zero
right-hand side and gets 0, the model-input baseline. Then N(0, ``noise``^2) is added to the
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


def neighbour_weights(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[3, 3]``: 1/6 direct, 1/12 diagonal, 0 at the centre."""
    w = torch.tensor(
        [[DIAGONAL, DIRECT, DIAGONAL], [DIRECT, 0.0, DIRECT], [DIAGONAL, DIRECT, DIAGONAL]],
        dtype=dtype,
    )
    return w.to(device)


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
    weights = neighbour_weights(images.dtype, images.device)
    kern = weights.expand(c, 1, 3, 3)

    def conv(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(v, kern, padding=1, groups=c)

    rem = mask.expand(b_count, c, h, w)
    s = F.conv2d(
        torch.ones(1, 1, h, w, dtype=images.dtype, device=images.device),
        weights.view(1, 1, 3, 3),
        padding=1,
    )  # in-image neighbour weight per pixel

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
