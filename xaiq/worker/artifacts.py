"""Artifact writing and reading for the worker: arrays as ``.npy`` bytes in the artifact
store (:mod:`xaiq.db.store`: a directory or an object-store URL).

A shard stages its arrays in a :class:`ChunkWriter` and, before its rows are written, puts
one object per group (method, attack strategy, faithfulness unit, ...):
``job-<job>/<group>/chunk-<first sample>.npys``, the samples' ``.npy`` files back to back in
sample order. Each row gets ``<object>#<offset>:<length>`` and the sha256 of its own bytes,
so one sample is read back with one ranged request. The object key depends only on the job,
group and first sample, so a retried shard overwrites it with the same bytes; a store PUT is
atomic (a directory store renames a temporary file into place).

``float16`` storage (the spec's ``map_dtype``) halves a map's bytes; every statistic in the
rows and every metric (disagreement, faithfulness, sanity) is computed from the float32 map
before it is stored, so rows do not change. Per-sample ``job-<id>/<group>/<n>.npy`` objects
(:func:`save_array`, every store written before chunks) still read.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from xaiq.db.artifacts import (
    ArtifactError,
    artifact_path,
    chunk_ref,
    read_artifact,
    read_artifacts,
)
from xaiq.db.store import ArtifactStore, open_store

__all__ = [
    "ArtifactError",
    "ChunkWriter",
    "artifact_relpath",
    "decode",
    "encode",
    "load_array",
    "load_arrays",
    "save_array",
]

Root = str | Path | ArtifactStore | None


def _plain(group: str) -> str:
    if not group.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"artifact group must be a plain name, got {group!r}")
    return group


def artifact_relpath(job_id: int, group: str, sample_index: int) -> str:
    """``job-<job_id>/<group>/<sample_index>.npy``; ``group`` is a registry name."""
    return f"job-{int(job_id)}/{_plain(group)}/{int(sample_index)}.npy"


def chunk_key(job_id: int, group: str, first: int) -> str:
    return f"job-{int(job_id)}/{_plain(group)}/chunk-{int(first)}.npys"


def encode(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def save_array(rel: str, array: np.ndarray, root: Root = None) -> str:
    """Write ``array`` as one object at ``rel`` (the per-sample form); returns its sha256."""
    artifact_path(rel, Path("."))  # refuses any other form
    data = encode(array)
    open_store(root).put(rel, data)
    return hashlib.sha256(data).hexdigest()


def load_array(rel: str, checksum: str | None, root: Root = None) -> np.ndarray:
    """The array of ``rel`` (either form), refusing a reference outside the artifact forms,
    a missing or empty checksum, and bytes whose sha256 differs (:class:`ArtifactError`)."""
    data = read_artifact(rel, checksum, open_store(root))
    try:
        return decode(data)
    except (ValueError, OSError) as exc:
        raise ArtifactError(f"artifact {rel} is not a numpy array: {exc}") from None


def load_arrays(
    items: list[tuple[str, str | None]], root: Root = None
) -> list[np.ndarray | ArtifactError]:
    """:func:`load_array` for many rows, one read per object; each array or its error."""
    out: list[np.ndarray | ArtifactError] = []
    for got in read_artifacts(items, open_store(root)):
        if isinstance(got, ArtifactError):
            out.append(got)
            continue
        try:
            out.append(decode(got))
        except (ValueError, OSError) as exc:
            out.append(ArtifactError(f"not a numpy array: {exc}"))
    return out


class ChunkWriter:
    """Arrays of one shard, staged by group and written as one object per group."""

    def __init__(self, job_id: int, store: ArtifactStore) -> None:
        self.job_id = job_id
        self.store = store
        self.pending: dict[str, list[tuple[int, dict[str, Any], np.ndarray]]] = {}
        self.objects_written = 0
        self.bytes_written = 0

    def stage(
        self, group: str, index: int, array: np.ndarray, row: dict[str, Any], dtype: str | None
    ) -> None:
        """Keep ``array`` (as ``dtype`` when given) for ``row``, whose ``artifact`` and
        ``checksum`` are filled in by :meth:`flush`."""
        _plain(group)
        arr = np.asarray(array)
        if dtype is not None and arr.dtype != np.dtype(dtype):
            arr = arr.astype(dtype)
        self.pending.setdefault(group, []).append((int(index), row, arr))

    def flush(self) -> None:
        """One object per staged group; afterwards every staged row names its bytes."""
        for group, items in sorted(self.pending.items()):
            items.sort(key=lambda t: t[0])
            key = chunk_key(self.job_id, group, items[0][0])
            parts, offset = [], 0
            for _, row, arr in items:
                data = encode(arr)
                row["artifact"] = chunk_ref(key, offset, len(data))
                row["checksum"] = hashlib.sha256(data).hexdigest()
                parts.append(data)
                offset += len(data)
            blob = b"".join(parts)
            self.store.put(key, blob)
            self.objects_written += 1
            self.bytes_written += len(blob)
        self.pending = {}
