"""``rise_guided_search``: RISE saliency, pixel selection, the fallback chain, the results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from xaiq.xai.attack.params import validate_attack_params
from xaiq.xai.attack.result import AttackResult
from xaiq.xai.attack.search import (
    forward_batched,
    scores_from_logits,
    search_stage,
    stop_reached,
)
from xaiq.xai.attack.strategies import RISE_STRATEGIES, budget, select_pixels
from xaiq.xai.device import module_device
from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.rise import rise_saliency

_BATCH_ELEMENTS = 1 << 22


def _clamp_bounds(
    model: Any, input_range: Any, shape: tuple[int, int, int], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    if input_range is None:
        input_range = getattr(model, "input_range", None)
    if input_range is None:
        raise InvalidParameterError(
            "attack: clamp=True needs the valid input range: pass a loaded model or input_range"
        )
    c, h, w = shape
    lo, hi = (
        torch.as_tensor(b, dtype=torch.float32, device=device).reshape(-1, 1, 1).expand(c, h, w)
        for b in input_range
    )
    return lo.reshape(-1).contiguous(), hi.reshape(-1).contiguous()


@torch.no_grad()
def rise_guided_search(
    model: Any,
    images: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | int,
    *,
    seed: int = 0,
    sample_ids: Sequence[int] | torch.Tensor | None = None,
    input_range: tuple[Any, Any] | None = None,
    **params: Any,
) -> list[AttackResult]:
    """Attack every image; one frozen :class:`AttackResult` per image, in order.

    Args:
        model: a :class:`~xaiq.xai.models.LoadedModel` or a bare ``nn.Module`` (eval mode).
        images: model inputs ``[N, C, H, W]`` (preprocessed; moved to the model's device).
        targets: ``[N]`` ints or one int: the class to reach (repair: the true label;
            targeted: the wanted class) or, in untargeted mode, the true class to leave.
        seed: job seed: RISE masks depend on it, the noise on it and the sample id.
        sample_ids: stable sample indices ``[N]`` (default ``0..N-1``); a sample's result
            does not depend on which other images share its batch.
        input_range: ``(low, high)`` of valid model inputs (floats or per-channel ``[C]``)
            for ``clamp=True`` (default: the loaded model's ``input_range``).
        **params: see :func:`~xaiq.xai.attack.validate_attack_params` (mode, frac, sigma,
            clamp, max_iters, candidates, strategies, n_masks, s, p1, batch_size).
    """
    from xaiq.xai.models import as_module

    p = validate_attack_params(params, search_only=True)
    module = as_module(model)
    device = module_device(module)
    x = images.to(device=device, dtype=torch.float32)
    if x.ndim != 4:
        raise InvalidParameterError(f"attack: images must be [N, C, H, W], got {tuple(x.shape)}")
    n, c, h, w = x.shape
    budget(p["frac"], h, w)  # refuses an empty budget up front
    t = torch.as_tensor(targets, dtype=torch.long, device=device).reshape(-1)
    if t.numel() == 1 and n != 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise InvalidParameterError(f"attack: targets must have {n} entries, got {t.numel()}")
    ids = torch.arange(n) if sample_ids is None else torch.as_tensor(sample_ids).reshape(-1)
    if ids.numel() != n or bool((ids < 0).any()):
        raise InvalidParameterError(f"attack: sample_ids must be {n} non-negative ints")
    ids = ids.to(device=device, dtype=torch.int64)
    bs = p["batch_size"] or max(1, min(4096, _BATCH_ELEMENTS // (c * h * w)))
    clamp = _clamp_bounds(model, input_range, (c, h, w), device) if p["clamp"] else None
    untargeted = p["mode"] == "untargeted"

    logits0 = forward_batched(module, x, bs) if n else torch.zeros(0, 1, device=device)
    num_classes = logits0.shape[1]
    bad = ((t < 0) | (t >= num_classes)).nonzero()
    if bad.numel():
        raise InvalidParameterError(
            f"attack: label {int(t[bad[0, 0]])} out of range for a model with {num_classes} classes"
        )
    score0 = scores_from_logits(logits0, t, untargeted)
    pred0 = logits0.argmax(dim=1)

    score, pred, final = score0.clone(), pred0.clone(), x.reshape(n, -1).clone()
    iterations = torch.zeros(n, dtype=torch.int64, device=device)
    passes = torch.ones(n, dtype=torch.int64, device=device)
    saliency = torch.zeros(n, h, w, device=device)
    has_saliency = torch.zeros(n, dtype=torch.bool, device=device)
    last_mask = torch.zeros(n, h, w, dtype=torch.bool, device=device)
    won_by: list[str | None] = [None] * n
    tried: list[list[str]] = [[] for _ in range(n)]
    pending = (~stop_reached(pred0, t, untargeted)).nonzero().squeeze(1)
    for strategy in p["strategies"]:
        if pending.numel() == 0:
            break
        if strategy in RISE_STRATEGIES:
            todo = pending[~has_saliency[pending]]
            if todo.numel():
                saliency[todo] = rise_saliency(
                    module, x[todo], t[todo], n_masks=p["n_masks"], s=p["s"], p1=p["p1"], seed=seed
                )
                has_saliency[todo] = True
                passes[todo] += p["n_masks"]
        pix = select_pixels(
            strategy,
            p["frac"],
            (pending.numel(), h, w),
            saliency=saliency[pending],
            seed=seed,
            sample_ids=ids[pending],
            device=device,
        )
        out = search_stage(
            module,
            x[pending],
            pix,
            t[pending],
            ids[pending],
            strategy=strategy,
            score0=score0[pending],
            pred0=pred0[pending],
            untargeted=untargeted,
            sigma=p["sigma"],
            max_iters=p["max_iters"],
            candidates=p["candidates"],
            seed=seed,
            batch_size=bs,
            clamp_range=clamp,
        )
        final[pending], score[pending], pred[pending] = out.final, out.score, out.pred
        iterations[pending] += out.iterations
        passes[pending] += out.iterations * p["candidates"]
        last_mask[pending] = pix
        for i in pending.tolist():
            tried[i].append(strategy)
        for i in pending[out.reached].tolist():
            won_by[i] = strategy
        pending = pending[~out.reached]
    return _results(
        x,
        final,
        t,
        ids,
        score0,
        score,
        pred0,
        pred,
        iterations,
        passes,
        saliency,
        last_mask,
        won_by,
        tried,
        untargeted,
        p["mode"],
    )


def _results(
    x: torch.Tensor,
    final_flat: torch.Tensor,
    t: torch.Tensor,
    ids: torch.Tensor,
    score0: torch.Tensor,
    score: torch.Tensor,
    pred0: torch.Tensor,
    pred: torch.Tensor,
    iterations: torch.Tensor,
    passes: torch.Tensor,
    saliency: torch.Tensor,
    last_mask: torch.Tensor,
    won_by: list[str | None],
    tried: list[list[str]],
    untargeted: bool,
    mode: str,
) -> list[AttackResult]:
    final = final_flat.view_as(x)
    diff = final - x
    l0 = (diff != 0).any(dim=1).flatten(1).sum(dim=1)
    l2 = diff.flatten(1).norm(dim=1)
    linf = diff.abs().flatten(1).amax(dim=1) if x.shape[0] else l2
    sign = -1.0 if untargeted else 1.0
    success = stop_reached(pred, t, untargeted)
    cols = [v.detach().cpu().tolist() for v in (l0, l2, linf, score0 * sign, score * sign)]
    final_cpu, sal_cpu, mask_cpu = (v.detach().cpu() for v in (final, saliency, last_mask))
    return [
        AttackResult(
            success=bool(success[i]),
            strategy=won_by[i],
            iterations=int(iterations[i]),
            forward_passes=int(passes[i]),
            target=int(t[i]),
            prob_before=math.exp(cols[3][i]),
            prob_after=math.exp(cols[4][i]),
            pred_before=int(pred0[i]),
            pred_after=int(pred[i]),
            l0=int(cols[0][i]),
            l2=float(cols[1][i]),
            linf=float(cols[2][i]),
            final=final_cpu[i].clone(),
            saliency=sal_cpu[i].clone(),
            mask=mask_cpu[i].clone(),
            strategies_tried=tuple(tried[i]),
            sample_id=int(ids[i]),
            mode=mode,
        )
        for i in range(x.shape[0])
    ]
