"""Profiles of the rows that miss their targets: where the time goes (for bench/README.md).

``python -m bench.profiles NAME [--rows 15]`` with NAME one of: attack, rise, saliency,
stats-sqlite, stats-postgresql. Torch workloads are profiled with ``torch.profiler``
(operators by self CPU time); database work with cProfile (functions by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
from collections.abc import Callable

import torch

from bench.harness import MIB, Context, tune_like_a_job


def torch_profile(fn: Callable[[], object], rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    fn()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def python_profile(fn: Callable[[], object], rows: int) -> str:
    fn()
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(rows)
    return out.getvalue()


Workloads = dict[str, Callable[[], object]]


def attack_workload(ctx: Context) -> Workloads:
    """The attack row (32 digits x K=16 x 50 iterations) and its limit: the same candidate
    batches, recorded and replayed."""
    from bench.baselines.limits import RecordedForwards
    from bench.common import digits_inputs, digits_model
    from xaiq.xai.attack import rise_guided_search

    module = digits_model(ctx)
    x, labels, _ = digits_inputs(ctx, 32)
    targets = (labels + 1) % 10
    params = dict(mode="targeted", strategies=("central",), clamp=True, max_iters=50)

    def library() -> object:
        return rise_guided_search(
            module, x, targets, candidates=16, seed=0, input_range=(0.0, 1.0), **params
        )

    recorded = RecordedForwards(module, library, 256 * MIB)
    return {"library": library, "replayed forwards": recorded.replay}


def rise_workload(ctx: Context) -> Workloads:
    """The RISE row (4 digits x 4000 masks, default batch) and its limit: the same masked
    batches, recorded and replayed."""
    from bench.baselines.limits import RecordedForwards
    from bench.common import digits_inputs, digits_model
    from xaiq.xai.rise import rise_saliency

    module = digits_model(ctx)
    x, labels, _ = digits_inputs(ctx, 4)

    def library() -> object:
        return rise_saliency(module, x, labels, n_masks=4000, seed=0)

    recorded = RecordedForwards(module, library, 256 * MIB)
    return {"library": library, "replayed forwards": recorded.replay}


def saliency_workload(ctx: Context) -> Workloads:
    from bench.baselines.limits import forward_backward_call
    from bench.common import digits_inputs, digits_model
    from xaiq.xai.explainers import explain

    module = digits_model(ctx)
    x, labels, _ = digits_inputs(ctx, 512)
    return {
        "library": lambda: explain("saliency", module, x, labels),
        "forward+backward": forward_backward_call(module, x, labels),
    }


def stats_workload(backend: str, n_rows: int) -> tuple[Callable[[], object], Callable[[], None]]:
    import contextlib

    from bench.bench_stats import sqlite_url
    from bench.services import postgres_url
    from xaiq.analysis.queries import disagreement_stats
    from xaiq.analysis.synthetic import insert_synthetic_disagreements
    from xaiq.db.session import get_engine

    stack = contextlib.ExitStack()
    url = stack.enter_context(sqlite_url() if backend == "sqlite" else postgres_url())
    engine = get_engine(url, migrate=True)
    job = insert_synthetic_disagreements(engine, n_rows, seed=0)
    return (lambda: disagreement_stats(engine, [job], group_by="pair")), stack.close


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profiles")
    p.add_argument(
        "name", choices=["attack", "rise", "saliency", "stats-sqlite", "stats-postgresql"]
    )
    p.add_argument("--rows", type=int, default=15)
    p.add_argument("--n-rows", type=int, default=1_000_000, help="stats: synthetic rows")
    args = p.parse_args()
    tune_like_a_job()  # profile what the bench times
    ctx = Context()
    print(f"torch threads: {torch.get_num_threads()}")
    if args.name.startswith("stats-"):
        fn, close = stats_workload(args.name.split("-", 1)[1], args.n_rows)
        try:
            print(python_profile(fn, args.rows))
        finally:
            close()
        return
    make = {"attack": attack_workload, "rise": rise_workload, "saliency": saliency_workload}
    for label, fn in make[args.name](ctx).items():
        print(f"== {label}")
        print(torch_profile(fn, args.rows))


if __name__ == "__main__":
    main()
