"""Writers of awkward image files for the bad-input tests (all made by the tests, no data)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def digit_image(index: int = 0) -> np.ndarray:
    """A real digit (uint8 ``[28, 28]``) so that the good files predict something sensible."""
    from xaiq.xai.digits import digits_arrays

    images, _ = digits_arrays()
    return (np.asarray(images[index]) * 255).round().astype(np.uint8)


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width x height`` (the pixel data is one empty chunk)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


GOOD = (
    "good.png",
    "grey16.png",
    "palette.png",
    "rgba.png",
    "grayscale.png",
    "one_pixel.png",
    "large.jpg",
)
BAD = ("truncated.png", "zero_bytes.png", "text.png", "huge.png")


def write_awkward_folder(root: Path) -> Path:
    """A flat folder with every awkward kind of file of the issue; returns ``root``.

    ``GOOD`` files decode (16-bit, palette, RGBA, grey, 1x1, a 2000x1500 colour photo-size
    image); ``BAD`` ones do not (truncated, zero bytes, text named .png, a header claiming
    81 megapixels). ``notes.txt`` is not an image suffix and is not a sample at all.
    """
    root.mkdir(parents=True, exist_ok=True)
    digit = digit_image(0)
    Image.fromarray(digit).save(root / "good.png")
    Image.fromarray(digit.astype(np.uint16) * 257).save(root / "grey16.png")
    Image.fromarray(digit).convert("P").save(root / "palette.png")
    rgba = np.dstack([digit, digit, digit, np.full_like(digit, 200)])
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")
    Image.fromarray(digit, "L").save(root / "grayscale.png")
    Image.fromarray(np.array([[255]], dtype=np.uint8)).save(root / "one_pixel.png")
    big = np.random.default_rng(0).integers(0, 255, (1500, 2000, 3), dtype=np.uint8)
    Image.fromarray(big).save(root / "large.jpg", quality=60)
    full = (root / "good.png").read_bytes()
    (root / "truncated.png").write_bytes(full[: len(full) // 2])
    (root / "zero_bytes.png").write_bytes(b"")
    (root / "text.png").write_text("this is not an image\n")
    png_header_only(root / "huge.png", 9000, 9000)
    (root / "notes.txt").write_text("not a sample\n")
    return root
