"""Files a command writes at a path the user chose (``--out``): whole or not at all.

:func:`atomic_output` hands out a temporary name in the target's own directory (so the final
rename stays on one file system and is atomic) with the target's extension (writers that
choose the format by extension, like matplotlib's, still do); the rename happens only when the
block finishes. A full disk, a killed process or an error half-way leaves the previous file
(or none) at the target and no temporary file behind; a refusal names the target, not the
temporary name.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on any
    failure remove it. An :class:`OSError` is re-raised naming ``path``."""
    target = Path(path)
    tmp = target.with_name(f".xaiq-{os.getpid()}-{secrets.token_hex(4)}.{target.name}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if exc.filename in (None, str(tmp), tmp):  # a write() says no name: it was this file
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from None
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
