"""Synthetic disagreement rows, inserted fast: for benchmarks and tests of the read side.

:func:`insert_synthetic_disagreements` writes one ``disagreement`` job, its sample rows and
``n_rows`` disagreement rows (every sample x every method pair) with plausible, seeded metric
values: quantised to multiples of ``1/k`` where the real metric is (so medians meet ties),
with a fraction of NULLs (the "undefined" case of the metric contract). PostgreSQL gets
``COPY``; other backends a bulk ``executemany`` in chunks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
from sqlalchemy import Engine, bindparam, insert

from xaiq.db.models import (
    METRIC_COLUMNS,
    Disagreement,
    Job,
    JobKind,
    JobStatus,
    SampleRow,
    utcnow,
)

DEFAULT_METHODS = ("integrated_gradients", "saliency", "grad_cam", "rise")
_CHUNK = 50_000
_QUANTISED = {  # metrics that are multiples of 1/k by definition
    "feature_disagreement",
    "sign_disagreement",
    "feature_agreement",
    "sign_agreement",
    "rank_agreement",
    "signed_rank_agreement",
}


def insert_synthetic_disagreements(
    engine: Engine,
    n_rows: int,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    seed: int = 0,
    null_frac: float = 0.02,
    k: int = 8,
    model: str = "digits-cnn-weak",
    dataset: str = "digits",
) -> int:
    """Insert a synthetic disagreement job with ``n_rows`` rows; return the new job id.

    Rows cycle over the ``len(methods) choose 2`` pairs, so the job has
    ``ceil(n_rows / n_pairs)`` samples (each with a ``samples`` row: label, pred, correct).
    Deterministic for a given ``seed``.
    """
    pairs = list(itertools.combinations(methods, 2))
    if not pairs:
        raise ValueError("need at least two methods for synthetic disagreements")
    n_samples = -(-n_rows // len(pairs))
    rng = np.random.default_rng(seed)
    spec = {
        "kind": "disagreement",
        "dataset": dataset,
        "model": model,
        "methods": list(methods),
        "superpixels": ["grid"],
        "n_segments": [49],
        "k_frac": [0.05],
        "target": "pred",
        "seed": seed,
        "synthetic": True,
    }
    with engine.begin() as conn:
        job_id = conn.execute(
            insert(Job).returning(Job.id),
            [
                {
                    "kind": JobKind.disagreement,
                    "status": JobStatus.succeeded,
                    "finished_at": utcnow(),
                    "spec": spec,
                    "dataset": dataset,
                    "model": model,
                    "n_samples": n_samples,
                    "shard_size": 256,
                }
            ],
        ).scalar_one()
        labels = rng.integers(0, 10, n_samples)
        wrong = rng.random(n_samples) < 0.3
        preds = np.where(wrong, (labels + rng.integers(1, 10, n_samples)) % 10, labels)
        sample_cols = [
            "job_id",
            "sample_index",
            "key",
            "label",
            "pred",
            "target",
            "prob_pred",
            "prob_target",
            "correct",
        ]
        label_list, pred_list, wrong_list = labels.tolist(), preds.tolist(), wrong.tolist()
        for start in range(0, n_samples, _CHUNK):  # one executemany per chunk
            stop = min(n_samples, start + _CHUNK)
            conn.execute(
                insert(SampleRow),
                [
                    dict(
                        zip(
                            sample_cols,
                            (
                                job_id,
                                i,
                                f"{dataset}/{i}",
                                label_list[i],
                                pred_list[i],
                                label_list[i],
                                0.5,
                                0.2 if wrong_list[i] else 0.5,
                                not wrong_list[i],
                            ),
                            strict=True,
                        )
                    )
                    for i in range(start, stop)
                ],
            )
        columns = [
            "job_id",
            "sample_index",
            "method_a",
            "method_b",
            "superpixels",
            "n_segments",
            "k_frac",
            "n",
            "k",
            "target_kind",
            *METRIC_COLUMNS,
        ]
        chunks = _row_chunks(job_id, n_rows, pairs, rng, null_frac, k)
        if conn.dialect.name == "postgresql":
            _copy_postgres(conn, columns, chunks)
        else:
            sql = str(
                insert(Disagreement)
                .values({c: bindparam(c) for c in columns})
                .compile(dialect=conn.dialect)
            )
            for chunk in chunks:  # plain DBAPI executemany: tuples, no per-row dicts
                conn.exec_driver_sql(sql, list(zip(*chunk, strict=True)))
    return int(job_id)


def _row_chunks(
    job_id: int,
    n_rows: int,
    pairs: list[tuple[str, str]],
    rng: np.random.Generator,
    null_frac: float,
    k: int,
) -> Iterator[list[list]]:
    """Chunks of rows as columns (lists in the order of the insert's column list; ``None``
    for NULL), so rows and COPY text are assembled by C-level ``zip``/``join``."""
    n_pairs = len(pairs)
    for start in range(0, n_rows, _CHUNK):
        stop = min(n_rows, start + _CHUNK)
        n = stop - start
        idx = np.arange(start, stop)
        pair_id = idx % n_pairs
        metric_cols: list[list] = []
        for m in METRIC_COLUMNS:
            centre = 0.3 + 0.5 * pair_id / max(1, n_pairs - 1)  # pairs differ on purpose
            x = np.clip(rng.normal(centre, 0.2), 0.0, 1.0)
            if m in _QUANTISED:
                x = np.round(x * k) / k
            if m.startswith("euclidean"):
                x = x * (2.0 if m == "euclidean" else np.sqrt(2.0))
            col: list = x.tolist()
            for j in np.flatnonzero(rng.random(n) < null_frac).tolist():
                col[j] = None
            metric_cols.append(col)
        yield [
            [job_id] * n,
            (idx // n_pairs).tolist(),
            [pairs[p][0] for p in pair_id.tolist()],
            [pairs[p][1] for p in pair_id.tolist()],
            ["grid"] * n,
            [49] * n,
            [0.05] * n,
            [49] * n,
            [k] * n,
            ["pred"] * n,
            *metric_cols,
        ]


def _copy_postgres(conn, columns: list[str], chunks: Iterator[list[list]]) -> None:  # noqa: ANN001
    raw = conn.connection.driver_connection  # psycopg.Connection
    cols = ", ".join(columns)  # fixed column names from the schema, never user input
    with raw.cursor() as cur, cur.copy(f"COPY disagreements ({cols}) FROM STDIN") as copy:
        for chunk in chunks:
            text = [[r"\N" if v is None else str(v) for v in col] for col in chunk]
            copy.write("\n".join(map("\t".join, zip(*text, strict=True))) + "\n")
