"""Example maps per randomised layer: what the sanity check's numbers look like.

The randomised networks' maps are not stored (one per sample, method and layer would be the
largest table of a job); for one sample the report recomputes them exactly as the worker did
(:func:`xaiq.xai.sanity.randomised_models`, same seed, mode and explainer parameters), so the
pictures match the rows. Needs torch, the model and the dataset here; without them the
section says so and the rest of the report is unaffected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sqlalchemy import Engine, select

from xaiq.analysis.verdict import split_name
from xaiq.db.models import SanityCheck
from xaiq.report import data
from xaiq.report.sources import loaded_model, original_display, original_input
from xaiq.xai.figures import draw_map, method_title, model_title

MAX_METHODS = 8
MAX_COLUMNS = 4  # maps side by side; more go into a second figure


def _sample_and_targets(engine: Engine, job: Any) -> tuple[int | None, dict[str, int]]:
    """The first sample with sanity rows, and each map name's explained class there."""
    with engine.connect() as conn:
        idx = conn.scalar(
            select(SanityCheck.sample_index)
            .where(SanityCheck.job_id == job.id)
            .order_by(SanityCheck.sample_index)
            .limit(1)
        )
        if idx is None:
            return None, {}
        rows = conn.execute(
            select(SanityCheck.method, SanityCheck.target)
            .where(SanityCheck.job_id == job.id, SanityCheck.sample_index == idx)
            .distinct()
        ).all()
    return int(idx), {str(m): int(t) for m, t in rows}


def layer_maps(
    engine: Engine, job: Any
) -> tuple[int, dict[str, list[tuple[str, np.ndarray]]], Any] | None:
    """``(sample, {map name: [(layer, map [H, W]), ...]}, display image)``: the trained map
    first (layer ``trained``), then one per randomised step; None when they cannot be made
    here (no sanity rows, no torch, no model or dataset)."""
    idx, targets = _sample_and_targets(engine, job)
    if idx is None:
        return None
    spec = job.spec or {}
    opts = spec.get("sanity") or {}
    try:
        import torch

        from xaiq.xai.explainers import explain
        from xaiq.xai.sanity import randomised_models
    except ImportError:
        return None
    models = data.job_models(job)
    trained = data.sample_maps(engine, job, idx)
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    shown = None
    for model_name in models:
        loaded = loaded_model(model_name)
        x = original_input(job.dataset, model_name, idx)
        if loaded is None or x is None:
            continue
        if shown is None:
            shown = original_display(job.dataset, model_name, idx)
        order = {m: i for i, m in enumerate(data.job_methods(job))}
        names = sorted(
            (n for n in targets if split_name(n, models)[0] == model_name),
            key=lambda n: order.get(split_name(n, models)[1], len(order)),
        )[:MAX_METHODS]
        inputs = torch.as_tensor(x)[None].to(loaded.device)
        for name in names:
            if name in trained:
                out[name] = [("trained", trained[name])]
        steps = randomised_models(
            loaded.module,
            mode=opts.get("mode", "cascading"),
            seed=int(spec.get("seed", 0)),
            max_layers=opts.get("max_layers"),
        )
        for step in steps:
            for name in names:
                method = split_name(name, models)[1]
                got = explain(
                    method,
                    step.module,
                    inputs,
                    torch.tensor([targets[name]], device=loaded.device),
                    seed=int(spec.get("seed", 0)),
                    sample_ids=[idx],
                    **(spec.get("params") or {}).get(method, {}),
                )
                out.setdefault(name, []).append((step.layer, got[0].detach().cpu().numpy()))
    return (idx, out, shown) if out else None


def layer_maps_figure(maps: dict[str, list[tuple[str, np.ndarray]]], image: Any) -> Figure:
    """Columns: maps (at most :data:`MAX_COLUMNS`); rows: trained, then each randomised
    layer (the one picture convention, each panel with its colour bar)."""
    n_rows = max(len(v) for v in maps.values())
    fig = Figure(figsize=(3.3 * len(maps), 2.9 * n_rows))
    axes = fig.subplots(n_rows, len(maps), squeeze=False)
    for j, (name, steps) in enumerate(maps.items()):
        for i in range(n_rows):
            ax = axes[i, j]
            if i >= len(steps):
                ax.set_axis_off()
                continue
            layer, m = steps[i]
            where = "trained" if i == 0 else f"randomised to {layer}"
            draw_map(ax, image, m, f"{method_title(name)}: {where}")
    fig.tight_layout()
    return fig


def layer_maps_html(engine: Engine, job: Any) -> str:
    from xaiq.report.format import img

    try:
        got = layer_maps(engine, job)
    except Exception as exc:  # a failure costs this figure only, never the report
        return f'<p class="note">example maps per layer unavailable: {exc}</p>'
    if got is None:
        return (
            '<p class="note">example maps per randomised layer need the model, the dataset'
            " and torch here; not available.</p>"
        )
    idx, maps, image = got
    models = ", ".join(model_title(m) for m in data.job_models(job))
    names = list(maps)
    chunks = [names[i : i + MAX_COLUMNS] for i in range(0, len(names), MAX_COLUMNS)]
    figures = [
        img(layer_maps_figure({n: maps[n] for n in c}, image), f"maps per layer, sample {idx}")
        for c in chunks
    ]
    return (
        f"<h3>Example maps per randomised layer (sample {idx}, {models})</h3>"
        '<p class="note">recomputed for this sample exactly as the job did (same seed, mode'
        " and parameters): a map that still looks like the trained one after the layers are"
        " randomised does not depend on what the model learned.</p>" + "".join(figures)
    )


__all__ = ["layer_maps", "layer_maps_figure", "layer_maps_html"]
