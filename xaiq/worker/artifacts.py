"""Artifact files: arrays saved as ``.npy`` under the artifact root, paths derived from ids.

Paths never come from sample file names: ``job-<job>/<method>/<sample_index>.npy``. A write
goes to a temporary file and is renamed into place, so a crashed worker leaves no half file
and a retry simply overwrites with the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from xaiq.db.artifacts import ArtifactError, artifact_path, verify
from xaiq.db.session import artifact_root

__all__ = ["ArtifactError", "artifact_relpath", "load_array", "save_array"]


def artifact_relpath(job_id: int, group: str, sample_index: int) -> str:
    """``job-<job_id>/<group>/<sample_index>.npy``; ``group`` is a registry name."""
    if not group.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"artifact group must be a plain name, got {group!r}")
    return f"job-{int(job_id)}/{group}/{int(sample_index)}.npy"


def save_array(rel: str, array: np.ndarray, root: Path | None = None) -> str:
    """Write ``array`` at ``root/rel`` atomically; returns the sha256 of the file's bytes.
    A failed write (disk full) removes its temporary file and raises."""
    root = root or artifact_root()
    path = artifact_path(rel, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    data = buf.getvalue()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def load_array(rel: str, checksum: str | None, root: Path | None = None) -> np.ndarray:
    """Read ``root/rel``, refusing a path outside the artifact form, a missing or empty
    checksum, and a file whose sha256 differs (:class:`ArtifactError`)."""
    root = root or artifact_root()
    path = artifact_path(rel, root)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"artifact {path} cannot be read: {exc.strerror}") from None
    verify(data, checksum, path)
    return np.load(io.BytesIO(data), allow_pickle=False)
