"""Faithfulness and sanity statistics against numpy and scipy on hand-made rows."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sqlalchemy.orm import Session

from xaiq.analysis.faithfulness import faithfulness_pairs, faithfulness_stats, sanity_stats
from xaiq.analysis.intervals import mean_interval_of, wilson_interval
from xaiq.db.errors import QueryError
from xaiq.db.models import Disagreement, Faithfulness, Job, JobKind, JobStatus, SanityCheck

N = 40
METHODS = ("ig", "saliency")
CARD = {
    "card": 1,
    "kind": "disagreement",
    "seeds": {"job": 0, "rule": "per sample"},
    "faithfulness": {"substrate": "baseline", "ties": "random", "kernel": "reference"},
    "runtime": [{"device": "cpu", "model_sha256": {"digits-cnn": "ab" * 32}}],
}


def _fill(engine) -> dict:  # noqa: ANN001
    rng = np.random.default_rng(7)
    data: dict = {"faith": {}, "fd": []}
    with Session(engine) as s, s.begin():
        job = Job(
            kind=JobKind.disagreement,
            status=JobStatus.succeeded,
            spec={},
            dataset="digits",
            model="digits-cnn",
            n_samples=N,
            shard_size=8,
            protocol=CARD,
        )
        s.add(job)
        s.flush()
        data["job"] = job.id
        for i in range(N):
            for m in METHODS:
                for unit, nseg in (("pixels", 0), ("grid", 16)):
                    dele, ins = (float(x) for x in rng.uniform(0, 1, 2))
                    if m == "ig" and i == 3 and unit == "pixels":
                        dele = ins = None  # a NULL row is counted, not averaged
                    data["faith"][(i, m, unit)] = (dele, ins)
                    # random baseline: one per sample and unit; LeRF and map properties per map
                    rand = data.setdefault("rand", {}).setdefault(
                        (i, unit), tuple(float(x) for x in rng.uniform(0, 1, 2))
                    )
                    lerf = tuple(float(x) for x in rng.uniform(0, 1, 2))
                    props = data.setdefault("props", {}).setdefault(
                        (i, m), (float(rng.uniform(0, 1)), float(rng.uniform(0, 6)))
                    )
                    data.setdefault("lerf", {})[(i, m, unit)] = lerf
                    s.add(
                        Faithfulness(
                            job_id=job.id,
                            sample_index=i,
                            method=m,
                            model="digits-cnn",
                            target=1,
                            target_kind="pred",
                            unit=unit,
                            n_segments=nseg,
                            order="signed",
                            substrate="baseline",
                            step=28,
                            n_steps=28,
                            deletion_auc=dele,
                            insertion_auc=ins,
                            deletion_auc_random=rand[0],
                            insertion_auc_random=rand[1],
                            deletion_auc_lerf=lerf[0],
                            insertion_auc_lerf=lerf[1],
                            ties="random",
                            kernel="reference",
                            sparseness=props[0],
                            complexity=props[1],
                        )
                    )
            fd = float(rng.integers(0, 5)) / 4
            data["fd"].append(fd)
            s.add(
                Disagreement(
                    job_id=job.id,
                    sample_index=i,
                    method_a="ig",
                    method_b="saliency",
                    superpixels="grid",
                    n_segments=16,
                    k_frac=0.25,
                    n=16,
                    k=4,
                    feature_disagreement=fd,
                )
            )
            for order, layer in ((1, "fc"), (2, "conv")):
                for m, centre in (("ig", 0.9), ("saliency", 0.1 * (3 - order))):
                    s.add(
                        SanityCheck(
                            job_id=job.id,
                            sample_index=i,
                            method=m,
                            model="digits-cnn",
                            target=1,
                            target_kind="pred",
                            mode="cascading",
                            layer=layer,
                            layer_order=order,
                            spearman_abs=centre + rng.normal(0, 0.05),
                            spearman_signed=0.0,
                            ssim=0.5,
                            superpixels="grid",
                            n_segments=16,
                            k_frac=0.25,
                            n=16,
                            k=4,
                            rank_correlation=0.2,
                        )
                    )
    return data


def test_method_rows_keep_units_apart_and_match_numpy(engine) -> None:  # noqa: ANN001
    data = _fill(engine)
    rows = faithfulness_stats(engine, None, ["method"])
    assert [(r["method"], r["unit"]) for r in rows] == [
        ("ig", "grid"),
        ("ig", "pixels"),
        ("saliency", "grid"),
        ("saliency", "pixels"),
    ]
    for r in rows:
        vals = [data["faith"][(i, r["method"], r["unit"])] for i in range(N)]
        dele = np.array([v[0] for v in vals if v[0] is not None])
        ins = np.array([v[1] for v in vals if v[1] is not None])
        assert r["n"] == dele.size and r["nulls"] == N - dele.size
        assert r["deletion_mean"] == pytest.approx(dele.mean())
        low, high = mean_interval_of(dele)
        assert (r["deletion_low"], r["deletion_high"]) == pytest.approx((max(0, low), min(1, high)))
        assert r["score_mean"] == pytest.approx((ins - dele).mean())


def test_every_auc_is_read_against_the_random_order_and_lerf(engine) -> None:  # noqa: ANN001
    data = _fill(engine)
    for r in faithfulness_stats(engine, None, ["method"]):
        keep = [i for i in range(N) if data["faith"][(i, r["method"], r["unit"])][0] is not None]
        dele = np.array([data["faith"][(i, r["method"], r["unit"])][0] for i in keep])
        ins = np.array([data["faith"][(i, r["method"], r["unit"])][1] for i in keep])
        rand = np.array([data["rand"][(i, r["unit"])] for i in keep])
        lerf = np.array([data["lerf"][(i, r["method"], r["unit"])] for i in keep])
        assert r["n_random"] == r["n_lerf"] == len(keep)
        paired = dele - rand[:, 0]  # method - random, sample by sample
        assert r["deletion_vs_random_mean"] == pytest.approx(paired.mean())
        assert (r["deletion_vs_random_low"], r["deletion_vs_random_high"]) == pytest.approx(
            mean_interval_of(paired)
        )
        assert r["insertion_vs_random_mean"] == pytest.approx((ins - rand[:, 1]).mean())
        assert r["deletion_gap_mean"] == pytest.approx((lerf[:, 0] - dele).mean())  # LeRF - MoRF
        assert r["insertion_gap_mean"] == pytest.approx((ins - lerf[:, 1]).mean())  # MoRF - LeRF
        props = np.array([data["props"][(i, r["method"])] for i in range(N)])
        all_rows = r["unit"] == "grid" or r["method"] != "ig"  # the NULL row keeps its props
        if all_rows:
            assert r["sparseness_mean"] == pytest.approx(props[:, 0].mean())


def test_map_properties_per_method_match_numpy(engine) -> None:  # noqa: ANN001
    from xaiq.analysis.map_stats import map_property_stats

    data = _fill(engine)
    rows = map_property_stats(engine, None)
    assert [(r["method"], r["n"]) for r in rows] == [("ig", N), ("saliency", N)]
    for r in rows:
        props = np.array([data["props"][(i, r["method"])] for i in range(N)])
        assert r["sparseness_mean"] == pytest.approx(props[:, 0].mean())
        assert (r["complexity_low"], r["complexity_high"]) == pytest.approx(
            mean_interval_of(props[:, 1])
        )
        keep = [i for i in range(N) if data["faith"][(i, r["method"], "pixels")][0] is not None]
        score = [
            data["faith"][(i, r["method"], "pixels")][1]
            - data["faith"][(i, r["method"], "pixels")][0]
            for i in keep
        ]
        want = stats.spearmanr(props[keep, 0], score).statistic
        assert r["rho_sparseness_score"] == pytest.approx(want)


def test_an_order_that_varies_becomes_a_group_instead_of_being_pooled(engine) -> None:  # noqa: ANN001
    from sqlalchemy import update

    _fill(engine)
    with engine.begin() as conn:
        conn.execute(update(Faithfulness).where(Faithfulness.sample_index < 10).values(order="abs"))
    rows = faithfulness_stats(engine, None, ["method"])
    assert {
        (r["method"], r["order"], r["unit"]): r["n"] for r in rows if r["method"] == "saliency"
    } == {
        ("saliency", "abs", "grid"): 10,
        ("saliency", "abs", "pixels"): 10,
        ("saliency", "signed", "grid"): 30,
        ("saliency", "signed", "pixels"): 30,
    }


def test_the_pair_view_counts_wins_and_correlates_disagreement_with_the_gap(engine) -> None:  # noqa: ANN001
    data = _fill(engine)
    (row,) = faithfulness_pairs(engine, None, metric="feature_disagreement", criterion="score")
    score = {k: v[1] - v[0] for k, v in data["faith"].items() if v[0] is not None}
    keep = [i for i in range(N) if (i, "ig", "pixels") in score]
    a = np.array([score[(i, "ig", "pixels")] for i in keep])
    b = np.array([score[(i, "saliency", "pixels")] for i in keep])
    fd = np.array([data["fd"][i] for i in keep])
    assert row["n"] == len(keep) == N - 1
    assert row["a_more_faithful"] == pytest.approx(np.mean(a > b))
    assert (row["a_low"], row["a_high"]) == pytest.approx(
        wilson_interval(int(np.sum(a > b)), N - 1)
    )
    want = stats.spearmanr(fd, np.abs(a - b))
    assert row["rho_disagreement_gap"] == pytest.approx(want.statistic)
    assert row["p_value"] == pytest.approx(want.pvalue)
    by_deletion = faithfulness_pairs(engine, None, criterion="deletion", unit="superpixels")[0]
    da = np.array([data["faith"][(i, "ig", "grid")][0] for i in range(N)])
    db = np.array([data["faith"][(i, "saliency", "grid")][0] for i in range(N)])
    assert by_deletion["n"] == N and by_deletion["a_more_faithful"] == pytest.approx(
        np.mean(da < db)
    )


def test_a_map_that_survives_randomisation_fails_the_check(engine) -> None:  # noqa: ANN001
    _fill(engine)
    per_layer, verdicts = sanity_stats(engine, None)
    assert [(r["method"], r["layer_order"], r["layer"]) for r in per_layer] == [
        ("ig", 1, "fc"),
        ("ig", 2, "conv"),
        ("saliency", 1, "fc"),
        ("saliency", 2, "conv"),
    ]
    assert {v["method"]: (v["last_layer"], v["verdict"]) for v in verdicts} == {
        "ig": ("conv", "fail"),
        "saliency": ("conv", "pass"),
    }
    loose = {v["method"]: v["verdict"] for v in sanity_stats(engine, None, threshold=0.95)[1]}
    assert loose == {"ig": "pass", "saliency": "pass"}


def test_unknown_words_are_refused(engine) -> None:  # noqa: ANN001
    with pytest.raises(QueryError, match="unknown group-by key 'colour'"):
        faithfulness_stats(engine, None, ["colour"])
    with pytest.raises(QueryError, match="unknown criterion 'speed'"):
        faithfulness_pairs(engine, None, criterion="speed")


def test_the_cli_prints_the_pair_view_and_the_verdicts_as_json(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from xaiq.db.session import dispose_engines, get_engine

    monkeypatch.setenv("XAIQ_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XAIQ_DB_URL", raising=False)
    _fill(get_engine())
    dispose_engines()

    def xaiq(*args: str) -> subprocess.CompletedProcess:
        code = "from xaiq.cli.main import run; run()"
        return subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
        )

    pairs = xaiq("stats", "faithfulness", "--pairs", "--format", "json")
    assert pairs.returncode == 0, pairs.stderr
    assert [r["method_a"] for r in json.loads(pairs.stdout)] == ["ig"]
    verdicts = xaiq("stats", "sanity", "--verdicts", "--format", "json")
    assert {r["method"]: r["verdict"] for r in json.loads(verdicts.stdout)} == {
        "ig": "fail",
        "saliency": "pass",
    }
    maps = xaiq("stats", "maps", "--format", "json")
    assert maps.returncode == 0, maps.stderr
    assert [(r["method"], r["n"]) for r in json.loads(maps.stdout)] == [("ig", N), ("saliency", N)]
    table = xaiq("stats", "faithfulness")
    assert table.returncode == 0 and "random" in table.stdout and "LeRF" in table.stdout
    status = xaiq("status", "1")
    assert status.returncode == 0, status.stderr
    assert "protocol" in status.stdout + status.stderr and "ties=random" in status.stdout
    out = tmp_path / "card.json"
    exported = xaiq("export", "1", "--what", "protocol", "--format", "json", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert json.loads(out.read_text()) == CARD
    bad = xaiq("stats", "faithfulness", "--pairs", "--by", "speed")
    assert bad.returncode == 2 and "error: unknown criterion 'speed'" in bad.stderr


def test_the_dataframe_api_carries_the_faithfulness_tables(engine) -> None:  # noqa: ANN001
    import xaiq.results

    data = _fill(engine)
    res = xaiq.results.open(engine)
    frame = res.faithfulness()
    assert len(frame) == N * 2 * 2 and {"deletion_auc", "label", "key"} <= set(frame.columns)
    assert len(res.faithfulness_stats()) == 4
    assert res.faithfulness_pairs(criterion="insertion").loc[0, "n"] == N - 1
    assert list(res.map_stats().method) == ["ig", "saliency"]
    assert res.protocol(data["job"]) == CARD
    cards = res.protocols()
    assert list(cards.job) == [data["job"]] and "faithfulness.ties" in cards.columns
    per_layer = res.sanity()
    assert isinstance(per_layer, pd.DataFrame) and len(per_layer) > 0
    verdicts = per_layer.attrs["verdicts"]
    pd.testing.assert_frame_equal(verdicts, res.sanity_verdicts())
    assert dict(zip(verdicts.method, verdicts.verdict, strict=True)) == {
        "ig": "fail",
        "saliency": "pass",
    }


def test_the_report_has_the_faithfulness_and_sanity_sections(engine, tmp_path) -> None:  # noqa: ANN001
    from xaiq.report import build_report

    data = _fill(engine)
    page = build_report(engine, data["job"], tmp_path / "r.html").read_text()
    assert "<h2>Faithfulness: deletion and insertion</h2>" in page
    assert "<h2>Sanity check: model randomisation</h2>" in page
    assert page.count(">fail</td>") == 1 and page.count(">pass</td>") == 1
    assert 'alt="Spearman correlation per randomised layer"' in page
    assert "<h2>Protocol card</h2>" in page and "faithfulness.ties" in page
    assert "sparseness" in page and "vs random" in page
