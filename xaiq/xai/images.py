"""Decoding image files into float arrays in [0, 1], with one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xaiq.xai.errors import SampleError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
MAX_PIXELS = 64_000_000  # larger images are refused rather than exhausting memory


def read_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` to float32 ``[H, W]`` (grey) or ``[H, W, 3]`` (colour) in [0, 1].

    Palette images become RGB, alpha is composited on white, 16-bit greys are scaled by
    65535. Raises :class:`SampleError` naming the file for anything unreadable.
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
            img.load()
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
