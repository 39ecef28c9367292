"""The shared benchmark harness: timing, rows, targets, the table and the JSON file.

Every figure is measured in the same run as its baseline: a row holds a ``value`` and a
``baseline`` in the same unit, and its ``ratio`` is ``value / baseline``. Targets apply either
to the ratio or to the value itself (a time or a memory size). Timing runs ``warmup`` untimed
calls, then ``reps`` timed calls, and reports the median with its spread; competing functions
are timed interleaved (a, b, a, b, ...) so that a noisy neighbour slows both alike.

A bench module ``bench/bench_<area>.py`` exposes ``run(ctx) -> list[Row]``. A row whose
dependency is missing carries ``skipped="<why>"`` and no numbers; nothing is ever invented.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

GIB = 1024**3
MIB = 1024**2


class Skip(Exception):
    """Raised inside a bench module when something it needs is missing."""


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Seconds per call over ``reps`` timed calls."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the min-max range relative to the median (0.05 means +-5%)."""
        if len(self.samples) < 2 or self.median <= 0:
            return 0.0
        return (max(self.samples) - min(self.samples)) / (2 * self.median)


def measure_interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    warmup: int = 1,
    reps: int = 3,
    sync: Callable[[], None] | None = None,
) -> dict[str, Timing]:
    """Time each function ``reps`` times, round-robin, after ``warmup`` untimed rounds."""
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    sync = sync or (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
            sync()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            samples[name].append(time.perf_counter() - start)
    return {name: Timing(tuple(s)) for name, s in samples.items()}


def measure(
    fn: Callable[[], Any],
    *,
    warmup: int = 1,
    reps: int = 3,
    sync: Callable[[], None] | None = None,
) -> Timing:
    """Time one function (see :func:`measure_interleaved`)."""
    return measure_interleaved({"fn": fn}, warmup=warmup, reps=reps, sync=sync)["fn"]


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Target:
    """``ratio >= 0.85``, ``value <= 2`` or ``delta <= 64`` (value - baseline), in the row's
    unit for the last two."""

    op: Literal[">=", "<="]
    threshold: float
    on: Literal["ratio", "value", "delta"] = "ratio"

    def met(self, row: Row) -> bool | None:
        if self.on == "ratio":
            x = row.ratio
        elif self.on == "value":
            x = row.value
        else:
            x = None if row.value is None or row.baseline is None else row.value - row.baseline
        if x is None or math.isnan(x):
            return None
        return x >= self.threshold if self.op == ">=" else x <= self.threshold

    def describe(self, unit: str = "") -> str:
        if self.on == "ratio":
            return f"ratio {self.op} {self.threshold:g}"
        prefix = "growth " if self.on == "delta" else ""
        return f"{prefix}{self.op} {self.threshold:g} {unit}".rstrip()


@dataclass
class Row:
    """One line of the table. ``ratio = value / baseline`` when both are present."""

    name: str
    value: float | None = None
    unit: str = ""
    baseline: float | None = None
    baseline_name: str = ""
    targets: tuple[Target, ...] = ()
    spread: float | None = None  # relative, of ``value``
    skipped: str | None = None
    error: str | None = None
    note: str = ""
    module: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        if self.skipped is not None:
            return "skipped"
        if not self.targets:
            return "info"
        results = [t.met(self) for t in self.targets]
        if any(r is None for r in results):
            return "miss"
        return "pass" if all(results) else "miss"

    def spread_detail(self) -> dict[str, Any] | None:
        """The row's figures over its timed repetitions: ``reps`` and min/median/max of the
        value, the baseline and the ratio (per repetition: the library and its baseline were
        timed in the same round), plus the relative half range and interquartile range of
        the value. From ``extra["seconds"]`` (and ``"baseline_seconds"``): a throughput row
        (unit ``.../s``) turns each time into a rate, a row in seconds takes it as is. None
        when the row holds no per-repetition times (one measurement, a memory size)."""
        seconds = self.extra.get("seconds")
        if self.value is None or not isinstance(seconds, list | tuple) or not seconds:
            return None
        rate = self.unit.endswith("/s")

        def figures(value: float, times: Sequence[float]) -> list[float]:
            if not rate:
                return [float(t) for t in times]
            mid = statistics.median(times)  # value = work / median
            return [value * mid / t for t in times if t > 0]

        def summary(xs: Sequence[float]) -> dict[str, float]:
            return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)}

        values = figures(self.value, seconds)
        if not values:
            return None
        out: dict[str, Any] = {"reps": len(values), "value": summary(values)}
        mid = statistics.median(values)
        out["relative_half_range"] = (max(values) - min(values)) / (2 * mid) if mid else None
        if len(values) >= 4 and mid:
            q1, _, q3 = statistics.quantiles(values, n=4)
            out["relative_iqr"] = (q3 - q1) / mid
        base_times = self.extra.get("baseline_seconds")
        if self.baseline is not None and isinstance(base_times, list | tuple) and base_times:
            bases = figures(self.baseline, base_times)
            out["baseline"] = summary(bases)
            if len(bases) == len(values):
                ratios = [v / b for v, b in zip(values, bases, strict=True) if b]
                if ratios:
                    out["ratio"] = summary(ratios)
        return out

    def spread_text(self) -> str:
        """The table's spread cell: ``±4%, ratio 0.91-0.97 (3 reps)``; ``1 run`` for a single
        timed repetition; empty when nothing was timed repeatedly."""
        d = self.spread_detail()
        if d is None:
            return ""
        if d["reps"] < 2:
            return "1 run"
        text = f"±{d['relative_half_range'] * 100:.0f}%" if d["relative_half_range"] else "±0%"
        if "ratio" in d:
            text += f", ratio {fmt(d['ratio']['min'])}-{fmt(d['ratio']['max'])}"
        return f"{text} ({d['reps']} reps)"

    def to_json(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "spread": self.spread,
            "spread_detail": self.spread_detail(),
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "ratio": self.ratio,
            "targets": [
                {"op": t.op, "threshold": t.threshold, "on": t.on, "met": t.met(self)}
                for t in self.targets
            ],
            "status": self.status,
            "skipped": self.skipped,
            "error": self.error,
            "note": self.note,
            "extra": self.extra,
        }


def rate_row(
    name: str,
    work: float,
    timing: Timing,
    base_work: float,
    base_timing: Timing,
    *,
    unit: str,
    baseline_name: str,
    targets: Sequence[Target] = (),
    note: str = "",
) -> Row:
    """A throughput row: ``work / median`` against ``base_work / base median``."""
    return Row(
        name=name,
        value=work / timing.median,
        unit=unit,
        baseline=base_work / base_timing.median,
        baseline_name=baseline_name,
        targets=tuple(targets),
        spread=timing.spread,
        note=note,
        extra={"seconds": list(timing.samples), "baseline_seconds": list(base_timing.samples)},
    )


def skipped_rows(names: Sequence[str], reason: str) -> list[Row]:
    return [Row(name=n, skipped=reason) for n in names]


# --------------------------------------------------------------------------- context


@dataclass
class Context:
    """What a bench module needs: mode, device, timing knobs, AMP/channels-last options."""

    quick: bool = False
    device: Any = None  # torch.device; None means cuda when available, else cpu
    amp: bool = False
    channels_last: bool = False
    warmup: int = 1
    reps: int = 3
    filters: tuple[str, ...] = ()
    module: str = ""
    log: Callable[[str], None] = field(default=lambda msg: None)

    def __post_init__(self) -> None:
        import torch

        if self.device is None:
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        elif not isinstance(self.device, torch.device):
            self.device = torch.device(self.device)

    @property
    def cuda(self) -> bool:
        return getattr(self.device, "type", str(self.device)) == "cuda"

    def pick(self, quick: Any, full: Any) -> Any:
        """``quick`` in quick mode, else ``full``."""
        return quick if self.quick else full

    def wants(self, row_name: str) -> bool:
        """Whether a row is selected by ``--only`` (module name or a row-name substring)."""
        if not self.filters:
            return True
        low = row_name.lower()
        return any(f == self.module or f.lower() in low for f in self.filters)

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def time(
        self,
        fns: dict[str, Callable[[], Any]],
        reps: int | None = None,
        warmup: int | None = None,
    ) -> dict[str, Timing]:
        """:func:`measure_interleaved` with the context's repetitions and warm-up (a row
        whose functions already ran untimed, e.g. in a recording call, may pass 0)."""
        return measure_interleaved(
            fns,
            warmup=self.warmup if warmup is None else warmup,
            reps=reps or self.reps,
            sync=self.sync,
        )

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on CUDA when ``--amp`` was given; otherwise a no-op."""
        if self.amp and self.cuda:
            import torch

            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare_module(self, module: Any) -> Any:
        """Move to the device (channels_last on CUDA when asked) in eval mode."""
        import torch

        module = module.to(self.device).eval()
        if self.channels_last and self.cuda:
            module = module.to(memory_format=torch.channels_last)
        return module

    def prepare_input(self, x: Any) -> Any:
        import torch

        x = x.to(self.device)
        if self.channels_last and self.cuda and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def batch_size(self, per_sample_bytes: int, cpu_default: int, cap: int = 4096) -> int:
        """``cpu_default`` on CPU; on CUDA as many samples as fit in half the free memory."""
        if not self.cuda:
            return cpu_default
        import torch

        free, _total = torch.cuda.mem_get_info(self.device)
        fit = int(free * 0.5) // max(1, per_sample_bytes)
        return max(1, min(cap, fit))


# --------------------------------------------------------------------------- suite


BenchFn = Callable[[Context], list[Row]]


@dataclass
class SuiteResult:
    rows: list[Row]
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"meta": self.meta, "rows": [r.to_json() for r in self.rows]}

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")


def tune_like_a_job() -> None:
    """Give this process the allocator every job runs with (workers, in-process jobs,
    ``xaiq attack``). Without it glibc maps and unmaps each large batch's activations, and
    how fast a batch size runs depends on what the process allocated before (digits-cnn in
    batches of 256: 0.80 s or 1.33 s for the same rows, by process)."""
    from xaiq.xai.allocator import tune_host_allocator

    tune_host_allocator()


def machine_info(ctx: Context) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "device": str(ctx.device),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        from xaiq.xai.allocator import host_allocator_tuned

        info["allocator_tuned"] = host_allocator_tuned()
        if ctx.cuda:
            info["gpu"] = torch.cuda.get_device_name(ctx.device)
    except ImportError:  # pragma: no cover - torch is a hard dependency of xaiq
        pass
    return info


def selected_modules(modules: Sequence[tuple[str, BenchFn]], filters: Sequence[str]) -> list[str]:
    """Modules to run: all when a filter is not a module name (it then selects rows)."""
    names = [name for name, _ in modules]
    if not filters or any(f not in names for f in filters):
        return names
    return [n for n in names if n in filters]


def run_suite(
    modules: Sequence[tuple[str, BenchFn]],
    ctx: Context,
    *,
    on_row: Callable[[Row], None] | None = None,
) -> SuiteResult:
    """Run the selected modules; a module that fails becomes one ``error`` row, not a crash."""
    started = time.time()
    load_before = os.getloadavg()
    rows: list[Row] = []
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def cpu_now() -> float:  # this process and its finished children, every thread
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    for name, fn in modules:
        if name not in selected_modules(modules, ctx.filters):
            continue
        ctx.module = name
        t0, c0 = time.perf_counter(), cpu_now()
        try:
            produced = fn(ctx)
        except Skip as exc:
            produced = [Row(name=name, skipped=str(exc))]
        except Exception as exc:  # a broken bench is reported, never hidden
            last = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{Path(last.filename).name}:{last.lineno}"
            produced = [Row(name=name, error=f"{type(exc).__name__}: {exc} ({where})")]
        timings[name] = time.perf_counter() - t0
        cpu[name] = cpu_now() - c0
        for row in produced:
            row.module = name
            if ctx.wants(row.name) or row.error:  # a module that crashed is always shown
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    meta = {
        "quick": ctx.quick,
        "amp": ctx.amp,
        "channels_last": ctx.channels_last,
        "warmup": ctx.warmup,
        "reps": ctx.reps,
        "filters": list(ctx.filters),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "elapsed_s": time.time() - started,
        "module_seconds": timings,
        # CPU seconds (user + system, children included): what a loaded machine's wall
        # clock hides; on two idle cores the wall time is at least half of it
        "module_cpu_seconds": cpu,
        # other processes on the machine distort every figure: recorded, not corrected
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "machine": machine_info(ctx),
    }
    return SuiteResult(rows=rows, meta=meta)


# --------------------------------------------------------------------------- rendering


def fmt(x: float | None) -> str:
    if x is None:
        return ""
    if x == 0:
        return "0"
    mag = abs(x)
    if mag >= 1000:
        return f"{x:,.0f}"
    if mag >= 10:
        return f"{x:.1f}"
    if mag >= 0.01:
        return f"{x:.3g}"
    return f"{x:.2e}"


def render_table(result: SuiteResult) -> Any:
    """One Rich table: row, value, unit, baseline, ratio, target, result."""
    from rich.table import Table

    colour = {"pass": "green", "miss": "red", "skipped": "yellow", "error": "red", "info": "cyan"}
    table = Table(title="xaiq benchmarks" + (" (quick)" if result.meta.get("quick") else ""))
    for col, just in [
        ("row", "left"),
        ("value", "right"),
        ("unit", "left"),
        ("baseline", "left"),
        ("ratio", "right"),
        ("spread", "left"),
        ("target", "left"),
        ("result", "left"),
    ]:
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for row in result.rows:
        status = row.status
        if status == "skipped":
            label = f"skipped: {row.skipped}"
        elif status == "error":
            label = f"error: {row.error}"
        else:
            label = status
        value = fmt(row.value)
        base = f"{fmt(row.baseline)} ({row.baseline_name})" if row.baseline is not None else ""
        table.add_row(
            row.name,
            value,
            row.unit,
            base,
            fmt(row.ratio),
            row.spread_text(),
            "; ".join(t.describe(row.unit) for t in row.targets),
            f"[{colour[status]}]{label}[/]",
        )
    return table


def markdown_table(result: SuiteResult) -> str:
    """The same table as Markdown (for bench/README.md)."""
    lines = [
        "| row | value | unit | baseline | ratio | spread | target | result |",
        "|---|---:|---|---|---:|---|---|---|",
    ]
    for row in result.rows:
        status = row.status
        label = {"skipped": f"skipped: {row.skipped}", "error": f"error: {row.error}"}.get(
            status, status
        )
        value = fmt(row.value)
        base = f"{fmt(row.baseline)} ({row.baseline_name})" if row.baseline is not None else ""
        target = "; ".join(t.describe(row.unit) for t in row.targets)
        lines.append(
            f"| {row.name} | {value} | {row.unit} | {base} | {fmt(row.ratio)} "
            f"| {row.spread_text()} | {target} | {label} |"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed: ...`` then ``elapsed()``: seconds inside the block
    (while still inside, seconds so far)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())
