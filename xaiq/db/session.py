"""Engines and sessions: SQLite (default, WAL, busy timeout, immediate writes) or PostgreSQL.

Configuration: ``XAIQ_DB_URL`` (default ``sqlite:///$XAIQ_HOME/xaiq.sqlite``),
``XAIQ_ARTIFACTS`` (default ``$XAIQ_HOME/artifacts``), ``XAIQ_HOME`` (default ``./xaiq-data``).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url


def xaiq_home() -> Path:
    return Path(os.environ.get("XAIQ_HOME", "xaiq-data"))


def default_db_url() -> str:
    url = os.environ.get("XAIQ_DB_URL")
    if url:
        return url
    return f"sqlite:///{xaiq_home() / 'xaiq.sqlite'}"


def artifact_root() -> Path:
    return Path(os.environ.get("XAIQ_ARTIFACTS", str(xaiq_home() / "artifacts")))


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to print or log)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
