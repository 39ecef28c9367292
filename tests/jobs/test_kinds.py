"""The job kinds live in one registry (``xaiq.scheduler.kinds``): every consumer covers
exactly its kinds, and a kind added there is validated and dispatched with no other list to
edit."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from xaiq.db.models import JobKind
from xaiq.scheduler.errors import SpecError
from xaiq.scheduler.kinds import KINDS, Kind, get_kind, register_kind
from xaiq.scheduler.spec import validate_spec

ROOT = Path(__file__).resolve().parents[2]
KIND_NAMES = list(KINDS)


def test_the_store_enum_lists_the_registered_kinds_in_order():
    # xaiq.db may not import the scheduler: its enum is kept in step here
    assert [k.value for k in JobKind] == KIND_NAMES


def test_the_worker_computes_every_registered_kind():
    from xaiq.worker.compute import kind_function

    for name in KIND_NAMES:
        fn = kind_function(name)
        assert list(inspect.signature(fn).parameters) == ["claim", "model", "batch", "rows", "root"]


def test_the_stores_stage_list_agrees_with_each_kinds_progress_stage():
    # the store cannot import the scheduler: its stage list per kind is kept beside it
    from xaiq.db.stages import STAGES, job_stages

    for name, kind in KINDS.items():
        stages = job_stages(name, {"faithfulness": True, "sanity": "cascading"})
        assert set(stages) <= set(STAGES)
        if kind.stage is not None:  # a one-stage kind: the worker counts it per batch
            assert stages == [kind.stage], name
        else:  # the kind reports its own stages, explain first
            assert stages[0] == "explain" and len(stages) > 1, name


def test_the_submit_sub_commands_are_the_registered_kinds():
    from xaiq.cli.submit import submit_app

    assert sorted(c.name for c in submit_app.registered_commands) == sorted(KIND_NAMES)


def test_xaiq_submit_help_lists_every_kind(tmp_path):
    from tests.cli.test_console_script import xaiq

    out = xaiq("submit", "--help", home=tmp_path)
    assert out.returncode == 0, out.stderr
    listed = {line.split()[1] for line in out.stdout.splitlines() if line.startswith("│ ")}
    assert set(KIND_NAMES) <= listed


def test_the_report_and_the_web_app_show_every_registered_kind():
    from xaiq.report.html import KIND_SECTIONS
    from xaiq.serve.tables import KIND_TABLES

    assert sorted(KIND_SECTIONS) == sorted(KIND_NAMES)
    assert sorted(KIND_TABLES) == sorted(KIND_NAMES)


@pytest.mark.parametrize("name", KIND_NAMES)
def test_each_kind_builds_a_spec_of_itself_from_no_flags(name):
    spec = KINDS[name].build({}, None)
    assert spec["kind"] == name
    with pytest.raises(SpecError, match="dataset must be a non-empty string"):
        validate_spec(spec, check_dataset=False)


@pytest.mark.parametrize("name", KIND_NAMES)
def test_the_unknown_key_message_lists_the_kinds_own_keys(name):
    with pytest.raises(SpecError, match=f"unknown key 'nope' for a {name} job") as err:
        validate_spec({"kind": name, "dataset": "digits", "model": "m", "nope": 1})
    for key in KINDS[name].keys:
        assert key in str(err.value)


def test_an_unknown_kind_is_refused_with_the_known_ones():
    with pytest.raises(SpecError, match="kind must be one of attribution, disagreement, attack"):
        get_kind("sweep")
    with pytest.raises(SpecError, match="kind must be one of"):
        validate_spec({"kind": ["attack"], "dataset": "digits", "model": "m"})


def test_a_kind_is_registered_once():
    with pytest.raises(ValueError, match="'attack' is already registered"):
        register_kind(KINDS["attack"])


def echo_batch(claim, model, batch, rows, root):
    """A kind that computes nothing (the registry test's added kind)."""


def test_a_kind_added_to_the_registry_is_validated_and_dispatched(monkeypatch):
    seen = []

    def validate(spec, raw, check):
        seen.append(spec["word"])
        if not isinstance(spec["word"], str):
            raise SpecError(f"word must be text, got {spec['word']!r}")

    echo = Kind(
        name="echo",
        keys={"word": "hi"},
        validate=validate,
        build=lambda flags, path: {"kind": "echo", **flags},
        compute=f"{__name__}:echo_batch",
        stage="explain",
    )
    monkeypatch.setitem(KINDS, "echo", echo)
    spec = validate_spec(
        {"kind": "echo", "dataset": "digits", "model": "m", "word": "ok"}, check_dataset=False
    )
    assert spec["word"] == "ok" and spec["shard_size"] == 64 and seen == ["ok"]
    assert (
        validate_spec({"kind": "echo", "dataset": "d", "model": "m"}, check_dataset=False)["word"]
        == "hi"
    )
    with pytest.raises(SpecError, match="word must be text, got 3"):
        validate_spec({"kind": "echo", "dataset": "d", "model": "m", "word": 3})
    with pytest.raises(SpecError, match="unknown key 'methods' for a echo job"):
        validate_spec({"kind": "echo", "dataset": "d", "model": "m", "methods": ["saliency"]})

    from xaiq.worker.compute import kind_function

    assert kind_function("echo") is echo_batch
