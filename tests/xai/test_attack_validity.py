"""Valid by default: the input domain, exact budgets, common random numbers, seeded ties."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from xaiq.xai.attack import (
    COMMON_STREAM,
    central_region,
    choose_pixels,
    noise_streams,
    outside_domain,
    parse_strategy,
    rise_guided_search,
)
from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.noise import normal
from xaiq.xai.ties import rank, tie_permutation, tied_in_top

MISCLASSIFIED = [5, 122, 2, 50]  # by digits-cnn-weak


@pytest.fixture(scope="module")
def weak():
    from xaiq.xai.models import load_model

    return load_model("digits-cnn-weak", device="cpu")


@pytest.fixture(scope="module")
def digits_inputs(weak):
    from xaiq.xai.digits import digits_arrays

    images, labels = digits_arrays()
    return weak.preprocess(images[:200]), torch.from_numpy(labels[:200])


# --- the input domain ---------------------------------------------------------------------


def test_the_default_attack_keeps_every_final_image_inside_the_domain(weak, digits_inputs):
    x, y = digits_inputs
    idx = MISCLASSIFIED
    cfg = dict(sample_ids=idx, max_iters=150, n_masks=100, compare=True)
    cfg["strategies"] = ["rise-least", "central", "random"]
    results = rise_guided_search(weak, x[idx], y[idx], **cfg)
    for r in results:
        for o in (r, *r.outcomes):
            assert float(o.final.min()) >= 0.0 and float(o.final.max()) <= 1.0
            assert o.out_of_domain == 0.0 and o.max_excursion == 0.0
    # the source lab's setting leaves the domain, and every row says how far
    free = rise_guided_search(weak, x[idx], y[idx], preset="seed", **cfg)
    outs = [o for r in free for o in r.outcomes]
    assert any(o.out_of_domain > 0 for o in outs)
    for o in outs:
        beyond = torch.maximum(-o.final, o.final - 1.0).clamp(min=0)
        assert o.max_excursion == pytest.approx(float(beyond.max()))
        assert o.out_of_domain == pytest.approx(float((beyond[0] > 0).float().mean()))


def test_torchvision_style_domains_are_per_channel_normalised_pixels():
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    lo = ((0 - mean) / std)[:, None].expand(3, 4).reshape(-1)
    hi = ((1 - mean) / std)[:, None].expand(3, 4).reshape(-1)
    img = ((torch.full((3, 4), 0.5) - mean[:, None]) / std[:, None]).reshape(1, -1).clone()
    img[0, 5] = hi[5] + 0.25  # channel 1, pixel 1 above its bound
    img[0, 8] = lo[8] - 1.0  # channel 2, pixel 0 below its bound
    share, excursion = outside_domain(img, (lo, hi), 3)
    assert share.tolist() == [0.5] and excursion.item() == pytest.approx(1.0)


def test_the_domain_of_a_loaded_model_is_its_normalised_unit_interval(weak):
    lo, hi = weak.input_range
    assert lo.flatten().tolist() == [0.0] and hi.flatten().tolist() == [1.0]


# --- exact budgets ------------------------------------------------------------------------


@pytest.mark.parametrize("frac", [0.05, 0.1, 0.25, 0.4, 0.5, 0.9, 1.0])
@pytest.mark.parametrize(("h", "w"), [(28, 28), (7, 11), (224, 224), (5, 3)])
def test_central_selects_exactly_the_budget(frac, h, w):
    b = math.floor(frac * h * w)
    if b < 1:  # an empty budget is refused, naming frac
        with pytest.raises(InvalidParameterError, match="frac"):
            central_region(frac, h, w)
        return
    region, _ = central_region(frac, h, w)
    assert int(region.sum()) == b
    rh, rw = math.floor(h * math.sqrt(frac)), math.floor(w * math.sqrt(frac))
    top, left = (h - rh) // 2, (w - rw) // 2
    assert bool(region[top : top + rh, left : left + rw].all())  # holds the centred rectangle
    mask, _ = choose_pixels("central", frac, (2, h, w))
    assert mask.flatten(1).sum(1).tolist() == [b, b]


def test_central_is_deterministic_and_its_top_up_is_nearest_the_centre():
    a, _ = central_region(0.4, 28, 28)
    b, _ = central_region(0.4, 28, 28)
    assert torch.equal(a, b)
    rect, _ = central_region(0.4, 28, 28, exact=False)
    extra = (a & ~rect).nonzero().float()
    dist = ((extra - 13.5) ** 2).sum(1)
    outside = (~a).nonzero().float()
    assert float(dist.max()) <= float(((outside - 13.5) ** 2).sum(1).min())


# --- common random numbers ----------------------------------------------------------------


def test_every_strategy_draws_the_same_noise_for_a_sample_and_iteration():
    strategies = [parse_strategy(n) for n in ("least:saliency", "rise-least", "central", "random")]
    streams = noise_streams(strategies)
    assert set(streams) == {COMMON_STREAM}
    ids = torch.tensor([5, 122])
    draws = [normal(3, ids, 17, 2, 313, stream=st) for st in streams]
    assert all(torch.equal(draws[0], d) for d in draws[1:])
    assert not torch.equal(draws[0], normal(3, ids, 18, 2, 313, stream=streams[0]))
    own = noise_streams(strategies, "strategy")  # the source lab's: a stream each
    assert len(set(own)) == 4 and COMMON_STREAM not in own


def test_in_a_comparison_two_strategies_make_identical_steps(weak, digits_inputs):
    # one iteration, one candidate, no clamp: each final image is original + sigma * z on its
    # own pixels; with common random numbers z is the same vector for every strategy
    x, y = digits_inputs
    idx = MISCLASSIFIED[:2]
    cfg = dict(sample_ids=idx, max_iters=1, compare=True, clamp=False, sigma=0.5)
    results = rise_guided_search(weak, x[idx], y[idx], strategies=["central", "random"], **cfg)
    for r, original in zip(results, x[idx], strict=True):
        steps = []
        for o in r.outcomes:
            elems = o.mask.flatten().nonzero().flatten()
            steps.append((o.final.flatten() - original.flatten())[elems])
        assert torch.allclose(steps[0], steps[1], atol=1e-6)
        assert float(steps[0].abs().max()) > 0
    own = rise_guided_search(
        weak, x[idx], y[idx], strategies=["central", "random"], noise="strategy", **cfg
    )
    a, b = own[0].outcomes
    da = (a.final - x[idx[0]]).flatten()[a.mask.flatten()]
    db = (b.final - x[idx[0]]).flatten()[b.mask.flatten()]
    assert not torch.allclose(da, db)


# --- ties ---------------------------------------------------------------------------------


def test_random_tie_order_is_seeded_per_sample_and_not_index_order():
    flat = torch.zeros(3, 100)
    ids = torch.tensor([4, 4, 9])
    order = rank(flat, ties="random", seed=1, sample_ids=ids)
    assert torch.equal(order[0], order[1])  # the same sample: the same order
    assert not torch.equal(order[0], order[2])  # another sample: another order
    assert not torch.equal(order[0], torch.arange(100))  # not by index
    assert sorted(order[0].tolist()) == list(range(100))
    again = rank(flat[:1], ties="random", seed=1, sample_ids=ids[:1])  # alone: the same
    assert torch.equal(again[0], order[0])
    other_seed = rank(flat[:1], ties="random", seed=2, sample_ids=ids[:1])
    assert not torch.equal(other_seed[0], order[0])
    assert torch.equal(rank(flat, ties="index")[0], torch.arange(100))
    assert torch.equal(rank(flat, ties="reverse")[0], torch.arange(99, -1, -1))
    assert torch.equal(tie_permutation(1, ids[:1], 100)[0], order[0])


def test_ties_only_reorder_equal_values():
    values = torch.tensor([[3.0, 1.0, 1.0, 0.0, 2.0, 1.0]])
    for ties in ("random", "index", "reverse"):
        order = rank(values, ties=ties, seed=5)
        assert values[0, order[0]].tolist() == [0.0, 1.0, 1.0, 1.0, 2.0, 3.0]
        down = rank(values, descending=True, ties=ties, seed=5)
        assert values[0, down[0]].tolist() == [3.0, 2.0, 1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("values", "b", "tied"),
    [
        ([0.0, 0.0, 0.0, 1.0, 2.0], 2, 2),  # two of three zeros: both chosen among ties
        ([0.0, 0.0, 0.0, 1.0, 2.0], 3, 0),  # all three zeros fit: the tie decided nothing
        ([0.0, 1.0, 1.0, 1.0, 2.0], 2, 1),  # one of three ones
        ([0.0, 1.0, 2.0, 3.0, 4.0], 3, 0),
        ([5.0, 5.0, 5.0, 5.0, 5.0], 5, 0),  # the whole image: no choice
    ],
)
def test_tied_in_top_counts_the_pixels_the_tie_rule_chose(values, b, tied):
    v = torch.tensor([values])
    order = rank(v, ties="random", seed=0)
    assert tied_in_top(v, order, b).tolist() == [tied]


def test_pixel_choices_record_their_ties():
    zeros = torch.zeros(2, 28, 28)
    mask, tied = choose_pixels("least:grad_cam", 0.4, (2, 28, 28), saliency=zeros, seed=3)
    assert tied.tolist() == [313, 313]
    first_rows = torch.zeros(28 * 28, dtype=torch.bool)
    first_rows[:313] = True
    assert not torch.equal(mask[0].flatten(), first_rows)  # not the top rows by index
    assert not torch.equal(mask[0], mask[1])  # sample 0 and sample 1 draw their own order
    _, tied_index = choose_pixels(
        "least:grad_cam", 0.4, (1, 28, 28), saliency=zeros[:1], ties="index"
    )
    assert tied_index.tolist() == [313]  # the count does not depend on the rule
    distinct = torch.arange(784.0).view(1, 28, 28)
    assert choose_pixels("most:saliency", 0.4, (1, 28, 28), saliency=distinct)[1].tolist() == [0]
    assert choose_pixels("random", 0.4, (1, 28, 28))[1].tolist() == [0]
    assert choose_pixels("central", 0.4, (1, 28, 28))[1].tolist() == [0]


class _CentreModel(nn.Module):
    """Two classes; class 1's logit depends on the central 2x2 pixels only, so every other
    pixel's gradient (and saliency) is exactly zero: 780 tied pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = 10.0 * (x[:, 0, 13:15, 13:15].sum(dim=(1, 2)) - 6.0)
        return torch.stack((torch.zeros_like(logit), logit), dim=1)


def test_every_result_row_stores_how_many_pixels_ties_chose():
    x = torch.zeros(2, 1, 28, 28)
    r = rise_guided_search(
        _CentreModel(),
        x,
        [1, 1],
        sample_ids=[0, 1],
        strategies=["least:saliency", "random"],
        compare=True,
        input_range=(0.0, 1.0),
        max_iters=3,
    )
    for res in r:
        sal, rnd = res.outcomes
        assert sal.tied_pixels == 313 and rnd.tied_pixels == 0
        assert sal.to_row()["tied_pixels"] == 313
        assert not bool(sal.mask[13:15, 13:15].any())  # the four non-zero pixels rank last
    assert not torch.equal(r[0].outcomes[0].mask, r[1].outcomes[0].mask)
