"""``xaiq show JOB SAMPLE``: the figure of one sample of a stored job (PNG, PDF or SVG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from xaiq.analysis.queries import success_label
from xaiq.db.errors import NotFoundError
from xaiq.db.files import atomic_output
from xaiq.db.models import JobKind
from xaiq.report import data, plots
from xaiq.report.sources import class_names, load_artifact, original_display, original_input
from xaiq.xai.figures import DEFAULT_DPI, MapStyle, model_title, sample_title, save_figure


def sample_map_figure(
    engine: Engine,
    job: Any,
    sample_index: int,
    *,
    what: str = "",
    style: MapStyle | None = None,
    boundaries: bool = False,
) -> Any:
    """The figure of one sample of an attribution / disagreement job: original | one map
    per method, titled with the true label, the prediction and its probability. The same
    function draws ``xaiq show`` and the report's examples. ``boundaries``: the job's most
    informative superpixel configuration, with each map's top-k superpixels outlined."""
    maps = data.sample_maps(engine, job, sample_index)
    if not maps:
        raise NotFoundError(f"job {job.id} has no attribution maps for sample {sample_index}")
    sample = data.sample_row(engine, job.id, sample_index) or {}
    original = original_display(job.dataset, job.model, sample_index)
    head = sample_title(
        sample.get("label"), sample.get("pred"), sample.get("prob_pred"), class_names(job.model)
    )
    title = f"{model_title(job.model)} · sample {sample_index} ({sample.get('key', '?')}): {head}"
    models = data.job_models(job)
    if len(models) > 1:  # a cross-model job: every model's prediction, not the first's only
        preds = data.model_predictions(engine, job, sample_index)
        names = class_names(job.model)

        def said(m: str) -> str:
            p = preds[m].get(sample_index)
            if p is None:
                return "?"
            return str(names[p]) if names is not None and 0 <= p < len(names) else str(p)

        each = " · ".join(f"{model_title(m)} predicted {said(m)}" for m in models)
        truth = sample_title(sample.get("label"), class_names=names)
        title = f"sample {sample_index} ({sample.get('key', '?')}): {truth}\n{each}"
    if what:
        title += f"\n{what}"
    segments, top_k = boundary_segments(job, original) if boundaries else (None, None)
    return plots.sample_figure(original, maps, title, style=style, segments=segments, top_k=top_k)


def boundary_segments(
    job: Any, original: np.ndarray | None
) -> tuple[np.ndarray | None, int | None]:
    """Labels of the job's most informative superpixel configuration on ``original`` and its
    top-k: the one the report ranks its examples at by default
    (:func:`xaiq.report.rank_config.choose_config`: the largest top-k, never one superpixel
    when another configuration has more)."""
    if original is None:
        return None, None
    from xaiq.report.rank_config import choose_config
    from xaiq.xai.metrics import top_k_size
    from xaiq.xai.superpixels import segment

    spec = job.spec or {}
    configs = [
        {"superpixels": sp, "n_segments": int(n), "k_frac": float(k)}
        for sp in (spec.get("superpixels") or ["slic"])
        for n in (spec.get("n_segments") or [200])
        for k in (spec.get("k_frac") or [0.05])
    ]
    chosen = choose_config(configs, ["superpixels", "n_segments", "k_frac"])
    method, n_segments, k_frac = chosen["superpixels"], chosen["n_segments"], chosen["k_frac"]
    img = original[..., 0] if original.ndim == 3 and original.shape[2] == 1 else original
    labels = segment(img[None], method, n_segments=n_segments)[0]
    return labels, top_k_size(int(np.unique(labels).size), k_frac)


def show_sample(
    engine: Engine,
    job_id: int,
    sample_index: int,
    out: str | Path,
    *,
    style: MapStyle | None = None,
    dpi: int = DEFAULT_DPI,
    boundaries: bool = False,
) -> Path:
    """Write the sample's figure to ``out`` (format by extension) and return its path.

    Attribution / disagreement jobs: :func:`sample_map_figure`. Attack jobs: original |
    changed pixels | final | difference. Raises :class:`NotFoundError` for an unknown job or
    a sample the job has no result for.
    """
    job = data.get_job(engine, job_id)
    if job.kind == JobKind.attack:
        rows = data.attack_rows(engine, job.id, sample_index)
        if not rows:
            raise NotFoundError(f"job {job.id} has no attack result for sample {sample_index}")
        r = rows[0]
        final = load_artifact(r["artifact"], r["checksum"])
        if final is None:
            raise NotFoundError(
                f"attack image of job {job.id} sample {sample_index} is missing: {r['artifact']}"
            )
        original = original_input(job.dataset, job.model, sample_index)
        title = (
            f"job {job.id} sample {sample_index}: "
            f"{success_label(r['success'], r['out_of_domain'])} ({r['strategy'] or '-'}), "
            f"pred {r['pred_before']} -> {r['pred_after']}"
        )
        fig = plots.attack_figure(original, final, title)
    else:
        fig = sample_map_figure(engine, job, sample_index, style=style, boundaries=boundaries)
    import matplotlib.pyplot as plt

    try:
        with atomic_output(out) as tmp:  # whole or nothing at ``out``
            save_figure(fig, tmp, dpi)
    finally:
        plt.close(fig)
    return Path(out)
