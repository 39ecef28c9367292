"""Torch threads sized to the cores a process is given, so compute processes that share a
machine do not oversubscribe it.

By default torch runs one intra-op thread per core in every process. Two xaiq processes on
two cores then run four busy threads, and OpenMP's spinning threads preempt each other: two
jobs at once took far longer than twice one job (the collapse of issue 17). Here:

- :func:`available_cores`: the cores this process may use: its CPU affinity, capped by a
  cgroup CPU quota (``cpu.max``, e.g. ``docker run --cpus``).
- :class:`ComputeSlot`: every compute process (an in-process job, each worker pool
  process) registers a small file in a per-user directory of the machine
  (``$XAIQ_RUN_DIR``, default ``<tmp>/xaiq-<uid>/compute``) while it runs, and before each
  shard sets ``torch`` to ``cores // live processes`` threads (at least 1), so the first job
  shrinks when a second one starts and grows back when it ends.
- a worker started with concurrency ``c`` counts at least ``c`` processes: ``n / c``
  threads each from its first shard on.
- ``XAIQ_TORCH_THREADS`` (``xaiq worker --threads``) fixes the count and turns this off.

Files of processes that died are ignored (pid and start time checked) and removed.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path

THREADS_ENV = "XAIQ_TORCH_THREADS"
RUN_DIR_ENV = "XAIQ_RUN_DIR"


def _cgroup_quota() -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` (or v1 cfs quota), ``None`` when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return q / p if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """Cores this process may run on: CPU affinity, capped by a cgroup quota; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def threads_for(cores: int, processes: int) -> int:
    """Threads per process when ``processes`` share ``cores``: ``cores // processes``, >= 1."""
    return max(1, cores // max(1, processes))


def run_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"xaiq-{os.getuid()}" / "compute"
    return Path(os.environ.get(RUN_DIR_ENV) or default)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks (``/proc/<pid>/stat`` field 22), or ``""``:
    with the pid it tells a live process from a recycled pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return not started or _start_time(pid) in ("", started)


def live_processes(directory: Path | None = None) -> int:
    """How many registered compute processes are alive (stale files are removed)."""
    directory = directory or run_dir()
    n = 0
    for path in directory.glob("*.slot"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(path.stem)
            if _alive(pid, path.read_text().strip()):
                n += 1
            else:
                path.unlink(missing_ok=True)
    return n


class ComputeSlot:
    """This process's registration as a compute process (a context manager; reentrant: the
    file stays until the outermost exit). ``at_least``: count at least this many processes
    (a worker's concurrency)."""

    _depth = 0

    def __init__(self, at_least: int = 1) -> None:
        self.at_least = at_least
        self.path = run_dir() / f"{os.getpid()}.slot"

    def __enter__(self) -> ComputeSlot:
        if ComputeSlot._depth == 0:
            with contextlib.suppress(OSError):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(_start_time(os.getpid()))
        ComputeSlot._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        ComputeSlot._depth -= 1
        if ComputeSlot._depth == 0:
            self.path.unlink(missing_ok=True)

    def threads(self) -> int:
        """The thread count this process should use now."""
        fixed = os.environ.get(THREADS_ENV)
        if fixed:
            return max(1, int(fixed))
        live = max(self.at_least, live_processes(self.path.parent))
        return threads_for(available_cores(), live)

    def fit(self) -> int:
        """Set torch's intra-op threads to :meth:`threads` (between shards); returns it."""
        import torch

        n = self.threads()
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        return n
