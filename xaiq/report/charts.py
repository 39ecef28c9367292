"""The report's distribution charts (matplotlib object API, no global state).

Input everywhere: :class:`Values`, a job's disagreement rows of some metrics with their
sample's ``correct`` and ``confidence`` — one numpy array per column, NULL as NaN. Every
chart is split by configuration (never pooled) and draws one box per method pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from xaiq.analysis.glossary import GLOSSARY
from xaiq.xai.figures import literal, method_title

NL = "\n"


@dataclass
class Values:
    """Column arrays of one job's rows: ``pair`` (str), ``config`` (str label of the
    configuration), ``correct`` (float 1/0, NaN unknown), ``confidence`` and one float array
    per metric in ``metrics``."""

    pair: np.ndarray
    config: np.ndarray
    correct: np.ndarray
    confidence: np.ndarray
    metrics: dict[str, np.ndarray]

    def pairs(self) -> list[str]:
        return list(dict.fromkeys(self.pair.tolist()))

    def configs(self) -> list[str]:
        return list(dict.fromkeys(self.config.tolist()))


def pair_title(pair: str, sep: str = " ") -> str:
    """``integrated_gradients vs saliency`` -> ``Integrated Gradients vs Saliency``
    (``sep="\n"`` breaks the line before ``vs``, for axis ticks)."""
    a, _, b = pair.partition(" vs ")
    return f"{method_title(a)}{sep}vs {method_title(b)}" if b else method_title(a)


def pair_tick(pair: str) -> str:
    """A pair's axis tick: each map on its own line(s), a cross-model map's model above its
    method (``digits-cnn-weak:`` / ``Grad-CAM``), so neighbouring ticks never overlap."""
    a, _, b = pair.partition(" vs ")
    lines = method_title(a).replace(": ", ":" + NL).split(NL)
    if b:
        other = method_title(b).replace(": ", ":" + NL).split(NL)
        lines += ["vs " + other[0], *other[1:]]
    return NL.join(lines)


def tick_inches(pairs: Sequence[str], fontsize: float = 8.0) -> float:
    """Width one tick needs: its longest line at ``fontsize`` (about 0.6 em per character)."""
    longest = max((len(line) for p in pairs for line in pair_tick(p).split(NL)), default=10)
    return max(1.1, 0.6 * fontsize / 72 * longest + 0.25)


def _axis_label(metric: str) -> str:
    info = GLOSSARY.get(metric)
    if info is None:
        return metric
    arrow = "↑ disagree" if info.agreement_when == "low" else "↑ agree"
    return f"{info.title} ({arrow})"


def _finite(v: np.ndarray) -> np.ndarray:
    return v[~np.isnan(v)]


# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency; no red
# against green anywhere in the report
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
MISCLASSIFIED, CORRECT = "#D55E00", "#0072B2"  # vermillion / blue
MIN_BOX_N = 10  # fewer values than this: mean and interval, not a box


def is_binary(v: np.ndarray) -> bool:
    """Every value 0 or 1 (a top-k metric at k = 1, an outcome)."""
    return bool(v.size) and bool(np.all((v == 0.0) | (v == 1.0)))


def mean_and_interval(v: np.ndarray, metric: str = "") -> tuple[float, float, float] | None:
    """Mean with its 95% interval: Wilson for 0/1 values, Student-t otherwise (clipped to
    the metric's range); the mean alone (low = high) for one value."""
    from xaiq.analysis.intervals import mean_interval_of, wilson_interval

    if not v.size:
        return None
    mean = float(v.mean())
    ci = wilson_interval(int(v.sum()), int(v.size)) if is_binary(v) else mean_interval_of(v)
    low, high = (mean, mean) if ci is None else (float(ci[0]), float(ci[1]))
    info = GLOSSARY.get(metric)
    if info is not None:
        low, high = max(low, info.low), min(high, info.high)
    return mean, low, high


def draw_groups(
    ax: Any,
    groups: Sequence[np.ndarray],
    colours: Sequence[str],
    metric: str,
    positions: Sequence[float] | None = None,
    width: float = 0.6,
) -> str:
    """One group per position: a box (median, quartiles, 1.5 IQR whiskers, mean marker) when
    the group has at least :data:`MIN_BOX_N` values and is not 0/1; otherwise its mean with
    the 95% interval (and the values themselves, jittered). Returns what was drawn (for
    the caption): ``boxes``, ``means`` or ``both``."""
    pos = list(positions) if positions is not None else list(range(1, len(groups) + 1))
    rng = np.random.default_rng(0)
    kinds = set()
    for x, d, colour in zip(pos, groups, colours, strict=True):
        if d.size >= MIN_BOX_N and not is_binary(d):
            box = ax.boxplot(
                [d],
                positions=[x],
                widths=width,
                patch_artist=True,
                showmeans=True,
                meanprops={"marker": "^", "markerfacecolor": "white", "markeredgecolor": "black"},
                manage_ticks=False,
            )
            for patch in box["boxes"]:
                patch.set_facecolor(colour)
                patch.set_alpha(0.55)
            for line in box["medians"]:
                line.set_color("black")
            kinds.add("boxes")
            continue
        got = mean_and_interval(d, metric)
        if got is None:
            continue
        mean, low, high = got
        if not is_binary(d):
            jitter = rng.uniform(-width / 4, width / 4, d.size)
            ax.scatter(x + jitter, d, s=8, color=colour, alpha=0.45, linewidths=0)
        ax.errorbar(
            [x],
            [mean],
            yerr=[[mean - low], [high - mean]],
            fmt="o",
            color=colour,
            ecolor="black",
            elinewidth=1.2,
            capsize=4,
            markersize=6,
            markeredgecolor="black",
        )
        kinds.add("means")
    return "both" if len(kinds) == 2 else (kinds.pop() if kinds else "")


def distributions_figures(values: Values, metrics: Sequence[str]) -> list[tuple[str, Figure]]:
    """One figure per configuration (rows: metrics; in each panel one group per pair, see
    :func:`draw_groups`), as ``(configuration, figure)``."""
    pairs = values.pairs()
    out = []
    colours = [OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(pairs))]
    for config in values.configs():
        fig = Figure(figsize=(max(5.0, 1.2 + tick_inches(pairs) * len(pairs)), 3.0 * len(metrics)))
        axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
        for ax, metric in zip(axes, metrics, strict=True):
            col = values.metrics[metric]
            data = [_finite(col[(values.pair == p) & (values.config == config)]) for p in pairs]
            draw_groups(ax, data, colours, metric)
            ax.set_xticks(
                range(1, len(pairs) + 1),
                [
                    literal(f"{pair_tick(p)}{NL}(n={d.size})")
                    for p, d in zip(pairs, data, strict=True)
                ],
                fontsize=8,
            )
            ax.set_xlim(0.4, len(pairs) + 0.6)
            info = GLOSSARY.get(metric)
            if info is not None:
                pad = 0.04 * (info.high - info.low)
                ax.set_ylim(info.low - pad, info.high + pad)
            ax.tick_params(axis="y", labelsize=8)
            ax.set_ylabel(_axis_label(metric), fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_title(literal(config), fontsize=10)
        fig.tight_layout()
        out.append((config, fig))
    return out


def correctness_figures(values: Values, metric: str) -> list[tuple[str, Figure]]:
    """Per configuration: ``metric`` per pair split by misclassified / correct (boxes or
    means with intervals, :func:`draw_groups`), and ``metric`` against the model's confidence
    (points, with a binned mean line per pair; legend below the axes)."""
    pairs, configs = values.pairs(), values.configs()
    col = values.metrics[metric]
    bins = np.linspace(0.0, 1.0, 6)
    out = []
    for config in configs:
        fig = Figure(figsize=(max(5.0, tick_inches(pairs) * len(pairs) + 1.2) + 5.0, 4.6))
        ax, sc = fig.subplots(1, 2, width_ratios=[1.3, 1.0])
        in_config = values.config == config
        positions, data, colours, ticks = [], [], [], []
        for k, pair in enumerate(pairs):
            sel = in_config & (values.pair == pair)
            for off, flag, colour in ((-0.18, 0.0, MISCLASSIFIED), (0.18, 1.0, CORRECT)):
                positions.append(k + 1 + off)
                data.append(_finite(col[sel & (values.correct == flag)]))
                colours.append(colour)
            ticks.append(literal(pair_tick(pair)))
        draw_groups(ax, data, colours, metric, positions=positions, width=0.3)
        ax.set_xticks(range(1, len(pairs) + 1), ticks, fontsize=8)
        ax.set_xlim(0.4, len(pairs) + 0.6)
        ax.set_ylabel(_axis_label(metric), fontsize=9)
        ax.set_title(literal(f"{config}: misclassified (orange) vs correct (blue)"), fontsize=9.5)
        ax.tick_params(axis="y", labelsize=8)
        for k, pair in enumerate(pairs):
            sel = in_config & (values.pair == pair) & ~np.isnan(col)
            x, y = values.confidence[sel], col[sel]
            colour = OKABE_ITO[k % len(OKABE_ITO)]
            sc.scatter(x, y, s=10, alpha=0.45, color=colour, label=literal(pair_title(pair)))
            which = np.clip(np.digitize(x, bins) - 1, 0, len(bins) - 2)
            centres, means = [], []
            for b in range(len(bins) - 1):
                if np.any(which == b):
                    centres.append((bins[b] + bins[b + 1]) / 2)
                    means.append(float(y[which == b].mean()))
            sc.plot(centres, means, color=colour, lw=1.6)
        sc.set_xlabel("model confidence (probability of its prediction)", fontsize=9)
        sc.set_xlim(0.0, 1.02)
        sc.set_title("against confidence (line: mean per 0.2 bin)", fontsize=9.5)
        sc.tick_params(labelsize=8)
        # below the axes: a legend never hides a point
        sc.legend(
            fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False
        )
        fig.tight_layout()
        out.append((config, fig))
    return out


__all__ = [
    "OKABE_ITO",
    "Values",
    "correctness_figures",
    "distributions_figures",
    "draw_groups",
    "mean_and_interval",
    "pair_title",
]
