"""``xaiq show JOB SAMPLE``: the figure of one sample of a stored job, as a PNG."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from xaiq.db.errors import NotFoundError
from xaiq.db.models import JobKind
from xaiq.report import data, plots
from xaiq.report.sources import load_artifact, original_input


def show_sample(engine: Engine, job_id: int, sample_index: int, out: str | Path) -> Path:
    """Write the sample's figure to ``out`` (PNG) and return its path.

    Attribution / disagreement jobs: original | one overlay per method of the job. Attack
    jobs: original | changed pixels | final | difference. Raises :class:`NotFoundError` for
    an unknown job or a sample the job has no result for.
    """
    job = data.get_job(engine, job_id)
    sample = data.sample_row(engine, job.id, sample_index)
    original = None
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
            f"{'success' if r['success'] else 'failed'} ({r['strategy'] or '-'}), "
            f"pred {r['pred_before']} -> {r['pred_after']}"
        )
        fig = plots.attack_figure(original, final, title)
    else:
        maps = data.sample_maps(engine, job, sample_index)
        if not maps:
            raise NotFoundError(f"job {job.id} has no attribution maps for sample {sample_index}")
        original = original_input(job.dataset, job.model, sample_index)
        label = f", label {sample['label']}, pred {sample['pred']}" if sample else ""
        fig = plots.sample_figure(original, maps, f"job {job.id} sample {sample_index}{label}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(plots.png_bytes(fig, dpi=110))
    return out
