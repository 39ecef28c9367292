"""Guide maps: the explanation that chooses a guided strategy's pixels, and its cost.

A guided strategy ``least:METHOD`` / ``most:METHOD`` ranks pixels by the map of the
registered explainer ``METHOD`` for the attack's goal class (repair: the true label;
targeted: the wanted class; untargeted: the true class it moves away from). The map is
computed with the method's own parameters (``guide_params[METHOD]``; RISE's default to the
attack's ``n_masks``, ``s``, ``p1``), once per sample and method (``least:`` and ``most:``
of one method share it).

A :class:`GuideStore` passed to the search (the job layer's map cache) is asked for a
sample's map before it is computed and told of every map computed; a map it returns is used
as is. A sample's ``guide_passes`` stay the method's cost whether its map was computed or
reused, so a job that reuses maps gives the rows of one that computed them: the cost per
image of a method, parameters and input size is remembered per model once measured, and
measured on one sample when every map of a call came from the store.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import nn

RISE_KEYS = ("n_masks", "s", "p1")
# Methods that run a private copy of the model (Captum's module hooks, see
# ``explainers.captum_methods.hookable``) are invisible to the row counter: their known
# cost per image (DeepLIFT forwards the input and its baseline; guided backprop the input).
_PASSES_OF_PRIVATE_COPIES = {"deeplift": 2, "guided_backprop": 1}


def method_params(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The explainer parameters of ``method`` for an attack with validated ``params``, with
    the method's defaults filled in (the form an attribution job stores, so that a map's
    identity does not depend on which defaults were spelled out)."""
    from xaiq.xai.explainers import validate_params

    base: dict[str, Any] = {k: params[k] for k in RISE_KEYS} if method == "rise" else {}
    return validate_params(method, base | dict(params.get("guide_params", {}).get(method, {})))


class GuideStore(Protocol):
    """Where guide maps may already be (see the module docstring). ``images [N, C, H, W]``,
    ``targets [N]`` (the class each map explains) and ``sample_ids [N]`` are those of the
    search; ``params`` the method's full parameters (:func:`method_params`)."""

    def fetch(
        self,
        method: str,
        params: Mapping[str, Any],
        images: torch.Tensor,
        targets: torch.Tensor,
        sample_ids: torch.Tensor,
    ) -> Sequence[torch.Tensor | None]:
        """One ``[H, W]`` map or None (not stored) per image."""
        ...

    def keep(
        self,
        method: str,
        params: Mapping[str, Any],
        images: torch.Tensor,
        targets: torch.Tensor,
        sample_ids: torch.Tensor,
        maps: torch.Tensor,
    ) -> None:
        """Maps ``[N, H, W]`` computed for these images."""
        ...


# forward passes per image, by module and (method, parameters, input size), once measured
_COSTS: weakref.WeakKeyDictionary[nn.Module, dict[str, int]] = weakref.WeakKeyDictionary()


def _cost_key(method: str, params: Mapping[str, Any], shape: Sequence[int]) -> str:
    return json.dumps([method, dict(params), list(shape)], sort_keys=True, default=str)


def remembered_cost(
    module: nn.Module, method: str, params: Mapping[str, Any], shape: Sequence[int]
) -> int | None:
    """The passes per image last measured for this module, method, parameters and input
    size ``[C, H, W]``, or None."""
    return _COSTS.get(module, {}).get(_cost_key(method, params, shape))


def _remember_cost(
    module: nn.Module, method: str, params: Mapping[str, Any], shape: Sequence[int], per: int
) -> None:
    _COSTS.setdefault(module, {})[_cost_key(method, params, shape)] = per


class _RowCounter:
    """Counts the rows that go through ``module``'s forward (a forward pre-hook)."""

    def __init__(self, module: nn.Module) -> None:
        self.rows = 0
        self._handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor):
            self.rows += int(args[0].shape[0])

    def close(self) -> None:
        self._handle.remove()


def guide_maps(
    module: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    sample_ids: torch.Tensor,
    method: str,
    params: Mapping[str, Any],
    *,
    seed: int,
) -> tuple[torch.Tensor, int]:
    """Maps ``[N, H, W]`` float32 (the module's device) of ``method`` for ``targets [N]``,
    and the forward passes per image they cost (rows through the model / N, rounded up; for
    a method that runs a private copy of the model, its known count).

    ``images`` are model inputs ``[N, C, H, W]``; ``params`` the method's parameters
    (:func:`method_params`). Gradients are enabled here whatever the caller's mode.
    """
    from xaiq.xai.explainers import explain

    n = images.shape[0]
    counter = _RowCounter(module)
    try:
        with torch.enable_grad():
            maps = explain(
                method,
                module,
                images,
                targets,
                seed=seed,
                sample_ids=[int(i) for i in sample_ids.tolist()],
                **params,
            )
    finally:
        counter.close()
    per_image = -(-counter.rows // n) if n else 0
    if n and per_image == 0:
        per_image = _PASSES_OF_PRIVATE_COPIES.get(method, 1)
    if n:
        _remember_cost(module, method, params, tuple(images.shape[1:]), per_image)
    return maps.detach().to(torch.float32), per_image


def stored_or_computed(
    module: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    sample_ids: torch.Tensor,
    method: str,
    params: Mapping[str, Any],
    *,
    seed: int,
    store: GuideStore | None = None,
) -> tuple[torch.Tensor, int]:
    """:func:`guide_maps`, taking what ``store`` already has and handing it what was
    computed. The passes per image are the method's cost either way (see the module
    docstring)."""
    n = images.shape[0]
    if store is None or n == 0:
        return guide_maps(module, images, targets, sample_ids, method, params, seed=seed)
    found = list(store.fetch(method, params, images, targets, sample_ids))
    if len(found) != n:
        raise AssertionError(f"guide store returned {len(found)} maps for {n} images")
    h, w = images.shape[2], images.shape[3]
    hits = [i for i, m in enumerate(found) if m is not None and tuple(m.shape) == (h, w)]
    misses = [i for i in range(n) if i not in set(hits)]
    maps = torch.zeros(n, h, w, device=images.device)
    per_image: int | None = None
    if misses:
        sel = torch.as_tensor(misses, device=images.device)
        got, per_image = guide_maps(
            module, images[sel], targets[sel], sample_ids[sel], method, params, seed=seed
        )
        maps[sel] = got
        store.keep(method, params, images[sel], targets[sel], sample_ids[sel], got)
    for i in hits:
        stored = found[i]
        assert stored is not None
        maps[i] = stored.to(device=images.device, dtype=torch.float32)
    if per_image is None:
        per_image = remembered_cost(module, method, params, tuple(images.shape[1:]))
    if per_image is None:  # every map was stored and the cost is unknown here: measure it
        one = slice(0, 1)
        _, per_image = guide_maps(
            module, images[one], targets[one], sample_ids[one], method, params, seed=seed
        )
    return maps, per_image
