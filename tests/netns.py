"""Test hosts on one machine: each a network namespace (its own loopback and one veth link
to the machine) with a private ``/tmp`` (a tmpfs in its own mount namespace), so that
processes in two hosts share nothing but what crosses the link.

A new network namespace cannot reach the machine's ``127.0.0.1``; the services stay bound
there, and :mod:`tests.netrelay` forwards their ports from the host side of each link
(``10.213.N.1``; the test host is ``10.213.N.2``). Needs root and iproute2 (``ip netns``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


def netns_unavailable() -> str | None:
    """Why test hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip") or not shutil.which("unshare"):
        return "iproute2 (ip) and util-linux (unshare) are needed"
    name = f"xq{uuid.uuid4().hex[:8]}"
    try:
        _ip("netns", "add", name)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"`ip netns add` failed: {getattr(exc, 'stderr', exc)}".strip()
    _ip("netns", "del", name)
    return None


class NetHost:
    """One namespace ``name`` linked to the machine: host side ``gateway``, its own ``addr``."""

    def __init__(self, subnet: int) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"xq{tag}"
        self.outer, self.inner = f"xqo{tag}", f"xqi{tag}"
        self.gateway, self.addr = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
            _ip("link", "set", self.inner, "netns", self.name)
            _ip("addr", "add", f"{self.gateway}/30", "dev", self.outer)
            _ip("link", "set", self.outer, "up")
            inside = ["netns", "exec", self.name, "ip"]
            _ip(*inside, "addr", "add", f"{self.addr}/30", "dev", self.inner)
            _ip(*inside, "link", "set", self.inner, "up")
            _ip(*inside, "link", "set", "lo", "up")
        except Exception:
            self.remove()
            raise

    def command(self, argv: list[str], env: dict[str, str]) -> list[str]:
        """``argv`` run in this host, with a fresh private /tmp and only ``env``."""
        pairs = [f"{k}={v}" for k, v in env.items()]
        return [
            "ip", "netns", "exec", self.name,
            "unshare", "--mount", "--propagation", "private",
            "env", f"KEEP={':'.join(kept_under_tmp())}", "sh", "-c", PRIVATE_TMP, "sh",
            "env", "-i", *pairs, *argv,
        ]  # fmt: skip

    def popen(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        out = log.open("ab")
        return subprocess.Popen(
            self.command(argv, env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def run(self, argv: list[str], env: dict[str, str], timeout: float = 300):  # noqa: ANN201
        return subprocess.run(
            self.command(argv, env), capture_output=True, text=True, timeout=timeout
        )

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", self.outer], capture_output=True, timeout=20)


# A fresh tmpfs on /tmp, with the software a host runs (this checkout, the venv) bound back
# in when it lives under /tmp (a CI clone in /tmp/...): each host still sees none of the
# others' files, only the installed code every machine would have.
PRIVATE_TMP = """set -e
keep=/run/xaiq-netns-keep-$$
n=0
IFS=:
for p in $KEEP; do n=$((n+1)); mkdir -p "$keep/$n"; mount --bind "$p" "$keep/$n"; done
mount -t tmpfs -o size=512m xaiq-tmp /tmp
n=0
for p in $KEEP; do n=$((n+1)); mkdir -p "$p"; mount --bind "$keep/$n" "$p"; done
unset IFS
exec "$@"
"""


def kept_under_tmp() -> list[str]:
    """This checkout and the interpreter's prefix, when they live under /tmp."""
    paths = {str(Path(__file__).resolve().parents[1]), sys.prefix, sys.base_prefix}
    return sorted(p for p in paths if p == "/tmp" or p.startswith("/tmp/"))


def python_env(extra: dict[str, str]) -> dict[str, str]:
    """What a process on a test host needs: this checkout on the path, the shared venv's
    interpreter (the "installed software"), HOME and XAIQ_HOME in the private /tmp."""
    keep = {
        k: os.environ[k]
        for k in ("PATH", "LANG", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
        if k in os.environ
    }
    return {
        **keep,
        "PYTHONPATH": str(ROOT),
        "HOME": "/tmp",
        "XAIQ_HOME": "/tmp/xaiq-home",
        "MPLCONFIGDIR": "/tmp/mpl",
        "TORCH_HOME": "/tmp/torch",
        **extra,
    }


def relay(gateways: list[str], ports: list[int], log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "netrelay.py"),
         "--listen", ",".join(gateways), "--ports", ",".join(map(str, ports))],
        stdout=subprocess.PIPE, stderr=log.open("ab"), text=True,
    )  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    if line.strip() != "ready":
        proc.kill()
        pytest.fail(f"the relay did not start; see {log}")
    return proc
