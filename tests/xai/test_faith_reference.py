"""The default deletion/insertion protocol against a one-image loop of the RISE authors'
reference semantics (CausalMetric), and the protocol's additions: tie rules, the random-order
baseline, least-relevant-first games, ROAD's imputation, map sparseness and complexity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch
from scipy import ndimage, stats

from xaiq.xai.explainers import explain
from xaiq.xai.faith_orders import STREAM_RANDOM_ORDER, reference_kernel, sample_keys
from xaiq.xai.faithfulness import deletion_insertion, faithfulness_games
from xaiq.xai.map_properties import complexity, sparseness
from xaiq.xai.road import road_impute


def _rise_kernel() -> np.ndarray:
    impulse = np.zeros((11, 11))
    impulse[5, 5] = 1.0
    return ndimage.gaussian_filter(impulse, 5.0)  # reflect mode, the scipy default


def _rise_blur(img: np.ndarray) -> np.ndarray:
    """conv2d(padding=5) with the reference kernel per channel (zero padding)."""
    k = _rise_kernel()
    return np.stack([ndimage.correlate(ch, k, mode="constant", cval=0.0) for ch in img])


def _causal_metric(module, img, mode, step, order, target, substrate=None) -> np.ndarray:
    """CausalMetric.single_run on one image: deletion from the image to zeros, insertion from
    the blurred image to the image; ``step`` pixels per step; softmax probability of the
    explained class at every step including the first and the last."""
    c, h, w = img.shape
    hw = h * w
    n_steps = (hw + step - 1) // step
    if mode == "del":
        start, finish = img.copy(), (np.zeros_like(img) if substrate is None else None)
    else:
        start, finish = _rise_blur(img), img.copy()
    scores = np.empty(n_steps + 1)
    for i in range(n_steps + 1):
        with torch.no_grad():
            pred = torch.softmax(module(torch.from_numpy(start[None]).float()).double(), 1)
        scores[i] = float(pred[0, target])
        if i < n_steps:
            coords = order[step * i : step * (i + 1)]
            if substrate is None:
                start.reshape(c, hw)[:, coords] = finish.reshape(c, hw)[:, coords]
            else:  # ROAD: impute every pixel removed so far, from the original image
                removed = np.zeros(hw, dtype=bool)
                removed[order[: step * (i + 1)]] = True
                start = substrate(img, removed.reshape(h, w))
    return scores


def _auc(arr: np.ndarray) -> float:
    return float((arr.sum() - arr[0] / 2 - arr[-1] / 2) / (arr.shape[0] - 1))


def _reference_order(saliency: np.ndarray) -> np.ndarray:
    # np.flip(np.argsort(saliency)); the stable sort makes the order of ties well defined
    return np.flip(np.argsort(saliency.reshape(-1), kind="stable"))


@pytest.fixture(scope="module")
def case(digits_model, digits_batch):
    x, _ = digits_batch
    with torch.no_grad():
        pred = digits_model.module(x).argmax(1)  # the reference explains the predicted class
    maps = explain("integrated_gradients", digits_model, x, pred, n_steps=16)
    return x[:3], maps[:3], pred[:3]


def test_the_reference_kernel_is_scipys_filtered_impulse():
    for size, sigma in ((11, 5.0), (5, 1.0), (21, 2.0), (3, 0.5)):
        impulse = np.zeros((size, size))
        impulse[size // 2, size // 2] = 1.0
        expected = ndimage.gaussian_filter(impulse, sigma)
        np.testing.assert_allclose(reference_kernel(size, sigma).numpy(), expected, atol=1e-7)
    assert float(reference_kernel().sum()) == pytest.approx(1.0, abs=1e-6)


def test_reverse_ties_equal_the_reference_loop_on_a_map_with_ties(digits_model, case):
    x, maps, t = case
    assert int((maps == 0).sum()) > 100  # IG is exactly 0 on the black background: ties
    got = deletion_insertion(digits_model, x, maps, t, ties="reverse")
    for j in range(3):
        img = x[j].numpy().astype(np.float64)
        order = _reference_order(maps[j].numpy())
        dele = _causal_metric(digits_model.module, img, "del", 28, order, int(t[j]))
        ins = _causal_metric(digits_model.module, img, "ins", 28, order, int(t[j]))
        np.testing.assert_allclose(got.curves(j), np.stack([dele, ins]), atol=2e-6)
        assert float(got.deletion_auc[j]) == pytest.approx(_auc(dele), abs=2e-6)
        assert float(got.insertion_auc[j]) == pytest.approx(_auc(ins), abs=2e-6)


def test_the_defaults_equal_the_reference_loop_on_a_map_without_ties(digits_model, case):
    x, maps, t = case
    distinct = maps + 1e-3 * torch.randn(maps.shape, generator=torch.Generator().manual_seed(1))
    got = deletion_insertion(digits_model, x, distinct, t, step=50)
    for j in range(3):
        img = x[j].numpy().astype(np.float64)
        order = np.flip(np.argsort(distinct[j].numpy().reshape(-1)))  # the reference, verbatim
        dele = _causal_metric(digits_model.module, img, "del", 50, order, int(t[j]))
        ins = _causal_metric(digits_model.module, img, "ins", 50, order, int(t[j]))
        assert int(got.n_steps[j]) == math.ceil(784 / 50)
        assert float(got.deletion_auc[j]) == pytest.approx(_auc(dele), abs=2e-6)
        assert float(got.insertion_auc[j]) == pytest.approx(_auc(ins), abs=2e-6)


def test_lerf_plays_the_order_backwards(digits_model, case):
    x, maps, t = case
    got = deletion_insertion(digits_model, x, maps, t, ties="reverse", first="least")
    for j in range(3):
        order = _reference_order(maps[j].numpy())[::-1]
        img = x[j].numpy().astype(np.float64)
        dele = _causal_metric(digits_model.module, img, "del", 28, order, int(t[j]))
        assert float(got.deletion_auc[j]) == pytest.approx(_auc(dele), abs=2e-6)


def test_random_ties_are_seeded_per_sample_and_independent_of_the_batch(digits_model, case):
    x, maps, t = case
    ids = torch.tensor([7, 40, 3])
    full = deletion_insertion(digits_model, x, maps, t, seed=5, sample_ids=ids)
    alone = deletion_insertion(digits_model, x[1:2], maps[1:2], t[1:2], seed=5, sample_ids=[40])
    torch.testing.assert_close(alone.deletion[0], full.deletion[1], atol=1e-6, rtol=0)
    other = deletion_insertion(digits_model, x, maps, t, seed=6, sample_ids=ids)
    # another seed: another tie order (insertion: deleting a tied background zero changes
    # nothing, putting it back into the blurred image does)
    assert not torch.equal(other.insertion, full.insertion)
    index = deletion_insertion(digits_model, x, maps, t, ties="index")
    reverse = deletion_insertion(digits_model, x, maps, t, ties="reverse")
    assert not torch.equal(index.insertion, reverse.insertion)  # the tie rule matters here


def test_the_random_baseline_ignores_the_map_and_follows_the_sample_keys(digits_model, case):
    x, maps, t = case
    ids = torch.tensor([2, 9, 11])
    a = faithfulness_games(digits_model, x, maps, t, seed=3, sample_ids=ids, lerf=False)
    b = faithfulness_games(digits_model, x, -maps, t, seed=3, sample_ids=ids, lerf=False)
    assert a.random is not None and b.random is not None and a.lerf is None
    torch.testing.assert_close(a.random.deletion, b.random.deletion, atol=1e-6, rtol=0)
    keys = sample_keys(3, ids, 784, STREAM_RANDOM_ORDER)
    for j in range(3):
        order = torch.sort(keys[j], stable=True).indices.numpy()
        img = x[j].numpy().astype(np.float64)
        dele = _causal_metric(digits_model.module, img, "del", 28, order, int(t[j]))
        assert float(a.random.deletion_auc[j]) == pytest.approx(_auc(dele), abs=2e-6)


def test_games_played_together_equal_games_played_alone(digits_model, case):
    x, maps, t = case
    games = faithfulness_games(digits_model, x, maps, t, ties="index", batch_size=13)
    morf = deletion_insertion(digits_model, x, maps, t, ties="index")
    lerf = deletion_insertion(digits_model, x, maps, t, ties="index", first="least")
    assert games.lerf is not None
    torch.testing.assert_close(games.morf.insertion_auc, morf.insertion_auc, atol=1e-6, rtol=0)
    torch.testing.assert_close(games.lerf.deletion_auc, lerf.deletion_auc, atol=1e-6, rtol=0)
    # MoRF deletion of a useful map falls faster than LeRF deletion
    assert float((games.lerf.deletion_auc - games.morf.deletion_auc).mean()) > 0
    assert games.tied.shape == (3,) and float(games.tied.min()) > 0.1  # IG: zeros tie


def _road_scipy(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """One image: every removed pixel = the weighted mean of its in-image 8 neighbours
    (1/6 direct, 1/12 diagonal), one scipy.sparse solve for all channels."""
    c, h, w = img.shape
    idx = np.flatnonzero(removed.reshape(-1))
    var = -np.ones(h * w, dtype=np.int64)
    var[idx] = np.arange(idx.size)
    a = sp.lil_matrix((idx.size, idx.size))
    b = np.zeros((idx.size, c))
    for e, i in enumerate(idx):
        y, x0 = divmod(int(i), w)
        total = 0.0
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                yy, xx = y + dy, x0 + dx
                if (dy, dx) == (0, 0) or not (0 <= yy < h and 0 <= xx < w):
                    continue
                weight = 1 / 6 if 0 in (dy, dx) else 1 / 12
                total += weight
                if var[yy * w + xx] >= 0:
                    a[e, var[yy * w + xx]] -= weight
                else:
                    b[e] += weight * img[:, yy, xx]
        a[e, e] = total
    out = img.reshape(c, -1).copy()
    out[:, idx] = spl.spsolve(a.tocsc(), b).reshape(idx.size, c).T
    return out.reshape(c, h, w)


def test_road_imputation_equals_a_one_image_sparse_solve():
    rng = np.random.default_rng(0)
    for h, w, frac in ((28, 28, 0.5), (17, 23, 0.95), (32, 32, 0.2)):
        img = rng.random((3, 3, h, w))
        removed = rng.random((3, h, w)) < frac
        img32 = torch.tensor(img, dtype=torch.float32)
        got = road_impute(img32, torch.tensor(removed))
        for k in range(3):
            np.testing.assert_allclose(got[k].numpy(), _road_scipy(img[k], removed[k]), atol=1e-4)
            kept = ~removed[k]
            np.testing.assert_array_equal(got[k].numpy()[:, kept], img32[k].numpy()[:, kept])


def test_road_with_nothing_left_imputes_the_baseline_plus_only_noise():
    img = torch.rand(1, 2, 8, 8)
    everything = torch.ones(1, 8, 8, dtype=torch.bool)
    assert torch.equal(road_impute(img, everything), torch.zeros_like(img))
    noise = torch.randn(1, 2, 8, 8)
    assert torch.equal(road_impute(img, everything, noise=noise), noise)


def test_road_deletion_equals_the_loop_with_a_sparse_solve_per_step(digits_model, case):
    x, maps, t = case
    got = deletion_insertion(
        digits_model, x[:1], maps[:1], t[:1], substrate="road", road_noise=0.0, step=112,
        ties="reverse",
    )  # fmt: skip
    img = x[0].numpy().astype(np.float64)
    order = _reference_order(maps[0].numpy())

    def substrate(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
        if removed.all():
            return np.zeros_like(image)  # nothing to lean on: the baseline
        return _road_scipy(image, removed)

    dele = _causal_metric(digits_model.module, img, "del", 112, order, int(t[0]), substrate)
    np.testing.assert_allclose(got.deletion[0].numpy(), dele, atol=1e-4)


def test_road_noise_is_seeded_per_sample_and_step(digits_model, case):
    x, maps, t = case
    kw = {"substrate": "road", "step": 196, "seed": 4}
    both = deletion_insertion(digits_model, x[:2], maps[:2], t[:2], sample_ids=[5, 6], **kw)
    one = deletion_insertion(digits_model, x[1:2], maps[1:2], t[1:2], sample_ids=[6], **kw)
    torch.testing.assert_close(one.deletion[0], both.deletion[1], atol=1e-5, rtol=0)
    quiet = deletion_insertion(digits_model, x[:2], maps[:2], t[:2], road_noise=0.0, **kw)
    assert not torch.equal(quiet.deletion, both.deletion)


def _quantus_sparseness(a: np.ndarray) -> float:
    x = np.sort(np.abs(a).reshape(-1).astype(np.float64))
    n = x.size
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * np.sum(x)))


def _quantus_complexity(a: np.ndarray) -> float:
    x = np.abs(a).reshape(-1).astype(np.float64)
    return float(stats.entropy(x / x.sum()))


def test_sparseness_and_complexity_hand_computed():
    maps = torch.tensor([[[0.0, 0.0], [0.0, -2.0]], [[1.0, 1.0], [1.0, 1.0]], [[1, -2], [3, 4]]])
    np.testing.assert_allclose(sparseness(maps).numpy(), [0.75, 0.0, 10 / 40])
    p = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(
        complexity(maps).numpy(), [0.0, math.log(4), -np.sum(p * np.log(p))], atol=1e-12
    )
    zero = torch.zeros(1, 3, 3)
    assert math.isnan(float(sparseness(zero)[0])) and math.isnan(float(complexity(zero)[0]))


def test_sparseness_and_complexity_equal_quantus_formulas(case):
    _, maps, _ = case
    got_s, got_c = sparseness(maps), complexity(maps)
    for j in range(maps.shape[0]):
        m = maps[j].numpy()
        assert float(got_s[j]) == pytest.approx(_quantus_sparseness(m), abs=1e-10)
        assert float(got_c[j]) == pytest.approx(_quantus_complexity(m), abs=1e-10)
