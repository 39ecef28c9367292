"""Figures with matplotlib's Agg backend: attribution overlays and the source comparison figure.

The source document's figure has three panels: the original image, then map A and map B laid
over it with the ``jet`` colormap. Maps are shown by magnitude (``|map|``), scaled to [0, 1] by
their 99th percentile so one extreme pixel does not wash the rest out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def normalise_map(attr_map: Any, percentile: float = 99.0) -> np.ndarray:
    """``|map|`` ``[H, W]`` scaled to [0, 1] by its ``percentile``-th value (all zeros stay 0)."""
    mag = np.abs(_numpy(attr_map).astype(np.float64))
    top = float(np.percentile(mag, percentile)) if mag.size else 0.0
    if top <= 0.0:
        top = float(mag.max()) if mag.size else 0.0
    return np.clip(mag / top, 0.0, 1.0) if top > 0.0 else np.zeros_like(mag)


def display_image(image: Any) -> tuple[np.ndarray, str | None]:
    """An image ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` in [0, 1] for ``imshow``, and the
    colormap it needs (``gray`` for one channel)."""
    arr = np.clip(_numpy(image).astype(np.float64), 0.0, 1.0)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return arr, ("gray" if arr.ndim == 2 else None)


def draw_overlay(
    ax: Any,
    image: Any,
    attr_map: Any,
    title: str = "",
    *,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> None:
    """Draw ``image`` (``[H, W(, C)]`` in [0, 1]) with ``attr_map`` (``[H, W]``, any sign) over
    it on the matplotlib axes ``ax``: ``cmap`` colours of the normalised magnitude at ``alpha``."""
    img, img_cmap = display_image(image)
    ax.imshow(img, cmap=img_cmap, vmin=0.0, vmax=1.0)
    ax.imshow(normalise_map(attr_map), cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0)
    ax.set_title(title)
    ax.axis("off")


def comparison_figure(
    image: Any,
    maps: Sequence[Any],
    names: Sequence[str],
    *,
    title: str | None = None,
    metrics: Mapping[str, float | int | None] | None = None,
) -> Any:
    """The source figure: original | map overlay per method; returns the matplotlib ``Figure``.

    Args:
        image: ``[H, W]`` or ``[H, W, C]`` in [0, 1], the image the maps explain.
        maps: one ``[H, W]`` map per method (same H, W as ``image``).
        names: method names, used as panel titles.
        title: optional figure title (e.g. the predicted class).
        metrics: optional metric values printed under the panels.
    """
    from matplotlib.figure import Figure

    if len(maps) != len(names):
        raise ValueError(f"{len(maps)} maps but {len(names)} names")
    fig = Figure(figsize=(4.0 * (len(maps) + 1), 4.4 if metrics else 4.0))
    axes = fig.subplots(1, len(maps) + 1, squeeze=False)[0]
    img, img_cmap = display_image(image)
    axes[0].imshow(img, cmap=img_cmap, vmin=0.0, vmax=1.0)
    axes[0].set_title("original")
    axes[0].axis("off")
    for ax, attr_map, name in zip(axes[1:], maps, names, strict=True):
        draw_overlay(ax, image, attr_map, name)
    if title:
        fig.suptitle(title)
    if metrics:
        text = "   ".join(
            f"{k}: {'NULL' if v is None else (f'{v:.3f}' if isinstance(v, float) else v)}"
            for k, v in metrics.items()
        )
        fig.text(0.5, 0.02, text, ha="center", fontsize=9)
    fig.tight_layout(rect=(0.0, 0.05 if metrics else 0.0, 1.0, 0.95 if title else 1.0))
    return fig


def save_comparison_figure(
    path: str | Path,
    image: Any,
    maps: Sequence[Any],
    names: Sequence[str],
    **kwargs: Any,
) -> Path:
    """:func:`comparison_figure` written to ``path`` (PNG, 100 dpi); returns the path."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    fig = comparison_figure(image, maps, names, **kwargs)
    fig.savefig(path, dpi=100)
    return path
