"""Every number has a documented maximum, checked at submit and by the one-image commands
(one line naming the key and value, exit 2, nothing written); spec files that are too deep or
not UTF-8, ids past 32 bits and unusable --out paths are one line too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xaiq.cli.main import main
from xaiq.db.jobs import jobs_list
from xaiq.db.session import read_session
from xaiq.xai.images import read_image

from .faults import USAGE, one_line, sqlite_procs

SUBMIT = ["submit", "attack", "-d", "digits", "-m", "digits-cnn", "--limit", "2"]


def _one_line(capsys: pytest.CaptureFixture[str], code: int, *named: str) -> None:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Try ")]
    assert code == USAGE and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert "Traceback" not in err
    for name in named:
        assert name in lines[0], (name, lines[0])


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--seed", "99999999999999999999"], "seed"),
        (["--priority", str(2**40)], "priority"),
        (["--shard-size", str(2**64)], "shard_size"),
        (["--attack-param", "n_masks=1e9"], "n_masks"),
        (["--attack-param", "max_iters=1e300"], "max_iters"),
        (["--attack-param", "sigma=inf"], "sigma"),
        (["--attack-param", "s=100000"], "s="),
    ],
)
def test_a_number_past_its_documented_maximum_is_refused_at_submit(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], named: str
) -> None:
    _one_line(capsys, main([*SUBMIT, *args]), named)
    with read_session() as session:
        assert jobs_list(session) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["submit", "disagreement", "-d", "digits", "-m", "digits-cnn", "--methods",
          "saliency,grad_cam", "--n-segments", str(2**70)], "n_segments"),
        (["submit", "attribution", "-d", "digits", "-m", "digits-cnn", "--methods", "rise",
          "--param", "rise.n_masks=1e9"], "n_masks"),
        (["status", "99999999999999999999"], "99999999999999999999"),
        (["cancel", "0"], "0"),
        (["stats", "disagreement", "--job", str(2**40)], str(2**40)),
        (["attack", "digits:1", "-m", "digits-cnn", "--s", "100000"], "100000"),
        (["compare", "digits:1", "-m", "digits-cnn", "--n-segments", str(2**70)], "n_segments"),
        (["explain", "digits:extra", "-m", "digits-cnn"], "extra"),
    ],
)  # fmt: skip
def test_out_of_range_ids_and_parameters_are_one_line_everywhere(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], named: str
) -> None:
    _one_line(capsys, main(args), named)


def test_spec_files_too_deep_or_not_utf8_are_one_line(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    nested = tmp_path / "nested.json"
    spec: dict = {}
    level = spec
    for _ in range(20):
        level["attack"] = {}
        level = level["attack"]
    nested.write_text(json.dumps(spec))
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(b'{"dataset": "caf\xe9"}')
    for path, said in ((deep, "too deep"), (nested, "deeper than"), (latin1, "not UTF-8")):
        _one_line(capsys, main([*SUBMIT, "--spec", str(path)]), said)


def test_out_paths_that_cannot_be_written_are_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "figure.png"
    folder.mkdir()
    a_file = tmp_path / "maps"
    a_file.write_text("x")
    procs = sqlite_procs(tmp_path)
    base = ("digits:1", "-m", "digits-cnn", "--superpixels", "grid", "--n-segments", "16")
    one_line(procs.run("compare", *base, "--out", str(folder)), USAGE, str(folder), "directory")
    one_line(procs.run("compare", *base, "--out", str(tmp_path / "f.bogus")), USAGE, "f.bogus")
    one_line(
        procs.run("explain", "digits:1", "-m", "digits-cnn", "--out", str(a_file)),
        USAGE,
        str(a_file),
    )


def test_a_huge_image_is_reduced_while_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    pixels = np.zeros((7000, 7000), np.uint8)
    pixels[::50] = 255
    Image.fromarray(pixels).save(path)
    assert path.stat().st_size < 1_000_000  # small on disk, 49 megapixels decoded
    image = read_image(path)
    assert image.shape == (1167, 1167) and image.dtype == np.float32  # ceil(7000 / 6)
    assert 0.0 < float(image.mean()) < 1.0
