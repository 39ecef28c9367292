"""The artifact store: a directory and an S3 bucket (moto's server) behind one API; atomic,
checksummed, ranged, retried, and never printing a credential."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from xaiq.db import store as store_mod
from xaiq.db.artifacts import ArtifactError, chunk_ref, read_artifact, read_artifacts
from xaiq.db.store import ArtifactStore, StoreError, describe, is_transient, with_retry
from xaiq.worker.artifacts import ChunkWriter, load_array, load_arrays


def _chunk(store: ArtifactStore) -> list[dict]:
    writer = ChunkWriter(7, store)
    rows = [{"i": i} for i in range(5)]
    for i, row in enumerate(rows):
        writer.stage("saliency", 10 + i, np.full((4, 3), i, np.float32), row, None)
    writer.flush()
    return rows


def test_a_chunk_is_one_object_and_each_row_reads_back_its_own_sample(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    rows = _chunk(store)
    assert store.keys() == ["job-7/saliency/chunk-10.npys"]
    for i, row in enumerate(rows):
        assert row["artifact"].startswith("job-7/saliency/chunk-10.npys#")
        np.testing.assert_array_equal(
            load_array(row["artifact"], row["checksum"], store), np.full((4, 3), i)
        )
    many = load_arrays([(r["artifact"], r["checksum"]) for r in rows[::-1]], store)
    assert [int(a[0, 0]) for a in many] == [4, 3, 2, 1, 0]


def test_a_ranged_read_fetches_only_the_rows_bytes(tmp_path: Path, monkeypatch) -> None:
    store = ArtifactStore(tmp_path)
    rows = _chunk(store)
    asked = []
    real = store.fs.cat_file

    def spy(path, start=None, end=None, **kw):
        asked.append((start, end))
        return real(path, start=start, end=end, **kw)

    monkeypatch.setattr(store.fs, "cat_file", spy)
    load_array(rows[3]["artifact"], rows[3]["checksum"], store)
    offset, length = map(int, rows[3]["artifact"].split("#")[1].split(":"))
    assert asked == [(offset, offset + length)]
    assert length < (tmp_path / "job-7/saliency/chunk-10.npys").stat().st_size / 4


def test_a_tampered_chunk_or_a_bad_reference_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    rows = _chunk(store)
    path = tmp_path / "job-7/saliency/chunk-10.npys"
    data = bytearray(path.read_bytes())
    offset, length = map(int, rows[2]["artifact"].split("#")[1].split(":"))
    data[offset + length - 1] ^= 0xFF  # the last value of sample 2
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        load_array(rows[2]["artifact"], rows[2]["checksum"], store)
    load_array(rows[1]["artifact"], rows[1]["checksum"], store)  # the others still read
    got = read_artifacts([(r["artifact"], r["checksum"]) for r in rows], store)
    assert [isinstance(g, ArtifactError) for g in got] == [False, False, True, False, False]
    for bad in ("job-7/saliency/chunk-10.npys", "../x.npys#0:10", "job-7/a/chunk-1.npys#0:x"):
        with pytest.raises(ArtifactError, match="not of the form"):
            read_artifact(bad, rows[0]["checksum"], store)
    with pytest.raises(ArtifactError, match="no valid checksum"):
        read_artifact(rows[0]["artifact"], "", store)


def test_a_local_write_leaves_no_temporary_file_and_replaces_whole(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path}")
    store.put("job-1/g/chunk-0.npys", b"first")
    store.put("job-1/g/chunk-0.npys", b"second")
    assert [p.name for p in (tmp_path / "job-1/g").iterdir()] == ["chunk-0.npys"]
    assert store.get("job-1/g/chunk-0.npys") == b"second"
    assert store.get("job-1/g/chunk-0.npys", 1, 4) == b"eco"


def test_transient_errors_are_retried_and_permanent_ones_are_not(monkeypatch) -> None:
    monkeypatch.setattr(store_mod, "BACKOFF_SECONDS", 0.0)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset by peer")
        return "ok"

    assert with_retry(flaky) == "ok" and len(calls) == 3
    assert not is_transient(FileNotFoundError("gone"))
    assert not is_transient(PermissionError("denied"))
    assert is_transient(TimeoutError())
    calls.clear()

    def missing() -> None:
        calls.append(1)
        raise FileNotFoundError("gone")

    with pytest.raises(FileNotFoundError):
        with_retry(missing)
    assert len(calls) == 1


def test_messages_never_show_credentials() -> None:
    assert describe("s3://AKIA123:s3cr3t@bucket/p") == "s3://***@bucket/p"
    assert describe("/data/artifacts") == "/data/artifacts"


@pytest.mark.services
def test_an_s3_bucket_stores_reads_ranges_and_lists(s3_env) -> None:
    store = ArtifactStore(s3_env["XAIQ_ARTIFACTS"])
    rows = _chunk(store)
    assert store.keys() == ["job-7/saliency/chunk-10.npys"]
    assert store.keys("job-8") == []
    for i, row in enumerate(rows):
        np.testing.assert_array_equal(
            load_array(row["artifact"], row["checksum"], store), np.full((4, 3), i)
        )
    blob = store.get("job-7/saliency/chunk-10.npys")
    ref = chunk_ref("job-7/saliency/chunk-10.npys", 0, 5)
    assert read_artifact(ref, hashlib.sha256(blob[:5]).hexdigest(), store) == blob[:5]


@pytest.mark.services
def test_an_unreachable_or_refusing_store_fails_with_one_line_and_no_secret(
    s3_server, monkeypatch
) -> None:
    monkeypatch.setattr(store_mod, "BACKOFF_SECONDS", 0.0)
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    store = ArtifactStore("s3://no-such-bucket-xaiq/p")
    with pytest.raises(StoreError) as err:
        store.put("job-1/g/chunk-0.npys", b"x")
    text = str(err.value)
    assert "no-such-bucket-xaiq" in text and "\n" not in text
    assert s3_server.env()["AWS_SECRET_ACCESS_KEY"] not in text
    assert "AWS_SECRET" not in repr(store)
