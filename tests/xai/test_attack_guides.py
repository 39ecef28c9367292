"""Any explainer as the attack's guide; the independent (compare) mode; the speculative chain."""

from __future__ import annotations

import math

import pytest
import torch

from xaiq.xai.attack import (
    COMMON_STREAM,
    choose_pixels,
    parse_strategy,
    rise_guided_search,
    select_pixels,
)
from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.explainers import EXPLAINERS, explain
from xaiq.xai.noise import normal, uniform_bits
from xaiq.xai.ties import STREAM_TIES

MISCLASSIFIED = [5, 122, 2, 50]  # digits-cnn-weak; 5 and 122 are quick, 2 and 50 are not
CHEAP = {
    "integrated_gradients": {"n_steps": 4},
    "smoothgrad": {"n_samples": 2},
    "gradient_shap": {"n_samples": 2},
    "rise": {"n_masks": 40},
    "occlusion": {"window": 7},
}


@pytest.fixture(scope="module")
def weak():
    from xaiq.xai.models import load_model

    return load_model("digits-cnn-weak", device="cpu")


@pytest.fixture(scope="module")
def digits_inputs(weak):
    from xaiq.xai.digits import digits_arrays

    images, labels = digits_arrays()
    return weak.preprocess(images[:200]), torch.from_numpy(labels[:200])


# Probabilities and gradient norms come out of the model's forward, whose float rounding
# depends on the batch it runs in (oneDNN blocks convolutions by batch size): equal to ~1e-6
# relative, not to the bit. Every decision the search takes, and so every image, count and
# class, must be identical.
_FLOATS = ("prob_before", "prob_after", "grad_norm_logit", "grad_norm_logprob", "confidence")


class _Close(float):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, float) and math.isclose(self, other, rel_tol=1e-4, abs_tol=1e-12)

    __hash__ = float.__hash__


def _row(d):
    return {k: (_Close(v) if k in _FLOATS and v is not None else v) for k, v in d.items()}


def _rows(results):
    """Everything a job stores (images as lists): identical up to the forward's rounding."""
    out = []
    for r in results:
        row = _row(r.to_row())
        row["final"] = r.final.tolist()
        row["outcomes"] = [_row(o.to_row()) | {"final": o.final.tolist()} for o in r.outcomes]
        out.append(row)
    return out


@pytest.mark.parametrize("method", EXPLAINERS.names())
@pytest.mark.parametrize("order", ["least", "most"])
def test_every_explainer_works_as_a_guide_and_its_mask_follows_its_map(
    weak, digits_inputs, method, order
):
    x, y = digits_inputs
    idx = MISCLASSIFIED[:2]
    params = CHEAP.get(method, {})
    results = rise_guided_search(
        weak,
        x[idx],
        y[idx],
        sample_ids=idx,
        strategies=[f"{order}:{method}"],
        guide_params={method: params} if params else {},
        n_masks=40,
        max_iters=3,
        seed=2,
    )
    maps = explain(method, weak, x[idx], y[idx], seed=2, sample_ids=idx, **params)
    b = math.floor(0.4 * 28 * 28)
    for r, m in zip(results, maps, strict=True):
        (o,) = r.outcomes
        assert o.strategy == parse_strategy(f"{order}:{method}").name
        assert int(o.mask.sum()) == b
        inside, outside = m[o.mask], m[~o.mask]
        if order == "least":
            assert float(inside.max()) <= float(outside.min())
        else:
            assert float(inside.min()) >= float(outside.max())
        changed = (o.final != x[idx[results.index(r)]]).any(dim=0)
        assert not bool((changed & ~o.mask).any())
        assert o.guide_passes >= 1 and o.forward_passes == o.guide_passes + o.iterations


@pytest.mark.parametrize("ties", ["random", "index"])
@pytest.mark.parametrize("order", ["least", "most"])
def test_a_guided_mask_holds_exactly_the_budget_of_lowest_or_highest_pixels_ties_as_chosen(
    order, ties
):
    # random: equal values in the sample's seeded random order (the default); index: the
    # lower flat index first (the source lab's rule)
    gen = torch.Generator().manual_seed(0)
    sal = torch.randint(0, 5, (3, 9, 7), generator=gen).float()  # many ties
    frac = 0.37
    b = math.floor(frac * 9 * 7)
    ids = torch.tensor([0, 7, 2])
    mask, tied = choose_pixels(
        f"{order}:saliency", frac, (3, 9, 7), saliency=sal, seed=4, sample_ids=ids, ties=ties
    )
    keys = uniform_bits(4, ids, 63, stream=STREAM_TIES)
    for row, (s, m) in enumerate(zip(sal.flatten(1), mask.flatten(1), strict=True)):
        values = s.tolist()
        tie_key = (lambda i: i) if ties == "index" else (lambda i, r=row: (int(keys[r, i]), i))
        ranked = sorted(
            range(63), key=lambda i: (values[i] if order == "least" else -values[i], tie_key(i))
        )
        expected = sorted(ranked[:b])
        assert m.nonzero().squeeze(1).tolist() == expected
        edge = values[ranked[b - 1]]
        crosses = values[ranked[b]] == edge
        assert int(tied[row]) == (sum(values[i] == edge for i in ranked[:b]) if crosses else 0)
    if ties == "random":  # not the index order
        index_mask = select_pixels(f"{order}:saliency", frac, (3, 9, 7), saliency=sal, ties="index")
        assert not torch.equal(mask, index_mask)


def test_least_rise_is_the_rise_least_strategy_with_the_same_rows(weak, digits_inputs):
    x, y = digits_inputs
    idx = MISCLASSIFIED[:2]
    cfg = dict(sample_ids=idx, n_masks=60, max_iters=30, seed=1)
    a = rise_guided_search(weak, x[idx], y[idx], strategies=["least:rise", "central"], **cfg)
    b = rise_guided_search(weak, x[idx], y[idx], strategies=["rise-least", "central"], **cfg)
    assert _rows(a) == _rows(b)
    assert a[0].strategies_tried[0] == "rise-least"


def test_unknown_guides_are_refused_naming_the_known_methods(weak, digits_inputs):
    x, y = digits_inputs
    with pytest.raises(InvalidParameterError, match="saliency"):
        rise_guided_search(weak, x[:1], y[:1], strategies=["least:salience"])
    with pytest.raises(InvalidParameterError, match="least:METHOD"):
        rise_guided_search(weak, x[:1], y[:1], strategies=["lowest:saliency"])
    with pytest.raises(InvalidParameterError, match="n_step"):
        rise_guided_search(
            weak,
            x[:1],
            y[:1],
            strategies=["least:integrated_gradients"],
            guide_params={"integrated_gradients": {"n_step": 3}},
        )


GUIDES = ["least:saliency", "least:grad_cam", "rise-least", "random", "central"]


def test_independent_mode_gives_the_same_rows_whatever_the_batch(weak, digits_inputs):
    x, y = digits_inputs
    idx = MISCLASSIFIED
    cfg = dict(strategies=GUIDES, compare=True, n_masks=60, max_iters=25, seed=3)
    together = rise_guided_search(weak, x[idx], y[idx], sample_ids=idx, **cfg)
    split = rise_guided_search(weak, x[idx[:1]], y[idx[:1]], sample_ids=idx[:1], **cfg)
    split += rise_guided_search(
        weak, x[idx[1:]], y[idx[1:]], sample_ids=idx[1:], batch_size=3, **cfg
    )
    assert _rows(together) == _rows(split)
    for r in together:  # every strategy attacked every sample from the original
        assert [o.strategy for o in r.outcomes] == GUIDES
        for o in r.outcomes:
            assert o.first_success_iter == (o.iterations if o.success else None)
            assert o.iterations == 25 or o.success
    wins = {o.strategy for r in together for o in r.outcomes if o.success}
    fails = {o.strategy for r in together for o in r.outcomes if not o.success}
    assert wins and fails  # both outcomes exercised


def test_compare_mode_reports_the_chain_it_contains(weak, digits_inputs):
    x, y = digits_inputs
    idx = MISCLASSIFIED
    cfg = dict(sample_ids=idx, strategies=GUIDES, n_masks=60, max_iters=25, seed=3)
    chain = rise_guided_search(weak, x[idx], y[idx], **cfg)
    compare = rise_guided_search(weak, x[idx], y[idx], compare=True, **cfg)
    for a, b in zip(_rows(chain), _rows(compare), strict=True):
        tried = len(a["outcomes"])
        assert b["outcomes"][:tried] == a["outcomes"]
        a.pop("outcomes"), b.pop("outcomes")
        assert a == b


@pytest.mark.parametrize("fill", [1, 10_000])
def test_the_speculative_chain_gives_the_rows_of_the_sequential_chain(weak, digits_inputs, fill):
    x, y = digits_inputs
    idx = MISCLASSIFIED
    cfg = dict(sample_ids=idx, n_masks=60, max_iters=25, seed=5, candidates=2)
    chain = ["rise-least", "least:saliency", "random", "central"]
    sequential = rise_guided_search(weak, x[idx], y[idx], strategies=chain, fill=0, **cfg)
    speculative = rise_guided_search(weak, x[idx], y[idx], strategies=chain, fill=fill, **cfg)
    assert _rows(sequential) == _rows(speculative)
    lengths = {len(r.strategies_tried) for r in sequential}
    assert min(lengths) == 1 and max(lengths) >= 3  # later strategies did run speculatively


@pytest.mark.parametrize("fill", [5, 64, 10_000])
@pytest.mark.parametrize(
    "extra",
    [
        dict(compare=True, strategies=["rise-least", "random", "central"]),
        dict(clamp=True, candidates=1),
    ],
    ids=["compare", "clamp-k1"],
)
def test_evaluating_iterations_ahead_gives_the_rows_of_one_step_at_a_time(
    weak, digits_inputs, fill, extra
):
    """Lookahead evaluates a track's next iterations from its current image and drops
    them at the first acceptance: accepted candidates early (many discarded iterations)
    and failures up to an odd max_iters (a lookahead cut at the cap) both occur here."""
    x, y = digits_inputs
    idx = MISCLASSIFIED
    cfg = dict(sample_ids=idx, n_masks=60, max_iters=23, seed=11, candidates=2) | extra
    one_step = rise_guided_search(weak, x[idx], y[idx], fill=0, **cfg)
    ahead = rise_guided_search(weak, x[idx], y[idx], fill=fill, **cfg)
    assert _rows(one_step) == _rows(ahead)
    outcomes = [o for r in one_step for o in r.outcomes]
    assert any(o.success for o in outcomes) and any(not o.success for o in outcomes)


def test_a_failed_strategy_keeps_its_highest_scoring_image(weak, digits_inputs):
    x, y = digits_inputs
    i = MISCLASSIFIED[3]
    (r,) = rise_guided_search(
        weak, x[i : i + 1], y[i : i + 1], sample_ids=[i], strategies=["central"], max_iters=30
    )
    (o,) = r.outcomes
    assert not o.success and o.l0 > 0  # a candidate, not the original
    assert r.l0 == o.l0 and torch.equal(r.final, o.final)
    logp = weak.module(o.final[None]).log_softmax(1)[0, int(y[i])]
    assert math.isclose(math.exp(float(logp)), o.prob_after, rel_tol=1e-4)
    for it in range(30):  # no candidate of the 30 scored higher than the one kept
        z = normal(0, torch.tensor([i]), it, 1, o.mask.sum().item(), stream=COMMON_STREAM)[0, 0]
        cand = x[i].clone().flatten()
        elems = o.mask.flatten().nonzero().squeeze(1)
        cand[elems] = (cand[elems] + z).clamp(0.0, 1.0)  # clamped into the digits' domain
        lp = weak.module(cand.view(1, 1, 28, 28)).log_softmax(1)[0, int(y[i])]
        assert float(lp) <= float(logp) + 1e-5


def test_goal_gradient_norms_and_confidence_are_those_of_the_original(weak, digits_inputs):
    x, y = digits_inputs
    i = MISCLASSIFIED[0]
    (r,) = rise_guided_search(weak, x[i : i + 1], y[i : i + 1], strategies=["central"], max_iters=1)
    xi = x[i : i + 1].clone().requires_grad_(True)
    logits = weak.module(xi)
    (g,) = torch.autograd.grad(logits[0, int(y[i])], xi)
    assert math.isclose(float(g.norm()), r.grad_norm_logit, rel_tol=1e-5)
    xi = x[i : i + 1].clone().requires_grad_(True)
    (g2,) = torch.autograd.grad(weak.module(xi).log_softmax(1)[0, int(y[i])], xi)
    assert math.isclose(float(g2.norm()), r.grad_norm_logprob, rel_tol=1e-5)
    assert math.isclose(float(logits.softmax(1).max()), r.confidence, rel_tol=1e-6)
