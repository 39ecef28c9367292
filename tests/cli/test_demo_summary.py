"""The end of ``make demo``: its tables fit 80 and 100 columns without splitting a number."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

XAIQ = "from xaiq.cli.main import run; run()"
BOX = ("│", "┃", "┏", "┡", "└")
SUMMARY = (
    "import sys; from xaiq.cli.query import print_demo_summary;"
    " from xaiq.db.session import get_engine;"
    " print_demo_summary(get_engine(), [int(j) for j in sys.argv[1:]])"
)


def _run(args: list[str], home: Path, columns: int, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "XAIQ_HOME": str(home), "COLUMNS": str(columns)}
    env.pop("XAIQ_DB_URL", None)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _stats(home: Path, job: int) -> list[dict]:
    proc = _run(
        ["-c", XAIQ, "stats", "disagreement", "--job", str(job), "--format", "json"],
        home,
        200,
        120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _check(out: str, err: str, width: int, stats: list[dict]) -> None:
    table_lines = [line for line in out.splitlines() if line.startswith(BOX)]
    assert table_lines, out
    assert all(len(line) <= width for line in table_lines), max(map(len, table_lines))
    assert "one block per row" not in err  # a table, not the vertical fallback
    text = "\n".join(table_lines)
    assert "top-k disagreement per pair" in out and "distances per pair" in out
    for r in stats:
        if r["mean"] is None:
            continue
        # every mean and every interval is whole on one line of the table
        assert f" {r['mean']:.3f} " in text or f" {r['mean']:.3f}\n" in text, r
        if r["ci_low"] is not None:
            assert f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]" in text, r
    assert "attacks" in out


@pytest.mark.slow
def test_the_demo_prints_tables_that_fit_80_and_100_columns(tmp_path: Path) -> None:
    home = tmp_path / "home"
    demo = _run(["-m", "xaiq.demo", "--limit", "4"], home, 80, 900)
    assert demo.returncode == 0, demo.stderr[-2000:]
    stats = _stats(home, 1)
    assert {r["metric"] for r in stats} >= {"feature_disagreement", "euclidean"}
    _check(demo.stdout, demo.stderr, 80, stats)
    wide = _run(["-c", SUMMARY, "1", "2"], home, 100, 300)
    assert wide.returncode == 0, wide.stderr
    _check(wide.stdout, wide.stderr, 100, stats)
    # at 100 columns a cell holds its mean and interval on one line
    first = next(r for r in stats if r["ci_low"] is not None)
    cell = f"{first['mean']:.3f} [{first['ci_low']:.3f}, {first['ci_high']:.3f}]"
    assert cell in wide.stdout
