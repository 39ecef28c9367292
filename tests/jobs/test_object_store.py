"""Jobs with their artifacts in an S3 bucket (moto's server), run through the CLI as users
run it: nothing written locally, one object per shard and method, `show` / `report` /
`xaiq.results` read the maps back; a second identical job reuses every map; `--recompute`
computes them again, identically; float16 storage leaves every row as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import assert_rows_close
from xaiq import results as xaiq_results
from xaiq.db.session import dispose_engines
from xaiq.db.store import ArtifactStore

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.services  # moto's S3 server (tests/s3server.py)

METHODS = ["saliency", "grad_cam", "input_x_gradient"]
N, SHARD = 12, 4
SUBMIT = [
    "submit", "disagreement", "-d", "digits", "-m", "digits-cnn",
    "--methods", ",".join(METHODS), "--superpixels", "grid", "--n-segments", "16",
    "--limit", str(N), "--shard-size", str(SHARD), "--json",
]  # fmt: skip
SKIP = {"id", "job_id", "artifact", "checksum", "reused", "map_key"}
SPEC = {
    "kind": "disagreement",
    "dataset": "digits",
    "model": "digits-cnn",
    "methods": METHODS,
    "superpixels": ["grid"],
    "n_segments": [16],
    "limit": N,
    "shard_size": SHARD,
}


def run(**extra: object) -> tuple[int, dict]:
    """The same job in this process (the CLI's path, without a second torch import)."""
    from xaiq.scheduler.submit import submit
    from xaiq.worker.local import run_local

    job = submit({**SPEC, **extra}, local=True).job_id
    progress = run_local(job)
    assert progress["status"] == "succeeded", progress
    return job, progress


def cli(env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "xaiq.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=env["XAIQ_HOME"],
    )
    assert proc.returncode == 0, proc.stderr
    assert env["AWS_SECRET_ACCESS_KEY"] not in proc.stdout + proc.stderr
    return json.loads(proc.stdout) if "--json" in args else {"stderr": proc.stderr}


def rows(res: xaiq_results.Results, table: str, job: int) -> list[dict]:
    frame = getattr(res, table)(job)
    keep = [c for c in frame.columns if c not in SKIP]
    out = frame[keep].to_dict("records")
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True, default=str))


@pytest.fixture
def env(s3_env, tmp_path: Path, monkeypatch) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("XAIQ_HOME", str(home))
    monkeypatch.delenv("XAIQ_DB_URL", raising=False)
    monkeypatch.delenv("XAIQ_BROKER_URL", raising=False)
    base = {k: v for k, v in os.environ.items() if not k.startswith("XAIQ_")}
    yield {**base, **s3_env, "XAIQ_HOME": str(home), "PYTHONPATH": str(ROOT)}
    dispose_engines()


@pytest.mark.slow  # five CLI processes (each imports torch)
def test_a_job_on_s3_stores_chunks_reads_them_back_and_a_second_job_reuses_every_map(
    env: dict[str, str], tmp_path: Path
) -> None:
    store = ArtifactStore(env["XAIQ_ARTIFACTS"])
    first = cli(env, *SUBMIT)["job"]
    # nothing but the SQLite store is written locally
    local = [p.name for p in Path(env["XAIQ_HOME"]).rglob("*") if p.is_file()]
    assert all(name.startswith("xaiq.sqlite") for name in local), local
    keys = store.keys()
    assert sorted(keys) == sorted(
        f"job-{first}/{m}/chunk-{s}.npys" for m in METHODS for s in range(0, N, SHARD)
    )
    status = cli(env, "status", str(first), "--json")
    assert (status["maps_computed"], status["maps_reused"]) == (N * len(METHODS), 0)

    cli(env, "show", str(first), "5", "--out", str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").stat().st_size > 1000
    cli(env, "report", str(first), "--out", str(tmp_path / "r.html"))
    assert (tmp_path / "r.html").read_text().count("data:image/png") >= 2

    second, _ = run()
    status = cli(env, "status", str(second), "--json")
    assert (status["maps_computed"], status["maps_reused"]) == (0, N * len(METHODS))
    assert sorted(store.keys()) == sorted(keys)  # no map stored twice

    res = xaiq_results.open()
    for table in ("attributions", "disagreements", "samples"):
        assert rows(res, table, second) == rows(res, table, first), table
    for i in range(N):
        for m in METHODS:
            np.testing.assert_array_equal(res.map(second, i, m), res.map(first, i, m))

    again, status = run(recompute=True)  # the CLI's --recompute (tests/cli: the flag)
    assert (status["maps_computed"], status["maps_reused"]) == (N * len(METHODS), 0)
    assert len(store.keys()) == 2 * len(keys)
    for i in range(N):  # recomputed: the same up to float32 rounding (docs/architecture.md)
        for m in METHODS:
            np.testing.assert_allclose(res.map(again, i, m), res.map(first, i, m), rtol=1e-6)
    assert_rows_close(rows(res, "disagreements", again), rows(res, "disagreements", first))


def test_float16_storage_halves_the_bytes_and_leaves_every_row_unchanged(
    env: dict[str, str],
) -> None:
    store = ArtifactStore(env["XAIQ_ARTIFACTS"])
    wide, _ = run()
    half, status = run(map_dtype="float16")
    assert status["maps_reused"] == 0  # a float32 map is not a float16 one

    def size(job: int) -> int:
        return sum(len(store.get(k)) for k in store.keys(f"job-{job}"))

    # each sample's .npy keeps its 128-byte header: 28x28 maps shrink to ~0.6, big ones ~0.5
    assert size(half) < 0.65 * size(wide)
    res = xaiq_results.open()
    assert rows(res, "disagreements", half) == rows(res, "disagreements", wide)
    assert rows(res, "attributions", half) == rows(res, "attributions", wide)
    m16, m32 = res.map(half, 3, "saliency"), res.map(wide, 3, "saliency")
    assert m16.dtype == np.float16 and m32.dtype == np.float32
    np.testing.assert_allclose(m16.astype(np.float32), m32, rtol=1e-3, atol=1e-6)
    with pytest.raises(LookupError):
        res.map(half, 3, "occlusion")
