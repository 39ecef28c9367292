"""Attack guide maps through the map cache, run as users run it (the installed ``xaiq``
script): a second identical attack job reuses every guide map and gives the same rows,
``--recompute`` computes them again identically, and a map for another class or other
parameters is never taken; an attribution job's maps serve as guides."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xaiq.db.jobs import rows_for
from xaiq.db.session import dispose_engines, read_session
from xaiq.worker.artifacts import load_array
from xaiq.xai.digits import digits_arrays

ROOT = Path(__file__).resolve().parents[2]
N = 8
ATTACK = [
    "submit", "attack", "-d", "digits", "-m", "digits-cnn-weak", "--mode", "untargeted",
    "--strategies", "rise-least,least:saliency", "--compare", "--n-masks", "64",
    "--max-iters", "8", "--candidates", "2", "--limit", str(N), "--shard-size", "4",
    "--json",
]  # fmt: skip
METHODS = ("rise", "saliency")
VOLATILE = {"job_id", "artifact", "checksum"}


def _script() -> str:
    beside = Path(sys.executable).with_name("xaiq")
    found = str(beside) if beside.exists() else shutil.which("xaiq")
    if found is None:
        pytest.fail("the xaiq console script is not installed (run `make install`)")
    return found


def xaiq(home: Path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XAIQ_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["XAIQ_HOME"] = str(home)
    proc = subprocess.run([_script(), *args], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "succeeded", out
    return out


def rows(job: int, table: str) -> list[dict]:
    with read_session() as session:
        got = rows_for(session, table, job)
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in got]


def maps(job: int) -> dict[tuple[int, str], np.ndarray]:
    with read_session() as session:
        got = rows_for(session, "attributions", job)
    return {(r["sample_index"], r["method"]): load_array(r["artifact"], r["checksum"]) for r in got}


def moved(job: int) -> set[int]:
    """The samples the search ran on (not already at its goal)."""
    return {r["sample_index"] for r in rows(job, "attack_results") if r["iterations"]}


def counts(progress: dict) -> tuple[int, int]:
    return progress["maps_computed"], progress["maps_reused"]


def same_attack(a: int, b: int) -> None:
    for table in ("attack_results", "attack_strategy_results", "samples"):
        assert rows(a, table) == rows(b, table), table
    with read_session() as session:
        images = {
            job: [
                load_array(r["artifact"], r["checksum"])
                for r in rows_for(session, "attack_strategy_results", job)
            ]
            for job in (a, b)
        }
    for x, y in zip(images[a], images[b], strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow  # six CLI processes (each imports torch)
def test_a_second_attack_job_reuses_every_guide_map_and_recompute_gives_the_same(home) -> None:  # noqa: ANN001
    first = xaiq(home, *ATTACK)
    # --compare: every guide for every sample the search runs on
    ran = moved(first["job"])
    assert len(ran) >= N // 2
    n_maps = len(ran) * len(METHODS)
    assert counts(first) == (n_maps, 0)
    guides = rows(first["job"], "attributions")
    assert sorted((r["sample_index"], r["method"]) for r in guides) == sorted(
        (i, m) for i in ran for m in METHODS
    )
    _, labels = digits_arrays()
    # untargeted: the guide explains the true class it moves away from
    assert all(r["target"] == int(labels[r["sample_index"]]) for r in guides)
    assert all(r["target_kind"] == "label" and r["reused"] is False for r in guides)

    second = xaiq(home, *ATTACK)
    assert counts(second) == (0, n_maps)
    same_attack(first["job"], second["job"])
    assert rows(second["job"], "attributions") == [{**r, "reused": True} for r in guides]
    a, b = maps(first["job"]), maps(second["job"])
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])

    again = xaiq(home, *ATTACK, "--recompute")
    assert counts(again) == (n_maps, 0)
    same_attack(first["job"], again["job"])
    c = maps(again["job"])
    for k in a:
        np.testing.assert_array_equal(a[k], c[k])

    # other RISE parameters: RISE maps are computed, the saliency maps are not affected
    masks = xaiq(home, *[("96" if v == "64" else v) for v in ATTACK])
    assert counts(masks) == (len(ran), len(ran))
    assert {r["method"] for r in rows(masks["job"], "attributions") if not r["reused"]} == {"rise"}

    # another goal class: a map explains its goal class, so only a sample whose label is
    # that class could have its map (a sample already predicted as the goal needs none)
    goal = (int(labels[0]) + 1) % 10
    targeted = [v if v != "untargeted" else "targeted" for v in ATTACK]
    other = xaiq(home, *targeted, "--target", str(goal))
    got = rows(other["job"], "attributions")
    assert {r["sample_index"] for r in got} == moved(other["job"])
    assert counts(other) == (
        sum(not r["reused"] for r in got),
        sum(r["reused"] for r in got),
    )
    for r in got:
        assert r["target"] == goal and r["target_kind"] == "class"
        assert r["reused"] == (int(labels[r["sample_index"]]) == goal)
    assert any(not r["reused"] for r in got)
    dispose_engines()


def test_an_attribution_jobs_maps_guide_an_attack_and_a_chain_records_only_what_it_used(
    home,  # noqa: ANN001
) -> None:
    from xaiq.scheduler.submit import submit
    from xaiq.worker.local import run_local

    attribution = {
        "kind": "attribution",
        "dataset": "digits",
        "model": "digits-cnn-weak",
        "methods": ["saliency"],
        "target": "label",
        "limit": N,
        "shard_size": 4,
    }
    source = submit(attribution, local=True).job_id
    assert run_local(source)["status"] == "succeeded"
    attack = {
        "kind": "attack",
        "dataset": "digits",
        "model": "digits-cnn-weak",
        "attack": {
            "mode": "untargeted",
            "strategies": ["least:saliency", "central"],
            "max_iters": 4,
            "candidates": 1,
        },
        "limit": N,
        "shard_size": 4,
    }
    job = submit(attack, local=True).job_id
    progress = run_local(job)
    assert progress["status"] == "succeeded"
    # the attribution job's label maps serve every sample the search moved (one already
    # misclassified is at the goal of an untargeted attack and needs no guide)
    assert counts(progress) == (0, len(moved(job))) and len(moved(job)) >= N // 2
    src = {r["sample_index"]: r for r in rows(source, "attributions")}
    for r in rows(job, "attributions"):
        assert r["map_key"] == src[r["sample_index"]]["map_key"] and r["reused"] is True

    # in a chain a later guide is made only for samples the earlier strategy did not move;
    # the job records exactly those (central is no guide, and rise-least runs second here)
    chain = {
        **attack,
        "attack": {**attack["attack"], "strategies": ["central", "rise-least"], "n_masks": 32},
    }
    job2 = submit(chain, local=True).job_id
    progress = run_local(job2)
    needed = {
        r["sample_index"]
        for r in rows(job2, "attack_strategy_results")
        if r["strategy"] == "rise-least"
    }
    got = rows(job2, "attributions")
    assert {r["sample_index"] for r in got} == needed
    assert all(r["method"] == "rise" for r in got)
    assert counts(progress) == (len(needed), 0)
    dispose_engines()
