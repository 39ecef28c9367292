"""Peak memory of RISE above the model's own footprint, measured in a fresh process.

``python -m bench.memprobe --n-masks 8000 --size 224 [--device cpu]`` prints one JSON line:
``model_peak`` (bytes: peak after loading the model and running one plain forward of the batch
size RISE uses -- the model's own footprint), ``rise_peak`` (peak after ``rise_saliency``) and
``extra = rise_peak - model_peak``. On CPU the peak is the process's resident high-water mark
(VmHWM); on CUDA it is ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def _vm_hwm() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n-masks", type=int, required=True)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--device", default=None)
    args = p.parse_args()

    import torch

    from bench.common import TinyNet224
    from xaiq.xai.rise import default_batch_size, rise_saliency

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    module = TinyNet224().to(device).eval()
    x = torch.rand(args.images, 3, args.size, args.size, device=device)
    t = torch.zeros(args.images, dtype=torch.long, device=device)
    bs = default_batch_size(x.shape[1:])
    with torch.no_grad():
        module(torch.rand(bs, 3, args.size, args.size, device=device))
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        model_peak = torch.cuda.max_memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        model_peak = _vm_hwm()
    start = time.perf_counter()
    sal = rise_saliency(module, x, t, n_masks=args.n_masks, seed=0)
    if cuda:
        torch.cuda.synchronize(device)
        rise_peak = max(torch.cuda.max_memory_allocated(device), model_peak)
    else:
        rise_peak = _vm_hwm()
    print(
        json.dumps(
            {
                "n_masks": args.n_masks,
                "size": args.size,
                "images": args.images,
                "batch_size": bs,
                "device": str(device),
                "model_peak": model_peak,
                "rise_peak": rise_peak,
                "extra": rise_peak - model_peak,
                "seconds": time.perf_counter() - start,
                "finite": bool(torch.isfinite(sal).all()),
            }
        )
    )


if __name__ == "__main__":
    main()
