"""Attack candidate evaluations per second against the plain forward limit and the source loop.

Workload: ``digits-cnn``, targeted mode towards ``(label + 1) % 10`` with clamping (hard, so
the active set stays full and every image runs all ``max_iters``), the ``central`` strategy
(no RISE step: this row times the search loop only), K candidates per image per iteration.

Rows:
- library candidate evaluations/s vs the plain forward of the very candidate batches it fed
  the model (recorded in an untimed call). Target >= 0.8.
- the source loop (one image, one candidate per forward) vs the same limit: info (issue 3
  reports about 0.26 here).
- library vs source loop: speed-up, info.
"""

from __future__ import annotations

import math

import torch

from bench.baselines.limits import RecordedForwards
from bench.baselines.source_attack import source_attack_loop
from bench.common import digits_inputs, digits_model, require
from bench.harness import MIB, Context, Row, Skip, Target, rate_row


def central_mask(h: int, w: int, frac: float = 0.4) -> torch.Tensor:
    """A centred ``floor(H*sqrt(frac)) x floor(W*sqrt(frac))`` rectangle, boolean ``[H, W]``."""
    mh, mw = int(h * math.sqrt(frac)), int(w * math.sqrt(frac))
    mask = torch.zeros(h, w, dtype=torch.bool)
    top, left = (h - mh) // 2, (w - mw) // 2
    mask[top : top + mh, left : left + mw] = True
    return mask


def run(ctx: Context) -> list[Row]:
    label = "attack candidate evaluations"
    if not ctx.wants(label):
        return []
    try:
        attack = require("xaiq.xai.attack", "rise_guided_search")
    except Skip as exc:
        return [Row(name=label, skipped=str(exc))]
    images, k = ctx.pick(16, 32), 16
    iters, source_iters = ctx.pick(20, 50), ctx.pick(300, 1000)
    module = digits_model(ctx)
    x, labels, _ = digits_inputs(ctx, images)
    targets = (labels + 1) % 10
    mask = central_mask(x.shape[2], x.shape[3])
    counts: dict[str, int] = {}

    def library() -> None:
        with ctx.autocast():
            results = attack.rise_guided_search(
                module,
                x,
                targets,
                mode="targeted",
                strategies=("central",),
                clamp=True,
                max_iters=iters,
                candidates=k,
                seed=0,
                input_range=(0.0, 1.0),
            )
        counts["lib"] = sum(r.iterations for r in results) * k

    recorded = RecordedForwards(module, library, 256 * MIB)

    def limit() -> None:
        with ctx.autocast():
            recorded.replay()

    def source() -> None:
        with ctx.autocast():
            forwards, _ok = source_attack_loop(
                module, x[:1], int(targets[0]), mask, max_iters=source_iters
            )
        counts["source"] = forwards - 1

    tm = ctx.time({"lib": library, "limit": limit, "source": source}, reps=ctx.pick(None, 3))
    batch = max(recorded.sizes)
    limit_work = recorded.replay_rows
    tag = f"{images} img x K={k}, {iters} iters"
    return [
        rate_row(
            f"attack candidate evaluations ({tag}) vs plain forward",
            counts["lib"],
            tm["lib"],
            limit_work,
            tm["limit"],
            unit="evals/s",
            baseline_name=f"plain forward of its candidates, batch {batch}",
            targets=(Target(">=", 0.8),),
            note="library evaluations counted from AttackResult.iterations x K",
        ),
        rate_row(
            "source attack loop (1 img, 1 candidate/forward) vs plain forward",
            counts["source"],
            tm["source"],
            limit_work,
            tm["limit"],
            unit="evals/s",
            baseline_name=f"plain forward of the library's candidates, batch {batch}",
            note="issue 3 reports about 0.26 here",
        ),
        rate_row(
            "attack candidate evaluations vs source loop",
            counts["lib"],
            tm["lib"],
            counts["source"],
            tm["source"],
            unit="evals/s",
            baseline_name="source loop",
        ),
    ]
