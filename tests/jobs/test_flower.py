"""`xaiq flower` (the compose stack's Flower): Flower on xaiq's broker, on 127.0.0.1 by
default, behind the login of FLOWER_BASIC_AUTH; it does not start without one."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.jobs.conftest import private_redis_url, wait_for

pytest.importorskip("flower")  # the [flower] extra

LOGIN = "admin:x9#Qv?w"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, auth: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/workers")
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_flower_runs_on_the_broker_behind_its_login() -> None:
    env = {**os.environ, "XAIQ_BROKER_URL": private_redis_url(), "FLOWER_BASIC_AUTH": LOGIN}
    env.pop("XAIQ_BROKER_PASSWORD", None)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xaiq.cli.main", "flower", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: proc.poll() is not None or _listening(port), 120, "Flower to listen")
        assert proc.poll() is None, proc.communicate()[0]
        assert _get(port, None) == 401
        assert _get(port, "admin:wrong") == 401
        assert _get(port, LOGIN) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_flower_does_not_start_without_a_login() -> None:
    env = {**os.environ, "XAIQ_BROKER_URL": "redis://127.0.0.1:1/0"}
    env.pop("FLOWER_BASIC_AUTH", None)
    done = subprocess.run(
        [sys.executable, "-m", "xaiq.cli.main", "flower", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: FLOWER_BASIC_AUTH must be user:password (several: comma-separated)"
    )
