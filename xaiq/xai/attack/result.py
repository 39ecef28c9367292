"""The frozen per-image outcome of the attack and helpers that choose what to attack."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from xaiq.xai.errors import InvalidParameterError


@dataclass(frozen=True, eq=False)
class StrategyOutcome:
    """One strategy's own attack on one image, from the original (the per-strategy row).

    ``success``: the goal holds for ``final``; ``first_success_iter``: the iteration at which
    the goal was first reached (1-based; None on failure); ``iterations``: iterations run
    (``max_iters`` on failure); ``guide_passes``: forward passes per image of the guiding
    explainer's map (0 for a control); ``forward_passes``: ``guide_passes + K * iterations``.
    ``prob_after``/``pred_after``: for ``final``, the highest-scoring image the strategy found
    (the original if it never improved). ``l0``/``l2``/``linf``: ``final - original``.
    ``final``: ``[C, H, W]`` float32 CPU; ``mask``: ``[H, W]`` bool CPU, its pixels.
    ``out_of_domain``: share of ``final``'s pixels with a value outside the model's input
    domain; ``max_excursion``: the largest distance of a value beyond it (model-input units;
    both 0 with ``clamp=True``, None when the domain is unknown). A success with
    ``out_of_domain > 0`` is a success only for inputs the model never sees.
    ``tied_pixels``: how many of the ``b`` pixels were chosen among ties (equal map values;
    for ``central`` among equidistant pixels; 0 for ``random``).
    """

    strategy: str
    success: bool
    first_success_iter: int | None
    iterations: int
    guide_passes: int
    forward_passes: int
    prob_after: float
    pred_after: int
    l0: int
    l2: float
    linf: float
    final: torch.Tensor
    mask: torch.Tensor
    out_of_domain: float | None = None
    max_excursion: float | None = None
    tied_pixels: int | None = None

    @property
    def in_domain(self) -> bool | None:
        """``final`` lies inside the input domain (None: unknown)."""
        return None if self.out_of_domain is None else self.out_of_domain == 0

    def to_row(self) -> dict[str, Any]:
        """The scalar fields as a JSON-ready dict (no tensors)."""
        return {
            "strategy": self.strategy,
            "success": self.success,
            "first_success_iter": self.first_success_iter,
            "iterations": self.iterations,
            "guide_passes": self.guide_passes,
            "forward_passes": self.forward_passes,
            "prob_after": self.prob_after,
            "pred_after": self.pred_after,
            "l0": self.l0,
            "l2": self.l2,
            "linf": self.linf,
            "out_of_domain": self.out_of_domain,
            "max_excursion": self.max_excursion,
            "tied_pixels": self.tied_pixels,
        }


@dataclass(frozen=True, eq=False)
class AttackResult:
    """One image's attack outcome (the scalar fields are the ``attack_results`` columns).

    ``success``: the goal holds for ``final`` (also true, with ``strategy=None``,
    ``iterations=0`` and ``strategies_tried=()``, when the original already met it: nothing
    to do, ``final`` is the original). ``strategy``: the strategy that succeeded, else None.
    ``iterations``: search iterations summed over the strategies tried (``max_iters`` for each
    failed one). ``forward_passes``: model evaluations spent on this image: 1 for the original,
    ``n_masks`` if a RISE strategy was reached (its saliency), ``K`` per iteration.
    ``target``: the class aimed at (repair: the true label; targeted: the wanted class;
    untargeted: the true label to move away from). ``prob_before``/``prob_after``: softmax
    probability of ``target`` for the original/final image; ``pred_before``/``pred_after``:
    argmax of the logits. ``l0`` (pixels with any channel changed), ``l2``, ``linf``: the
    change ``final - original`` in model-input space. ``final``: ``[C, H, W]`` float32 CPU
    (on failure: the last strategy's highest-scoring image, as the source procedure ends).
    ``saliency``: the guiding map ``[H, W]`` float32 CPU for ``target`` of the last guided
    strategy tried (the RISE map for the default chain; zeros if none was reached).
    ``mask``: ``[H, W]`` bool CPU, the pixels of the last strategy tried (all False if none).
    ``outcomes``: one :class:`StrategyOutcome` per strategy tried, in order (with
    ``compare=True``: every strategy). The chain's fields above are the same in both modes.
    ``grad_norm_logit``/``grad_norm_logprob``: L2 norms of the input gradients of the
    ``target`` class's logit / log-probability at the original; ``confidence``: the model's
    top softmax probability there (the lab's diagnosis, :mod:`~xaiq.xai.attack.diagnostics`).
    ``out_of_domain``/``max_excursion``/``tied_pixels``: those of the last strategy tried
    (:class:`StrategyOutcome`; for an image already at the goal, the original's domain
    figures and ``tied_pixels=None``).
    """

    success: bool
    strategy: str | None
    iterations: int
    forward_passes: int
    target: int
    prob_before: float
    prob_after: float
    pred_before: int
    pred_after: int
    l0: int
    l2: float
    linf: float
    final: torch.Tensor
    saliency: torch.Tensor
    mask: torch.Tensor
    strategies_tried: tuple[str, ...]
    sample_id: int = 0
    mode: str = "repair"
    outcomes: tuple[StrategyOutcome, ...] = ()
    grad_norm_logit: float | None = None
    grad_norm_logprob: float | None = None
    confidence: float | None = None
    out_of_domain: float | None = None
    max_excursion: float | None = None
    tied_pixels: int | None = None

    def to_row(self) -> dict[str, Any]:
        """The scalar fields as a JSON-ready dict (no tensors)."""
        return {
            "sample_id": self.sample_id,
            "mode": self.mode,
            "target": self.target,
            "success": self.success,
            "strategy": self.strategy,
            "strategies_tried": ",".join(self.strategies_tried),
            "iterations": self.iterations,
            "forward_passes": self.forward_passes,
            "prob_before": self.prob_before,
            "prob_after": self.prob_after,
            "pred_before": self.pred_before,
            "pred_after": self.pred_after,
            "l0": self.l0,
            "l2": self.l2,
            "linf": self.linf,
            "grad_norm_logit": self.grad_norm_logit,
            "grad_norm_logprob": self.grad_norm_logprob,
            "confidence": self.confidence,
            "out_of_domain": self.out_of_domain,
            "max_excursion": self.max_excursion,
            "tied_pixels": self.tied_pixels,
        }


def select_repair_candidates(
    preds: Sequence[int] | torch.Tensor,
    labels: Sequence[int | None] | torch.Tensor,
    *,
    only_misclassified: bool = True,
) -> list[int]:
    """Positions to attack in ``repair`` mode: those with a label, and (by default) only
    those whose prediction differs from it. ``preds``/``labels`` are ``[N]``."""
    p = [int(v) for v in (preds.tolist() if isinstance(preds, torch.Tensor) else preds)]
    raw = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    if len(raw) != len(p):
        raise InvalidParameterError(f"attack: {len(p)} predictions but {len(raw)} labels")
    return [
        i
        for i, (pred, lab) in enumerate(zip(p, raw, strict=True))
        if lab is not None and (not only_misclassified or pred != int(lab))
    ]


def targets_for_mode(
    mode: str, labels: Sequence[int | None], target_class: int | None = None
) -> list[int]:
    """Target per sample: the label (repair, untargeted) or ``target_class`` (targeted).

    A sample without a label cannot be repaired or attacked untargeted: pass the model's
    prediction as its label (the source pipeline's reference class) before calling this.
    """
    if mode == "targeted":
        if target_class is None:
            raise InvalidParameterError("attack: mode='targeted' needs target_class")
        return [int(target_class)] * len(labels)
    if mode not in ("repair", "untargeted"):
        raise InvalidParameterError(f"attack: unknown mode {mode!r}")
    missing = [i for i, lab in enumerate(labels) if lab is None]
    if missing:
        raise InvalidParameterError(
            f"attack: mode={mode!r} needs labels; sample {missing[0]} has none"
        )
    return [int(lab) for lab in labels if lab is not None]
