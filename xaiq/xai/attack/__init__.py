"""The RISE-guided random-search attack (DESIGN.md §5).

Public: :func:`rise_guided_search`, :class:`AttackResult`, :func:`validate_attack_params`,
:func:`select_repair_candidates`, :func:`targets_for_mode`, :func:`select_pixels`.
Modules: ``params`` (the parameter table), ``strategies`` (pixel selection), ``search``
(the batched loop of one strategy), ``runner`` (RISE + fallback chain), ``result``.
"""

from xaiq.xai.attack.params import (
    DEFAULT_STRATEGIES,
    MODES,
    STRATEGIES,
    validate_attack_params,
)
from xaiq.xai.attack.result import AttackResult, select_repair_candidates, targets_for_mode
from xaiq.xai.attack.runner import rise_guided_search
from xaiq.xai.attack.strategies import budget, select_pixels

__all__ = [
    "DEFAULT_STRATEGIES",
    "MODES",
    "STRATEGIES",
    "AttackResult",
    "budget",
    "rise_guided_search",
    "select_pixels",
    "select_repair_candidates",
    "targets_for_mode",
    "validate_attack_params",
]
