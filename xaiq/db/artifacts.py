"""Where an artifact row may point, and what its checksum must be: the store is data.

A row read back from the store names its artifact by a relative path and a sha256. Readers
(``show``, ``report``, a disagreement job reusing maps) accept only the form writers produce,
``job-<id>/<group>/<sample index>.npy`` under the artifact root, and only a 64-hex-digit
checksum; a row that says ``../../etc/passwd`` or carries an empty checksum is refused, never
followed or read unverified.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ARTIFACT_FORM = re.compile(r"job-\d{1,19}/[A-Za-z0-9_-]{1,64}/\d{1,19}\.npy")
CHECKSUM_FORM = re.compile(r"[0-9a-f]{64}")


class ArtifactError(Exception):
    """An artifact row or file that cannot be trusted (bad path or checksum) or read."""


def artifact_path(rel: str, root: Path) -> Path:
    """``root/rel`` for a well-formed ``rel``; :class:`ArtifactError` otherwise."""
    if not isinstance(rel, str) or not ARTIFACT_FORM.fullmatch(rel):
        raise ArtifactError(f"artifact path {rel!r} is not of the form job-N/GROUP/N.npy")
    return Path(root) / rel


def verify(data: bytes, checksum: str | None, path: Path) -> None:
    """Refuse ``data`` unless its sha256 is ``checksum`` (which must be present)."""
    if not isinstance(checksum, str) or not CHECKSUM_FORM.fullmatch(checksum):
        raise ArtifactError(f"artifact {path} has no valid checksum in the store: {checksum!r}")
    if hashlib.sha256(data).hexdigest() != checksum:
        raise ArtifactError(f"artifact {path} does not match its checksum")
