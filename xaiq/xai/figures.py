"""One picture convention for every attribution map xaiq draws (``compare``, ``show``, the
report), with matplotlib's object API (no pyplot state, any backend).

How a map ``[H, W]`` (float, any sign) becomes colours, :class:`MapStyle`:

- ``sign`` (Captum's ``sign`` of ``visualize_image_attr``): ``all`` keeps the sign and draws
  it with a diverging colormap centred on zero (``RdBu_r``: red positive, blue negative,
  white zero) — unless the map has no negative value (RISE, Grad-CAM, ``|Saliency|``): then
  a sequential colormap from 0; ``absolute`` draws ``|map|``, ``positive`` the positive
  part, ``negative`` the magnitude of the negative part, each with a sequential colormap
  from 0. The colour bar's label names the scale; a sign mode that leaves nothing (no
  negative value under ``negative``) writes that in the panel instead of a colour bar.
- ``percentile`` clipping: the colour scale ends at the ``percentile``-th value of the
  magnitudes shown (99 by default), so one extreme pixel does not wash the rest out;
  ``all`` uses ±that value, so zero stays at the centre. An all-zero map gets the scale
  [0, 1] (or [-1, 1]) and draws as zero.
- the map is laid over the greyed original at ``alpha``; every panel has a colour bar.
- optional: superpixel boundaries (thin white lines) and the top-k superpixels by
  ``|segment mean|`` outlined (yellow), ties to the lower segment index as in the metrics.

Every text that comes from data (class, file, model and method names) is drawn literally:
:func:`literal` escapes matplotlib's ``$...$`` mathtext, so ``$\\frac{a$.png`` is a name, not a
formula (nor a parse error). Titles use readable method names (:func:`method_title`) and
say the true label, the prediction and its probability (:func:`sample_title`).
:func:`save_figure` writes PNG, PDF or SVG by the file's extension at a chosen dpi. The source
document's figure (``|map|``, 99th percentile, ``jet`` at alpha 0.5) is the ``seed`` preset
(:data:`PRESETS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

SIGN_MODES = ("all", "absolute", "positive", "negative")
FORMATS = ("png", "pdf", "svg")
DEFAULT_DPI = 150
MAX_COLUMNS = 4  # panels side by side in one figure; more wrap into balanced rows

_METHOD_TITLES = {
    "integrated_gradients": "Integrated Gradients",
    "saliency": "Saliency",
    "input_x_gradient": "Input × Gradient",
    "smoothgrad": "SmoothGrad",
    "gradient_shap": "GradientSHAP",
    "deeplift": "DeepLIFT",
    "guided_backprop": "Guided Backprop",
    "grad_cam": "Grad-CAM",
    "occlusion": "Occlusion",
    "rise": "RISE",
}


@dataclass(frozen=True)
class MapStyle:
    """How maps are drawn (module doc). ``cmap_signed`` for ``sign="all"``, ``cmap`` for
    the other modes."""

    sign: str = "all"
    percentile: float = 99.0
    cmap: str = "magma"
    cmap_signed: str = "RdBu_r"
    alpha: float = 0.65
    colorbar: bool = True

    def __post_init__(self) -> None:
        if self.sign not in SIGN_MODES:
            raise ValueError(f"unknown sign mode {self.sign!r}; known: {', '.join(SIGN_MODES)}")
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], not {self.percentile!r}")

    @property
    def colormap(self) -> str:
        return self.cmap_signed if self.sign == "all" else self.cmap


PRESETS: dict[str, MapStyle] = {
    "default": MapStyle(),
    # the source document's figure: |map| scaled by its 99th percentile, jet at alpha 0.5
    "seed": MapStyle(sign="absolute", cmap="jet", alpha=0.5),
}


def style_for(preset: str = "default", **changes: Any) -> MapStyle:
    """A preset (``default`` or ``seed``) with some fields changed (``None`` = keep)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown figure preset {preset!r}; known: {', '.join(PRESETS)}")
    return replace(PRESETS[preset], **{k: v for k, v in changes.items() if v is not None})


def literal(text: Any) -> str:
    """``text`` escaped so that matplotlib draws it as typed: every ``$`` becomes ``\\$``,
    which leaves no unescaped dollar (matplotlib's mathtext switch) and prints as ``$``.
    The one helper for data text going into a figure (titles, labels, ticks, legends)."""
    return str(text).replace("$", r"\$")


def method_title(name: str) -> str:
    """``integrated_gradients`` -> ``Integrated Gradients`` (unknown: words capitalised);
    a cross-model map name ``digits-cnn-weak:grad_cam`` -> ``digits-cnn-weak: Grad-CAM``
    (the model keeps its spelling)."""
    if name in _METHOD_TITLES:
        return _METHOD_TITLES[name]
    model, sep, method = name.rpartition(":")
    if sep and model and method:
        return f"{model_title(model)}: {method_title(method)}"
    return name.replace("_", " ").strip().capitalize()


def model_title(name: str) -> str:
    """A model name for a title: ``resnet18:/long/path/w.pt`` -> ``resnet18 (w.pt)``."""
    arch, sep, path = name.partition(":")
    return f"{arch} ({Path(path).name})" if sep and ("/" in path or "." in path) else name


def sample_title(
    label: Any = None,
    pred: Any = None,
    prob: float | None = None,
    class_names: Sequence[str] | None = None,
) -> str:
    """``true 3 · predicted 5 (p = 0.62)``; parts that are unknown are left out."""

    def name(c: Any) -> str:
        if (
            class_names is not None
            and isinstance(c, int | np.integer)
            and 0 <= c < len(class_names)
        ):
            return str(class_names[int(c)])
        return str(c)

    parts = []
    if label is not None:
        parts.append(f"true {name(label)}")
    if pred is not None:
        p = f" (p = {prob:.2f})" if prob is not None else ""
        parts.append(f"predicted {name(pred)}{p}")
    return " · ".join(parts)


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def prepare_map(attr_map: Any, style: MapStyle) -> tuple[np.ndarray, float, float]:
    """The values drawn and the colour scale: ``(values [H, W] float64, vmin, vmax)``.

    ``values`` are already clipped to ``[vmin, vmax]``; ``all`` gives ``vmin = -vmax``."""
    m = _numpy(attr_map).astype(np.float64)
    if style.sign == "absolute":
        v = np.abs(m)
    elif style.sign == "positive":
        v = np.maximum(m, 0.0)
    elif style.sign == "negative":
        v = np.maximum(-m, 0.0)
    else:
        v = m
    mag = np.abs(v)
    top = float(np.percentile(mag, style.percentile)) if mag.size else 0.0
    if top <= 0.0:
        top = float(mag.max()) if mag.size else 0.0
    if top <= 0.0:
        top = 1.0
    low = -top if style.sign == "all" and not non_negative(m) else 0.0
    return np.clip(v, low, top), low, top


def non_negative(attr_map: Any) -> bool:
    """True for a map with no negative value and some positive one (RISE, Grad-CAM,
    ``|Saliency|``): ``sign="all"`` draws it on a sequential scale from 0, not the diverging
    one (half of which it would never use). An all-zero map keeps the diverging scale."""
    m = _numpy(attr_map)
    return bool(m.size) and float(m.min()) >= 0.0 and float(m.max()) > 0.0


def scale_label(style: MapStyle, low: float) -> str:
    """What the colour bar shows: the sign mode and the scale chosen."""
    if style.sign == "all":
        return "signed (diverging, 0 at centre)" if low < 0 else "non-negative map (from 0)"
    return {
        "absolute": "|map| (from 0)",
        "positive": "positive part (from 0)",
        "negative": "negative part, magnitude (from 0)",
    }[style.sign]


def _empty_part(attr_map: Any, style: MapStyle) -> str | None:
    """``no negative attribution`` when ``--sign negative`` has nothing to show (likewise
    positive), so that no empty panel gets an invented colour bar."""
    m = _numpy(attr_map)
    if style.sign == "negative" and not (m < 0).any():
        return "no negative attribution"
    if style.sign == "positive" and not (m > 0).any():
        return "no positive attribution"
    return None


def display_image(image: Any) -> tuple[np.ndarray, str | None]:
    """An image ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` in [0, 1] for ``imshow``, and the
    colormap it needs (``gray`` for one channel)."""
    arr = np.clip(_numpy(image).astype(np.float64), 0.0, 1.0)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return arr, ("gray" if arr.ndim == 2 else None)


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else image[..., :3] @ np.array([0.299, 0.587, 0.114])


def top_k_segments(attr_map: Any, labels: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` segment ids with the largest ``|mean of the map over the segment|`` (ties:
    lower id first, as the metrics' top-k). ``labels``: int ``[H, W]``."""
    m = _numpy(attr_map).astype(np.float64).ravel()
    lab = np.asarray(labels).ravel()
    ids = np.unique(lab)
    index = np.searchsorted(ids, lab)
    sums = np.bincount(index, weights=m, minlength=ids.size)
    counts = np.bincount(index, minlength=ids.size)
    means = np.abs(sums / np.maximum(counts, 1))
    order = np.argsort(-means, kind="stable")
    return ids[order[: max(0, int(k))]]


def _edges(labels: np.ndarray, border: bool = False) -> np.ndarray:
    """Line segments ``[n, 2, 2]`` (x, y in imshow's pixel coordinates) along the pixel edges
    where ``labels`` changes; with ``border`` also where a True pixel meets the image edge."""
    lab = np.asarray(labels)
    if border:
        lab = np.pad(lab, 1, constant_values=False)
    off = -1.5 if border else -0.5
    rows, cols = np.nonzero(lab[:, 1:] != lab[:, :-1])  # vertical edge right of (r, c)
    x = cols + 1 + off
    vertical = np.stack([np.stack([x, rows + off], 1), np.stack([x, rows + 1 + off], 1)], 1)
    rows, cols = np.nonzero(lab[1:, :] != lab[:-1, :])  # horizontal edge below (r, c)
    y = rows + 1 + off
    horizontal = np.stack([np.stack([cols + off, y], 1), np.stack([cols + 1 + off, y], 1)], 1)
    return np.concatenate([vertical, horizontal]).astype(np.float64)


def _draw_edges(ax: Any, segs: np.ndarray, colour: str, width: float) -> None:
    from matplotlib.collections import LineCollection

    if len(segs):
        ax.add_collection(LineCollection(list(segs), colors=colour, linewidths=width))


def draw_map(
    ax: Any,
    image: Any,
    attr_map: Any,
    title: str = "",
    *,
    style: MapStyle | None = None,
    segments: np.ndarray | None = None,
    top_k: int | None = None,
) -> Any:
    """Draw ``attr_map`` ``[H, W]`` over the greyed ``image`` (``[H, W(, C)]`` in [0, 1], or
    ``None``) on ``ax``; returns the map's ``AxesImage`` (its ``xaiq_role`` is ``"map"``), or
    ``None`` when the sign mode leaves nothing to draw (the panel says so, without a bar).

    ``segments``: int labels ``[H, W]`` to draw superpixel boundaries; ``top_k``: outline
    that many top segments (needs ``segments``). A colour bar is added when the style says so.
    """
    style = style or PRESETS["default"]
    values, low, high = prepare_map(attr_map, style)
    if image is not None:
        img, _ = display_image(image)
        if img.shape[:2] == values.shape:
            ax.imshow(_grey(img), cmap="gray", vmin=0.0, vmax=1.0)
    empty = _empty_part(attr_map, style)
    if empty is not None:
        ax.text(
            0.5,
            0.5,
            empty,
            ha="center",
            va="center",
            fontsize=9,
            transform=ax.transAxes,
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"},
        )
        ax.set_title(literal(title), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        return None
    cmap = style.cmap_signed if low < 0 else style.cmap
    im = ax.imshow(values, cmap=cmap, vmin=low, vmax=high, alpha=style.alpha)
    im.xaiq_role = "map"
    if segments is not None and np.shape(segments) == values.shape:
        seg = np.asarray(segments)
        _draw_edges(ax, _edges(seg), "white", 0.5)
        if top_k:
            chosen = np.isin(seg, top_k_segments(attr_map, seg, top_k))
            _draw_edges(ax, _edges(chosen, border=True), "yellow", 1.6)
    if style.colorbar and ax.figure is not None:
        bar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        bar.ax.tick_params(labelsize=7)
        bar.set_label(scale_label(style, low), fontsize=7)
    ax.set_title(literal(title), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def comparison_figure(
    image: Any,
    maps: Sequence[Any] | Mapping[str, Any],
    names: Sequence[str] | None = None,
    *,
    title: str | None = None,
    metrics: Mapping[str, float | int | None] | None = None,
    style: MapStyle | None = None,
    segments: np.ndarray | None = None,
    top_k: int | None = None,
) -> Any:
    """original | one map per method; returns the matplotlib ``Figure``. More than
    :data:`MAX_COLUMNS` panels wrap into balanced rows (5 panels: 3 + 2).

    Args:
        image: ``[H, W]`` or ``[H, W, C]`` in [0, 1] (the image the maps explain), or
            ``None`` (the first panel says the original is unavailable).
        maps: one ``[H, W]`` map per method, or ``{method: map}``.
        names: method names (registry names; titles use :func:`method_title`).
        title: figure title, e.g. :func:`sample_title`'s.
        metrics: metric values printed under the panels.
        style: a :class:`MapStyle` (default: ``PRESETS["default"]``).
        segments, top_k: see :func:`draw_map`.
    """
    from matplotlib.figure import Figure

    if isinstance(maps, Mapping):
        names, maps = list(maps), list(maps.values())
    names = list(names or [])
    if len(maps) != len(names):
        raise ValueError(f"{len(maps)} maps but {len(names)} names")
    n = len(maps) + 1
    rows = -(-n // MAX_COLUMNS)
    cols = -(-n // rows)  # more than MAX_COLUMNS panels: balanced rows, each panel readable
    fig = Figure(figsize=(3.3 * cols, (3.5 if metrics else 3.2) * rows + (0.25 if title else 0)))
    grid = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in grid[n:]:
        ax.set_axis_off()
    axes = grid[:n]
    if image is not None:
        img, img_cmap = display_image(image)
        axes[0].imshow(img, cmap=img_cmap, vmin=0.0, vmax=1.0)
        axes[0].set_title("original", fontsize=9)
    else:
        axes[0].text(0.5, 0.5, "original\nunavailable", ha="center", va="center", fontsize=9)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    for ax, attr_map, name in zip(axes[1:], maps, names, strict=True):
        draw_map(
            ax,
            image,
            attr_map,
            method_title(name),
            style=style,
            segments=segments,
            top_k=top_k,
        )
    suptitle = fig.suptitle(literal(title), fontsize=10) if title else None
    if metrics:
        text = "   ".join(
            f"{k.replace('_', ' ')}: "
            f"{'NULL' if v is None else (f'{v:.3f}' if isinstance(v, float) else v)}"
            for k, v in metrics.items()
        )
        fig.text(0.5, 0.02, literal(text), ha="center", fontsize=8)
    height = fig.get_figheight()
    lines = title.count("\n") + 1 if title else 0
    top = 1.0 - (0.12 + 0.2 * lines) / height if title else 1.0  # room for the title only
    bottom = 0.2 / height if metrics else 0.0
    fig.tight_layout(rect=(0.0, bottom, 1.0, top), h_pad=2.5)
    if suptitle is not None:  # square panels leave slack above the grid: title just over them
        fig.draw_without_rendering()
        inv = fig.transFigure.inverted()
        panels_top = max(inv.transform(ax.get_tightbbox())[1, 1] for ax in axes)
        suptitle.set(y=min(panels_top + 0.05 / height, 0.98), va="bottom")
    return fig


def map_images(fig: Any) -> list[Any]:
    """The map layers (``AxesImage``) of a figure drawn here, panel by panel."""
    return [im for ax in fig.axes for im in ax.images if getattr(im, "xaiq_role", "") == "map"]


def save_figure(fig: Any, path: str | Path, dpi: int = DEFAULT_DPI) -> Path:
    """Write ``fig`` to ``path``; the format is the extension (png, pdf or svg)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"figure format {path.suffix or '(none)'!r}; known: .png, .pdf, .svg")
    if not 10 <= int(dpi) <= 1200:
        raise ValueError(f"dpi must be in [10, 1200], not {dpi}")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=int(dpi), bbox_inches="tight")
    return path


def save_comparison_figure(
    path: str | Path,
    image: Any,
    maps: Sequence[Any],
    names: Sequence[str],
    *,
    dpi: int = DEFAULT_DPI,
    **kwargs: Any,
) -> Path:
    """:func:`comparison_figure` written by :func:`save_figure`; returns the path."""
    return save_figure(comparison_figure(image, maps, names, **kwargs), path, dpi)


__all__ = [
    "FORMATS",
    "PRESETS",
    "SIGN_MODES",
    "MapStyle",
    "comparison_figure",
    "display_image",
    "draw_map",
    "map_images",
    "method_title",
    "model_title",
    "non_negative",
    "prepare_map",
    "sample_title",
    "save_comparison_figure",
    "save_figure",
    "scale_label",
    "style_for",
    "top_k_segments",
]
