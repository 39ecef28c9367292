"""Disagreement shards: the maps of every (model, method), superpixels once per image and
configuration, every pair of maps compared; with the spec's ``faithfulness`` and ``sanity``
options also deletion/insertion rows (:mod:`xaiq.worker.faith_kind`) and the
model-randomisation rows (:mod:`xaiq.worker.sanity_kind`).

A job over several models (``models``) names each map ``model:method`` and explains, per
model, that model's prediction (``target`` pred) or the label; its artifacts live under
``m<position>-<method>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xaiq.db.jobs import Claim
from xaiq.worker.artifacts import load_array
from xaiq.worker.compute import (
    SAMPLE_FAILURES,
    Batch,
    ShardRows,
    cached_model,
    error_message,
    explain_maps,
    explained_class,
    store_maps,
)
from xaiq.xai.models import LoadedModel

Maps = dict[str, dict[int, np.ndarray]]  # map name -> {sample_index: [H, W] float32}
Labels = dict[tuple[str, int], np.ndarray]  # (superpixels, n_segments) -> [n, H, W]


@dataclass
class Side:
    """One model's view of the batch: its inputs, predictions and explained classes."""

    name: str
    position: int
    model: LoadedModel
    batch: Batch
    single: bool  # the job has one model: maps are named by method alone

    def map_name(self, method: str) -> str:
        return method if self.single else f"{self.name}:{method}"

    def group(self, method: str) -> str:
        return method if self.single else f"m{self.position}-{method}"


def _other_side(name: str, position: int, primary: LoadedModel, batch: Batch) -> Side:
    other = cached_model(name, primary.device)
    x = other.preprocess([s.image for s in batch.samples])
    preds = other.predict_proba(x).argmax(dim=1).tolist()
    targets = [
        explained_class(batch.target_kind, lab, int(p))
        for lab, p in zip(batch.labels, preds, strict=True)
    ]
    own = Batch(
        ids=batch.ids,
        inputs=x,
        targets=torch.tensor(targets, dtype=torch.long, device=x.device),
        labels=batch.labels,
        preds=[int(p) for p in preds],
        samples=batch.samples,
        target_kind=batch.target_kind,
    )
    return Side(name, position, other, own, single=False)


def sides_of(claim: Claim, model: LoadedModel, batch: Batch, rows: ShardRows) -> list[Side]:
    models = claim.spec.get("models") or [claim.spec["model"]]
    single = len(models) == 1
    sides = [Side(models[0], 0, model, batch, single)]
    for pos, name in enumerate(models[1:], start=1):
        try:
            sides.append(_other_side(name, pos, model, batch))
        except SAMPLE_FAILURES as exc:
            for idx in batch.ids:
                rows.error(idx, "predict", f"{name}: {error_message(exc)}")
    return sides


def _source_maps(claim: Claim, batch: Batch, rows: ShardRows, root: Path) -> Maps:
    """Maps of the ``from_job`` attribution job for this batch, checksums verified."""
    from sqlalchemy import select

    from xaiq.db.models import Attribution
    from xaiq.db.session import read_session

    spec = claim.spec
    with read_session(rows.engine) as session:
        found = session.execute(
            select(
                Attribution.method,
                Attribution.sample_index,
                Attribution.artifact,
                Attribution.checksum,
            )
            .where(Attribution.job_id == spec["from_job"])
            .where(Attribution.sample_index.in_(batch.ids))
            .where(Attribution.method.in_(spec["methods"]))
        ).all()
    where = {(m, i): (a, c) for m, i, a, c in found}
    out: Maps = {m: {} for m in spec["methods"]}
    for method in spec["methods"]:
        for idx in batch.ids:
            if (method, idx) not in where:
                rows.error(idx, "load", f"job {spec['from_job']} has no {method} map for it")
                continue
            try:
                out[method][idx] = load_array(*where[(method, idx)], root=rows.writer().store)
            except SAMPLE_FAILURES as exc:
                rows.error(idx, "load", error_message(exc))
    return out


def _maps(claim: Claim, sides: list[Side], rows: ShardRows, root: Path) -> Maps:
    spec = claim.spec
    if spec["from_job"] is not None:
        return _source_maps(claim, sides[0].batch, rows, root)
    out: Maps = {}
    for side in sides:
        for method in spec["methods"]:
            got = explain_maps(
                method, side.model, side.batch, spec["params"][method], spec["seed"], rows
            )
            name = side.map_name(method)
            kw = {"name": name, "group": side.group(method), "model": side.name}
            store_maps(claim, method, got, side.batch, rows, **kw)
            out[name] = got.maps
    return out


def segmentations(claim: Claim, model: LoadedModel, batch: Batch, rows: ShardRows) -> Labels:
    """Superpixel labels of the batch for every configuration of the sweep (computed once)."""
    from xaiq.xai.superpixels import segment

    display = model.to_display(batch.inputs).detach().cpu().numpy()
    out: Labels = {}
    for sp in claim.spec["superpixels"]:
        for n_seg in claim.spec["n_segments"]:
            try:
                out[(sp, n_seg)] = segment(display, sp, n_segments=n_seg)
            except SAMPLE_FAILURES as exc:
                for idx in batch.ids:
                    rows.error(idx, "segment", f"{sp}/{n_seg}: {error_message(exc)}")
    return out


def _pairs(sides: list[Side], methods: list[str]) -> list[tuple[str, str, str, str]]:
    """``(name_a, model_a, name_b, model_b)`` for every pair of maps, models outer."""
    maps = [(s.map_name(m), s.name) for s in sides for m in methods]
    return [(*a, *b) for i, a in enumerate(maps) for b in maps[i + 1 :]]


def disagreement_batch(
    claim: Claim, model: LoadedModel, batch: Batch, rows: ShardRows, root: Path
) -> None:
    from xaiq.worker import stages
    from xaiq.xai.metrics import compare_batch
    from xaiq.xai.superpixels import segment_means

    spec = claim.spec
    n = len(batch.ids)
    stages.begin(claim.job_id, "explain")
    sides = sides_of(claim, model, batch, rows)
    maps = _maps(claim, sides, rows, root)
    stages.finish(claim.job_id, "explain", n)
    stages.begin(claim.job_id, "compare")
    labels = segmentations(claim, model, batch, rows)
    pos = {idx: i for i, idx in enumerate(batch.ids)}
    kinds = batch.kinds()
    for (sp, n_seg), lab in labels.items():
        vecs: dict[str, dict[int, np.ndarray]] = {}
        for name, mm in maps.items():
            have = [i for i in batch.ids if i in mm]
            means = (
                segment_means(np.stack([mm[i] for i in have]), lab[[pos[i] for i in have]])
                if have
                else []
            )
            vecs[name] = dict(zip(have, means, strict=True))
        for a, model_a, b, model_b in _pairs(sides, spec["methods"]):
            common = [i for i in batch.ids if i in vecs[a] and i in vecs[b]]
            for k_frac in spec["k_frac"]:
                extra = {"model_a": model_a, "model_b": model_b}
                config = (sp, n_seg, k_frac)
                _compare(rows, compare_batch, vecs, (a, b), common, config, extra, kinds)
    stages.finish(claim.job_id, "compare", n)
    if spec.get("faithfulness"):
        from xaiq.worker.faith_kind import faithfulness_rows

        stages.begin(claim.job_id, "faithfulness")
        faithfulness_rows(claim, sides, maps, labels, rows, root)
        stages.finish(claim.job_id, "faithfulness", n)
    if spec.get("sanity"):
        from xaiq.worker.sanity_kind import sanity_rows

        stages.begin(claim.job_id, "sanity")
        sanity_rows(claim, sides, maps, labels, rows)
        stages.finish(claim.job_id, "sanity", n)


def _compare(
    rows: ShardRows,
    compare_batch: Callable[..., list[dict[str, Any]]],
    vecs: dict[str, dict[int, np.ndarray]],
    pair: tuple[str, str],
    common: list[int],
    config: tuple[str, int, float],
    extra: dict[str, Any],
    kinds: dict[int, str],
) -> None:
    """One row per sample of ``common``; ``kinds``: each sample's target kind (the class
    explained is the same on every side of a cross-model job: label, or the prediction)."""
    from xaiq.db.models import METRIC_COLUMNS

    a, b = pair
    sp, n_seg, k_frac = config
    try:
        results = compare_batch([vecs[a][i] for i in common], [vecs[b][i] for i in common], k_frac)
    except SAMPLE_FAILURES as exc:
        for idx in common:
            rows.error(idx, "compare", f"{a} vs {b}: {error_message(exc)}")
        return
    for idx, res in zip(common, results, strict=True):
        row: dict[str, Any] = {
            "sample_index": idx,
            "method_a": a,
            "method_b": b,
            "superpixels": sp,
            "n_segments": n_seg,
            "k_frac": k_frac,
            "n": int(res["n"]),
            "k": int(res["k"]),
            "target_kind": kinds[idx],
            **extra,
        }
        for col in METRIC_COLUMNS:
            v = res[col]
            row[col] = None if v is None or not np.isfinite(v) else float(v)
        rows.add("disagreements", row)
