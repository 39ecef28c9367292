"""``xaiq attack``: the RISE-guided random search on one image or a dataset, in-process."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import typer

from xaiq.cli.app import app
from xaiq.cli.errors import CliError
from xaiq.cli.options import (
    ATTACK_DEFAULTS,
    AttackAllFlag,
    CandidatesOption,
    ClampOption,
    CompareFlag,
    FormatOption,
    FracOption,
    JsonFlag,
    MaxItersOption,
    ModeOption,
    NMasksOption,
    P1Option,
    PresetOption,
    SigmaOption,
    SOption,
    StrategiesOption,
    output_format,
)
from xaiq.cli.output import OutputFormat, emit, emit_json, info, kv_rows

COLUMNS = (
    "sample",
    "target",
    "pred_before",
    "pred_after",
    "outcome",
    "strategy",
    "iterations",
    "forward_passes",
    "prob_before",
    "prob_after",
    "l0",
    "l2",
    "linf",
    "out_of_domain",
    "max_excursion",
    "tied_pixels",
)
FIGURE_ROWS = 12  # at most this many images in --out


@app.command("attack")
def attack_cmd(
    image: Path | None = typer.Argument(None, help="an image file (or use --dataset)"),
    model: str = typer.Option(..., "--model", "-m", help="model name (see `xaiq models`)"),
    label: int | None = typer.Option(None, "--label", "-l", help="true class of IMAGE"),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="dataset spec"),
    limit: int | None = typer.Option(None, "--limit", help="first N dataset samples"),
    mode: ModeOption = ATTACK_DEFAULTS["mode"],
    target: int | None = typer.Option(None, "--target", help="class to reach (targeted mode)"),
    all_samples: AttackAllFlag = False,
    frac: FracOption = ATTACK_DEFAULTS["frac"],
    sigma: SigmaOption = ATTACK_DEFAULTS["sigma"],
    clamp: ClampOption = None,  # type: ignore[assignment]  # the preset's (default: on)
    preset: PresetOption = ATTACK_DEFAULTS["preset"],
    max_iters: MaxItersOption = ATTACK_DEFAULTS["max_iters"],
    candidates: CandidatesOption = ATTACK_DEFAULTS["candidates"],
    strategies: StrategiesOption = ATTACK_DEFAULTS["strategies"],
    compare: CompareFlag = False,
    param: list[str] = typer.Option(
        None,
        "--param",
        metavar="METHOD.KEY=VALUE",
        help="a guide's parameter (repeatable)",
    ),
    fill: int = typer.Option(
        ATTACK_DEFAULTS["fill"],
        "--fill",
        help="below this many rows per forward, run later strategies and iterations ahead",
    ),
    n_masks: NMasksOption = ATTACK_DEFAULTS["n_masks"],
    s: SOption = ATTACK_DEFAULTS["s"],
    p1: P1Option = ATTACK_DEFAULTS["p1"],
    seed: int = typer.Option(0, help="seed of masks and noise"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="candidates per forward"),
    device: str | None = typer.Option(None, help="cpu, cuda, cuda:1 (default: auto)"),
    fmt: FormatOption = OutputFormat.table,
    json_out: JsonFlag = False,
    out: Path | None = typer.Option(None, "--out", help="PNG: original | RISE | final | diff"),
) -> None:
    """Change at most FRAC of the pixels until the model predicts the wanted class.

    Candidates stay inside the model's input domain (--no-clamp or --preset seed: not); a
    success whose final image leaves the domain is shown as "success (out of domain)"."""
    from xaiq.xai.attack import validate_attack_params

    given = {"clamp": clamp} if clamp is not None else {}
    params = validate_attack_params(
        {
            **given,
            "preset": preset,
            "mode": mode,
            "frac": frac,
            "sigma": sigma,
            "max_iters": max_iters,
            "candidates": candidates,
            "strategies": strategies,
            "compare": compare,
            "guide_params": _guide_params(param),
            "fill": fill,
            "n_masks": n_masks,
            "s": s,
            "p1": p1,
            "batch_size": batch_size,
            "only_misclassified": not all_samples,
            "target_class": target,
        }
    )
    if (image is None) == (dataset is None):
        raise CliError("give either IMAGE or --dataset (not both)")
    if limit is not None and limit < 1:
        raise CliError(f"--limit must be >= 1, got {limit}")
    if image is not None and mode == "repair" and label is None:
        raise CliError("repair mode needs the true class of IMAGE: --label L")
    out_fmt = output_format(fmt, json_out)
    _run(image, model, label, dataset, limit, params, seed, device, out_fmt, out)


def _guide_params(pairs: list[str] | None) -> dict[str, dict[str, Any]]:
    import json

    out: dict[str, dict[str, Any]] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        method, dot, name = key.strip().partition(".")
        if not sep or not dot or not method or not name:
            raise CliError(f"--param expects METHOD.KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out.setdefault(method, {})[name] = value
    return out


def _run(
    image: Path | None,
    model_name: str,
    label: int | None,
    dataset: str | None,
    limit: int | None,
    params: dict[str, Any],
    seed: int,
    device: str | None,
    out_fmt: OutputFormat,
    out: Path | None,
) -> None:
    json_out = out_fmt is OutputFormat.json
    import torch

    from xaiq.xai.allocator import tune_host_allocator
    from xaiq.xai.attack import rise_guided_search, select_repair_candidates, targets_for_mode
    from xaiq.xai.datasets import open_dataset
    from xaiq.xai.errors import InvalidParameterError
    from xaiq.xai.models import load_model

    tune_host_allocator()  # a dataset's worth of search batches in this process
    model = load_model(model_name, device=device)
    if params["target_class"] is not None and params["target_class"] >= model.num_classes:
        raise InvalidParameterError(
            f"attack: target_class={params['target_class']} out of range "
            f"for {model.name} ({model.num_classes} classes)"
        )
    spec = f"file:{image}" if image is not None else str(dataset)
    ds = open_dataset(spec)
    indices = list(range(len(ds) if limit is None else min(limit, len(ds))))
    samples, errors = ds.load_many(indices)
    for index, message in errors.items():
        info(f"skipped sample {index}: {message}")
    if not samples:
        raise CliError(f"no readable samples in {spec}")
    x = model.preprocess([smp.image for smp in samples])
    preds = model.predict_proba(x).argmax(dim=1)
    labels: list[int | None] = [smp.label for smp in samples]
    if image is not None and label is not None:
        labels = [label]
    if label is not None and not 0 <= label < model.num_classes:
        raise InvalidParameterError(
            f"attack: label {label} out of range for {model.name} ({model.num_classes} classes)"
        )
    if params["mode"] == "untargeted":  # unlabelled samples: the prediction is the reference
        pairs = zip(labels, preds.tolist(), strict=True)
        labels = [int(p) if lab is None else lab for lab, p in pairs]
    chosen = list(range(len(samples)))
    if params["mode"] == "repair" and image is None:
        chosen = select_repair_candidates(
            preds, labels, only_misclassified=params["only_misclassified"]
        )
        info(
            f"{len(chosen)} of {len(samples)} samples to repair "
            f"({'misclassified' if params['only_misclassified'] else 'labelled'})"
        )
    search = {k: v for k, v in params.items() if k not in ("only_misclassified", "target_class")}
    results = []
    if chosen:
        from xaiq.cli.steps import Steps

        targets = targets_for_mode(
            params["mode"], [labels[i] for i in chosen], params["target_class"]
        )
        ids = [samples[i].index for i in chosen]
        with Steps("attack", total=1) as steps:
            chain = " then ".join(str(s) for s in params["strategies"])
            steps.start(f"searching {len(chosen)} images ({chain})")
            results = rise_guided_search(
                model, x[chosen], torch.tensor(targets), seed=seed, sample_ids=ids, **search
            )
    keys = {smp.index: smp.key for smp in samples}
    rows = [{"sample": r.sample_id, **_row(r), "key": keys[r.sample_id]} for r in results]
    if json_out:  # each strategy's own attack (with --compare: every strategy's)
        for row, r in zip(rows, results, strict=True):
            row["outcomes"] = [o.to_row() for o in r.outcomes]
    else:  # the goal flag alone would show an out-of-domain success as a plain one
        for row in rows:
            row.pop("success")
    summary = summarise(results, params["strategies"], attempted=len(samples))
    if json_out:
        emit_json({"params": _jsonable(params), "results": rows, "summary": summary})
    else:
        emit(rows, out_fmt, title="attack results", columns=COLUMNS)
    if out_fmt is OutputFormat.table:  # csv: the per-sample rows only
        emit(summary["per_strategy"], OutputFormat.table, title="per strategy")
        overall = {k: v for k, v in summary.items() if k != "per_strategy"}
        emit(kv_rows(overall), OutputFormat.table, title="summary")
    if out is not None and results:
        originals = x[chosen][: len(results)]
        save_figure(out, model, originals, results[:FIGURE_ROWS], [r["key"] for r in rows])
        info(f"figure written to {out}")


def _row(r: Any) -> dict[str, Any]:
    from xaiq.analysis.queries import success_label

    row = r.to_row() | {"outcome": success_label(r.success, r.out_of_domain)}
    return {c: row[c] for c in COLUMNS if c in row} | {
        "strategies_tried": row["strategies_tried"],
        "success": row["success"],
    }


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def summarise(results: list[Any], chain: tuple[str, ...], attempted: int) -> dict[str, Any]:
    """Success rate overall and per strategy (each strategy's own attacks, with the Wilson
    interval of its rate); median iterations and forward passes. ``succeeded`` counts the
    successes inside the input domain only; ``succeeded_out_of_domain`` the others."""
    from xaiq.analysis.intervals import wilson_interval
    from xaiq.analysis.queries import in_domain_success

    n = len(results)
    per = []
    for name in chain:
        tried = [o for r in results for o in r.outcomes if o.strategy == name]
        won = [o for o in tried if in_domain_success(o.success, o.out_of_domain)]
        interval = wilson_interval(len(won), len(tried))
        per.append(
            {
                "strategy": name,
                "tried": len(tried),
                "succeeded": len(won),
                "success_rate_when_tried": len(won) / len(tried) if tried else None,
                "success_low": interval[0] if interval else None,
                "success_high": interval[1] if interval else None,
                "succeeded_out_of_domain": sum(1 for o in tried if o.success) - len(won),
                "median_tied_pixels": _median(
                    [o.tied_pixels for o in tried if o.tied_pixels is not None]
                ),
                "share_of_attacked": len(won) / n if n else None,
                "median_first_success_iter": _median([o.first_success_iter for o in won]),
                "median_forward_passes": _median([o.forward_passes for o in tried]),
            }
        )
    ok = [r for r in results if in_domain_success(r.success, r.out_of_domain)]
    return {
        "samples": attempted,
        "attacked": n,
        "succeeded": len(ok),
        "success_rate": len(ok) / n if n else None,
        "succeeded_out_of_domain": sum(1 for r in results if r.success) - len(ok),
        "already_at_goal": sum(1 for r in results if r.success and r.strategy is None),
        "median_iterations": _median([r.iterations for r in results]),
        "median_forward_passes": _median([r.forward_passes for r in results]),
        "median_iterations_of_successes": _median([r.iterations for r in ok]),
        "median_forward_passes_of_successes": _median([r.forward_passes for r in ok]),
        "per_strategy": per,
    }


def _median(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def guide_of(r: Any) -> str | None:
    """The last guided strategy tried (whose map ``r.saliency`` is), or None."""
    guided = [t for t in r.strategies_tried if t.startswith(("least:", "most:", "rise-"))]
    return guided[-1] if guided else None


def guide_title(r: Any) -> str:
    guide = guide_of(r)
    if guide is None:
        return f"no guide map (target {r.target})"
    method = "rise" if guide.startswith("rise-") else guide.partition(":")[2]
    from xaiq.xai.figures import method_title

    last = r.strategies_tried[-1] if r.strategies_tried else guide
    return f"{method_title(method)} map (target {r.target})\nundimmed: pixels of {last}"


def save_figure(
    path: Path, model: Any, originals: Any, results: list[Any], keys: list[str]
) -> None:
    """One row per image: original | the guiding map with the last strategy's pixels (dimmed
    elsewhere) | final | difference; the map drawn by :func:`xaiq.xai.figures.draw_map` (the
    one picture convention, with its colour bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import torch
    from matplotlib.figure import Figure

    from xaiq.xai.figures import draw_map, literal

    finals = torch.stack([r.final for r in results]).to(originals.device)
    shown = model.to_display(torch.cat([originals[: len(results)], finals])).detach().cpu().numpy()
    # the values the model saw, in [0, 1] pixel units (to_display clips them to [0, 1])
    mean = torch.tensor(model.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(model.std, dtype=torch.float32).view(-1, 1, 1)
    n = len(results)
    fig = Figure(figsize=(12, 3.0 * n))
    axes = fig.subplots(n, 4, squeeze=False)
    for i, r in enumerate(results):
        orig, fin = shown[i], shown[n + i]
        grey = orig.shape[-1] == 1
        cmap = "gray" if grey else None
        diff = (r.final - originals[i].detach().cpu()).sum(dim=0).numpy()
        lim = float(np.abs(diff).max()) or 1.0
        chain = len(r.strategies_tried) > 1
        its = f"{r.iterations} iterations{' (chain total)' if chain else ''}"
        axes[i][0].imshow(orig.squeeze(-1) if grey else orig, cmap=cmap)
        axes[i][0].set_title(literal(f"{keys[i]}  pred {r.pred_before}"), fontsize=8)
        draw_map(axes[i][1], orig, r.saliency.numpy(), guide_title(r))
        axes[i][1].title.set_fontsize(8)
        mask = r.mask.numpy()
        overlay = np.zeros((*mask.shape, 4))
        overlay[~mask] = (0.0, 0.0, 0.0, 0.55)  # dim the pixels the attack may not change
        axes[i][1].imshow(overlay)
        won = r.strategy or ("already at goal" if r.success else "failed")
        seen = (r.final * std + mean).numpy()  # the values the model saw, in pixel units
        lo, hi = float(seen.min()), float(seen.max())
        final_kwargs: dict[str, Any] = {}
        final_title = f"final: pred {r.pred_after} ({won})\n{its}"
        if lo < 0.0 or hi > 1.0:  # out of the domain: draw those values, or say it clips
            if grey:
                fin = seen[0][..., None]
                final_kwargs = {"vmin": lo, "vmax": hi}
                final_title += f"\nas the model saw it: {lo:.3g} to {hi:.3g}"
            else:
                share = r.out_of_domain if r.out_of_domain is not None else float("nan")
                final_title += f"\ndisplay clips to [0, 1] ({share:.0%} of pixels outside)"
        axes[i][2].imshow(fin.squeeze(-1) if grey else fin, cmap=cmap, **final_kwargs)
        axes[i][2].set_title(literal(final_title), fontsize=8)
        im = axes[i][3].imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[i][3].set_title(f"difference (L0 {r.l0})", fontsize=8)
        bar = fig.colorbar(im, ax=axes[i][3], fraction=0.046, pad=0.03)
        bar.set_label("final − original (signed)", fontsize=7)
        bar.ax.tick_params(labelsize=7)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    from xaiq.db.files import atomic_output

    with atomic_output(path) as tmp:  # whole or nothing at --out
        fig.savefig(tmp, format="png", dpi=100)
