"""Where an artifact row may point, and what its checksum must be: the store is data.

A row names its artifact by a reference relative to the artifact store's root and a sha256
of the artifact's bytes. Two forms are written:

* ``job-<id>/<group>/<sample index>.npy``: one object per sample (every store before the
  chunked layout; still read).
* ``job-<id>/<group>/chunk-<first index>.npys#<offset>:<length>``: one object per shard and
  group (method, attack strategy, ...) holding the samples' ``.npy`` files back to back;
  the row's bytes are ``[offset, offset + length)`` of it, a complete ``.npy`` of their own,
  read with one ranged request (:func:`read_artifact`).

Readers (``show``, ``report``, ``xaiq.results``, a job reusing maps) accept only these forms
and only a 64-hex-digit checksum; a row that says ``../../etc/passwd`` or carries an empty
checksum is refused, never followed or read unverified.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xaiq.db.store import ArtifactStore

SAMPLE_FORM = re.compile(r"job-\d{1,19}/[A-Za-z0-9_-]{1,64}/\d{1,19}\.npy")
CHUNK_FORM = re.compile(
    r"(job-\d{1,19}/[A-Za-z0-9_-]{1,64}/chunk-\d{1,19}\.npys)#(\d{1,19}):(\d{1,12})"
)
ARTIFACT_FORM = SAMPLE_FORM  # the per-sample form (kept for callers that build paths)
CHECKSUM_FORM = re.compile(r"[0-9a-f]{64}")


class ArtifactError(Exception):
    """An artifact row or file that cannot be trusted (bad path or checksum) or read."""


@dataclass(frozen=True)
class Ref:
    """A parsed artifact reference: the object's key and, for a chunk, the byte range."""

    key: str
    start: int | None = None
    end: int | None = None


def parse_ref(rel: str) -> Ref:
    """The object key (and byte range) of ``rel``; :class:`ArtifactError` for any other form."""
    if isinstance(rel, str):
        if SAMPLE_FORM.fullmatch(rel):
            return Ref(rel)
        m = CHUNK_FORM.fullmatch(rel)
        if m:
            start, length = int(m.group(2)), int(m.group(3))
            return Ref(m.group(1), start, start + length)
    raise ArtifactError(
        f"artifact path {rel!r} is not of the form job-N/GROUP/N.npy "
        "or job-N/GROUP/chunk-N.npys#OFFSET:LENGTH"
    )


def chunk_ref(key: str, offset: int, length: int) -> str:
    return f"{key}#{int(offset)}:{int(length)}"


def artifact_path(rel: str, root: Path) -> Path:
    """``root/rel`` for a well-formed per-sample ``rel``; :class:`ArtifactError` otherwise."""
    if not isinstance(rel, str) or not SAMPLE_FORM.fullmatch(rel):
        raise ArtifactError(f"artifact path {rel!r} is not of the form job-N/GROUP/N.npy")
    return Path(root) / rel


def verify(data: bytes, checksum: str | None, path: object) -> None:
    """Refuse ``data`` unless its sha256 is ``checksum`` (which must be present)."""
    if not isinstance(checksum, str) or not CHECKSUM_FORM.fullmatch(checksum):
        raise ArtifactError(f"artifact {path} has no valid checksum in the store: {checksum!r}")
    if hashlib.sha256(data).hexdigest() != checksum:
        raise ArtifactError(f"artifact {path} does not match its checksum")


def read_artifact(rel: str, checksum: str | None, store: ArtifactStore) -> bytes:
    """The verified bytes of ``rel``: the whole object, or one ranged read of a chunk."""
    from xaiq.db.store import StoreError

    ref = parse_ref(rel)
    if not isinstance(checksum, str) or not CHECKSUM_FORM.fullmatch(checksum):
        raise ArtifactError(f"artifact {rel} has no valid checksum in the store: {checksum!r}")
    try:
        data = store.get(ref.key, ref.start, ref.end)
    except StoreError as exc:
        raise ArtifactError(str(exc)) from None
    verify(data, checksum, store.where(rel))
    return data


def read_artifacts(
    items: Sequence[tuple[str, str | None]], store: ArtifactStore
) -> list[bytes | ArtifactError]:
    """:func:`read_artifact` for many rows, one ranged read per object (the span of the
    requested segments) rather than one per row; each item's bytes or its error."""
    from xaiq.db.store import StoreError

    out: list[bytes | ArtifactError] = [ArtifactError("not read")] * len(items)
    spans: dict[str, list[tuple[int, Ref]]] = {}
    for i, (rel, _) in enumerate(items):
        try:
            ref = parse_ref(rel)
        except ArtifactError as exc:
            out[i] = exc
            continue
        spans.setdefault(ref.key, []).append((i, ref))
    for key, members in spans.items():
        ranged = [r for _, r in members if r.start is not None]
        lo = min((r.start or 0) for r in ranged) if len(ranged) == len(members) else None
        hi = max((r.end or 0) for r in ranged) if lo is not None else None
        try:
            blob = store.get(key, lo, hi)
        except StoreError as exc:
            for i, _ in members:
                out[i] = ArtifactError(str(exc))
            continue
        base = lo or 0
        for i, ref in members:
            part = blob if ref.start is None else blob[ref.start - base : (ref.end or 0) - base]
            try:
                verify(part, items[i][1], store.where(items[i][0]))
                out[i] = part
            except ArtifactError as exc:
                out[i] = exc
    return out
