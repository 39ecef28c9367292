"""Attack shards: run the guided search on the samples the spec selects and turn each
:class:`~xaiq.xai.attack.AttackResult` into an ``attack_results`` row plus an artifact (the
final image, in the shard's ``job-<id>/attack/chunk-<first>.npys``), and each of its
per-strategy outcomes into an ``attack_strategy_results`` row plus that strategy's image
(group ``attack-<strategy>``, the strategy name with ``:`` as ``-``; see
:mod:`xaiq.worker.artifacts`).

In ``repair`` mode only misclassified samples are attacked unless the spec's
``attack.only_misclassified`` is false; every sample still gets its ``samples`` row.

Guide maps go through the map cache of :mod:`xaiq.worker.reuse`: a guide map is identified
like any map (weights, input, method and its full parameters -- for RISE the masks' seed,
``n_masks``, ``s``, ``p1`` --, the class it explains, which is the attack's goal class,
input size, device class, map version; stored as float32), a map the store already has
(from an attribution, disagreement or earlier attack job) is read instead of computed unless
the spec says ``recompute``, and every guide map the search used becomes an
``attributions`` row of the job (method = the guide's method, ``target`` its goal class,
``target_kind`` ``label``, ``pred`` for a sample without a label, or ``class`` in targeted
mode; ``reused`` says where it came from), so ``xaiq status`` counts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xaiq.db.jobs import Claim
from xaiq.worker.compute import SAMPLE_FAILURES, Batch, ShardRows, error_message, map_summary
from xaiq.xai.models import LoadedModel

GUIDE_DTYPE = "float32"  # the search ranks pixels of float32 maps: never a float16 copy


@dataclass
class _Guide:
    key: str
    target: int
    map: np.ndarray
    ref: tuple[str, str] | None  # (artifact, checksum) of a reused map; None: computed


class GuideCache:
    """The job store as the search's :class:`~xaiq.xai.attack.guides.GuideStore`: looks
    maps up by identity and remembers, per sample and method, the guide map used."""

    def __init__(self, model: LoadedModel, rows: ShardRows, seed: int) -> None:
        self.model, self.rows, self.seed = model, rows, seed
        self.used: dict[tuple[int, str], _Guide] = {}
        self._computed: dict[str, np.ndarray] = {}  # by key, in this shard

    def _keys(
        self,
        method: str,
        params: Mapping[str, Any],
        images: torch.Tensor,
        targets: torch.Tensor,
        sample_ids: torch.Tensor,
    ) -> list[str]:
        from xaiq.worker.reuse import map_keys

        return map_keys(
            self.model,
            method,
            dict(params),
            images,
            [int(t) for t in targets.tolist()],
            [int(i) for i in sample_ids.tolist()],
            self.seed,
            GUIDE_DTYPE,
        )

    def fetch(
        self,
        method: str,
        params: Mapping[str, Any],
        images: torch.Tensor,
        targets: torch.Tensor,
        sample_ids: torch.Tensor,
    ) -> Sequence[torch.Tensor | None]:
        from xaiq.worker.artifacts import ArtifactError, load_arrays
        from xaiq.worker.reuse import stored_maps

        keys = self._keys(method, params, images, targets, sample_ids)
        ids = [int(i) for i in sample_ids.tolist()]
        tgts = [int(t) for t in targets.tolist()]
        out: list[torch.Tensor | None] = [None] * len(keys)
        if self.rows.recompute:
            return out
        shape = tuple(images.shape[2:])
        lookup = [k for k in keys if k not in self._computed]
        found = stored_maps(self.rows.engine, lookup)
        hits = [i for i, k in enumerate(keys) if k in found and k not in self._computed]
        refs = [found[keys[i]] for i in hits]
        arrays = load_arrays(refs, self.rows.writer().store) if refs else []
        for i, ref, arr in zip(hits, refs, arrays, strict=True):
            if isinstance(arr, ArtifactError) or tuple(arr.shape) != shape:
                continue  # gone or damaged: computed again
            m = np.asarray(arr, dtype=np.float32)
            self.used[(ids[i], method)] = _Guide(keys[i], tgts[i], m, ref)
            out[i] = torch.from_numpy(m)
        for i, k in enumerate(keys):  # computed by an earlier call of this shard
            if k in self._computed:
                m = self._computed[k]
                self.used[(ids[i], method)] = _Guide(k, tgts[i], m, None)
                out[i] = torch.from_numpy(m)
        return out

    def keep(
        self,
        method: str,
        params: Mapping[str, Any],
        images: torch.Tensor,
        targets: torch.Tensor,
        sample_ids: torch.Tensor,
        maps: torch.Tensor,
    ) -> None:
        keys = self._keys(method, params, images, targets, sample_ids)
        arrays = maps.detach().to("cpu", torch.float32).numpy()
        for k, idx, t, m in zip(keys, sample_ids.tolist(), targets.tolist(), arrays, strict=True):
            m = np.array(m, dtype=np.float32)
            self._computed[k] = m
            self.used[(int(idx), method)] = _Guide(k, int(t), m, None)

    def store(self, claim: Claim, indices: set[int], kinds: Mapping[int, str]) -> None:
        """``attributions`` rows for the guide maps of the samples in ``indices``."""
        for (idx, method), g in sorted(self.used.items()):
            if idx not in indices:
                continue
            m = g.map
            row = {
                "sample_index": idx,
                "method": method,
                "target": g.target,
                "target_kind": kinds[idx],
                "model": claim.spec["model"],
                **map_summary(m),
                "map_key": g.key,
                "reused": g.ref is not None,
            }
            if g.ref is not None:
                artifact, checksum = g.ref
                self.rows.add("attributions", {**row, "artifact": artifact, "checksum": checksum})
            else:
                self.rows.add_array("attributions", row, method, idx, m, GUIDE_DTYPE)


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

    guides = GuideCache(model, rows, int(claim.spec["seed"]))

    def run(sel: list[int]) -> list[Any]:
        return rise_guided_search(
            model,
            batch.inputs[[positions[j] for j in sel]],
            [targets[j] for j in sel],
            seed=claim.spec["seed"],
            sample_ids=[batch.ids[positions[j]] for j in sel],
            progress=report if len(sel) == len(positions) else None,
            guide_store=guides,
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
    kind = "class" if mode == "targeted" else None
    guides.store(
        claim,
        {batch.ids[positions[j]] for j, _ in results},
        {
            batch.ids[p]: kind or ("label" if batch.labels[p] is not None else "pred")
            for p in positions
        },
    )
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
