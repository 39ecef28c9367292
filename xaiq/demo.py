"""`make demo`: the main jobs on the embedded default, then a summary.

1. a disagreement job over the first 100 digits with ``digits-cnn-weak`` and four explainers
   (Integrated Gradients with 32 steps, Saliency, Grad-CAM, RISE with 500 masks), compared
   over grid superpixels (28x28 digits are too small for SLIC) at two granularities (16
   patches of 7x7 and 49 of 4x4) and two top-k fractions;
2. an attack job (RISE-guided search, repair mode, the source lab's chain rise-least then
   central, sigma 1, with the default valid images: candidates clamped to [0, 1]) on the
   same digits, with 2,000 iterations per strategy instead of the default 10,000: only the
   misclassified ones (12 of the 100) are attacked;
3. :func:`summary` prints what the two jobs found, then the statistics and the HTML reports.

Sized to finish in under a minute on two idle cores (issue 17; the bench's ``make demo``
row measures it): the search's cost is per iteration, almost whatever the number of images
still active. Measured with these seeds and the source lab's unclamped procedure (before
clamping became the default): RISE-least "repaired" 6 of the 12 misclassified digits and the
central fallback 4, all with pixels outside [0, 1]; with valid images the demo repairs fewer
(``docs/attack-comparison.md``). Each job's time is printed.

``python -m xaiq.demo [--limit N]``; results go to ``$XAIQ_HOME`` (``make demo``: demo-out).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from sqlalchemy import Engine, case, func, select

from xaiq.db.models import SampleErrorRow, SampleRow
from xaiq.db.session import get_engine, read_session, xaiq_home

DEFAULT_LIMIT = 100
ATTACK_MAX_ITERS = 2_000  # per strategy (default 10,000): see the module docstring
METHODS = ["integrated_gradients", "saliency", "grad_cam", "rise"]


def disagreement_spec(limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    return {
        "kind": "disagreement",
        "dataset": "digits",
        "model": "digits-cnn-weak",
        "methods": METHODS,
        "params": {"integrated_gradients": {"n_steps": 32}, "rise": {"n_masks": 500}},
        "superpixels": ["grid"],
        "n_segments": [16, 49],
        "k_frac": [0.1, 0.25],
        "limit": limit,
        "shard_size": 40,
        "seed": 0,
    }


def attack_spec(limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    return {
        "kind": "attack",
        "dataset": "digits",
        "model": "digits-cnn-weak",
        # the attack's defaults (docs/architecture.md): rise-least then central, sigma 1,
        # candidates clamped to the model's input domain
        # but 2,000 iterations per strategy
        "attack": {"mode": "repair", "max_iters": ATTACK_MAX_ITERS},
        "limit": limit,
        # one shard, one batch: the misclassified digits share one batched search (its cost
        # is per iteration, almost whatever the number of images still active)
        "shard_size": limit,
        "batch_size": limit,
        "seed": 0,
    }


def run(limit: int = DEFAULT_LIMIT, *, quiet: bool = False) -> dict[str, int]:
    """Submit and run both jobs in-process; returns their ids."""
    from xaiq.cli.jobs import run_local_with_progress
    from xaiq.cli.output import info
    from xaiq.scheduler.submit import submit

    ids = {}
    for name, spec in (("disagreement", disagreement_spec(limit)), ("attack", attack_spec(limit))):
        started = time.perf_counter()
        job = submit(spec, local=True)
        result = run_local_with_progress(job.job_id, None, quiet=quiet)
        if not quiet:
            info(
                f"{name} job {job.job_id}: {result['status']} in "
                f"{time.perf_counter() - started:.1f} s"
            )
        ids[name] = job.job_id
    return ids


def summary(ids: dict[str, int], engine: Engine | None = None) -> None:
    """Print the demo's jobs; the read side (``finish_demo``) prints the statistics."""
    from xaiq.cli.output import OutputFormat, emit

    engine = engine or get_engine()
    jobs = []
    with read_session(engine) as session:
        for name, job_id in ids.items():
            n, wrong = session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(case((SampleRow.correct.is_(False), 1), else_=0)), 0),
                ).where(SampleRow.job_id == job_id)
            ).one()
            errors = session.scalar(select(func.count()).where(SampleErrorRow.job_id == job_id))
            jobs.append(
                {
                    "job": job_id,
                    "kind": name,
                    "samples": n,
                    "misclassified": wrong,
                    "sample_errors": errors,
                }
            )
    emit(jobs, OutputFormat.table, title="jobs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m xaiq.demo", description=__doc__)
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="first N digits")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    import typer

    try:
        ids = run(args.limit)
    except typer.Exit as stop:  # Ctrl-C: the job is interrupted, its line says how to resume
        raise SystemExit(stop.exit_code) from None
    read_started = time.perf_counter()
    summary(ids)
    from xaiq.cli.query import finish_demo  # the read side: stats tables and HTML reports

    finish_demo(get_engine(), list(ids.values()), xaiq_home())
    from xaiq.cli.output import info

    info(f"statistics and reports in {time.perf_counter() - read_started:.1f} s")
    print(f"demo finished in {time.perf_counter() - started:.1f} s")
    print(query_hint(ids))


def query_hint(ids: dict[str, int]) -> str:
    """How to query the demo's results afterwards (its store is under ``$XAIQ_HOME``)."""
    import os
    import sys
    from pathlib import Path

    home = os.environ.get("XAIQ_HOME") or str(xaiq_home())
    script = Path(sys.executable).with_name("xaiq")
    xaiq = os.path.relpath(script) if script.exists() else "xaiq"
    prefix = f"XAIQ_HOME={home} {xaiq}"
    return (
        f"query the results with:\n  {prefix} list\n"
        f"  {prefix} stats disagreement --job {ids['disagreement']} --group-by pair\n"
        f"  {prefix} stats attack --job {ids['attack']}\n"
        f"  {prefix} show {ids['disagreement']} 0 --out sample0.png"
    )


if __name__ == "__main__":
    main()
