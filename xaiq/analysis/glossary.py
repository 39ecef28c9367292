"""What each stored disagreement metric means: range, direction, one-line definition.

Plain data (the definitions are the metric contract's in docs/architecture.md, implemented
in ``xaiq.xai.metrics``), read by ``xaiq metrics``, the report's glossary and the statistics
(a mean's interval is clipped to the metric's range: the true mean cannot lie outside it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str
    title: str  # readable name
    low: float
    high: float
    agreement_when: str  # "high" or "low": which end means the two maps agree
    definition: str
    null_when: str

    @property
    def kind(self) -> str:
        """``agreement`` (higher = more alike) or ``disagreement`` (higher = more apart)."""
        return "agreement" if self.agreement_when == "high" else "disagreement"

    @property
    def range_text(self) -> str:
        hi = "√2" if math.isclose(self.high, math.sqrt(2)) else f"{self.high:g}"
        return f"[{self.low:g}, {hi}]"


_RANK = "a map of constant |value| (all zero included): no ranking"
_DIST = "a map that is all zero"

GLOSSARY: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo(
            "feature_disagreement",
            "Feature disagreement",
            0.0,
            1.0,
            "low",
            "1 − feature agreement: share of the top-k superpixels (by |value|) not shared",
            _RANK,
        ),
        MetricInfo(
            "sign_disagreement",
            "Sign disagreement",
            0.0,
            1.0,
            "low",
            "1 − sign agreement",
            _RANK,
        ),
        MetricInfo(
            "euclidean",
            "Euclidean distance",
            0.0,
            2.0,
            "low",
            "‖a/‖a‖ − b/‖b‖‖ over superpixel means (signed maps, unit length)",
            _DIST,
        ),
        MetricInfo(
            "euclidean_abs",
            "Euclidean distance of |maps|",
            0.0,
            math.sqrt(2.0),
            "low",
            "the Euclidean distance of |a| and |b| (magnitudes only)",
            _DIST,
        ),
        MetricInfo(
            "feature_agreement",
            "Feature agreement",
            0.0,
            1.0,
            "high",
            "|topk(a) ∩ topk(b)| / k, k = max(1, ⌊k_frac·n⌋) of n superpixels",
            _RANK,
        ),
        MetricInfo(
            "sign_agreement",
            "Sign agreement",
            0.0,
            1.0,
            "high",
            "shared top-k superpixels whose signs also match, / k",
            _RANK,
        ),
        MetricInfo(
            "rank_agreement",
            "Rank agreement",
            0.0,
            1.0,
            "high",
            "positions j < k where both ordered top-k lists hold the same superpixel, / k",
            _RANK,
        ),
        MetricInfo(
            "signed_rank_agreement",
            "Signed rank agreement",
            0.0,
            1.0,
            "high",
            "rank agreement that also requires equal signs at that position",
            _RANK,
        ),
        MetricInfo(
            "rank_correlation",
            "Rank correlation",
            -1.0,
            1.0,
            "high",
            "Spearman correlation of |a| and |b| over all superpixels",
            _RANK,
        ),
        MetricInfo(
            "pairwise_rank_agreement",
            "Pairwise rank agreement",
            0.0,
            1.0,
            "high",
            "share of superpixel pairs i < j ordered the same way by |a| and |b|",
            _RANK,
        ),
    )
}


def clip_to_range(metric: str, low: float | None, high: float | None) -> tuple:
    """An interval ``(low, high)`` clipped to ``metric``'s range (unknown metric: as is)."""
    info = GLOSSARY.get(metric)
    if info is None or low is None or high is None:
        return low, high
    return max(low, info.low), min(high, info.high)


def glossary_rows() -> list[dict[str, str]]:
    """One row per metric for ``xaiq metrics`` and the report."""
    return [
        {
            "metric": m.name,
            "name": m.title,
            "kind": m.kind,
            "range": m.range_text,
            "agreement when": m.agreement_when,
            "definition": m.definition,
            "NULL when": m.null_when,
        }
        for m in GLOSSARY.values()
    ]


__all__ = ["GLOSSARY", "MetricInfo", "clip_to_range", "glossary_rows"]
