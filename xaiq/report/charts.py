"""The report's distribution charts (matplotlib object API, no global state).

Input everywhere: :class:`Values`, a job's disagreement rows of some metrics with their
sample's ``correct`` and ``confidence`` — one numpy array per column, NULL as NaN. Every
chart is split by configuration (never pooled) and draws one box per method pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from xaiq.analysis.glossary import GLOSSARY
from xaiq.xai.figures import method_title

NL = "\n"
_PAIR_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


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


def _axis_label(metric: str) -> str:
    info = GLOSSARY.get(metric)
    if info is None:
        return metric
    arrow = "↑ disagree" if info.agreement_when == "low" else "↑ agree"
    return f"{info.title} ({arrow})"


def _finite(v: np.ndarray) -> np.ndarray:
    return v[~np.isnan(v)]


def distributions_figure(values: Values, metrics: Sequence[str]) -> Figure:
    """Rows: metrics; columns: configurations; in each panel one box per pair."""
    pairs, configs = values.pairs(), values.configs()
    fig = Figure(figsize=(max(4.5, 1.0 + 1.15 * len(pairs)) * len(configs), 2.6 * len(metrics)))
    axes = fig.subplots(len(metrics), len(configs), squeeze=False)
    for i, metric in enumerate(metrics):
        col = values.metrics[metric]
        for j, config in enumerate(configs):
            ax = axes[i, j]
            data = [_finite(col[(values.pair == p) & (values.config == config)]) for p in pairs]
            shown = [d if d.size else np.array([np.nan]) for d in data]
            box = ax.boxplot(shown, patch_artist=True, widths=0.6, showmeans=True)
            for patch, colour in zip(box["boxes"], _PAIR_COLOURS * 4, strict=False):
                patch.set_facecolor(colour)
                patch.set_alpha(0.55)
            ax.set_xticks(
                range(1, len(pairs) + 1),
                [f"{pair_title(p, NL)}{NL}(n={d.size})" for p, d in zip(pairs, data, strict=True)],
                fontsize=6.5,
            )
            info = GLOSSARY.get(metric)
            if info is not None:
                pad = 0.04 * (info.high - info.low)
                ax.set_ylim(info.low - pad, info.high + pad)
            ax.tick_params(axis="y", labelsize=7)
            if j == 0:
                ax.set_ylabel(_axis_label(metric), fontsize=7.5)
            if i == 0:
                ax.set_title(config, fontsize=8.5)
    fig.tight_layout()
    return fig


def correctness_figure(values: Values, metric: str) -> Figure:
    """Per configuration: ``metric`` per pair split by correct / misclassified (boxes), and
    ``metric`` against the model's confidence (points, with a binned mean line per pair)."""
    pairs, configs = values.pairs(), values.configs()
    col = values.metrics[metric]
    fig = Figure(figsize=(max(5.0, 1.3 * len(pairs) + 2.5) + 4.2, 3.0 * len(configs)))
    axes = fig.subplots(len(configs), 2, squeeze=False, width_ratios=[1.3, 1.0])
    bins = np.linspace(0.0, 1.0, 6)
    for i, config in enumerate(configs):
        ax, sc = axes[i, 0], axes[i, 1]
        in_config = values.config == config
        positions, data, colours, ticks = [], [], [], []
        for k, pair in enumerate(pairs):
            sel = in_config & (values.pair == pair)
            for off, flag, colour in ((-0.18, 0.0, "tab:red"), (0.18, 1.0, "tab:green")):
                d = _finite(col[sel & (values.correct == flag)])
                positions.append(k + 1 + off)
                data.append(d if d.size else np.array([np.nan]))
                colours.append(colour)
            ticks.append(pair_title(pair, "\n"))
        box = ax.boxplot(data, positions=positions, widths=0.3, patch_artist=True)
        for patch, colour in zip(box["boxes"], colours, strict=True):
            patch.set_facecolor(colour)
            patch.set_alpha(0.5)
        ax.set_xticks(range(1, len(pairs) + 1), ticks, fontsize=6.5)
        ax.set_ylabel(_axis_label(metric), fontsize=7.5)
        ax.set_title(f"{config}: misclassified (red) vs correct (green)", fontsize=8.5)
        ax.tick_params(axis="y", labelsize=7)
        for k, pair in enumerate(pairs):
            sel = in_config & (values.pair == pair) & ~np.isnan(col)
            x, y = values.confidence[sel], col[sel]
            colour = _PAIR_COLOURS[k % len(_PAIR_COLOURS)]
            sc.scatter(x, y, s=7, alpha=0.35, color=colour, label=pair_title(pair))
            which = np.clip(np.digitize(x, bins) - 1, 0, len(bins) - 2)
            centres, means = [], []
            for b in range(len(bins) - 1):
                if np.any(which == b):
                    centres.append((bins[b] + bins[b + 1]) / 2)
                    means.append(float(y[which == b].mean()))
            sc.plot(centres, means, color=colour, lw=1.6)
        sc.set_xlabel("model confidence (probability of its prediction)", fontsize=7.5)
        sc.set_xlim(0.0, 1.02)
        sc.set_title(f"{config}: against confidence (line: mean per 0.2 bin)", fontsize=8.5)
        sc.tick_params(labelsize=7)
        if i == 0:
            sc.legend(fontsize=6.5, loc="best")
    fig.tight_layout()
    return fig


__all__ = ["Values", "correctness_figure", "distributions_figure", "pair_title"]
