"""``xaiq.results``: DataFrames with the sample fields joined, equal to the stored rows."""

from __future__ import annotations

import math

import pytest

import xaiq.results
from xaiq.db.errors import NotFoundError


def test_disagreements_frame_has_every_row_with_its_sample_fields(store):
    res = xaiq.results.open(store.engine)
    frame = res.disagreements(store.disagreement_job)
    want = [d for d in store.disagreements if d["job_id"] == store.disagreement_job]
    assert len(frame) == len(want)
    assert list(frame.columns[-5:]) == ["key", "label", "pred", "correct", "confidence"]
    for row in frame.itertuples(index=False):
        s = store.samples[(row.job_id, row.sample_index)]
        assert (row.key, row.label, row.pred, bool(row.correct)) == (
            s["key"],
            s["label"],
            s["pred"],
            s["correct"],
        )
        assert row.confidence == s["prob_pred"]
    # the analysis the issue asks for is one groupby away, and matches the rows
    mean = frame.groupby("correct")["euclidean"].mean()
    wrong = [
        d["euclidean"]
        for d in want
        if d["euclidean"] is not None
        and not store.samples[(d["job_id"], d["sample_index"])]["correct"]
    ]
    assert math.isclose(mean.loc[False], sum(wrong) / len(wrong), rel_tol=1e-12)


def test_attacks_samples_and_every_job_frames(store):
    res = xaiq.results.open(store.engine)
    assert len(res.attacks(store.attack_job)) == len(store.attacks)
    assert len(res.samples([store.attack_job])) == 6
    assert len(res.disagreements()) == len(store.disagreements)
    assert res.faithfulness().empty and "confidence" in res.faithfulness().columns
    with pytest.raises(NotFoundError):
        res.attacks(4242)


def test_stats_and_compare_frames_are_the_cli_tables(store):
    res = xaiq.results.open(store.engine)
    stats = res.stats(store.disagreement_job, metrics="euclidean")
    assert list(stats.columns[:3]) == ["pair", "n_segments", "k_frac"]
    assert {"ci_low", "ci_high", "null_reason"} <= set(stats.columns)
    assert "model digits-cnn-weak" in stats.attrs["title"]
    cmp = res.compare("correct", store.disagreement_job, metrics="euclidean")
    assert set(cmp["a"]) == {False} and {"p_value", "rank_biserial"} <= set(cmp.columns)


def _label(engine, job_id: int, name: str | None, tags: list[str]) -> None:  # noqa: ANN001
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from xaiq.db.models import Job, JobTag

    with Session(engine) as session, session.begin():
        session.execute(update(Job).where(Job.id == job_id).values(name=name))
        session.add_all(JobTag(job_id=job_id, tag=t) for t in tags)


def test_jobs_frame_has_names_and_tags_and_filters_on_them(store):
    _label(store.engine, store.disagreement_job, "baseline", ["paper", "fig2"])
    _label(store.engine, store.attack_job, "baseline", ["paper"])
    res = xaiq.results.open(store.engine)
    jobs = res.jobs()
    assert list(jobs.columns) == xaiq.results.JOB_COLUMNS
    assert list(jobs["job"]) == sorted(store.jobs, reverse=True)
    row = jobs.set_index("job").loc[store.disagreement_job]
    assert row["name"] == "baseline" and row["tags"] == ["fig2", "paper"]
    assert set(res.jobs(tags="paper")["job"]) == {store.disagreement_job, store.attack_job}
    assert list(res.jobs(tags=["paper", "fig2"])["job"]) == [store.disagreement_job]
    assert set(res.jobs(name="baseline")["job"]) == {store.disagreement_job, store.attack_job}
    # a name selects every job of that name, in every method
    assert len(res.attacks("baseline")) == len(store.attacks)
    with pytest.raises(NotFoundError, match="no job named 'nobody'"):
        res.disagreements("nobody")


def test_every_public_results_method_returns_one_dataframe(store):
    import inspect

    import pandas as pd

    res = xaiq.results.open(store.engine)
    # the documented exceptions: the array readers (one stored map or attack image as numpy)
    # and one job's protocol card as stored (a dict; `protocols()` is its frame)
    arrays = {"map", "attack_image", "protocol"}
    methods = [
        name
        for name, fn in inspect.getmembers(xaiq.results.Results, inspect.isfunction)
        if not name.startswith("_") and name not in arrays
    ]
    assert {"jobs", "sanity", "sanity_verdicts", "stats"} <= set(methods)
    assert arrays <= {n for n, _ in inspect.getmembers(xaiq.results.Results)}
    for name in methods:
        args = ("correct",) if name == "compare" else ()
        out = getattr(res, name)(*args)
        assert isinstance(out, pd.DataFrame), name
