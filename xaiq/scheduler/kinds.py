"""The job kinds: one entry each, the list every other place derives from.

An entry says everything the job system needs to know about a kind: the spec keys it takes
(with defaults), how it validates them, how ``xaiq submit KIND`` builds its spec from flags,
which worker function computes a batch of it, and how its progress is counted. Spec
validation (:mod:`xaiq.scheduler.spec`), the spec builders' table, the worker's dispatch
(:mod:`xaiq.worker.compute`) and the ``submit`` sub-commands read this table; the layers that
may not import it (the store's ``JobKind`` enum, ``xaiq serve``) are checked against it by
``tests/jobs/test_kinds.py``. Adding a kind is one :func:`register_kind` call here, plus the
functions it names.

The worker function is named by ``"module:function"`` (resolved by the worker): the
scheduler never imports worker code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xaiq.scheduler import spec_builder as builders
from xaiq.scheduler import spec_checks as checks
from xaiq.scheduler.errors import SpecError

Validate = Callable[[dict[str, Any], Mapping[str, Any], bool], None]
Build = Callable[[Mapping[str, Any], Path | None], dict[str, Any]]


@dataclass(frozen=True)
class Kind:
    """One job kind."""

    name: str
    # the spec keys of this kind beyond the common ones, with their defaults
    keys: Mapping[str, Any]
    # checks and completes those keys: (spec, raw spec, check_dataset); SpecError when bad
    validate: Validate
    # the raw spec of `xaiq submit NAME` from its flags (and a --spec file)
    build: Build
    # "module:function" the worker calls per batch: (claim, model, batch, rows, root)
    compute: str
    # the progress stage counted per batch; None: the kind reports its own stages
    stage: str | None
    # its maps (attributions rows) can be read by a later disagreement job's from_job
    stores_maps: bool = False
    # keys this kind refuses, with why (instead of "unknown key")
    refused: Mapping[str, str] = field(default_factory=dict)
    # a key whose first entry is the job's model when ``model`` is not given
    model_from: str | None = None
    # checks that need the model (run when the dataset and model are checked)
    check_model: Callable[[dict[str, Any]], None] | None = None


KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    if kind.name in KINDS:
        raise ValueError(f"job kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: Any) -> Kind:
    """The registered kind ``name``; :class:`SpecError` naming the known ones otherwise."""
    if not isinstance(name, str) or name not in KINDS:
        raise SpecError(f"kind must be one of {', '.join(KINDS)}, got {name!r}")
    return KINDS[name]


register_kind(
    Kind(
        name="attribution",
        keys={"methods": None, "params": {}, "target": "pred"},
        validate=checks.validate_attribution,
        build=builders.attribution_spec,
        compute="xaiq.worker.attribution_kind:attribution_batch",
        stage="explain",
        stores_maps=True,
    )
)
register_kind(
    Kind(
        name="disagreement",
        keys={
            "methods": None,
            "params": {},
            "target": "pred",
            "from_job": None,
            "superpixels": ["slic"],
            "n_segments": [200],
            "k_frac": [0.05],
            "models": None,  # these three: see xaiq.scheduler.spec_extras
            "faithfulness": None,
            "sanity": None,
        },
        validate=checks.validate_disagreement,
        build=builders.disagreement_spec,
        compute="xaiq.worker.disagreement_kind:disagreement_batch",
        stage=None,  # explain, compare, faithfulness, sanity: counted by the kind
        stores_maps=True,
        model_from="models",
    )
)
register_kind(
    Kind(
        name="attack",
        keys={"attack": {}},
        validate=checks.validate_attack,
        build=builders.attack_spec,
        compute="xaiq.worker.attack_kind:attack_batch",
        stage="attack",
        refused={
            "target": "target does not apply to attack jobs: an attack explains its goal class "
            "(repair: the true label); choose it with attack.mode / attack.target_class"
        },
        check_model=checks.attack_fits_model,
    )
)
