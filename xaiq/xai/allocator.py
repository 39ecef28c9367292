"""Host allocator tuning for long-running CPU compute (job executors, workers).

PyTorch allocates CPU tensors with the C library's ``malloc``. glibc serves a block above its
mmap threshold (128 KiB at start, raised dynamically to at most 32 MiB) with a fresh ``mmap``
and returns it with ``munmap`` on free, so every batch's activations are new pages and every
page costs a minor fault and a kernel zero-fill. An explainer pass over a few hundred digits
allocates tens of MiB that way: a 320-digit disagreement job took about 360,000 minor faults
and 0.5-0.7 s of system time out of 3 s on this project's 2-core test host. Keeping blocks up to
:data:`MMAP_THRESHOLD` on the heap and keeping up to :data:`TRIM_THRESHOLD` of freed memory
there before it goes back to the kernel removes almost all of them (about 15 faults per job,
the job 14% faster). How fast a process ran also stopped depending on what it had allocated
earlier, which is what made two executors of the same shard differ.

The price is resident memory: a process may keep up to :data:`TRIM_THRESHOLD` of freed heap.
Only glibc is tuned (musl, macOS and Windows are left as they are); ``XAIQ_MALLOC_TUNING=0``
turns the tuning off. It changes no result, only where memory comes from.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 64 << 20  # bytes: blocks up to this size come from the heap, not mmap
TRIM_THRESHOLD = 256 << 20  # bytes of free heap top kept before trimming it back to the kernel
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_OFF = {"0", "false", "no", "off"}

_applied: bool | None = None  # None: not tried yet in this process


def tune_host_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds for this process, once.

    Returns ``True`` when the thresholds are set (now or by an earlier call), ``False`` when
    this is not glibc, ``mallopt`` refused a value, or ``XAIQ_MALLOC_TUNING`` is ``0``. Safe to
    call from any thread and after ``fork``; the setting applies to later allocations.
    """
    global _applied
    if os.environ.get("XAIQ_MALLOC_TUNING", "1").strip().lower() in _OFF:
        return False
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def host_allocator_tuned() -> bool:
    """Whether :func:`tune_host_allocator` has set the thresholds in this process."""
    return bool(_applied)


def _set_thresholds() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError off glibc (musl)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # a fixed mmap threshold also turns off glibc's dynamic raising of it
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )
