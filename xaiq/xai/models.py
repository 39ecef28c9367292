"""Models by name: the bundled digits CNNs, torchvision classifiers, TorchScript, state_dicts.

``load_model(spec, device=None)`` returns a :class:`LoadedModel`. Accepted specs:

- ``digits-cnn``, ``digits-cnn-weak``: bundled checkpoints (28x28 grey inputs in [0, 1]);
- ``<torchvision name>`` (``resnet18``, ...): default weights through torchvision's weights
  API, read from the cache under ``TORCH_HOME``; never downloaded implicitly
  (``XAIQ_ALLOW_DOWNLOAD=1`` allows it);
- ``<torchvision name>:<path>``: a state_dict checkpoint for that architecture;
- ``torchscript:<path>``: a TorchScript module (ImageNet-style preprocessing assumed:
  ``[N, 3, 224, 224]`` in, ``[N, classes]`` logits out). A TorchScript archive is *code*: it
  runs when loaded and on every forward (it can read and write files). It is refused unless
  the process opts in with ``XAIQ_TRUST_TORCHSCRIPT=1`` (:data:`TRUST_TORCHSCRIPT_ENV`);
  on a cluster, set it on the workers that may run such jobs.

Every checkpoint is read with ``torch.load(weights_only=True)``: no arbitrary unpickling.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xaiq.xai.device import resolve_device
from xaiq.xai.errors import ModelLoadError, UnknownNameError
from xaiq.xai.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(eq=False)
class LoadedModel:
    """A classifier in eval mode with the preprocessing its inputs need.

    ``module`` maps model inputs ``[N, channels, H, W]`` (float32, on ``device``) to logits
    ``[N, num_classes]``. Model inputs are images in [0, 1] that went through
    :meth:`preprocess` (resize, optional centre crop, normalisation by ``mean``/``std``).
    """

    name: str
    module: nn.Module
    num_classes: int
    input_size: tuple[int, int]
    channels: int = 3
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    resize: int | None = None
    class_names: tuple[str, ...] | None = None
    info: dict[str, object] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        for param in self.module.parameters():
            return param.device
        for buffer in self.module.buffers():
            return buffer.device
        return torch.device("cpu")

    def _stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=torch.float32, device=self.device)
        std = torch.tensor(self.std, dtype=torch.float32, device=self.device)
        return mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)

    @property
    def input_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (low, high) of valid model inputs, each ``[1, channels, 1, 1]``."""
        mean, std = self._stats()
        return (0.0 - mean) / std, (1.0 - mean) / std

    def preprocess(self, images: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
        """Images ``[H, W]`` or ``[H, W, C]`` (C = 1, 3 or 4), floats in [0, 1] or uint8,
        of any size -> model inputs ``[N, channels, *input_size]`` float32 on ``device``."""
        batch = [self._prepare_one(img) for img in images]
        x = torch.stack(batch).to(self.device)
        mean, std = self._stats()
        return (x - mean) / std

    def _prepare_one(self, image: np.ndarray) -> torch.Tensor:
        arr = np.asarray(image)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        elif arr.dtype == np.uint16:
            arr = arr.astype(np.float32) / 65535.0
        arr = arr.astype(np.float32, copy=False)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.shape[2] == 4:  # drop alpha
            arr = arr[:, :, :3]
        if arr.shape[2] == 3 and self.channels == 1:
            arr = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            arr = arr[:, :, None]
        elif arr.shape[2] == 1 and self.channels == 3:
            arr = np.repeat(arr, 3, axis=2)
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
        h, w = self.input_size
        if self.resize is not None:
            scale = self.resize / min(t.shape[2], t.shape[3])
            size = (max(h, round(t.shape[2] * scale)), max(w, round(t.shape[3] * scale)))
            t = F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)
            top, left = (t.shape[2] - h) // 2, (t.shape[3] - w) // 2
            t = t[:, :, top : top + h, left : left + w]
        elif tuple(t.shape[2:]) != (h, w):
            t = F.interpolate(t, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        return t[0].clamp(0.0, 1.0)

    def to_display(self, inputs: torch.Tensor) -> torch.Tensor:
        """Model inputs ``[N, C, H, W]`` -> images ``[N, H, W, C]`` in [0, 1] (same device)."""
        mean, std = self._stats()
        return (inputs * std + mean).clamp(0.0, 1.0).permute(0, 2, 3, 1)

    @torch.no_grad()
    def predict_proba(self, inputs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Softmax probabilities ``[N, num_classes]`` for model inputs ``[N, C, H, W]``."""
        out = [
            self.module(inputs[i : i + batch_size]).float().softmax(dim=1)
            for i in range(0, len(inputs), batch_size)
        ]
        return torch.cat(out) if out else inputs.new_zeros((0, self.num_classes))


ModelFactory = Callable[[torch.device], LoadedModel]
MODELS: Registry[ModelFactory] = Registry("model")


def _bundled_weights(name: str) -> Path:
    return Path(str(resources.files("xaiq.xai") / "weights" / f"{name}.pt"))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; a clear error for a missing/bad file."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # unpickling refused, truncated file, not a checkpoint
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot read checkpoint {path}: {first}") from None
    if not isinstance(obj, dict):
        raise ModelLoadError(f"checkpoint {path} does not hold a state_dict")
    return obj


def _digits_factory(name: str) -> ModelFactory:
    def factory(device: torch.device) -> LoadedModel:
        from xaiq.xai.digits import INPUT_SIZE, NUM_CLASSES, DigitsCNN

        ckpt = load_checkpoint(_bundled_weights(name), device)
        module = DigitsCNN()
        module.load_state_dict(ckpt["state_dict"])
        info = dict(ckpt.get("meta", {}))
        return LoadedModel(
            name=name,
            module=module.to(device).eval(),
            num_classes=NUM_CLASSES,
            input_size=(INPUT_SIZE, INPUT_SIZE),
            channels=1,
            class_names=tuple(str(i) for i in range(NUM_CLASSES)),
            info=info,
        )

    return factory


MODELS.add("digits-cnn", _digits_factory("digits-cnn"))
MODELS.add("digits-cnn-weak", _digits_factory("digits-cnn-weak"))


def _torchvision_weights(arch: str):  # noqa: ANN202 - torchvision's WeightsEnum
    import torchvision

    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise UnknownNameError(
            f"unknown model {arch!r}; known: {', '.join(MODELS.names())} or a torchvision "
            "classification model (see `xaiq models`)"
        )
    return torchvision.models.get_model_weights(arch).DEFAULT


def _module_to_loaded(
    name: str, module: nn.Module, weights, device: torch.device, num_classes: int
) -> LoadedModel:
    transforms = weights.transforms()
    crop = transforms.crop_size[0]
    categories = weights.meta.get("categories")
    return LoadedModel(
        name=name,
        module=module.to(device).eval(),
        num_classes=num_classes,
        input_size=(crop, crop),
        channels=3,
        mean=tuple(transforms.mean),
        std=tuple(transforms.std),
        resize=transforms.resize_size[0],
        class_names=tuple(categories) if categories and len(categories) == num_classes else None,
    )


def _load_torchvision(arch: str, device: torch.device) -> LoadedModel:
    import torchvision

    weights = _torchvision_weights(arch)
    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    path = hub_dir / os.path.basename(weights.url)
    if not path.is_file():
        if os.environ.get("XAIQ_ALLOW_DOWNLOAD") != "1":
            raise ModelLoadError(
                f"weights for {arch} are not cached at {path}; fetch them once with network "
                f"access (XAIQ_ALLOW_DOWNLOAD=1 xaiq models fetch {arch}), copy the file "
                "there, set TORCH_HOME to a cache that has it, or pass "
                f"'{arch}:/path/to/state_dict.pt'"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(weights.url, str(path))
        except Exception as exc:  # offline, a read-only cache, a proxy: one line
            raise ModelLoadError(
                f"cannot fetch the weights of {arch} from {weights.url} into {path}: "
                f"{_first(exc)} (set TORCH_HOME to a writable cache, or pass "
                f"'{arch}:/path/to/state_dict.pt')"
            ) from None
    state = load_checkpoint(path, "cpu")
    module = torchvision.models.get_model(arch, weights=None)
    _load_state(module, state, f"{path} ({arch})")
    return _module_to_loaded(arch, module, weights, device, len(weights.meta["categories"]))


def _load_state(module: nn.Module, state: dict, what: str) -> None:
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelLoadError(
            f"checkpoint {what} does not match the architecture: {first}"
        ) from None


def _infer_num_classes(state: dict) -> int:
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    weights = [v for k, v in state.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2]
    return int(weights[-1].shape[0]) if weights else 1000


def _load_state_dict_model(arch: str, path: str, device: torch.device) -> LoadedModel:
    import torchvision

    weights = _torchvision_weights(arch)
    state = load_checkpoint(path, "cpu")
    num_classes = _infer_num_classes(state)
    try:
        module = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    except Exception as exc:
        raise ModelLoadError(f"cannot build {arch} with {num_classes} classes: {exc}") from None
    _load_state(module, state, f"{path} ({arch})")
    return _module_to_loaded(f"{arch}:{path}", module, weights, device, num_classes)


TRUST_TORCHSCRIPT_ENV = "XAIQ_TRUST_TORCHSCRIPT"


def check_torchscript(path: str) -> None:
    """Refuse ``torchscript:path`` unless ``XAIQ_TRUST_TORCHSCRIPT=1``: loading a TorchScript
    archive runs the code inside it. Raises :class:`ModelLoadError` (one line)."""
    if os.environ.get(TRUST_TORCHSCRIPT_ENV) != "1":
        raise ModelLoadError(
            f"torchscript:{path} is code that runs when loaded; refused unless you trust the "
            f"file: set {TRUST_TORCHSCRIPT_ENV}=1 (on the workers too), or pass its weights as "
            "ARCH:state_dict.pt"
        )
    if not Path(path).is_file():
        raise ModelLoadError(f"TorchScript file not found: {path}")


def _first(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _load_torchscript(path: str, device: torch.device) -> LoadedModel:
    check_torchscript(path)
    try:
        module = torch.jit.load(path, map_location=device)
    except Exception as exc:
        raise ModelLoadError(f"cannot load TorchScript {path}: {_first(exc)}") from None
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, 3, 224, 224, device=device))
    except Exception as exc:
        raise ModelLoadError(
            f"TorchScript {path} must take [N, 3, 224, 224] inputs: {_first(exc)}"
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelLoadError(
            f"TorchScript {path} must return [N, classes] logits, returned {shape} for N=1"
        )
    return LoadedModel(
        name=f"torchscript:{path}",
        module=module,
        num_classes=int(out.shape[1]),
        input_size=(224, 224),
        channels=3,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        resize=256,
    )


def load_model(name: str, device: torch.device | str | None = None) -> LoadedModel:
    """Load the model ``name`` (see the module docstring for accepted specs) in eval mode."""
    dev = resolve_device(device)
    if name in MODELS:
        return MODELS.get(name)(dev)
    if name.startswith("torchscript:"):
        return _load_torchscript(name.split(":", 1)[1], dev)
    if ":" in name:
        arch, path = name.split(":", 1)
        return _load_state_dict_model(arch, path, dev)
    return _load_torchvision(name, dev)


def as_module(model: LoadedModel | nn.Module) -> nn.Module:
    """The ``nn.Module`` of a loaded model, or the module itself."""
    return model.module if isinstance(model, LoadedModel) else model


def check_model_name(name: str) -> None:
    """Validate a model spec without loading weights (used at submit time)."""
    if name in MODELS:
        return
    if name.startswith("torchscript:"):
        check_torchscript(name.split(":", 1)[1])
        return
    arch = name.split(":", 1)[0]
    _torchvision_weights(arch)
    if ":" in name and not Path(name.split(":", 1)[1]).is_file():
        raise ModelLoadError(f"checkpoint not found: {name.split(':', 1)[1]}")


def model_num_classes(name: str) -> int | None:
    """The number of classes of model ``name`` without building it: the bundled CNNs' 10,
    a torchvision model's categories, a state_dict's last linear layer (read with
    ``weights_only=True``); ``None`` for TorchScript (known only by running its code)."""
    check_model_name(name)
    if name in MODELS:
        from xaiq.xai.digits import NUM_CLASSES

        return NUM_CLASSES
    if name.startswith("torchscript:"):
        return None
    arch, sep, path = name.partition(":")
    if sep:
        return _infer_num_classes(load_checkpoint(path))
    categories = _torchvision_weights(arch).meta.get("categories")
    return len(categories) if categories else None


def model_input_shape(name: str) -> tuple[int, int, int]:
    """``(channels, H, W)`` of the model ``name``'s inputs, without loading its weights
    (submit-time checks, e.g. that the models of a cross-model job take the same input)."""
    check_model_name(name)
    if name in MODELS:
        from xaiq.xai.digits import INPUT_SIZE

        return (1, INPUT_SIZE, INPUT_SIZE)
    if name.startswith("torchscript:"):
        return (3, 224, 224)
    crop = _torchvision_weights(name.split(":", 1)[0]).transforms().crop_size[0]
    return (3, int(crop), int(crop))
