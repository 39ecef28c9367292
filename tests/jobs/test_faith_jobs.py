"""Disagreement jobs with deletion/insertion, the sanity check and several models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.helpers import DIGITS_DISAGREEMENT, assert_rows_close
from xaiq.db.jobs import rows_for
from xaiq.db.session import read_session
from xaiq.scheduler.errors import SpecError
from xaiq.scheduler.spec import validate_spec
from xaiq.scheduler.submit import submit
from xaiq.worker.artifacts import load_array
from xaiq.worker.local import run_local

SPEC = DIGITS_DISAGREEMENT


def _run(spec: dict) -> int:
    job = submit(spec, local=True)
    assert run_local(job.job_id)["status"] == "succeeded"
    return job.job_id


def _rows(job_id: int, table: str) -> list[dict]:
    with read_session() as session:
        return rows_for(session, table, job_id)


def test_faithfulness_and_sanity_rows_per_sample_method_unit_and_layer(home) -> None:  # noqa: ANN001
    spec = {**SPEC, "faithfulness": True, "sanity": {"max_layers": 2}}
    job = _run(spec)
    faith = _rows(job, "faithfulness")
    assert len(faith) == 6 * 2 * 2  # samples x methods x (pixels, grid/16)
    assert {(r["unit"], r["n_segments"], r["n_steps"]) for r in faith} == {
        ("pixels", 0, 28),
        ("grid", 16, 16),
    }
    for r in faith:
        curves = load_array(r["artifact"], r["checksum"])
        assert curves.shape == (2, r["n_steps"] + 1)
        auc = (curves.sum(axis=1) - curves[:, 0] / 2 - curves[:, -1] / 2) / r["n_steps"]
        assert auc == pytest.approx([r["deletion_auc"], r["insertion_auc"]], abs=1e-6)
        assert r["prob_full"] == pytest.approx(float(curves[0, 0]))
        assert r["target_kind"] == "pred" and r["model"] == "digits-cnn"
        # the reference protocol by default, recorded on the row
        assert (r["ties"], r["kernel"], r["substrate"]) == ("random", "reference", "baseline")
        for key in ("deletion_auc_lerf", "insertion_auc_lerf", "deletion_auc_random"):
            assert 0.0 <= r[key] <= 1.0
        assert 0.0 <= r["tied_share"] <= 1.0
    # the random-order baseline does not depend on the map: one value per sample and unit
    by_unit: dict[tuple, set] = {}
    for r in faith:
        key = (r["sample_index"], r["unit"])
        by_unit.setdefault(key, set()).add((r["deletion_auc_random"], r["insertion_auc_random"]))
    assert all(len(v) == 1 for v in by_unit.values())
    # map properties: the pixel map's, on every unit's row; Grad-CAM's upsampled map is
    # smoother (less sparse, more complex) than Saliency's
    pix = {(r["sample_index"], r["method"]): r for r in faith if r["unit"] == "pixels"}
    for (idx, method), r in pix.items():
        assert all(
            (o["sparseness"], o["complexity"]) == (r["sparseness"], r["complexity"])
            for o in faith
            if (o["sample_index"], o["method"]) == (idx, method)
        )
        if r["sparseness"] is not None:
            assert 0.0 <= r["sparseness"] < 1.0 and 0.0 <= r["complexity"] <= math.log(784)
    sanity = _rows(job, "sanity_checks")
    assert len(sanity) == 6 * 2 * 2
    assert {(r["layer"], r["layer_order"]) for r in sanity} == {
        ("classifier.3", 1),
        ("classifier.1", 2),
    }
    assert all(r["mode"] == "cascading" and -1 <= r["spearman_abs"] <= 1 for r in sanity)
    again = _run(spec)  # seeded per job: the same random networks, the same rows
    drop = ("job_id", "artifact", "checksum")  # the curves themselves are compared below
    strip = lambda rs: [{k: v for k, v in r.items() if k not in drop} for r in rs]  # noqa: E731
    # the same rows up to float32 rounding (docs/architecture.md, Determinism: a CI run once
    # differed by 4e-9 in one AUC); another random network or stream would move them by far more
    assert_rows_close(strip(_rows(again, "sanity_checks")), strip(sanity))
    assert_rows_close(strip(_rows(again, "faithfulness")), strip(faith))
    for a, b in zip(_rows(again, "faithfulness"), faith, strict=True):
        curves = load_array(a["artifact"], a["checksum"])
        np.testing.assert_allclose(curves, load_array(b["artifact"], b["checksum"]), rtol=1e-6)


def test_a_job_over_two_models_compares_every_model_method_with_every_other(home) -> None:  # noqa: ANN001
    spec = {
        **SPEC,
        "models": ["digits-cnn", "digits-cnn-weak"],
        "faithfulness": {"superpixels": False},
    }
    spec.pop("model")
    job = _run(spec)
    rows = _rows(job, "disagreements")
    names = [
        "digits-cnn:saliency",
        "digits-cnn:grad_cam",
        "digits-cnn-weak:saliency",
        "digits-cnn-weak:grad_cam",
    ]
    pairs = {(r["method_a"], r["method_b"]) for r in rows}
    assert len(pairs) == 6 and len(rows) == 6 * 6
    assert ("digits-cnn:saliency", "digits-cnn-weak:saliency") in pairs
    for r in rows:
        assert r["model_a"] == r["method_a"].rsplit(":", 1)[0]
        assert r["model_b"] == r["method_b"].rsplit(":", 1)[0]
    attributions = _rows(job, "attributions")
    assert sorted({r["method"] for r in attributions}) == sorted(names)
    faith = _rows(job, "faithfulness")
    assert len(faith) == 6 * 4 and {r["model"] for r in faith} == {"digits-cnn", "digits-cnn-weak"}
    # each model explains its own prediction
    from xaiq.xai.digits import digits_arrays
    from xaiq.xai.models import load_model

    images = digits_arrays()[0][:6]
    for name in ("digits-cnn", "digits-cnn-weak"):
        m = load_model(name, "cpu")
        preds = m.predict_proba(m.preprocess(images)).argmax(dim=1).tolist()
        got = {r["sample_index"]: r["target"] for r in attributions if r["model"] == name}
        assert got == dict(enumerate(preds))


def test_one_method_over_two_models_is_a_pair() -> None:
    spec = validate_spec(
        {**SPEC, "methods": ["saliency"], "models": ["digits-cnn", "digits-cnn-weak"]}
    )
    assert spec["model"] == "digits-cnn" and spec["models"] == ["digits-cnn", "digits-cnn-weak"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"models": ["digits-cnn", "resnet18"]}, "'resnet18' takes inputs \\(3, 224, 224\\)"),
        ({"models": ["digits-cnn"]}, "models must list at least two"),
        ({"models": ["digits-cnn-weak", "digits-cnn"]}, "must be the first of models"),
        ({"faithfulness": {"order": "random"}}, "faithfulness: order must be one of"),
        ({"faithfulness": {"ties": "lower"}}, "faithfulness: ties must be one of random"),
        ({"faithfulness": {"kernel": "box"}}, "faithfulness: kernel must be one of reference"),
        ({"faithfulness": {"substrate": "inpaint"}}, "baseline, blur, mean, road"),
        ({"faithfulness": {"colour": 1}}, "faithfulness: unknown option 'colour'"),
        ({"sanity": {"mode": "bottom-up"}}, "sanity.mode must be one of cascading"),
        ({"sanity": {"max_layers": 0}}, "sanity.max_layers must be an integer >= 1"),
    ],
)
def test_bad_options_are_refused_at_submit(change: dict, needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        validate_spec({**SPEC, **change})


def test_the_submit_flags_reach_the_stored_spec_and_rows(home, capsys) -> None:  # noqa: ANN001
    from xaiq.cli.main import main

    args = ["submit", "disagreement", "-d", "digits", "--models", "digits-cnn,digits-cnn-weak"]
    args += ["--methods", "saliency", "--superpixels", "grid", "--n-segments", "16"]
    args += ["--limit", "2", "--target", "label", "--faithfulness"]
    args += ["--faith-param", "superpixels=false", "--faith-param", "order=abs"]
    args += ["--faith-param", "ties=index", "--faith-param", "kernel=sampled"]
    args += ["--sanity", "independent", "--sanity-param", "max_layers=1", "--json"]
    assert main(args) == 0
    job = json.loads(capsys.readouterr().out)["job"]
    faith = _rows(job, "faithfulness")
    assert len(faith) == 2 * 2
    assert {(r["order"], r["target_kind"], r["ties"], r["kernel"]) for r in faith} == {
        ("abs", "label", "index", "sampled")
    }
    sanity = _rows(job, "sanity_checks")
    assert {(r["mode"], r["layer"], r["model"]) for r in sanity} == {
        ("independent", "classifier.3", "digits-cnn"),
        ("independent", "classifier.3", "digits-cnn-weak"),
    }
    assert main([*args[:-1], "--sanity", "sideways"]) == 2
    assert "sanity.mode must be one of cascading, independent" in capsys.readouterr().err


def test_the_protocol_card_is_stored_with_the_job_and_completed_by_the_worker(home) -> None:  # noqa: ANN001
    from xaiq.db.protocol import job_protocols
    from xaiq.db.session import get_engine
    from xaiq.xai.models import load_model
    from xaiq.xai.provenance import weights_sha256

    spec = {**SPEC, "limit": 3, "faithfulness": {"superpixels": False, "ties": "reverse"}}
    job = _run(spec)
    card = job_protocols(get_engine(), [job])[job]
    assert card is not None
    faith = card["faithfulness"]
    assert (faith["ties"], faith["kernel"], faith["substrate"]) == (
        "reverse",
        "reference",
        "baseline",
    )
    assert faith["step"] == "W (one image row)" and "len - 1" in faith["auc"]
    assert card["seeds"]["job"] == 0
    (runtime,) = card["runtime"]  # one local process ran every shard
    assert runtime["device"] == "cpu" and runtime["versions"]["torch"]
    expected = weights_sha256(load_model("digits-cnn", "cpu").module)
    assert runtime["model_sha256"] == {"digits-cnn": expected}
    assert runtime["input_domain"]["digits-cnn"] == {"low": [0.0], "high": [1.0]}
    assert {r["ties"] for r in _rows(job, "faithfulness")} == {"reverse"}


def test_rows_do_not_depend_on_the_shard_size_with_random_ties_and_road(home) -> None:  # noqa: ANN001
    spec = {**SPEC, "limit": 4, "shard_size": 4}
    spec["faithfulness"] = {"superpixels": False, "substrate": "road", "step": 196}
    one = _rows(_run(spec), "faithfulness")
    two = _rows(_run({**spec, "shard_size": 1}), "faithfulness")
    keys = ("deletion_auc", "insertion_auc", "deletion_auc_random", "deletion_auc_lerf")
    assert len(one) == len(two) == 8
    for a, b in zip(one, two, strict=True):
        assert [a[k] for k in keys] == pytest.approx([b[k] for k in keys], abs=1e-5)


def test_an_attack_jobs_card_records_the_attack_settings_the_spec_states() -> None:
    from xaiq.scheduler.protocol import protocol_card

    spec = validate_spec(
        {"kind": "attack", "dataset": "digits", "model": "digits-cnn-weak", "limit": 4,
         "attack": {"sigma": 0.5, "max_iters": 20}}
    )  # fmt: skip
    card = protocol_card(spec)
    assert "faithfulness" not in card and card["seeds"]["job"] == 0
    attack = card["attack"]
    assert attack["clamp"] == spec["attack"]["clamp"] and attack["sigma"] == 0.5
    assert attack["max_iters"] == 20 and attack["strategies"] == spec["attack"]["strategies"]
    assert "domain" in attack


def test_a_cross_model_jobs_card_names_every_model() -> None:
    from xaiq.scheduler.protocol import protocol_card

    spec = validate_spec({**SPEC, "models": ["digits-cnn", "digits-cnn-weak"]})
    card = protocol_card(spec)
    assert card["models"] == ["digits-cnn", "digits-cnn-weak"]
    assert "models" not in protocol_card(validate_spec(SPEC))  # one model: the model field
