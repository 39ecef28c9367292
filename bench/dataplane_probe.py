"""One data-plane run in a fresh process: an ImageNet-shaped disagreement job, then the same
job again (every map reused), on a synthetic 224x224 folder dataset and a seeded random
ResNet-18 state dict.

``python -m bench.dataplane_probe --dataset DIR --weights PT --n N --store URL_OR_DIR``
prints one JSON line: ``fresh_s`` / ``reuse_s`` (wall seconds of each job, submit to end),
``fresh_cpu_s`` / ``reuse_cpu_s`` (the process's CPU seconds over all threads), ``rows``
(disagreement rows of one job), ``bytes`` and ``objects`` (what the first job put in the
store), ``maps`` (samples x methods), ``reused`` (maps the second job read back),
``peak_bytes`` (the process's resident high-water mark, VmHWM, after both jobs).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

METHODS = ["saliency", "grad_cam", "integrated_gradients"]


def make_dataset(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` smooth random 224x224 RGB PNGs in 10 class folders (ImageNet's shape, not its
    content: what is measured here is the data plane, not accuracy)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        low = rng.random((8, 8, 3))
        img = np.kron(low, np.ones((28, 28, 1))) + 0.1 * rng.standard_normal((224, 224, 3))
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i:05d}.png")
    return root


def make_weights(path: Path, seed: int = 0) -> Path:
    import torch
    import torchvision

    torch.manual_seed(seed)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def spec(dataset: Path, weights: Path, n: int, shard: int, dtype: str, ig_steps: int = 16) -> dict:
    return {
        "kind": "disagreement",
        "dataset": f"folder:{dataset}",
        "model": f"resnet18:{weights}",
        "methods": METHODS,
        "params": {"integrated_gradients": {"n_steps": ig_steps}},
        "superpixels": ["grid"],
        "n_segments": [49],
        "limit": n,
        "shard_size": shard,
        "batch_size": shard,
        "map_dtype": dtype,
    }


def _vm_hwm() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--shard", type=int, default=16)
    p.add_argument("--store", required=True)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--ig-steps", type=int, default=16)
    args = p.parse_args()
    os.environ["XAIQ_ARTIFACTS"] = args.store

    from xaiq.db.jobs import job_progress, rows_for
    from xaiq.db.session import read_session
    from xaiq.db.store import open_store
    from xaiq.scheduler.submit import submit
    from xaiq.worker.local import run_local

    s = spec(Path(args.dataset), Path(args.weights), args.n, args.shard, args.dtype, args.ig_steps)
    times, cpu, jobs = [], [], []
    for _ in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        job = submit(s, local=True).job_id
        status = run_local(job)["status"]
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if status != "succeeded":
            raise SystemExit(f"bench job {job} ended {status}")
        jobs.append(job)
    store = open_store()
    keys = store.keys(f"job-{jobs[0]}")
    size = sum(len(store.get(k)) for k in keys)
    with read_session() as session:
        rows = len(rows_for(session, "disagreements", jobs[0]))
        second = job_progress(session, jobs[1])
    print(
        json.dumps(
            {
                "fresh_s": times[0],
                "reuse_s": times[1],
                "fresh_cpu_s": cpu[0],
                "reuse_cpu_s": cpu[1],
                "rows": rows,
                "bytes": size,
                "objects": len(keys),
                "maps": args.n * len(METHODS),
                "reused": second["maps_reused"],
                "peak_bytes": _vm_hwm(),
            }
        )
    )


if __name__ == "__main__":
    main()
