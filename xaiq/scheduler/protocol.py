"""A job's protocol card (docs/faithfulness.md): everything a reader needs to know what its
numbers mean, from the validated spec. Workers add the runtime (device, versions, weights'
sha256, the model's input domain) when they first run the job (:mod:`xaiq.worker.provenance`).
"""

from __future__ import annotations

from typing import Any

AUC_RULE = "trapezoid: (sum - first/2 - last/2) / (len - 1), probability of the explained class"
SEED_RULE = "per sample: splitmix64(job seed, sample index, stream)"
CARD_VERSION = 1


def _faithfulness(opts: dict[str, Any]) -> dict[str, Any]:
    return {
        "substrate": opts["substrate"],
        "deletion_to": "ROAD noisy linear imputation"
        if opts["substrate"] == "road"
        else opts["substrate"],
        "insertion_from": f"blur ({opts['kernel']} kernel {opts['blur_kernel']}x"
        f"{opts['blur_kernel']}, sigma {opts['blur_sigma']}, zero padding)",
        "order": opts["order"],
        "ties": opts["ties"],
        "step": opts["step"] if opts["step"] is not None else "W (one image row)",
        "kernel": opts["kernel"],
        "blur_kernel": opts["blur_kernel"],
        "blur_sigma": opts["blur_sigma"],
        "auc": AUC_RULE,
        "orders_played": "MoRF, LeRF, random baseline",
        "combination": "deletion LeRF - MoRF; insertion MoRF - LeRF (higher: more faithful)",
        "road_noise": opts["road_noise"] if opts["substrate"] == "road" else None,
        "superpixels": opts["superpixels"],
        "superpixel_step": opts["superpixel_step"],
    }


def _attack(params: dict[str, Any]) -> dict[str, Any]:
    keys = ("preset", "clamp", "domain", "sigma", "frac", "max_iters", "strategies", "mode")
    out = {k: params[k] for k in keys if k in params}
    out.setdefault("domain", "the model's declared input range (runtime.input_domain)")
    return out


def protocol_card(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec half of the card of a validated ``spec``."""
    card: dict[str, Any] = {
        "card": CARD_VERSION,
        "kind": spec["kind"],
        "model": spec["model"],
        **({"models": list(spec["models"])} if spec.get("models") else {}),  # across models
        "dataset": spec["dataset"],
        "target": spec.get("target"),
        "seeds": {"job": spec.get("seed", 0), "rule": SEED_RULE},
    }
    faith = spec.get("faithfulness")
    if faith:
        card["faithfulness"] = _faithfulness(faith)
    if spec["kind"] == "attack":
        card["attack"] = _attack(dict(spec.get("attack") or {}))
    card["runtime"] = []
    return card
