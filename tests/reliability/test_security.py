"""Security: checkpoints never unpickle code, group-by and metric names never become SQL,
artifact paths come from ids (not file names), and passwords in URLs are never printed.
(JSON-only messages and password-free logs of real processes: test_security_cluster.py.)"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from sqlalchemy import inspect, select

from xaiq.analysis.queries import attack_stats, disagreement_stats
from xaiq.analysis.synthetic import insert_synthetic_disagreements
from xaiq.db.errors import QueryError
from xaiq.db.models import Disagreement, Job
from xaiq.db.session import get_engine, read_session
from xaiq.scheduler.submit import submit
from xaiq.worker.artifacts import artifact_relpath
from xaiq.worker.local import run_local
from xaiq.xai.errors import ModelLoadError

from .images import digit_image
from .test_bad_input import one_error_line, xaiq


class CreatesAFile:
    """Unpickling this runs ``touch <path>``: the payload of a malicious checkpoint/message."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.path}",))


def test_the_malicious_payload_really_runs_when_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(CreatesAFile(marker)))
    assert marker.exists()  # so the tests below would see it if anything unpickled it


def test_a_malicious_checkpoint_is_refused_and_never_executes(tmp_path: Path) -> None:
    from xaiq.xai.models import load_checkpoint, load_model

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(10, 512)}, "x": CreatesAFile(marker)}, path)
    with pytest.raises(ModelLoadError, match="cannot read checkpoint .*evil.pt"):
        load_checkpoint(path)
    with pytest.raises(ModelLoadError, match="evil.pt"):
        load_model(f"resnet18:{path}")
    assert not marker.exists()
    torch.load(path, weights_only=False)  # what an unsafe loader would do
    assert marker.exists()


INJECTIONS = (
    "pair; DROP TABLE jobs; --",
    "pair) UNION SELECT password FROM users --",
    "method_a,label' OR '1'='1",
    "1=1",
    "jobs.id",
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, home: Path) -> str:
    if request.param == "sqlite":
        return str(get_engine().url)
    return request.getfixturevalue("pg_db")


def test_stats_refuse_injected_group_by_and_metric_names_and_keep_values_as_data(
    store: str,
) -> None:
    engine = get_engine(store)
    evil_method = "saliency'); DROP TABLE jobs; --"
    job = insert_synthetic_disagreements(engine, 60, methods=["grad_cam", evil_method, "rise"])
    for word in INJECTIONS:
        with pytest.raises(QueryError, match="unknown group-by key"):
            disagreement_stats(engine, [job], group_by=word)
        with pytest.raises(QueryError, match="unknown group-by key"):
            attack_stats(engine, [job], group_by=word)
        with pytest.raises(QueryError, match="unknown metric"):
            disagreement_stats(engine, [job], metrics=word.replace("pair", "euclidean"))
    rows = disagreement_stats(engine, [job], group_by="pair", metrics="euclidean")
    assert {r["pair"] for r in rows} == {
        f"grad_cam vs {evil_method}",
        "grad_cam vs rise",
        f"{evil_method} vs rise",
    }
    assert {"jobs", "disagreements", "samples"} <= set(inspect(engine).get_table_names())
    with read_session(engine) as session:
        assert session.scalar(select(Job.id).where(Job.id == job)) == job
        assert len(list(session.scalars(select(Disagreement.id)))) == 60


def test_the_stats_command_refuses_an_injected_group_by_with_one_line(home: Path) -> None:
    engine = get_engine()
    insert_synthetic_disagreements(engine, 12)
    env = {"XAIQ_HOME": str(home)}
    line = one_error_line(xaiq("stats", "disagreement", "-g", "pair;DROP TABLE jobs", env=env))
    assert "unknown group-by key" in line
    line = one_error_line(xaiq("stats", "disagreement", "-M", "euclidean) FROM jobs --", env=env))
    assert "unknown metric" in line
    assert "jobs" in inspect(engine).get_table_names()
    ok = xaiq("stats", "disagreement", "-g", "pair", "-f", "csv", env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("pair,metric,"), ok.stderr


def test_artifact_groups_must_be_plain_names() -> None:
    assert artifact_relpath(3, "grad_cam", 7) == "job-3/grad_cam/7.npy"
    for group in ("../../x", "a/b", "..", "/etc"):
        with pytest.raises(ValueError, match="plain name"):
            artifact_relpath(3, group, 7)


def test_file_names_with_traversal_never_steer_where_artifacts_land(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    folder = tmp_path / "data" / "inner"
    folder.mkdir(parents=True)
    names = ["..\\..\\x.png", "..%2F..%2Fx.png", "....png", "-rf .png", "$(touch pwned).png"]
    for i, name in enumerate(names):
        Image.fromarray(digit_image(i)).save(folder / name, format="PNG")
    artifacts = tmp_path / "art"
    monkeypatch.setenv("XAIQ_ARTIFACTS", str(artifacts))
    monkeypatch.chdir(folder)  # a relative "../../x.png" would resolve to tmp_path/x.png
    before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(artifacts)}
    attribution = submit(
        {
            "kind": "attribution",
            "dataset": f"folder:{folder}",
            "model": "digits-cnn",
            "methods": ["saliency"],
        },
        local=True,
    ).job_id
    attack = submit(
        {
            "kind": "attack",
            "dataset": f"folder:{folder}",
            "model": "digits-cnn",
            "attack": {
                "mode": "untargeted",
                "n_masks": 20,
                "max_iters": 10,
                "strategies": ["central"],
            },
        },
        local=True,
    ).job_id
    for job in (attribution, attack):
        assert run_local(job)["status"] in ("succeeded", "partial")
    after = {p for p in tmp_path.rglob("*") if not p.is_relative_to(artifacts)}
    new = sorted(str(p.relative_to(tmp_path)) for p in after - before)
    assert all(p.startswith("home") for p in new), new  # only the store's own files
    written = sorted(str(p.relative_to(artifacts)) for p in artifacts.rglob("*") if p.is_file())
    # one object per shard and group, named by ids only: the attribution maps (saliency/),
    # an attack's final images (attack/) and each strategy's best image (attack-central/)
    allowed = {f"job-{attribution}/saliency/chunk-0.npys"}
    allowed |= {f"job-{attack}/{g}/chunk-0.npys" for g in ("attack", "attack-central")}
    assert written and set(written) <= allowed, written
    with read_session() as session:
        from xaiq.db.jobs import rows_for

        keys = {r["key"] for r in rows_for(session, "samples", attribution)}
        arts = {r["artifact"] for r in rows_for(session, "attributions", attribution)}
    from xaiq.xai.datasets import unescape_name

    # the names are kept as data (escaped reversibly: a backslash is stored doubled)...
    assert {unescape_name(k) for k in keys} == set(names)
    assert {a.split("#")[0] for a in arts} == {f"job-{attribution}/saliency/chunk-0.npys"}
    assert len(arts) == len(names)  # a byte range of its own per sample
