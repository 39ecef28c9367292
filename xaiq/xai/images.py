"""Decoding image files into float arrays in [0, 1], with one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xaiq.xai.errors import SampleError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
MAX_PIXELS = 64_000_000  # larger images are refused rather than exhausting memory
# Decoded images are reduced (integer box filter, while still 8-bit) until their shorter side
# is below twice this: every model here takes at most a few hundred pixels, and a float copy of
# a 7000x7000 photo alone is 588 MB. The model's own resize then works from the reduced image.
DECODE_MAX_SIDE = 1024


def read_image(path: str | Path, max_side: int | None = DECODE_MAX_SIDE) -> np.ndarray:
    """Decode ``path`` to float32 ``[H, W]`` (grey) or ``[H, W, 3]`` (colour) in [0, 1].

    Palette images become RGB, alpha is composited on white, 16-bit greys are scaled by
    65535. Images with more than :data:`MAX_PIXELS` pixels are refused; larger sides than
    ``2 * max_side`` are reduced by an integer factor while decoding (JPEG: in the decoder;
    ``None`` keeps the full resolution). Raises :class:`SampleError` naming the file for
    anything unreadable.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise SampleError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise SampleError(f"image file is empty: {path}")
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise SampleError(
                    f"image too large: {path} ({img.width}x{img.height} > {MAX_PIXELS} pixels)"
                )
            factor = 1 if max_side is None else min(img.width, img.height) // max_side
            if factor >= 2 and img.format == "JPEG":
                img.draft(img.mode, (img.width // factor, img.height // factor))
            img.load()
            factor = 1 if max_side is None else min(img.width, img.height) // max_side
            if factor >= 2 and img.mode in ("L", "RGB", "RGBA", "LA", "I", "F"):
                return _to_array(img.reduce(factor))  # other modes: converted at full size
            return _to_array(img)
    except SampleError:
        raise
    except UnidentifiedImageError:
        raise SampleError(f"not a readable image: {path}") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated, corrupt, bomb
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SampleError(f"corrupt image {path}: {msg}") from None
    except Exception as exc:  # PIL raises odd types (DecompressionBombError, struct.error)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SampleError(f"cannot decode image {path}: {msg}") from None


def _to_array(img) -> np.ndarray:  # noqa: ANN001 - PIL.Image.Image
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.float32) / 65535.0
    if mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        hi = 65535.0 if arr.max(initial=0.0) > 255 else 255.0
        return np.clip(arr / hi, 0.0, 1.0)
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    elif mode in ("1", "L"):
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    elif mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0
