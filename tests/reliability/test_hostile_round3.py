"""Hardening, round three (issue 23, part A), through the CLI the way users run it: passwords
holding URL-special characters never print, data-derived names are drawn literally in
figures, non-finite and unbounded parameters are refused at submit, CSV cells cannot be read
as spreadsheet formulas, ``--out`` files are written whole or not at all, impossible attack
budgets and targets are refused at submit, and ``target_kind`` records the class explained."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .faults import STORE, USAGE, fill, one_line, sqlite_procs, tmpfs
from .images import digit_image
from .services import free_port

# every character with a meaning somewhere in a URL, and a few that shells and parsers like
SPECIALS = "@:/?#&=%;+[] !$'()*,~\"\\"
# passwords built of letters no error message contains, so any 3-letter piece is a leak
HOSTILE = [f"QZ{c}JX{c}KW" for c in SPECIALS] + [
    "Qu?est9zz",
    "x?password=zz",
    "a&b?c",
    "ha#sh?",
    "s3cr?etpw",
    "QZ@JX/KW?VZ#WQ&",
    "QZJ%40XKW",
    "/QZJXKW",
    "QZJXKW@",
    "@@QZJ??XKW##",
]


def grams(secret: str, n: int = 3) -> set[str]:
    """Every ``n``-character substring of ``secret`` holding at least one letter or digit."""
    subs = {secret[i : i + n] for i in range(len(secret) - n + 1)}
    return {s for s in subs if any(ch.isalnum() for ch in s)}


def leaked(text: str, secret: str, known: str) -> set[str]:
    """The pieces of ``secret`` found in ``text`` that ``known`` (the text the URL shows with
    its password masked, the driver's words) does not explain."""
    return {g for g in grams(secret) if g in text and g not in known}


@pytest.mark.parametrize("password", HOSTILE)
def test_a_url_splitter_never_shows_any_piece_of_a_hostile_password(password: str) -> None:
    from xaiq.db.urls import normalise_url, redact_url, scrub

    for url in (
        f"postgresql://xaiq:{password}@127.0.0.1:5432/xaiq",
        f"postgresql://xaiq:{password}@127.0.0.1:5432/xaiq?sslmode=require",
        f"redis://:{password}@127.0.0.1:6379/0",
        f"postgresql://xaiq@127.0.0.1/xaiq?password={password.replace('&', '%26')}",
    ):
        shown = redact_url(url)
        known = "postgresql redis xaiq 127.0.0.1 5432 6379 sslmode require password"
        assert not leaked(shown, password, known), (url, shown)
        assert "127.0.0.1" in shown and "***" in shown, shown
        # a driver message quoting the password, or the pieces a parser cut at special chars
        # (kombu said "Port could not be cast to integer value as 's3cr'")
        pieces = re.split(r"[@:/?#&=%;]", password)
        quoted = f"cannot log in with {password!r} ({normalise_url(url)}) as {pieces}"
        assert not leaked(scrub(quoted, url), password, known), scrub(quoted, url)


@pytest.mark.parametrize("password", HOSTILE)
def test_normalising_a_url_keeps_its_host_and_its_password(password: str) -> None:
    from sqlalchemy.engine import make_url

    from xaiq.db.urls import normalise_url, split_url

    url = normalise_url(f"postgresql://xaiq:{password}@db.example:5433/xaiq?sslmode=require")
    parsed = make_url(url)
    assert (parsed.host, parsed.port, parsed.database) == ("db.example", 5433, "xaiq")
    # SQLAlchemy decodes %XX: a password typed already encoded stays what it meant
    wanted = password if "%40" not in password else password.replace("%40", "@")
    assert parsed.password == wanted
    assert parsed.query == {"sslmode": "require"}
    parts = split_url(normalise_url(f"redis://:{password}@127.0.0.1:6379/0"))
    assert parts is not None and (parts.host, parts.path) == ("127.0.0.1:6379", "/0")


def test_a_url_already_encoded_is_left_as_it_is() -> None:
    from xaiq.db.urls import normalise_url

    for url in (
        "postgresql://xaiq:Qu%3Fest@127.0.0.1:5432/xaiq",
        "redis://127.0.0.1:6379/0",
        "sqlite:////tmp/a@b:c/x.sqlite",
        "postgresql:///xaiq?host=/var/run/postgresql",
    ):
        assert normalise_url(url) == url


# the CLI: a sample of the hostile passwords, each a short subprocess
CLI_PASSWORDS = ["Qu?est9zz", "x?password=zz", "a&b?c", "ha#sh?", "QZ/JX/KW", "QZ@JX#KW?V"]


@pytest.mark.parametrize("password", CLI_PASSWORDS)
def test_an_unreachable_store_with_a_hostile_password_is_one_masked_line(
    tmp_path: Path, password: str
) -> None:
    url = f"postgresql://xaiq:{password}@127.0.0.1:{free_port()}/xaiq"
    proc = sqlite_procs(tmp_path).run("list", XAIQ_DB_URL=url)
    line = one_line(proc, STORE, "xaiq:***@127.0.0.1:")
    assert not leaked(proc.stdout + proc.stderr, password, line.replace("***", "")), line


@pytest.mark.parametrize(
    "args",
    [
        ("submit", "attribution", "-d", "digits", "-m", "digits-cnn", "--methods", "saliency"),
        ("worker",),
        ("scheduler",),
    ],
    ids=["submit", "worker", "scheduler"],
)
def test_an_unreachable_broker_with_a_hostile_password_is_one_masked_line(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    port = free_port()
    for password in ("s3cr?etpw", "QZ/JX#KW"):
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        proc = sqlite_procs(tmp_path).run(*args, XAIQ_BROKER_URL=url)
        line = one_line(proc, STORE, f"redis://:***@127.0.0.1:{port}/0")
        assert not leaked(proc.stdout + proc.stderr, password, "Error connecting"), line


# --- names read as formulas ------------------------------------------------------------------

FORMULA_NAMES = ["$\\frac{a$", "a$x^$b", "$$", "\\$a$"]


def test_literal_text_is_drawn_as_typed_never_as_mathtext() -> None:
    from matplotlib.figure import Figure

    from xaiq.xai.figures import comparison_figure, literal

    for name in FORMULA_NAMES:
        fig = Figure()
        text = fig.text(0, 0, literal(name))
        shown, is_math = text._preprocess_math(text.get_text())
        assert (shown, is_math) == (name, False), (name, shown, is_math)
    fig = comparison_figure(None, {"saliency": np.zeros((4, 4))}, title="true $\\frac{a$")
    fig.canvas.draw()  # a parse error would raise here
    assert fig._suptitle._preprocess_math(fig._suptitle.get_text()) == ("true $\\frac{a$", False)


def formula_folder(root: Path) -> Path:
    """A folder dataset whose class folders and file names are formulas to matplotlib."""
    for i, name in enumerate(FORMULA_NAMES[:2]):
        (root / name).mkdir(parents=True)
        Image.fromarray(digit_image(i)).save(root / name / f"{name}.png")
    return root


def test_show_and_report_draw_formula_names_literally(tmp_path: Path) -> None:
    data = formula_folder(tmp_path / "data")
    procs = sqlite_procs(tmp_path)
    ran = procs.run("submit", "disagreement", "-d", f"folder:{data}", "-m", "digits-cnn",
                    "--methods", "saliency,input_x_gradient", "--superpixels", "grid",
                    "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    job = str(json.loads(ran.stdout)["job"])
    for sample in ("0", "1"):
        out = tmp_path / f"s{sample}.png"
        shown = procs.run("show", job, sample, "--out", str(out))
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr[-2000:]
        assert out.stat().st_size > 1000
    report = tmp_path / "r.html"
    made = procs.run("report", job, "--out", str(report))
    assert made.returncode == 0, made.stderr[-2000:]
    page = report.read_text()
    # every example is a picture: none replaced by a note quoting a mathtext parse error
    assert 'class="note">sample' not in page and "ParseException" not in page
    assert page.count("data:image/png;base64,") >= 2


def test_a_model_file_named_as_a_formula_draws_its_name_literally(tmp_path: Path) -> None:
    import torch

    class Tiny(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)[:, :10] * 3.0

    model = tmp_path / "$\\frac{a$.pt"
    torch.jit.script(Tiny()).save(str(model))
    image = tmp_path / "a$x^$b.png"
    Image.fromarray(np.stack([digit_image(0)] * 3, axis=-1)).save(image)
    out = tmp_path / "c.png"
    procs = sqlite_procs(tmp_path, XAIQ_TRUST_TORCHSCRIPT="1")
    methods = "saliency,input_x_gradient"
    ran = procs.run("compare", str(image), "-m", f"torchscript:{model}", "--methods", methods,
                    "--superpixels", "grid", "--out", str(out))  # fmt: skip
    assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr[-3000:]
    assert out.stat().st_size > 1000


# --- non-finite and unbounded numbers --------------------------------------------------------

SUBMIT = ("submit", "attribution", "-d", "digits", "-m", "digits-cnn", "--limit", "1")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ((*SUBMIT, "--methods", "rise", "--param", "rise.n_masks=nan"), ("n_masks", "nan")),
        ((*SUBMIT, "--methods", "rise", "--param", "rise.n_masks=inf"), ("n_masks", "inf")),
        (
            (*SUBMIT, "--methods", "integrated_gradients", "--param",
             "integrated_gradients.n_steps=1e400"),
            ("n_steps", "1e400"),
        ),
        ((*SUBMIT, "--methods", "occlusion", "--param", "occlusion.window=nan"), ("window", "nan")),
        (
            ("submit", "attack", "-d", "digits", "-m", "digits-cnn", "--limit", "1", "--param",
             "rise.n_masks=inf"),
            ("n_masks", "inf"),
        ),
        (
            ("explain", "digits:0", "-m", "digits-cnn", "--methods", "occlusion", "--param",
             "occlusion.window=1e400"),
            ("window", "1e400"),
        ),
    ],
    ids=["rise-nan", "rise-inf", "ig-1e400", "occlusion-nan", "attack-inf", "explain-1e400"],
)  # fmt: skip
def test_a_number_that_is_not_finite_is_refused_by_name(
    tmp_path: Path, args: tuple[str, ...], named: tuple[str, ...]
) -> None:
    procs = sqlite_procs(tmp_path)
    one_line(procs.run(*args), USAGE, *named)
    if args[0] == "submit":  # nothing was written
        assert procs.run("list", "--json").stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("param", "named"),
    [
        ("blur_kernel=100001", ("blur_kernel", "100001", "101")),
        ("blur_kernel=10001", ("blur_kernel", "10001", "101")),
        ("blur_sigma=1e308", ("blur_sigma", "1e+308", "1000")),
        ("blur_sigma=nan", ("blur_sigma", "nan")),
    ],
)
def test_unbounded_faithfulness_parameters_are_refused_at_submit(
    tmp_path: Path, param: str, named: tuple[str, ...]
) -> None:
    procs = sqlite_procs(tmp_path)
    ran = procs.run("submit", "disagreement", "-d", "digits", "-m", "digits-cnn", "--methods",
                    "saliency,input_x_gradient", "--superpixels", "grid", "--limit", "1",
                    "--faithfulness", "--faith-param", param, timeout=60)  # fmt: skip
    one_line(ran, USAGE, *named)


def test_the_faithfulness_maxima_hold_in_the_library_too() -> None:
    import torch

    from xaiq.xai.errors import InvalidParameterError
    from xaiq.xai.faithfulness import MAX_BLUR_KERNEL, MAX_BLUR_SIGMA, blur

    x = torch.rand(1, 1, 8, 8)
    assert blur(x, MAX_BLUR_KERNEL, MAX_BLUR_SIGMA).shape == x.shape
    for size, sigma in ((MAX_BLUR_KERNEL + 2, 5.0), (11, MAX_BLUR_SIGMA * 2), (11, float("inf"))):
        with pytest.raises(InvalidParameterError, match="maximum"):
            blur(x, size, sigma)


# --- CSV cells a spreadsheet would run ---------------------------------------------------------

FORMULAS = ['=HYPERLINK("http:x","y")', "+1+cmd", "@SUM(1)", "-2+3", "-0.5"]


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped_and_numbers_are_kept(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i, name in enumerate(FORMULAS):
        Image.fromarray(digit_image(i)).save(data / f"{name}.png")
    (data / "@SUM(2).png").write_text("not an image")  # fails: its key is in `errors`
    procs = sqlite_procs(tmp_path)
    ran = procs.run("submit", "attribution", "-d", f"folder:{data}", "-m", "digits-cnn",
                    "--methods", "saliency", "--json")  # fmt: skip
    job = str(json.loads(ran.stdout)["job"])
    out = tmp_path / "samples.csv"
    assert procs.run("export", job, "--what", "samples", "--format", "csv", "--out",
                     str(out)).returncode == 0  # fmt: skip
    rows = list(csv.DictReader(out.open(newline="")))
    keys = {r["key"] for r in rows}
    assert keys == {"'" + f"{name}.png" for name in FORMULAS}, keys  # even "-0.5.png": text
    for r in rows:  # the numbers of the same rows stay numbers
        assert float(r["prob_pred"]) > 0 and not r["prob_pred"].startswith("'")
    errors = procs.run("errors", job, "--format", "csv")
    assert errors.returncode == 0, errors.stderr
    failed = list(csv.DictReader(io.StringIO(errors.stdout)))
    assert [r["key"] for r in failed] == ["'@SUM(2).png"]


def test_csv_text_escapes_formulas_but_not_numbers() -> None:
    from xaiq.db.export import csv_text

    for text in ("=1+1", "+cmd", "-cmd", "@SUM(1)", "\tx", "\rx", "-", "+", "=", "-1-1"):
        assert csv_text(text) == "'" + text
    for kept in ("-0.5", "+3", "-1e-05", "1.5", "abc", "", "a=b", 0.5, -0.5, -3, None):
        assert csv_text(kept) == kept


# --- --out files: whole or not at all ---------------------------------------------------------


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".xaiq-"))


def test_a_full_disk_leaves_no_empty_or_partial_file_at_out(tmp_path: Path) -> None:
    procs = sqlite_procs(tmp_path)
    ran = procs.run("submit", "attribution", "-d", "digits", "-m", "digits-cnn", "--methods",
                    "saliency", "--limit", "2", "--json")  # fmt: skip
    job = str(json.loads(ran.stdout)["job"])
    with tmpfs(tmp_path / "full", "256k") as mnt:
        kept = mnt / "kept.csv"
        kept.write_text("an earlier export\n")
        fill(mnt, 0)
        commands = {
            "r.html": ("report", job),
            "e.csv": ("export", job, "--what", "samples", "--format", "csv"),
            "e.parquet": ("export", job, "--what", "samples", "--format", "parquet"),
            "s.png": ("show", job, "0"),
            "kept.csv": ("export", job, "--what", "samples", "--format", "csv"),
        }
        for name, args in commands.items():
            proc = procs.run(*args, "--out", str(mnt / name))
            one_line(proc, USAGE, str(mnt / name), "No space left")
        assert not (mnt / "r.html").exists() and not (mnt / "e.csv").exists()
        assert not (mnt / "e.parquet").exists() and not (mnt / "s.png").exists()
        assert kept.read_text() == "an earlier export\n"  # the old file is still whole
        assert leftovers(mnt) == []


def test_an_unwritable_out_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    procs = sqlite_procs(tmp_path)
    ran = procs.run("submit", "attribution", "-d", "digits", "-m", "digits-cnn", "--methods",
                    "saliency", "--limit", "1", "--json")  # fmt: skip
    job = str(json.loads(ran.stdout)["job"])
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for args in (("report", job), ("show", job, "0"), ("export", job, "--what", "samples")):
        proc = procs.run(*args, "--out", str(blocker / "x" / "out.png"))
        one_line(proc, USAGE, str(blocker))
    assert blocker.read_text() == "not a folder" and leftovers(tmp_path) == []


def test_a_write_that_fails_half_way_removes_its_temporary_file(tmp_path: Path) -> None:
    import errno

    from xaiq.db.files import atomic_output

    out = tmp_path / "r.html"
    out.write_text("old")
    with pytest.raises(OSError, match="No space") as caught, atomic_output(out) as tmp:
        tmp.write_text("half of it")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.filename == str(out)  # the message names --out, not the temporary
    assert out.read_text() == "old" and leftovers(tmp_path) == []
    with atomic_output(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new" and leftovers(tmp_path) == []


# --- attack budgets and targets, checked at submit ----------------------------------------------

ATTACK = ("submit", "attack", "-d", "digits", "-m", "digits-cnn", "--limit", "2")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--frac", "1e-9"), ("frac=1e-09", "0 pixels", "28x28")),
        (("--mode", "targeted", "--target", "99"), ("target_class=99", "10 classes")),
        (("--mode", "targeted", "--target", "10"), ("target_class=10", "10 classes")),
    ],
    ids=["budget-0", "class-99", "class-10"],
)
def test_an_attack_that_cannot_run_on_any_sample_is_refused_at_submit(
    tmp_path: Path, args: tuple[str, ...], named: tuple[str, ...]
) -> None:
    procs = sqlite_procs(tmp_path)
    one_line(procs.run(*ATTACK, *args), USAGE, *named)
    assert procs.run("list", "--json").stdout.strip() == "[]"  # nothing was written


def test_the_smallest_budget_and_the_last_class_are_accepted() -> None:
    from xaiq.scheduler.spec import validate_spec

    base = {"kind": "attack", "dataset": "digits", "model": "digits-cnn", "limit": 1}
    spec = validate_spec({**base, "attack": {"frac": 1 / 784, "mode": "targeted",
                                             "target_class": 9}})  # fmt: skip
    assert spec["attack"]["target_class"] == 9 and spec["attack"]["frac"] == 1 / 784


# --- target_kind records the class each map explains --------------------------------------------


def test_target_label_on_unlabelled_samples_is_stored_and_grouped_as_pred(tmp_path: Path) -> None:
    flat = tmp_path / "flat"  # a flat folder: no labels, the prediction is explained
    flat.mkdir()
    for i in range(2):
        Image.fromarray(digit_image(i)).save(flat / f"{i}.png")
    procs = sqlite_procs(tmp_path)
    jobs = []
    for dataset in (f"folder:{flat}", "digits"):
        ran = procs.run("submit", "disagreement", "-d", dataset, "--limit", "2", "-m",
                        "digits-cnn", "--methods", "saliency,input_x_gradient", "--superpixels",
                        "grid", "--target", "label", "--faithfulness", "--json")  # fmt: skip
        assert ran.returncode == 0, ran.stderr[-2000:]
        jobs.append(str(json.loads(ran.stdout)["job"]))
    stats = procs.run("stats", "disagreement", "-j", jobs[0], "-j", jobs[1], "--group-by",
                      "target", "--format", "json")  # fmt: skip
    assert stats.returncode == 0, stats.stderr
    groups = {(r["target"], r["dataset"]) for r in json.loads(stats.stdout)}
    assert groups == {("pred", f"folder:{flat}"), ("label", "digits")}, groups
    for what in ("attributions", "faithfulness"):
        out = tmp_path / f"{what}.csv"
        assert procs.run("export", jobs[0], "--what", what, "--out", str(out)).returncode == 0
        kinds = {r["target_kind"] for r in csv.DictReader(out.open(newline=""))}
        assert kinds == {"pred"}, (what, kinds)
