"""Matplotlib figures (Agg backend, no display) and their PNG / data-URI encodings.

Attribution maps follow the one picture convention of :mod:`xaiq.xai.figures` (signed,
diverging colours centred on zero, percentile clipping, a colour bar per panel), the same
as ``xaiq compare``. In attack figures model inputs are shown min-max scaled; the final
image uses the original's scale when it stays inside it, else its own range (named in the
title: the values the model saw, never clipped), and the difference panel shows the change.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from xaiq.report.sources import to_display  # noqa: E402
from xaiq.xai.figures import MapStyle, comparison_figure, literal  # noqa: E402


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _first3(image: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` -> ``[H, W]`` (one channel) or ``[H, W, 3]``, float64."""
    a = np.asarray(image, dtype=np.float64)
    return a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)


def _off(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def sample_figure(
    original: np.ndarray | None,
    maps: Mapping[str, np.ndarray],
    title: str = "",
    *,
    style: MapStyle | None = None,
    segments: np.ndarray | None = None,
    top_k: int | None = None,
) -> Figure:
    """original | one map per method, drawn by :func:`xaiq.xai.figures.comparison_figure`
    (the one convention ``compare`` uses too). ``original``: the displayable image
    ``[H, W(, C)]`` in [0, 1] (:func:`~xaiq.report.sources.original_display`) or None."""
    return comparison_figure(
        original, dict(maps), title=title or None, style=style, segments=segments, top_k=top_k
    )


def attack_figure(original: np.ndarray | None, final: np.ndarray, title: str = "") -> Figure:
    """original | changed pixels | final | difference (final - original, summed over
    channels, symmetric ``RdBu_r``). ``original``/``final``: model inputs ``[C, H, W]``.
    Without the original only the final image is drawn."""
    final = final if final.ndim == 3 else final[None]
    if original is None:
        fig, ax = plt.subplots(1, 1, figsize=(3, 3.2))
        ax.imshow(to_display(final)[0], cmap="gray")
        ax.set_title("final (original unavailable)", fontsize=9)
        _off(ax)
    else:
        original = original if original.ndim == 3 else original[None]
        diff = (final.astype(np.float64) - original).sum(axis=0)
        changed = np.any(final != original, axis=0)
        # the original keeps its contrast; the final is drawn with the values the model saw:
        # on the original's scale when it stays inside that range, otherwise on its own
        # range, named in the title (never clipped away)
        lo, hi = float(original.min()), float(original.max())
        f_lo, f_hi = float(final.min()), float(final.max())
        inside = f_lo >= lo and f_hi <= hi
        flo, fhi = (lo, hi) if inside else (f_lo, f_hi)
        shown_o = np.clip((_first3(original) - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
        shown_f = (_first3(final) - flo) / ((fhi - flo) or 1.0)
        fig, axes = plt.subplots(1, 4, figsize=(13.6, 3.6))  # >= 300 px per panel at 100 dpi
        gray = "gray" if shown_o.ndim == 2 else None
        axes[0].imshow(shown_o, cmap=gray, vmin=0, vmax=1)
        axes[0].set_title("original", fontsize=9)
        axes[1].imshow(changed, cmap="magma", vmin=0, vmax=1)
        axes[1].set_title(f"changed pixels ({int(changed.sum())})", fontsize=9)
        axes[2].imshow(shown_f, cmap=gray, vmin=0, vmax=1)
        axes[2].set_title(
            "final (original's range)"
            if inside
            else f"final as the model saw it, values {f_lo:.3g} to {f_hi:.3g}",
            fontsize=9,
        )
        lim = float(np.abs(diff).max()) or 1.0
        im = axes[3].imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[3].set_title("difference", fontsize=9)
        fig.colorbar(im, ax=axes[3], fraction=0.046)
        for ax in axes:
            _off(ax)
    if title:
        fig.suptitle(literal(title), fontsize=10)
    fig.tight_layout()
    return fig


def attack_summary_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Outcome counts by winning strategy (a success with out-of-domain pixels, or not
    checked, apart and in orange), and target probability before vs after."""
    from xaiq.analysis.queries import in_domain_success, success_label

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    counts: dict[str, int] = {}
    for r in rows:
        key = (r["strategy"] or "none") if r["success"] else "failed"
        if r["success"] and not in_domain_success(r["success"], r.get("out_of_domain")):
            key += "\n(" + success_label(r["success"], r.get("out_of_domain")).partition("(")[2]
        counts[key] = counts.get(key, 0) + 1
    names = sorted(counts)
    # Okabe-Ito (never red against green): vermillion for failures, orange for successes
    # out of the domain, blue for successes
    colours = ["#D55E00" if n == "failed" else "#E69F00" if "(" in n else "#0072B2" for n in names]
    ax1.bar([literal(n) for n in names], [counts[n] for n in names], color=colours)
    ax1.set_title("outcome (winning strategy)", fontsize=9)
    ax1.tick_params(labelsize=8)
    before = [r["prob_before"] for r in rows]
    after = [r["prob_after"] for r in rows]
    ok = [in_domain_success(r["success"], r.get("out_of_domain")) for r in rows]
    ax2.scatter(before, after, c=["tab:green" if s else "tab:red" for s in ok], s=18)
    ax2.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax2.set_xlabel("target probability before", fontsize=8)
    ax2.set_ylabel("after", fontsize=8)
    ax2.set_xlim(-0.05, 1.05)
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_title("target probability (blue: success, orange: failed)", fontsize=9)
    fig.tight_layout()
    return fig
