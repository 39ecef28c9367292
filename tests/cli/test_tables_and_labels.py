"""The installed ``xaiq`` script on a real store: tables that fit 80 and 100 columns (no
number split, no header broken mid-word), markdown/latex, names and tags, and the documented
behaviours (``--json`` everywhere, ``--job 1,3``, ``export --out -``, help printed once,
``cancel`` of a finished job, cross-model jobs named in full)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from xaiq.cli.output import column_formatter

from .test_console_script import LEAVES, ROOT


def script() -> str:
    """The venv's console script (``make install`` puts it beside the interpreter)."""
    import shutil
    import sys

    beside = Path(sys.executable).with_name("xaiq")
    found = str(beside) if beside.exists() else shutil.which("xaiq")
    if found is None:
        pytest.fail("the xaiq console script is not installed (run `make install`)")
    return found


SUBMIT = [
    "submit",
    "disagreement",
    "-d",
    "digits",
    "--limit",
    "6",
    "--methods",
    "integrated_gradients,saliency,grad_cam",
    "--superpixels",
    "grid",
    "--n-segments",
    "16,49",
]


def run(home: Path, *args: str, columns: int = 100, ok: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XAIQ_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["XAIQ_HOME"] = str(home)
    env["COLUMNS"] = str(columns)
    done = subprocess.run(
        [script(), *args], env=env, capture_output=True, text=True, timeout=180, cwd=home
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """Job 1: one model, named ``base`` with tags; job 2: across two models."""
    home = tmp_path_factory.mktemp("xaiq-home")
    run(home, *SUBMIT, "-m", "digits-cnn", "--name", "base", "--tag", "paper", "-t", "fig2")
    run(home, *SUBMIT[:-4], "--models", "digits-cnn,digits-cnn-weak", "--json")
    return home


@pytest.fixture(scope="module")
def stats_json(home: Path) -> list[dict]:
    return json.loads(run(home, "stats", "disagreement", "--job", "1", "--json").stdout)


@pytest.fixture(scope="module")
def compare_json(home: Path) -> list[dict]:
    args = ["stats", "disagreement", "--job", "1", "--compare", "n_segments", "--json"]
    return json.loads(run(home, *args).stdout)


@pytest.fixture(scope="module")
def jobs_json(home: Path) -> dict[int, dict]:
    return {j["job"]: j for j in json.loads(run(home, "list", "--json").stdout)}


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


def numbers(text: str) -> list[str]:
    return NUMBER.findall(text)


def assert_fits(out: str, width: int, columns: list[str]) -> None:
    """Every line within ``width``; no header broken inside a word (a piece of a column name
    that is not the whole name ends at an underscore or starts after one)."""
    for line in out.splitlines():
        assert len(line) <= width, line
    tokens = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", out))
    for name in columns:
        for token in tokens:
            if token == name or len(token) < 3 or len(token) >= len(name):
                continue
            if name.startswith(token) and not token.endswith("_") and token + "_" not in name:
                assert token in columns or f"_{token}" not in name, (token, name)
                pytest.fail(f"header {name!r} broken mid-word: {token!r}")
            if name.endswith(token) and name[-len(token) - 1] != "_" and token not in columns:
                pytest.fail(f"header {name!r} broken mid-word: ...{token!r}")


@pytest.mark.parametrize("width", [80, 100])
def test_stats_tables_fit_and_keep_every_interval_number_whole(
    home: Path, stats_json: list[dict], width: int
) -> None:
    rows = stats_json
    out = run(home, "stats", "disagreement", "--job", "1", columns=width).stdout
    assert_fits(out, width, [*rows[0].keys(), *{r["metric"] for r in rows}])
    found = numbers(out)
    for col in ("mean", "ci_low", "ci_high"):
        fmt = column_formatter(v for r in rows for v in (r["mean"], r["ci_low"], r["ci_high"]))
        for r in rows:
            if r[col] is not None:
                assert fmt(r[col]) in found, (col, fmt(r[col]))


@pytest.mark.parametrize("width", [80, 100])
def test_compare_and_list_fit_without_splitting_numbers(
    home: Path, compare_json: list[dict], width: int
) -> None:
    args = ["stats", "disagreement", "--job", "1", "--compare", "n_segments"]
    rows = compare_json
    out = run(home, *args, columns=width).stdout
    # the table heads p_adjusted as "p_adj (Holm, N tests)": a label, not a broken name
    assert "Holm" in out
    assert_fits(out, width, [k for k in rows[0] if k != "p_adjusted"])
    found = numbers(out)
    for col in ("diff", "diff_low", "diff_high", "p_adjusted"):  # tables show p adjusted
        fmt = column_formatter(r[col] for r in rows)
        assert all(fmt(r[col]) in found for r in rows if r[col] is not None), col
    listed = run(home, "list", columns=width).stdout
    assert_fits(listed, width, ["shards_done", "created_at", "samples"])
    assert {"1", "2", "6"} <= set(numbers(listed))


def test_a_wide_terminal_shows_the_full_table(home: Path) -> None:
    out = run(home, "stats", "disagreement", "--job", "1", columns=250)
    assert "ci_low" in out.stdout and "null_reason" in out.stdout
    assert "narrowed" not in out.stderr


def test_markdown_and_latex_tables_round_each_column_one_way(home: Path) -> None:
    md = run(home, "stats", "disagreement", "--job", "1", "-M", "euclidean", "-f", "markdown")
    lines = md.stdout.splitlines()
    assert lines[0].startswith("| pair | n_segments | metric |")
    assert set(lines[1].split("|")[1:-1]) <= {"---", "---:"}
    means = [line.split("|")[7].strip() for line in lines[2:] if line.startswith("|")]
    assert means and all(re.fullmatch(r"\d\.\d{3}", m) for m in means)
    assert lines[-1].startswith("Table: disagreement")
    tex = run(home, "stats", "disagreement", "--job", "1", "-M", "euclidean", "--format", "latex")
    assert r"\begin{tabular}" in tex.stdout and r"\toprule" in tex.stdout
    assert r"integrated\_gradients vs grad\_cam" in tex.stdout
    # CSV keeps full precision
    full = list(csv.DictReader(io.StringIO(run(home, "stats", "disagreement", "-f", "csv").stdout)))
    assert any(len(r["mean"].split(".")[-1]) > 3 for r in full)


def test_names_and_tags_are_listed_and_select_jobs(
    home: Path, jobs_json: dict[int, dict], stats_json: list[dict]
) -> None:
    assert jobs_json[1]["name"] == "base" and jobs_json[1]["tags"] == ["fig2", "paper"]
    assert jobs_json[2]["name"] is None and jobs_json[2]["tags"] == []
    tagged = json.loads(run(home, "list", "--tag", "paper", "--name", "base", "--json").stdout)
    assert [j["job"] for j in tagged] == [1]
    assert json.loads(run(home, "list", "--tag", "paper,nope", "--json").stdout) == []
    by_name = json.loads(run(home, "stats", "disagreement", "--job", "base", "--json").stdout)
    assert by_name == stats_json
    bad = run(home, "stats", "disagreement", "--job", "nobody", ok=False)
    assert bad.returncode == 2 and "no job named 'nobody'" in bad.stderr
    refused = run(home, *SUBMIT, "-m", "digits-cnn", "--name", "12", ok=False)
    assert refused.returncode == 2 and "'12'" in refused.stderr


def test_cross_model_jobs_name_every_model(home: Path, jobs_json: dict[int, dict]) -> None:
    assert jobs_json[2]["model"] == "digits-cnn,digits-cnn-weak"
    out = run(home, "stats", "disagreement", "--job", "2", columns=250).stdout
    assert "model digits-cnn,digits-cnn-weak" in out.splitlines()[0]


def test_every_command_with_format_takes_json() -> None:
    import typer

    from xaiq.cli.main import app

    root = typer.main.get_command(app)
    for leaf in LEAVES:
        command = root
        for name in leaf:
            command = command.commands[name]
        opts = {o for p in command.params for o in p.opts}
        if "--format" in opts and leaf != ("export",):  # export's --format is a file format
            assert "--json" in opts, leaf


@pytest.mark.parametrize(
    "args",
    [["stats", "sanity"], ["errors", "1"], ["models"], ["metrics"]],
    ids=" ".join,
)
def test_every_data_command_takes_json(home: Path, args: list[str]) -> None:
    out = run(home, *args, "--json")
    assert out.stdout == "" or isinstance(json.loads(out.stdout), list | dict)


def test_explain_takes_json(home: Path, tmp_path: Path) -> None:
    args = ["explain", "digits:1", "-m", "digits-cnn", "--methods", "saliency"]
    rows = json.loads(run(home, *args, "--out", str(tmp_path), "--json").stdout)
    assert rows[0]["method"] == "saliency"


def test_job_lists_take_commas(home: Path) -> None:
    args = ["stats", "disagreement", "--job", "1,2", "-g", "pair,job", "--json"]
    rows = json.loads(run(home, *args).stdout)
    assert {r["job"] for r in rows} == {1, 2}


def test_export_to_stdout(home: Path) -> None:
    out = run(home, "export", "1", "--what", "samples", "--out", "-")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 6 and "wrote 6 samples rows of job 1 to stdout" in out.stderr
    assert not (home / "-").exists()
    lines = run(home, "export", "1", "-w", "samples", "-f", "json", "-o", "-").stdout.splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["sample_index"] == 0


@pytest.mark.parametrize("args", [[], ["stats"], ["db"]], ids=lambda a: " ".join(a) or "xaiq")
def test_groups_print_their_help_once(home: Path, args: list[str]) -> None:
    out = run(home, *args)
    assert out.stdout.count("Usage:") == 1


def test_cancel_of_a_finished_job_says_so_and_exits_1(home: Path) -> None:
    out = run(home, "cancel", "1", ok=False)
    assert out.returncode == 1
    assert "job 1 already finished (succeeded); nothing to cancel" in out.stderr
    assert "cancel requested" not in out.stderr


def test_each_job_kind_has_its_own_submit_command_with_only_its_options(tmp_path: Path) -> None:
    out = run(tmp_path, "submit", "disagreement", "--help", columns=200).stdout
    assert "--superpixels" in out and "--models" in out and "--max-iters" not in out
    assert "required unless --models" in out
    model_line = next(line for line in out.splitlines() if "--model " in line)
    assert "required]" not in model_line  # not flagged [required]: --models replaces it
    attack = run(tmp_path, "submit", "attack", "--help", columns=200).stdout
    assert "--max-iters" in attack and "--superpixels" not in attack
    attribution = run(tmp_path, "submit", "attribution", "--help", columns=200).stdout
    assert "--methods" in attribution and "--compare" not in attribution
    listing = run(tmp_path, "submit", columns=200).stdout
    assert all(kind in listing for kind in ("attribution", "disagreement", "attack"))
