"""Wake-ups for the scheduler: a submit or a finished shard asks for a tick now.

The scheduler ticks every ``--interval`` seconds anyway; a wake-up only makes the next tick
come early. So the interval can be long (an idle scheduler costs almost nothing) while a new
job's first shards and a worker's next shard are published within milliseconds.

The signal is a one-element Redis list on the broker's own Redis (``LPUSH`` + ``LTRIM``; the
scheduler waits on it with ``BLPOP`` for at most the interval). It carries no data, so a lost
or duplicate wake-up changes nothing but timing. On a broker that is not Redis, or while
Redis is away, notifying does nothing and waiting is a plain sleep.
"""

from __future__ import annotations

import threading
from typing import Any

WAKE_KEY = "xaiq:scheduler:wake"
_SCHEMES = ("redis://", "rediss://", "unix://")
_SOCKET_TIMEOUT = 5.0
_MAX_BLOCK = 4.0  # seconds a wait blocks in Redis at most (below the socket timeout)

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _client(url: str | None) -> Any:
    """A redis-py client for ``url`` (cached per URL and process), or ``None``."""
    if not url or not url.startswith(_SCHEMES):
        return None
    with _clients_lock:
        if url not in _clients:
            import redis

            _clients[url] = redis.Redis.from_url(
                url, socket_timeout=_SOCKET_TIMEOUT, socket_connect_timeout=2
            )
        return _clients[url]


def forget_clients() -> None:
    """Drop cached clients (after a fork: a connection must not be shared across processes)."""
    with _clients_lock:
        _clients.clear()


def notify(url: str | None) -> bool:
    """Ask the scheduler on broker ``url`` for an early tick. ``True`` when the signal was
    stored; never raises (the scheduler's own interval is the fallback)."""
    client = _client(url)
    if client is None:
        return False
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.lpush(WAKE_KEY, 1).ltrim(WAKE_KEY, 0, 0).expire(WAKE_KEY, 3600).execute()
    except Exception:  # redis away or refusing: a wake-up is only an optimisation
        return False
    return True


class Waiter:
    """Waits up to a timeout for a wake-up on broker ``url``; a plain sleep without Redis.

    ``stop`` (a :class:`threading.Event`) is checked before waiting; it ends a plain sleep at
    once and a Redis wait within its timeout (at most 4 s).
    """

    def __init__(self, url: str | None, stop: threading.Event) -> None:
        self.url, self.stop = url, stop

    def wait(self, timeout: float) -> bool:
        """``True`` when woken by a notification, ``False`` on timeout or stop."""
        if self.stop.is_set():
            return False
        client = _client(self.url)
        if client is not None:
            try:
                # seconds, fractions allowed (Redis >= 6); capped below the socket timeout, so a
                # longer interval just means the caller ticks a little early. The list holds at
                # most one element, so one pop takes a whole burst of wake-ups.
                got = client.blpop([WAKE_KEY], timeout=min(max(timeout, 0.01), _MAX_BLOCK))
                return got is not None
            except Exception:  # Redis away: sleep instead, try Redis again next time
                pass
        self.stop.wait(timeout)
        return False
