"""Streaming export: every format round-trips the job's rows; memory does not grow with rows."""

from __future__ import annotations

import csv
import json
import math
import tracemalloc

import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine

from xaiq.analysis.synthetic import insert_synthetic_disagreements
from xaiq.db.errors import NotFoundError, QueryError
from xaiq.db.export import export_columns, export_job
from xaiq.db.models import METRIC_COLUMNS, Base


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(b, float):
        return math.isclose(float(a), b, rel_tol=0, abs_tol=0)
    return a == b


def _mine(store):
    rows = [d for d in store.disagreements if d["job_id"] == store.disagreement_job]
    return sorted(rows, key=lambda d: d["sample_index"])


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_disagreement_export_round_trips_every_value(store, tmp_path, fmt):
    out = tmp_path / f"d.{fmt}"
    n = export_job(store.engine, store.disagreement_job, "disagreements", fmt, out)
    want = _mine(store)
    assert n == len(want)
    cols = export_columns("disagreements")
    if fmt == "csv":
        with out.open(newline="") as f:
            reader = csv.reader(f)
            assert next(reader) == cols
            got = [dict(zip(cols, r, strict=True)) for r in reader]
        for g in got:
            for m in METRIC_COLUMNS:
                g[m] = float(g[m]) if g[m] != "" else None
    elif fmt == "json":
        got = [json.loads(line) for line in out.read_text().splitlines()]
    else:
        table = pq.read_table(out)
        assert table.column_names == cols
        got = table.to_pylist()
    assert len(got) == len(want)
    # within a sample the order is insertion order (id), the same as in the fixture
    for g, w in zip(got, want, strict=True):
        for key in ("sample_index", "method_a", "method_b", *METRIC_COLUMNS):
            assert _same(
                g[key] if fmt != "csv" or key in METRIC_COLUMNS else type(w[key])(g[key]), w[key]
            ), key


@pytest.mark.parametrize("what", ["attacks", "samples", "attributions"])
def test_every_table_exports_its_job_rows(store, tmp_path, what):
    job = store.attack_job if what != "attributions" else store.second_job
    out = tmp_path / "x.parquet"
    n = export_job(store.engine, job, what, "parquet", out)
    expected = {"attacks": 6, "samples": 6, "attributions": 7 * 3}[what]
    assert n == expected == pq.read_table(out).num_rows


def test_unknown_table_format_or_job_fail_before_writing(store, tmp_path):
    out = tmp_path / "never.csv"
    with pytest.raises(QueryError, match="unknown export table 'pixels'"):
        export_job(store.engine, store.attack_job, "pixels", "csv", out)
    with pytest.raises(QueryError, match="unknown export format 'xlsx'"):
        export_job(store.engine, store.attack_job, "attacks", "xlsx", out)
    with pytest.raises(NotFoundError, match="unknown job id 424242"):
        export_job(store.engine, 424242, "attacks", "csv", out)
    assert not out.exists()


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory):
    path = tmp_path_factory.mktemp("mem") / "m.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    small = insert_synthetic_disagreements(engine, 2_000, seed=1)
    large = insert_synthetic_disagreements(engine, 20_000, seed=2)
    yield engine, small, large
    engine.dispose()


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_memory_does_not_grow_with_rows(two_sizes, tmp_path, monkeypatch, fmt):
    engine, small, large = two_sizes
    monkeypatch.setattr("xaiq.db.export.EXPORT_BATCH", 200)
    peaks = []
    for job, rows in ((small, 2_000), (large, 20_000)):
        tracemalloc.start()
        n = export_job(engine, job, "disagreements", fmt, tmp_path / f"{job}.{fmt}")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert n == rows
    # ten times the rows, same batch: the Python-side peak stays that of one batch
    assert peaks[1] < 1.5 * peaks[0], peaks


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_result_exports_carry_the_samples_fields(store, tmp_path, fmt):
    out = tmp_path / f"j.{fmt}"
    export_job(store.engine, store.disagreement_job, "disagreements", fmt, out)
    cols = export_columns("disagreements")
    assert cols[-5:] == ["key", "label", "pred", "correct", "confidence"]
    if fmt == "csv":
        with out.open(newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = pq.read_table(out).to_pylist()
    assert len(rows) == len(_mine(store))
    for r in rows:
        s = store.samples[(store.disagreement_job, int(r["sample_index"]))]
        assert r["key"] == s["key"]
        assert str(r["label"]) == str(s["label"]) and str(r["pred"]) == str(s["pred"])
        assert str(r["correct"]) == str(s["correct"])
        assert float(r["confidence"]) == s["prob_pred"]


def test_parquet_samples_have_probabilities_as_a_typed_column(store, tmp_path):
    from sqlalchemy import update

    from xaiq.db.models import SampleRow

    with store.engine.begin() as conn:
        conn.execute(
            update(SampleRow)
            .where(SampleRow.job_id == store.attack_job)
            .values(probs=[[3, 0.7], [1, 0.2]])
        )
    out = tmp_path / "s.parquet"
    export_job(store.engine, store.attack_job, "samples", "parquet", out)
    table = pq.read_table(out)
    assert str(table.schema.field("probs").type) == (
        "list<element: struct<class: int64, prob: double>>"
    )
    assert table.column("probs").to_pylist()[0] == [
        {"class": 3, "prob": 0.7},
        {"class": 1, "prob": 0.2},
    ]
