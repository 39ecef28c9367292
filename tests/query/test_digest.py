"""Stats digests: a finished job's per-cell statistics answer the stats queries they can, with
the exact path's numbers, and never when stale or when a group pools cells."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from xaiq.analysis.digest import build_digest, digest_groups
from xaiq.analysis.queries import disagreement_stats
from xaiq.analysis.summary import STAT_COLUMNS
from xaiq.db.errors import QueryError
from xaiq.db.models import METRIC_COLUMNS, DigestCell, Disagreement, Job, StatsDigest, utcnow

CELL_ALIGNED = [  # the two jobs differ in model; each has 3 pairs x 2 configurations
    ["job", "pair", "n_segments"],
    ["job", "pair", "n_segments", "k_frac", "superpixels"],
    ["model", "method_a", "method_b", "k_frac"],
    ["dataset", "model", "pair", "n_segments"],
]


def _finish(engine, *jobs: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id.in_(jobs)).values(finished_at=utcnow()))


def _exact(engine) -> str:
    return "sql" if engine.dialect.name == "postgresql" else "client"


def _close(a: dict, b: dict) -> bool:
    return all(
        b[k] == pytest.approx(v, rel=1e-12) if v is not None else b[k] is None
        for k, v in a.items()
        if k not in ("pair", "metric")
    )


def _assert_same(digest: list[dict], exact: list[dict]) -> None:
    assert len(digest) == len(exact) > 0
    for d, e in zip(digest, exact, strict=True):
        assert d.keys() == e.keys()
        for key, want in e.items():
            if key in ("mean", "std", "ci_low", "ci_high") and want is not None:
                # PostgreSQL's float sums depend on its plan (parallel partial aggregates)
                assert d[key] == pytest.approx(want, rel=1e-12), key
            else:
                assert d[key] == want, key  # counts, order statistics, keys: identical


@pytest.mark.parametrize("keys", CELL_ALIGNED, ids=lambda k: ",".join(k))
def test_cell_aligned_groupings_are_answered_by_the_digest_with_the_exact_numbers(store, keys):
    jobs = [store.disagreement_job, store.second_job]
    _finish(store.engine, *jobs)
    single = disagreement_stats(store.engine, jobs[:1], keys[1:], "all", strategy="digest")
    assert single == disagreement_stats(store.engine, jobs[:1], keys[1:], "all")
    exact = disagreement_stats(store.engine, jobs, keys, "all", strategy=_exact(store.engine))
    digest = disagreement_stats(store.engine, jobs, keys, "all", strategy="digest")
    _assert_same(digest, exact)
    assert disagreement_stats(store.engine, jobs, keys, "all") == digest  # the default


def test_a_digest_holds_every_metric_of_every_cell_and_is_built_once(store):
    job = store.disagreement_job
    _finish(store.engine, job)
    assert build_digest(store.engine, job)
    with store.engine.connect() as conn:
        cells = conn.execute(select(DigestCell).where(DigestCell.job_id == job)).all()
        mark = conn.execute(select(StatsDigest).where(StatsDigest.job_id == job)).one()
    # 3 pairs x 2 configurations x 10 metrics; every row of the job summarised
    assert len(cells) == 3 * 2 * len(METRIC_COLUMNS)
    assert mark.rows == sum(1 for d in store.disagreements if d["job_id"] == job)
    assert build_digest(store.engine, job)  # rebuilding replaces, never duplicates
    with store.engine.connect() as conn:
        assert len(conn.execute(select(DigestCell.id)).all()) == len(cells)


@pytest.mark.parametrize(
    "keys", [["pair"], ["job", "pair"], ["job", "pair", "n_segments", "label"], ["correct"], []]
)
def test_groupings_that_pool_cells_or_split_them_by_sample_fall_back_to_the_exact_path(store, keys):
    jobs = [store.disagreement_job, store.second_job]
    _finish(store.engine, *jobs)
    from xaiq.analysis.queries import DISAGREEMENT_KEYS, grouped_select

    cols, _ = grouped_select(Disagreement, keys, DISAGREEMENT_KEYS, jobs)
    assert digest_groups(store.engine, cols, jobs, list(METRIC_COLUMNS)) is None
    with pytest.raises(QueryError):
        disagreement_stats(store.engine, jobs, keys, "all", strategy="digest")
    exact = disagreement_stats(store.engine, jobs, keys, "all", strategy=_exact(store.engine))
    assert disagreement_stats(store.engine, jobs, keys, "all") == exact


def test_an_unfinished_job_is_never_answered_from_a_digest(store):
    job = store.disagreement_job
    with store.engine.connect() as conn:  # the fixture's jobs have no finished_at
        assert conn.scalar(select(Job.finished_at).where(Job.id == job)) is None
    assert not build_digest(store.engine, job)
    with pytest.raises(QueryError):
        disagreement_stats(store.engine, [job], ["pair", "n_segments"], strategy="digest")


def test_a_job_that_ran_again_gets_a_new_digest_not_the_stale_one(store):
    job = store.disagreement_job
    keys = ["pair", "n_segments"]
    _finish(store.engine, job)
    before = disagreement_stats(store.engine, [job], keys, "all", strategy="digest")
    # the job runs again (a retried shard rewrites rows) and finishes later
    with store.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job).values(finished_at=None))
        conn.execute(
            update(Disagreement)
            .where(Disagreement.job_id == job, Disagreement.sample_index == 0)
            .values(euclidean=1.999)
        )
    with pytest.raises(QueryError):  # running: the old digest is not used
        disagreement_stats(store.engine, [job], keys, "all", strategy="digest")
    _finish(store.engine, job)
    after = disagreement_stats(store.engine, [job], keys, "all", strategy="digest")
    exact = disagreement_stats(store.engine, [job], keys, "all", strategy=_exact(store.engine))
    _assert_same(after, exact)
    changed = [a for a, b in zip(after, before, strict=True) if not _close(a, b)]
    assert changed and all(r["metric"] == "euclidean" for r in changed)
    assert set(STAT_COLUMNS) <= set(after[0])


def test_a_local_job_builds_its_digest_when_it_finishes(tmp_path, monkeypatch):
    from xaiq.db.session import get_engine
    from xaiq.worker.local import run_spec

    engine = get_engine(f"sqlite:///{tmp_path / 's.db'}", migrate=True)
    monkeypatch.setenv("XAIQ_ARTIFACTS", str(tmp_path / "art"))
    spec = {
        "kind": "disagreement",
        "dataset": "digits",
        "model": "digits-cnn-weak",
        "methods": ["saliency", "grad_cam"],
        "superpixels": ["grid"],
        "n_segments": [16],
        "limit": 6,
        "shard_size": 3,
    }
    job = run_spec(spec, engine=engine)["job"]
    with engine.connect() as conn:
        mark = conn.execute(select(StatsDigest).where(StatsDigest.job_id == job)).one()
        finished = conn.scalar(select(Job.finished_at).where(Job.id == job))
    assert mark.finished_at == finished and mark.rows == 6
    rows = disagreement_stats(engine, [job], ["pair"], "all", strategy="digest")
    assert rows == disagreement_stats(engine, [job], ["pair"], "all", strategy="client")


@pytest.mark.parametrize("keys", [["job", "pair", "n_segments"], ["pair", "label"]])
def test_null_reasons_from_the_digest_equal_the_counting_query(store, keys):
    from xaiq.analysis.digest import digest_null_counts
    from xaiq.analysis.queries import DISAGREEMENT_KEYS, grouped_select
    from xaiq.analysis.stats_table import null_reasons

    jobs = [store.disagreement_job, store.second_job]
    names = list(METRIC_COLUMNS)
    expected = null_reasons(store.engine, jobs, keys, names)  # unfinished: counted
    assert expected  # the fixture has NULLs in every metric
    _finish(store.engine, *jobs)
    disagreement_stats(store.engine, jobs, ["job", "pair", "n_segments"], "all")  # builds
    cols, _ = grouped_select(Disagreement, keys, DISAGREEMENT_KEYS, jobs)
    answered = digest_null_counts(store.engine, cols, jobs, names)
    assert (answered is None) == (keys == ["pair", "label"])
    assert null_reasons(store.engine, jobs, keys, names) == expected
