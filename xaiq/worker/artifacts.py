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

from xaiq.db.session import artifact_root


def artifact_relpath(job_id: int, group: str, sample_index: int) -> str:
    """``job-<job_id>/<group>/<sample_index>.npy``; ``group`` is a registry name."""
    if not group.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"artifact group must be a plain name, got {group!r}")
    return f"job-{int(job_id)}/{group}/{int(sample_index)}.npy"


def save_array(rel: str, array: np.ndarray, root: Path | None = None) -> str:
    """Write ``array`` at ``root/rel`` atomically; returns the sha256 of the file's bytes."""
    root = root or artifact_root()
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    data = buf.getvalue()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


class ArtifactError(Exception):
    """An artifact that is missing or whose checksum does not match its row."""


def load_array(rel: str, checksum: str | None = None, root: Path | None = None) -> np.ndarray:
    """Read ``root/rel``; with ``checksum``, refuse a file whose sha256 differs."""
    root = root or artifact_root()
    path = root / rel
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"artifact {path} cannot be read: {exc.strerror}") from None
    if checksum is not None and hashlib.sha256(data).hexdigest() != checksum:
        raise ArtifactError(f"artifact {path} does not match its checksum")
    return np.load(io.BytesIO(data), allow_pickle=False)
