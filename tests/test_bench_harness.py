"""The benchmark harness itself: ratio arithmetic, targets, skip/error rows, JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.harness import (
    Context,
    Row,
    Skip,
    Target,
    Timing,
    markdown_table,
    measure_interleaved,
    rate_row,
    run_suite,
    selected_modules,
)


def test_ratio_is_value_over_baseline_and_targets_decide_pass_or_miss() -> None:
    row = Row(name="r", value=3.0, baseline=4.0, targets=(Target(">=", 0.7),))
    assert row.ratio == pytest.approx(0.75)
    assert row.status == "pass"
    row.targets = (Target(">=", 0.8),)
    assert row.status == "miss"
    row.targets = (Target("<=", 2.5, on="value"),)
    assert row.status == "miss"
    row.targets = (Target("<=", -0.5, on="delta"), Target("<=", 3.0, on="value"))
    assert row.status == "pass"  # delta = 3 - 4 = -1 <= -0.5 and value 3 <= 3
    row.value = 3.5
    assert row.status == "miss"  # delta -0.5 still passes, value 3.5 > 3 does not
    assert Row(name="no targets", value=1.0, baseline=2.0).status == "info"
    assert Row(name="zero baseline", value=1.0, baseline=0.0).ratio is None


def test_rate_row_divides_work_by_the_median_time() -> None:
    lib = Timing((0.5, 1.0, 4.0))  # median 1.0
    base = Timing((2.0, 2.0, 3.0))  # median 2.0
    row = rate_row(
        "r", 10, lib, 5, base, unit="x/s", baseline_name="b", targets=(Target(">=", 3.9),)
    )
    assert row.value == pytest.approx(10.0)
    assert row.baseline == pytest.approx(2.5)
    assert row.ratio == pytest.approx(4.0)
    assert row.status == "pass"
    assert lib.spread == pytest.approx(1.75)


def test_a_rows_spread_is_reported_per_repetition_in_the_json_and_the_table() -> None:
    lib = Timing((1.0, 2.0, 4.0))  # 10 units of work: 10, 5, 2.5 per second
    base = Timing((2.0, 2.0, 5.0))  # 5 units: 2.5, 2.5, 1 per second
    row = rate_row("r", 10, lib, 5, base, unit="x/s", baseline_name="b")
    d = row.spread_detail()
    assert d is not None and d["reps"] == 3
    assert d["value"] == pytest.approx({"min": 2.5, "median": 5.0, "max": 10.0})
    assert d["baseline"] == pytest.approx({"min": 1.0, "median": 2.5, "max": 2.5})
    # per round: 10/2.5, 5/2.5, 2.5/1 -- not min(value)/max(baseline)
    assert d["ratio"] == pytest.approx({"min": 2.0, "median": 2.5, "max": 4.0})
    assert d["relative_half_range"] == pytest.approx(0.75)
    assert row.to_json()["spread_detail"] == d
    assert row.spread_text() == "±75%, ratio 2-4 (3 reps)"
    # a row in seconds takes the times as they are; the ratio is value over baseline
    secs = Row(
        name="s",
        value=2.0,
        unit="s",
        baseline=1.0,
        extra={"seconds": [1.0, 2.0, 3.0, 4.0, 5.0], "baseline_seconds": [1.0] * 5},
    )
    d = secs.spread_detail()
    assert d is not None and d["ratio"]["max"] == pytest.approx(5.0)
    assert d["relative_iqr"] == pytest.approx((4.5 - 1.5) / 3.0)  # quartiles of 1..5
    one = Row(name="1", value=1.0, unit="s", extra={"seconds": [1.0]})
    assert one.spread_text() == "1 run"
    assert Row(name="mem", value=3.0, unit="MiB").spread_detail() is None
    result = run_suite([("m", lambda ctx: [row, one])], Context(device="cpu"))
    table = markdown_table(result)
    assert "| spread |" in table and "ratio 2-4 (3 reps)" in table and "1 run" in table


def test_interleaved_timing_runs_warmup_then_alternates() -> None:
    calls: list[str] = []
    tm = measure_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=1, reps=3
    )
    assert calls == ["a", "b"] * 4
    assert len(tm["a"].samples) == len(tm["b"].samples) == 3
    with pytest.raises(ValueError, match="reps"):
        measure_interleaved({"a": lambda: None}, reps=0)


def _fake_modules():
    def tiny(ctx: Context) -> list[Row]:
        data = list(range(20_000, 0, -1))
        tm = ctx.time({"fast": lambda: sorted(data), "slow": lambda: sorted(data * 4)})
        return [
            rate_row(
                "sorting one copy vs four",
                1,
                tm["fast"],
                1,
                tm["slow"],
                unit="calls/s",
                baseline_name="four copies",
                targets=(Target(">=", 1),),
            )
        ]

    def missing(ctx: Context) -> list[Row]:
        raise Skip("xaiq.xai.nothing has no frobnicate yet")

    def broken(ctx: Context) -> list[Row]:
        raise ZeroDivisionError("division by zero")

    return [("tiny", tiny), ("missing", missing), ("broken", broken)]


def test_quick_suite_writes_json_rows_with_skips_and_errors(tmp_path: Path) -> None:
    ctx = Context(quick=True, device="cpu", reps=2)
    result = run_suite(_fake_modules(), ctx)
    out = tmp_path / "results.json"
    result.write(out)
    data = json.loads(out.read_text())
    assert data["meta"]["quick"] is True and data["meta"]["reps"] == 2
    assert set(data["meta"]["module_seconds"]) == {"tiny", "missing", "broken"}
    rows = {r["name"]: r for r in data["rows"]}
    tiny = rows["sorting one copy vs four"]
    assert tiny["module"] == "tiny"
    assert tiny["ratio"] == pytest.approx(tiny["value"] / tiny["baseline"])
    assert tiny["status"] == "pass" and tiny["targets"][0]["met"] is True
    assert len(tiny["extra"]["seconds"]) == 2
    assert rows["missing"]["status"] == "skipped"
    assert rows["missing"]["value"] is None and "frobnicate" in rows["missing"]["skipped"]
    assert rows["broken"]["status"] == "error" and "ZeroDivisionError" in rows["broken"]["error"]
    table = markdown_table(result)
    assert "skipped: xaiq.xai.nothing has no frobnicate yet" in table
    assert table.count("\n") == 2 + len(result.rows) - 1


def test_only_selects_modules_by_name_and_rows_by_substring() -> None:
    modules = _fake_modules()
    assert selected_modules(modules, ["missing"]) == ["missing"]
    assert selected_modules(modules, ["sorting"]) == ["tiny", "missing", "broken"]
    ctx = Context(device="cpu", reps=1, warmup=0, filters=("four",))
    result = run_suite(modules, ctx)
    # a module that crashed is shown even when the filter selects none of its rows: a typo
    # in a bench must not read as "nothing to run"
    assert [r.name for r in result.rows] == ["sorting one copy vs four", "broken"]
    assert result.rows[1].error


def test_make_bench_runs_one_real_row_in_quick_mode(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code = main(["--quick", "--reps", "2", "--only", "Grad-CAM digits-cnn", "--out", str(out)])
    data = json.loads(out.read_text())
    assert code == 0
    assert [r["module"] for r in data["rows"]] == ["explainers"]
    row = data["rows"][0]
    assert row["name"].startswith("Grad-CAM digits-cnn")
    if row["status"] != "skipped":
        assert row["unit"] == "img/s" and row["value"] > 0 and row["baseline"] > 0
        assert row["ratio"] == pytest.approx(row["value"] / row["baseline"])
        assert row["status"] in ("pass", "miss")


def test_source_way_baseline_computes_what_the_library_computes() -> None:
    """The disagreement baseline does the same work: same superpixel means, same metrics."""
    import numpy as np

    from bench.baselines.source_pipeline import segment_means_loop, source_metrics
    from xaiq.xai.metrics import compare_vectors
    from xaiq.xai.superpixels import segment_means

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 12, size=(16, 16))
    saliency = rng.standard_normal((16, 16))
    loop = segment_means_loop(saliency, labels)
    assert np.allclose(loop, segment_means(saliency[None], labels[None])[0])
    a, b = rng.standard_normal(60), rng.standard_normal(60)
    b[:5] = a[:5]  # some shared top features
    ours, lib = source_metrics(list(a), list(b), 0.1), compare_vectors(a, b, 0.1)
    for name in ("feature_disagreement", "sign_disagreement", "euclidean", "euclidean_abs"):
        assert ours[name] == pytest.approx(lib[name]), name


def test_naive_rise_masks_match_the_library_geometry() -> None:
    """Naive masks are skimage resizes of a random grid: values in [0, 1], mean near p1."""
    import numpy as np

    from bench.baselines.naive_rise import generate_masks_naive

    masks = generate_masks_naive(200, 7, 0.5, (28, 28), seed=1)
    assert masks.shape == (200, 28, 28) and masks.dtype == np.float32
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    assert abs(float(masks.mean()) - 0.5) < 0.05


def test_recorded_forwards_replay_the_very_batches_a_call_fed_the_model() -> None:
    import torch

    from bench.baselines.limits import RecordedForwards

    seen: list[torch.Tensor] = []

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.clone())
            return x.sum(dim=(1, 2, 3))

    module = Probe()
    batches = [torch.full((n, 1, 2, 2), float(n)) for n in (3, 5, 2)]

    def call() -> None:
        for b in batches:
            module(b * 2)

    rec = RecordedForwards(module, call, cap_bytes=10**9)
    assert rec.sizes == [3, 5, 2] and rec.rows == 10
    seen.clear()
    rec.replay()
    assert [s.tolist() for s in seen] == [(b * 2).tolist() for b in batches]

    # a cap keeps the first batches (at least one) and the replay cycles through them
    small = RecordedForwards(module, call, cap_bytes=3 * 4 * 4)
    assert len(small.batches) == 1 and small.rows == 10 and small.replay_rows == 9
    seen.clear()
    small.replay()
    assert [s.shape[0] for s in seen] == [3, 3, 3]
    assert not module._forward_pre_hooks  # the recording hook is gone


def test_a_reservoir_recording_samples_the_whole_call_within_its_cap() -> None:
    import torch

    from bench.baselines.limits import RecordedForwards

    module = torch.nn.Identity()

    def call() -> None:  # 200 one-row batches, each filled with its index
        for i in range(200):
            module(torch.full((1, 1, 2, 2), float(i)))

    first = RecordedForwards(module, call, cap_bytes=10 * 16)
    sample = RecordedForwards(module, call, cap_bytes=10 * 16, reservoir=True)
    kept = sorted(int(b[0, 0, 0, 0]) for b in sample.batches)
    assert [int(b[0, 0, 0, 0]) for b in first.batches] == list(range(10))
    assert len(kept) == 10 and len(set(kept)) == 10 and max(kept) >= 100  # later ones too
    assert sample.rows == 200
    again = RecordedForwards(module, call, cap_bytes=10 * 16, reservoir=True)
    assert sorted(int(b[0, 0, 0, 0]) for b in again.batches) == kept  # seeded
