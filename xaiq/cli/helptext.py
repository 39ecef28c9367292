"""What ``--help`` shows beyond each command's own text: word metavars and examples.

Applied once to the Click command tree in ``main`` (so command modules stay short and other
commands get it for free): an option without a metavar gets one from its annotation (``INT``,
``NUMBER``, ``TEXT``, ``PATH``, ``LIST``, the choices of an enum; nothing for a flag), and every
command's help ends with its examples from :data:`EXAMPLES`. A test parses every example.
"""

from __future__ import annotations

import enum
import inspect
import typing
from pathlib import Path
from typing import Any

EXAMPLES: dict[str, list[str]] = {
    "attack": [
        "xaiq attack --dataset digits --limit 50 -m digits-cnn-weak --max-iters 2000",
        "xaiq attack photo.png --label 3 -m digits-cnn --frac 0.2 --out attack.png",
    ],
    "datasets": ["xaiq datasets --format csv"],
    "methods": ["xaiq methods --format json"],
    "metrics": ["xaiq metrics"],
    "submit": [
        "xaiq submit disagreement -d digits -m digits-cnn-weak --limit 200"
        " --methods integrated_gradients,saliency,rise --superpixels grid --n-segments 16,49",
        "xaiq submit attack -d digits -m digits-cnn-weak --limit 200 --max-iters 2000",
    ],
    "submit attribution": [
        "xaiq submit attribution -d digits -m digits-cnn --methods saliency,grad_cam --limit 100",
    ],
    "submit disagreement": [
        "xaiq submit disagreement -d digits -m digits-cnn-weak --limit 200"
        " --methods integrated_gradients,saliency,rise --superpixels grid --n-segments 16,49",
        "xaiq submit disagreement -d digits --models digits-cnn,digits-cnn-weak"
        " --methods saliency,grad_cam --faithfulness --name cross --tag paper",
    ],
    "submit attack": [
        "xaiq submit attack -d digits -m digits-cnn-weak --limit 200 --max-iters 2000",
        "xaiq submit attack -d digits -m digits-cnn-weak --compare --strategies rise-least,central",
    ],
    "status": ["xaiq status 1", "xaiq status 1 --format json"],
    "list": ["xaiq list", "xaiq list --status failed,partial --format csv"],
    "wait": ["xaiq wait 1 --timeout 600"],
    "cancel": ["xaiq cancel 1"],
    "retry": ["xaiq retry 1 --local"],
    "resume": ["xaiq resume 1"],
    "errors": ["xaiq errors 1 --limit 20"],
    "health": ["xaiq health scheduler", "xaiq health worker --max-age 60"],
    "worker": [
        "xaiq worker --queues cpu --concurrency 2",
        "xaiq worker --queues gpu --device cuda:0",
    ],
    "workers": ["xaiq workers --format json"],
    "scheduler": ["xaiq scheduler --max-in-flight 8"],
    "flower": ["xaiq flower", "xaiq flower --address 0.0.0.0 --port 5555"],
    "explain": ["xaiq explain digits:5 -m digits-cnn --methods integrated_gradients,grad_cam"],
    "compare": [
        "xaiq compare digits:5 -m digits-cnn --superpixels grid --n-segments 49 --out d5.png",
        "xaiq compare photo.jpg -m resnet18:/path/to/state_dict.pt --format json",
    ],
    "compare-maps": [
        "xaiq compare-maps maps/integrated_gradients.npy maps/grad_cam.npy"
        " --image maps/input.png --superpixels grid --n-segments 49",
    ],
    "export": [
        "xaiq export 1 --what disagreements --format parquet --out job1.parquet",
        "xaiq export 1 --what protocol --format json --out card1.json",
    ],
    "show": ["xaiq show 1 0 --out sample0.png"],
    "report": ["xaiq report 1 --out job1.html"],
    "serve": [
        "xaiq serve",
        "xaiq serve --host 0.0.0.0 --port 8050",
    ],
    "models": ["xaiq models", "xaiq models fetch resnet18"],
    "models train-digits": ["xaiq models train-digits --seed 0"],
    "models fetch": ["xaiq models fetch resnet18"],
    "db upgrade": ["XAIQ_DB_URL=postgresql://user:pass@host/xaiq xaiq db upgrade"],
    "stats disagreement": [
        "xaiq stats disagreement --job 1 --group-by pair,correct",
        "xaiq stats disagreement --job 1 -M all --format csv",
    ],
    "stats attack": ["xaiq stats attack --job 2 --group-by label"],
    "stats faithfulness": [
        "xaiq stats faithfulness --job 1",
        "xaiq stats faithfulness --job 1 --group-by method,ties --format json",
        "xaiq stats faithfulness --job 1 --pairs -M feature_disagreement",
    ],
    "stats maps": ["xaiq stats maps --job 1", "xaiq stats maps --job 1 --format csv"],
    "stats sanity": ["xaiq stats sanity --job 1 --verdicts"],
}


def _word(annotation: Any) -> str | None:
    """``int`` -> ``INT``, ``list[str]`` -> ``LIST``, an enum -> ``a|b|c``, a flag -> None."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, type(int | None)) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is list:
        return "LIST"
    if annotation is bool:
        return None
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "|".join(str(m.value) for m in annotation)
    words = {int: "INT", float: "NUMBER", str: "TEXT", Path: "PATH"}
    return words.get(annotation, "VALUE")


def _hints(callback: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(inspect.unwrap(callback), include_extras=True)
    except Exception:  # an unresolvable annotation: leave Typer's own display
        return {}


def apply(command: Any, path: tuple[str, ...] = ()) -> None:
    """Set word metavars and example epilogs on ``command`` and every subcommand."""
    hints = _hints(command.callback) if command.callback is not None else {}
    for param in command.params:
        if param.metavar is not None or param.name not in hints:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()
        else:
            word = _word(hints[param.name])
            param.metavar = "" if word is None else word
    examples = EXAMPLES.get(" ".join(path))
    if examples and not command.epilog:
        command.epilog = "Examples:\n\n" + "\n\n".join(f"  {e}" for e in examples)
    for name, sub in (getattr(command, "commands", None) or {}).items():
        apply(sub, (*path, name))
