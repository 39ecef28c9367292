"""Catalog listings (models, datasets, methods) and the digits training command."""

from __future__ import annotations

from pathlib import Path

import typer

from xaiq.cli.app import app, models_app
from xaiq.cli.options import FormatOption, JsonFlag, output_format
from xaiq.cli.output import OutputFormat, emit, info


@models_app.callback(invoke_without_command=True)
def models_list(
    ctx: typer.Context, fmt: FormatOption = OutputFormat.table, as_json: JsonFlag = False
) -> None:
    """List the bundled models; any torchvision classifier name works too.

    torchscript:FILE is code (it runs when loaded): refused unless XAIQ_TRUST_TORCHSCRIPT=1.
    Checkpoints (ARCH:state_dict.pt) are data, read with weights_only=True."""
    if ctx.invoked_subcommand is not None:
        return
    from xaiq.xai.models import MODELS

    rows = [{"name": n, "kind": "bundled", "input": "1x28x28 in [0,1]"} for n in MODELS.names()] + [
        {"name": "<torchvision name>", "kind": "torchvision", "input": "default weights (cached)"},
        {"name": "<arch>:<state_dict.pt>", "kind": "checkpoint", "input": "weights_only load"},
        {
            "name": "torchscript:<file>",
            "kind": "torchscript (code: needs XAIQ_TRUST_TORCHSCRIPT=1)",
            "input": "3x224x224 ImageNet",
        },
    ]
    emit(rows, output_format(fmt, as_json), title="models")


@models_app.command("train-digits")
def train_digits_cmd(
    out: Path = typer.Option(None, help="folder for the checkpoints (default: the package's)"),
    seed: int = typer.Option(0, help="training seed"),
) -> None:
    """Train digits-cnn and digits-cnn-weak on scikit-learn's digits and save the checkpoints."""
    import torch

    from xaiq.xai.digits import train_digits

    folder = out or Path(__file__).resolve().parents[1] / "xai" / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, weak in (("digits-cnn", False), ("digits-cnn-weak", True)):
        result = train_digits(weak=weak, seed=seed)
        meta = {"accuracy": result.accuracy, "ece": result.ece, "seed": seed}
        torch.save({"state_dict": result.state_dict, "meta": meta}, folder / f"{name}.pt")
        rows.append({"model": name, "held_out_accuracy": result.accuracy, "ece": result.ece})
    emit(rows, OutputFormat.table, title=f"saved to {folder}")


@models_app.command("fetch")
def fetch_cmd(name: str = typer.Argument(..., help="torchvision model name")) -> None:
    """Download a torchvision model's default weights into the TORCH_HOME cache."""
    import os

    os.environ["XAIQ_ALLOW_DOWNLOAD"] = "1"
    from xaiq.xai.models import load_model

    model = load_model(name, device="cpu")
    info(f"cached weights for {model.name}")


@app.command("datasets")
def datasets_cmd(fmt: FormatOption = OutputFormat.table, as_json: JsonFlag = False) -> None:
    """List the dataset specs."""
    rows = [
        {"spec": "digits", "labels": "yes", "what": "scikit-learn digits, 1,797 8x8 grey"},
        {"spec": "skimage[:cat,...]", "labels": "no", "what": "scikit-image sample photos"},
        {"spec": "folder:PATH | PATH/", "labels": "subfolders", "what": "image folder (recursive)"},
        {"spec": "file:PATH | PATH", "labels": "no", "what": "one image file"},
        {"spec": "mnist:ROOT[:test]", "labels": "yes", "what": "torchvision MNIST, local root"},
        {"spec": "cifar10:ROOT[:test]", "labels": "yes", "what": "torchvision CIFAR-10, local"},
    ]
    emit(rows, output_format(fmt, as_json), title="datasets")


@app.command("methods")
def methods_cmd(fmt: FormatOption = OutputFormat.table, as_json: JsonFlag = False) -> None:
    """List explainers with each parameter, its default and allowed values (set them with
    --param METHOD.KEY=VALUE), and the superpixel methods with theirs. `xaiq metrics` lists
    the metrics."""
    from xaiq.xai import explainers, superpixels

    rows = []
    for name in explainers.EXPLAINERS.names():
        ex = explainers.EXPLAINERS.get(name)
        params = ex.params.items() or [("-", None)]
        for key, spec in params:
            rows.append(
                {
                    "kind": "explainer",
                    "name": name,
                    "parameter": key,
                    "default": "-" if spec is None else _default(spec.default),
                    "allowed": "" if spec is None else spec.domain or spec.kind.__name__,
                    "about": (spec.doc if spec is not None and spec.doc else ex.doc),
                }
            )
    for name in superpixels.SEGMENTERS.names():
        seg = superpixels.SEGMENTERS.get(name)
        for key, default in seg.defaults.items():
            rows.append(
                {
                    "kind": "superpixels",
                    "name": name,
                    "parameter": key,
                    "default": _default(default),
                    "allowed": "",
                    "about": "",
                }
            )
    emit(rows, output_format(fmt, as_json), title="methods and their parameters")


def _default(value: object) -> str:
    return "None" if value is None else str(value)


@app.command("metrics")
def metrics_cmd(fmt: FormatOption = OutputFormat.table, as_json: JsonFlag = False) -> None:
    """The glossary of the ten disagreement metrics: range, kind, which end means the maps
    agree, definition and when a value is NULL."""
    from xaiq.analysis.glossary import glossary_rows

    title = "metrics (n superpixels, k = max(1, floor(k_frac n)))"
    emit(glossary_rows(), output_format(fmt, as_json), title=title)
