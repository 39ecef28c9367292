"""Attack jobs that compare guides: per-strategy rows, ``stats attack -g strategy``, report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from xaiq.analysis.intervals import wilson_interval
from xaiq.worker.artifacts import load_array

STRATEGIES = "least:saliency,least:grad_cam,random,central"


def _xaiq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("xaiq")
    return subprocess.run(
        [str(exe), *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def compare_job(tmp_path_factory):
    root = tmp_path_factory.mktemp("attack-compare")
    env = {
        **os.environ,
        "XAIQ_DB_URL": f"sqlite:///{root / 'x.db'}",
        "XAIQ_ARTIFACTS": str(root / "art"),
    }
    env.pop("XAIQ_BROKER_URL", None)
    args = ["submit", "attack", "-d", "digits", "-m", "digits-cnn-weak", "--limit", "40"]
    args += ["--shard-size", "30", "--attack-param", f"strategies={STRATEGIES}"]
    args += ["--attack-param", "compare=true", "--attack-param", "max_iters=15"]
    args += ["--param", "saliency.abs=false"]
    done = _xaiq(env, *args)
    assert done.returncode == 0, done.stderr
    return env, root


def _rows(env, sql):
    engine = create_engine(env["XAIQ_DB_URL"])
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql))]


def test_every_strategy_attacks_every_misclassified_sample_once(compare_job):
    env, root = compare_job
    attacked = _rows(env, "select sample_index from attack_results order by sample_index")
    rows = _rows(env, "select * from attack_strategy_results order by sample_index, position")
    names = STRATEGIES.split(",")
    assert len(attacked) >= 2
    assert len(rows) == len(attacked) * len(names)
    for i, a in enumerate(attacked):
        mine = rows[i * len(names) : (i + 1) * len(names)]
        assert [r["strategy"] for r in mine] == names
        assert {r["sample_index"] for r in mine} == {a["sample_index"]}
    for r in rows:
        assert (r["first_success_iter"] is not None) == bool(r["success"])
        assert r["iterations"] == (r["first_success_iter"] if r["success"] else 15)
        image = load_array(r["artifact"], r["checksum"], root / "art")
        assert image.shape == (1, 28, 28)
        assert r["l0"] > 0  # a candidate the strategy found, never the bare original
        assert 0 < r["l0"] <= 313  # never beyond the budget b = floor(0.4 * 28 * 28)
        # valid by default: clamped into [0, 1], and the row says so
        assert r["out_of_domain"] == 0.0 and r["max_excursion"] == 0.0
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert r["tied_pixels"] is not None and 0 <= r["tied_pixels"] <= 313
        if r["strategy"] in ("random", "central"):
            assert r["tied_pixels"] == 0
    diag = _rows(env, "select grad_norm_logit, grad_norm_logprob, confidence from attack_results")
    assert all(d["grad_norm_logit"] > 0 and 0 < d["confidence"] <= 1 for d in diag)


def test_stats_by_strategy_give_each_rate_with_its_wilson_interval(compare_job):
    env, _ = compare_job
    done = _xaiq(env, "stats", "attack", "-g", "strategy", "--format", "json")
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert [s["strategy"] for s in stats] == STRATEGIES.split(",")
    rows = _rows(env, "select strategy, success, first_success_iter from attack_strategy_results")
    for s in stats:
        mine = [r for r in rows if r["strategy"] == s["strategy"]]
        ok = sum(1 for r in mine if r["success"])
        assert (s["n"], s["successes"], s["successes_out_of_domain"]) == (len(mine), ok, 0)
        assert s["mean_out_of_domain"] == 0.0 and s["max_excursion"] == 0.0
        assert (s["success_low"], s["success_high"]) == pytest.approx(
            wilson_interval(ok, len(mine))
        )
        firsts = [r["first_success_iter"] for r in mine if r["success"]]
        assert s["median_first_success_iter"] == (float(np.median(firsts)) if firsts else None)
    by_grad = _xaiq(env, "stats", "attack", "-g", "strategy,grad_decade", "--format", "json")
    assert by_grad.returncode == 0, by_grad.stderr
    assert sum(r["n"] for r in json.loads(by_grad.stdout)) == len(rows)
    bad = _xaiq(env, "stats", "attack", "-g", "strategy,colour")
    assert bad.returncode == 2 and "colour" in bad.stderr


def test_the_report_plots_success_against_iterations_and_the_reliability_diagram(compare_job):
    env, root = compare_job
    out = root / "report.html"
    done = _xaiq(env, "report", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert 'alt="success rate against iterations"' in page
    assert 'alt="reliability diagram"' in page
    assert "Wilson" in page and "least:grad_cam" in page
    # a --compare job leads with its strategies, and says what it is doing on stderr
    assert page.index("Per strategy") < page.index("first listed strategy that succeeded")
    assert "reading job 1..." in done.stderr and "before / after figures" in done.stderr


def test_every_strategy_row_is_exported_and_read_as_a_dataframe(compare_job):
    env, root = compare_job
    out = root / "strategies.csv"
    done = _xaiq(env, "export", "1", "--what", "attack_strategies", "--out", str(out))
    assert done.returncode == 0, done.stderr
    import pandas as pd

    import xaiq.results

    exported = pd.read_csv(out)
    frame = xaiq.results.open(env["XAIQ_DB_URL"]).attack_strategies(1)
    rows = _rows(env, "select strategy, success from attack_strategy_results")
    assert len(exported) == len(frame) == len(rows)
    assert list(dict.fromkeys(frame.strategy)) == STRATEGIES.split(",")
    assert sorted(exported.strategy) == sorted(r["strategy"] for r in rows)
    assert {"label", "correct", "confidence"} <= set(frame.columns)  # sample fields joined


def test_an_unclamped_success_is_never_shown_as_a_plain_success(tmp_path):
    env = {
        **os.environ,
        "XAIQ_DB_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "XAIQ_ARTIFACTS": str(tmp_path / "art"),
    }
    env.pop("XAIQ_BROKER_URL", None)
    args = ["submit", "attack", "-d", "digits", "-m", "digits-cnn-weak", "--limit", "40"]
    args += ["--strategies", "central", "--max-iters", "150", "--preset", "seed", "--json"]
    done = _xaiq(env, *args)
    assert done.returncode == 0, done.stderr
    rows = _rows(env, "select * from attack_strategy_results")
    raw = [r for r in rows if r["success"]]
    assert raw, "the source lab's setting repairs some digit with out-of-domain pixels"
    for r in rows:  # sigma-1 noise on [0, 1] images: every moved image leaves the domain
        image = load_array(r["artifact"], r["checksum"], tmp_path / "art")
        assert r["out_of_domain"] > 0
        assert r["max_excursion"] == pytest.approx(
            float(np.maximum(-image, image - 1.0).max()), rel=1e-6
        )
    stats = json.loads(_xaiq(env, "stats", "attack", "-g", "strategy", "--format", "json").stdout)
    assert (stats[0]["successes"], stats[0]["successes_out_of_domain"]) == (0, len(raw))
    assert stats[0]["success_rate"] == 0.0
    per_sample = json.loads(_xaiq(env, "stats", "attack", "--format", "json").stdout)[0]
    assert per_sample["successes"] == 0 and per_sample["successes_out_of_domain"] == len(raw)
    assert "central (out of domain)" in per_sample["won_by"]
    out = tmp_path / "report.html"
    assert _xaiq(env, "report", "1", "--out", str(out)).returncode == 0
    page = out.read_text()
    assert "success (out of domain)" in page
    assert ": success (" in page and ": success," not in page


def test_calibration_error_is_the_count_weighted_gap_between_accuracy_and_confidence():
    from xaiq.report.attack_guides import calibration

    conf = [0.05, 0.15, 0.95, 0.95, 0.99, 1.0]
    correct = [False, True, True, False, True, True]
    cal = calibration(conf, correct, n_bins=10)
    assert cal["count"] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 4]  # 1.0 falls in the last bin
    # bins: |0 - .05| * 1/6 + |1 - .15| * 1/6 + |.75 - .9725| * 4/6
    expected = 0.05 / 6 + 0.85 / 6 + abs(0.75 - (0.95 + 0.95 + 0.99 + 1.0) / 4) * 4 / 6
    assert cal["ece"] == pytest.approx(expected)
    assert cal["accuracy"][2] is None
    assert calibration([1.0, 1.0], [True, True])["ece"] == 0.0
    assert calibration([], [])["ece"] is None
