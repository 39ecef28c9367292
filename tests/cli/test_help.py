"""What --help promises: examples that parse, word metavars, the attack's options spelled and
defaulted the same on `attack` and `submit attack`."""

from __future__ import annotations

import json
import shlex

import pytest
import typer

from xaiq.cli import helptext
from xaiq.cli.main import app, main
from xaiq.cli.options import ATTACK_DEFAULTS

from .test_console_script import LEAVES


def _tree():  # noqa: ANN202 - a click command
    root = typer.main.get_command(app)
    root.name = "xaiq"
    helptext.apply(root)
    return root


def _command(root, leaf):  # noqa: ANN001, ANN202
    for name in leaf:
        root = root.commands[name]
    return root


@pytest.mark.parametrize("leaf", LEAVES, ids=" ".join)
def test_every_command_ends_its_help_with_examples_that_parse(leaf: tuple[str, ...]) -> None:
    root = _tree()
    examples = helptext.EXAMPLES.get(" ".join(leaf))
    assert examples, f"no examples for `xaiq {' '.join(leaf)}`"
    assert "Examples:" in (_command(root, leaf).epilog or "")
    for example in examples:
        words = [w for w in shlex.split(example) if "=" not in w or w.startswith("-")]
        assert words[0] == "xaiq", example
        # parsing only (make_context): unknown options, bad types and choices all raise
        with root.make_context("xaiq", words[1:], resilient_parsing=False) as ctx:
            sub, rest = ctx, words[1:]
            command = root
            while hasattr(command, "commands") and rest and rest[0] in command.commands:
                command = command.commands[rest[0]]
                rest = rest[1:]
                sub = command.make_context(command.name, rest, parent=sub)
            assert sub.command is command


@pytest.mark.parametrize("leaf", LEAVES, ids=" ".join)
def test_option_metavars_read_as_words(leaf: tuple[str, ...]) -> None:
    command = _command(_tree(), leaf)
    for param in command.params:
        if param.param_type_name == "option":
            assert param.metavar is not None and "<" not in param.metavar, (param.name, leaf)


def test_the_shared_attack_defaults_are_the_librarys() -> None:
    from xaiq.xai.attack.params import PARAMS

    for key, value in ATTACK_DEFAULTS.items():
        expected = PARAMS[key].default
        if isinstance(expected, tuple):
            expected = ",".join(expected)
        assert value == expected, key


def test_attack_options_are_spelled_the_same_on_attack_and_submit() -> None:
    root = _tree()

    def spellings(command) -> set[str]:  # noqa: ANN001
        return {o for p in command.params for o in (*p.opts, *p.secondary_opts)}

    shared = {"--mode", "--target", "--all", "--frac", "--sigma", "--clamp", "--no-clamp"}
    shared |= {"--max-iters", "--candidates", "-k", "--strategies", "--compare", "--n-masks"}
    shared |= {"--s", "--p1", "--seed", "--batch-size", "--limit", "-m", "-d", "--param"}
    submit_attack = root.commands["submit"].commands["attack"]
    assert shared <= spellings(root.commands["attack"]) & spellings(submit_attack)


def test_submit_attack_options_reach_the_stored_spec(tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    from xaiq.db.session import dispose_engines

    monkeypatch.setenv("XAIQ_HOME", str(tmp_path))
    monkeypatch.delenv("XAIQ_DB_URL", raising=False)
    monkeypatch.delenv("XAIQ_BROKER_URL", raising=False)
    args = ["submit", "attack", "-d", "digits", "-m", "digits-cnn-weak", "--limit", "2"]
    args += ["--mode", "targeted", "--target", "3", "--frac", "0.3", "--max-iters", "3"]
    args += ["--strategies", "central", "--no-clamp", "--json"]
    try:
        assert main(args) == 0, capsys.readouterr().err
        job = json.loads(capsys.readouterr().out)["job"]
        from xaiq.db.jobs import get_job
        from xaiq.db.session import read_session

        with read_session() as session:
            spec = get_job(session, job).spec
    finally:
        dispose_engines()
    attack = spec["attack"]
    assert attack["mode"] == "targeted" and attack["target_class"] == 3
    assert attack["frac"] == 0.3 and attack["max_iters"] == 3 and attack["clamp"] is False
    assert list(attack["strategies"]) == ["central"]
