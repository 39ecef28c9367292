"""The RISE-guided random-search attack (docs/architecture.md).

Public: :func:`rise_guided_search`, :class:`AttackResult`, :class:`StrategyOutcome`,
:func:`validate_attack_params`, :func:`select_repair_candidates`, :func:`targets_for_mode`,
:func:`select_pixels`, :func:`choose_pixels`, :func:`central_region`, :func:`noise_streams`,
:func:`parse_strategy`, :func:`outside_domain`, :data:`PRESETS`.
Modules: ``params`` (the parameter table), ``strategies`` (names and pixel selection),
``guides`` (any explainer's map as the guide), ``diagnostics`` (gradient norms at the
original), ``search`` (scoring helpers), ``tracks`` (the batched loop over sample x strategy,
chain or independent), ``runner`` (puts them together), ``result``.
"""

from xaiq.xai.attack.params import (
    DEFAULT_STRATEGIES,
    MODES,
    PRESETS,
    SEED_PRESET,
    STRATEGIES,
    validate_attack_params,
)
from xaiq.xai.attack.result import (
    AttackResult,
    StrategyOutcome,
    select_repair_candidates,
    targets_for_mode,
)
from xaiq.xai.attack.runner import outside_domain, rise_guided_search
from xaiq.xai.attack.strategies import (
    COMMON_STREAM,
    Strategy,
    budget,
    central_region,
    choose_pixels,
    noise_streams,
    parse_strategy,
    select_pixels,
)

__all__ = [
    "COMMON_STREAM",
    "DEFAULT_STRATEGIES",
    "MODES",
    "PRESETS",
    "SEED_PRESET",
    "STRATEGIES",
    "AttackResult",
    "Strategy",
    "StrategyOutcome",
    "budget",
    "central_region",
    "choose_pixels",
    "noise_streams",
    "outside_domain",
    "parse_strategy",
    "rise_guided_search",
    "select_pixels",
    "select_repair_candidates",
    "targets_for_mode",
    "validate_attack_params",
]
