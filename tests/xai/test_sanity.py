"""Model-randomisation sanity check: which layers change, seeding, the measures, the finding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.explainers import explain
from xaiq.xai.sanity import compare_maps, parametrised_layers, randomised_models

TOP_DOWN = ["classifier.3", "classifier.1", "features.3", "features.0"]


def _changed(original: torch.nn.Module, other: torch.nn.Module) -> list[str]:
    mods = dict(other.named_modules())
    return [
        name
        for name, layer in parametrised_layers(original)
        if any(
            not torch.equal(p, mods[name].get_parameter(k))
            for k, p in layer.named_parameters(recurse=False)
        )
    ]


def test_layers_are_listed_from_the_logits_down(digits_model):
    assert [n for n, _ in parametrised_layers(digits_model.module)] == TOP_DOWN


def test_cascading_randomises_the_top_layers_and_independent_one_at_a_time(digits_model):
    module = digits_model.module
    before = {k: v.clone() for k, v in module.state_dict().items()}
    for step in randomised_models(module, mode="cascading", seed=3):
        assert _changed(module, step.module) == TOP_DOWN[: step.order]
    for step in randomised_models(module, mode="independent", seed=3):
        assert _changed(module, step.module) == [step.layer] == [TOP_DOWN[step.order - 1]]
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the model is untouched


def test_the_random_weights_depend_on_the_seed_only(digits_model):
    def weights(seed: int) -> torch.Tensor:
        last = list(randomised_models(digits_model.module, seed=seed))[-1].module
        return torch.cat([p.detach().flatten() for p in last.parameters()])

    assert torch.equal(weights(5), weights(5))
    assert not torch.equal(weights(5), weights(6))
    layer = list(randomised_models(digits_model.module, seed=5, max_layers=1))[0].module
    bound = 1 / np.sqrt(64)  # classifier.3 is Linear(64, 10): U(-1/8, 1/8)
    w = layer.get_submodule("classifier.3").weight.detach()
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.9 * bound


def test_compare_maps_on_known_answers():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(1, 9, 9))
    same = compare_maps(a, a * 3)[0]
    assert same == pytest.approx({"spearman_abs": 1.0, "spearman_signed": 1.0, "ssim": 1.0})
    flipped = compare_maps(a, -a)[0]
    assert flipped["spearman_abs"] == pytest.approx(1.0)
    assert flipped["spearman_signed"] == pytest.approx(-1.0)
    zero = compare_maps(a, np.zeros_like(a))[0]
    assert zero == {"spearman_abs": None, "spearman_signed": None, "ssim": None}


def test_saliency_fails_to_survive_randomisation_and_input_x_gradient_survives(
    digits_model, digits_batch
):
    """Adebayo et al.'s finding on this model: the input dominates Input x Gradient (its
    background pixels are zero whatever the weights), while Saliency depends on them."""
    x, t = digits_batch
    last = list(randomised_models(digits_model.module, seed=0))[-1].module
    scores = {}
    for method in ("saliency", "input_x_gradient"):
        trained = explain(method, digits_model, x, t)
        random = explain(method, last, x, t)
        scores[method] = np.mean([r["spearman_abs"] for r in compare_maps(trained, random)])
    assert scores["saliency"] < 0.4 < 0.7 < scores["input_x_gradient"]


def test_bad_options_are_refused(digits_model):
    with pytest.raises(InvalidParameterError, match="mode must be one of cascading"):
        next(randomised_models(digits_model.module, mode="bottom-up"))
    with pytest.raises(InvalidParameterError, match="no layer with parameters"):
        next(randomised_models(torch.nn.ReLU()))
