"""The Jobs page of ``xaiq serve`` follows a job on real workers without a reload.

PostgreSQL, Redis, ``xaiq scheduler`` and two ``xaiq worker`` subprocesses (the module's
cluster); ``xaiq serve`` as a subprocess on the same store; headless Chromium opens the Jobs
page and is read through its DevTools protocol (a small WebSocket client below: no extra
package). A job is submitted while the page is open: its row appears, its displayed progress
takes several values and the stage the workers stored, and its status reaches succeeded,
all in the one page load (a marker set on the page's window survives). Plus the stage
counts that :func:`xaiq.db.jobs.job_progress` adds up from the shards' stored stages.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from xaiq.db.session import get_engine
from xaiq.scheduler.submit import submit

from .conftest import Cluster, wait_for
from .test_serve_browser import chromium_binary, free_port

ROOT = Path(__file__).resolve().parents[2]

SPEC = {
    "kind": "disagreement",
    "dataset": "digits",
    "model": "digits-cnn-weak",
    "methods": ["saliency", "grad_cam", "integrated_gradients"],
    # long enough (12 shards of 16) that the page's 2 s polls see it move on an idle machine
    "params": {"integrated_gradients": {"n_steps": 32}},
    "superpixels": ["grid"],
    "n_segments": [16],
    "k_frac": [0.1],
    "limit": 192,
    "shard_size": 16,
    "batch_size": 4,
    "seed": 3,
}


class DevTools:
    """The DevTools protocol over one WebSocket (RFC 6455 text frames, client-masked)."""

    def __init__(self, url: str) -> None:
        rest = url.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("DevTools closed the handshake")
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
        self.next_id = 0

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("DevTools closed the socket")
            out += chunk
        return out

    def _send(self, text: str) -> None:
        payload = text.encode()
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def _recv(self) -> str:
        data = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            if b0 & 0x0F in (0x9, 0xA):  # ping/pong: nothing to read
                continue
            data += payload
            if b0 & 0x80:
                return data.decode()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        self.sock.close()


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback only
        return json.loads(r.read())


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        env=env,
        stdout=open(log, "ab"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=20)


ROW_JS = """(function () {
  var row = document.querySelector('#jobs tr[data-job="%d"]');
  if (!row) { return null; }
  return [row.querySelector('.status').textContent, row.querySelector('.ptext').textContent,
          (row.querySelector('.stage') || {}).textContent || '',
          row.querySelector('progress').value, window.__xaiqMarker || 0];
})()"""


@pytest.mark.services
@pytest.mark.slow
def test_jobs_page_follows_a_job_on_the_workers_without_a_reload(cluster: Cluster) -> None:
    browser = chromium_binary()
    logs = cluster.logs
    port, debug = free_port(), free_port()
    env = {**cluster.env, "PYTHONPATH": str(ROOT)}
    server = _start(
        [sys.executable, "-m", "xaiq.cli.main", "serve", "--port", str(port)],
        env,
        logs / "serve.log",
    )
    chrome = None
    tools = None
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base + "/api/jobs"), 90, "xaiq serve to answer")
        chrome = _start(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--remote-debugging-port={debug}",
                f"--user-data-dir={logs / 'chromium-profile'}",
                base + "/",
            ],
            os.environ.copy(),
            logs / "chromium.log",
        )
        wait_for(lambda: _answers(f"http://127.0.0.1:{debug}/json/list"), 90, "Chromium")
        pages = [t for t in _get_json(f"http://127.0.0.1:{debug}/json/list") if t["type"] == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        wait_for(
            lambda: (
                tools.evaluate("document.readyState") == "complete"
                and tools.evaluate("!!document.getElementById('jobs')")
            ),
            60,
            "the Jobs page to load",
        )
        tools.evaluate("window.__xaiqMarker = 42")  # gone if the page were reloaded
        job = submit(
            SPEC, engine=get_engine(cluster.db_url), local=False, broker=cluster.broker_url
        ).job_id
        seen: list[list[Any]] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            shown = tools.evaluate(ROW_JS % job)
            if shown is not None and (not seen or shown != seen[-1]):
                seen.append(shown)
            if shown is not None and shown[0] in ("succeeded", "failed", "partial"):
                break
            time.sleep(0.3)
        assert seen, f"job {job} never appeared on the open page"
        status, text, _stage, value, marker = seen[-1]
        assert status == "succeeded", seen
        assert marker == 42, "the page was reloaded"
        assert text.startswith(f"{SPEC['limit']}/{SPEC['limit']}"), seen
        assert value == 100
        before = {s[1] for s in seen if s[0] != "succeeded"}
        assert len(before) >= 2, f"progress shown took one value before completion: {seen}"
        assert any(s[0] == "running" for s in seen), seen
        # what the remote workers stored in the store: the stage a running shard is in
        # ("stage explain (...)") or, between two batches, the samples each stage has done
        # ("(explain 48/192, compare 48/192)"); a fast job may show only the latter (a CI run
        # polled one running view, between batches)
        stages = [s[2] for s in seen if s[0] == "running" and s[2]]
        done = re.compile(r"(explain|compare) [1-9]\d*/")
        assert any(s.startswith("stage ") or done.search(s) for s in stages), seen
    finally:
        if tools is not None:
            tools.close()
        if chrome is not None:
            _stop(chrome)
        _stop(server)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback only
            return r.status == 200
    except OSError:
        return False
