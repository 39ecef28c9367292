"""One-image commands: ``explain``, ``compare`` (the source pipeline) and ``compare-maps``.

torch and the xai library are imported inside the commands so that ``xaiq --help`` and the
read-only commands start fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from xaiq.cli.app import app
from xaiq.cli.errors import CliError
from xaiq.cli.options import FormatOption, JsonFlag, output_format
from xaiq.cli.output import OutputFormat, emit, emit_json, info

IMAGE_HELP = (
    "An image file (PNG, JPEG, ...), or a dataset sample: 'digits:N' (scikit-learn digit N), "
    "'skimage:NAME' (cat, chelsea, astronaut, camera, coffee, coins, rocket), or "
    "'DATASET@N' for sample N of any dataset spec (e.g. 'folder:imgs@3', 'mnist:/data:test@7')."
)
MODEL_HELP = (
    "digits-cnn, digits-cnn-weak, a torchvision name (cached weights), "
    "ARCH:state_dict.pt, or torchscript:FILE (code: only with XAIQ_TRUST_TORCHSCRIPT=1)"
)

ModelOpt = typer.Option(..., "--model", "-m", help=MODEL_HELP)
DeviceOpt = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda if present)")
TargetOpt = typer.Option(None, "--target", help="class to explain (default: the prediction)")
ParamOpt = typer.Option(
    None,
    "--param",
    "-p",
    metavar="METHOD.KEY=VALUE",
    help="explainer parameter METHOD.KEY=VALUE (or KEY=VALUE for every method that has KEY), "
    "e.g. -p integrated_gradients.n_steps=20; repeatable",
)


def load_image(spec: str) -> tuple[Any, str]:
    """The image ``[H, W]`` or ``[H, W, 3]`` in [0, 1] named by ``spec`` and its source key."""
    image, key, _ = load_labelled_image(spec)
    return image, key


def load_labelled_image(spec: str) -> tuple[Any, str, int | None]:
    """:func:`load_image` plus the sample's true label (``None`` for a file or no label)."""
    from xaiq.xai.datasets import SkimageDataset, open_dataset
    from xaiq.xai.images import read_image

    path = Path(spec)
    if path.is_file():
        return read_image(path), str(path), None
    if "@" in spec:
        dataset_spec, _, index = spec.rpartition("@")
        return _sample(open_dataset(dataset_spec), index, spec)
    kind, sep, arg = spec.partition(":")
    if sep and kind == "digits":
        return _sample(open_dataset("digits"), arg, spec)
    if sep and kind == "skimage":
        sample = SkimageDataset(arg).load(0)
        return sample.image, sample.key, sample.label
    if path.suffix or "/" in spec:
        raise CliError(f"image not found: {spec}")
    raise CliError(f"not an image file or sample: {spec!r} ({IMAGE_HELP})")


def _sample(dataset: Any, index: str, spec: str) -> tuple[Any, str, int | None]:
    try:
        i = int(index)
    except ValueError:
        raise CliError(f"sample index must be an integer in {spec!r}, got {index!r}") from None
    sample = dataset.load(i)
    return sample.image, sample.key, sample.label


def _methods(text: str, expected: int | None = None) -> list[str]:
    from xaiq.xai.explainers import EXPLAINERS

    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise CliError("no methods given (e.g. --methods integrated_gradients,saliency)")
    if expected is not None and len(names) != expected:
        raise CliError(f"--methods needs exactly {expected} comma-separated names, got {text!r}")
    for name in names:
        EXPLAINERS.get(name)  # an unknown name lists the known ones
    return names


def _method_params(names: list[str], items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``--param`` values per method, validated (types coerced, domains checked)."""
    from xaiq.xai.explainers import EXPLAINERS, validate_params

    raw: dict[str, dict[str, Any]] = {name: {} for name in names}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--param must look like METHOD.KEY=VALUE, got {item!r}")
        method, dot, param = key.rpartition(".")
        parsed: Any = {"true": True, "false": False, "none": None}.get(value.lower(), value)
        targets = [method] if dot else [n for n in names if param in EXPLAINERS.get(n).params]
        if dot and method not in raw:
            raise CliError(f"--param {item!r}: {method!r} is not one of the methods {names}")
        if not targets:
            raise CliError(f"--param {item!r}: no method in {names} has a parameter {param!r}")
        for name in targets:
            raw[name][param] = parsed
    return {name: validate_params(name, params) for name, params in raw.items()}


def _prepare(image_spec: str, model_name: str, device: str | None, target: int | None) -> dict:
    """Load model and image; predict; the model input, display image and target class."""
    from xaiq.xai.models import load_model

    image, key, label = load_labelled_image(image_spec)
    model = load_model(model_name, device=device)
    x = model.preprocess([image])
    probs = model.predict_proba(x)[0]
    pred = int(probs.argmax())
    if target is not None and not 0 <= target < model.num_classes:
        last = model.num_classes - 1
        raise CliError(f"--target {target} is not a class of {model.name} (0..{last})")
    tgt = pred if target is None else target
    names = model.class_names
    return {
        "model": model,
        "key": key,
        "label": label,
        "x": x,
        "display": model.to_display(x)[0].detach().cpu().numpy(),  # [H, W, C] in [0, 1]
        "pred": pred,
        "pred_name": names[pred] if names else str(pred),
        "prob_pred": float(probs[pred]),
        "target": tgt,
        "target_name": names[tgt] if names else str(tgt),
    }


def _explain(method: str, ctx: dict, seed: int, params: dict[str, Any]) -> tuple[Any, float]:
    import torch

    from xaiq.xai.errors import XaiError
    from xaiq.xai.explainers import explain

    start = time.perf_counter()
    target = torch.tensor([ctx["target"]])
    try:
        maps = explain(method, ctx["model"], ctx["x"], target, seed=seed, **params)
    except XaiError:
        raise
    except Exception as exc:  # a model the method cannot handle (e.g. hooks on TorchScript)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"{ctx['key']} with {ctx['model'].name}"
        raise CliError(f"{method} failed on {where}: {first}") from None
    arr = maps[0].detach().cpu().numpy()
    if not (arr == arr).all():
        raise CliError(f"{method} produced NaN values for {ctx['key']}")
    return arr, time.perf_counter() - start


def _metric_rows(metrics: dict) -> list[dict]:
    from xaiq.xai.metrics import METRIC_NAMES, SOURCE_METRICS

    return [
        {"metric": name, "value": metrics[name], "source": "yes" if name in SOURCE_METRICS else ""}
        for name in METRIC_NAMES
    ]


def _disagreement(
    display: Any, map_a: Any, map_b: Any, superpixels: str, n_segments: int, k_frac: float
) -> dict:
    from xaiq.xai.metrics import compare_vectors
    from xaiq.xai.superpixels import segment, segment_means

    img = display[..., 0] if display.ndim == 3 and display.shape[2] == 1 else display
    labels = segment(img[None], superpixels, n_segments=n_segments)
    (vec_a, vec_b) = (segment_means(m[None], labels)[0] for m in (map_a, map_b))
    return compare_vectors(vec_a, vec_b, k_frac), labels


def _figure_style(preset: str, sign: str, dpi: int, out: Path | None) -> Any:
    """The figure options checked before any compute (a usage error costs nothing)."""
    from xaiq.xai.figures import FORMATS, style_for

    if out is not None and out.suffix.lower().lstrip(".") not in FORMATS:
        raise CliError(f"--out {out}: the figure format is its extension: .png, .pdf or .svg")
    if out is not None and out.is_dir():
        raise CliError(f"--out {out} is a directory; give the figure's file name")
    if not 10 <= dpi <= 1200:
        raise CliError(f"--dpi {dpi} is out of range (10..1200)")
    try:
        return style_for(preset, sign=None if preset == "seed" and sign == "all" else sign)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _check_options(superpixels: str, n_segments: int, k_frac: float) -> None:
    from xaiq.xai.metrics import check_k_frac
    from xaiq.xai.superpixels import validate_segment_params

    check_k_frac(k_frac)
    validate_segment_params(superpixels, {"n_segments": n_segments})


@app.command("explain")
def explain_cmd(
    image: str = typer.Argument(..., help=IMAGE_HELP),
    model: str = ModelOpt,
    methods: str = typer.Option(
        "integrated_gradients,saliency", "--methods", help="comma-separated explainer names"
    ),
    out: Path = typer.Option(Path("xaiq-maps"), "--out", "-o", help="folder for <method>.npy"),
    target: int | None = TargetOpt,
    param: list[str] | None = ParamOpt,
    seed: int = typer.Option(0, "--seed", help="seed for stochastic methods"),
    device: str | None = DeviceOpt,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """Explain one image: save each method's map as OUT/<method>.npy ([H, W] float32 at the
    model's input size) and OUT/input.png (the model-size image, for compare-maps --image)."""
    import numpy as np

    from xaiq.cli.steps import Steps
    from xaiq.db.files import atomic_output

    fmt = output_format(fmt, as_json)
    names = _methods(methods)
    params = _method_params(names, param)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} is a file; explain writes a folder of <method>.npy maps")
    rows = []
    with Steps("explain", total=1 + len(names)) as steps:
        steps.start(f"loading {model}")
        ctx = _prepare(image, model, device, target)
        out.mkdir(parents=True, exist_ok=True)
        _save_png(out / "input.png", ctx["display"])
        for name in names:
            steps.start(f"explaining with {name}")
            arr, seconds = _explain(name, ctx, seed, params[name])
            with atomic_output(out / f"{name}.npy") as tmp:  # each file whole or absent
                np.save(tmp, arr.astype(np.float32), allow_pickle=False)
            rows.append(
                {
                    "method": name,
                    "file": str(out / f"{name}.npy"),
                    "min": float(arr.min()),
                    "max": float(arr.max()),
                    "abs_mean": float(np.abs(arr).mean()),
                    "seconds": seconds,
                }
            )
    info(
        f"{ctx['key']}: {ctx['model'].name} predicts {ctx['pred_name']} "
        f"(p={ctx['prob_pred']:.3f}); explaining class {ctx['target_name']}"
    )
    emit(rows, fmt, title=f"maps of {ctx['key']}")


def _save_png(path: Path, display: Any) -> None:
    import numpy as np
    from PIL import Image

    from xaiq.db.files import atomic_output

    arr = np.clip(display * 255.0 + 0.5, 0, 255).astype(np.uint8)
    with atomic_output(path) as tmp:
        Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(tmp, format="PNG")


@app.command("compare")
def compare_cmd(
    image: str = typer.Argument(..., help=IMAGE_HELP),
    model: str = ModelOpt,
    methods: str = typer.Option(
        "integrated_gradients,saliency", "--methods", help="two explainers A,B to compare"
    ),
    superpixels: str = typer.Option("slic", "--superpixels", help="slic or grid"),
    n_segments: int = typer.Option(200, "--n-segments", help="superpixels per image (>= 1)"),
    k_frac: float = typer.Option(0.05, "--k-frac", help="top-k fraction in (0, 1]"),
    target: int | None = TargetOpt,
    out: Path | None = typer.Option(
        Path("compare.png"),
        "--out",
        "-o",
        help="figure: original | A overlay | B overlay; .png, .pdf or .svg",
    ),
    no_figure: bool = typer.Option(False, "--no-figure", help="do not write the figure"),
    sign: str = typer.Option(
        "all",
        "--sign",
        help="all (signed, diverging colours centred on 0), absolute, positive or negative",
    ),
    preset: str = typer.Option(
        "default", "--preset", help="default, or seed (the source figure: |map|, jet)"
    ),
    boundaries: bool = typer.Option(
        False, "--boundaries", help="draw the superpixels and outline each map's top-k"
    ),
    dpi: int = typer.Option(150, "--dpi", help="figure resolution (10..1200)"),
    param: list[str] | None = ParamOpt,
    seed: int = typer.Option(0, "--seed", help="seed for stochastic methods"),
    device: str | None = DeviceOpt,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """The source pipeline on one image: predicted class as target, IG (zero baseline,
    n_steps 50) vs Saliency, SLIC 200 superpixels, k_frac 0.05; prints the four source metrics
    (feature/sign disagreement, euclidean, euclidean_abs) and then the others."""
    from xaiq.cli.steps import Steps

    out_fmt = output_format(fmt, as_json)
    as_json = out_fmt is OutputFormat.json
    names = _methods(methods, expected=2)
    params = _method_params(names, param)
    _check_options(superpixels, n_segments, k_frac)
    style = _figure_style(preset, sign, dpi, out if not no_figure else None)
    with Steps("compare", total=4) as steps:
        steps.start(f"loading {model}")
        ctx = _prepare(image, model, device, target)
        steps.start(f"explaining with {names[0]}")
        map_a, secs_a = _explain(names[0], ctx, seed, params[names[0]])
        steps.start(f"explaining with {names[1]}")
        map_b, secs_b = _explain(names[1], ctx, seed, params[names[1]])
        steps.start(f"{superpixels} superpixels and metrics")
        metrics, labels = _disagreement(
            ctx["display"], map_a, map_b, superpixels, n_segments, k_frac
        )
    figure = None
    if out is not None and not no_figure:
        from xaiq.xai.figures import model_title, sample_title, save_comparison_figure
        from xaiq.xai.metrics import SOURCE_METRICS

        names_ = ctx["model"].class_names
        title = f"{model_title(ctx['model'].name)}: " + sample_title(
            ctx["label"], ctx["pred"], ctx["prob_pred"], names_
        )
        from xaiq.db.files import atomic_output

        with atomic_output(out) as tmp:  # whole or nothing at --out
            save_comparison_figure(
                tmp,
                ctx["display"],
                [map_a, map_b],
                names,
                title=title,
                metrics={m: metrics[m] for m in SOURCE_METRICS},
                style=style,
                segments=labels[0] if boundaries else None,
                top_k=int(metrics["k"]) if boundaries and metrics["k"] else None,
                dpi=dpi,
            )
        figure = str(out)
    if as_json:
        emit_json(
            {
                "image": ctx["key"],
                "model": ctx["model"].name,
                "pred": ctx["pred"],
                "pred_name": ctx["pred_name"],
                "prob_pred": ctx["prob_pred"],
                "target": ctx["target"],
                "method_a": names[0],
                "method_b": names[1],
                "seconds": {names[0]: secs_a, names[1]: secs_b},
                "superpixels": superpixels,
                "n_segments": n_segments,
                "k_frac": k_frac,
                "figure": figure,
                "metrics": metrics,
            }
        )
        return
    info(
        f"{ctx['key']}: {ctx['model'].name} predicts {ctx['pred_name']} "
        f"(p={ctx['prob_pred']:.3f}); target {ctx['target_name']}; "
        f"n={metrics['n']} superpixels, k={metrics['k']}"
    )
    emit(_metric_rows(metrics), out_fmt, title=f"{names[0]} vs {names[1]}")
    if figure:
        info(f"figure: {figure}")


def _load_map(path: Path) -> Any:
    import numpy as np

    if not path.is_file():
        raise CliError(f"map file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # truncated, not .npy, object array
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"cannot read map {path}: {first}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise CliError(f"map {path} is not a numeric array")
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise CliError(f"map {path} must be [H, W], got shape {arr.shape}")
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise CliError(f"map {path} has {bad} non-finite value(s) (NaN or inf)")
    return arr.astype(np.float64)


@app.command("compare-maps")
def compare_maps_cmd(
    map_a: Path = typer.Argument(..., help="first map, .npy [H, W]"),
    map_b: Path = typer.Argument(..., help="second map, .npy [H, W] (same shape)"),
    image: str | None = typer.Option(
        None,
        "--image",
        help=f"the image the maps explain (needed for slic). {IMAGE_HELP} "
        "Use the input.png that `xaiq explain` writes; others are resized to the map shape.",
    ),
    superpixels: str = typer.Option("slic", "--superpixels", help="slic or grid"),
    n_segments: int = typer.Option(200, "--n-segments", help="superpixels per image (>= 1)"),
    k_frac: float = typer.Option(0.05, "--k-frac", help="top-k fraction in (0, 1]"),
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonFlag = False,
) -> None:
    """Compare two saved maps with the disagreement metrics (same superpixels for both)."""
    import numpy as np

    out_fmt = output_format(fmt, as_json)
    as_json = out_fmt is OutputFormat.json
    _check_options(superpixels, n_segments, k_frac)
    a, b = _load_map(map_a), _load_map(map_b)
    if a.shape != b.shape:
        raise CliError(f"maps differ in shape: {map_a} is {a.shape}, {map_b} is {b.shape}")
    if image is not None:
        img, _ = load_image(image)
        if img.shape[:2] != a.shape:
            from skimage.transform import resize

            info(f"resizing the image {img.shape[:2]} to the maps' shape {a.shape}")
            img = resize(img, a.shape, anti_aliasing=True)
    elif superpixels == "grid":
        img = np.zeros(a.shape)
    else:
        raise CliError("--image is required for slic superpixels (or use --superpixels grid)")
    metrics, _ = _disagreement(
        np.asarray(img, dtype=np.float64), a, b, superpixels, n_segments, k_frac
    )
    if as_json:
        emit_json(
            {
                "map_a": str(map_a),
                "map_b": str(map_b),
                "superpixels": superpixels,
                "n_segments": n_segments,
                "k_frac": k_frac,
                "metrics": metrics,
            }
        )
        return
    info(f"n={metrics['n']} superpixels, k={metrics['k']}")
    emit(_metric_rows(metrics), out_fmt, title=f"{map_a.name} vs {map_b.name}")
