"""What one shard computes, per job kind: rows for every table, nothing written here.

Models and datasets are cached per process and loaded lazily in the process that uses them
(CUDA and torch state do not survive a fork). A sample that fails at any stage becomes a
``sample_errors`` row (its first failure) and the rest of the shard goes on.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import Engine

from xaiq.db.jobs import Claim
from xaiq.scheduler.kinds import KINDS
from xaiq.worker import stages
from xaiq.worker.artifacts import ArtifactError, ChunkWriter, load_arrays
from xaiq.worker.checkpoint import Checkpoint, ShardInterrupted
from xaiq.xai.datasets import Dataset, Sample, open_dataset
from xaiq.xai.models import LoadedModel, load_model

TOP_CLASSES = 10
SAMPLE_FAILURES = (Exception,)  # anything a sample raises is recorded, never swallowed

_models: dict[tuple[str, str], LoadedModel] = {}
_datasets: dict[str, Dataset] = {}


def cached_model(name: str, device: str | torch.device | None) -> LoadedModel:
    """``load_model(name, device)``, once per process."""
    key = (name, str(device))
    if key not in _models:
        _models[key] = load_model(name, device)
    return _models[key]


def cached_dataset(spec: str, *, reopen: bool = False) -> Dataset:
    """``open_dataset(spec)``, once per process (``reopen``: list the dataset again)."""
    if reopen or spec not in _datasets:
        _datasets[spec] = open_dataset(spec)
    return _datasets[spec]


def pinned_dataset(
    spec: str, engine: Engine | None, job_id: int, indices: Sequence[int]
) -> tuple[Dataset, dict[int, str]]:
    """The dataset and ``{index: why}`` for the ``indices`` whose key or content is not the
    one the job pinned when it was planned (:mod:`xaiq.scheduler.pins`); a cached listing
    that disagrees is refreshed first (the folder may have changed since this process
    opened it). Without an engine or pins (a job planned before them) nothing is checked."""
    from xaiq.db.pins import read_pins
    from xaiq.db.retry import with_db_retry
    from xaiq.scheduler.pins import changed_samples

    dataset = cached_dataset(spec)
    if engine is None or not indices:
        return dataset, {}
    pins = with_db_retry(read_pins, engine, job_id, min(indices), max(indices) + 1)
    changed = changed_samples(dataset, pins, indices)
    if changed:
        dataset = cached_dataset(spec, reopen=True)
        changed = changed_samples(dataset, pins, indices)
    return dataset, changed


def error_message(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


@dataclass
class ShardRows:
    """Rows produced for one shard, by table name."""

    job_id: int
    attempt: int
    engine: Engine | None = None  # the store the shard came from (to read reused maps)
    keys: dict[int, str] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {
            t: []
            for t in (
                "samples",
                "attributions",
                "disagreements",
                "attack_results",
                "attack_strategy_results",
                "faithfulness",
                "sanity_checks",
            )
        }
    )
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)
    # a kind that computes a batch in one long call (the attack) reports the samples of the
    # batch it has finished so far; the shard's progress in the store moves with it
    on_progress: Callable[[int], None] | None = None
    # the shard's arrays, one object per group (xaiq.worker.artifacts); None: XAIQ_ARTIFACTS
    chunks: ChunkWriter | None = None
    map_dtype: str = "float32"  # storage dtype of maps (the spec's map_dtype)
    recompute: bool = False  # the spec's recompute: never read a stored map

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.tables[table].append({"job_id": self.job_id, **row})

    def writer(self) -> ChunkWriter:
        if self.chunks is None:
            from xaiq.db.store import open_store

            self.chunks = ChunkWriter(self.job_id, open_store())
        return self.chunks

    def add_array(
        self,
        table: str,
        row: dict[str, Any],
        group: str,
        index: int,
        array: np.ndarray,
        dtype: str | None = None,
    ) -> None:
        """``row`` plus its array, stored with the shard's other arrays of ``group``; the
        row's ``artifact`` and ``checksum`` are set when the shard's rows are taken."""
        full = {"job_id": self.job_id, **row}
        self.writer().stage(group, index, array, full, dtype)
        self.tables[table].append(full)

    def error(self, index: int, stage: str, message: str) -> None:
        if index not in self.errors:  # the first failure of a sample is the one recorded
            self.errors[index] = {
                "job_id": self.job_id,
                "sample_index": index,
                "key": self.keys.get(index),
                "stage": stage,
                "message": message[:2000],
                "attempt": self.attempt,
            }

    def as_tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every row, after the staged arrays are in the store (rows name their bytes)."""
        if self.chunks is not None:
            self.chunks.flush()
        return {**self.tables, "sample_errors": list(self.errors.values())}


@dataclass
class Batch:
    """Samples that loaded and predicted: model inputs ``[n, C, H, W]`` on the model's device."""

    ids: list[int]
    inputs: torch.Tensor
    targets: torch.Tensor  # int64 [n] on the model's device: the class each map explains
    labels: list[int | None]
    preds: list[int]
    samples: list[Sample] = field(default_factory=list)  # as loaded (other models re-preprocess)
    target_kind: str = "label"  # what the spec asked for; see kind_of for what each map explains
    _kinds: dict[int, str] | None = field(default=None, init=False, repr=False, compare=False)

    def kind_of(self, index: int) -> str:
        """The target kind sample ``index``'s maps really explain (its rows store this):
        ``label`` asked of a sample without a label explains, and says, ``pred``."""
        return self.kinds()[index]

    def kinds(self) -> dict[int, str]:
        """:meth:`kind_of` of every sample, by index (computed once per batch)."""
        if self._kinds is None:
            pairs = zip(self.ids, self.labels, strict=True)
            self._kinds = {i: explained_kind(self.target_kind, lab) for i, lab in pairs}
        return self._kinds

    def subset(self, positions: list[int]) -> Batch:
        """The batch's samples at ``positions`` (in that order)."""
        return Batch(
            ids=[self.ids[p] for p in positions],
            inputs=self.inputs[positions],
            targets=self.targets[positions],
            labels=[self.labels[p] for p in positions],
            preds=[self.preds[p] for p in positions],
            samples=[self.samples[p] for p in positions] if self.samples else [],
            target_kind=self.target_kind,
        )


def explained_class(target_kind: str, label: int | None, pred: int) -> int:
    """The class a map explains: the prediction (``pred``), or the label (``label``; a sample
    without one falls back to the prediction, as the source pipeline does)."""
    if target_kind == "pred" or label is None:
        return pred
    return label


def explained_kind(target_kind: str, label: int | None) -> str:
    """The kind of :func:`explained_class`'s answer: ``pred`` whenever it is the prediction."""
    return "pred" if target_kind == "pred" or label is None else target_kind


def target_kind_of(spec: dict[str, Any]) -> str:
    """The spec's ``target``; a spec stored before the key existed explained the label."""
    return str(spec.get("target", "label"))


def _predict(
    model: LoadedModel, samples: Sequence[Sample], rows: ShardRows, target_kind: str = "label"
) -> Batch | None:
    kept: list[tuple[Sample, torch.Tensor]] = []
    for s in samples:
        try:
            kept.append((s, model.preprocess([s.image])))
        except SAMPLE_FAILURES as exc:
            rows.error(s.index, "load", error_message(exc))
    if not kept:
        return None
    x = torch.cat([t for _, t in kept])
    probs = model.predict_proba(x).detach().cpu().numpy().astype(np.float64)
    ok, labels, preds, targets = [], [], [], []
    for row, (s, _) in enumerate(kept):
        p = probs[row]
        if not np.all(np.isfinite(p)):
            rows.error(s.index, "predict", "model output has non-finite probabilities")
            continue
        pred = int(np.argmax(p))
        target = s.label if s.label is not None else pred
        top = np.argsort(-p, kind="stable")[:TOP_CLASSES]
        rows.add(
            "samples",
            {
                "sample_index": s.index,
                "key": s.key,
                "label": s.label,
                "pred": pred,
                "target": target,
                "prob_pred": float(p[pred]),
                "prob_target": float(p[target]),
                "correct": None if s.label is None else pred == s.label,
                "probs": [[int(c), float(p[c])] for c in top],
            },
        )
        ok.append(row)
        labels.append(s.label)
        preds.append(pred)
        targets.append(explained_class(target_kind, s.label, pred))
    if not ok:
        return None
    return Batch(
        ids=[kept[r][0].index for r in ok],
        inputs=x[ok],
        targets=torch.tensor(targets, dtype=torch.long, device=x.device),
        labels=labels,
        preds=preds,
        samples=[kept[r][0] for r in ok],
        target_kind=target_kind,
    )


def explain_batch(
    method: str,
    model: LoadedModel,
    batch: Batch,
    params: dict[str, Any],
    seed: int,
    rows: ShardRows,
) -> dict[int, np.ndarray]:
    """Maps ``{sample_index: [H, W] float32}``; a failing batch is retried one sample at a
    time so that one bad sample does not take the others down."""

    def run(sel: list[int]) -> np.ndarray:
        ids = [batch.ids[i] for i in sel]
        from xaiq.xai.explainers import explain

        out = explain(
            method,
            model,
            batch.inputs[sel],
            batch.targets[sel],
            seed=seed,
            sample_ids=ids,
            **params,
        )
        return out.detach().cpu().numpy().astype(np.float32)

    everything = list(range(len(batch.ids)))
    maps: dict[int, np.ndarray] = {}
    try:
        arr = run(everything)
        results = [(i, arr[i]) for i in everything]
    except SAMPLE_FAILURES:
        results = []
        for i in everything:
            try:
                results.append((i, run([i])[0]))
            except SAMPLE_FAILURES as exc:
                rows.error(batch.ids[i], "explain", f"{method}: {error_message(exc)}")
    for i, m in results:
        if np.all(np.isfinite(m)):
            maps[batch.ids[i]] = m
        else:
            rows.error(batch.ids[i], "explain", f"{method}: non-finite attribution values")
    return maps


@dataclass
class MapSet:
    """Maps of one method over a batch, and where each came from."""

    maps: dict[int, np.ndarray]  # sample index -> [H, W] float32
    keys: dict[int, str] = field(default_factory=dict)  # sample index -> map identity
    reused: dict[int, tuple[str, str]] = field(default_factory=dict)  # -> (artifact, checksum)


def explain_maps(
    method: str,
    model: LoadedModel,
    batch: Batch,
    params: dict[str, Any],
    seed: int,
    rows: ShardRows,
) -> MapSet:
    """The batch's maps of ``method``: those the store already has (same identity, see
    :mod:`xaiq.worker.reuse`) are read back, the others computed. A stored map that cannot
    be read (gone, checksum differs) is computed again."""
    from xaiq.worker.reuse import map_keys, stored_maps

    targets = batch.targets.tolist()
    key_list = map_keys(
        model, method, params, batch.inputs, targets, batch.ids, seed, rows.map_dtype
    )
    keys = dict(zip(batch.ids, key_list, strict=True))
    found = {} if rows.recompute else stored_maps(rows.engine, key_list)
    out = MapSet({}, keys)
    hits = [i for i, k in enumerate(key_list) if k in found]
    if hits:
        refs = [found[key_list[i]] for i in hits]
        shape = tuple(batch.inputs.shape[2:])
        for i, ref, arr in zip(hits, refs, load_arrays(refs, rows.writer().store), strict=True):
            if isinstance(arr, ArtifactError) or tuple(arr.shape) != shape:
                continue
            out.maps[batch.ids[i]] = np.asarray(arr, dtype=np.float32)
            out.reused[batch.ids[i]] = ref
    todo = [i for i, idx in enumerate(batch.ids) if idx not in out.maps]
    if todo:
        sub = batch if len(todo) == len(batch.ids) else batch.subset(todo)
        out.maps.update(explain_batch(method, model, sub, params, seed, rows))
    return out


def map_summary(m: np.ndarray) -> dict[str, Any]:
    """The numbers an ``attributions`` row keeps about its map (shape and moments)."""
    return {
        "height": int(m.shape[0]),
        "width": int(m.shape[1]),
        "min": float(m.min()),
        "max": float(m.max()),
        "mean": float(m.mean()),
        "abs_mean": float(np.abs(m).mean()),
        "std": float(m.std()),
    }


def store_maps(
    claim: Claim,
    method: str,
    got: MapSet,
    batch: Batch,
    rows: ShardRows,
    *,
    name: str | None = None,
    group: str | None = None,
    model: str | None = None,
) -> None:
    """``attributions`` rows; computed maps are staged for the shard's chunk of ``group``
    (default ``method``), reused ones point at the bytes an earlier job stored. ``name`` is
    the row's method (default ``method``; ``model:method`` in cross-model jobs), ``model``
    the map's model (default: the job's)."""
    targets = dict(zip(batch.ids, batch.targets.tolist(), strict=True))
    kinds = batch.kinds()
    for idx in sorted(got.maps):
        m = got.maps[idx]
        row = {
            "sample_index": idx,
            "method": name or method,
            "target": int(targets[idx]),
            "target_kind": kinds[idx],
            "model": model or claim.spec["model"],
            **map_summary(m),
            "map_key": got.keys.get(idx),
            "reused": idx in got.reused,
        }
        if idx in got.reused:
            artifact, checksum = got.reused[idx]
            rows.add("attributions", {**row, "artifact": artifact, "checksum": checksum})
        else:
            rows.add_array("attributions", row, group or method, idx, m, rows.map_dtype)


BatchFunction = Callable[[Claim, LoadedModel, Batch, ShardRows, Path], Any]


def kind_function(name: str) -> BatchFunction:
    """The function that computes a batch of job kind ``name``: the ``"module:function"`` its
    registry entry names (:mod:`xaiq.scheduler.kinds`), imported on first use."""
    module, _, function = KINDS[name].compute.partition(":")
    fn: BatchFunction = getattr(importlib.import_module(module), function)
    return fn


def _within_batch(checkpoint: Checkpoint, before: int, size: int) -> Callable[[int], None]:
    def report(finished: int) -> None:
        checkpoint.report(before + min(max(finished, 0), size))

    return report


def compute_shard(
    claim: Claim,
    *,
    device: str | torch.device | None = None,
    root: str | Path | None = None,
    engine: Engine | None = None,
    checkpoint: Checkpoint | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every result row of ``claim``'s shard, by table name (see ``xaiq.db.jobs``).

    ``checkpoint`` (called after each batch but the last) reports progress and may stop the
    shard with :class:`~xaiq.worker.checkpoint.ShardInterrupted` carrying the rows so far;
    its ``skip`` samples (already written) are left out."""
    from xaiq.db.session import artifact_location
    from xaiq.db.store import open_store

    spec = claim.spec
    root = root or artifact_location()
    model = cached_model(spec["model"], device)
    from xaiq.worker.provenance import record_runtime

    names = spec.get("models") or [spec["model"]]
    record_runtime(engine, claim, {n: cached_model(n, device) for n in names})
    rows = ShardRows(claim.job_id, claim.attempt, engine)
    rows.chunks = ChunkWriter(claim.job_id, open_store(root))
    rows.map_dtype = str(spec.get("map_dtype", "float32"))
    rows.recompute = bool(spec.get("recompute", False))
    # samples written by an interrupted run of this shard are not computed again; they are
    # whole leading batches, so the remaining batches are the ones an uninterrupted run makes
    skip = checkpoint.skip if checkpoint is not None else set()
    indices = [i for i in range(claim.start, claim.stop) if i not in skip]
    done = (claim.stop - claim.start) - len(indices)
    # a sample that is not the one the job was planned on fails as if it could not be read
    dataset, changed = pinned_dataset(spec["dataset"], engine, claim.job_id, indices)
    for idx in indices:
        with contextlib.suppress(*SAMPLE_FAILURES):
            rows.keys[idx] = dataset.key(idx)
    for idx, why in changed.items():
        rows.error(idx, "load", why)
    scope = stages.shard_scope(claim.shard_id, stages.job_stages(claim.kind, spec), done)
    with scope as counts:
        if checkpoint is not None:
            checkpoint.stages, checkpoint.last_done = counts, done
            # a stage that begins is written at once (rate-limited): a slow batch shows it
            counts.on_begin = lambda: checkpoint.report(checkpoint.last_done)
        return _batches(claim, model, dataset, rows, root, indices, changed, done, checkpoint)


def _batches(
    claim: Claim,
    model: Any,
    dataset: Any,
    rows: ShardRows,
    root: Any,
    indices: list[int],
    changed: dict[int, str],
    done: int,
    checkpoint: Checkpoint | None,
) -> dict[str, list[dict[str, Any]]]:
    """The shard's batches (``indices`` in batches of the spec's ``batch_size``)."""
    kind, stage = kind_function(claim.kind), KINDS[claim.kind].stage
    size = int(claim.spec.get("batch_size", 32))
    for lo in range(0, len(indices), size):
        part = indices[lo : lo + size]
        samples, errors = dataset.load_many([i for i in part if i not in changed])
        for idx, msg in errors.items():
            rows.error(idx, "load", msg)
        batch = _predict(model, samples, rows, target_kind_of(claim.spec))
        if batch is not None:
            if checkpoint is not None:
                rows.on_progress = _within_batch(checkpoint, done, len(part))
            # one-stage kinds are counted here; a disagreement batch reports its own stages
            if stage is not None:
                stages.begin(claim.job_id, stage)
            kind(claim, model, batch, rows, root)
            if stage is not None:
                stages.finish(claim.job_id, stage, len(part))
        done += len(part)
        if checkpoint is not None and lo + size < len(indices):
            try:
                checkpoint(done)
            except ShardInterrupted as stop:
                stop.tables, stop.samples_done = rows.as_tables(), done
                raise
    return rows.as_tables()
