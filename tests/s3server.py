"""A real S3-compatible HTTP server for the tests: moto's standalone server on a free port.

:class:`S3Server` starts ``python -m moto.server`` bound to ``host`` (127.0.0.1 by default),
waits until it answers, and gives the environment a process needs to use it
(``AWS_ENDPOINT_URL``, test credentials, region). Each test takes its own bucket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ACCESS_KEY = "xaiq-test-key"
SECRET_KEY = "xaiq-test-secret-do-not-print"
REGION = "us-east-1"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class S3Server:
    def __init__(self, log: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.endpoint = f"http://{host}:{self.port}"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}; see {log}")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not answer on {self.endpoint}") from None
                time.sleep(0.2)

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def bucket(self) -> str:
        """A new, empty bucket's name."""
        import boto3

        name = f"xaiq-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )
        client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def start_or_skip(log: Path, host: str = "127.0.0.1") -> S3Server:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        reason = "moto[server] is not installed (pip install -c requirements.lock 'moto[server]')"
        if os.environ.get("XAIQ_REQUIRE_SERVICES") == "1":
            pytest.fail(f"required service unavailable: {reason}")
        pytest.skip(reason)
    return S3Server(log, host)
