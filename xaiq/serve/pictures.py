"""Figures drawn on demand for the web app, kept in a small in-memory LRU cache.

Every figure is one the report or ``xaiq show`` draws already (one picture convention,
:mod:`xaiq.xai.figures`): :func:`xaiq.report.show.sample_map_figure` for a sample's maps
(original | one map per method, or one map alone), :func:`xaiq.report.plots.attack_figure`
for an attack's original | changed pixels | final | difference. Maps are read one sample at
a time from the artifacts. Matplotlib is not thread-safe and the server answers in a thread
pool, so drawing holds one lock; the cache is keyed by job, sample, what is drawn and the
format, and holds bytes only.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from typing import Any

from sqlalchemy import Engine

from xaiq.db.errors import NotFoundError
from xaiq.db.models import JobKind

CACHE_ITEMS = 256
FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
_DRAW = threading.Lock()


class FigureCache:
    """Bytes of drawn figures, least recently used dropped first."""

    def __init__(self, size: int = CACHE_ITEMS) -> None:
        self.size = size
        self.items: OrderedDict[tuple, bytes] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> bytes | None:
        with self.lock:
            data = self.items.get(key)
            if data is not None:
                self.items.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return data

    def put(self, key: tuple, data: bytes) -> None:
        with self.lock:
            self.items[key] = data
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


def _encode(fig: Any, fmt: str, dpi: int = 100) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def sample_figure_bytes(
    engine: Engine, job: Any, sample_index: int, what: str = "maps", fmt: str = "png"
) -> bytes:
    """The figure of one sample as ``fmt`` bytes.

    ``what``: ``maps`` (original | every map; an attack job: original | changed pixels |
    final | difference), ``boundaries`` (the maps with the most informative configuration's
    superpixels and top-k outlined), or a method name (that map alone). Raises
    :class:`NotFoundError` when the job has nothing to draw for the sample."""
    from xaiq.report import data, plots
    from xaiq.report.show import sample_map_figure
    from xaiq.report.sources import load_artifact, original_input

    with _DRAW:
        if job.kind == JobKind.attack:
            rows = data.attack_rows(engine, job.id, sample_index)
            if not rows:
                raise NotFoundError(f"job {job.id} has no attack result for sample {sample_index}")
            r = rows[0]
            final = load_artifact(r["artifact"], r["checksum"])
            if final is None:
                raise NotFoundError(f"attack image of job {job.id} sample {sample_index} missing")
            original = original_input(job.dataset, job.model, sample_index)
            title = (
                f"job {job.id} sample {sample_index}: "
                f"{'success' if r['success'] else 'failed'} ({r['strategy'] or '-'}), "
                f"pred {r['pred_before']} -> {r['pred_after']}, L0 {r['l0']}"
            )
            fig = plots.attack_figure(original, final, title)
        elif what in ("maps", "boundaries"):
            fig = sample_map_figure(engine, job, sample_index, boundaries=what == "boundaries")
        else:
            maps = data.sample_maps(engine, job, sample_index)
            if what not in maps:
                raise NotFoundError(f"job {job.id} sample {sample_index} has no map {what!r}")
            from xaiq.report.sources import original_display

            original = original_display(job.dataset, job.model, sample_index)
            fig = plots.sample_figure(original, {what: maps[what]}, f"sample {sample_index}")
        return _encode(fig, fmt)


__all__ = ["CACHE_ITEMS", "FORMATS", "FigureCache", "sample_figure_bytes"]
