"""The RISE-guided random-search attack (docs/architecture.md).

Public: :func:`rise_guided_search`, :class:`AttackResult`, :class:`StrategyOutcome`,
:func:`validate_attack_params`, :func:`select_repair_candidates`, :func:`targets_for_mode`,
:func:`select_pixels`, :func:`parse_strategy`.
Modules: ``params`` (the parameter table), ``strategies`` (names and pixel selection),
``guides`` (any explainer's map as the guide), ``diagnostics`` (gradient norms at the
original), ``search`` (scoring helpers), ``tracks`` (the batched loop over sample x strategy,
chain or independent), ``runner`` (puts them together), ``result``.
"""

from xaiq.xai.attack.params import (
    DEFAULT_STRATEGIES,
    MODES,
    STRATEGIES,
    validate_attack_params,
)
from xaiq.xai.attack.result import (
    AttackResult,
    StrategyOutcome,
    select_repair_candidates,
    targets_for_mode,
)
from xaiq.xai.attack.runner import rise_guided_search
from xaiq.xai.attack.strategies import Strategy, budget, parse_strategy, select_pixels

__all__ = [
    "DEFAULT_STRATEGIES",
    "MODES",
    "STRATEGIES",
    "AttackResult",
    "Strategy",
    "StrategyOutcome",
    "budget",
    "parse_strategy",
    "rise_guided_search",
    "select_pixels",
    "select_repair_candidates",
    "targets_for_mode",
    "validate_attack_params",
]
