"""Explainer throughput against the model's forward+backward limit on the same shapes.

Rows (per model: ``digits-cnn`` 28x28 and a random-weight ``resnet18`` 224x224, the latter in
full mode only):

- IG images/s vs (forward+backward rows/s) / n_steps, measured on the very rows IG has to
  push through the model (``n_steps`` scaled copies of every image). Target >= 0.85.
- Saliency, Grad-CAM images/s vs forward+backward images/s (one gradient per image; the
  bench's own bar >= 0.85, no issue sets one).

Every limit is the fastest of a sweep of batch sizes (16..1024, capped at the rows) over the
same rows (:func:`bench.common.best_limit`).
- IG and Saliency vs the source pipeline (Captum on one image at a time): speed-up, info.
"""

from __future__ import annotations

import torch

from bench.baselines.limits import forward_backward_call
from bench.baselines.source_pipeline import captum_one_image
from bench.common import (
    best_limit,
    digits_inputs,
    digits_model,
    photo_inputs,
    require_explainer,
    resnet18_random,
)
from bench.harness import Context, Row, Skip, Target, rate_row

LIMIT_TARGET = (Target(">=", 0.85),)


def _setups(ctx: Context) -> list[dict]:
    setups = [
        dict(
            model="digits-cnn",
            ig_images=ctx.pick(16, 32),
            n_steps=50,
            grad_images=ctx.pick(256, 512),
            source_images=ctx.pick(4, 8),
            reps=None,
        ),
    ]
    if not ctx.quick:
        setups.append(
            dict(model="resnet18", ig_images=1, n_steps=16, grad_images=8, source_images=0, reps=5)
        )
    return setups


def _build(ctx: Context, name: str, n: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    if name == "digits-cnn":
        x, _labels, _ = digits_inputs(ctx, n)
        module = digits_model(ctx)
    else:
        x, _ = photo_inputs(ctx, n)
        module = resnet18_random(ctx)
    with torch.no_grad(), ctx.autocast():
        targets = module(x).argmax(dim=1)
    return module, x, targets


def _ig_rows(ctx: Context, s: dict) -> list[Row]:
    from xaiq.xai.explainers import explain

    name, n, steps = s["model"], s["ig_images"], s["n_steps"]
    module, x, t = _build(ctx, name, n)
    big_x = x.repeat(steps, 1, 1, 1)
    big_t = t.repeat(steps)

    def library() -> None:
        with ctx.autocast():
            explain("integrated_gradients", module, x, t, n_steps=steps)

    best = best_limit(ctx, lambda b: forward_backward_call(module, big_x, big_t, b), len(big_x))
    fns = {"lib": library, "limit": best.call}
    m = s["source_images"]
    if m:

        def source() -> None:
            for i in range(m):
                captum_one_image("integrated_gradients", module, x[i : i + 1], int(t[i]), steps)

        fns["source"] = source
    tm = ctx.time(fns, reps=s["reps"])
    rows = [
        rate_row(
            f"IG {name} ({n} img, n_steps={steps}) vs fwd+bwd/n_steps",
            n,
            tm["lib"],
            n * steps / steps,
            tm["limit"],
            unit="img/s",
            baseline_name=f"fwd+bwd limit / n_steps, {best.describe()}",
            targets=LIMIT_TARGET,
        )
    ]
    rows[0].extra["limit_seconds_by_batch"] = best.seconds
    if m:
        rows.append(
            rate_row(
                f"IG {name} vs source (Captum, one image at a time)",
                n,
                tm["lib"],
                m,
                tm["source"],
                unit="img/s",
                baseline_name="Captum per image",
            )
        )
    return rows


def _grad_rows(ctx: Context, s: dict, method: str, label: str) -> list[Row]:
    from xaiq.xai.explainers import explain

    name, n = s["model"], s["grad_images"]
    module, x, t = _build(ctx, name, n)

    def library() -> None:
        with ctx.autocast():
            explain(method, module, x, t)

    best = best_limit(ctx, lambda b: forward_backward_call(module, x, t, b), len(x))
    fns = {"lib": library, "limit": best.call}
    m = s["source_images"] if method == "saliency" else 0
    if m:

        def source() -> None:
            for i in range(m):
                captum_one_image("saliency", module, x[i : i + 1], int(t[i]))

        fns["source"] = source
    tm = ctx.time(fns, reps=s["reps"])
    rows = [
        rate_row(
            f"{label} {name} ({n} img) vs fwd+bwd",
            n,
            tm["lib"],
            n,
            tm["limit"],
            unit="img/s",
            baseline_name=f"fwd+bwd limit, {best.describe()}",
            targets=LIMIT_TARGET,
        )
    ]
    rows[0].extra["limit_seconds_by_batch"] = best.seconds
    if m:
        rows.append(
            rate_row(
                f"{label} {name} vs source (Captum, one image at a time)",
                n,
                tm["lib"],
                m,
                tm["source"],
                unit="img/s",
                baseline_name="Captum per image",
            )
        )
    return rows


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for s in _setups(ctx):
        jobs = [
            ("integrated_gradients", f"IG {s['model']}", lambda s=s: _ig_rows(ctx, s)),
            (
                "saliency",
                f"Saliency {s['model']}",
                lambda s=s: _grad_rows(ctx, s, "saliency", "Saliency"),
            ),
            (
                "grad_cam",
                f"Grad-CAM {s['model']}",
                lambda s=s: _grad_rows(ctx, s, "grad_cam", "Grad-CAM"),
            ),
        ]
        for method, label, build in jobs:
            if not ctx.wants(label):
                continue
            try:
                require_explainer(method)
                rows.extend(build())
            except Skip as exc:
                rows.append(Row(name=label, skipped=str(exc)))
            ctx.log(f"explainers: {label} done")
    return rows
