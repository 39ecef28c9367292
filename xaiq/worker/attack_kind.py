"""Attack shards: run the guided search on the samples the spec selects and turn each
:class:`~xaiq.xai.attack.AttackResult` into an ``attack_results`` row plus an artifact (the
final image, in the shard's ``job-<id>/attack/chunk-<first>.npys``), and each of its
per-strategy outcomes into an ``attack_strategy_results`` row plus that strategy's image
(group ``attack-<strategy>``, the strategy name with ``:`` as ``-``; see
:mod:`xaiq.worker.artifacts`).

In ``repair`` mode only misclassified samples are attacked unless the spec's
``attack.only_misclassified`` is false; every sample still gets its ``samples`` row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xaiq.db.jobs import Claim
from xaiq.worker.compute import SAMPLE_FAILURES, Batch, ShardRows, error_message
from xaiq.xai.models import LoadedModel


def _positions(mode: str, batch: Batch, only_misclassified: bool) -> list[int]:
    from xaiq.xai.attack import select_repair_candidates

    if mode == "repair":
        return select_repair_candidates(
            batch.preds, batch.labels, only_misclassified=only_misclassified
        )
    return list(range(len(batch.ids)))


def attack_batch(
    claim: Claim, model: LoadedModel, batch: Batch, rows: ShardRows, root: Path
) -> None:
    from xaiq.xai.attack import rise_guided_search, targets_for_mode

    params: dict[str, Any] = dict(claim.spec["attack"])
    only_misclassified = bool(params.pop("only_misclassified", True))
    target_class = params.pop("target_class", None)
    mode = params["mode"]
    positions = _positions(mode, batch, only_misclassified)
    if not positions:
        return
    # a sample without a label uses the model's prediction as its reference class
    refs = [batch.labels[i] if batch.labels[i] is not None else batch.preds[i] for i in positions]
    targets = targets_for_mode(mode, refs, target_class)

    skipped = len(batch.ids) - len(positions)  # not attacked: finished at once

    def report(ended: int) -> None:
        if rows.on_progress is not None:
            rows.on_progress(skipped + ended)

    def run(sel: list[int]) -> list[Any]:
        return rise_guided_search(
            model,
            batch.inputs[[positions[j] for j in sel]],
            [targets[j] for j in sel],
            seed=claim.spec["seed"],
            sample_ids=[batch.ids[positions[j]] for j in sel],
            progress=report if len(sel) == len(positions) else None,
            **params,
        )

    everything = list(range(len(positions)))
    try:
        results = list(zip(everything, run(everything), strict=True))
    except SAMPLE_FAILURES:  # isolate the failing sample, keep the others
        results = []
        for j in everything:
            try:
                results.append((j, run([j])[0]))
            except SAMPLE_FAILURES as exc:
                rows.error(batch.ids[positions[j]], "attack", error_message(exc))
    order = {name: i for i, name in enumerate(params["strategies"])}
    for j, res in results:
        idx = batch.ids[positions[j]]
        rows.add_array(
            "attack_results",
            {
                "sample_index": idx,
                "mode": mode,
                "target": int(res.target),
                "success": bool(res.success),
                "strategy": res.strategy,
                "iterations": int(res.iterations),
                "forward_passes": int(res.forward_passes),
                "prob_before": float(res.prob_before),
                "prob_after": float(res.prob_after),
                "pred_before": int(res.pred_before),
                "pred_after": int(res.pred_after),
                "l0": int(res.l0),
                "l2": float(res.l2),
                "linf": float(res.linf),
                "grad_norm_logit": _opt(res.grad_norm_logit),
                "grad_norm_logprob": _opt(res.grad_norm_logprob),
                "confidence": _opt(res.confidence),
                "out_of_domain": _opt(res.out_of_domain),
                "max_excursion": _opt(res.max_excursion),
                "tied_pixels": res.tied_pixels,
            },
            "attack",
            idx,
            res.final.detach().cpu().numpy(),
        )
        for out in res.outcomes:
            _strategy_row(claim, rows, root, idx, out, order[out.strategy])


def _opt(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)


def strategy_group(name: str) -> str:
    """The artifact folder of a strategy's images: ``attack-least-saliency``."""
    return "attack-" + name.replace(":", "-")


def _strategy_row(
    claim: Claim, rows: ShardRows, root: Path, idx: int, out: Any, position: int
) -> None:
    rows.add_array(
        "attack_strategy_results",
        {
            "sample_index": idx,
            "strategy": out.strategy,
            "position": position,
            "success": bool(out.success),
            "first_success_iter": out.first_success_iter,
            "iterations": int(out.iterations),
            "guide_passes": int(out.guide_passes),
            "forward_passes": int(out.forward_passes),
            "prob_after": float(out.prob_after),
            "pred_after": int(out.pred_after),
            "l0": int(out.l0),
            "l2": float(out.l2),
            "linf": float(out.linf),
            "out_of_domain": _opt(out.out_of_domain),
            "max_excursion": _opt(out.max_excursion),
            "tied_pixels": out.tied_pixels,
        },
        strategy_group(out.strategy),
        idx,
        out.final.detach().cpu().numpy(),
    )
