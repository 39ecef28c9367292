"""The RISE-guided random search (DESIGN.md §5), batched across images.

Per image and strategy (the source lab's procedure when ``candidates=1``)::

    current = x;  best = score(x)
    for it in range(max_iters):
        cand_k = current + mask * sigma * z(seed, sample_id, strategy, it, k)   k < K
        (clamp the changed values into the model's valid range when clamp=True)
        k* = argmax_k score(cand_k)   (ties: lowest k)
        if score(cand_k*) > best: current, best = cand_k*, score(cand_k*)
        if stop(argmax f(current)): break

``score`` is the target log-probability (log-softmax: same order as the probability, no
float saturation) in ``repair``/``targeted`` mode and minus the true-class log-probability
in ``untargeted`` mode; ``stop`` is "predicts the target" resp. "predicts anything else".
``z`` comes from :func:`xaiq.xai.noise.normal`: element ``e`` is the ``e``-th changeable value
of the image (masked pixels in flat ``[C, H, W]`` order), so the noise depends only on the
seed, the sample id, the strategy, the iteration, the candidate and ``e``. The loop runs
for all images at once with a shrinking active set; all ``A * K`` candidates of an iteration
go through one forward (split only past ``batch_size``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from xaiq.xai.attack.params import STRATEGY_STREAMS
from xaiq.xai.noise import normal


@dataclass
class StageOutcome:
    """Per-image state after one strategy: ``final [n, C*H*W]``, ``score``, ``pred``,
    ``reached`` (bool) and ``iterations`` (int64), all ``[n]`` on the model's device."""

    final: torch.Tensor
    score: torch.Tensor
    pred: torch.Tensor
    reached: torch.Tensor
    iterations: torch.Tensor


def forward_batched(module: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits ``[B, classes]`` float32 of ``x [B, C, H, W]`` in forwards of ``batch_size``."""
    outs = [module(x[i : i + batch_size]).float() for i in range(0, x.shape[0], batch_size)]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def stop_reached(pred: torch.Tensor, targets: torch.Tensor, untargeted: bool) -> torch.Tensor:
    """Bool ``[n]``: the attack's goal holds for predictions ``pred``."""
    return pred != targets if untargeted else pred == targets


def scores_from_logits(
    logits: torch.Tensor, targets: torch.Tensor, untargeted: bool
) -> torch.Tensor:
    """``[..., classes]`` logits and ``[...]`` targets -> the score the search maximises."""
    lp = logits.log_softmax(dim=-1).gather(-1, targets[..., None]).squeeze(-1)
    return -lp if untargeted else lp


def element_index(pixel_mask: torch.Tensor, channels: int) -> torch.Tensor:
    """Flat ``[C*H*W]`` indices ``[n, m*C]`` (ascending) of the values under the pixels
    of ``pixel_mask [n, H, W]`` in every channel."""
    n = pixel_mask.shape[0]
    elems = pixel_mask.reshape(n, 1, -1).expand(n, channels, -1).reshape(n, -1)
    counts = elems.sum(dim=1)
    if n and bool((counts != counts[0]).any()):
        raise ValueError("every pixel mask of one strategy must select the same number of pixels")
    return elems.nonzero()[:, 1].view(n, -1)


@torch.no_grad()
def search_stage(
    module: nn.Module,
    x0: torch.Tensor,
    pixel_mask: torch.Tensor,
    targets: torch.Tensor,
    sample_ids: torch.Tensor,
    *,
    strategy: str,
    score0: torch.Tensor,
    pred0: torch.Tensor,
    untargeted: bool,
    sigma: float,
    max_iters: int,
    candidates: int,
    seed: int,
    batch_size: int,
    clamp_range: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> StageOutcome:
    """Run one strategy from the originals ``x0 [n, C, H, W]`` for every image at once.

    ``pixel_mask [n, H, W]`` bool (same count per image), ``targets``/``sample_ids`` int64
    ``[n]``, ``score0``/``pred0`` the originals' score and prediction. ``clamp_range`` holds
    flat ``[C*H*W]`` lower/upper bounds applied to the changed values only.
    """
    n, c, h, w = x0.shape
    k = candidates
    stream = STRATEGY_STREAMS[strategy]
    idx = element_index(pixel_mask, c)
    nel = idx.shape[1]
    final = x0.reshape(n, -1).clone()
    score, pred = score0.clone(), pred0.clone()
    iterations = torch.zeros(n, dtype=torch.int64, device=x0.device)
    reached = stop_reached(pred, targets, untargeted)
    active = (~reached).nonzero().squeeze(1)
    cur, best, a_pred = final[active], score[active], pred[active]
    a_idx, a_t, a_sid = idx[active], targets[active], sample_ids[active]
    if clamp_range is not None:  # the changeable values' bounds [A, 1, nel], kept with a_idx
        a_lo, a_hi = (bound[a_idx][:, None, :] for bound in clamp_range)
    for it in range(max_iters):
        if active.numel() == 0 or nel == 0:
            break
        a = active.numel()
        z = normal(seed, a_sid, it, k, nel, stream=stream)  # [A, K, nel], a new tensor
        values = z.mul_(sigma).add_(cur.gather(1, a_idx)[:, None, :])  # x + sigma z, in place
        if clamp_range is not None:
            values = values.clamp_(min=a_lo, max=a_hi)
        cand = cur[:, None, :].repeat(1, k, 1)
        cand.scatter_(2, a_idx[:, None, :].expand(a, k, nel), values)
        logits = forward_batched(module, cand.view(a * k, c, h, w), batch_size).view(a, k, -1)
        cand_score = scores_from_logits(logits, a_t[:, None].expand(a, k), untargeted)
        top_score, top_k = cand_score.max(dim=1)
        accept = (top_score > best).nonzero().squeeze(1)
        if accept.numel():
            ks = top_k[accept]
            cur[accept] = cand[accept, ks]
            best[accept] = top_score[accept]
            a_pred[accept] = logits[accept, ks].argmax(dim=1)
        iterations[active] += 1
        done = stop_reached(a_pred, a_t, untargeted)
        if bool(done.any()):
            rows = active[done]
            final[rows], score[rows], pred[rows] = cur[done], best[done], a_pred[done]
            keep = ~done
            active, cur, best, a_pred = active[keep], cur[keep], best[keep], a_pred[keep]
            a_idx, a_t, a_sid = a_idx[keep], a_t[keep], a_sid[keep]
            if clamp_range is not None:
                a_lo, a_hi = a_lo[keep], a_hi[keep]
    final[active], score[active], pred[active] = cur, best, a_pred
    reached = stop_reached(pred, targets, untargeted)
    return StageOutcome(final, score, pred, reached, iterations)
