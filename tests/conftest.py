"""Shared fixtures: the bundled digits models, a digits batch, a locally written ResNet-18."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"

# The longest test files (minutes each: the 10,000-shard load test, the multi-host run, the
# attack-reuse jobs) are collected first, so that under `make test`'s two xdist workers they
# start at once instead of leaving one worker alone with them at the end. The order of the
# tests inside a file does not change, and no test depends on another file's.
LONGEST_FIRST = (
    "tests/reliability/test_load.py",
    "tests/jobs/test_attack_reuse.py",
    "tests/jobs/test_multihost.py",
    "tests/cli/test_demo_summary.py",
    "tests/jobs/test_interrupt.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parents[1]

    def rank(item: pytest.Item) -> int:
        try:
            rel = Path(str(item.path)).resolve().relative_to(root).as_posix()
        except ValueError:
            return len(LONGEST_FIRST)
        return LONGEST_FIRST.index(rel) if rel in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every other test keeps its place


@pytest.fixture(scope="session")
def digits_model():
    from xaiq.xai.models import load_model

    return load_model("digits-cnn", device="cpu")


@pytest.fixture(scope="session")
def digits_batch(digits_model):
    """Model inputs ``[6, 1, 28, 28]`` and labels ``[6]`` of six held-out digits."""
    import torch

    from xaiq.xai.digits import digits_arrays

    images, labels = digits_arrays()
    idx = np.arange(0, 30, 5)  # held-out samples (index % 5 == 0)
    return digits_model.preprocess(images[idx]), torch.from_numpy(labels[idx])


@pytest.fixture(scope="session")
def resnet18_state_dict(tmp_path_factory) -> Path:
    """A randomly initialised (seeded) ResNet-18 state_dict written by the test session."""
    import torch
    import torchvision

    torch.manual_seed(0)
    module = torchvision.models.resnet18(weights=None)
    path = tmp_path_factory.mktemp("weights") / "resnet18-local.pt"
    torch.save(module.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server on a free 127.0.0.1 port, for the whole session (tests/s3server.py)."""
    from tests.s3server import start_or_skip

    server = start_or_skip(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """``XAIQ_ARTIFACTS=s3://<new bucket>/art`` and the server's AWS variables, in this
    process; returns the environment to give subprocesses."""
    env = {**s3_server.env(), "XAIQ_ARTIFACTS": f"s3://{s3_server.bucket()}/art"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
