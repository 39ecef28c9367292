"""Guide maps: the explanation that chooses a guided strategy's pixels, and its cost.

A guided strategy ``least:METHOD`` / ``most:METHOD`` ranks pixels by the map of the
registered explainer ``METHOD`` for the attack's goal class (repair: the true label;
targeted: the wanted class; untargeted: the true class it moves away from). The map is
computed with the method's own parameters (``guide_params[METHOD]``; RISE's default to the
attack's ``n_masks``, ``s``, ``p1``), once per sample and method (``least:`` and ``most:``
of one method share it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

RISE_KEYS = ("n_masks", "s", "p1")
# Methods that run a private copy of the model (Captum's module hooks, see
# ``explainers.captum_methods.hookable``) are invisible to the row counter: their known
# cost per image (DeepLIFT forwards the input and its baseline; guided backprop the input).
_PASSES_OF_PRIVATE_COPIES = {"deeplift": 2, "guided_backprop": 1}


def method_params(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The explainer parameters of ``method`` for an attack with validated ``params``."""
    base: dict[str, Any] = {k: params[k] for k in RISE_KEYS} if method == "rise" else {}
    return base | dict(params.get("guide_params", {}).get(method, {}))


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
    return maps.detach().to(torch.float32), per_image
