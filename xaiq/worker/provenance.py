"""The runtime half of a job's protocol card: once per worker process and job, the device,
library versions, each model's weights sha256 and input domain are added to the card
(:func:`xaiq.db.protocol.add_protocol_runtime`)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

from xaiq.db.jobs import Claim
from xaiq.db.protocol import add_protocol_runtime
from xaiq.db.retry import with_db_retry

log = logging.getLogger(__name__)
_recorded: set[tuple[str, int, str]] = set()


def runtime_entry(models: dict[str, Any]) -> dict[str, Any]:
    """``{device, versions, model_sha256, input_domain}`` of loaded ``models`` by name."""
    from xaiq.xai.provenance import library_versions, weights_sha256

    first = next(iter(models.values()))
    domains = {}
    for name, m in models.items():
        low, high = m.input_range
        domains[name] = {
            "low": [round(float(v), 6) for v in low.reshape(-1).cpu()],
            "high": [round(float(v), 6) for v in high.reshape(-1).cpu()],
        }
    return {
        "device": str(first.device),
        "versions": library_versions(),
        "model_sha256": {name: weights_sha256(m.module) for name, m in models.items()},
        "input_domain": domains,
    }


def record_runtime(engine: Engine | None, claim: Claim, models: dict[str, Any]) -> None:
    """Add this process's runtime to the job's card (once per process and job). A failure
    to write it is logged, not fatal: the card says what ran, the rows are the results."""
    if engine is None:
        return
    # keyed by the store too: another store (a test's, a second home) has its own job 1
    key = (str(engine.url), claim.job_id, str(next(iter(models.values())).device))
    if key in _recorded:
        return
    try:
        with_db_retry(add_protocol_runtime, engine, claim.job_id, runtime_entry(models))
        _recorded.add(key)
    except Exception as exc:  # noqa: BLE001 - provenance must not fail a shard
        log.warning("job %s: could not record the protocol runtime: %s", claim.job_id, exc)
