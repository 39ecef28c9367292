"""The installed ``xaiq`` console script, run as users run it (a subprocess), on bad input.

Every command x every class of usage error: no traceback, at most 3 lines on stderr, exit 2,
and the offending option, argument or value named. Plus the exit codes the help texts promise.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

from xaiq.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def _script() -> str:
    """The venv's console script (``make install`` puts it beside the interpreter)."""
    beside = Path(sys.executable).with_name("xaiq")
    found = str(beside) if beside.exists() else shutil.which("xaiq")
    if found is None:
        pytest.fail("the xaiq console script is not installed (run `make install`)")
    return found


def xaiq(*args: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XAIQ_")}
    # the script runs this checkout's code, whichever checkout the venv was installed from
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["XAIQ_HOME"] = str(home)
    env["COLUMNS"] = "100"
    return subprocess.run(
        [_script(), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


# (arguments, what the error must name) for every command and each class of usage error
# that command can meet; the unknown-option case of every command is generated below.
CASES: list[tuple[list[str], str]] = [
    # unknown commands, at the root and in every group
    (["frobnicate"], "frobnicate"),
    (["stats", "frobnicate"], "frobnicate"),
    (["db", "frobnicate"], "frobnicate"),
    (["models", "frobnicate"], "frobnicate"),
    # missing arguments and options
    (["status"], "job"),
    (["wait"], "job"),
    (["cancel"], "job"),
    (["retry"], "job"),
    (["resume"], "job"),
    (["errors"], "job"),
    (["show", "1"], "sample"),
    (["report"], "job"),
    (["export", "1"], "--out"),
    (["explain"], "image"),
    (["explain", "digits:1"], "--model"),
    (["compare", "digits:1"], "--model"),
    (["compare-maps", "a.npy"], "map_b"),
    (["attack", "--dataset", "digits"], "--model"),
    (["models", "fetch"], "name"),
    # an option given without its value
    (["list", "--limit"], "--limit"),
    (["stats", "attack", "--job"], "--job"),
    # a value of the wrong type
    (["status", "abc"], "abc"),
    (["wait", "soon"], "soon"),
    (["wait", "1", "--timeout", "soon"], "soon"),
    (["cancel", "first"], "first"),
    (["retry", "last"], "last"),
    (["resume", "last"], "last"),
    (["errors", "1", "--limit", "all"], "all"),
    (["show", "x", "0"], "'x'"),
    (["show", "1", "zero"], "zero"),
    (["report", "one"], "one"),
    (["export", "one", "--out", "x.csv"], "one"),
    (["list", "--limit", "ten"], "ten"),
    (["submit", "attack", "--limit", "ten"], "ten"),
    (["submit", "attack", "--seed", "1.5"], "1.5"),
    (["submit", "attribution", "--limit", "ten"], "ten"),
    (["submit", "disagreement", "--from-job", "x"], "x"),
    (["attack", "-m", "digits-cnn", "--max-iters", "many"], "many"),
    (["attack", "-m", "digits-cnn", "--frac", "half"], "half"),
    (["compare", "digits:1", "-m", "digits-cnn", "--n-segments", "many"], "many"),
    (["compare-maps", "a.npy", "b.npy", "--k-frac", "half"], "half"),
    (["explain", "digits:1", "-m", "digits-cnn", "--target", "cat"], "cat"),
    (["worker", "--concurrency", "two"], "two"),
    (["workers", "--max-age", "old"], "old"),
    (["scheduler", "--max-in-flight", "many"], "many"),
    (["flower", "--port", "http"], "http"),
    (["flower", "--port", "70000"], "70000"),
    (["serve", "--port", "http"], "http"),
    (["serve", "--port", "70000"], "70000"),
    (["stats", "disagreement", "--job", "x1"], "x1"),
    (["stats", "attack", "--job", "x1"], "x1"),
    (["stats", "faithfulness", "--job", "x1"], "x1"),
    (["stats", "maps", "--job", "x1"], "x1"),
    (["stats", "sanity", "--threshold", "high"], "high"),
    (["models", "train-digits", "--seed", "s"], "'s'"),
    (["attack", "-m", "digits-cnn", "--clamp=yes"], "--clamp"),
    # a bad choice
    (["submit", "frob"], "frob"),
    (["datasets", "--format", "xml"], "xml"),
    (["methods", "--format", "xml"], "xml"),
    (["metrics", "--format", "xml"], "xml"),
    (["health"], "component"),
    (["health", "scheduler", "--max-age", "soon"], "soon"),
    (["models", "--format", "xml"], "xml"),
    (["stats", "disagreement", "--format", "xml"], "xml"),
    (["stats", "attack", "--format", "xml"], "xml"),
    # extra arguments
    (["models", "fetch", "resnet18", "extra"], "extra"),
]


def leaf_commands(command=None, path=()) -> list[tuple[str, ...]]:  # noqa: ANN001
    """Every runnable command path: ``("submit",)``, ``("stats", "attack")``, ..."""
    command = command or typer.main.get_command(app)
    subs = getattr(command, "commands", None)
    if not subs:
        return [path]
    found = [path] if path and getattr(command, "invoke_without_command", False) else []
    for name, sub in subs.items():
        found += leaf_commands(sub, (*path, name))
    return found


LEAVES = leaf_commands()
UNKNOWN_OPTION = [([*leaf, "--bogus-option"], "--bogus-option") for leaf in LEAVES]


def assert_usage_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    report = f"exit {proc.returncode}\nstderr:\n{proc.stderr}\nstdout:\n{proc.stdout}"
    assert "Traceback" not in proc.stderr + proc.stdout, report
    assert proc.returncode == 2, report
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3, report
    assert lines[0].startswith("error: "), report
    assert needle.lower() in lines[0].lower(), f"{needle!r} not named\n{report}"


@pytest.mark.parametrize(
    ("args", "needle"), CASES + UNKNOWN_OPTION, ids=[" ".join(a) for a, _ in CASES + UNKNOWN_OPTION]
)
def test_a_usage_error_is_one_message_naming_the_culprit_with_exit_2(
    args: list[str], needle: str, tmp_path: Path
) -> None:
    proc = xaiq(*args, home=tmp_path)
    assert_usage_error(proc, needle)
    assert "--help" in proc.stderr  # the "Try 'xaiq CMD --help'" hint


def test_the_table_covers_a_typed_or_missing_value_for_every_command_that_takes_one() -> None:
    typed = {
        tuple(args[: len(leaf)])
        for args, _ in CASES
        for leaf in LEAVES
        if tuple(args[: len(leaf)]) == leaf
    }
    # commands whose every parameter is a free string or a flag: only unknown options apply
    untyped = {("db", "upgrade")}
    assert set(LEAVES) - untyped <= typed, sorted(set(LEAVES) - untyped - typed)


def test_the_usage_hint_names_the_command_that_was_run(tmp_path: Path) -> None:
    proc = xaiq("stats", "attack", "--job", "x", home=tmp_path)
    assert "Try 'xaiq stats attack --help'" in proc.stderr, proc.stderr


@pytest.mark.parametrize("leaf", [(), *LEAVES], ids=lambda leaf: " ".join(leaf) or "xaiq")
def test_dash_h_shows_the_help_of_every_command(leaf: tuple[str, ...], tmp_path: Path) -> None:
    proc = xaiq(*leaf, "-h", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout and "Traceback" not in proc.stderr


def test_xaiq_alone_prints_the_help_on_stdout_and_exits_0(tmp_path: Path) -> None:
    for args in ([], ["stats"], ["db"]):
        proc = xaiq(*args, home=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "Usage:" in proc.stdout and proc.stderr == ""


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    from xaiq import __version__

    proc = xaiq("--version", home=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"xaiq {__version__}", proc


def _partial_job(home: Path) -> int:
    """A job with one unreadable image: it finishes ``partial``."""
    from PIL import Image

    folder = home.parent / "imgs"
    (folder / "a").mkdir(parents=True)
    Image.new("L", (28, 28), 128).save(folder / "a" / "good.png")
    (folder / "a" / "broken.png").write_bytes(b"not a png")
    spec = f'{{"dataset": "folder:{folder}", "methods": ["saliency"], "model": "digits-cnn"}}'
    (home.parent / "spec.json").write_text(spec)
    proc = xaiq("submit", "attribution", "--spec", str(home.parent / "spec.json"), home=home)
    # the job ran in-process and did not succeed: exit 1 and one line saying why
    assert proc.returncode == 1, proc.stderr
    job = int(proc.stderr.split("job ")[1].split(":")[0])
    assert f"job {job} ended partial: 1 samples failed" in proc.stderr.splitlines()[-1]
    return job


def test_wait_on_a_job_that_did_not_succeed_exits_1(tmp_path: Path) -> None:
    home = tmp_path / "home"
    job = _partial_job(home)
    proc = xaiq("wait", str(job), "--json", home=home)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert '"status": "partial"' in proc.stdout


def test_ctrl_c_exits_130_with_one_line(tmp_path: Path) -> None:
    # faulthandler: if the process outlives the Ctrl-C, SIGABRT makes it print every
    # thread's stack into the failure message
    env = {**os.environ, "XAIQ_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env["PYTHONFAULTHANDLER"] = "1"
    # repairing the misclassified digits with one pixel and tiny steps: runs until stopped
    args = ["attack", "--dataset", "digits", "-m", "digits-cnn-weak", "--limit", "20"]
    args += ["--frac", "0.002", "--sigma", "0.001"]
    args += ["--max-iters", "1000000", "--strategies", "random"]
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err:
        # SIGINT as a terminal gives it: a test run launched in the background (`pytest &`
        # in a script) has SIGINT ignored, the child inherits that, and Python then
        # rightly keeps ignoring it (the stack dump showed the search still running)
        proc = subprocess.Popen(
            [_script(), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 120
            # "2 of 20 samples to repair": the search has started
            while "to repair" not in err_path.read_text() and proc.poll() is None:
                assert time.monotonic() < deadline, err_path.read_text()
                time.sleep(0.2)
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)
                proc.wait(timeout=30)
                pytest.fail("still running 60 s after Ctrl-C:\n" + err_path.read_text()[-6000:])
        finally:
            proc.kill()
    lines = [line for line in err_path.read_text().splitlines() if line.strip()]
    assert proc.returncode == 130, lines
    assert lines[-1] == "error: interrupted" and "Traceback" not in "".join(lines), lines


def test_list_with_no_jobs_says_so_naming_the_store(tmp_path: Path) -> None:
    proc = xaiq("list", home=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "", proc
    assert proc.stderr.strip() == f"no jobs in sqlite:///{tmp_path}/xaiq.sqlite", proc.stderr
    csv = xaiq("list", "--format", "csv", home=tmp_path)
    assert csv.stdout.strip().startswith("job,name,kind,status"), csv


def test_the_demo_ends_by_saying_how_to_query_its_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from xaiq.demo import query_hint

    monkeypatch.setenv("XAIQ_HOME", "demo-out")
    hint = query_hint({"disagreement": 1, "attack": 2})
    assert "XAIQ_HOME=demo-out " in hint and " list" in hint and "--job 1" in hint


def test_every_short_flag_means_one_option_across_all_commands() -> None:
    root = typer.main.get_command(app)
    meanings: dict[str, set[str]] = {}
    for leaf in LEAVES:
        command = root
        for name in leaf:
            command = command.commands[name]
        for param in command.params:
            longs = [o for o in param.opts if o.startswith("--")]
            for opt in param.opts + param.secondary_opts:
                if len(opt) == 2 and opt.startswith("-"):
                    meanings.setdefault(opt, set()).add(longs[0] if longs else param.name)
    clashes = {flag: names for flag, names in meanings.items() if len(names) > 1}
    assert not clashes, clashes
    assert meanings["-m"] == {"--model"}


def test_submit_refuses_a_bad_map_dtype_naming_it(tmp_path: Path) -> None:
    proc = xaiq(
        "submit", "attribution", "-d", "digits", "-m", "digits-cnn", "--methods", "saliency",
        "--map-dtype", "int8", home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "map_dtype" in proc.stderr and "int8" in proc.stderr
