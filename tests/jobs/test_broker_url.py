"""XAIQ_BROKER_PASSWORD goes into the broker URL percent-encoded, so that any password (one
with ``?``, ``#``, ``/`` or ``@``) reaches Redis intact and is never read as part of the URL."""

from __future__ import annotations

import pytest
from kombu.utils.url import parse_url

from xaiq.broker.urls import BrokerUrlError, broker_url, with_password

HARD = "s3cr?et/p#w@x:y%20"


def test_a_password_with_url_characters_survives_the_round_trip() -> None:
    url = with_password("redis://redis:6379/0", HARD)
    assert url == "redis://:s3cr%3Fet%2Fp%23w%40x%3Ay%2520@redis:6379/0"
    parts = parse_url(url)  # what Celery/kombu connect with
    assert (parts["password"], parts["hostname"], parts["port"]) == (HARD, "redis", 6379)
    assert parts["virtual_host"] == "0"
    import redis

    kwargs = redis.connection.parse_url(url)  # what the wake-ups connect with
    assert kwargs["password"] == HARD and kwargs["host"] == "redis"


def test_a_user_is_kept_and_a_password_in_the_url_is_replaced() -> None:
    url = with_password("rediss://default:old@cache.example:6380/2?ssl_cert_reqs=none", "n@w")
    assert url == "rediss://default:n%40w@cache.example:6380/2?ssl_cert_reqs=none"


def test_the_environment_gives_the_url_with_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XAIQ_BROKER_URL", "redis://redis:6379/0")
    monkeypatch.delenv("XAIQ_BROKER_PASSWORD", raising=False)
    assert broker_url() == "redis://redis:6379/0"
    monkeypatch.setenv("XAIQ_BROKER_PASSWORD", HARD)
    assert parse_url(broker_url())["password"] == HARD
    monkeypatch.setenv("XAIQ_BROKER_URL", "memory://")
    with pytest.raises(BrokerUrlError, match="XAIQ_BROKER_PASSWORD"):
        broker_url()
    monkeypatch.delenv("XAIQ_BROKER_URL")
    assert broker_url() is None
