"""Attribution shards: every method's map of every sample, stored as artifacts with summary
rows (:func:`xaiq.worker.compute.store_maps`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xaiq.db.jobs import Claim
from xaiq.worker.compute import Batch, ShardRows, explain_maps, store_maps
from xaiq.xai.models import LoadedModel


def attribution_batch(
    claim: Claim, model: LoadedModel, batch: Batch, rows: ShardRows, root: Path
) -> dict[str, dict[int, np.ndarray]]:
    """The maps of the spec's methods for ``batch``, by method and sample index."""
    spec = claim.spec
    all_maps = {}
    for method in spec["methods"]:
        got = explain_maps(method, model, batch, spec["params"][method], spec["seed"], rows)
        store_maps(claim, method, got, batch, rows)
        all_maps[method] = got.maps
    return all_maps
