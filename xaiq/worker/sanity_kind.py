"""Model-randomisation rows of a disagreement shard: for each model, each randomised network
(seeded by the job's seed, so every shard and retry draws the same weights) and each method,
the randomised map against the trained one, one ``sanity_checks`` row per sample."""

from __future__ import annotations

from typing import Any

import numpy as np

from xaiq.db.jobs import Claim
from xaiq.db.models import METRIC_COLUMNS
from xaiq.worker.compute import SAMPLE_FAILURES, ShardRows, error_message
from xaiq.worker.disagreement_kind import Labels, Maps, Side


def _random_maps(claim: Claim, module: Any, side: Side, method: str, have: list[int]) -> np.ndarray:
    from xaiq.xai.explainers import explain

    pos = {idx: i for i, idx in enumerate(side.batch.ids)}
    sel = [pos[i] for i in have]
    out = explain(
        method,
        module,
        side.batch.inputs[sel],
        side.batch.targets[sel],
        seed=claim.spec["seed"],
        sample_ids=have,
        **claim.spec["params"][method],
    )
    return out.detach().cpu().numpy().astype(np.float32)


def sanity_rows(
    claim: Claim, sides: list[Side], maps: Maps, labels: Labels, rows: ShardRows
) -> None:
    from xaiq.xai.metrics import compare_batch
    from xaiq.xai.sanity import compare_maps, randomised_models
    from xaiq.xai.superpixels import segment_means

    spec, opts = claim.spec, claim.spec["sanity"]
    config = (spec["superpixels"][0], spec["n_segments"][0])
    k_frac = spec["k_frac"][0]
    lab = labels.get(config)
    for side in sides:
        pos = {idx: i for i, idx in enumerate(side.batch.ids)}
        targets = dict(zip(side.batch.ids, side.batch.targets.tolist(), strict=True))
        steps = randomised_models(
            side.model.module, mode=opts["mode"], seed=spec["seed"], max_layers=opts["max_layers"]
        )
        for step in steps:
            for method in spec["methods"]:
                name = side.map_name(method)
                mm = maps.get(name, {})
                have = [i for i in side.batch.ids if i in mm]
                if not have or lab is None:
                    continue
                trained = np.stack([mm[i] for i in have])
                try:
                    random = _random_maps(claim, step.module, side, method, have)
                    if not np.all(np.isfinite(random)):
                        raise ValueError("non-finite attribution values from the random model")
                    sims = compare_maps(trained, random)
                    sp_lab = lab[[pos[i] for i in have]]
                    mets = compare_batch(
                        segment_means(trained, sp_lab), segment_means(random, sp_lab), k_frac
                    )
                except SAMPLE_FAILURES as exc:
                    for idx in have:
                        rows.error(idx, "sanity", f"{name} / {step.layer}: {error_message(exc)}")
                    continue
                for idx, sim, met in zip(have, sims, mets, strict=True):
                    row: dict[str, Any] = {
                        "sample_index": idx,
                        "method": name,
                        "model": side.name,
                        "target": int(targets[idx]),
                        "target_kind": side.batch.kind_of(idx),
                        "mode": opts["mode"],
                        "layer": step.layer,
                        "layer_order": step.order,
                        **sim,
                        "superpixels": config[0],
                        "n_segments": config[1],
                        "k_frac": k_frac,
                        "n": int(met["n"]),
                        "k": int(met["k"]),
                    }
                    for col in METRIC_COLUMNS:
                        v = met[col]
                        row[col] = None if v is None or not np.isfinite(v) else float(v)
                    rows.add("sanity_checks", row)
