"""The host allocator tuning: with it, repeated forward+backward passes reuse the pages freed
by the last one instead of mapping (and faulting in) fresh ones. Each case runs in a fresh
interpreter, since the setting is process-wide and lasts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from xaiq.xai.allocator import tune_host_allocator

PROBE = """
import json, resource
import torch
from xaiq.xai.allocator import host_allocator_tuned, tune_host_allocator
was_tuned = host_allocator_tuned()
applied = tune_host_allocator()
after = host_allocator_tuned()
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(),
    torch.nn.Flatten(), torch.nn.Linear(32 * 28 * 28, 10),
)
x = torch.randn(384, 1, 28, 28)  # 37 MiB activations: above glibc's own cap (32 MiB)
faults = []
for _ in range(8):  # one saliency-like pass each: forward, backward, free
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    xi = x.clone().requires_grad_(True)
    net(xi).sum().backward()
    del xi
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "reported": [was_tuned, after], "faults": faults}))
"""

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="the tuning applies to glibc only",
)


def probe(tuning: str) -> dict:
    env = {**os.environ, "XAIQ_MALLOC_TUNING": tuning}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_tuned_process_reuses_freed_pages_across_passes():
    layer_pages = (384 * 32 * 28 * 28 * 4) // os.sysconf("SC_PAGE_SIZE")
    untuned, tuned = probe("0"), probe("1")
    assert untuned["applied"] is False and tuned["applied"] is True
    assert untuned["reported"] == [False, False] and tuned["reported"] == [False, True]
    # untuned: each pass maps its activations afresh and faults every page in again
    assert min(untuned["faults"][-4:]) > layer_pages
    # tuned: once warm, passes run on heap pages that are already resident (a pass may
    # still grow the heap by one activation now and then)
    assert sum(tuned["faults"][-4:]) < sum(untuned["faults"][-4:]) / 4


def test_tuning_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("XAIQ_MALLOC_TUNING", "off")
    assert tune_host_allocator() is False
