"""The broker URL every process uses: ``XAIQ_BROKER_URL``, with ``XAIQ_BROKER_PASSWORD`` put
in as its password when that is set.

A password written into a URL must be percent-encoded (``?``, ``#``, ``/`` and ``@`` end the
part they are in), which an ``.env`` file or docker compose's ``${VAR}`` cannot do. With the
password in its own variable, xaiq encodes it: any generated password works. kombu, Celery
and redis-py decode it again.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit, urlunsplit

BROKER_URL_ENV = "XAIQ_BROKER_URL"
BROKER_PASSWORD_ENV = "XAIQ_BROKER_PASSWORD"


class BrokerUrlError(ValueError):
    """``XAIQ_BROKER_PASSWORD`` is set but the URL cannot take it."""


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` (percent-encoded) as its password; the user part is kept
    (Redis before 6 has none: ``redis://:PASSWORD@host``). A password already in ``url`` is
    replaced."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise BrokerUrlError(f"{BROKER_URL_ENV} has no host to put {BROKER_PASSWORD_ENV} in")
    host = parts.netloc.rpartition("@")[2]
    user = quote(parts.username or "", safe="") if parts.username else ""
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def broker_url() -> str | None:
    """The configured broker URL (``None``: no broker, jobs run in-process)."""
    url = os.environ.get(BROKER_URL_ENV) or None
    password = os.environ.get(BROKER_PASSWORD_ENV) or None
    if url is None or password is None:
        return url
    return with_password(url, password)
