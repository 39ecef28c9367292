"""Datasets: digits, skimage photos, labelled and flat folders, single files, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from xaiq.xai.datasets import open_dataset
from xaiq.xai.errors import DatasetError, SampleError, UnknownNameError
from xaiq.xai.images import read_image


def write_png(path, value: int, size=(6, 5), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    arr = np.full((size[1], size[0], channels), value, dtype=np.uint8)
    Image.fromarray(arr[..., 0] if channels == 1 else arr, mode=None).save(path)


def test_digits_have_labels_stable_keys_and_unit_range_images():
    ds = open_dataset("digits")
    assert len(ds) == 1797
    sample = ds.load(10)
    assert sample.key == "digits/10" and sample.label == 0 and sample.index == 10
    assert sample.image.shape == (8, 8) and sample.image.dtype == np.float32
    assert sample.image.min() >= 0.0 and sample.image.max() <= 1.0
    np.testing.assert_array_equal(open_dataset("digits").load(10).image, sample.image)


def test_skimage_photos_by_name_without_labels():
    ds = open_dataset("skimage:cat,camera")
    assert len(ds) == 2
    cat, camera = ds.load(0), ds.load(1)
    assert cat.key == "skimage/cat" and cat.label is None and cat.image.shape[2] == 3
    assert camera.image.ndim == 2 and camera.image.max() <= 1.0
    with pytest.raises(DatasetError, match="dog"):
        open_dataset("skimage:dog")


def test_labelled_folder_takes_labels_from_sorted_subfolders(tmp_path):
    write_png(tmp_path / "zebra" / "a.png", 10)
    write_png(tmp_path / "apple" / "b.png", 200)
    write_png(tmp_path / "apple" / "a.jpg", 100)
    (tmp_path / "apple" / "notes.txt").write_text("not an image")
    ds = open_dataset(f"folder:{tmp_path}")
    assert ds.class_names == ("apple", "zebra")
    assert [ds.key(i) for i in range(len(ds))] == ["apple/a.jpg", "apple/b.png", "zebra/a.png"]
    assert [ds.load(i).label for i in range(3)] == [0, 0, 1]
    assert ds.load(1).image == pytest.approx(200 / 255)


def test_flat_folder_has_no_labels_and_a_plain_path_opens_it(tmp_path):
    write_png(tmp_path / "b.png", 1, mode="L")
    write_png(tmp_path / "a.png", 2, mode="RGBA")
    ds = open_dataset(str(tmp_path))
    assert [ds.key(i) for i in range(len(ds))] == ["a.png", "b.png"]
    assert ds.load(0).label is None and ds.load(0).image.shape == (5, 6, 3)
    assert ds.load(1).image.shape == (5, 6)


def test_single_file_dataset(tmp_path):
    write_png(tmp_path / "one.png", 255)
    ds = open_dataset(str(tmp_path / "one.png"))
    assert len(ds) == 1 and ds.load(0).image.max() == 1.0
    assert len(open_dataset(f"file:{tmp_path / 'one.png'}")) == 1


def test_bad_files_are_sample_errors_and_the_rest_of_the_batch_loads(tmp_path):
    write_png(tmp_path / "good.png", 5)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (tmp_path / "text.jpg").write_text("hello")
    ds = open_dataset(str(tmp_path))
    samples, errors = ds.load_many(range(len(ds)))
    assert [s.key for s in samples] == ["good.png"]
    assert sorted(errors) == [0, 1, 3]
    for index, message in errors.items():
        assert ds.key(index) in message and "\n" not in message
    with pytest.raises(SampleError, match="out of range"):
        ds.load(len(ds))


def test_rgba_is_composited_on_white_and_16_bit_grey_is_scaled(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)  # fully transparent black
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    np.testing.assert_allclose(read_image(tmp_path / "clear.png"), 1.0)
    grey16 = np.full((2, 2), 65535 // 2, dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "deep.png")
    np.testing.assert_allclose(read_image(tmp_path / "deep.png"), 0.5, atol=1e-4)


def test_missing_paths_and_unknown_names_are_clear(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        open_dataset(str(tmp_path / "nothing" / "here.png"))
    with pytest.raises(DatasetError, match="image folder not found"):
        open_dataset(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(DatasetError, match="no image files"):
        open_dataset(str(tmp_path))
    with pytest.raises(UnknownNameError, match="imagenet"):
        open_dataset("imagenet")
    with pytest.raises(DatasetError, match="mnist"):
        open_dataset(f"mnist:{tmp_path}")


def test_images_in_sub_folders_of_a_class_belong_to_that_class(tmp_path):
    # torchvision's ImageFolder walks class folders recursively; so does a folder dataset
    write_png(tmp_path / "cat" / "a.png", 10)
    write_png(tmp_path / "cat" / "deep" / "er" / "b.png", 20)
    write_png(tmp_path / "cat" / "c.png", 30)
    write_png(tmp_path / "dog" / "x" / "d.png", 40)
    (tmp_path / "dog" / "x" / "notes.txt").write_text("not an image")
    (tmp_path / "dog" / "loop").symlink_to(tmp_path / "dog")  # followed once, no endless walk
    ds = open_dataset(f"folder:{tmp_path}")
    keys = [ds.key(i) for i in range(len(ds))]
    assert keys == ["cat/a.png", "cat/c.png", "cat/deep/er/b.png", "dog/x/d.png"]
    assert [ds.label(i) for i in range(len(ds))] == [0, 0, 0, 1]
    assert ds.class_names == ("cat", "dog")
    assert ds.load(2).image.max() == pytest.approx(20 / 255)


def test_escaped_names_round_trip_to_the_original_bytes():
    import os

    from xaiq.xai.datasets import escape_name, unescape_name

    for raw in (b"caf\xe9/a.png", b"back\\slash\\xe9.png", b"\xff\x80.jpg", b"plain.png"):
        name = os.fsdecode(raw)
        key = escape_name(name)
        key.encode("utf-8")  # every store accepts it
        assert os.fsencode(unescape_name(key)) == raw
    assert escape_name(os.fsdecode(b"caf\xe9")) == "caf\\xe9"
    with pytest.raises(ValueError):
        unescape_name("a\\q")


def test_fingerprints_follow_the_content_not_the_name(tmp_path):
    write_png(tmp_path / "a.png", 10)
    write_png(tmp_path / "b.png", 10)
    ds = open_dataset(f"folder:{tmp_path}")
    assert ds.fingerprint(0) == ds.fingerprint(1)
    write_png(tmp_path / "b.png", 11)
    assert ds.fingerprint(0) != ds.fingerprint(1)
    digits = open_dataset("digits")
    assert digits.fingerprint(3) == open_dataset("digits").fingerprint(3) != digits.fingerprint(4)
