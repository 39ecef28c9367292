"""Deletion/insertion (the RISE paper's causal metrics): step-image throughput against the
plain forward of the very batches it fed the model.

Row: ``deletion_insertion`` over digits with an IG-like map (random here: the speed does not
depend on the order), the default step (one row, 28 steps, 29 points per game, both games),
against :class:`bench.baselines.limits.RecordedForwards` replaying its batches. Target >= 0.9:
making the step images on the fly (a comparison of ranks and a ``where`` per batch) costs at
most a tenth of the model's own forward.

ROAD rows (``substrate="road"``): :func:`xaiq.xai.road.road_impute` on a batch of digits with
half their pixels removed (random pixels: the masks of a deletion game's middle step),
against (a) the plain forward of the same batch through digits-cnn (the price of imputing a
step image, in forwards) and (b) the existing implementations' way, one scipy.sparse solve
per image on the CPU (:mod:`bench.baselines.road_scipy`).
"""

from __future__ import annotations

import torch

from bench.baselines.limits import RecordedForwards
from bench.common import best_limit, digits_inputs, digits_model, require
from bench.harness import MIB, Context, Row, Skip, Target, rate_row


def _row(ctx: Context, images: int) -> Row:
    faith = require("xaiq.xai.faithfulness", "deletion_insertion")
    rise = require("xaiq.xai.rise", "default_batch_size")
    x, _labels, _ = digits_inputs(ctx, images)
    module = digits_model(ctx)
    with torch.no_grad():
        t = module(x).argmax(dim=1)
    maps = torch.randn(x.shape[0], *x.shape[2:], generator=torch.Generator().manual_seed(0))
    bs = ctx.batch_size(x[0].numel() * 4 * 8, rise.default_batch_size(x.shape[1:]))
    result: dict[str, object] = {}

    def library() -> None:
        with ctx.autocast():
            result["r"] = faith.deletion_insertion(module, x, maps.to(x.device), t, batch_size=bs)

    recorded = RecordedForwards(module, library, 256 * MIB)

    best = best_limit(ctx, recorded.replay_at, recorded.replay_rows, also=(bs,))
    limit = best.call

    tm = ctx.time({"lib": library, "limit": limit}, reps=ctx.pick(None, 5))
    steps = int(result["r"].n_steps[0])  # type: ignore[attr-defined]
    tag = f"({images} img x 2 games x {steps + 1} steps)"
    row = rate_row(
        f"deletion/insertion digits-cnn {tag} vs plain forward",
        recorded.rows,
        tm["lib"],
        recorded.replay_rows,
        tm["limit"],
        unit="step img/s",
        baseline_name=f"plain forward of the step images, {best.describe()}",
        targets=(Target(">=", 0.9),),
    )
    row.extra.update(limit_seconds_by_batch=best.seconds, library_batch=bs)
    return row


def _road_rows(ctx: Context, images: int) -> list[Row]:
    import numpy as np

    from bench.baselines.road_scipy import impute_each

    road = require("xaiq.xai.road", "road_impute")
    x, _labels, _ = digits_inputs(ctx, images)
    module = digits_model(ctx)
    gen = torch.Generator().manual_seed(0)
    removed = (torch.rand(x.shape[0], *x.shape[2:], generator=gen) < 0.5).to(x.device)
    x_np, removed_np = x.cpu().numpy(), removed.cpu().numpy()

    def library() -> None:
        road.road_impute(x, removed)
        ctx.sync()

    def forward() -> None:
        with torch.no_grad():
            module(x)
        ctx.sync()

    def scipy_each() -> None:
        impute_each(x_np, removed_np)

    tm = ctx.time({"lib": library, "fwd": forward, "scipy": scipy_each}, reps=ctx.pick(None, 3))
    got = road.road_impute(x, removed).cpu().numpy()
    ref = np.stack(impute_each(x_np[:4], removed_np[:4]))
    err = float(np.abs(got[:4] - ref).max())
    tag = f"({images} digits, 50% of pixels removed)"
    note = f"max |batched - scipy| {err:.1e} on 4 images"
    return [
        rate_row(
            f"ROAD imputation {tag} vs plain forward",
            images,
            tm["lib"],
            images,
            tm["fwd"],
            unit="img/s",
            baseline_name="plain digits-cnn forward of the same batch",
            note=note,
        ),
        rate_row(
            f"ROAD imputation {tag} vs one scipy solve per image",
            images,
            tm["lib"],
            images,
            tm["scipy"],
            unit="img/s",
            baseline_name="scipy.sparse spsolve, one image at a time (CPU)",
            targets=(Target(">=", 1.0),),
            note=note,
        ),
    ]


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    label = "deletion/insertion"
    if ctx.wants(label):
        try:
            rows.append(_row(ctx, ctx.pick(32, 300)))
        except Skip as exc:
            rows.append(Row(name=label, skipped=str(exc)))
    if ctx.wants("ROAD imputation"):
        try:
            rows += _road_rows(ctx, ctx.pick(64, 256))
        except Skip as exc:
            rows.append(Row(name="ROAD imputation", skipped=str(exc)))
    return rows
