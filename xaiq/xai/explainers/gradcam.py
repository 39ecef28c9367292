"""Grad-CAM (Captum's ``LayerGradCam``), upsampled bilinearly to the input size."""

from __future__ import annotations

import torch
from torch import nn

from xaiq.xai.errors import InvalidParameterError
from xaiq.xai.explainers.base import Param, register
from xaiq.xai.explainers.captum_methods import quiet_captum


def conv_layer_names(module: nn.Module) -> list[str]:
    """Dotted names of every ``nn.Conv2d`` in ``module``, in registration order."""
    return [name for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]


def resolve_layer(module: nn.Module, layer: str | None) -> nn.Module:
    """The sub-module named ``layer`` (dotted, as in ``named_modules()``), or the last Conv2d."""
    if layer is None:
        names = conv_layer_names(module)
        if not names:
            raise InvalidParameterError(
                "grad_cam: the model has no Conv2d layer; pass layer=<module name>"
            )
        layer = names[-1]
    modules = dict(module.named_modules())
    if layer not in modules or layer == "":
        convs = conv_layer_names(module)
        hint = ", ".join(convs[-3:]) if convs else "none"
        raise InvalidParameterError(
            f"grad_cam: no layer named {layer!r} in the model (last conv layers: {hint})"
        )
    return modules[layer]


@register(
    "grad_cam",
    {"layer": Param(None, str, doc="module name as in named_modules() (default: last Conv2d)")},
)
def grad_cam(
    module: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    layer: str | None = None,
    **_: object,
) -> torch.Tensor:
    """Grad-CAM of ``layer``'s output: channel weights = mean gradient of the target logit,
    weighted sum of the activations, ReLU, bilinear upsampling to ``[H, W]``.

    The default layer is the last ``nn.Conv2d`` in registration order (for torchvision's
    ResNets that is ``layer4.1.conv2``; ``layer="layer4"`` gives the block output instead).
    Returns ``[N, H, W]`` float32, non-negative.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    target_layer = resolve_layer(module, layer)
    with quiet_captum():
        cam = LayerGradCam(module, target_layer).attribute(
            images, target=targets, relu_attributions=True
        )
    if cam.ndim != 4:
        raise InvalidParameterError(
            f"grad_cam: layer {layer!r} output is not [N, C, h, w] (got {tuple(cam.shape)})"
        )
    up = LayerAttribution.interpolate(cam, tuple(images.shape[2:]), interpolate_mode="bilinear")
    return up[:, 0].detach().to(torch.float32)
