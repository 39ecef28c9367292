"""Names and rows are data: Rich markup in a folder or file name is shown as typed (never
interpreted, never a crash), passwords in URLs never print, and artifact rows that point
outside the artifact root or carry no checksum are refused rather than followed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xaiq.db.artifacts import ArtifactError
from xaiq.db.urls import redact_url
from xaiq.report.sources import load_artifact
from xaiq.worker.artifacts import load_array, save_array

from .faults import USAGE, one_line, sqlite_procs, tmpfs
from .images import digit_image


def test_markup_in_a_dataset_folder_name_is_listed_verbatim(tmp_path: Path) -> None:
    folder = tmp_path / "a[" / "b]"  # the folder `a[/b]` of the issue
    folder.mkdir(parents=True)
    Image.fromarray(digit_image(0)).save(folder / "[red]x[-red].png")
    procs = sqlite_procs(tmp_path)
    spec = f"folder:{tmp_path}/a[/b]"
    ran = procs.run("submit", "attribution", "-d", spec, "-m", "digits-cnn", "--methods",
                    "saliency", "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    # wide enough that the folder's path (its length depends on where pytest puts tmp_path)
    # is one cell line: a wrapped cell is drawn with borders between its pieces
    listed = procs.run("list", COLUMNS="400")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert f"{tmp_path}/a[/b]" in listed.stdout
    missing = procs.run("submit", "attribution", "-d", f"folder:{tmp_path}/[red]gone[/red]",
                        "-m", "digits-cnn", "--methods", "saliency")  # fmt: skip
    one_line(missing, USAGE, "[red]gone[/red]")  # the message shows the path as typed


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://u:S3cretPw@h:5432/db", "S3cretPw"),
        ("postgresql://u@h:5432/db?password=S3cretPw&sslmode=require", "S3cretPw"),
        ("postgresql://u:S3c@retPw@h:5432/db", "retPw"),
        ("postgresql://u:S3c@retPw@h:5432/db", "S3c"),
        ("redis://:S3c@retPw@h:6379/0", "retPw"),
    ],
)
def test_passwords_never_print_in_any_url_form(url: str, secret: str) -> None:
    shown = redact_url(url)
    assert secret not in shown and "***" in shown and "h:" in shown, shown


def test_a_password_in_the_query_string_is_masked_in_the_cli_error(tmp_path: Path) -> None:
    from .services import free_port

    url = f"postgresql://analyst@127.0.0.1:{free_port()}/xaiq?password=Qu3ryPw42"
    procs = sqlite_procs(tmp_path, XAIQ_DB_URL=url)
    proc = procs.run("list", XAIQ_DB_URL=url)
    one_line(proc, 3, "password=***")
    assert "Qu3ryPw42" not in proc.stderr + proc.stdout


def test_artifact_rows_that_leave_the_root_or_lack_a_checksum_are_refused(
    tmp_path: Path,
) -> None:
    root = tmp_path / "artifacts"
    secret = tmp_path / "secret.npy"
    np.save(secret, np.arange(3))
    good = "job-1/saliency/0.npy"
    checksum = save_array(good, np.ones((2, 2), np.float32), root)
    assert load_array(good, checksum, root).shape == (2, 2)
    for rel in ("../secret.npy", str(secret), "job-1/../../secret.npy", "job-1/a/0.npy/../x"):
        with pytest.raises(ArtifactError, match="not of the form"):
            load_array(rel, checksum, root)
        assert load_artifact(rel, checksum) is None
    for empty in ("", None, "abc"):
        with pytest.raises(ArtifactError, match="no valid checksum"):
            load_array(good, empty, root)


def test_a_full_artifact_disk_leaves_no_temporary_file(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "art", "64k") as root:
        with pytest.raises(OSError):
            save_array("job-1/saliency/0.npy", np.zeros((256, 256), np.float32), root)
        left = [p.name for p in root.rglob("*") if p.is_file()]
        assert left == [], left
