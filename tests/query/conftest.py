"""Fixtures for the read side: one empty store per backend (SQLite file, throwaway PostgreSQL
database) and a realistic populated store (jobs, samples, disagreements with NULLs and ties,
attribution maps and attack images as .npy files)."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from xaiq.db.models import (
    METRIC_COLUMNS,
    AttackResult,
    Attribution,
    Base,
    Disagreement,
    Job,
    JobKind,
    JobStatus,
    SampleRow,
)

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
METHODS = ("integrated_gradients", "saliency", "grad_cam")


def _require_services() -> bool:
    return os.environ.get("XAIQ_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="session")
def pg_engine():
    """One throwaway PostgreSQL database for the session (dropped at the end), or a skip."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"xaiq_q_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))  # name made here, not user input
    except Exception as exc:  # any connection failure means "no PostgreSQL here"
        admin.dispose()
        if _require_services():
            pytest.fail(f"PostgreSQL required but unavailable: {exc}")
        pytest.skip(f"PostgreSQL unavailable at 127.0.0.1:5432: {type(exc).__name__}")
    eng = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    try:
        Base.metadata.create_all(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """An empty store with the schema, on SQLite or on the session's PostgreSQL database."""
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'q.sqlite'}")
        Base.metadata.create_all(eng)
        yield eng
        eng.dispose()
        return
    eng = request.getfixturevalue("pg_engine")
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with eng.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield eng


def save_npy(root: Path, rel: str, array: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


@dataclass
class Store:
    engine: object
    root: Path
    disagreement_job: int = 0
    second_job: int = 0
    attack_job: int = 0
    disagreements: list[dict] = field(default_factory=list)
    samples: dict[tuple[int, int], dict] = field(default_factory=dict)
    jobs: dict[int, dict] = field(default_factory=dict)
    attacks: list[dict] = field(default_factory=list)


def _job(session: Session, kind: JobKind, model: str, dataset: str, spec: dict, n: int) -> int:
    job = Job(
        kind=kind,
        status=JobStatus.succeeded,
        spec=spec,
        dataset=dataset,
        model=model,
        n_samples=n,
        shard_size=8,
    )
    session.add(job)
    session.flush()
    return job.id


@pytest.fixture
def store(engine, tmp_path, monkeypatch) -> Store:
    """Two disagreement jobs (different models, two superpixel configurations, NULLs and
    ties in every metric) and one attack job; maps and final images written as .npy."""
    root = tmp_path / "artifacts"
    monkeypatch.setenv("XAIQ_ARTIFACTS", str(root))
    rng = np.random.default_rng(7)
    st = Store(engine=engine, root=root)
    with Session(engine) as session:
        specs = [("digits-cnn-weak", "digits", 12), ("digits-cnn", "digits", 7)]
        job_ids = []
        for model, dataset, n in specs:
            spec = {
                "kind": "disagreement",
                "methods": list(METHODS),
                "model": model,
                "dataset": dataset,
                "superpixels": ["grid"],
                "n_segments": [16, 49],
            }
            jid = _job(session, JobKind.disagreement, model, dataset, spec, n)
            job_ids.append(jid)
            st.jobs[jid] = {"model": model, "dataset": dataset}
            for i in range(n):
                label = int(i % 4)
                pred = label if i % 3 else (label + 1) % 10
                row = {
                    "job_id": jid,
                    "sample_index": i,
                    "key": f"digits/{i}",
                    "label": label,
                    "pred": pred,
                    "target": label,
                    "prob_pred": 0.6,
                    "prob_target": 0.4,
                    "correct": pred == label,
                }
                session.add(SampleRow(**row))
                st.samples[(jid, i)] = row
                for method in METHODS:
                    m = rng.normal(size=(28, 28)).astype(np.float32)
                    rel = f"job-{jid}/{method}/{i}.npy"
                    session.add(
                        Attribution(
                            job_id=jid,
                            sample_index=i,
                            method=method,
                            target=label,
                            artifact=rel,
                            checksum=save_npy(root, rel, m),
                            height=28,
                            width=28,
                        )
                    )
                for (a, b), (n_seg, k_frac) in itertools.product(
                    itertools.combinations(METHODS, 2), [(16, 0.05), (49, 0.1)]
                ):
                    d = {
                        "job_id": jid,
                        "sample_index": i,
                        "method_a": a,
                        "method_b": b,
                        "superpixels": "grid",
                        "n_segments": n_seg,
                        "k_frac": k_frac,
                        "n": n_seg,
                        "k": 2,
                    }
                    for metric in METRIC_COLUMNS:
                        r = rng.random()
                        # ties: values on a coarse grid; NULLs: about one in eight
                        d[metric] = None if r < 0.125 else float(np.round(rng.random() * 4) / 4)
                    d["euclidean"] = None if rng.random() < 0.1 else float(rng.random() * 2)
                    session.add(Disagreement(**d))
                    st.disagreements.append(d)
        st.disagreement_job, st.second_job = job_ids
        spec = {"kind": "attack", "model": "digits-cnn-weak", "dataset": "digits"}
        aj = _job(session, JobKind.attack, "digits-cnn-weak", "digits", spec, 6)
        st.attack_job = aj
        st.jobs[aj] = {"model": "digits-cnn-weak", "dataset": "digits"}
        for i in range(6):
            label = i % 3
            row = {
                "job_id": aj,
                "sample_index": i,
                "key": f"digits/{i}",
                "label": label,
                "pred": (label + 1) % 10,
                "target": label,
                "prob_pred": 0.7,
                "prob_target": 0.1,
                "correct": False,
            }
            session.add(SampleRow(**row))
            st.samples[(aj, i)] = row
            final = rng.random((1, 28, 28)).astype(np.float32)
            rel = f"job-{aj}/attack/{i}.npy"
            success = i != 4
            a = {
                "job_id": aj,
                "sample_index": i,
                "mode": "repair",
                "target": label,
                "success": success,
                "strategy": ("central" if i % 2 else "rise-least") if success else None,
                "iterations": 10 * (i + 1),
                "forward_passes": 100 * (i + 1),
                "prob_before": 0.1 + 0.01 * i,
                "prob_after": 0.6 if success else 0.2,
                "pred_before": (label + 1) % 10,
                "pred_after": label if success else (label + 1) % 10,
                "l0": 50 + i,
                "l2": 1.5 + i,
                "linf": 0.5 + 0.1 * i,
                "artifact": rel,
                "checksum": save_npy(root, rel, final),
                # sample 1's repair needs out-of-domain pixels (an unclamped search)
                "out_of_domain": 0.25 if i == 1 else 0.0,
                "max_excursion": 2.5 if i == 1 else 0.0,
                "tied_pixels": i,
            }
            session.add(AttackResult(**a))
            st.attacks.append(a)
        session.commit()
    return st
