"""Helpers of the fault-injection suite (``test_hostile_*.py``): run the CLI the way users do
and check the one-line contract of docs/operations.md (one ``error:`` line naming the thing,
the documented exit code, no traceback)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .services import Procs

USAGE, STORE, JOB_NOT_OK = 2, 3, 1  # exit codes (STYLE.md / docs/operations.md)


def sqlite_procs(tmp_path: Path, **env: str) -> Procs:
    """CLI runner on a fresh SQLite store under ``tmp_path/home`` (no broker)."""
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    return Procs(tmp_path, f"sqlite:///{home / 'xaiq.sqlite'}", None, **env)


def one_line(proc: subprocess.CompletedProcess, code: int, *named: str) -> str:
    """Assert the failure contract and return the error line."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in out, out[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for name in named:
        assert name in errors[0], (name, errors[0])
    return errors[0]


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A size-limited tmpfs mounted at ``path`` (root only: skipped elsewhere), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


def fill(path: Path, leave: int) -> None:
    """Fill the file system of ``path`` until ``leave`` bytes are free."""
    st = os.statvfs(path)
    (path / "filler").write_bytes(b"\0" * max(st.f_bavail * st.f_frsize - leave, 0))
