"""``xaiq serve`` in a real browser: a tiny real job (in-process, ``--limit``), the server
started as a subprocess on a free port, every page opened with headless Chromium
(``--dump-dom``); every gallery image fetched from the server decodes, and no page holds an
error. Skipped without Chromium unless ``XAIQ_REQUIRE_SERVICES=1`` (``.ci/run`` installs it)."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from xaiq.cli.main import main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("XAIQ_REQUIRE_SERVICES") == "1":
        pytest.fail("chromium required (XAIQ_REQUIRE_SERVICES=1) but not found")
    pytest.skip("chromium not installed")
    raise AssertionError  # unreachable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=120) as r:  # noqa: S310 - our own loopback server
        return r.status, r.read()


def _dom(browser: str, url: str) -> str:
    out = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_every_page_opens_in_chromium_and_its_images_decode(home, capsys) -> None:
    browser = chromium_binary()
    args = [
        "submit",
        "disagreement",
        "-d",
        "digits",
        "-m",
        "digits-cnn-weak",
        "--methods",
        "saliency,grad_cam",
        "--superpixels",
        "grid",
        "--n-segments",
        "16",
        "--limit",
        "4",
        "--shard-size",
        "2",
        "--json",
    ]
    assert main(args) == 0
    capsys.readouterr()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "xaiq.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if _get(base + "/api/jobs")[0] == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("xaiq serve did not answer within 60 s")
        pages = [
            "/",
            "/jobs/1",
            "/jobs/1/samples",
            "/jobs/1/samples/0",
            "/jobs/1/samples?metric=feature_disagreement",
            "/compare?a=1&b=1",
        ]
        images = set()
        for page in pages:
            dom = _dom(browser, base + page)
            assert "<main>" in dom, page
            assert "Traceback" not in dom and "Internal Server Error" not in dom, page
            assert "progress not updated" not in dom, page  # the polling script's error line
            images |= set(re.findall(r'<img[^>]* src="([^"]+)"', dom))
        assert any("/samples/" in src for src in images)
        for src in sorted(images):
            status, body = _get(base + src.replace("&amp;", "&"))
            assert status == 200, src
            img = Image.open(io.BytesIO(body))
            img.load()
            assert img.size[0] > 50 and img.size[1] > 50, src
        jobs_dom = _dom(browser, base + "/")
        assert re.search(r"updated \d", jobs_dom), "the progress poll never succeeded"
    finally:
        server.terminate()
        server.wait(timeout=30)
