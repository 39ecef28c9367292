"""Every aggregate of ``disagreement_stats`` / ``attack_stats`` against a plain Python/numpy
computation over the same rows, on SQLite and PostgreSQL (NULLs and ties included)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy.orm import Session

from xaiq.analysis.queries import DISAGREEMENT_KEYS, attack_stats, disagreement_stats
from xaiq.analysis.summary import STAT_COLUMNS
from xaiq.db.errors import NotFoundError, QueryError
from xaiq.db.models import METRIC_COLUMNS, Disagreement, Job, JobKind, JobStatus


def _key(store, d: dict, name: str):
    sample = store.samples.get((d["job_id"], d["sample_index"]), {})
    job = store.jobs[d["job_id"]]
    return {
        "pair": f"{d.get('method_a')} vs {d.get('method_b')}",
        "label": sample.get("label"),
        "pred": sample.get("pred"),
        "correct": sample.get("correct"),
        "model": job["model"],
        "dataset": job["dataset"],
        "job": d["job_id"],
    }.get(name, d.get(name))


def _expected(values: list) -> dict:
    v = sorted(x for x in values if x is not None)
    n = len(v)
    out = {"n": n, "nulls": len(values) - n}
    if n == 0:
        return {**out, **dict.fromkeys(("mean", "std", "min", "p25", "median", "p75", "max"))}

    def q(p: float) -> float:  # linear interpolation between order statistics, by hand
        h = (n - 1) * p
        lo = math.floor(h)
        return v[lo] + (h - lo) * (v[min(lo + 1, n - 1)] - v[lo])

    mean = sum(v) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else None
    return {
        **out,
        "mean": mean,
        "std": std,
        "min": v[0],
        "p25": q(0.25),
        "median": q(0.5),
        "p75": q(0.75),
        "max": v[-1],
    }


def _check(actual: dict, expected: dict) -> None:
    for stat, want in expected.items():
        got = actual[stat]
        if want is None:
            assert got is None, stat
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), stat


@pytest.mark.parametrize(
    "keys", [[k] for k in DISAGREEMENT_KEYS] + [["pair", "label", "correct"], []]
)
def test_every_aggregate_matches_python_for_each_group_key(store, keys):
    jobs = [store.disagreement_job, store.second_job]
    rows = disagreement_stats(store.engine, jobs, keys, "all")
    _check_rows(store, rows, keys)


def _check_rows(store, rows: list[dict], keys: list[str]) -> None:
    groups: dict[tuple, list[dict]] = {}
    for d in store.disagreements:
        groups.setdefault(tuple(_key(store, d, k) for k in keys), []).append(d)
    # euclidean and euclidean_abs do not depend on k_frac: never a key of theirs
    free_groups = {
        tuple(None if k == "k_frac" else v for k, v in zip(keys, g, strict=True)) for g in groups
    }
    assert len(rows) == len(groups) * (len(METRIC_COLUMNS) - 2) + len(free_groups) * 2
    for r in rows:
        members = [
            d
            for d in store.disagreements
            if all(r[k] is None and k == "k_frac" or _key(store, d, k) == r[k] for k in keys)
        ]
        values = [d[r["metric"]] for d in members]
        expected = _expected(values)
        # the values used are ``rows``; ``n`` counts the distinct samples (dataset, index)
        _check({**r, "n": r["rows"]}, expected)
        samples = {
            (store.jobs[d["job_id"]]["dataset"], d["sample_index"])
            for d in members
            if d[r["metric"]] is not None
        }
        assert r["n"] == len(samples)


def test_job_filter_restricts_rows_to_that_job(store):
    rows = disagreement_stats(store.engine, [store.second_job], ["job"], ["euclidean"])
    assert [r["job"] for r in rows] == [store.second_job]
    members = [d for d in store.disagreements if d["job_id"] == store.second_job]
    # every pair and configuration of 7 samples pooled: 7 samples, 42 rows
    _check({**rows[0], "n": rows[0]["rows"]}, _expected([d["euclidean"] for d in members]))
    assert rows[0]["n"] == 7


def _insert(engine, values: list[float | None], pair=("a", "b")) -> int:
    with Session(engine) as s:
        job = Job(
            kind=JobKind.disagreement,
            status=JobStatus.succeeded,
            spec={},
            dataset="d",
            model="m",
            n_samples=len(values),
            shard_size=1,
        )
        s.add(job)
        s.flush()
        for i, v in enumerate(values):
            s.add(
                Disagreement(
                    job_id=job.id,
                    sample_index=i,
                    method_a=pair[0],
                    method_b=pair[1],
                    superpixels="grid",
                    n_segments=4,
                    k_frac=0.5,
                    n=4,
                    k=2,
                    euclidean=v,
                )
            )
        s.commit()
        return job.id


def test_hand_computed_median_with_ties_and_nulls(engine):
    job = _insert(engine, [0.5, None, 0.25, 1.0, 0.25, None])
    (row,) = disagreement_stats(engine, [job], ["pair"], ["euclidean"])
    # sorted 0.25 0.25 0.5 1.0: median = (0.25 + 0.5) / 2; p25 at h=0.75 -> 0.25;
    # p75 at h=2.25 -> 0.5 + 0.25 * 0.5; mean 0.5; sample variance (0.0625*2 + 0 + 0.25) / 3
    assert (row["n"], row["nulls"]) == (4, 2)
    assert row["median"] == pytest.approx(0.375)
    assert row["p25"] == pytest.approx(0.25)
    assert row["p75"] == pytest.approx(0.625)
    assert row["mean"] == pytest.approx(0.5)
    assert row["std"] == pytest.approx(math.sqrt(0.375 / 3))
    assert (row["min"], row["max"]) == (0.25, 1.0)


def test_single_value_has_null_std_and_all_null_group_has_only_counts(engine):
    one = _insert(engine, [0.75], ("x", "y"))
    none = _insert(engine, [None, None], ("u", "v"))
    (r1,) = disagreement_stats(engine, [one], ["pair"], ["euclidean"])
    assert r1["std"] is None and r1["median"] == 0.75 and r1["n"] == 1
    (r0,) = disagreement_stats(engine, [none], ["pair"], ["euclidean"])
    assert (r0["n"], r0["nulls"]) == (0, 2)
    assert all(r0[s] is None for s in ("mean", "std", "min", "p25", "median", "p75", "max"))


def test_sql_and_client_strategies_agree(store):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the server-side strategy exists on PostgreSQL only")
    keys = ONE_ROW_PER_SAMPLE
    a = disagreement_stats(store.engine, None, keys, "all", strategy="sql")
    b = disagreement_stats(store.engine, None, keys, "all", strategy="client")
    assert len(a) == len(b) > 0
    for ra, rb in zip(a, b, strict=True):
        assert (ra["pair"], ra["n_segments"], ra["metric"]) == (
            rb["pair"],
            rb["n_segments"],
            rb["metric"],
        )
        _check(ra, {k: rb[k] for k in STAT_COLUMNS})


def test_unknown_names_raise_one_line_errors(store):
    with pytest.raises(QueryError, match="unknown group-by key 'colour'"):
        disagreement_stats(store.engine, None, ["pair", "colour"])
    with pytest.raises(QueryError, match="unknown metric 'accuracy'"):
        disagreement_stats(store.engine, None, ["pair"], ["accuracy"])
    with pytest.raises(NotFoundError, match="unknown job id 9999"):
        disagreement_stats(store.engine, [9999])
    with pytest.raises(QueryError, match="unknown group-by key 'pair'"):
        attack_stats(store.engine, None, ["pair"])


def test_attack_stats_match_python(store):
    rows = attack_stats(store.engine, [store.attack_job], ["job"])
    assert len(rows) == 1
    r = rows[0]
    att = store.attacks
    ok = [a for a in att if a["success"]]
    plain = [a for a in ok if a["out_of_domain"] == 0]  # in the input domain
    assert (r["n"], r["successes"]) == (len(att), len(plain)) == (6, 4)
    assert r["successes_out_of_domain"] == len(ok) - len(plain) == 1
    assert r["success_rate"] == pytest.approx(len(plain) / len(att))
    assert r["won_by"] == "central: 2, central (out of domain): 1, rise-least: 2"
    assert r["mean_out_of_domain"] == pytest.approx(np.mean([a["out_of_domain"] for a in att]))
    assert r["max_excursion"] == 2.5
    assert r["median_tied_pixels"] == pytest.approx(np.median([a["tied_pixels"] for a in att]))
    assert r["median_iterations"] == pytest.approx(np.median([a["iterations"] for a in att]))
    assert r["median_forward_passes"] == pytest.approx(
        np.median([a["forward_passes"] for a in att])
    )
    for col, name in (
        ("l0", "success_l0_mean"),
        ("l2", "success_l2_mean"),
        ("linf", "success_linf_mean"),
    ):
        assert r[name] == pytest.approx(np.mean([a[col] for a in ok]))
    assert r["prob_before_mean"] == pytest.approx(np.mean([a["prob_before"] for a in att]))
    assert r["prob_after_mean"] == pytest.approx(np.mean([a["prob_after"] for a in att]))


def test_attack_stats_group_by_label_partitions_the_rows(store):
    rows = attack_stats(store.engine, [store.attack_job], ["label"])
    assert [r["label"] for r in rows] == [0, 1, 2]
    assert sum(r["n"] for r in rows) == len(store.attacks)
    for r in rows:
        mine = [a for a in store.attacks if a["target"] == r["label"]]
        assert r["successes"] == sum(a["success"] and a["out_of_domain"] == 0 for a in mine)


# groups of one row per sample (the unclustered paths): pair, configuration and job fixed
ONE_ROW_PER_SAMPLE = ["pair", "n_segments", "k_frac", "job"]


@pytest.mark.parametrize("keys", [[*ONE_ROW_PER_SAMPLE, "label", "correct"], ONE_ROW_PER_SAMPLE])
def test_many_groups_path_fetching_the_keys_gives_the_same_numbers(store, monkeypatch, keys):
    monkeypatch.setattr("xaiq.analysis.exact._MAX_CODED", 0)  # as if there were many groups
    rows = disagreement_stats(store.engine, None, keys, "all", strategy="client")
    assert all(r["rows"] == r["n"] for r in rows)
    _check_rows(store, rows, keys)
