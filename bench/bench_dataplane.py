"""The data plane on an ImageNet-shaped dry run: a disagreement job over a synthetic 224x224
folder dataset with a seeded random ResNet-18 (saliency, Grad-CAM, Integrated Gradients),
maps stored as one object per shard and method, then the identical job again, which reuses
every map. Each run is a fresh ``python -m bench.dataplane_probe`` process (its own peak
memory); the store is a local directory (``XAIQ_ARTIFACTS``), the same bytes and object
count as a bucket.

Rows:
- fresh job: samples/s (info; disagreement rows/s in the note).
- bytes stored per sample and method (info; float32 224x224 maps).
- objects per 1,000 samples, against one object per sample and method (the layout before).
- peak memory (VmHWM) of a job over twice the samples against one over half (full mode;
  target ratio <= 1.15: memory flat in the dataset's size).
- reuse speed-up: fresh job seconds / second identical job seconds (target >= 5).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import Context, Row, Target

ROOT = Path(__file__).resolve().parent.parent
_ENV_DROP = ("XAIQ_DB_URL", "XAIQ_BROKER_URL", "XAIQ_ARTIFACTS")


def _probe(tmp: Path, tag: str, dataset: Path, weights: Path, n: int, shard: int, ig: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["XAIQ_HOME"] = str(tmp / tag)
    cmd = [sys.executable, "-m", "bench.dataplane_probe", "--dataset", str(dataset)]
    cmd += ["--weights", str(weights), "--n", str(n), "--shard", str(shard)]
    cmd += ["--store", str(tmp / tag / "artifacts"), "--ig-steps", str(ig)]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"dataplane probe exited {out.returncode}: {tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(ctx: Context) -> list[Row]:
    from bench.dataplane_probe import METHODS, make_dataset, make_weights

    small, large = ctx.pick((4, 4), (32, 64))
    shard, ig = ctx.pick(4, 16), ctx.pick(4, 16)
    with tempfile.TemporaryDirectory(prefix="xaiq-bench-dataplane-") as tmp_name:
        tmp = Path(tmp_name)
        dataset = make_dataset(tmp / "images", large)
        weights = make_weights(tmp / "resnet18-seeded.pt")
        runs = [_probe(tmp, "small", dataset, weights, small, shard, ig)]
        ctx.log(f"dataplane: {small} samples done")
        if large != small:
            runs.append(_probe(tmp, "large", dataset, weights, large, shard, ig))
            ctx.log(f"dataplane: {large} samples done")
    last = runs[-1]
    n = last["maps"] // len(METHODS)
    note = (
        f"{n} synthetic 224x224 images, random ResNet-18, {len(METHODS)} methods "
        f"(IG {ig} steps), shards of {shard}, local directory store"
    )
    per_map = last["bytes"] / last["maps"]
    rows = [
        Row(
            name="data plane: fresh ImageNet-shaped disagreement job",
            value=n / last["fresh_s"],
            unit="samples/s",
            note=note + f"; {last['rows'] / last['fresh_s']:.1f} disagreement rows/s",
            extra={"runs": runs},
        ),
        Row(
            name="data plane: bytes stored per sample and method",
            value=per_map,
            unit="bytes",
            note="float32 [224, 224] map + its .npy header; --map-dtype float16 halves it",
        ),
        Row(
            name="data plane: objects per 1,000 samples",
            value=1000 * last["objects"] / n,
            unit="objects",
            baseline=1000.0 * len(METHODS),
            baseline_name="one object per sample and method",
            note=f"one object per shard ({shard} samples) and method: 1/{shard} of the objects",
        ),
        Row(
            name="data plane: reuse speed-up of an identical second job",
            value=last["fresh_s"] / last["reuse_s"],
            unit="x",
            targets=(Target(">=", 5.0, on="value"),),
            note=f"{last['reused']} of {last['maps']} maps reused; "
            f"fresh {last['fresh_s']:.1f} s ({last['fresh_cpu_s']:.1f} s CPU), "
            f"reuse {last['reuse_s']:.1f} s ({last['reuse_cpu_s']:.1f} s CPU)",
        ),
    ]
    if len(runs) == 2:
        rows.append(
            Row(
                name=f"data plane: peak memory, {large} samples vs {small}",
                value=runs[1]["peak_bytes"] / 2**20,
                unit="MiB",
                baseline=runs[0]["peak_bytes"] / 2**20,
                baseline_name=f"{small} samples",
                targets=(Target("<=", 1.15),),
                note="VmHWM of the process running both jobs",
            )
        )
    return rows
