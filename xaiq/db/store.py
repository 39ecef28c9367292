"""The artifact store: bytes under ``XAIQ_ARTIFACTS``, a local path or any fsspec URL.

``XAIQ_ARTIFACTS`` is a directory (``/data/artifacts``, ``file:///data/artifacts``) or an
object-store URL: ``s3://bucket/prefix`` through s3fs, and whatever else fsspec knows
(``gs://`` with gcsfs, ``az://`` with adlfs installed). For S3 the standard variables apply:
``AWS_ENDPOINT_URL`` (MinIO, a test server), ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``; :func:`describe` is what messages print (no credentials, ever).

Why fsspec/s3fs and not obstore: fsspec is already in the lock (torch depends on it), its
``cat_file(path, start, end)`` is the ranged read the chunked maps need on every backend, and
its local filesystem makes a directory and a bucket one code path. obstore is faster per
request, but xaiq makes few, large requests (one object per shard and method).

Writes are atomic: an object-store PUT appears whole or not at all; on a local path the bytes
go to a temporary name in the same folder and are renamed into place. Transient errors
(connection resets, timeouts, 5xx / throttling) are retried with backoff; a missing object or
a refused credential is not.
"""

from __future__ import annotations

import functools
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
ATTEMPTS = 4
BACKOFF_SECONDS = 0.2
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", re.IGNORECASE)


class StoreError(OSError):
    """The artifact store cannot be reached, or refused a read or a write (an I/O error)."""


def describe(url: str | Path) -> str:
    """``url`` as messages print it: any ``user:secret@`` part masked."""
    return _USERINFO.sub(r"\1***@", str(url))


def is_transient(exc: BaseException) -> bool:
    """A network hiccup, a timeout, throttling or a server error: worth another attempt."""
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    name = type(exc).__name__
    if name in {"ClientConnectorError", "ServerDisconnectedError", "ClientOSError"}:
        return True
    if name in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"}:
        return True
    status = getattr(exc, "response", None)
    if isinstance(status, dict):  # botocore ClientError
        code = status.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        err = status.get("Error", {}).get("Code", "")
        return int(code) >= 500 or err in {"SlowDown", "Throttling", "RequestTimeout"}
    return isinstance(exc, OSError) and exc.errno is None and "timeout" in str(exc).lower()


def with_retry(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    for attempt in range(ATTEMPTS):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt == ATTEMPTS - 1 or not is_transient(exc):
                raise
            time.sleep(BACKOFF_SECONDS * 2**attempt)
    raise AssertionError("unreachable")


def s3_options() -> dict[str, Any]:
    """s3fs options from the standard AWS variables (s3fs/botocore read the keys themselves;
    the endpoint and region are passed explicitly so that every botocore version honours
    them)."""
    client: dict[str, Any] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        client["endpoint_url"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        client["region_name"] = region
    return {"client_kwargs": client} if client else {}


class ArtifactStore:
    """Relative keys (``job-1/saliency/c0.npys``) under one root URL or directory."""

    def __init__(self, url: str | Path) -> None:
        import fsspec

        self.url = str(url)
        match = _SCHEME.match(self.url)
        self.protocol = match.group(1).lower() if match else "file"
        options = s3_options() if self.protocol in ("s3", "s3a") else {}
        try:
            self.fs, base = fsspec.core.url_to_fs(self.url, **options)
        except (ImportError, ValueError) as exc:
            raise StoreError(f"artifact store {describe(self.url)}: {exc}") from None
        self.base = base.rstrip("/")
        self.local = self.protocol in ("file", "local")

    def __repr__(self) -> str:
        return f"ArtifactStore({describe(self.url)!r})"

    def path(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def where(self, rel: str) -> str:
        """``rel`` as messages print it."""
        return describe(self.url.rstrip("/") + "/" + rel)

    def put(self, rel: str, data: bytes) -> None:
        """Store ``data`` at ``rel`` atomically (retrying transient errors)."""
        try:
            with_retry(self._put, self.path(rel), data)
        except Exception as exc:
            raise StoreError(f"cannot write {self.where(rel)}: {_reason(exc)}") from None

    def _put(self, path: str, data: bytes) -> None:
        if not self.local:
            self.fs.pipe_file(path, data)  # one PUT (or a multipart upload): all or nothing
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get(self, rel: str, start: int | None = None, end: int | None = None) -> bytes:
        """The bytes at ``rel`` (``[start, end)`` only: a ranged read)."""
        try:
            data = with_retry(self.fs.cat_file, self.path(rel), start=start, end=end)
        except Exception as exc:
            raise StoreError(f"cannot read {self.where(rel)}: {_reason(exc)}") from None
        return bytes(data)

    def exists(self, rel: str) -> bool:
        return bool(with_retry(self.fs.exists, self.path(rel)))

    def keys(self, prefix: str = "") -> list[str]:
        """Every stored key under ``prefix`` (relative to the root), sorted."""
        root = self.path(prefix).rstrip("/")
        try:
            found = with_retry(self.fs.find, root)
        except FileNotFoundError:
            return []
        cut = len(self.base) + 1
        return sorted(str(p)[cut:] for p in found if not Path(str(p)).name.startswith("."))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@functools.lru_cache(maxsize=8)
def _store(url: str) -> ArtifactStore:
    return ArtifactStore(url)


def open_store(root: str | Path | ArtifactStore | None = None) -> ArtifactStore:
    """The store at ``root``; ``None``: ``XAIQ_ARTIFACTS`` (default ``$XAIQ_HOME/artifacts``).
    One instance per URL per process (connections are reused)."""
    if isinstance(root, ArtifactStore):
        return root
    if root is None:
        from xaiq.db.session import artifact_location

        root = artifact_location()
    text = str(root)
    if not _SCHEME.match(text):  # a relative directory is relative to the cwd of this call
        text = os.path.abspath(text)
    return _store(text)
