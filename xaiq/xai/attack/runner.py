"""``rise_guided_search``: guide maps, pixel selection, the chain or the comparison, results."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from xaiq.xai.attack.diagnostics import goal_gradients
from xaiq.xai.attack.guides import GuideStore, method_params, stored_or_computed
from xaiq.xai.attack.params import validate_attack_params
from xaiq.xai.attack.result import AttackResult, StrategyOutcome
from xaiq.xai.attack.search import forward_batched, scores_from_logits
from xaiq.xai.attack.strategies import (
    Strategy,
    budget,
    choose_pixels,
    noise_streams,
    parse_strategy,
)
from xaiq.xai.attack.tracks import (
    CANCELLED,
    SUCCEEDED,
    SearchConfig,
    TrackOutcomes,
    TrackSearch,
)
from xaiq.xai.device import module_device
from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.rise import default_batch_size

_BATCH_ELEMENTS = 1 << 22  # CUDA: input elements per forward (at most 4096 images)


def _default_batch(image_shape: tuple[int, int, int], device: torch.device) -> int:
    """Candidates per forward when ``batch_size`` is None: on CUDA about 4M input elements;
    on the CPU RISE's default (256 digits: 512-row forwards ran 5-8% slower than 256-row
    ones on 2 cores, and 4096-row ones slower still)."""
    if device.type == "cuda":
        return max(1, min(4096, _BATCH_ELEMENTS // math.prod(image_shape)))
    return default_batch_size(image_shape, device)


def _domain_bounds(
    model: Any, input_range: Any, shape: tuple[int, int, int], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Flat ``[C*H*W]`` low/high bounds of valid model inputs, or None when unknown (a bare
    module without ``input_range``)."""
    if input_range is None:
        input_range = getattr(model, "input_range", None)
    if input_range is None:
        return None
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
    progress: Callable[[int], None] | None = None,
    guide_store: GuideStore | None = None,
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
        progress: called now and then with the number of images whose search has ended
            (non-decreasing, ``N`` at the end); for progress displays, results do not
            depend on it.
        guide_store: where guide maps may already be (a job's map cache, see
            :class:`~xaiq.xai.attack.guides.GuideStore`): a map it has is used instead of
            computed, and it is handed every map computed. Results do not depend on it as
            long as it returns the maps these images would get.
        **params: see :func:`~xaiq.xai.attack.validate_attack_params` (mode, frac, sigma,
            clamp, max_iters, candidates, strategies, compare, guide_params, n_masks, s, p1,
            batch_size, fill).

    Strategies ``least:METHOD``/``most:METHOD`` rank pixels by any registered explainer's
    map for the goal class (``rise-least`` = ``least:rise``, the source procedure). By
    default the strategies form a fallback chain: a sample's next strategy restarts from
    the original only if the previous one failed. ``compare=True`` runs every strategy on
    every sample from the original with the same budget and noise seed (each result's
    ``outcomes`` holds all of them; the chain's fields are derived from them and equal
    the chain's own).
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
    bs = p["batch_size"] or _default_batch((c, h, w), device)
    domain = _domain_bounds(model, input_range, (c, h, w), device)
    if p["clamp"] and domain is None:
        raise InvalidParameterError(
            "attack: clamp=True (the default) needs the model's input domain: pass a loaded "
            "model or input_range=(low, high), or set clamp=False"
        )
    clamp = domain if p["clamp"] else None
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
    grads = goal_gradients(module, x, t, bs)
    confidence = logits0.softmax(dim=1).amax(dim=1) if n else score0
    strategies = [parse_strategy(name) for name in p["strategies"]]
    guides = _Guides(module, x, t, ids, strategies, p, seed, guide_store)
    cfg = SearchConfig(
        untargeted=untargeted,
        sigma=p["sigma"],
        max_iters=p["max_iters"],
        candidates=p["candidates"],
        seed=seed,
        batch_size=bs,
        fill=p["fill"],
        independent=p["compare"],
        clamp_range=clamp,
    )
    search = TrackSearch(
        module,
        x,
        t,
        ids,
        score0,
        pred0,
        noise_streams(strategies, p["noise"]),
        guides.masks,
        guides.ready,
        cfg,
    )
    search.on_progress = progress
    out = search.run()
    extra = [v.detach().cpu().tolist() for v in (grads.grad_norm_logit, grads.grad_norm_logprob)]
    return _results(
        x,
        t,
        ids,
        score0,
        pred0,
        out,
        guides,
        strategies,
        p,
        extra,
        confidence.cpu().tolist(),
        domain,
    )


class _Guides:
    """Pixel masks per strategy, with guide maps computed once per sample and method."""

    def __init__(
        self,
        module: Any,
        x: torch.Tensor,
        t: torch.Tensor,
        ids: torch.Tensor,
        strategies: list[Strategy],
        p: dict[str, Any],
        seed: int,
        store: GuideStore | None = None,
    ) -> None:
        n, _, h, w = x.shape
        self.module, self.x, self.t, self.ids, self.p, self.seed = module, x, t, ids, p, seed
        self.store = store
        self.strategies = strategies
        methods = {st.method for st in strategies if st.method is not None}
        self.maps = {m: torch.zeros(n, h, w, device=x.device) for m in methods}
        self.has = {m: torch.zeros(n, dtype=torch.bool) for m in methods}
        self.passes = {m: torch.zeros(n, dtype=torch.int64) for m in methods}
        self.mask = [torch.zeros(n, h, w, dtype=torch.bool, device=x.device) for _ in strategies]
        self.tied = [torch.zeros(n, dtype=torch.int64) for _ in strategies]

    def ready(self, j: int, pos: torch.Tensor) -> torch.Tensor:
        method = self.strategies[j].method
        return (
            torch.ones(pos.numel(), dtype=torch.bool) if method is None else self.has[method][pos]
        )

    def masks(self, j: int, pos: torch.Tensor) -> torch.Tensor:
        st = self.strategies[j]
        n, _, h, w = self.x.shape
        sal = None
        if st.method is not None:
            lacking = pos[~self.has[st.method][pos]]
            if lacking.numel():
                d = lacking.to(self.x.device)
                maps, per_image = stored_or_computed(
                    self.module,
                    self.x[d],
                    self.t[d],
                    self.ids[d],
                    st.method,
                    method_params(st.method, self.p),
                    seed=self.seed,
                    store=self.store,
                )
                self.maps[st.method][d] = maps
                self.passes[st.method][lacking] = per_image
                self.has[st.method][lacking] = True
            sal = self.maps[st.method][pos.to(self.x.device)]
        d = pos.to(self.x.device)
        pix, tied = choose_pixels(
            st.name,
            self.p["frac"],
            (pos.numel(), h, w),
            saliency=sal,
            seed=self.seed,
            sample_ids=self.ids[d],
            device=self.x.device,
            ties=self.p["ties"],
            central=self.p["central"],
        )
        self.mask[j][d] = pix
        self.tied[j][pos] = tied
        return pix


def _results(
    x: torch.Tensor,
    t: torch.Tensor,
    ids: torch.Tensor,
    score0: torch.Tensor,
    pred0: torch.Tensor,
    out: TrackOutcomes,
    guides: _Guides,
    strategies: list[Strategy],
    p: dict[str, Any],
    grads: list[list[float]],
    confidence: list[float],
    domain: tuple[torch.Tensor, torch.Tensor] | None,
) -> list[AttackResult]:
    n = x.shape[0]
    if n == 0:
        return []
    c = x.shape[1]
    if domain is None:
        ood: list[list[Any]] = [[None] * n for _ in strategies]
        exc: list[list[Any]] = [[None] * n for _ in strategies]
        ood0: list[Any] = [None] * n
        exc0: list[Any] = [None] * n
    else:
        share, excursion = outside_domain(out.final, domain, c)
        ood, exc = share.cpu().tolist(), excursion.cpu().tolist()
        share0, excursion0 = outside_domain(x.reshape(1, n, -1), domain, c)
        ood0, exc0 = share0[0].cpu().tolist(), excursion0[0].cpu().tolist()
    tied = [v.tolist() for v in guides.tied]
    k, sign = p["candidates"], (-1.0 if p["mode"] == "untargeted" else 1.0)
    diff = out.final - x.reshape(1, n, -1)
    s_count = len(strategies)
    l0 = (diff.view(s_count, n, x.shape[1], -1) != 0).any(dim=2).sum(dim=2).cpu().tolist()
    l2 = diff.norm(dim=2).cpu().tolist()
    linf = (diff.abs().amax(dim=2) if diff.shape[2] else diff.norm(dim=2)).cpu().tolist()
    score, pred = (out.score * sign).cpu().tolist(), out.pred.cpu().tolist()
    iters, status = out.iterations.cpu().tolist(), out.status.tolist()
    final_cpu = out.final.detach().cpu().view(s_count, *x.shape)
    mask_cpu = [m.cpu() for m in guides.mask]
    maps_cpu = {m: v.detach().cpu() for m, v in guides.maps.items()}
    passes = {m: v.tolist() for m, v in guides.passes.items()}
    score0_l, pred0_l = (score0 * sign).cpu().tolist(), pred0.cpu().tolist()
    x_cpu = x.detach().cpu()
    h, w = x.shape[2], x.shape[3]
    results = []
    for i in range(n):

        def outcome(j: int, i: int = i) -> StrategyOutcome:
            st = strategies[j]
            gp = passes[st.method][i] if st.method is not None else 0
            ok = status[j][i] == SUCCEEDED
            return StrategyOutcome(
                strategy=st.name,
                success=ok,
                first_success_iter=iters[j][i] if ok else None,
                iterations=iters[j][i],
                guide_passes=gp,
                forward_passes=gp + k * iters[j][i],
                prob_after=math.exp(score[j][i]),
                pred_after=pred[j][i],
                l0=l0[j][i],
                l2=l2[j][i],
                linf=linf[j][i],
                final=final_cpu[j, i].clone(),
                mask=mask_cpu[j][i].clone(),
                out_of_domain=ood[j][i],
                max_excursion=exc[j][i],
                tied_pixels=tied[j][i],
            )

        needed: list[int] = []
        if status[0][i] != CANCELLED:  # not already at the goal
            for j in range(s_count):
                needed.append(j)
                if status[j][i] == SUCCEEDED:
                    break
        done = [outcome(j) for j in (range(s_count) if p["compare"] and needed else needed)]
        by_name = {o.strategy: o for o in done}
        chain = [by_name[strategies[j].name] for j in needed]
        last = chain[-1] if chain else None
        methods = list(dict.fromkeys(strategies[j].method for j in needed))
        guided = [m for m in methods if m is not None]
        its = sum(o.iterations for o in chain)
        results.append(
            AttackResult(
                success=last.success if last else True,
                strategy=last.strategy if last and last.success else None,
                iterations=its,
                forward_passes=1 + sum(passes[m][i] for m in guided) + k * its,
                target=int(t[i]),
                prob_before=math.exp(score0_l[i]),
                prob_after=last.prob_after if last else math.exp(score0_l[i]),
                pred_before=pred0_l[i],
                pred_after=last.pred_after if last else pred0_l[i],
                l0=last.l0 if last else 0,
                l2=last.l2 if last else 0.0,
                linf=last.linf if last else 0.0,
                final=last.final if last else x_cpu[i].clone(),
                saliency=maps_cpu[guided[-1]][i].clone() if guided else torch.zeros(h, w),
                mask=last.mask if last else torch.zeros(h, w, dtype=torch.bool),
                strategies_tried=tuple(o.strategy for o in chain),
                sample_id=int(ids[i]),
                mode=p["mode"],
                outcomes=tuple(done),
                grad_norm_logit=grads[0][i],
                grad_norm_logprob=grads[1][i],
                confidence=confidence[i],
                out_of_domain=last.out_of_domain if last else ood0[i],
                max_excursion=last.max_excursion if last else exc0[i],
                tied_pixels=last.tied_pixels if last else None,
            )
        )
    return results


def outside_domain(
    flat: torch.Tensor, domain: tuple[torch.Tensor, torch.Tensor], channels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """For images ``flat [..., C*H*W]`` and flat bounds ``(low, high) [C*H*W]``: the share of
    pixels with any channel outside the bounds, and the largest distance of a value beyond
    them (0 inside), both float32 ``[...]``."""
    lo, hi = domain
    beyond = torch.maximum(lo - flat, flat - hi).clamp_(min=0.0)
    per_pixel = beyond.unflatten(-1, (channels, -1)).amax(dim=-2)
    return (per_pixel > 0).float().mean(dim=-1), beyond.amax(dim=-1)
