"""Attribution methods by name. ``explain(method, model, images, targets, **params)``.

Each method lives in a small module that registers itself; importing this package
registers them all.
"""

from xaiq.xai.explainers import captum_methods, gradcam, rise_method  # noqa: F401
from xaiq.xai.explainers.base import (
    EXPLAINERS,
    Explainer,
    Param,
    explain,
    register,
    validate_params,
)

__all__ = ["EXPLAINERS", "Explainer", "Param", "explain", "register", "validate_params"]
