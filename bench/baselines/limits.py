"""The model's own limits on a given batch shape: what no attribution method can beat.

- plain forward: ``module(x)`` under ``no_grad`` (RISE and the attack can at best match it);
- forward+backward: logits of the target class summed, gradient w.r.t. the input (one
  gradient evaluation per image; IG with ``n_steps`` needs ``n_steps`` of them);
- recorded forwards: the plain forward of the very batches a no-gradient method (RISE, the
  attack) fed the model, replayed.

Every limit is then taken at its best batch size (:func:`fastest_batch`): the same rows
pushed through in batches of 16, 32, ..., 1024 (capped at the rows there are), timed
interleaved, the fastest kept. A limit at one fixed batch says as much about that batch
size as about the method (digits-cnn over the same rows: 0.84 s in batches of 83, 0.78 s of
256, 0.86 s of 1024). The bench process tunes its allocator as jobs do
(:mod:`xaiq.xai.allocator`); without that, a batch of 256 ran 1.33 s or 0.80 s depending on
the process, which an earlier version of this note took for a cache effect.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn


def forward_call(
    module: nn.Module, x: torch.Tensor, batch_size: int | None = None
) -> Callable[[], None]:
    """A closure running the plain batched forward of ``x`` ``[B, C, H, W]`` (chunked)."""
    step = batch_size or len(x)

    def run() -> None:
        with torch.no_grad():
            for i in range(0, len(x), step):
                module(x[i : i + step])

    return run


def forward_backward_call(
    module: nn.Module, x: torch.Tensor, targets: torch.Tensor, batch_size: int | None = None
) -> Callable[[], None]:
    """A closure computing d(logit_target)/d(input) for every row of ``x`` (chunked)."""
    step = batch_size or len(x)

    def run() -> None:
        for i in range(0, len(x), step):
            xi = x[i : i + step].detach().requires_grad_(True)
            out = module(xi)
            picked = out.gather(1, targets[i : i + step, None]).sum()
            torch.autograd.grad(picked, xi)

    return run


class RecordedForwards:
    """The batches a library call pushes through ``module``, recorded in one untimed call, to
    replay as the limit: the model's own forward of exactly the data the method feeds it.

    The model's speed depends on its input values, not only on the shapes (on digits-cnn a
    forward of RISE-masked digits is ~8% slower than of the clean digits, and the attack's
    candidates differ again): a limit on other data would charge or credit that to the method.
    At most ``cap_bytes`` of batches are kept; a longer call is replayed by cycling them.
    By default those are the first batches; ``reservoir=True`` keeps a seeded uniform sample
    of all of them instead (a long call whose later forwards differ from its first, as the
    attack's candidates from its RISE masks).
    """

    def __init__(
        self,
        module: nn.Module,
        call: Callable[[], object],
        cap_bytes: int,
        *,
        reservoir: bool = False,
    ) -> None:
        self.module = module
        self.batches: list[torch.Tensor] = []
        self.sizes: list[int] = []  # rows of every forward, kept or not
        gen = torch.Generator().manual_seed(0)
        kept = 0

        def hook(_mod: nn.Module, args: tuple) -> None:
            nonlocal kept
            x = args[0]
            self.sizes.append(int(x.shape[0]))
            nbytes = x.numel() * x.element_size()
            if not self.batches or kept + nbytes <= cap_bytes:
                self.batches.append(x.detach().clone())
                kept += nbytes
            elif reservoir:  # batch i replaces a kept one with probability kept / i
                slot = int(torch.randint(len(self.sizes), (1,), generator=gen))
                if slot < len(self.batches):
                    kept += nbytes - self.batches[slot].numel() * x.element_size()
                    self.batches[slot] = x.detach().clone()

        handle = module.register_forward_pre_hook(hook)
        try:
            call()
        finally:
            handle.remove()

    @property
    def rows(self) -> int:
        """Rows the recorded call fed the model."""
        return sum(self.sizes)

    @property
    def replay_rows(self) -> int:
        """Rows one :meth:`replay` pushes through (``rows`` unless the cap made it cycle)."""
        return sum(len(self.batches[i % len(self.batches)]) for i in range(len(self.sizes)))

    def replay(self) -> None:
        """One plain forward per recorded forward, under ``no_grad``."""
        with torch.no_grad():
            for i in range(len(self.sizes)):
                self.module(self.batches[i % len(self.batches)])

    def replay_at(self, batch_size: int) -> Callable[[], None]:
        """The same :attr:`replay_rows` rows (the recorded data, cycled as :meth:`replay`
        does) re-cut into forwards of ``batch_size`` rows: the limit at another batch size.
        Batches of one shape are concatenated; a call whose batches differ in shape (never
        in this bench) is not re-cut."""
        shapes = {tuple(b.shape[1:]) for b in self.batches}
        if len(shapes) != 1:
            return self.replay
        data = torch.cat(self.batches)
        chunks: list[torch.Tensor] = []
        left, at = self.replay_rows, 0
        while left > 0:
            n = min(batch_size, left, len(data) - at)
            chunks.append(data[at : at + n])
            left -= n
            at = (at + n) % len(data)
        # views of ``data``; a chunk that would wrap around the end is cut short there

        def run() -> None:
            with torch.no_grad():
                for c in chunks:
                    self.module(c)

        return run


SWEEP = (16, 32, 64, 128, 256, 512, 1024)
# ``--quick``: every other size. On two CPU cores the smallest batches are never the fastest
# and by far the slowest to try (digits-cnn: 16 rows per forward ran 3-10x the time of 256).
QUICK_SWEEP = (64, 256, 1024)


def sweep_sizes(rows: int, also: Sequence[int] = (), *, quick: bool = False) -> list[int]:
    """Batch sizes to try for ``rows`` rows: :data:`SWEEP` (:data:`QUICK_SWEEP` when
    ``quick``) and ``also``, capped at ``rows``."""
    sweep = QUICK_SWEEP if quick else SWEEP
    return sorted({max(1, min(b, rows)) for b in (*sweep, *also)})


@dataclass
class BestBatch:
    """The fastest batch size of a sweep, its closure and every size's fastest seconds."""

    size: int
    call: Callable[[], None]
    seconds: dict[int, float] = field(default_factory=dict)

    def describe(self) -> str:
        sizes = sorted(self.seconds)
        span = f"{sizes[0]}-{sizes[-1]}" if len(sizes) > 1 else f"{sizes[0]}"
        return f"best batch {self.size} of {span}"


def fastest_batch(
    make: Callable[[int], Callable[[], None]],
    sizes: Sequence[int],
    *,
    reps: int = 2,
    sync: Callable[[], None] | None = None,
    warm_each: bool = True,
) -> BestBatch:
    """Time ``make(b)`` for every ``b`` in ``sizes`` (one untimed round, then ``reps``
    rounds, sizes interleaved) and keep the size with the fastest call. With ``warm_each``
    false (``--quick``) the untimed round is one call of the largest size: the model, the
    allocator and the thread pool are then warm for every size, at a fraction of the cost."""
    sync = sync or (lambda: None)
    calls = {b: make(b) for b in sizes}
    best: dict[int, float] = {}
    if not warm_each:
        calls[max(calls)]()
        sync()
    for rnd in range(reps + 1 if warm_each else reps):
        for b, fn in calls.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            took = time.perf_counter() - start
            if rnd or not warm_each:  # round 0 warms up
                best[b] = min(best.get(b, took), took)
    size = min(best, key=lambda b: (best[b], b))
    return BestBatch(size, calls[size], best)
