"""Deletion/insertion rows of a disagreement shard: one ``faithfulness`` row per sample x map x
unit (``pixels``, then every superpixel configuration when asked), the curves as artifacts
``job-<id>/faith-<unit><n_segments>-<map group>/<sample>.npy`` (``[2, n_steps + 1]`` float32:
deletion, insertion)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xaiq.db.jobs import Claim
from xaiq.worker.artifacts import artifact_relpath, save_array
from xaiq.worker.compute import SAMPLE_FAILURES, ShardRows, error_message
from xaiq.worker.disagreement_kind import Labels, Maps, Side


def _add_rows(
    claim: Claim,
    side: Side,
    method: str,
    have: list[int],
    result: Any,
    unit: tuple[str, int],
    rows: ShardRows,
    root: Path,
) -> None:
    opts = claim.spec["faithfulness"]
    targets = dict(zip(side.batch.ids, side.batch.targets.tolist(), strict=True))
    group = f"faith-{unit[0]}{unit[1]}-{side.group(method)}"
    for j, idx in enumerate(have):
        curves = result.curves(j).astype(np.float32)
        rel = artifact_relpath(claim.job_id, group, idx)
        finite = bool(np.all(np.isfinite(curves)))
        rows.add(
            "faithfulness",
            {
                "sample_index": idx,
                "method": side.map_name(method),
                "model": side.name,
                "target": int(targets[idx]),
                "target_kind": side.batch.kind_of(idx),
                "unit": unit[0],
                "n_segments": unit[1],
                "order": opts["order"],
                "substrate": opts["substrate"],
                "step": int(result.step),
                "n_steps": int(result.n_steps[j]),
                "prob_full": float(curves[0, 0]) if finite else None,
                "deletion_auc": float(result.deletion_auc[j]) if finite else None,
                "insertion_auc": float(result.insertion_auc[j]) if finite else None,
                "artifact": rel,
                "checksum": save_array(rel, curves, root),
            },
        )


def faithfulness_rows(
    claim: Claim, sides: list[Side], maps: Maps, labels: Labels, rows: ShardRows, root: Path
) -> None:
    from xaiq.xai.faithfulness import deletion_insertion, superpixel_deletion_insertion

    opts = claim.spec["faithfulness"]
    common = {k: opts[k] for k in ("substrate", "order", "blur_kernel", "blur_sigma")}
    for side in sides:
        pos = {idx: i for i, idx in enumerate(side.batch.ids)}
        for method in claim.spec["methods"]:
            mm = maps.get(side.map_name(method), {})
            have = [i for i in side.batch.ids if i in mm]
            if not have:
                continue
            sel = [pos[i] for i in have]
            x, t = side.batch.inputs[sel], side.batch.targets[sel]
            stacked = np.stack([mm[i] for i in have])
            units = [("pixels", 0)] + (list(labels) if opts["superpixels"] else [])
            for unit in units:
                try:
                    if unit == ("pixels", 0):
                        result = deletion_insertion(
                            side.model, x, stacked, t, step=opts["step"], **common
                        )
                    else:
                        result = superpixel_deletion_insertion(
                            side.model,
                            x,
                            stacked,
                            t,
                            labels[unit][sel],
                            step=opts["superpixel_step"],
                            **common,
                        )
                except SAMPLE_FAILURES as exc:
                    for idx in have:
                        name = side.map_name(method)
                        rows.error(idx, "faithfulness", f"{name}: {error_message(exc)}")
                    continue
                _add_rows(claim, side, method, have, result, unit, rows, root)
