"""Deletion/insertion rows of a disagreement shard: one ``faithfulness`` row per sample x map x
unit (``pixels``, then every superpixel configuration when asked), the curves as artifacts in
group ``faith-<unit><n_segments>-<map group>`` (``[2, n_steps + 1]`` float32: deletion,
insertion; most relevant first; one object per shard, see :mod:`xaiq.worker.artifacts`).

Each row also holds the least-relevant-first AUCs, the random-order baseline's AUCs of the
same sample and unit (computed once per sample and unit: it does not depend on the map), the
share of tied units, and the pixel map's sparseness and complexity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xaiq.db.jobs import Claim
from xaiq.worker.compute import SAMPLE_FAILURES, ShardRows, error_message
from xaiq.worker.disagreement_kind import Labels, Maps, Side

RandomAucs = dict[tuple[tuple[str, int], int], tuple[float, float]]


def _num(value: Any) -> float | None:
    v = float(value)
    return v if np.isfinite(v) else None


def _add_rows(
    claim: Claim,
    side: Side,
    method: str,
    have: list[int],
    games: Any,
    unit: tuple[str, int],
    rows: ShardRows,
    root: Path,
    extra: dict[str, Any],
) -> None:
    opts = claim.spec["faithfulness"]
    result, lerf = games.morf, games.lerf
    targets = dict(zip(side.batch.ids, side.batch.targets.tolist(), strict=True))
    group = f"faith-{unit[0]}{unit[1]}-{side.group(method)}"
    for j, idx in enumerate(have):
        curves = result.curves(j).astype(np.float32)
        finite = bool(np.all(np.isfinite(curves)))
        rand = extra["random"].get((unit, idx), (None, None))
        rows.add_array(
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
                "ties": opts["ties"],
                "kernel": opts["kernel"],
                "step": int(result.step),
                "n_steps": int(result.n_steps[j]),
                "prob_full": float(curves[0, 0]) if finite else None,
                "deletion_auc": float(result.deletion_auc[j]) if finite else None,
                "insertion_auc": float(result.insertion_auc[j]) if finite else None,
                "deletion_auc_lerf": _num(lerf.deletion_auc[j]) if finite else None,
                "insertion_auc_lerf": _num(lerf.insertion_auc[j]) if finite else None,
                "deletion_auc_random": rand[0],
                "insertion_auc_random": rand[1],
                "tied_share": _num(games.tied[j]),
                "sparseness": _num(extra["sparseness"][j]),
                "complexity": _num(extra["complexity"][j]),
            },
            group,
            idx,
            curves,
        )


def faithfulness_rows(
    claim: Claim, sides: list[Side], maps: Maps, labels: Labels, rows: ShardRows, root: Path
) -> None:
    from xaiq.xai.faithfulness import faithfulness_games
    from xaiq.xai.map_properties import complexity, sparseness

    opts = claim.spec["faithfulness"]
    keys = ("substrate", "order", "blur_kernel", "blur_sigma", "kernel", "ties", "road_noise")
    common = {k: opts[k] for k in keys}
    seed = int(claim.spec.get("seed", 0))
    for side in sides:
        pos = {idx: i for i, idx in enumerate(side.batch.ids)}
        random_aucs: RandomAucs = {}  # per unit and sample: the same for every map
        for method in claim.spec["methods"]:
            mm = maps.get(side.map_name(method), {})
            have = [i for i in side.batch.ids if i in mm]
            if not have:
                continue
            sel = [pos[i] for i in have]
            x, t = side.batch.inputs[sel], side.batch.targets[sel]
            stacked = np.stack([mm[i] for i in have])
            extra = {
                "random": random_aucs,
                "sparseness": sparseness(stacked),
                "complexity": complexity(stacked),
            }
            units = [("pixels", 0)] + (list(labels) if opts["superpixels"] else [])
            for unit in units:
                need_random = any((unit, i) not in random_aucs for i in have)
                pixels = unit == ("pixels", 0)
                try:
                    games = faithfulness_games(
                        side.model,
                        x,
                        stacked,
                        t,
                        labels=None if pixels else labels[unit][sel],
                        step=opts["step"] if pixels else opts["superpixel_step"],
                        seed=seed,
                        sample_ids=have,
                        random_baseline=need_random,
                        **common,
                    )
                except SAMPLE_FAILURES as exc:
                    for idx in have:
                        name = side.map_name(method)
                        rows.error(idx, "faithfulness", f"{name}: {error_message(exc)}")
                    continue
                if games.random is not None:
                    for j, idx in enumerate(have):
                        pair = (games.random.deletion_auc[j], games.random.insertion_auc[j])
                        random_aucs.setdefault((unit, idx), (_num(pair[0]), _num(pair[1])))  # type: ignore[arg-type]
                _add_rows(claim, side, method, have, games, unit, rows, root, extra)
