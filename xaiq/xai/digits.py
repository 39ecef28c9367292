"""The bundled digits CNNs: architecture and the training recipe behind the shipped weights.

Both models see 28x28 single-channel inputs in [0, 1]: scikit-learn's 8x8 digits (values
0..16) scaled to [0, 1] and upsampled bilinearly. ``digits-cnn`` is trained to convergence;
``digits-cnn-weak`` is deliberately under-trained on a small subset and over-confident (its
logits are multiplied by a large scale), so its softmax saturates and gradient methods see
almost no gradient of the class probability -- the situation in which RISE is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 28
NUM_CLASSES = 10


class DigitsCNN(nn.Module):
    """Two conv blocks and a two-layer head; ``logit_scale`` multiplies the logits."""

    logit_scale: torch.Tensor

    def __init__(self, logit_scale: float = 1.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 64),
            nn.ReLU(),
            nn.Linear(64, NUM_CLASSES),
        )
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)) * self.logit_scale


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as float32 images ``[N, 8, 8]`` in [0, 1] and int64 labels ``[N]``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    return images, bunch.target.astype(np.int64)


def to_model_input(images: np.ndarray) -> torch.Tensor:
    """``[N, h, w]`` floats in [0, 1] -> ``[N, 1, 28, 28]`` model inputs (bilinear upsampling)."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    return F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)


def is_held_out(index: np.ndarray) -> np.ndarray:
    """The fixed held-out split: every fifth sample (index % 5 == 0)."""
    return index % 5 == 0


@dataclass(frozen=True)
class TrainResult:
    state_dict: dict[str, torch.Tensor]
    accuracy: float
    ece: float
    epochs: int


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    """ECE with equal-width confidence bins; ``probs [N, C]``, ``labels [N]``."""
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = torch.zeros(())
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.float().mean() * (conf[in_bin].mean() - correct[in_bin].mean()).abs()
    return float(ece)


def train_digits(weak: bool = False, seed: int = 0) -> TrainResult:
    """Train a digits CNN on the non-held-out split; CPU, a few seconds.

    Strong: 20 epochs of Adam (lr 1e-3, batch 64) on all training samples.
    Weak: 30 steps of Adam (lr 2e-3, batch 25) on 300 training samples, then logit scale 25
    (held-out accuracy about 75%, mean confidence about 0.97).
    """
    torch.manual_seed(seed)
    images, labels = digits_arrays()
    index = np.arange(len(labels))
    train_idx, test_idx = index[~is_held_out(index)], index[is_held_out(index)]
    x_all = to_model_input(images)
    y_all = torch.from_numpy(labels)
    model = DigitsCNN()
    if weak:
        rng = np.random.default_rng(seed)
        subset = rng.choice(train_idx, size=300, replace=False)
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        epochs, batch, steps_cap = 3, 25, 30
        train_idx = subset
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        epochs, batch, steps_cap = 20, 64, None
    gen = torch.Generator().manual_seed(seed)
    steps = 0
    model.train()
    for _ in range(epochs):
        order = torch.from_numpy(train_idx)
        if not weak:
            order = order[torch.randperm(len(train_idx), generator=gen)]
        for start in range(0, len(order), batch):
            if steps_cap is not None and steps >= steps_cap:
                break
            idx = order[start : start + batch]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    if weak:
        model.logit_scale.fill_(25.0)
    model.eval()
    with torch.no_grad():
        probs = model(x_all[test_idx]).softmax(dim=1)
    accuracy = float((probs.argmax(1) == y_all[test_idx]).float().mean())
    ece = expected_calibration_error(probs, y_all[test_idx])
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return TrainResult(state_dict=state, accuracy=accuracy, ece=ece, epochs=epochs)
