"""Which explanation to trust: one verdict per model, computed from statistics rows only.

Pure (no store, no plotting): :func:`model_verdicts` takes the rows the analysis already
produces — faithfulness per method (``faithfulness_stats``), the sanity check per method and
layer (``sanity_stats``), disagreement per pair at one configuration — and returns per model
one :class:`MethodVerdict` per method and a paragraph generated from those numbers. The
report opens with it; the CLI or ``serve`` can call the same function on the same rows.

Rules (each stated in the paragraph it produces):

- *faithful*: the deletion/insertion score ``insertion - deletion`` (pixel game). With a
  random-order baseline a method is faithful when, paired per sample, its insertion AUC minus
  the random order's has a 95% interval above 0 and its deletion AUC minus the random order's
  one below 0 (not faithful when either lies beyond 0 the wrong way; else inconclusive); with
  only unpaired baseline means, when its insertion AUC lies above the baseline's
  and its deletion AUC below, intervals not overlapping; without one, when its score's interval
  lies above 0. The most faithful method has the largest score.
- *sanity*: the check's verdict on ``|map|`` (pass when the upper 95% bound of the mean
  Spearman correlation after the last randomised layer is below ``threshold``) and the same
  rule applied to the signed map. A map whose ``|map|`` survives randomisation tracks the
  input rather than the model (Adebayo et al., 2018); if its sign does not survive, the model
  is in the sign only.
- *supported*: faithful (when measured) and passing the ``|map|`` sanity check (when run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Interval = tuple[float | None, float | None, float | None]  # mean, low, high
NONE3: Interval = (None, None, None)


@dataclass
class MethodVerdict:
    """One method of one model; every value ``None`` when its rows are absent."""

    model: str
    method: str  # the bare method name (``grad_cam``)
    name: str  # the map name in the rows (``digits-cnn-weak:grad_cam`` in cross-model jobs)
    deletion: Interval = NONE3
    insertion: Interval = NONE3
    random_deletion: Interval = NONE3
    random_insertion: Interval = NONE3
    # paired differences per sample: method - random order (its 95% interval)
    deletion_vs_random: Interval = NONE3
    insertion_vs_random: Interval = NONE3
    sparseness: Interval = NONE3
    sanity_abs: Interval = NONE3  # mean Spearman |map| at the last layer, with its interval
    sanity_signed: Interval = NONE3
    sanity_abs_verdict: str | None = None  # "pass" / "fail"
    sanity_signed_verdict: str | None = None
    threshold: float | None = None
    disagreement: dict[str, float | None] = field(default_factory=dict)  # other map -> mean

    @property
    def score(self) -> float | None:
        d, i = self.deletion[0], self.insertion[0]
        return None if d is None or i is None else i - d

    @property
    def faithful(self) -> bool | None:
        """Beats the random order (or, without one, insertion above deletion); None if
        unmeasured or the intervals cannot tell."""
        if self.deletion[0] is None or self.insertion[0] is None:
            return None
        d_vs, i_vs = self.deletion_vs_random, self.insertion_vs_random
        if d_vs[1] is not None and i_vs[1] is not None:
            # the paired test: per sample, the method against the random order of the same
            # sample; faithful when both differences point the right way beyond their
            # intervals, not faithful when either points the wrong way beyond its interval
            if _low(i_vs) > 0.0 and _high(d_vs) < 0.0:
                return True
            if _high(i_vs) < 0.0 or _low(d_vs) > 0.0:
                return False
            return None
        if self.random_insertion[0] is not None and self.random_deletion[0] is not None:
            ins_lo, rnd_ins_hi = _low(self.insertion), _high(self.random_insertion)
            del_hi, rnd_del_lo = _high(self.deletion), _low(self.random_deletion)
            return ins_lo > rnd_ins_hi and del_hi < rnd_del_lo
        return self.score is not None and self.score > 0

    @property
    def supported_blocked(self) -> bool:
        """A check that failed outright (it decides "not supported" on its own)."""
        return self.faithful is False or _passed(self.sanity_abs_verdict) is False

    @property
    def supported(self) -> bool | None:
        if self.score is not None and self.faithful is None and self.supported_blocked is False:
            return None  # faithfulness measured but inconclusive: cannot support it yet
        checks = [self.faithful, _passed(self.sanity_abs_verdict)]
        known = [c for c in checks if c is not None]
        return None if not known else all(known)


@dataclass
class ModelVerdict:
    model: str
    methods: list[MethodVerdict]
    others: list[str]  # the map names that have a disagreement column, in order
    metric: str  # the disagreement metric of the columns
    config: str  # the configuration the disagreement was read at
    title: Callable[[str], str] = str  # readable map names (the report: method_title)
    paragraph: str = ""


def _low(iv: Interval) -> float:
    return iv[1] if iv[1] is not None else iv[0]  # type: ignore[return-value]


def _high(iv: Interval) -> float:
    return iv[2] if iv[2] is not None else iv[0]  # type: ignore[return-value]


def _passed(verdict: str | None) -> bool | None:
    return None if verdict is None else verdict == "pass"


def split_name(name: str, models: Sequence[str]) -> tuple[str, str]:
    """``digits-cnn-weak:grad_cam`` -> ``("digits-cnn-weak", "grad_cam")`` when the prefix is
    one of ``models`` (longest first: model names may hold ``:``); else the first model."""
    for model in sorted(models, key=len, reverse=True):
        if name.startswith(f"{model}:"):
            return model, name[len(model) + 1 :]
    return (models[0] if models else ""), name


def _iv(row: Mapping[str, Any], prefix: str) -> Interval:
    return (row.get(f"{prefix}_mean"), row.get(f"{prefix}_low"), row.get(f"{prefix}_high"))


def _first(row: Mapping[str, Any], prefixes: Iterable[str]) -> Interval:
    for p in prefixes:
        if row.get(f"{p}_mean") is not None:
            return _iv(row, p)
    return NONE3


# names the random-order baseline and the sparseness may be stored under
RANDOM_DELETION = ("random_deletion", "deletion_random", "baseline_deletion")
RANDOM_INSERTION = ("random_insertion", "insertion_random", "baseline_insertion")
SPARSENESS = ("sparseness", "gini")


def model_verdicts(
    models: Sequence[str],
    methods: Sequence[str],
    *,
    faith: Sequence[Mapping[str, Any]] = (),
    sanity_layers: Sequence[Mapping[str, Any]] = (),
    sanity: Sequence[Mapping[str, Any]] = (),
    pairs: Sequence[Mapping[str, Any]] = (),
    metric: str = "feature_disagreement",
    config: str = "",
    threshold: float | None = None,
    title: Callable[[str], str] = str,
) -> list[ModelVerdict]:
    """Per model (in ``models`` order), one :class:`MethodVerdict` per method of ``methods``.

    ``faith``: ``faithfulness_stats`` rows by method (only ``unit == "pixels"`` is read);
    ``sanity_layers`` / ``sanity``: the two lists of ``sanity_stats``; ``pairs``: rows with
    ``pair`` (``"a vs b"``) and ``mean`` of ``metric`` at one configuration (``config``, its
    label); ``threshold``: the sanity threshold (default: the sanity rows'); ``title``: how
    a map name reads in the paragraph (the analysis layer knows no display names)."""
    single = len(models) <= 1
    names = [m if single else f"{model}:{m}" for model in models for m in methods]
    out: dict[str, MethodVerdict] = {}
    for name in names:
        model, method = split_name(name, models)
        out[name] = MethodVerdict(model=model, method=method, name=name)
    for r in faith:
        v = out.get(str(r.get("method")))
        if v is None or r.get("unit", "pixels") != "pixels":
            continue
        v.deletion, v.insertion = _iv(r, "deletion"), _iv(r, "insertion")
        v.random_deletion = _first(r, RANDOM_DELETION)
        v.random_insertion = _first(r, RANDOM_INSERTION)
        v.deletion_vs_random = _iv(r, "deletion_vs_random")
        v.insertion_vs_random = _iv(r, "insertion_vs_random")
        v.sparseness = _first(r, SPARSENESS)
    last: dict[str, Mapping[str, Any]] = {}
    for r in sanity_layers:
        name = str(r.get("method"))
        if name in out and (name not in last or r["layer_order"] > last[name]["layer_order"]):
            last[name] = r
    for r in sanity:
        v = out.get(str(r.get("method")))
        if v is None:
            continue
        v.threshold = threshold if threshold is not None else r.get("threshold")
        v.sanity_abs = (r.get("spearman_abs_mean"), None, r.get("spearman_abs_high"))
        v.sanity_abs_verdict = r.get("verdict")
        layer = last.get(v.name)
        if layer is not None:
            v.sanity_abs = _iv(layer, "spearman_abs")
            v.sanity_signed = _iv(layer, "spearman_signed")
        elif r.get("spearman_signed_mean") is not None:
            v.sanity_signed = (r.get("spearman_signed_mean"), None, None)
        if v.threshold is not None and v.sanity_signed[0] is not None:
            v.sanity_signed_verdict = "pass" if _high(v.sanity_signed) < v.threshold else "fail"
    for r in pairs:
        a, _, b = str(r.get("pair", "")).partition(" vs ")
        if a in out and b in out:
            out[a].disagreement[b] = r.get("mean")
            out[b].disagreement[a] = r.get("mean")
    result = []
    for model in models or [""]:
        mine = [v for v in out.values() if v.model == model or single]
        mv = ModelVerdict(model, mine, names, metric, config, title)
        mv.paragraph = paragraph(mv)
        result.append(mv)
    return result


def _f(x: float | None) -> str:
    return "NULL" if x is None else f"{x:.3f}".replace("-", "−")


def _sentence(
    v: MethodVerdict, best: MethodVerdict | None, baseline: bool, title: Callable[[str], str]
) -> str:
    good: list[str] = []
    bad: list[str] = []
    if v.score is not None:
        how = f"insertion − deletion {_f(v.score)}"
        if v is best:
            good.append(f"most faithful ({how})")
        elif v.faithful:
            good.append(f"faithful ({how})")
        elif v.faithful is False:
            chance = (
                "no better than the random order" if baseline else "insertion not above deletion"
            )
            bad.append(f"not faithful: {chance} ({how})")
        else:
            bad.append(f"faithfulness inconclusive: an interval against chance holds 0 ({how})")
    if v.sanity_abs_verdict == "pass":
        good.append(
            f"its map changes when the weights are randomised (Spearman |map| {_f(v.sanity_abs[0])}"
            f" < {v.threshold:g})"
        )
    elif (
        v.sanity_abs_verdict == "fail"
        and v.threshold is not None
        and (v.sanity_abs[0] is not None and v.sanity_abs[0] < v.threshold)
    ):
        bad.append(
            f"its sanity check is inconclusive (Spearman |map| {_f(v.sanity_abs[0])}, but the"
            f" interval reaches {_f(_high(v.sanity_abs))} ≥ {v.threshold:g}: more samples needed)"
        )
    elif v.sanity_abs_verdict == "fail":
        what = (
            f"its |map| survives randomisation (Spearman {_f(v.sanity_abs[0])}, upper bound"
            f" {_f(_high(v.sanity_abs))} ≥ {v.threshold:g})"
        )
        if v.sanity_signed_verdict == "pass":
            what += (
                f" while its sign does not (signed {_f(v.sanity_signed[0])}): on this data its"
                " magnitude tracks the input, not the model; only its sign reflects the model"
            )
        else:
            what += ": on this data it tracks the input, not the model"
        bad.append(what)
    if not good and not bad:
        return ""
    text = f"{title(v.name)}: " + ", ".join(good)
    if bad:
        text += (", but " if good else "") + "; ".join(bad)
    return text + "."


def paragraph(mv: ModelVerdict) -> str:
    """The verdict paragraph of one model, from its numbers only (module doc's rules)."""
    methods = mv.methods
    scored = [v for v in methods if v.score is not None]
    best = max(scored, key=lambda v: v.score or 0.0) if scored else None
    baseline = any(v.random_insertion[0] is not None for v in methods)
    sentences = [s for v in methods if (s := _sentence(v, best, baseline, mv.title))]
    # disagreement: the pair furthest apart and the closest, within this model's maps
    seen: dict[tuple[str, str], float] = {}
    order = {name: i for i, name in enumerate(mv.others)}

    def rank(name: str) -> tuple[int, str]:  # the job's map order, as the pairs were made
        return (order.get(name, len(order)), name)

    for v in methods:
        for other, value in v.disagreement.items():
            if value is not None:
                first, second = sorted((v.name, other), key=rank)
                seen[(first, second)] = value
    if len(seen) >= 2:
        hi = max(seen, key=lambda k: seen[k])
        lo = min(seen, key=lambda k: seen[k])
        sentences.append(
            f"The maps disagree most for {_pair(hi, mv.title)} ({_f(seen[hi])}) and least for"
            f" {_pair(lo, mv.title)} ({_f(seen[lo])}) ({mv.metric.replace('_', ' ')}"
            f"{f', {mv.config}' if mv.config else ''})."
        )
    yes = [mv.title(v.name) for v in methods if v.supported]
    no = [mv.title(v.name) for v in methods if v.supported is False]
    measured = any(v.score is not None or v.sanity_abs_verdict for v in methods)
    if yes or no or measured:
        sentences.append(
            (f"Supported on this data: {', '.join(yes)}." if yes else "No method is supported.")
            + (" Not supported: " + ", ".join(no) + "." if no else "")
        )
        unsure = [mv.title(v.name) for v in methods if v.supported is None]
        if unsure:
            sentences.append(f"Inconclusive (more samples needed): {', '.join(unsure)}.")
    else:
        sentences.append(
            "This job measured neither faithfulness nor the sanity check: the table can only"
            " say how far the methods' maps disagree, not which one to trust."
        )
    return " ".join(sentences)


def _pair(key: tuple[str, ...], title: Callable[[str], str]) -> str:
    return " vs ".join(title(n) for n in key)


__all__ = ["MethodVerdict", "ModelVerdict", "model_verdicts", "paragraph", "split_name"]
