"""Which class a job explains: ``target`` pred (default) or label, stored with every row."""

from __future__ import annotations

import pytest

from xaiq.db.jobs import rows_for
from xaiq.db.session import read_session
from xaiq.scheduler.errors import SpecError
from xaiq.scheduler.spec import validate_spec
from xaiq.scheduler.submit import submit
from xaiq.worker.local import run_local

SPEC = {
    "kind": "attribution",
    "dataset": "digits",
    "model": "digits-cnn-weak",
    "methods": ["saliency"],
    "limit": 24,
    "shard_size": 12,
}


def _run(spec: dict) -> int:
    job = submit(spec, local=True)
    assert run_local(job.job_id)["status"] == "succeeded"
    return job.job_id


def _rows(job_id: int, table: str) -> list[dict]:
    with read_session() as session:
        return rows_for(session, table, job_id)


def test_jobs_explain_the_prediction_by_default_and_the_label_on_request(home) -> None:  # noqa: ANN001
    assert validate_spec(SPEC)["target"] == "pred"
    by_pred, by_label = _run(SPEC), _run({**SPEC, "target": "label"})
    samples = {r["sample_index"]: r for r in _rows(by_pred, "samples")}
    wrong = [i for i, r in samples.items() if r["pred"] != r["label"]]
    assert wrong, "the weak model should misclassify some of the first 24 digits"
    for job, field, kind in ((by_pred, "pred", "pred"), (by_label, "label", "label")):
        rows = _rows(job, "attributions")
        assert len(rows) == 24
        for r in rows:
            assert r["target"] == samples[r["sample_index"]][field]
            assert r["target_kind"] == kind


def test_disagreement_rows_say_which_class_was_explained(home) -> None:  # noqa: ANN001
    spec = {
        **SPEC,
        "kind": "disagreement",
        "methods": ["saliency", "grad_cam"],
        "superpixels": ["grid"],
        "n_segments": [16],
        "target": "label",
        "limit": 6,
    }
    rows = _rows(_run(spec), "disagreements")
    assert len(rows) == 6 and {r["target_kind"] for r in rows} == {"label"}


def test_reused_maps_keep_their_target_and_a_contradicting_one_is_refused(home) -> None:  # noqa: ANN001
    source = _run({**SPEC, "methods": ["saliency", "grad_cam"], "target": "label", "limit": 4})
    reuse = {
        "kind": "disagreement",
        "dataset": "digits",
        "model": "digits-cnn-weak",
        "from_job": source,
        "superpixels": ["grid"],
        "n_segments": [16],
    }
    rows = _rows(_run(reuse), "disagreements")
    assert {r["target_kind"] for r in rows} == {"label"}
    with pytest.raises(SpecError, match="explain the label, not the pred"):
        submit({**reuse, "target": "pred"}, local=True)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"target": "logits"}, "target must be one of pred, label, got 'logits'"),
        (
            {"kind": "attack", "methods": None, "target": "pred"},
            "target does not apply to attack jobs",
        ),
    ],
)
def test_a_bad_target_is_refused_at_submit(change: dict, needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        validate_spec({k: v for k, v in {**SPEC, **change}.items() if v is not None})
