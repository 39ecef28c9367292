"""Loading models: digits CNNs, torchvision names (offline cache), checkpoints, TorchScript."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from xaiq.xai.errors import ModelLoadError, UnknownNameError
from xaiq.xai.models import IMAGENET_MEAN, load_model


def held_out_accuracy(model) -> float:
    from xaiq.xai.digits import digits_arrays, is_held_out

    images, labels = digits_arrays()
    idx = np.flatnonzero(is_held_out(np.arange(len(labels))))
    probs = model.predict_proba(model.preprocess(images[idx]))
    return float((probs.argmax(1).numpy() == labels[idx]).mean())


def test_digits_cnn_is_accurate_and_the_weak_model_clearly_is_not(digits_model):
    weak = load_model("digits-cnn-weak", device="cpu")
    strong_acc, weak_acc = held_out_accuracy(digits_model), held_out_accuracy(weak)
    assert strong_acc >= 0.95
    assert weak_acc <= strong_acc - 0.1
    assert digits_model.input_size == (28, 28) and digits_model.channels == 1
    assert not digits_model.module.training


def test_weak_digits_model_is_overconfident(digits_model):
    from xaiq.xai.digits import digits_arrays

    weak = load_model("digits-cnn-weak", device="cpu")
    images, _ = digits_arrays()
    x = weak.preprocess(images[:200])
    confidence = weak.predict_proba(x).max(1).values.mean()
    assert confidence > held_out_accuracy(weak) + 0.1


def test_preprocess_resizes_converts_channels_and_round_trips_to_display(digits_model):
    rgb = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    x = digits_model.preprocess([rgb])
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    shown = digits_model.to_display(x)
    assert shown.shape == (1, 28, 28, 1)
    torch.testing.assert_close(shown.permute(0, 3, 1, 2), x)  # mean 0, std 1


def cached_weights_path(torch_home: Path, arch: str) -> Path:
    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    return torch_home / "hub" / "checkpoints" / os.path.basename(url)


def test_torchvision_model_loads_from_the_torch_home_cache(
    tmp_path, monkeypatch, resnet18_state_dict
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = cached_weights_path(tmp_path, "resnet18")
    path.parent.mkdir(parents=True)
    path.write_bytes(resnet18_state_dict.read_bytes())
    model = load_model("resnet18", device="cpu")
    assert model.num_classes == 1000 and model.input_size == (224, 224)
    assert model.mean == pytest.approx(IMAGENET_MEAN) and model.resize == 256
    assert model.class_names is not None and len(model.class_names) == 1000
    want = torch.load(resnet18_state_dict, weights_only=True)["fc.weight"]
    torch.testing.assert_close(model.module.fc.weight, want)
    x = model.preprocess([np.zeros((300, 400, 3), dtype=np.float32)])
    assert x.shape == (1, 3, 224, 224)
    low, high = model.input_range
    assert torch.all(x >= low - 1e-6) and torch.all(x <= high + 1e-6)


def test_uncached_torchvision_weights_offline_say_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("XAIQ_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(ModelLoadError, match="not cached") as info:
        load_model("resnet18", device="cpu")
    message = str(info.value)
    assert "xaiq models fetch resnet18" in message and "\n" not in message


def test_state_dict_checkpoint_for_a_named_architecture_loads_with_its_class_count(tmp_path):
    torch.manual_seed(0)
    module = torchvision.models.resnet18(weights=None, num_classes=7)
    path = tmp_path / "seven.pt"
    torch.save({"state_dict": module.state_dict()}, path)
    model = load_model(f"resnet18:{path}", device="cpu")
    assert model.num_classes == 7 and model.class_names is None
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.module(x), module.eval()(x))


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "r34.pt"
    torch.save(torchvision.models.resnet34(weights=None, num_classes=4).state_dict(), path)
    with pytest.raises(ModelLoadError, match="does not match the architecture"):
        load_model(f"resnet18:{path}", device="cpu")


def test_pickled_module_checkpoint_is_not_unpickled(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)  # a whole object, not a state_dict
    with pytest.raises(ModelLoadError, match="module.pt"):
        load_model(f"resnet18:{path}", device="cpu")


def test_missing_checkpoint_and_unknown_names_are_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("XAIQ_TRUST_TORCHSCRIPT", "1")
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(f"resnet18:{tmp_path / 'nope.pt'}", device="cpu")
    with pytest.raises(UnknownNameError, match="not-a-net"):
        load_model("not-a-net", device="cpu")
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(f"torchscript:{tmp_path / 'gone.pt'}", device="cpu")


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_torchscript_file_loads_as_an_imagenet_style_classifier(tmp_path, monkeypatch):
    monkeypatch.setenv("XAIQ_TRUST_TORCHSCRIPT", "1")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=4),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 5),
    ).eval()
    path = tmp_path / "net.pt"
    torch.jit.script(net).save(str(path))
    model = load_model(f"torchscript:{path}", device="cpu")
    assert model.num_classes == 5 and model.input_size == (224, 224)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model.module(x), net(x))
