"""``python -m bench``: run the suite, print one table, optionally write JSON/Markdown."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from bench.harness import BenchFn, Context, render_table, run_suite, tune_like_a_job

# Order matters only for reading the table: cheap library rows first, services last.
MODULE_NAMES = (
    "explainers",
    "rise",
    "faithfulness",
    "disagreement",
    "attack",
    "dataplane",
    "jobs",
    "local",
    "stats",
    "serve",
)


def load_modules(names: Sequence[str] = MODULE_NAMES) -> list[tuple[str, BenchFn]]:
    """``(name, run)`` for each ``bench/bench_<name>.py`` (imported lazily: torch is heavy)."""

    def lazy(name: str) -> BenchFn:
        def run(ctx: Context):  # noqa: ANN202 - returns list[Row]
            return importlib.import_module(f"bench.bench_{name}").run(ctx)

        return run

    return [(name, lazy(name)) for name in names]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--quick", action="store_true", help="small workloads (about 3 min on two idle cores)"
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"a module ({', '.join(MODULE_NAMES)}) or a substring of row names; repeatable",
    )
    p.add_argument("--out", metavar="PATH", help="write the results as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the table as Markdown")
    p.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    p.add_argument("--channels-last", action="store_true", help="channels_last on CUDA")
    p.add_argument("--device", help="override the device (default: cuda if available, else cpu)")
    p.add_argument("--reps", type=int, help="timed repetitions (default 3 quick / 5 full)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up calls (default 1)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 200)
    warnings.filterwarnings("ignore", category=UserWarning, module="captum")
    filters = tuple(f for item in args.only for f in item.split(",") if f)
    tune_like_a_job()
    ctx = Context(
        quick=args.quick,
        device=args.device,
        amp=args.amp,
        channels_last=args.channels_last,
        warmup=args.warmup,
        reps=args.reps or (3 if args.quick else 5),
        filters=filters,
        log=lambda msg: console.log(msg),
    )

    def progress(row):  # noqa: ANN001, ANN202
        console.log(f"[dim]{row.module}[/] {row.name}: {row.status}")

    result = run_suite(load_modules(), ctx, on_row=progress)
    console.print(render_table(result))
    meta = result.meta
    cpu = meta.get("module_cpu_seconds", {})
    per_module = ", ".join(
        f"{k} {v:.0f} s ({cpu.get(k, 0):.0f} s CPU)" for k, v in meta["module_seconds"].items()
    )
    console.print(
        f"elapsed {meta['elapsed_s']:.0f} s on {meta['machine']['device']} ({per_module}); "
        f"load average {meta['load_average_before'][0]:.1f} -> {meta['load_average_after'][0]:.1f}"
    )
    if args.out:
        result.write(args.out)
    if args.markdown:
        from bench.harness import markdown_table

        with open(args.markdown, "w") as fh:
            fh.write(markdown_table(result) + "\n")
    statuses = {row.status for row in result.rows}
    if "error" in statuses or (args.strict and "miss" in statuses):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
