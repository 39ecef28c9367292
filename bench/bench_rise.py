"""RISE: masked-forward throughput against the plain forward, and peak memory against N.

Rows:
- library RISE masked images/s (``rise_saliency``, masks generated inside, as in a job) vs
  the plain forward of the very batches it fed the model (recorded in an untimed call,
  :class:`bench.baselines.limits.RecordedForwards`). Target >= 0.9.
- naive RISE (reference code: masks resized one by one on the CPU with skimage, one image at
  a time, all classes accumulated) vs the same plain forward: info (about 0.55 expected).
- library vs naive: speed-up, info.
- peak memory above the model's own footprint for N=8000 at 224x224, against N=1000 (each in a
  fresh process, see ``bench/memprobe.py``): must not grow with N and
  <= 1.5 GiB; growth from N=1000 to N=8000 <= 64 MiB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from bench.baselines.limits import RecordedForwards
from bench.baselines.naive_rise import generate_masks_naive, rise_naive
from bench.common import (
    best_limit,
    digits_inputs,
    digits_model,
    photo_inputs,
    require,
    resnet18_random,
)
from bench.harness import MIB, Context, Row, Skip, Target, rate_row

ROOT = Path(__file__).resolve().parent.parent


def _throughput_rows(ctx: Context, model_name: str, images: int, n_masks: int | None) -> list[Row]:
    """``n_masks=None``: two full forward batches' worth (for the expensive resnet18)."""
    rise = require("xaiq.xai.rise", "rise_saliency", "default_batch_size")
    if model_name == "digits-cnn":
        x, _labels, _ = digits_inputs(ctx, images)
        module = digits_model(ctx)
    else:
        x, _ = photo_inputs(ctx, images)
        module = resnet18_random(ctx)
    with torch.no_grad():
        t = module(x).argmax(dim=1)
    bs = ctx.batch_size(x[0].numel() * 4 * 8, rise.default_batch_size(x.shape[1:]))
    n_masks = n_masks or 2 * bs
    rows_total = images * n_masks

    def library() -> None:
        with ctx.autocast():
            rise.rise_saliency(module, x, t, n_masks=n_masks, seed=0, batch_size=bs)

    recorded = RecordedForwards(module, library, 256 * MIB)

    best = best_limit(ctx, recorded.replay_at, recorded.replay_rows, also=(bs,))
    limit = best.call

    def naive() -> None:
        masks = generate_masks_naive(n_masks, 7, 0.5, tuple(x.shape[2:]), seed=0)
        rise_naive(module, x, t, masks, batch_size=min(bs, 100))

    # digits calls are short and the host's noise is not: more repetitions for the median
    reps = ctx.pick(None, 5 if model_name == "digits-cnn" else 3)
    tm = ctx.time({"lib": library, "limit": limit, "naive": naive}, reps=reps)
    work_limit = recorded.replay_rows
    tag = f"{model_name} ({images} img x {n_masks} masks)"
    sweep = {"limit_seconds_by_batch": best.seconds, "library_batch": bs}
    rows = [
        rate_row(
            f"RISE {tag} vs plain forward",
            rows_total,
            tm["lib"],
            work_limit,
            tm["limit"],
            unit="masked img/s",
            baseline_name=f"plain forward of the masked images, {best.describe()}",
            targets=(Target(">=", 0.9),),
        ),
        rate_row(
            f"naive RISE {model_name} vs plain forward",
            rows_total,
            tm["naive"],
            work_limit,
            tm["limit"],
            unit="masked img/s",
            baseline_name=f"plain forward of the masked images, {best.describe()}",
            note="reference-code RISE; issue 3 expects about 0.55 on digits",
        ),
        rate_row(
            f"RISE {model_name} vs naive RISE",
            rows_total,
            tm["lib"],
            rows_total,
            tm["naive"],
            unit="masked img/s",
            baseline_name="naive RISE",
        ),
    ]
    rows[0].extra.update(sweep)
    return rows


def _probe(ctx: Context, n_masks: int, images: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [
        sys.executable,
        "-m",
        "bench.memprobe",
        "--n-masks",
        str(n_masks),
        "--images",
        str(images),
        "--device",
        str(ctx.device),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memprobe N={n_masks} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _memory_row(ctx: Context) -> Row:
    require("xaiq.xai.rise", "rise_saliency")
    big, small = ctx.pick((1000, 125), (8000, 1000))
    images = 1
    lo = _probe(ctx, small, images)
    hi = _probe(ctx, big, images)
    return Row(
        name=f"RISE peak memory N={big} vs N={small} (224x224, above model)",
        value=hi["extra"] / MIB,
        unit="MiB",
        baseline=lo["extra"] / MIB,
        baseline_name=f"N={small}",
        # "must not grow with N": 8x more masks may add at most 64 MiB (held at once, the
        # extra masks alone would take N*H*W*4 bytes, 1.3 GiB from 1000 to 8000 at 224x224)
        targets=(Target("<=", 64, on="delta"), Target("<=", 1536, on="value")),
        note="peak RSS (CUDA: max_memory_allocated) minus the model's own forward peak",
        extra={"small": lo, "big": hi},
    )


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    setups: list[tuple[str, int, int | None]] = [
        ("digits-cnn", ctx.pick(2, 4), ctx.pick(1000, 4000))
    ]
    if not ctx.quick:
        setups.append(("resnet18", 1, None))
    for model_name, images, n_masks in setups:
        label = f"RISE {model_name}"
        if not ctx.wants(label):
            continue
        try:
            rows.extend(_throughput_rows(ctx, model_name, images, n_masks))
        except Skip as exc:
            rows.append(Row(name=label, skipped=str(exc)))
    if ctx.wants("RISE peak memory"):
        try:
            rows.append(_memory_row(ctx))
        except Skip as exc:
            rows.append(Row(name="RISE peak memory", skipped=str(exc)))
    return rows
