"""RISE (Petsiuk et al. 2018) with the authors' mask geometry, batched for dataset scale.

Mask ``i`` of ``generate_masks(n, s, p1, (H, W), seed=...)``:

1. a binary grid ``G_i`` of ``s x s`` cells, each 1 with probability ``p1``;
2. cell size ``c = (ceil(H / s), ceil(W / s))``; ``G_i`` upsampled bilinearly to
   ``((s + 1) c_h, (s + 1) c_w)`` with half-pixel centres, no anti-aliasing and *reflect*
   borders (numpy/scikit-image ``reflect``: ``d c b | a b c d | c b a``, the edge is not
   repeated) -- exactly scikit-image's ``resize(G, up, order=1, mode="reflect",
   anti_aliasing=False)``;
3. an ``H x W`` window cropped at offset ``(dy, dx)``, ``dy`` in ``[0, c_h)``, ``dx`` in
   ``[0, c_w)``.

Bilinear upsampling is separable, so step 2+3 is ``Ry_i @ G_i @ Rx_i^T`` with ``Ry_i`` the
``H`` rows of a fixed ``[(s+1) c_h, s]`` interpolation matrix starting at ``dy`` (same for x).
That is one batched matmul per chunk of masks on the model's device. (``F.interpolate`` on a
reflect-padded grid cannot express this geometry: the padding shifts the output grid by
``c (s+1) / s`` pixels, not an integer.)

Randomness is counter-based (:mod:`xaiq.xai.noise`): mask ``i`` depends only on
``(seed, i)``, never on the chunk size, the device or the number of masks requested.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from xaiq.xai.device import module_device, resolve_device
from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.noise import uniform_bits

_STREAM_GRID = 0x5153_0001
_STREAM_SHIFT = 0x5153_0002
_CHUNK_ELEMENTS = 1 << 22  # mask elements generated at once (16 MiB of float32)


def check_rise_params(n_masks: int, s: int, p1: float) -> None:
    """Raise :class:`InvalidParameterError` naming the first bad value."""
    if isinstance(n_masks, bool) or not isinstance(n_masks, int) or n_masks < 1:
        raise InvalidParameterError(f"rise: n_masks must be an integer >= 1, got {n_masks!r}")
    if isinstance(s, bool) or not isinstance(s, int) or s < 1:
        raise InvalidParameterError(f"rise: s must be an integer >= 1, got {s!r}")
    if not isinstance(p1, int | float) or not 0.0 < float(p1) < 1.0:
        raise InvalidParameterError(f"rise: p1 must be in (0, 1), got {p1!r}")


def interpolation_matrix(n_in: int, n_out: int, device: torch.device | None = None) -> torch.Tensor:
    """``[n_out, n_in]`` float32 weights of bilinear resizing (half-pixel centres, reflect).

    Output ``d`` samples input coordinate ``(d + 0.5) n_in / n_out - 0.5``; indices outside
    ``[0, n_in)`` are reflected without repeating the edge (``-1 -> 1``, ``n_in -> n_in - 2``).
    """
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    scale = n_in / n_out
    for d in range(n_out):
        x = (d + 0.5) * scale - 0.5
        x0 = math.floor(x)
        frac = x - x0
        for idx, w in ((x0, 1.0 - frac), (x0 + 1, frac)):
            if n_in == 1:
                idx = 0
            else:
                period = 2 * (n_in - 1)
                idx %= period
                if idx >= n_in:
                    idx = period - idx
            weights[d, idx] += w
    return weights.to(device=device, dtype=torch.float32)


def _geometry(s: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    h, w = size
    ch, cw = math.ceil(h / s), math.ceil(w / s)
    return ch, cw, (s + 1) * ch, (s + 1) * cw


def mask_layout(
    ids: torch.Tensor, s: int, p1: float, size: tuple[int, int], *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The random part of masks ``ids [m]`` (int64): grids ``[m, s, s]`` bool (a cell is 1
    when its 32-bit hash is below ``p1 * 2**32``) and crop offsets ``[m, 2]`` int64
    ``(dy, dx)`` with ``dy < ceil(H / s)``, ``dx < ceil(W / s)``. Depends on ``(seed, id)``."""
    ch, cw, _, _ = _geometry(s, size)
    threshold = int(round(float(p1) * (1 << 32)))
    grid = uniform_bits(seed, ids, s * s, stream=_STREAM_GRID) < threshold
    shift = uniform_bits(seed, ids, 2, stream=_STREAM_SHIFT)
    offsets = torch.stack((shift[:, 0] % ch, shift[:, 1] % cw), dim=1)
    return grid.view(-1, s, s), offsets


def _masks_for_ids(
    ids: torch.Tensor,
    s: int,
    p1: float,
    size: tuple[int, int],
    seed: int,
    ry: torch.Tensor,
    rx: torch.Tensor,
) -> torch.Tensor:
    h, w = size
    device = ry.device
    grid, offsets = mask_layout(ids, s, p1, size, seed=seed)
    rows = offsets[:, :1] + torch.arange(h, device=device)[None, :]
    cols = offsets[:, 1:] + torch.arange(w, device=device)[None, :]
    left = ry[rows]  # [m, H, s]
    right = rx[cols]  # [m, W, s]
    return torch.bmm(torch.bmm(left, grid.to(torch.float32)), right.transpose(1, 2))


def iter_masks(
    n_masks: int,
    s: int,
    p1: float,
    size: tuple[int, int],
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    chunk: int | None = None,
) -> Iterator[torch.Tensor]:
    """The masks of :func:`generate_masks` in consecutive chunks ``[m, H, W]`` (m <= chunk)."""
    check_rise_params(n_masks, s, p1)
    dev = resolve_device(device)
    h, w = int(size[0]), int(size[1])
    _, _, up_h, up_w = _geometry(s, (h, w))
    ry = interpolation_matrix(s, up_h, dev)
    rx = ry if up_w == up_h else interpolation_matrix(s, up_w, dev)
    step = chunk or max(1, _CHUNK_ELEMENTS // (h * w))
    for start in range(0, n_masks, step):
        ids = torch.arange(start, min(n_masks, start + step), dtype=torch.int64, device=dev)
        yield _masks_for_ids(ids, s, p1, (h, w), seed, ry, rx)


def generate_masks(
    n_masks: int,
    s: int,
    p1: float,
    size: Sequence[int],
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """RISE masks ``[n_masks, H, W]`` float32 in [0, 1] on ``device`` (module docstring).

    Args:
        n_masks: number of masks N (>= 1).
        s: grid cells per side (>= 1).
        p1: probability that a cell is kept, in (0, 1).
        size: ``(H, W)`` of the model input.
        seed: masks depend only on ``seed`` and the mask index.
        device: where to build them (default: CUDA when available, else CPU).
    """
    hw = (int(size[0]), int(size[1]))
    return torch.cat(list(iter_masks(n_masks, s, p1, hw, seed=seed, device=device)))


def default_batch_size(image_shape: Sequence[int], device: torch.device | None = None) -> int:
    """Masked images per forward when ``batch_size`` is None.

    CPU: about 256K input elements, between 8 and 256 images (256 digits, 8 ImageNet
    images). In a process whose allocator is tuned as jobs tune it
    (:mod:`xaiq.xai.allocator`), digits-cnn on 2 cores ran the same rows in 0.78 s in
    batches of 256 or 384, 0.81 s of 128 and 0.84 s of 83, and slower again from 1024 up;
    without that tuning, batches of 256 took 0.80 s or 1.33 s by process (each batch's
    activations were fresh pages from ``mmap``). CUDA: about 16M input elements, at most
    1024 images."""
    elements = max(1, math.prod(int(d) for d in image_shape))
    if device is not None and device.type == "cuda":
        return max(1, min(1024, (1 << 24) // elements))
    return max(8, min(256, (1 << 18) // elements))


@torch.no_grad()
def rise_saliency(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | int,
    *,
    masks: torch.Tensor | None = None,
    n_masks: int = 4000,
    s: int = 7,
    p1: float = 0.5,
    seed: int = 0,
    batch_size: int | None = None,
) -> torch.Tensor:
    """RISE saliency ``S = sum_i softmax(f(x * M_i))_t * M_i / (N * p1)``.

    Args:
        model: classifier ``[B, C, H, W] -> logits [B, classes]`` (eval mode).
        images: model inputs ``[N, C, H, W]`` (moved to the model's device, float32).
        targets: class ``t`` per image, ``[N]`` ints or one int.
        masks: explicit masks ``[M, H, W]`` in [0, 1] (any device); then ``N = M`` and
            ``n_masks``, ``s``, ``seed`` are ignored (``p1`` still normalises).
        n_masks, s, p1, seed: mask generation (defaults 4000, 7, 0.5, 0) when ``masks`` is None.
        batch_size: masked images per forward (default: :func:`default_batch_size`).
            Masks are made in chunks of at most 16 MiB (or ``batch_size`` masks, if more)
            and used ``batch_size`` at a time by every image, so memory does not grow with
            ``n_masks``; when fewer masks than ``batch_size`` remain, several images share
            one forward.

    Returns:
        ``[N, H, W]`` float32 on the model's device. Only the target class is accumulated.
    """
    device = module_device(model)
    x = images.to(device=device, dtype=torch.float32)
    if x.ndim != 4:
        raise InvalidParameterError(f"rise: images must be [N, C, H, W], got {tuple(x.shape)}")
    n, _, h, w = x.shape
    t = torch.as_tensor(targets, dtype=torch.long, device=device).reshape(-1)
    if t.numel() == 1 and n != 1:
        t = t.expand(n)
    if t.numel() != n:
        raise InvalidParameterError(f"rise: targets must have {n} entries, got {t.numel()}")
    if not isinstance(p1, int | float) or not 0.0 < float(p1) < 1.0:
        raise InvalidParameterError(f"rise: p1 must be in (0, 1), got {p1!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
        raise InvalidParameterError(f"rise: batch_size must be >= 1, got {batch_size!r}")
    bs = int(batch_size) if batch_size is not None else default_batch_size(x.shape[1:], device)
    if masks is not None:
        if masks.ndim != 3 or tuple(masks.shape[1:]) != (h, w):
            raise InvalidParameterError(
                f"rise: masks must be [M, {h}, {w}], got {tuple(masks.shape)}"
            )
        total = masks.shape[0]
        chunks: Iterator[torch.Tensor] = (
            masks[i : i + bs].to(device=device, dtype=torch.float32) for i in range(0, total, bs)
        )
    else:
        check_rise_params(n_masks, s, p1)
        total = n_masks
        # masks are made in chunks of up to 16 MiB (making them has a per-call cost: 83 masks
        # at a time took 19 us per mask, 1,000 at a time 8 us) and used bs at a time, so the
        # batches, and the result, are the same as with chunks of bs
        step = max(bs, _CHUNK_ELEMENTS // (h * w))
        chunks = iter_masks(n_masks, s, p1, (h, w), seed=seed, device=device, chunk=step)
    saliency = torch.zeros(n, h * w, dtype=torch.float32, device=device)
    for chunk in chunks:
        for start in range(0, chunk.shape[0], bs):
            _accumulate(model, x, t, chunk[start : start + bs], saliency, bs)
    return (saliency / (total * float(p1))).view(n, h, w)


def _accumulate(
    model: nn.Module,
    x: torch.Tensor,
    t: torch.Tensor,
    chunk: torch.Tensor,
    saliency: torch.Tensor,
    batch_size: int,
) -> None:
    """Add ``p_t(x * M) @ M`` for one chunk of masks to ``saliency [N, H*W]`` in place."""
    m = chunk.shape[0]
    flat = chunk.reshape(m, -1)
    group = max(1, batch_size // m)  # images per forward
    for start in range(0, x.shape[0], group):
        xs, ts = x[start : start + group], t[start : start + group]
        g = xs.shape[0]
        masked = (xs[:, None] * chunk[None, :, None]).reshape(g * m, *x.shape[1:])
        logits = model(masked).float()
        probs = logits.softmax(dim=1).view(g, m, -1)
        p_t = probs.gather(2, ts.view(g, 1, 1).expand(g, m, 1)).squeeze(2)  # [g, m]
        saliency[start : start + g] += p_t @ flat
