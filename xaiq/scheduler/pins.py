"""What a job runs on, and whether the dataset still holds it.

A job pins its samples when it is planned: each sample's key and a sha256 of its content
(:meth:`xaiq.xai.datasets.Dataset.fingerprint`: a file's bytes, a built-in dataset's array).
Rows are keyed by sample index, so a dataset that gained, lost or changed a sample under an
unfinished job would mix two datasets in one job (a sample stored twice, another never
processed). ``xaiq resume`` and ``xaiq retry`` therefore refuse such a job
(:class:`DatasetChangedError`, naming what changed); the fix is to restore the dataset or to
submit a new job. A shard that still meets a changed sample (a worker that sees the files
differently) records it as failed (:func:`sample_change`) instead of storing wrong rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from xaiq.scheduler.errors import SchedulerError

UNREADABLE = "-"  # the fingerprint of a sample whose content could not be read


class DatasetChangedError(SchedulerError):
    """The dataset no longer holds the samples a job was planned on."""


def fingerprint(dataset: Any, index: int) -> str:
    """The sample's content fingerprint, :data:`UNREADABLE` if it cannot be read (such a
    sample fails when it is loaded; a later fix of the file is a change too)."""
    from xaiq.xai.errors import SampleError

    try:
        return str(dataset.fingerprint(index))
    except (SampleError, OSError):
        return UNREADABLE


def pin_samples(dataset: Any, n_samples: int) -> list[tuple[str, str]]:
    """``[(key, fingerprint)]`` of samples ``0..n_samples-1``."""
    return [(dataset.key(i), fingerprint(dataset, i)) for i in range(n_samples)]


@dataclass
class DatasetChange:
    """How a dataset differs from a job's pins (lists of keys, in index order)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    moved: int = 0

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified or self.moved)

    def describe(self) -> str:
        """``1 added, 0 removed, 0 modified (first: 'cat/new.png'); 7 samples moved``"""
        first = next(iter(self.added + self.removed + self.modified), None)
        text = (
            f"{len(self.added)} added, {len(self.removed)} removed, {len(self.modified)} modified"
        )
        if first is not None:
            kind = "added" if self.added else "removed" if self.removed else "modified"
            text += f" (first {kind}: {first!r})"
        if self.moved:
            text += f"; {self.moved} samples moved to another index"
        return text


def compare(dataset: Any, pins: dict[int, tuple[str, str]]) -> DatasetChange:
    """How ``dataset`` differs from ``pins`` (``{index: (key, fingerprint)}``): pinned keys
    gone (removed) or with other content (modified), keys now at a pinned index that the pin
    does not have (added), pinned keys at another index (moved)."""
    change = DatasetChange()
    keys_now = [dataset.key(i) for i in range(len(dataset))]
    where = {key: i for i, key in enumerate(keys_now)}
    pinned_keys = {key for key, _ in pins.values()}
    for index in sorted(pins):
        key, fp = pins[index]
        now = where.get(key)
        if now is None:
            change.removed.append(key)
            continue
        if now != index:
            change.moved += 1
        if fingerprint(dataset, now) != fp:
            change.modified.append(key)
    change.added = [k for i, k in enumerate(keys_now) if i in pins and k not in pinned_keys]
    return change


def check_job_dataset(engine: Any, job_id: int, spec: dict[str, Any]) -> None:
    """Raise :class:`DatasetChangedError` when job ``job_id``'s dataset no longer holds the
    samples it was planned on (no pins, as for a job planned before them: no check)."""
    from xaiq.db.pins import read_pins
    from xaiq.xai.datasets import open_dataset

    pins = read_pins(engine, job_id)
    if not pins:
        return
    change = compare(open_dataset(spec["dataset"]), pins)
    if change:
        raise DatasetChangedError(
            f"job {job_id}'s dataset {spec['dataset']} changed since the job was planned:"
            f" {change.describe()}; restore it, or submit a new job"
        )


def sample_change(dataset: Any, index: int, pin: tuple[str, str]) -> str | None:
    """Why sample ``index`` of ``dataset`` is not the pinned ``(key, fingerprint)`` (one
    line), or ``None`` when it is."""
    key, fp = pin
    if index >= len(dataset):
        return (
            f"sample {index} ({key!r}) is gone since the job was planned"
            f" (the dataset has {len(dataset)} samples)"
        )
    now = dataset.key(index)
    if now != key:
        return f"sample {index} is {now!r} now; the job was planned on {key!r}"
    if fingerprint(dataset, index) != fp:
        return f"{key!r} changed since the job was planned (its content differs)"
    return None


def changed_samples(
    dataset: Any, pins: dict[int, tuple[str, str]], indices: Iterable[int]
) -> dict[int, str]:
    """``{index: why}`` for the ``indices`` that differ from their pins (unpinned: kept)."""
    out: dict[int, str] = {}
    for index in indices:
        if index in pins:
            why = sample_change(dataset, index, pins[index])
            if why is not None:
                out[index] = why
    return out
