"""What the pictures show: attribution maps and attack images from artifacts, originals from
the dataset.

Artifacts are ``.npy`` bytes in the artifact store (``XAIQ_ARTIFACTS``: a directory or an
object-store URL; one object per sample, or a ranged read of a shard's chunk), verified
against the row's sha256 and read with ``allow_pickle=False``. The original image is not in
the store: :func:`original_input` re-reads it from the job's dataset and runs the model's
preprocessing (imported lazily from ``xaiq.xai``, so the report works without torch until an
original is actually needed). When that is impossible (dataset gone, weights not cached, no
torch) it returns ``None`` and the figures show the maps / final images alone, saying so.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np

from xaiq.db.artifacts import ArtifactError, read_artifact
from xaiq.db.store import StoreError, open_store


def load_artifact(rel: str | None, checksum: str | None = None) -> np.ndarray | None:
    """The array ``rel`` names in the artifact store; ``None`` if missing, unreadable or its
    sha256 differs from ``checksum`` (a report shows what it can rather than failing)."""
    if not rel:
        return None
    try:  # a path that leaves the artifact forms, or no checksum: not read (see db.artifacts)
        data = read_artifact(rel, checksum, open_store())
    except (OSError, ArtifactError, StoreError):
        return None
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError):
        return None


@functools.lru_cache(maxsize=4)
def _dataset(spec: str) -> Any:
    from xaiq.xai.datasets import open_dataset

    return open_dataset(spec)


@functools.lru_cache(maxsize=2)
def _model(name: str) -> Any:
    from xaiq.xai.models import load_model

    return load_model(name)


def loaded_model(name: str) -> Any:
    """The model (``xaiq.xai.models.load_model``), or ``None`` when it cannot be loaded here."""
    try:
        return _model(name)
    except Exception:
        return None


def original_input(dataset: str, model: str, sample_index: int) -> np.ndarray | None:
    """Sample ``sample_index`` of ``dataset`` as the model ``model`` sees it: float32
    ``[C, H, W]`` model input (the space of attack images and of attribution maps), or
    ``None`` when it cannot be produced here."""
    try:
        sample = _dataset(dataset).load(int(sample_index))
        loaded = _model(model)
        x = loaded.preprocess([sample.image])
        return np.asarray(x[0].detach().cpu().numpy(), dtype=np.float32)
    except Exception:  # any failure means "no original": dataset, weights, torch, decoding
        return None


def original_display(dataset: str, model: str, sample_index: int) -> np.ndarray | None:
    """The sample as the model sees it, made displayable by the model's own inverse
    preprocessing (``[H, W, C]`` in [0, 1]), exactly as ``xaiq compare`` shows it; ``None``
    when it cannot be produced here."""
    try:
        sample = _dataset(dataset).load(int(sample_index))
        loaded = _model(model)
        x = loaded.preprocess([sample.image])
        return np.asarray(loaded.to_display(x)[0].detach().cpu().numpy(), dtype=np.float64)
    except Exception:  # as original_input: no original rather than no report
        return None


def class_names(model: str) -> tuple[str, ...] | None:
    """The model's class names, or ``None`` when the model cannot be loaded here."""
    try:
        return _model(model).class_names
    except Exception:
        return None


def to_display(*images: np.ndarray) -> list[np.ndarray]:
    """Model inputs ``[C, H, W]`` (or ``[H, W]``) -> displayable ``[H, W]`` / ``[H, W, 3]`` in
    [0, 1], min-max scaled *jointly* over all given images so they stay comparable.

    Store-agnostic: it needs no model normalisation constants, and it shows out-of-range
    values (an unclamped attack) instead of clipping them away."""
    arrs = [np.asarray(a, dtype=np.float64) for a in images]
    lo = min(float(a.min()) for a in arrs)
    hi = max(float(a.max()) for a in arrs)
    scale = (hi - lo) or 1.0
    out = []
    for a in arrs:
        a = (a - lo) / scale
        if a.ndim == 3:
            a = a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)
        out.append(a)
    return out
